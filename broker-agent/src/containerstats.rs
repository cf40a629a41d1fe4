//! The container half of `GET /metrics`: CPU, memory, disk, network and OOM kills of
//! the whole container (engine, agent and every helper process), for both engines.
//!
//! - CPU: the cgroup's CPU time ([`crate::cgroup::CgroupCounters`]) against the previous
//!   request's reading, as a percentage of the CPU quota (no quota: of the host's cores),
//!   so the first request after a start has no CPU sample. The metric's name is the
//!   engine's ([`crate::engine::EngineDriver::cpu_metric_name`]).
//! - Memory: the working set (usage without the inactive file cache) and the limit.
//! - Disk: used and free bytes of the file system holding the engine's data directory
//!   (`statvfs`).
//! - Network: bytes received and sent on every interface but `lo` since the container
//!   started (`/proc/net/dev`: the container has its own network namespace).
//! - `OomKills`: the cgroup's OOM kill counter.
//!
//! Everything is read on request; a file that cannot be read just leaves its sample out.

use std::path::{Path, PathBuf};
use std::time::Instant;

use agent_contract::metrics::{names, Sample, Unit};

use crate::cgroup::{self, CgroupCounters};

/// Where the container's files are (overridable for tests).
#[derive(Debug, Clone)]
pub struct ContainerPaths {
    pub cgroup_root: PathBuf,
    pub meminfo: PathBuf,
    pub net_dev: PathBuf,
}

impl Default for ContainerPaths {
    fn default() -> Self {
        ContainerPaths {
            cgroup_root: cgroup::CGROUP_ROOT.into(),
            meminfo: cgroup::MEMINFO.into(),
            net_dev: "/proc/net/dev".into(),
        }
    }
}

/// Bytes received and sent on every interface but loopback, from `/proc/net/dev`.
pub fn parse_net_dev(content: &str) -> Option<(u64, u64)> {
    use procfs_core::FromRead;
    let status = procfs_core::net::InterfaceDeviceStatus::from_read(content.as_bytes()).ok()?;
    if status.0.is_empty() {
        return None;
    }
    Some(
        status
            .0
            .values()
            .filter(|d| d.name != "lo")
            .fold((0u64, 0u64), |(rx, tx), d| {
                (
                    rx.saturating_add(d.recv_bytes),
                    tx.saturating_add(d.sent_bytes),
                )
            }),
    )
}

/// Used and free bytes of the file system holding `path` (free = available to
/// unprivileged users, as `df` shows).
pub fn disk_usage(path: &Path) -> Option<(u64, u64)> {
    let st = nix::sys::statvfs::statvfs(path).ok()?;
    let frag = st.fragment_size() as u64;
    let total = (st.blocks() as u64).saturating_mul(frag);
    let free = (st.blocks_free() as u64).saturating_mul(frag);
    let avail = (st.blocks_available() as u64).saturating_mul(frag);
    Some((total.saturating_sub(free), avail))
}

/// CPU percentage between two readings of the CPU time (ns) `elapsed` apart, of
/// `cores` cores.
pub fn cpu_percent(before_ns: u64, after_ns: u64, elapsed_secs: f64, cores: f64) -> Option<f64> {
    if elapsed_secs <= 0.0 || cores <= 0.0 || after_ns < before_ns {
        return None;
    }
    let used = (after_ns - before_ns) as f64 / 1e9;
    Some((used / elapsed_secs / cores * 100.0).clamp(0.0, 100.0))
}

/// The previous request's CPU reading.
#[derive(Debug, Clone, Copy)]
struct CpuReading {
    usage_ns: u64,
    at: Instant,
}

/// Samples the container on request, keeping the last CPU reading for the next one.
#[derive(Debug, Default)]
pub struct ContainerSampler {
    paths: ContainerPaths,
    previous: std::sync::Mutex<Option<CpuReading>>,
}

impl ContainerSampler {
    pub fn new(paths: ContainerPaths) -> Self {
        ContainerSampler {
            paths,
            previous: std::sync::Mutex::new(None),
        }
    }

    /// The cgroup counters right now.
    pub fn counters(&self) -> CgroupCounters {
        cgroup::read_counters_at(&self.paths.cgroup_root)
    }

    /// The container's samples; `cpu_name` names the CPU metric, `data_dir` is the
    /// engine's data directory.
    pub fn sample(&self, cpu_name: &str, data_dir: &Path) -> Vec<Sample> {
        let now = Instant::now();
        let c = self.counters();
        let mut out = Vec::new();
        if let Some(usage_ns) = c.cpu_usage_ns {
            let cores = c.cpu_quota_cores.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64)
            });
            let mut previous = self.previous.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(p) = *previous {
                let elapsed = now.saturating_duration_since(p.at).as_secs_f64();
                if let Some(pct) = cpu_percent(p.usage_ns, usage_ns, elapsed, cores) {
                    out.push(Sample::new(cpu_name, pct, Unit::Percent));
                }
            }
            *previous = Some(CpuReading { usage_ns, at: now });
        }
        if let Some(ws) = c.memory_working_set {
            out.push(Sample::new(names::MEMORY_USED, ws as f64, Unit::Bytes));
        }
        if let Some(limit) =
            cgroup::read_memory_limit_at(&self.paths.cgroup_root, &self.paths.meminfo)
        {
            out.push(Sample::new(names::MEMORY_LIMIT, limit as f64, Unit::Bytes));
        }
        if let Some((used, free)) = disk_usage(data_dir) {
            out.push(Sample::new(names::DISK_USED, used as f64, Unit::Bytes));
            out.push(Sample::new(names::DISK_FREE, free as f64, Unit::Bytes));
        }
        if let Some((rx, tx)) = std::fs::read_to_string(&self.paths.net_dev)
            .ok()
            .and_then(|s| parse_net_dev(&s))
        {
            out.push(Sample::new(names::NETWORK_IN, rx as f64, Unit::Bytes));
            out.push(Sample::new(names::NETWORK_OUT, tx as f64, Unit::Bytes));
        }
        if let Some(n) = c.oom_kills {
            out.push(Sample::new(names::OOM_KILLS, n as f64, Unit::Count));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET_DEV: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:  999999      10    0    0    0     0          0         0   999999      10    0    0    0     0       0          0
  eth0:    1500      12    0    0    0     0          0         0      700       9    0    0    0     0       0          0
  eth1:      10       1    0    0    0     0          0         0       20       1    0    0    0     0       0          0
";

    #[test]
    fn net_dev_sums_all_but_loopback() {
        assert_eq!(parse_net_dev(NET_DEV), Some((1510, 720)));
        assert_eq!(parse_net_dev(""), None);
        assert_eq!(parse_net_dev("h1\nh2\nx: 1 2\n"), None);
        // only loopback: zeros, but known
        let lo_only: String = NET_DEV.lines().take(3).map(|l| format!("{l}\n")).collect();
        assert_eq!(parse_net_dev(&lo_only), Some((0, 0)));
    }

    #[test]
    fn cpu_percent_of_the_quota() {
        // 0.5 s of CPU in 1 s on a 2-core quota: 25 %
        assert_eq!(cpu_percent(0, 500_000_000, 1.0, 2.0), Some(25.0));
        assert_eq!(cpu_percent(0, 5_000_000_000, 1.0, 2.0), Some(100.0));
        assert_eq!(cpu_percent(10, 5, 1.0, 2.0), None);
        assert_eq!(cpu_percent(0, 5, 0.0, 2.0), None);
    }

    #[test]
    fn samples_a_fake_container() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("cg");
        std::fs::create_dir_all(root.join("memory")).unwrap();
        std::fs::create_dir_all(root.join("cpuacct")).unwrap();
        std::fs::write(root.join("memory/memory.usage_in_bytes"), "2048").unwrap();
        std::fs::write(root.join("memory/memory.stat"), "total_inactive_file 48").unwrap();
        std::fs::write(root.join("memory/memory.limit_in_bytes"), "1073741824").unwrap();
        std::fs::write(root.join("memory/memory.oom_control"), "oom_kill 0").unwrap();
        std::fs::write(root.join("cpuacct/cpuacct.usage"), "1000").unwrap();
        std::fs::write(dir.path().join("net"), NET_DEV).unwrap();
        let sampler = ContainerSampler::new(ContainerPaths {
            cgroup_root: root.clone(),
            meminfo: dir.path().join("no-meminfo"),
            net_dev: dir.path().join("net"),
        });
        let find = |s: &[Sample], n: &str| s.iter().find(|x| x.name == n).map(|x| x.value);
        let first = sampler.sample(names::CPU_UTILIZATION, dir.path());
        assert_eq!(find(&first, names::CPU_UTILIZATION), None, "no delta yet");
        assert_eq!(find(&first, names::MEMORY_USED), Some(2000.0));
        assert_eq!(find(&first, names::MEMORY_LIMIT), Some(1073741824.0));
        assert_eq!(find(&first, names::NETWORK_IN), Some(1510.0));
        assert_eq!(find(&first, names::OOM_KILLS), Some(0.0));
        let used = find(&first, names::DISK_USED).unwrap();
        let free = find(&first, names::DISK_FREE).unwrap();
        assert!(used > 0.0 && free > 0.0);
        std::fs::write(root.join("cpuacct/cpuacct.usage"), "2000").unwrap();
        let second = sampler.sample(names::SYSTEM_CPU_UTILIZATION, dir.path());
        let cpu = find(&second, names::SYSTEM_CPU_UTILIZATION).unwrap();
        assert!((0.0..=100.0).contains(&cpu), "{cpu}");
    }
}
