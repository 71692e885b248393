//! CPU and memory use of this process (the console and its trainer thread), from `/proc/self` on
//! Linux; elsewhere the values stay unknown.
use std::time::Instant;

/// What the run view shows about the process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessUsage {
    /// Share of one core over the last interval (200 % is two busy cores).
    pub cpu_percent: Option<f64>,
    pub resident_bytes: Option<u64>,
    pub threads: Option<u64>,
}

/// Linux reports CPU times in clock ticks of `USER_HZ`, which is 100 on every architecture Linux
/// exposes to user space.
const TICKS_PER_SECOND: f64 = 100.0;

/// Turns successive readings into CPU percentages.
#[derive(Debug, Default)]
pub struct UsageSampler {
    previous: Option<(Instant, u64)>,
}

impl UsageSampler {
    pub fn sample(&mut self) -> ProcessUsage {
        let now = Instant::now();
        let ticks = std::fs::read_to_string("/proc/self/stat").ok().and_then(|stat| cpu_ticks(&stat));
        let cpu_percent = match (self.previous, ticks) {
            (Some((then, before)), Some(after)) => {
                let seconds = now.duration_since(then).as_secs_f64();
                (seconds > 0.0).then(|| after.saturating_sub(before) as f64 / TICKS_PER_SECOND / seconds * 100.0)
            }
            _ => None,
        };
        self.previous = ticks.map(|t| (now, t));
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        ProcessUsage {
            cpu_percent,
            resident_bytes: status_value(&status, "VmRSS").map(|kib| kib * 1024),
            threads: status_value(&status, "Threads"),
        }
    }
}

/// User plus system time of all threads, from `/proc/self/stat` (fields 14 and 15). The command
/// name (field 2) may hold spaces and parentheses, so fields are counted after its last `)`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Field 3 (state) is the first after the name: utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The process's peak resident set size (`VmHWM`), where `/proc` is available.
pub fn peak_resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status_value(&status, "VmHWM").map(|kib| kib * 1024)
}

/// The number of a `Name:   123 kB` line of `/proc/self/status`.
fn status_value(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with(':')))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `812 MiB`, `1.4 GiB`.
pub fn format_bytes(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let mib = bytes as f64 / MIB;
    if mib >= 1024.0 {
        format!("{:.1} GiB", mib / 1024.0)
    } else {
        format!("{mib:.0} MiB")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat = "4242 (my (odd) name) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 9 0 100 1000 200";
        assert_eq!(cpu_ticks(stat), Some(300));
        assert_eq!(cpu_ticks("garbage"), None);
    }

    #[test]
    fn status_lines_are_read_by_name() {
        let status = "Name:\tsift-tui\nVmRSSX:\t1 kB\nVmRSS:\t  2048 kB\nThreads:\t7\n";
        assert_eq!(status_value(status, "VmRSS"), Some(2048));
        assert_eq!(status_value(status, "Threads"), Some(7));
        assert_eq!(status_value(status, "VmSwap"), None);
        assert_eq!(format_bytes(2048 * 1024), "2 MiB");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_memory() {
        let usage = UsageSampler::default().sample();
        assert!(usage.resident_bytes.is_some_and(|b| b > 0));
    }
}
