//! Collected engine log lines and the per-node, per-stream collection cursors.
//!
//! [`DataStore::logs_store_page`] stores a page of lines and moves its cursor in one
//! transaction, and only if the cursor is still where the collector read it (a second
//! control plane on the same database collecting the same node stores nothing twice).
//! Lines of one broker are written under a transaction-scoped advisory lock, so their
//! `id`s grow in commit order and a reader polling "lines after id X" never misses one.

use chrono::{DateTime, Utc};

use super::DataStore;
use crate::error::{Error, ResultExt};

/// Where collection of one stream of one node stands.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LogCursorRow {
    pub broker_id: String,
    pub node: i32,
    pub stream: String,
    pub epoch: String,
    pub last_seq: i64,
    pub dropped_lines: i64,
    pub collected_at: DateTime<Utc>,
}

/// A line to store.
#[derive(Debug, Clone)]
pub struct NewLogLine {
    pub seq: i64,
    pub ts: DateTime<Utc>,
    pub message: String,
}

/// What the collector read a page with, and what to store.
#[derive(Debug, Clone)]
pub struct LogPageWrite<'a> {
    pub broker_id: &'a str,
    pub node: i32,
    pub stream: &'a str,
    /// The cursor as the collector read it (`None`: no cursor yet).
    pub expected: Option<(&'a str, i64)>,
    /// The page's numbering.
    pub epoch: &'a str,
    /// The cursor after this page.
    pub last_seq: i64,
    /// Lines the agent no longer had (added to the cursor's counter).
    pub dropped: i64,
    /// Ascending by `seq`.
    pub lines: &'a [NewLogLine],
}

/// A stored line.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LogLineRow {
    pub id: i64,
    pub node: i32,
    pub stream: String,
    pub seq: i64,
    pub ts: DateTime<Utc>,
    pub message: String,
}

/// Which lines a search returns.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub stream: Option<String>,
    pub node: Option<i32>,
    /// A plain substring, matched case-insensitively.
    pub contains: Option<String>,
    pub start: Option<DateTime<Utc>>,
    /// Exclusive.
    pub end: Option<DateTime<Utc>>,
}

/// Which end of the log a search reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogDirection {
    /// Newest first, lines with an id below this one (`None`: from the newest).
    Backward(Option<i64>),
    /// Oldest first, lines with an id above this one.
    Forward(i64),
}

/// `s` as an ILIKE pattern matching it anywhere, with `\`, `%` and `_` taken literally.
pub fn contains_pattern(s: &str) -> String {
    let mut p = String::with_capacity(s.len() + 2);
    p.push('%');
    for c in s.chars() {
        if matches!(c, '\\' | '%' | '_') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

impl DataStore {
    /// Which streams each broker collects: `(broker id, general, audit)` of the brokers
    /// with at least one turned on.
    pub async fn logs_enabled_streams(&self) -> Result<Vec<(String, bool, bool)>, Error> {
        sqlx::query_as(
            "SELECT id, logs_general, logs_audit FROM brokers WHERE logs_general OR logs_audit",
        )
        .fetch_all(&self.pool)
        .await
        .context_internal("listing brokers that collect logs")
    }

    /// The cursor of one stream of one node, if collection ever stored one.
    pub async fn logs_cursor(
        &self,
        broker_id: &str,
        node: i32,
        stream: &str,
    ) -> Result<Option<LogCursorRow>, Error> {
        sqlx::query_as(
            "SELECT broker_id, node, stream, epoch, last_seq, dropped_lines, collected_at \
             FROM log_cursors WHERE broker_id = $1 AND node = $2 AND stream = $3",
        )
        .bind(broker_id)
        .bind(node)
        .bind(stream)
        .fetch_optional(&self.pool)
        .await
        .context_internal("reading a log cursor")
    }

    /// Every cursor of a broker, by node and stream.
    pub async fn logs_cursors(&self, broker_id: &str) -> Result<Vec<LogCursorRow>, Error> {
        sqlx::query_as(
            "SELECT broker_id, node, stream, epoch, last_seq, dropped_lines, collected_at \
             FROM log_cursors WHERE broker_id = $1 ORDER BY node, stream",
        )
        .bind(broker_id)
        .fetch_all(&self.pool)
        .await
        .context_internal("listing log cursors")
    }

    /// Stores `w.lines` and moves the cursor, atomically. `Ok(false)` (nothing stored)
    /// when the cursor is no longer `w.expected`: someone else collected meanwhile.
    pub async fn logs_store_page(&self, w: &LogPageWrite<'_>) -> Result<bool, Error> {
        let mut tx = self
            .pool
            .begin()
            .await
            .context_internal("begin storing log lines")?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('berth.logs:' || $1, 0))")
            .bind(w.broker_id)
            .execute(&mut *tx)
            .await
            .context_internal("locking a broker's log")?;
        let current: Option<(String, i64)> = sqlx::query_as(
            "SELECT epoch, last_seq FROM log_cursors \
             WHERE broker_id = $1 AND node = $2 AND stream = $3 FOR UPDATE",
        )
        .bind(w.broker_id)
        .bind(w.node)
        .bind(w.stream)
        .fetch_optional(&mut *tx)
        .await
        .context_internal("locking a log cursor")?;
        let unchanged = match (&current, w.expected) {
            (None, None) => true,
            (Some((e, s)), Some((ee, es))) => e == ee && *s == es,
            _ => false,
        };
        if !unchanged {
            return Ok(false);
        }
        let seqs: Vec<i64> = w.lines.iter().map(|l| l.seq).collect();
        let times: Vec<DateTime<Utc>> = w.lines.iter().map(|l| l.ts).collect();
        let messages: Vec<&str> = w.lines.iter().map(|l| l.message.as_str()).collect();
        sqlx::query(
            "INSERT INTO log_lines (broker_id, node, stream, epoch, seq, ts, message) \
             SELECT $1, $2, $3, $4, u.seq, u.ts, u.message \
             FROM UNNEST($5::bigint[], $6::timestamptz[], $7::text[]) WITH ORDINALITY \
                  AS u(seq, ts, message, n) \
             ORDER BY u.n \
             ON CONFLICT (broker_id, node, stream, epoch, seq) DO NOTHING",
        )
        .bind(w.broker_id)
        .bind(w.node)
        .bind(w.stream)
        .bind(w.epoch)
        .bind(&seqs)
        .bind(&times)
        .bind(&messages)
        .execute(&mut *tx)
        .await
        .context_internal("storing log lines")?;
        sqlx::query(
            "INSERT INTO log_cursors (broker_id, node, stream, epoch, last_seq, dropped_lines) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (broker_id, node, stream) DO UPDATE SET epoch = EXCLUDED.epoch, \
                 last_seq = EXCLUDED.last_seq, \
                 dropped_lines = log_cursors.dropped_lines + EXCLUDED.dropped_lines, \
                 collected_at = now()",
        )
        .bind(w.broker_id)
        .bind(w.node)
        .bind(w.stream)
        .bind(w.epoch)
        .bind(w.last_seq)
        .bind(w.dropped)
        .execute(&mut *tx)
        .await
        .context_internal("moving a log cursor")?;
        tx.commit()
            .await
            .context_internal("commit storing log lines")?;
        Ok(true)
    }

    /// Lines of a broker matching `filter`, read from `direction`'s end, at most `limit`.
    pub async fn logs_search(
        &self,
        broker_id: &str,
        filter: &LogFilter,
        direction: LogDirection,
        limit: i64,
    ) -> Result<Vec<LogLineRow>, Error> {
        let (before, after, order) = match direction {
            LogDirection::Backward(before) => (before, None, "DESC"),
            LogDirection::Forward(after) => (None, Some(after), "ASC"),
        };
        let sql = format!(
            "SELECT id, node, stream, seq, ts, message FROM log_lines \
             WHERE broker_id = $1 \
               AND ($2::text IS NULL OR stream = $2) \
               AND ($3::int IS NULL OR node = $3) \
               AND ($4::text IS NULL OR message ILIKE $4 ESCAPE '\\') \
               AND ($5::timestamptz IS NULL OR ts >= $5) \
               AND ($6::timestamptz IS NULL OR ts < $6) \
               AND ($7::bigint IS NULL OR id < $7) \
               AND ($8::bigint IS NULL OR id > $8) \
             ORDER BY id {order} LIMIT $9"
        );
        sqlx::query_as(&sql)
            .bind(broker_id)
            .bind(&filter.stream)
            .bind(filter.node)
            .bind(filter.contains.as_deref().map(contains_pattern))
            .bind(filter.start)
            .bind(filter.end)
            .bind(before)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .context_internal("searching log lines")
    }

    /// The id of the broker's newest stored line (0 when none).
    pub async fn logs_newest_id(&self, broker_id: &str) -> Result<i64, Error> {
        sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM log_lines WHERE broker_id = $1")
            .bind(broker_id)
            .fetch_one(&self.pool)
            .await
            .context_internal("reading the newest log line")
    }

    /// Retention: removes lines older than `older_than`, then every broker's lines
    /// beyond its newest `max_lines`. Returns how many lines went.
    pub async fn logs_prune(
        &self,
        older_than: DateTime<Utc>,
        max_lines: i64,
    ) -> Result<u64, Error> {
        let aged = sqlx::query("DELETE FROM log_lines WHERE ts < $1")
            .bind(older_than)
            .execute(&self.pool)
            .await
            .context_internal("removing old log lines")?
            .rows_affected();
        let excess = sqlx::query(
            "WITH cut AS ( \
                 SELECT b.id AS broker_id, \
                        (SELECT l.id FROM log_lines l WHERE l.broker_id = b.id \
                         ORDER BY l.id DESC OFFSET $1 LIMIT 1) AS upto \
                 FROM brokers b) \
             DELETE FROM log_lines l USING cut \
             WHERE l.broker_id = cut.broker_id AND l.id <= cut.upto",
        )
        .bind(max_lines)
        .execute(&self.pool)
        .await
        .context_internal("removing log lines beyond the per-broker limit")?
        .rows_affected();
        Ok(aged + excess)
    }
}

#[cfg(test)]
mod tests {
    use super::contains_pattern;

    #[test]
    fn wildcards_are_taken_literally() {
        assert_eq!(contains_pattern("a%b_c\\d"), "%a\\%b\\_c\\\\d%");
        assert_eq!(contains_pattern(""), "%%");
    }
}
