//! The container's cgroup files: its memory limit (below), and the counters behind
//! `GET /metrics` (CPU time and quota, memory working set, OOM kills; see
//! [`CgroupCounters`]).
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

/// The content of the cgroup v1 file `v1` under `root`, or else of the v2 file `v2`.
pub fn read_v1_or_v2(root: &Path, v1: &str, v2: &str) -> Option<String> {
    std::fs::read_to_string(root.join(v1))
        .or_else(|_| std::fs::read_to_string(root.join(v2)))
        .ok()
}

/// Read the memory limit under `root`, trying cgroup v1 first and then v2.
pub fn read_memory_limit_at(root: &Path, meminfo: &Path) -> Option<u64> {
    let raw = read_v1_or_v2(root, "memory/memory.limit_in_bytes", "memory.max")?;
    let host = std::fs::read_to_string(meminfo)
        .ok()
        .and_then(|m| parse_mem_total(&m));
    effective_limit(parse_limit(&raw), host)
}

/// The memory limit of the container we run in; `None` = unlimited or unknown.
pub fn read_memory_limit() -> Option<u64> {
    read_memory_limit_at(Path::new(CGROUP_ROOT), Path::new(MEMINFO))
}

/// The value of `key` in a flat-keyed cgroup file (`key value` per line, e.g.
/// `memory.stat`, `cpu.stat`, `memory.events`, v1 `memory.oom_control`).
pub fn keyed_value(content: &str, key: &str) -> Option<u64> {
    content.lines().find_map(|line| {
        let mut parts = line.split_whitespace();
        (parts.next()? == key).then_some(())?;
        parts.next()?.parse().ok()
    })
}

/// A CPU quota in cores from v1's `cfs_quota_us` and `cfs_period_us` (`-1` = none).
pub fn parse_v1_quota(quota_us: &str, period_us: &str) -> Option<f64> {
    let quota: i64 = quota_us.trim().parse().ok()?;
    let period: i64 = period_us.trim().parse().ok()?;
    (quota > 0 && period > 0).then(|| quota as f64 / period as f64)
}

/// A CPU quota in cores from v2's `cpu.max` (`max 100000` = none, `200000 100000` = 2).
pub fn parse_v2_quota(cpu_max: &str) -> Option<f64> {
    let mut parts = cpu_max.split_whitespace();
    let quota: i64 = parts.next()?.parse().ok()?;
    let period: i64 = parts.next().unwrap_or("100000").parse().ok()?;
    (quota > 0 && period > 0).then(|| quota as f64 / period as f64)
}

/// One reading of the container's cgroup counters (each `None` when unreadable).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CgroupCounters {
    /// CPU time used by the whole container since it started, nanoseconds.
    pub cpu_usage_ns: Option<u64>,
    /// The CPU quota in cores (`None`: no quota).
    pub cpu_quota_cores: Option<f64>,
    /// Memory usage without the inactive file cache (what `docker stats` and the OOM
    /// killer go by), bytes.
    pub memory_working_set: Option<u64>,
    /// Processes the kernel killed for memory in this cgroup.
    pub oom_kills: Option<u64>,
}

/// Working set from a usage figure and `memory.stat`'s inactive file cache.
pub fn working_set(usage: &str, stat: &str, inactive_key: &str) -> Option<u64> {
    let usage: u64 = usage.trim().parse().ok()?;
    let inactive = keyed_value(stat, inactive_key).unwrap_or(0);
    Some(usage.saturating_sub(inactive))
}

/// Read [`CgroupCounters`] under `root`: cgroup v1 (`cpuacct/`, `cpu/`, `memory/`)
/// when its memory controller is there, else v2 (unified files at `root`).
pub fn read_counters_at(root: &Path) -> CgroupCounters {
    let read = |rel: &str| std::fs::read_to_string(root.join(rel)).ok();
    if root.join("memory/memory.usage_in_bytes").exists() {
        CgroupCounters {
            cpu_usage_ns: read("cpuacct/cpuacct.usage").and_then(|s| s.trim().parse().ok()),
            cpu_quota_cores: read("cpu/cpu.cfs_quota_us")
                .zip(read("cpu/cpu.cfs_period_us"))
                .and_then(|(q, p)| parse_v1_quota(&q, &p)),
            memory_working_set: read("memory/memory.usage_in_bytes")
                .zip(read("memory/memory.stat"))
                .and_then(|(u, s)| working_set(&u, &s, "total_inactive_file")),
            oom_kills: read("memory/memory.oom_control").and_then(|s| keyed_value(&s, "oom_kill")),
        }
    } else {
        CgroupCounters {
            cpu_usage_ns: read("cpu.stat")
                .and_then(|s| keyed_value(&s, "usage_usec"))
                .map(|us| us.saturating_mul(1000)),
            cpu_quota_cores: read("cpu.max").and_then(|s| parse_v2_quota(&s)),
            memory_working_set: read("memory.current")
                .zip(read("memory.stat"))
                .and_then(|(u, s)| working_set(&u, &s, "inactive_file")),
            oom_kills: read("memory.events").and_then(|s| keyed_value(&s, "oom_kill")),
        }
    }
}

/// [`read_counters_at`] of the container we run in.
pub fn read_counters() -> CgroupCounters {
    read_counters_at(Path::new(CGROUP_ROOT))
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

    #[test]
    fn reads_v1_counters() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in ["cpuacct", "cpu", "memory"] {
            std::fs::create_dir(root.join(d)).unwrap();
        }
        std::fs::write(root.join("cpuacct/cpuacct.usage"), "123456789\n").unwrap();
        std::fs::write(root.join("cpu/cpu.cfs_quota_us"), "150000\n").unwrap();
        std::fs::write(root.join("cpu/cpu.cfs_period_us"), "100000\n").unwrap();
        std::fs::write(root.join("memory/memory.usage_in_bytes"), "1000000\n").unwrap();
        std::fs::write(
            root.join("memory/memory.stat"),
            "cache 5\ninactive_file 7\ntotal_inactive_file 300000\n",
        )
        .unwrap();
        std::fs::write(
            root.join("memory/memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        )
        .unwrap();
        let c = read_counters_at(root);
        assert_eq!(c.cpu_usage_ns, Some(123_456_789));
        assert_eq!(c.cpu_quota_cores, Some(1.5));
        assert_eq!(c.memory_working_set, Some(700_000));
        assert_eq!(c.oom_kills, Some(2));
        // no quota
        std::fs::write(root.join("cpu/cpu.cfs_quota_us"), "-1\n").unwrap();
        assert_eq!(read_counters_at(root).cpu_quota_cores, None);
    }

    #[test]
    fn reads_v2_counters() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(
            root.join("cpu.stat"),
            "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n",
        )
        .unwrap();
        std::fs::write(root.join("cpu.max"), "max 100000\n").unwrap();
        std::fs::write(root.join("memory.current"), "4096\n").unwrap();
        std::fs::write(root.join("memory.stat"), "anon 1\ninactive_file 1024\n").unwrap();
        std::fs::write(
            root.join("memory.events"),
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
        )
        .unwrap();
        let c = read_counters_at(root);
        assert_eq!(c.cpu_usage_ns, Some(2_500_000));
        assert_eq!(c.cpu_quota_cores, None);
        assert_eq!(c.memory_working_set, Some(3072));
        assert_eq!(c.oom_kills, Some(1));
        std::fs::write(root.join("cpu.max"), "200000 100000\n").unwrap();
        assert_eq!(read_counters_at(root).cpu_quota_cores, Some(2.0));
        // an empty directory: nothing known, nothing panics
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(read_counters_at(empty.path()), CgroupCounters::default());
        assert_eq!(parse_v2_quota("garbage"), None);
        assert_eq!(keyed_value("oom_kill x\n", "oom_kill"), None);
    }
}
