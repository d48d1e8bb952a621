//! Broker memory and file descriptors across partition counts, and produce throughput as
//! partitions grow.
//!
//! RSS and fds come from `/proc/<pid>`, so this needs the broker's pid (`--broker-cmd`, or
//! `--broker-pid` for a broker on this machine). Each step creates one topic of the given
//! partition count and keeps it, so the partition counts are cumulative; the table shows
//! both. Under load, records carry keys so every partition is written to, and RSS is the
//! maximum sampled during the load.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::BenchError;
use crate::args::{LoadArgs, ScaleArgs};
use crate::broker_cmd::{open_fds, rss_bytes};
use crate::metrics::Throughput;
use crate::runner::Env;
use crate::workload::{self, produce};

/// How often RSS is sampled during a load.
const RSS_SAMPLE_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Serialize)]
pub struct ScaleRow {
    pub partitions: u32,
    pub partitions_total: u64,
    pub idle_rss_bytes: u64,
    pub idle_fds: usize,
    pub loaded_rss_max_bytes: u64,
    pub loaded_fds: usize,
    pub load_mb_per_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CurvePoint {
    pub partitions: u32,
    pub throughput: Throughput,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScaleReport {
    pub flush: String,
    pub baseline_rss_bytes: u64,
    pub baseline_fds: usize,
    pub rows: Vec<ScaleRow>,
    pub curve: Vec<CurvePoint>,
    pub errors: u64,
    pub notes: Vec<String>,
}

pub fn run(env: &Env, args: &ScaleArgs) -> Result<bool, BenchError> {
    let report = measure(
        env,
        &args.run.load,
        &args.rss_partitions,
        &args.throughput_partitions,
    )?;
    print!("{}", markdown(&report));
    if let Some(path) = &args.run.output.json {
        let text = serde_json::to_string_pretty(&report).map_err(std::io::Error::other)?;
        std::fs::write(path, text)?;
    }
    let sane = report.errors == 0
        && report
            .rows
            .iter()
            .all(|r| r.idle_rss_bytes > 0 && r.load_mb_per_s > 0.0)
        && report.curve.iter().all(|c| c.throughput.mb_per_s > 0.0);
    Ok(sane)
}

pub fn measure(
    env: &Env,
    load: &LoadArgs,
    rss_partitions: &[u32],
    throughput_partitions: &[u32],
) -> Result<ScaleReport, BenchError> {
    let pid = env.broker_pid.ok_or_else(|| {
        BenchError::Setup("scale needs the broker's pid: use --broker-cmd or --broker-pid".into())
    })?;
    let read = |what: &str| -> Result<(u64, usize), BenchError> {
        match (rss_bytes(pid), open_fds(pid)) {
            (Some(rss), Some(fds)) => Ok((rss, fds)),
            _ => Err(BenchError::Setup(format!(
                "cannot read /proc/{pid} ({what})"
            ))),
        }
    };
    let (baseline_rss_bytes, baseline_fds) = read("baseline")?;
    let mut report = ScaleReport {
        flush: load.flush.clone(),
        baseline_rss_bytes,
        baseline_fds,
        rows: Vec::new(),
        curve: Vec::new(),
        errors: 0,
        notes: Vec::new(),
    };
    let mut total = 0u64;
    for &partitions in rss_partitions {
        let mut step = load.clone();
        step.partitions = partitions.max(1);
        step.topics = 1;
        step.keys = true;
        let created = Instant::now();
        let topics = match env.runtime.block_on(workload::create_topics(
            &env.bootstrap,
            &step,
            &format!("scale{partitions}"),
        )) {
            Ok(topics) => topics,
            Err(e) => {
                report.errors += 1;
                report.notes.push(format!(
                    "creating a topic of {partitions} partitions failed: {e}"
                ));
                break;
            }
        };
        report.notes.push(format!(
            "a topic of {partitions} partitions took {:.1} s to create and get leaders",
            created.elapsed().as_secs_f64()
        ));
        total += u64::from(step.partitions);
        let (idle_rss_bytes, idle_fds) = read("idle")?;
        let peak = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (peak, stop) = (peak.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    if let Some(rss) = rss_bytes(pid) {
                        peak.fetch_max(rss, Ordering::AcqRel);
                    }
                    std::thread::sleep(RSS_SAMPLE_INTERVAL);
                }
            })
        };
        let outcome = env
            .runtime
            .block_on(produce::run(&env.bootstrap, &step, &topics));
        stop.store(true, Ordering::Release);
        let _ = sampler.join();
        let outcome = outcome?;
        report.errors += outcome.errors;
        let (after_rss, loaded_fds) = read("loaded")?;
        report.rows.push(ScaleRow {
            partitions: step.partitions,
            partitions_total: total,
            idle_rss_bytes,
            idle_fds,
            loaded_rss_max_bytes: peak.load(Ordering::Acquire).max(after_rss),
            loaded_fds,
            load_mb_per_s: outcome.throughput.mb_per_s,
        });
    }
    for &partitions in throughput_partitions {
        let mut step = load.clone();
        step.partitions = partitions.max(1);
        step.topics = 1;
        let outcome = env.runtime.block_on(async {
            let topics =
                workload::create_topics(&env.bootstrap, &step, &format!("curve{partitions}"))
                    .await?;
            let outcome = produce::run(&env.bootstrap, &step, &topics).await;
            if let Some(note) = workload::delete_topics(&env.bootstrap, &topics).await {
                report.notes.push(note);
            }
            outcome
        })?;
        report.errors += outcome.errors;
        report.curve.push(CurvePoint {
            partitions: step.partitions,
            throughput: outcome.throughput,
        });
    }
    Ok(report)
}

/// The scale tables as markdown.
pub fn markdown(report: &ScaleReport) -> String {
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Broker before any bench topic: RSS {:.1} MiB, {} fds. flush={}.\n",
        mib(report.baseline_rss_bytes),
        report.baseline_fds,
        report.flush
    );
    let _ = writeln!(
        out,
        "| partitions (topic) | partitions (all bench topics) | idle RSS MiB | idle fds | RSS max under load MiB | fds after load | load MB/s | RSS per partition KiB |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in &report.rows {
        let per_partition_kib = (row.idle_rss_bytes.saturating_sub(report.baseline_rss_bytes))
            as f64
            / 1024.0
            / row.partitions_total.max(1) as f64;
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} | {} | {:.1} | {} | {:.1} | {:.1} |",
            row.partitions,
            row.partitions_total,
            mib(row.idle_rss_bytes),
            row.idle_fds,
            mib(row.loaded_rss_max_bytes),
            row.loaded_fds,
            row.load_mb_per_s,
            per_partition_kib
        );
    }
    for note in &report.notes {
        let _ = writeln!(out, "\n- {note}");
    }
    if !report.curve.is_empty() {
        let _ = writeln!(out, "\n| partitions | produce MB/s | records/s | basis |");
        let _ = writeln!(out, "|---:|---:|---:|---|");
        for point in &report.curve {
            let _ = writeln!(
                out,
                "| {} | {:.1} | {:.0} | {} |",
                point.partitions,
                point.throughput.mb_per_s,
                point.throughput.records_per_s,
                point.throughput.basis
            );
        }
    }
    out
}
