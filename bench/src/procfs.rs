//! Per-process CPU time and peak memory from Linux's `/proc`.

use std::time::Duration;

/// CPU time (user + system) a process has used so far, from `/proc/PID/stat`.
///
/// # Errors
/// When the file cannot be read or parsed (the process is gone, or this is not Linux).
pub fn cpu_time(pid: u32, ticks_per_sec: u64) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    cpu_time_from_stat(&stat, ticks_per_sec)
}

/// Parses `utime` + `stime` (fields 14 and 15) out of a `/proc/PID/stat` line.
///
/// # Errors
/// When the line is malformed.
pub fn cpu_time_from_stat(stat: &str, ticks_per_sec: u64) -> anyhow::Result<Duration> {
    // The command name (field 2) is in parentheses and may contain spaces: skip past it.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow::anyhow!("malformed stat line"))?;
    // `rest` starts at field 3 (state): utime is field 14, i.e. index 11 here.
    let mut fields = rest.split_whitespace().skip(11);
    let mut next = || -> anyhow::Result<u64> {
        Ok(fields
            .next()
            .ok_or_else(|| anyhow::anyhow!("stat line too short"))?
            .parse()?)
    };
    let ticks = next()? + next()?;
    let per_sec = ticks_per_sec.max(1);
    Ok(Duration::from_micros(ticks * 1_000_000 / per_sec))
}

/// Peak resident set size (`VmHWM`) in KiB, from `/proc/PID/status`.
///
/// # Errors
/// When the file cannot be read or has no `VmHWM` line.
pub fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status_field_kib(&status, "VmHWM")
}

/// A `NAME:   1234 kB` field of `/proc/PID/status`, in KiB.
///
/// # Errors
/// When the field is missing or malformed.
pub fn status_field_kib(status: &str, name: &str) -> anyhow::Result<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no {name} in /proc status"))
}

/// Context switches (voluntary + involuntary) of all threads of a process so far, from
/// `/proc/PID/task/*/status`. Threads that already ended are not counted.
///
/// # Errors
/// When the task folder cannot be read.
pub fn context_switches(pid: u32) -> anyhow::Result<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let Ok(status) = std::fs::read_to_string(task?.path().join("status")) else {
            continue;
        };
        for name in ["voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"] {
            total += status
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Ok(total)
}

/// `pid` and all its descendants (e.g. gunicorn's master and its workers), from
/// `/proc/PID/task/*/children`.
pub fn process_tree(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    let mut i = 0;
    while let Some(&p) = out.get(i) {
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) {
            for task in tasks.flatten() {
                let children = std::fs::read_to_string(task.path().join("children"));
                out.extend(
                    children
                        .unwrap_or_default()
                        .split_whitespace()
                        .filter_map(|c| c.parse::<u32>().ok()),
                );
            }
        }
        i += 1;
    }
    out
}

/// Clock ticks per second for `/proc/PID/stat` (`getconf CLK_TCK`; 100 on Linux).
pub fn ticks_per_sec() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields() {
        let line = "4242 (my (odd) name) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 4 0 99 100 200";
        assert_eq!(
            cpu_time_from_stat(line, 100).expect("parses"),
            Duration::from_secs(3)
        );
        assert!(cpu_time_from_stat("garbage", 100).is_err());
    }

    #[test]
    fn status_fields() {
        let s = "Name:\tcalled\nVmPeak:\t  900 kB\nVmHWM:\t   12345 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(status_field_kib(s, "VmHWM").expect("hwm"), 12345);
        assert!(status_field_kib(s, "VmSwap").is_err());
    }

    #[test]
    fn own_process_is_readable() {
        let me = std::process::id();
        assert!(peak_rss_kib(me).expect("own status") > 0);
        cpu_time(me, ticks_per_sec()).expect("own stat");
        context_switches(me).expect("own tasks");
        assert_eq!(process_tree(me)[0], me);
    }
}
