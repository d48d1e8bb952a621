//! CPU time of a process, and the kernel's UDP drop counters, for the per-GB figures.
//!
//! CPU comes from `getrusage(RUSAGE_SELF)`, which sums every thread of the process (quinn's
//! connection driver, tokio's I/O driver, the blocking pool) at the scheduler's nanosecond
//! precision; `/proc/<pid>/stat` would round it to 10 ms ticks, too coarse for a short run.

use std::io;
use std::time::Duration;

use serde::Serialize;

/// User and system CPU time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTime {
    pub user: Duration,
    pub system: Duration,
}

impl CpuTime {
    /// This process's CPU time so far, all threads.
    pub fn of_self() -> io::Result<CpuTime> {
        // SAFETY: `usage` is a plain struct the call fills in.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        let duration = |t: libc::timeval| {
            Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
                + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
        };
        Ok(CpuTime {
            user: duration(usage.ru_utime),
            system: duration(usage.ru_stime),
        })
    }

    /// The time spent between `earlier` and `self`.
    pub fn since(self, earlier: CpuTime) -> CpuTime {
        CpuTime {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }

    pub fn total(self) -> Duration {
        self.user + self.system
    }

    /// The form the peer process sends over its pipe: `<user_ns> <system_ns>`.
    pub fn encode(self) -> String {
        format!("{} {}", self.user.as_nanos(), self.system.as_nanos())
    }

    pub fn decode(text: &str) -> Option<CpuTime> {
        let mut parts = text.split_whitespace().map(|p| p.parse::<u64>().ok());
        let user = parts.next()??;
        let system = parts.next()??;
        Some(CpuTime {
            user: Duration::from_nanos(user),
            system: Duration::from_nanos(system),
        })
    }
}

/// The whole machine's CPU ticks from `/proc/stat`, to tell how much of the machine the two
/// processes had: on a shared VM a neighbour's work shows as busy cores that are not theirs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MachineTicks {
    pub busy: u64,
    pub total: u64,
    pub cpus: u64,
}

impl MachineTicks {
    pub fn read() -> Option<MachineTicks> {
        parse_stat(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    /// Cores kept busy on average from `earlier` to `self`, by anything.
    pub fn busy_cores_since(self, earlier: MachineTicks) -> Option<f64> {
        let total = self.total.checked_sub(earlier.total).filter(|t| *t > 0)?;
        let busy = self.busy.saturating_sub(earlier.busy);
        Some(busy as f64 / total as f64 * self.cpus as f64)
    }
}

/// The `cpu` line of `/proc/stat`: busy is everything but idle and iowait; `cpuN` lines count
/// the CPUs.
fn parse_stat(text: &str) -> Option<MachineTicks> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|t| t.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3)? + ticks.get(4).copied().unwrap_or(0);
    let cpus = text
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count() as u64;
    Some(MachineTicks {
        busy: total - idle,
        total,
        cpus: cpus.max(1),
    })
}

/// Datagrams the kernel dropped for want of socket buffer, machine-wide
/// (`/proc/net/snmp`, `Udp:` `RcvbufErrors` and `SndbufErrors`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct UdpDrops {
    pub rcvbuf_errors: u64,
    pub sndbuf_errors: u64,
}

impl UdpDrops {
    pub fn read() -> Option<UdpDrops> {
        parse_snmp(&std::fs::read_to_string("/proc/net/snmp").ok()?)
    }

    pub fn since(self, earlier: UdpDrops) -> UdpDrops {
        UdpDrops {
            rcvbuf_errors: self.rcvbuf_errors.saturating_sub(earlier.rcvbuf_errors),
            sndbuf_errors: self.sndbuf_errors.saturating_sub(earlier.sndbuf_errors),
        }
    }
}

/// The `Udp:` counters of `/proc/net/snmp`: a line of names, then a line of values.
fn parse_snmp(text: &str) -> Option<UdpDrops> {
    let mut udp = text.lines().filter(|l| l.starts_with("Udp:"));
    let names = udp.next()?.split_whitespace();
    let values = udp.next()?.split_whitespace();
    let mut drops = UdpDrops::default();
    for (name, value) in names.zip(values).skip(1) {
        match name {
            "RcvbufErrors" => drops.rcvbuf_errors = value.parse().ok()?,
            "SndbufErrors" => drops.sndbuf_errors = value.parse().ok()?,
            _ => {}
        }
    }
    Some(drops)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cpu_time_grows_with_work_and_survives_the_pipe() {
        let before = CpuTime::of_self().unwrap();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        let spent = CpuTime::of_self().unwrap().since(before);
        assert!(spent.total() > Duration::ZERO, "{spent:?}");
        assert_eq!(CpuTime::decode(&spent.encode()), Some(spent));
        assert_eq!(CpuTime::decode("12"), None);
    }

    #[test]
    fn machine_busy_cores_come_from_the_cpu_line() {
        let at = |busy: u64, idle: u64| {
            parse_stat(&format!(
                "cpu  {busy} 0 0 {idle} 0 0 0 0 0 0\ncpu0 1 0 0 1 0 0 0 0 0 0\ncpu1 1 0 0 1 0 0 0 0 0 0\nintr 5\n"
            ))
            .unwrap()
        };
        let (before, after) = (at(100, 100), at(250, 150));
        assert_eq!(after.cpus, 2);
        // 150 of 200 ticks busy on 2 CPUs: 1.5 cores.
        assert_eq!(after.busy_cores_since(before), Some(1.5));
        assert_eq!(before.busy_cores_since(before), None);
        assert!(MachineTicks::read().is_some());
    }

    #[test]
    fn udp_drop_counters_are_read_from_the_udp_lines() {
        let snmp = "Tcp: RtoAlgorithm RtoMin\nTcp: 1 200\n\
                    Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\n\
                    Udp: 10 0 3 12 3 1\nUdpLite: InDatagrams\nUdpLite: 0\n";
        assert_eq!(
            parse_snmp(snmp),
            Some(UdpDrops {
                rcvbuf_errors: 3,
                sndbuf_errors: 1
            })
        );
        assert!(UdpDrops::read().is_some(), "this kernel has /proc/net/snmp");
    }
}
