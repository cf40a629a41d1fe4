//! In-memory read caches of hot rows, kept exact by Postgres change notifications.
//!
//! Every signed request needs its access key; reading it from Postgres on each request
//! was a third of DescribeBroker's cost. The rules that keep a cached row from ever
//! outliving a change:
//!
//! - Triggers (migration 0015) `pg_notify` every change of a cached table inside the
//!   writing transaction, so every writer invalidates: this process, the `berth` CLI,
//!   a manual `UPDATE`.
//! - The [`ChangeFeed`] task LISTENs on its own connection. Until it listens, and from
//!   the moment that connection fails until it listens again, the caches are bypassed
//!   (nothing is served from them, nothing is stored) and they are emptied on every
//!   (re)connect, since notifications may have been missed meanwhile.
//! - A row read from the database is stored only if no invalidation happened since the
//!   read began (a generation counter), so a read racing a change never stores the old
//!   row after the change's notification was handled.
//! - Writes through this process invalidate synchronously as well, so a caller reads
//!   its own write at once, before the notification comes back.
//! - Entries also expire after [`MAX_AGE`], a bound on staleness should everything
//!   above fail.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

use super::account::AccessKeyRow;
use super::model::BrokerBundle;
use super::DataStore;

/// Channel of access-key changes (payload: the key id).
pub const ACCESS_KEYS_CHANNEL: &str = "berth_access_keys";
/// Channel of changes to a broker's row, users, ports or nodes (payload: broker id).
pub const BROKERS_CHANNEL: &str = "berth_brokers";
/// Longest time an entry is served without being read again.
pub const MAX_AGE: Duration = Duration::from_secs(60);
/// More entries than this and a cache starts over (bounds memory under key spraying).
const MAX_ENTRIES: usize = 10_000;
/// How often a key's last use is written.
pub const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// Rows by id, served only while the change feed listens (see the module docs).
#[derive(Debug)]
pub struct Cache<V> {
    live: AtomicBool,
    generation: AtomicU64,
    entries: RwLock<HashMap<String, (Instant, V)>>,
}

impl<V> Default for Cache<V> {
    fn default() -> Self {
        Self {
            live: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            entries: RwLock::new(HashMap::new()),
        }
    }
}

impl<V: Clone> Cache<V> {
    /// The cached value of `id`, if the cache is live and holds a fresh one.
    pub fn get(&self, id: &str) -> Option<V> {
        if !self.live.load(Ordering::Acquire) {
            return None;
        }
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries
            .get(id)
            .filter(|(at, _)| at.elapsed() < MAX_AGE)
            .map(|(_, v)| v.clone())
    }

    /// The generation to pass to [`put`](Self::put) for a read starting now.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Stores `value` of `id`, read from the database by a read that began at
    /// `generation`, unless the cache is not live or anything was invalidated since.
    pub fn put(&self, generation: u64, id: &str, value: V) {
        if !self.live.load(Ordering::Acquire) {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        // Checked under the write lock: an invalidation bumps the generation before it
        // takes the lock to remove, so a stale read can't slip in after the removal.
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(id.to_owned(), (Instant::now(), value));
    }

    /// Forgets `id`.
    pub fn invalidate(&self, id: &str) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// Forgets every entry.
    pub fn invalidate_all(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    fn set_live(&self, live: bool) {
        if !live {
            self.live.store(false, Ordering::Release);
        }
        self.invalidate_all();
        if live {
            self.live.store(true, Ordering::Release);
        }
    }
}

/// When each access key's last use was written by this process.
#[derive(Debug, Default)]
pub struct Touches(Mutex<HashMap<String, Instant>>);

impl Touches {
    /// True when `id`'s last use should be written now (at most every
    /// [`TOUCH_EVERY`] per key from this process); records the write.
    pub fn due(&self, id: &str) -> bool {
        let mut touched = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match touched.get(id) {
            Some(at) if now.duration_since(*at) < TOUCH_EVERY => false,
            _ => {
                if touched.len() >= MAX_ENTRIES {
                    touched.clear();
                }
                touched.insert(id.to_owned(), now);
                true
            }
        }
    }
}

/// The task that LISTENs for changes and invalidates the caches; see the module docs.
pub struct ChangeFeed {
    store: DataStore,
}

impl ChangeFeed {
    pub fn new(store: DataStore) -> Self {
        Self { store }
    }

    /// Runs until `cancel`; reconnects with backoff when the connection fails.
    pub async fn run(self, cancel: CancellationToken) {
        let caches = self.store.caches();
        let mut backoff = Duration::from_millis(100);
        loop {
            let connected = tokio::select! {
                _ = cancel.cancelled() => break,
                l = listen(&self.store) => l,
            };
            match connected {
                Ok(mut listener) => {
                    caches.set_live(true);
                    backoff = Duration::from_millis(100);
                    tracing::debug!("change feed listening");
                    loop {
                        let next = tokio::select! {
                            _ = cancel.cancelled() => {
                                caches.set_live(false);
                                return;
                            }
                            n = listener.try_recv() => n,
                        };
                        match next {
                            Ok(Some(n)) if n.channel() == ACCESS_KEYS_CHANNEL => {
                                caches.keys.invalidate_all()
                            }
                            Ok(Some(n)) if n.channel() == BROKERS_CHANNEL => {
                                caches.brokers.invalidate(n.payload())
                            }
                            Ok(Some(_)) => {}
                            Ok(None) => {
                                tracing::warn!(
                                    "change feed connection lost; caches bypassed until it is back"
                                );
                                break;
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "change feed failed; caches bypassed until it is back");
                                break;
                            }
                        }
                    }
                    caches.set_live(false);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "change feed cannot listen; caches bypassed");
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        caches.set_live(false);
    }
}

async fn listen(store: &DataStore) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(store.pool()).await?;
    listener
        .listen_all([ACCESS_KEYS_CHANNEL, BROKERS_CHANNEL])
        .await?;
    Ok(listener)
}

/// Every cache of a [`DataStore`].
#[derive(Debug, Default)]
pub struct Caches {
    /// Access keys by id, for SigV4 verification.
    pub keys: Cache<AccessKeyRow>,
    /// Throttle of the access keys' last-use writes.
    pub touches: Touches,
    /// A broker with its users, ports and nodes, by broker id (DescribeBroker).
    pub brokers: Cache<BrokerBundle>,
}

impl Caches {
    fn set_live(&self, live: bool) {
        self.keys.set_live(live);
        self.brokers.set_live(live);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, active: bool) -> AccessKeyRow {
        AccessKeyRow {
            access_key_id: id.into(),
            account_id: "000000000000".into(),
            secret_enc: vec![1, 2, 3],
            role: "admin".into(),
            active,
        }
    }

    #[test]
    fn nothing_is_served_or_stored_until_live() {
        let c = Cache::<AccessKeyRow>::default();
        c.put(c.generation(), "AK", row("AK", true));
        assert!(c.get("AK").is_none());
        c.set_live(true);
        assert!(
            c.get("AK").is_none(),
            "the store before going live was dropped"
        );
        c.put(c.generation(), "AK", row("AK", true));
        assert!(c.get("AK").unwrap().active);
        c.set_live(false);
        assert!(c.get("AK").is_none());
    }

    #[test]
    fn a_read_that_raced_an_invalidation_is_not_stored() {
        let c = Cache::<AccessKeyRow>::default();
        c.set_live(true);
        let before = c.generation();
        c.invalidate("OTHER");
        c.put(before, "AK", row("AK", true));
        assert!(c.get("AK").is_none());
        c.put(c.generation(), "AK", row("AK", false));
        c.put(c.generation(), "BK", row("BK", true));
        assert!(!c.get("AK").unwrap().active);
        c.invalidate("AK");
        assert!(c.get("AK").is_none());
        assert!(c.get("BK").is_some());
        c.invalidate_all();
        assert!(c.get("BK").is_none());
    }

    #[test]
    fn touches_are_spaced() {
        let t = Touches::default();
        assert!(t.due("AK"));
        assert!(!t.due("AK"));
        assert!(t.due("OTHER"));
    }
}
