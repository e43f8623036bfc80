//! Process figures from Linux `/proc`: resident memory (`VmRSS`, `VmHWM`) and CPU time
//! (`utime + stime`, all threads). Resolution of CPU time is one clock tick (10 ms at the usual
//! 100 Hz), so CPU figures are only meaningful over windows of seconds.

use std::time::Duration;

/// Resident memory of one process, KiB (from `/proc/PID/status`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Memory {
    /// `VmRSS`: resident set, shared file pages (the executable) included.
    pub rss_kib: u64,
    /// `VmHWM`: peak `VmRSS` since the process started.
    pub hwm_kib: u64,
    /// `RssAnon`: private anonymous memory (heap, stacks).
    pub anon_kib: u64,
    /// `RssFile`: file-backed pages (mostly the executable's code, shared between daemons).
    pub file_kib: u64,
}

/// Resident memory of `pid`.
pub fn memory(pid: u32) -> Option<Memory> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some(Memory {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
        anon_kib: field("RssAnon:").unwrap_or(0),
        file_kib: field("RssFile:").unwrap_or(0),
    })
}

/// `VmRSS` and `VmHWM` (peak RSS) of `pid`, in KiB.
pub fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    memory(pid).map(|m| (m.rss_kib, m.hwm_kib))
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

/// Processes of process group `pgid` (e.g. nginx's master and its workers), by `/proc/*/stat`.
pub fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut out: Vec<u32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().is_some_and(|text| {
                // After the command name's ')': state (field 3), ppid (4), pgrp (5).
                text.rfind(')')
                    .and_then(|i| text[i + 1..].split_whitespace().nth(2).map(|g| g.parse::<u32>().ok() == Some(pgid)))
                    .unwrap_or(false)
            })
        })
        .collect();
    out.sort_unstable();
    out
}

/// Summed CPU time of several processes (missing ones count 0).
pub fn cpu_time_of(pids: &[u32]) -> Duration {
    pids.iter().filter_map(|p| cpu_time(*p)).sum()
}

/// Busy CPU time of the whole machine so far (all CPUs: user, nice, system, irq, softirq, steal).
pub fn machine_busy() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal
    let busy = v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)? + v.get(7).copied().unwrap_or(0);
    Some(Duration::from_secs_f64(busy as f64 / clock_ticks_per_sec()))
}

/// CPU time as a percentage of all the machine's CPUs over `elapsed`: the scale of
/// [`machine_busy`], whose `/proc/stat` totals count every online CPU (not only those this
/// process may run on).
pub fn pct_of_machine(cpu: Duration, elapsed: Duration) -> f64 {
    let online = std::fs::read_to_string("/proc/stat")
        .map(|t| t.lines().filter(|l| l.starts_with("cpu") && !l.starts_with("cpu ")).count())
        .unwrap_or(0);
    let cpus = if online > 0 { online } else { std::thread::available_parallelism().map_or(1, |n| n.get()) };
    cpu.as_secs_f64() * 100.0 / (elapsed.as_secs_f64().max(1e-9) * cpus as f64)
}

/// Busy time of the whole machine between two [`machine_busy`] readings, as a percentage of
/// all its CPUs over `elapsed`.
pub fn machine_busy_pct(from: Option<Duration>, to: Option<Duration>, elapsed: Duration) -> Option<f64> {
    from.zip(to).map(|(a, b)| pct_of_machine(b.saturating_sub(a), elapsed))
}

/// The 1-minute load average.
pub fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
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
        let m = memory(me).unwrap();
        assert!(m.anon_kib > 0 && m.anon_kib + m.file_kib <= m.rss_kib + 4);
        assert!(cpu_time(me).is_some());
        assert!(memory_kib(u32::MAX).is_none());
        assert!(machine_busy().is_some() && loadavg().is_some());
        // SAFETY: getpgrp has no preconditions.
        let group = unsafe { libc::getpgrp() } as u32;
        assert!(group_members(group).contains(&me));
    }
}
