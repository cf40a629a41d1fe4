//! ActiveMQ's side of an active/standby pair on one shared data volume
//! (`Topology::SharedStorage`, Amazon MQ's ACTIVE_STANDBY_MULTI_AZ).
//!
//! Both nodes run the same broker (same `brokerName`) on the same KahaDB directory;
//! KahaDB's shared-file locker holds a POSIX lock on `kahadb/lock` (settings in
//! [`super::xml`]). The node that cannot get it logs, once,
//!
//! ```text
//! … | INFO  | Database /var/lib/activemq/kahadb/lock is locked by another server. This broker is now in slave mode waiting a lock to be acquired | org.apache.activemq.store.SharedFileLocker | main
//! ```
//!
//! and then waits, silently, retrying every `lockAcquireSleepInterval`, with none of its
//! transport connectors bound (its STOMP probe is refused). When it gets the lock it
//! opens the store (`Starting KahaDBStore`, `Opening MessageDatabase`, `KahaDB is
//! version 7`, `Recovering from the journal …`), starts
//! (`Apache ActiveMQ 5.17.6 (…) is starting`), binds its connectors and answers.
//! [`waits_for_lock`] reads that story from the current run's output.
//!
//! Everything the agent writes at a start is per container (the conf dir under `/etc`,
//! the internal user's secret under `/var/lib/berth-agent`, `/tmp`): nothing of the
//! agent's is on the shared volume, so two nodes cannot overwrite each other's files.
//! The agent only gives the volume to the `activemq` user ([`own_data_dir`]), in a way
//! that tolerates the other node's broker writing there meanwhile.

use std::os::unix::fs::{lchown, MetadataExt};
use std::path::Path;

use anyhow::Context;

use crate::fsutil::Owner;

/// What the shared-file locker logs when another broker holds the lock.
pub const LOCKED_BY_OTHER: &str = "is locked by another server";

/// Lines a broker logs only once it holds the store's lock.
pub const LOCK_HELD: &[&str] = &[
    "Starting KahaDBStore",
    "Opening MessageDatabase",
    "KahaDB is version",
    "Recovering from the journal",
    "Recovery replayed",
    ") is starting",
    ") started",
];

/// Whether the output of the current run (oldest first) says the broker waits for the
/// store's lock: it said the lock is held by another server, and nothing it logs only
/// with the lock came after that.
pub fn waits_for_lock(lines: &[String]) -> bool {
    lines
        .iter()
        .rev()
        .find_map(|l| {
            if l.contains(LOCKED_BY_OTHER) {
                Some(true)
            } else if LOCK_HELD.iter().any(|m| l.contains(m)) {
                Some(false)
            } else {
                None
            }
        })
        .unwrap_or(false)
}

/// Give `path` and everything under it to `owner` (the engine user). Entries that
/// already belong to it are not touched, and entries that vanish during the walk (the
/// other node's broker deletes journal files while it runs) are skipped: only a
/// failure on `path` itself is an error.
pub fn own_data_dir(path: &Path, owner: Owner) -> anyhow::Result<()> {
    let meta =
        std::fs::symlink_metadata(path).with_context(|| format!("reading {}", path.display()))?;
    own_entry(path, &meta, owner).with_context(|| format!("chown {}", path.display()))?;
    if meta.is_dir() {
        own_children(path, owner)?;
    }
    Ok(())
}

fn own_entry(path: &Path, meta: &std::fs::Metadata, owner: Owner) -> std::io::Result<()> {
    if meta.uid() == owner.uid && meta.gid() == owner.gid {
        return Ok(());
    }
    lchown(path, Some(owner.uid), Some(owner.gid))
}

fn own_children(dir: &Path, owner: Owner) -> anyhow::Result<()> {
    let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if gone(&e) => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) if gone(&e) => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
        };
        let path = entry.path();
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if gone(&e) => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        match own_entry(&path, &meta, owner) {
            Ok(()) => {}
            Err(e) if gone(&e) => continue,
            Err(e) => return Err(e).with_context(|| format!("chown {}", path.display())),
        }
        if meta.is_dir() {
            own_children(&path, owner)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(String::from).collect()
    }

    /// ActiveMQ 5.17.6 started second on a shared volume (abridged from a live run).
    const STANDBY: &str = "\
Loading message broker from: xbean:file:/etc/activemq/instances-enabled/berth/activemq.xml
2026-12-02 10:01:12,120 | INFO  | Refreshing org.apache.activemq.xbean.XBeanBrokerFactory$1@5a2e4553: startup date [Wed Dec 02 10:01:12 UTC 2026]; root of context hierarchy | org.apache.activemq.xbean.XBeanBrokerFactory$1 | main
2026-12-02 10:01:13,002 | INFO  | Using Persistence Adapter: KahaDBPersistenceAdapter[/var/lib/activemq/kahadb] | org.apache.activemq.broker.BrokerService | main
2026-12-02 10:01:13,002 | INFO  | Starting Persistence Adapter: KahaDBPersistenceAdapter[/var/lib/activemq/kahadb] | org.apache.activemq.broker.BrokerService | main
2026-12-02 10:01:13,010 | INFO  | Database /var/lib/activemq/kahadb/lock is locked by another server. This broker is now in slave mode waiting a lock to be acquired | org.apache.activemq.store.SharedFileLocker | main";

    /// … and what it logs once the active is gone.
    const TOOK_OVER: &str = "\
2026-12-02 10:05:40,212 | INFO  | Starting KahaDBStore | org.apache.activemq.store.kahadb.KahaDBStore | main
2026-12-02 10:05:40,216 | INFO  | Opening MessageDatabase | org.apache.activemq.store.kahadb.MessageDatabase | main
2026-12-02 10:05:40,331 | INFO  | KahaDB is version 7 | org.apache.activemq.store.kahadb.MessageDatabase | main
2026-12-02 10:05:40,350 | INFO  | Recovering from the journal @1:503 | org.apache.activemq.store.kahadb.MessageDatabase | main
2026-12-02 10:05:40,512 | INFO  | Apache ActiveMQ 5.17.6 (b-amq1, ID:node-1-40211-1764669672300-0:1) is starting | org.apache.activemq.broker.BrokerService | main";

    #[test]
    fn the_lock_line_makes_a_standby_until_the_store_opens() {
        let mut out = lines(STANDBY);
        assert!(waits_for_lock(&out));
        // whatever else it prints meanwhile (a JVM warning, say)
        out.push("OpenJDK 64-Bit Server VM warning: something harmless".into());
        assert!(waits_for_lock(&out));
        out.extend(lines(TOOK_OVER));
        assert!(!waits_for_lock(&out));
        // each line of the takeover is enough on its own
        for line in lines(TOOK_OVER) {
            let mut partial = lines(STANDBY);
            partial.push(line.clone());
            assert!(!waits_for_lock(&partial), "{line}");
        }
    }

    #[test]
    fn a_broker_that_never_saw_the_lock_taken_is_no_standby() {
        assert!(!waits_for_lock(&[]));
        let first = &lines(STANDBY)[..4];
        assert!(!waits_for_lock(first));
        let mut active = first.to_vec();
        active.extend(lines(TOOK_OVER));
        assert!(!waits_for_lock(&active));
    }

    #[test]
    fn the_data_dir_walk_gives_everything_to_the_owner() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("kahadb")).unwrap();
        std::fs::write(dir.path().join("kahadb/db-1.log"), "x").unwrap();
        std::os::unix::fs::symlink("/nonexistent", dir.path().join("dangling")).unwrap();
        own_data_dir(dir.path(), Owner::current()).unwrap();
        // a missing root is an error, a missing child is not
        assert!(own_data_dir(&dir.path().join("nope"), Owner::current()).is_err());
        own_children(&dir.path().join("nope"), Owner::current()).unwrap();
    }
}
