//! The log collector: every `logs_interval_ms`, every node of every broker with
//! containers ([`broker_targets`] with [`Which::WithContainers`]) is asked for the lines
//! of each stream its broker turned on (`logs.general`, `logs.audit`), after the stored
//! cursor, page by page until caught up or [`LogCollectorConfig::pages_per_pass`] pages
//! were read. Each page and its cursor are stored in one transaction
//! ([`DataStore::logs_store_page`]), so a control plane that stops at any point resumes
//! where it stood: no gap, no line twice.
//!
//! The agent's numbering (see `agent_contract::logs`): a page under another `epoch` than
//! the stored one means the agent lost its store; collection starts from 0 under the new
//! epoch (the lines already stored stay). Lines the agent's size cap dropped before they
//! were collected (its oldest kept line is past the cursor + 1) are counted on the cursor
//! (`droppedLines` in the API). A node that does not answer is skipped for this pass,
//! never the others; at most [`LogCollectorConfig::concurrency`] nodes are asked at once.
//!
//! Retention ([`LogCollector::prune`]): lines older than `logs_max_age_hours` and each
//! broker's lines beyond its newest `logs_max_lines` go, at most every
//! [`PRUNE_EVERY`] while the collector runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_contract::logs::{LogPage, LogStream, MAX_LOG_LINE, MAX_LOG_PAGE};
use chrono::{DateTime, Utc};
use futures_util::stream::{self, StreamExt};
use tokio_util::sync::CancellationToken;

use super::targets::{broker_targets, NodeTarget, Which};
use crate::agent_client::AgentClient;
use crate::app::AppContext;
use crate::crypto::SecretBox;
use crate::db::logs::{LogPageWrite, NewLogLine};
use crate::db::DataStore;
use crate::error::Error;

/// How often retention runs while the collector runs.
pub const PRUNE_EVERY: Duration = Duration::from_secs(600);

#[derive(Debug, Clone)]
pub struct LogCollectorConfig {
    /// Time between passes (the loop of [`LogCollector::run`]).
    pub interval: Duration,
    /// Lines older than this are removed.
    pub max_age: Duration,
    /// Most lines kept per broker.
    pub max_lines: u64,
    /// Most pages read from one stream of one node in one pass.
    pub pages_per_pass: usize,
    /// Lines asked for per page (at most [`MAX_LOG_PAGE`]).
    pub page_size: usize,
    /// Nodes asked at once.
    pub concurrency: usize,
    /// Host the agents' ports are published on.
    pub publish_host: String,
}

impl LogCollectorConfig {
    /// The collector of `settings` (interval 0 there means: do not run it).
    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        Self {
            interval: Duration::from_millis(settings.logs_interval_ms),
            max_age: Duration::from_secs(settings.logs_max_age_hours.saturating_mul(3600)),
            max_lines: settings.logs_max_lines,
            pages_per_pass: 5,
            page_size: MAX_LOG_PAGE,
            concurrency: 4,
            publish_host: settings.publish_host.clone(),
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Node streams asked.
    pub streams: usize,
    /// Lines stored.
    pub lines: u64,
    /// Node streams whose agent did not answer usably, or whose page was not stored.
    pub failures: usize,
}

pub struct LogCollector {
    store: DataStore,
    secrets: SecretBox,
    agent: Arc<dyn AgentClient>,
    config: LogCollectorConfig,
}

impl LogCollector {
    pub fn new(
        store: DataStore,
        secrets: SecretBox,
        agent: Arc<dyn AgentClient>,
        config: LogCollectorConfig,
    ) -> Self {
        Self {
            store,
            secrets,
            agent,
            config,
        }
    }

    /// A collector on the application's store, secrets and agent client.
    pub fn for_context(ctx: &AppContext, config: LogCollectorConfig) -> Self {
        Self::new(
            ctx.store.clone(),
            ctx.secrets.clone(),
            ctx.agent.0.clone(),
            config,
        )
    }

    /// Passes every `interval` (and retention every [`PRUNE_EVERY`]) until cancelled.
    pub async fn run(self, cancel: CancellationToken) {
        let mut last_prune: Option<Instant> = None;
        loop {
            let report = self.pass().await;
            if report.failures > 0 {
                tracing::debug!(?report, "log collection pass had failures");
            }
            if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
                match self.prune().await {
                    Ok(n) if n > 0 => tracing::info!(lines = n, "log retention removed lines"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "log retention failed"),
                }
                last_prune = Some(Instant::now());
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(self.config.interval) => {}
            }
        }
        tracing::info!("log collector stopped");
    }

    /// Retention: see the module docs. Returns how many lines went.
    pub async fn prune(&self) -> Result<u64, Error> {
        let max_age =
            chrono::Duration::from_std(self.config.max_age).unwrap_or(chrono::Duration::MAX);
        let older_than = Utc::now()
            .checked_sub_signed(max_age)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let max_lines = i64::try_from(self.config.max_lines).unwrap_or(i64::MAX);
        self.store.logs_prune(older_than, max_lines).await
    }

    /// One collection pass over every node.
    pub async fn pass(&self) -> PassReport {
        let mut report = PassReport::default();
        let (enabled, targets) = match self.work().await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "log collection: listing targets failed");
                report.failures += 1;
                return report;
            }
        };
        let mut jobs = Vec::new();
        for t in targets {
            let Some((_, general, audit)) =
                enabled.iter().find(|(id, _, _)| id == t.broker_id.as_str())
            else {
                continue;
            };
            let streams: Vec<LogStream> =
                [(LogStream::General, *general), (LogStream::Audit, *audit)]
                    .into_iter()
                    .filter_map(|(s, on)| on.then_some(s))
                    .collect();
            jobs.push((t, streams));
        }
        let mut results = stream::iter(jobs)
            .map(|(t, streams)| async move {
                let mut r = PassReport::default();
                for s in streams {
                    r.streams += 1;
                    match self.collect(&t, s).await {
                        Ok(n) => r.lines += n,
                        Err(e) => {
                            r.failures += 1;
                            tracing::debug!(broker = %t.broker_id, node = t.node, stream = s.as_str(), error = %e, "log collection failed");
                        }
                    }
                }
                r
            })
            .buffer_unordered(self.config.concurrency.max(1));
        while let Some(r) = results.next().await {
            report.streams += r.streams;
            report.lines += r.lines;
            report.failures += r.failures;
        }
        report
    }

    async fn work(&self) -> Result<(Vec<(String, bool, bool)>, Vec<NodeTarget>), Error> {
        let enabled = self.store.logs_enabled_streams().await?;
        if enabled.is_empty() {
            return Ok((enabled, Vec::new()));
        }
        let targets = broker_targets(
            &self.store,
            &self.secrets,
            &self.config.publish_host,
            Which::WithContainers,
        )
        .await?;
        Ok((enabled, targets))
    }

    /// Collects one stream of one node until caught up or out of pages; the lines stored.
    async fn collect(&self, t: &NodeTarget, stream: LogStream) -> anyhow::Result<u64> {
        let broker = t.broker_id.as_str();
        let node = i32::try_from(t.node)?;
        let limit = self.config.page_size.clamp(1, MAX_LOG_PAGE);
        let mut stored = 0;
        let mut pages = 0;
        while pages < self.config.pages_per_pass {
            let cursor = self
                .store
                .logs_cursor(broker, node, stream.as_str())
                .await?;
            let after = cursor.as_ref().map_or(0, |c| c.last_seq);
            let mut page = self.fetch(t, stream, after, limit).await?;
            pages += 1;
            let restart = cursor.as_ref().is_some_and(|c| c.epoch != page.epoch);
            if restart && after > 0 {
                // The agent numbers from scratch: read its store from the start.
                if pages >= self.config.pages_per_pass {
                    break;
                }
                page = self.fetch(t, stream, 0, limit).await?;
                pages += 1;
            }
            let from = if restart { 0 } else { after };
            let plan = plan_page(from, &page);
            let lines = plan.lines.len() as u64;
            let write = LogPageWrite {
                broker_id: broker,
                node,
                stream: stream.as_str(),
                expected: cursor.as_ref().map(|c| (c.epoch.as_str(), c.last_seq)),
                epoch: &page.epoch,
                last_seq: plan.last_seq,
                dropped: plan.dropped,
                lines: &plan.lines,
            };
            let moved = cursor.is_none() || plan.last_seq != after || restart || plan.dropped > 0;
            if moved && !self.store.logs_store_page(&write).await? {
                anyhow::bail!("the cursor moved meanwhile (another collector?)");
            }
            stored += lines;
            if page.lines.len() < limit || plan.last_seq >= to_i64(page.last_seq) {
                break;
            }
        }
        Ok(stored)
    }

    async fn fetch(
        &self,
        t: &NodeTarget,
        stream: LogStream,
        after: i64,
        limit: usize,
    ) -> anyhow::Result<LogPage> {
        let after = u64::try_from(after).unwrap_or(0);
        Ok(self
            .agent
            .logs(&t.base, &t.token, stream, after, limit)
            .await?)
    }
}

/// What to store of a page read after `after`.
#[derive(Debug)]
struct PagePlan {
    lines: Vec<NewLogLine>,
    last_seq: i64,
    dropped: i64,
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The lines of `page` past `after` (strictly ascending; anything else the agent sent is
/// ignored), the cursor after them, and how many lines between `after` and the oldest one
/// still kept are gone.
fn plan_page(after: i64, page: &LogPage) -> PagePlan {
    let mut last = after;
    let mut lines = Vec::with_capacity(page.lines.len());
    for l in &page.lines {
        let seq = to_i64(l.seq);
        if seq <= last {
            continue;
        }
        last = seq;
        lines.push(NewLogLine {
            seq,
            ts: DateTime::from_timestamp_millis(l.timestamp_ms).unwrap_or_else(Utc::now),
            message: clean(&l.message),
        });
    }
    let oldest_kept = lines
        .first()
        .map(|l| l.seq)
        .or((page.first_seq > 0).then(|| to_i64(page.first_seq)));
    let dropped = oldest_kept.map_or(0, |first| (first - after - 1).max(0));
    // A store whose oldest line is past the cursor: the cursor moves up to it.
    let last_seq = match oldest_kept {
        Some(first) if lines.is_empty() && first > after + 1 => first - 1,
        _ => last,
    };
    PagePlan {
        lines,
        last_seq,
        dropped,
    }
}

/// A line as it can be stored: no NUL (Postgres text refuses it), at most
/// [`MAX_LOG_LINE`] bytes.
fn clean(message: &str) -> String {
    let mut s = message.replace('\0', "\u{FFFD}");
    if s.len() > MAX_LOG_LINE {
        let mut cut = MAX_LOG_LINE;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_contract::logs::LogLine;

    fn page(first_seq: u64, seqs: &[u64]) -> LogPage {
        LogPage {
            stream: LogStream::General,
            epoch: "e1".into(),
            first_seq,
            last_seq: seqs.last().copied().unwrap_or(first_seq),
            lines: seqs
                .iter()
                .map(|&seq| LogLine {
                    seq,
                    timestamp_ms: 1_700_000_000_000,
                    message: format!("line {seq}"),
                })
                .collect(),
        }
    }

    #[test]
    fn a_page_after_the_cursor_moves_it_without_drops() {
        let p = plan_page(3, &page(1, &[4, 5, 6]));
        assert_eq!(p.last_seq, 6);
        assert_eq!(p.dropped, 0);
        assert_eq!(p.lines.iter().map(|l| l.seq).collect::<Vec<_>>(), [4, 5, 6]);
    }

    #[test]
    fn lines_the_cap_dropped_are_counted() {
        let p = plan_page(3, &page(10, &[10, 11]));
        assert_eq!((p.last_seq, p.dropped), (11, 6));
    }

    #[test]
    fn repeated_or_backward_lines_are_ignored() {
        let p = plan_page(5, &page(1, &[4, 5, 6, 6, 7]));
        assert_eq!(p.lines.iter().map(|l| l.seq).collect::<Vec<_>>(), [6, 7]);
        assert_eq!(p.last_seq, 7);
    }

    #[test]
    fn an_empty_page_keeps_the_cursor() {
        let p = plan_page(7, &page(1, &[]));
        assert_eq!((p.last_seq, p.dropped, p.lines.len()), (7, 0, 0));
        let empty_store = plan_page(0, &page(0, &[]));
        assert_eq!((empty_store.last_seq, empty_store.dropped), (0, 0));
    }

    #[test]
    fn lines_are_stored_without_nul_and_bounded() {
        assert_eq!(clean("a\0b"), "a\u{FFFD}b");
        let long = "é".repeat(MAX_LOG_LINE);
        let c = clean(&long);
        assert!(c.len() <= MAX_LOG_LINE && c.is_char_boundary(c.len()));
    }
}
