//! Search and tail of a broker's collected engine logs (what `observe::logs` stored),
//! shaped like CloudWatch's GetLogEvents: events `{timestamp, message, node, stream,
//! seq}`, newest first by default with `nextToken` for older ones, or oldest first with
//! `startFromHead=true`; `nextForwardToken` always, to poll for lines stored later.
//!
//! Lines are ordered as they were stored (per node and stream that is their sequence
//! order; between the nodes of a broker, the order in which they were collected). Tokens
//! are opaque (base64 of a direction and a line id) and a token that is not one of ours
//! is a 400. `contains` is a plain, case-insensitive substring, never a pattern. An
//! account sees only its own brokers' lines (another's broker is a 404).

use agent_contract::logs::LogStream;
use chrono::{DateTime, Utc};

use super::{owned_broker, paging, AppContext, Caller};
use crate::db::logs::{LogCursorRow, LogDirection, LogFilter, LogLineRow};
use crate::error::Error;

/// Default page size.
pub const DEFAULT_RESULTS: i64 = 100;
/// Largest page.
pub const MAX_RESULTS: i64 = 1000;
/// Longest `contains`.
pub const MAX_CONTAINS: usize = 1024;

/// The query parameters as they arrived (all optional, parsed here).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogQuery<'a> {
    pub stream: Option<&'a str>,
    pub node: Option<&'a str>,
    pub contains: Option<&'a str>,
    /// Milliseconds since the Unix epoch, inclusive.
    pub start_time: Option<&'a str>,
    /// Milliseconds since the Unix epoch, exclusive.
    pub end_time: Option<&'a str>,
    pub max_results: Option<&'a str>,
    pub next_token: Option<&'a str>,
    pub start_from_head: Option<&'a str>,
}

/// One collected line.
#[derive(Debug, Clone)]
pub struct LogEvent {
    pub timestamp: DateTime<Utc>,
    pub message: String,
    pub node: u32,
    pub stream: LogStream,
    pub seq: u64,
}

/// How collection of one stream of one node stands.
#[derive(Debug, Clone)]
pub struct StreamCollection {
    pub node: u32,
    pub stream: LogStream,
    /// The last sequence number stored.
    pub last_seq: u64,
    /// Lines the agent dropped (its size cap) before they were collected.
    pub dropped_lines: u64,
    pub collected_at: DateTime<Utc>,
}

/// A page of events.
#[derive(Debug, Clone)]
pub struct LogEvents {
    pub events: Vec<LogEvent>,
    /// Older events (newest-first pages only), when there are more.
    pub next_token: Option<String>,
    /// Events stored after this page.
    pub next_forward_token: String,
    pub collection: Vec<StreamCollection>,
}

const BACKWARD: &str = "b";
const FORWARD: &str = "f";

fn token(direction: &str, id: i64) -> String {
    paging::encode_token(&format!("{direction}:{id}"))
}

fn parse_token(t: Option<&str>) -> Result<Option<LogDirection>, Error> {
    let Some(key) = paging::decode_token(t)? else {
        return Ok(None);
    };
    let (direction, id) = key.split_once(':').ok_or_else(paging::invalid_token)?;
    let id = id
        .parse::<i64>()
        .ok()
        .filter(|id| *id >= 0)
        .ok_or_else(paging::invalid_token)?;
    match direction {
        BACKWARD => Ok(Some(LogDirection::Backward(Some(id)))),
        FORWARD => Ok(Some(LogDirection::Forward(id))),
        _ => Err(paging::invalid_token()),
    }
}

fn parse_stream(s: &str) -> Result<LogStream, Error> {
    LogStream::parse(s).ok_or_else(|| {
        Error::bad_request(
            "stream",
            format!("{s} is not a valid stream. Valid values: general, audit."),
        )
    })
}

fn parse_time(attribute: &str, v: &str) -> Result<DateTime<Utc>, Error> {
    v.parse::<i64>()
        .ok()
        .filter(|ms| *ms >= 0)
        .and_then(DateTime::from_timestamp_millis)
        .ok_or_else(|| {
            Error::bad_request(
                attribute,
                format!("{attribute} must be milliseconds since the Unix epoch."),
            )
        })
}

fn parse_bool(attribute: &str, v: &str) -> Result<bool, Error> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Error::bad_request(
            attribute,
            format!("{attribute} must be true or false."),
        )),
    }
}

/// A stored stream name (the table's CHECK allows only ours).
fn stored_stream(s: &str) -> Result<LogStream, Error> {
    LogStream::parse(s)
        .ok_or_else(|| Error::internal("stored log stream", anyhow::anyhow!("unknown {s:?}")))
}

fn stored_count(what: &str, v: i64) -> Result<u64, Error> {
    u64::try_from(v).map_err(|e| Error::internal(format!("stored {what}"), e))
}

fn stored_node(v: i32) -> Result<u32, Error> {
    u32::try_from(v).map_err(|e| Error::internal("stored node", e))
}

impl TryFrom<LogLineRow> for LogEvent {
    type Error = Error;
    fn try_from(r: LogLineRow) -> Result<Self, Error> {
        Ok(Self {
            timestamp: r.ts,
            message: r.message,
            node: stored_node(r.node)?,
            stream: stored_stream(&r.stream)?,
            seq: stored_count("sequence number", r.seq)?,
        })
    }
}

impl TryFrom<LogCursorRow> for StreamCollection {
    type Error = Error;
    fn try_from(r: LogCursorRow) -> Result<Self, Error> {
        Ok(Self {
            node: stored_node(r.node)?,
            stream: stored_stream(&r.stream)?,
            last_seq: stored_count("log cursor", r.last_seq)?,
            dropped_lines: stored_count("dropped lines", r.dropped_lines)?,
            collected_at: r.collected_at,
        })
    }
}

/// What a logs page shows of the broker itself.
#[derive(Debug, Clone)]
pub struct LogsBroker {
    pub name: String,
    pub nodes: Vec<u32>,
    /// The streams its engine has (`audit`: ActiveMQ only).
    pub streams: Vec<LogStream>,
    /// The streams turned on (collected).
    pub collected: Vec<LogStream>,
}

/// The caller's broker as its logs page shows it.
pub async fn logs_broker(
    ctx: &AppContext,
    caller: &Caller,
    broker_id: &str,
) -> Result<LogsBroker, Error> {
    let row = owned_broker(ctx, caller, broker_id).await?;
    let layout = crate::domain::nodes::layout(&row.broker_id(), row.mode()?, &row.region);
    let audit = crate::domain::profile::profile(row.engine()?).audit_logs;
    let streams: Vec<LogStream> = LogStream::ALL
        .into_iter()
        .filter(|s| *s == LogStream::General || audit)
        .collect();
    let collected = streams
        .iter()
        .copied()
        .filter(|s| match s {
            LogStream::General => row.logs_general,
            LogStream::Audit => row.logs_audit,
        })
        .collect();
    Ok(LogsBroker {
        name: row.name,
        nodes: layout.indexes().collect(),
        streams,
        collected,
    })
}

/// GetBrokerLogs: the caller's broker's lines matching `q`.
pub async fn logs_search(
    ctx: &AppContext,
    caller: &Caller,
    broker_id: &str,
    q: LogQuery<'_>,
) -> Result<LogEvents, Error> {
    let row = owned_broker(ctx, caller, broker_id).await?;
    let id = row.broker_id();
    let limit = paging::max_results_up_to(q.max_results, DEFAULT_RESULTS, MAX_RESULTS)?;
    let mut filter = LogFilter::default();
    if let Some(s) = q.stream.filter(|s| !s.is_empty()) {
        filter.stream = Some(parse_stream(s)?.as_str().to_owned());
    }
    if let Some(n) = q.node.filter(|s| !s.is_empty()) {
        let layout = crate::domain::nodes::layout(&id, row.mode()?, &row.region);
        let count = layout.nodes.len();
        let node = n
            .parse::<u32>()
            .ok()
            .filter(|n| layout.node(*n).is_some())
            .ok_or_else(|| {
                Error::bad_request(
                    "node",
                    format!(
                        "node must be a node index of this broker, 0 to {}.",
                        count - 1
                    ),
                )
            })?;
        filter.node = Some(node as i32);
    }
    if let Some(c) = q.contains.filter(|s| !s.is_empty()) {
        if c.chars().count() > MAX_CONTAINS {
            return Err(Error::bad_request(
                "contains",
                format!("contains must be at most {MAX_CONTAINS} characters."),
            ));
        }
        filter.contains = Some(c.to_owned());
    }
    filter.start = q
        .start_time
        .map(|v| parse_time("startTime", v))
        .transpose()?;
    filter.end = q.end_time.map(|v| parse_time("endTime", v)).transpose()?;
    if let (Some(s), Some(e)) = (filter.start, filter.end) {
        if e < s {
            return Err(Error::bad_request(
                "endTime",
                "endTime must not be before startTime.",
            ));
        }
    }
    let from_head = q
        .start_from_head
        .map(|v| parse_bool("startFromHead", v))
        .transpose()?
        .unwrap_or(false);
    let direction = match parse_token(q.next_token)? {
        Some(d) => d,
        None if from_head => LogDirection::Forward(0),
        None => LogDirection::Backward(None),
    };

    let mut rows = ctx
        .store
        .logs_search(id.as_str(), &filter, direction, limit + 1)
        .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let (next_token, next_forward_token) = match direction {
        LogDirection::Backward(before) => {
            let newest = match (rows.first(), before) {
                (Some(r), _) => r.id,
                (None, Some(b)) => b.saturating_sub(1),
                (None, None) => ctx.store.logs_newest_id(id.as_str()).await?,
            };
            let older = more
                .then(|| rows.last().map(|r| token(BACKWARD, r.id)))
                .flatten();
            (older, token(FORWARD, newest))
        }
        LogDirection::Forward(after) => {
            let last = rows.last().map_or(after, |r| r.id);
            (None, token(FORWARD, last))
        }
    };
    let events = rows
        .into_iter()
        .map(LogEvent::try_from)
        .collect::<Result<_, _>>()?;
    let collection = ctx
        .store
        .logs_cursors(id.as_str())
        .await?
        .into_iter()
        .map(StreamCollection::try_from)
        .collect::<Result<_, _>>()?;
    Ok(LogEvents {
        events,
        next_token,
        next_forward_token,
        collection,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_their_direction() {
        assert_eq!(
            parse_token(Some(&token(BACKWARD, 7))).unwrap(),
            Some(LogDirection::Backward(Some(7)))
        );
        assert_eq!(
            parse_token(Some(&token(FORWARD, 0))).unwrap(),
            Some(LogDirection::Forward(0))
        );
        assert_eq!(parse_token(None).unwrap(), None);
        for bad in [
            paging::encode_token("x:1"),
            paging::encode_token("f:-1"),
            paging::encode_token("b:"),
            paging::encode_token("12"),
            "!!".to_owned(),
        ] {
            assert_eq!(
                parse_token(Some(&bad)).unwrap_err().attribute(),
                Some("nextToken"),
                "{bad}"
            );
        }
    }

    #[test]
    fn times_are_epoch_milliseconds() {
        assert_eq!(
            parse_time("startTime", "1700000000000")
                .unwrap()
                .timestamp(),
            1_700_000_000
        );
        for bad in ["-1", "x", "1.5", ""] {
            assert_eq!(
                parse_time("startTime", bad).unwrap_err().attribute(),
                Some("startTime")
            );
        }
    }
}
