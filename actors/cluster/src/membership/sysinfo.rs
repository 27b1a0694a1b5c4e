//! Capacity and load of this machine, read from procfs and statvfs
//! (blocking calls: run them on a blocking thread).

use std::path::Path;

use super::info::{Capacity, NodeLoad};

/// Capacity of this machine, with free disk measured at `data_dir`.
pub fn capacity(data_dir: Option<&Path>) -> Capacity {
    Capacity {
        cores: std::thread::available_parallelism()
            .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
            .unwrap_or(1),
        memory_bytes: memory_total_bytes().unwrap_or(0),
        free_disk_bytes: data_dir.and_then(free_disk_bytes).unwrap_or(0),
    }
}

/// Current load; `job_queue_depth` comes from the work queues.
pub fn load(data_dir: Option<&Path>, job_queue_depth: u64) -> NodeLoad {
    let (load_avg_1m, run_queue) = loadavg().unwrap_or((0.0, 0));
    NodeLoad {
        run_queue,
        load_avg_1m,
        job_queue_depth,
        free_disk_bytes: data_dir.and_then(free_disk_bytes).unwrap_or(0),
        ..NodeLoad::default()
    }
}

fn memory_total_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_meminfo_total(&text)
}

fn parse_meminfo_total(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

fn loadavg() -> Option<(f64, u32)> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    parse_loadavg(&text)
}

/// `0.52 0.58 0.59 3/1024 12345`: one-minute average and runnable count.
fn parse_loadavg(text: &str) -> Option<(f64, u32)> {
    let mut fields = text.split_whitespace();
    let one_minute: f64 = fields.next()?.parse().ok()?;
    let running = fields.nth(2)?.split('/').next()?.parse().ok()?;
    Some((one_minute, running))
}

fn free_disk_bytes(dir: &Path) -> Option<u64> {
    let stat = nix::sys::statvfs::statvfs(dir).ok()?;
    #[allow(clippy::useless_conversion)] // the field widths differ by platform
    let bytes = u64::from(stat.blocks_available()).checked_mul(u64::from(stat.fragment_size()));
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_procfs_lines() {
        assert_eq!(
            parse_meminfo_total("MemTotal:       24576000 kB\nMemFree: 1 kB\n"),
            Some(24_576_000 * 1024)
        );
        assert_eq!(parse_meminfo_total("garbage"), None);
        assert_eq!(
            parse_loadavg("0.52 0.58 0.59 3/1024 12345\n"),
            Some((0.52, 3))
        );
        assert_eq!(parse_loadavg("x"), None);
    }

    #[test]
    fn measures_this_machine() {
        let dir = std::env::temp_dir();
        let cap = capacity(Some(&dir));
        assert!(cap.cores >= 1);
        assert!(cap.memory_bytes > 0);
        assert!(cap.free_disk_bytes > 0);
    }
}
