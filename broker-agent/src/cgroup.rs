//! The container's memory limit, read from the cgroup filesystem.
//!
//! RabbitMQ does not look at cgroups: in a 4 GiB container it computes its memory
//! watermark from the host's RAM and would be OOM-killed long before it blocks
//! publishers. The agent therefore reads the limit itself (cgroup v1
//! `memory/memory.limit_in_bytes`, cgroup v2 `memory.max`) and renders explicit memory
//! settings. "No limit" shows up as `max` (v2) or as a huge number (v1), so any value
//! at or above the host's `MemTotal` counts as unlimited.

use std::path::Path;

/// Where cgroup files live inside a container.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// Host memory, used to recognise "unlimited".
pub const MEMINFO: &str = "/proc/meminfo";

/// Parse the content of a limit file: a byte count, or `max` (= no limit).
pub fn parse_limit(raw: &str) -> Option<u64> {
    let raw = raw.trim();
    if raw == "max" {
        return None;
    }
    raw.parse().ok()
}

/// `MemTotal` from `/proc/meminfo`, in bytes.
pub fn parse_mem_total(meminfo: &str) -> Option<u64> {
    meminfo.lines().find_map(|line| {
        let rest = line.strip_prefix("MemTotal:")?;
        let mut parts = rest.split_whitespace();
        let value: u64 = parts.next()?.parse().ok()?;
        match parts.next() {
            Some("kB") | None => value.checked_mul(1024),
            Some(_) => None,
        }
    })
}

/// A raw limit, unless it is at least the host's memory (v1's way to say "none").
pub fn effective_limit(raw: Option<u64>, host_total: Option<u64>) -> Option<u64> {
    let limit = raw?;
    match host_total {
        Some(total) if limit >= total => None,
        _ => Some(limit),
    }
}

/// Read the memory limit under `root`, trying cgroup v1 first and then v2.
pub fn read_memory_limit_at(root: &Path, meminfo: &Path) -> Option<u64> {
    let v1 = root.join("memory/memory.limit_in_bytes");
    let v2 = root.join("memory.max");
    let raw = std::fs::read_to_string(&v1)
        .or_else(|_| std::fs::read_to_string(&v2))
        .ok()?;
    let host = std::fs::read_to_string(meminfo)
        .ok()
        .and_then(|m| parse_mem_total(&m));
    effective_limit(parse_limit(&raw), host)
}

/// The memory limit of the container we run in; `None` = unlimited or unknown.
pub fn read_memory_limit() -> Option<u64> {
    read_memory_limit_at(Path::new(CGROUP_ROOT), Path::new(MEMINFO))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO_24G: &str = "MemTotal:       24684084 kB\nMemFree:        1000 kB\n";

    #[test]
    fn parses_limits() {
        assert_eq!(parse_limit("1073741824\n"), Some(1 << 30));
        assert_eq!(parse_limit("max\n"), None);
        assert_eq!(parse_limit(""), None);
        assert_eq!(parse_limit("garbage"), None);
    }

    #[test]
    fn parses_mem_total() {
        assert_eq!(parse_mem_total(MEMINFO_24G), Some(24_684_084 * 1024));
        assert_eq!(parse_mem_total("MemFree: 1 kB\n"), None);
    }

    #[test]
    fn huge_v1_limit_means_unlimited() {
        let host = parse_mem_total(MEMINFO_24G);
        assert_eq!(effective_limit(Some(9_223_372_036_854_771_712), host), None);
        assert_eq!(effective_limit(Some(1 << 30), host), Some(1 << 30));
        assert_eq!(effective_limit(Some(1 << 30), None), Some(1 << 30));
        assert_eq!(effective_limit(None, host), None);
    }

    #[test]
    fn reads_v1_then_v2_layouts() {
        let dir = tempfile::tempdir().unwrap();
        let meminfo = dir.path().join("meminfo");
        std::fs::write(&meminfo, MEMINFO_24G).unwrap();

        // Nothing there: unknown = unlimited.
        assert_eq!(read_memory_limit_at(dir.path(), &meminfo), None);

        // v2
        std::fs::write(dir.path().join("memory.max"), "max\n").unwrap();
        assert_eq!(read_memory_limit_at(dir.path(), &meminfo), None);
        std::fs::write(dir.path().join("memory.max"), "536870912\n").unwrap();
        assert_eq!(read_memory_limit_at(dir.path(), &meminfo), Some(512 << 20));

        // v1 wins when present
        std::fs::create_dir(dir.path().join("memory")).unwrap();
        std::fs::write(
            dir.path().join("memory/memory.limit_in_bytes"),
            "9223372036854771712\n",
        )
        .unwrap();
        assert_eq!(read_memory_limit_at(dir.path(), &meminfo), None);
        std::fs::write(
            dir.path().join("memory/memory.limit_in_bytes"),
            "1073741824\n",
        )
        .unwrap();
        assert_eq!(read_memory_limit_at(dir.path(), &meminfo), Some(1 << 30));
    }
}
