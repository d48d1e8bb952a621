//! What a run prints (a table) and saves (JSON with the raw histograms).
//!
//! Every report carries its flush policy and whether the broker took it, and each floor is
//! printed next to a `spate / floor` ratio, so a figure is never read without its ceiling.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::disk_floor::DiskFloor;
use crate::metrics::{Latency, Throughput};

/// One workload's result.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub workload: String,
    pub bootstrap: String,
    pub flush: String,
    pub flush_note: String,
    /// The command-line shape of the load, for reproducing the figure.
    pub params: String,
    /// The pinning in force, e.g. "broker on cores 0, bench on cores 1".
    pub pinning: String,
    pub throughput: Option<Throughput>,
    pub latency: Option<Latency>,
    /// Scheduled send to the producer's acknowledgement: the write path alone, which tells
    /// a broker-side tail from a fetch-side one.
    pub ack_latency: Option<Latency>,
    pub null_broker: Option<Throughput>,
    pub disk: Option<DiskFloor>,
    pub ratios: Vec<Ratio>,
    pub errors: u64,
    pub first_error: Option<String>,
    pub notes: Vec<String>,
}

/// `spate / floor` for one measure.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    pub what: String,
    pub value: f64,
}

impl Report {
    pub fn new(
        workload: &str,
        bootstrap: &str,
        flush: &str,
        params: String,
        pinning: String,
    ) -> Self {
        Report {
            workload: workload.into(),
            bootstrap: bootstrap.into(),
            flush: flush.into(),
            flush_note: String::new(),
            params,
            pinning,
            throughput: None,
            latency: None,
            ack_latency: None,
            null_broker: None,
            disk: None,
            ratios: Vec::new(),
            errors: 0,
            first_error: None,
            notes: Vec::new(),
        }
    }

    /// Fills in the ratios from the figures present.
    pub fn compute_ratios(&mut self) {
        self.ratios.clear();
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        if let Some(measured) = &self.throughput {
            if let Some(null) = &self.null_broker {
                self.ratios.push(Ratio {
                    what: "MB/s spate / null-broker".into(),
                    value: ratio(measured.mb_per_s, null.mb_per_s),
                });
            }
            if let Some(disk) = &self.disk
                && self.latency.is_none()
            {
                self.ratios.push(Ratio {
                    what: format!(
                        "MB/s spate / disk (pwrite {} B, flush={})",
                        disk.write_bytes, disk.flush
                    ),
                    value: ratio(measured.mb_per_s, disk.mb_per_s),
                });
            }
        }
        if let (Some(latency), Some(synced)) = (
            &self.latency,
            self.disk.as_ref().and_then(|d| d.fdatasync.as_ref()),
        ) {
            self.ratios.push(Ratio {
                what: "p99 e2e / p99 fdatasync".into(),
                value: ratio(latency.p99, synced.p99),
            });
        }
    }

    /// The human table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "== spate bench {}  ({})",
            self.workload, self.bootstrap
        );
        let _ = writeln!(out, "   {}", self.params);
        let _ = writeln!(out, "   flush={}: {}", self.flush, self.flush_note);
        let _ = writeln!(out, "   {}", self.pinning);
        let _ = writeln!(
            out,
            "   {:<24} {:>10} {:>12}  basis",
            "", "MB/s", "records/s"
        );
        let mut row = |name: &str, t: &Throughput| {
            let _ = writeln!(
                out,
                "   {:<24} {:>10.1} {:>12.0}  {}",
                name, t.mb_per_s, t.records_per_s, t.basis
            );
        };
        if let Some(t) = &self.throughput {
            row("broker", t);
        }
        if let Some(t) = &self.null_broker {
            row("null-broker floor", t);
        }
        if let Some(disk) = &self.disk {
            let _ = writeln!(
                out,
                "   {:<24} {:>10.1} {:>12}  pwrite {} B{} in {}",
                "disk floor",
                disk.mb_per_s,
                "-",
                disk.write_bytes,
                if disk.fdatasync.is_some() {
                    " + fdatasync"
                } else {
                    ""
                },
                disk.dir.display()
            );
            if let Some(synced) = &disk.fdatasync {
                let _ = writeln!(
                    out,
                    "   fdatasync (us): p50 {:.0}  p99 {:.0}  max {:.0}  ({} syncs)",
                    synced.p50, synced.p99, synced.max, synced.count
                );
            }
        }
        for (name, latency) in [("e2e", &self.latency), ("ack", &self.ack_latency)] {
            if let Some(l) = latency {
                let _ = writeln!(
                    out,
                    "   {name} latency (us, {} records): p50 {:.0}  p90 {:.0}  p99 {:.0}  p99.9 {:.0}  p99.99 {:.0}  max {:.0}",
                    l.count, l.p50, l.p90, l.p99, l.p99_9, l.p99_99, l.max
                );
            }
        }
        for ratio in &self.ratios {
            let _ = writeln!(out, "   {:<44} {:>6.2}", ratio.what, ratio.value);
        }
        if self.errors > 0 {
            let _ = writeln!(
                out,
                "   ERRORS: {} (first: {})",
                self.errors,
                self.first_error.as_deref().unwrap_or("?")
            );
        }
        for note in &self.notes {
            let _ = writeln!(out, "   note: {note}");
        }
        out
    }

    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, text)
    }
}

/// The machine in one line: cores, CPU model, kernel, memory and the load at this moment.
pub fn machine_summary() -> String {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim());
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let kernel = read("/proc/sys/kernel/osrelease");
    let memory = read("/proc/meminfo")
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let load = read("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "{cores} x {model}, Linux {}, {memory}; load average at start: {load}",
        kernel.trim()
    )
}
