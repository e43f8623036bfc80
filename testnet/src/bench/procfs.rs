//! Process figures from Linux `/proc`: resident memory (`VmRSS`, `VmHWM`) and CPU time
//! (`utime + stime`, all threads). Resolution of CPU time is one clock tick (10 ms at the usual
//! 100 Hz), so CPU figures are only meaningful over windows of seconds.

use std::time::Duration;

/// `VmRSS` and `VmHWM` (peak RSS) of `pid`, in KiB.
pub fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// CPU time (user + system, all threads) `pid` has used so far.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces: fields are counted after its closing ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3, so utime (14) and stime (15) are at indexes 11 and 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_secs_f64((utime + stime) as f64 / clock_ticks_per_sec()))
}

/// Summed CPU time of several processes (missing ones count 0).
pub fn cpu_time_of(pids: &[u32]) -> Duration {
    pids.iter().filter_map(|p| cpu_time(*p)).sum()
}

fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf reads a constant of the running system; no memory is touched.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// `nproc` and the CPU model from `/proc/cpuinfo`.
pub fn machine() -> (usize, String) {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    (cpus, model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let me = std::process::id();
        let (rss, hwm) = memory_kib(me).unwrap();
        assert!(rss > 0 && hwm >= rss);
        assert!(cpu_time(me).is_some());
        assert!(memory_kib(u32::MAX).is_none());
    }
}
