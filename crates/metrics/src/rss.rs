//! The process's resident set size, from `/proc/self/status` on Linux.

/// where that is unavailable (other systems than Linux).
pub fn peak_rss_bytes() -> Option<u64> {
    status_bytes("VmHWM:")
}

/// The process's resident set size in bytes (`VmRSS`); `None` where unavailable.
pub(crate) fn rss_bytes() -> Option<u64> {
    status_bytes("VmRSS:")
}

/// The `key` line of `/proc/self/status`, in bytes.
fn status_bytes(key: &str) -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        parse_status_kb(&status, key)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = key;
        None
    }
}

/// Resets the process's peak RSS to its current RSS (Linux: `5` into `/proc/self/clear_refs`),
/// so that [`peak_rss_bytes`] measures from now: each run of a `--compare` its own peak.
/// Elsewhere, or if the kernel refuses, the peak stays process-wide.
pub fn reset_peak_rss() {
    #[cfg(target_os = "linux")]
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The `key` line (`VmHWM:`, `VmRSS:`) of a `/proc/<pid>/status` text, in bytes.
#[cfg(target_os = "linux")]
fn parse_status_kb(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    let mut fields = line[key.len()..].split_whitespace();
    let value: u64 = fields.next()?.parse().ok()?;
    match fields.next() {
        Some("kB") => value.checked_mul(1024),
        _ => None,
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::parse_status_kb;

    #[test]
    fn status_lines_are_read_in_bytes() {
        let status = "Name:\ttest\nVmPeak:\t  2000 kB\nVmHWM:\t    1234 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(parse_status_kb(status, "VmHWM:"), Some(1234 * 1024));
        assert_eq!(parse_status_kb(status, "VmRSS:"), Some(1000 * 1024));
        assert_eq!(parse_status_kb("VmRSS:\t 1000 kB\n", "VmHWM:"), None);
        assert_eq!(parse_status_kb("VmHWM:\t 1000 pages\n", "VmHWM:"), None);
    }
}
