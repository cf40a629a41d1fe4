//! `GET /logs?stream=…&after=…&limit=…` on the agent: the node's engine logs, kept by
//! the agent on the data volume with a size cap, numbered so the control plane can
//! collect them from a cursor without gaps or repeats.
//!
//! Sequence numbers start at 1, grow by one per line and survive agent restarts (they
//! are kept with the lines). `first_seq` > `after + 1` means lines were dropped by the
//! cap before anyone collected them; `epoch` changes when the agent lost its store and
//! numbers from scratch, so a collector holding an older epoch starts over.

use serde::{Deserialize, Serialize};

/// Which log of the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    /// The engine's own output (Amazon MQ's `general` log).
    General,
    /// ActiveMQ's audit log (who did what through management interfaces).
    Audit,
}

impl LogStream {
    pub const ALL: [LogStream; 2] = [LogStream::General, LogStream::Audit];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::General => "general",
            Self::Audit => "audit",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == s)
    }
}

/// One line of engine output (colour codes stripped, secrets masked, at most
/// [`MAX_LOG_LINE`] bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub seq: u64,
    /// When the agent read the line, milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    pub message: String,
}

/// Body of `GET /logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogPage {
    pub stream: LogStream,
    /// Identifies this store's numbering (see the module docs).
    pub epoch: String,
    /// The oldest sequence number still kept (0 when the store is empty).
    pub first_seq: u64,
    /// The newest sequence number written so far (0 when nothing was written).
    pub last_seq: u64,
    /// Lines with `seq > after`, oldest first, at most `limit` (≤ [`MAX_LOG_PAGE`]).
    pub lines: Vec<LogLine>,
}

/// Longest line the agent keeps, in bytes (longer ones are cut and marked).
pub const MAX_LOG_LINE: usize = 8192;
/// Most lines in one page.
pub const MAX_LOG_PAGE: usize = 1000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_parse_their_names() {
        for s in LogStream::ALL {
            assert_eq!(LogStream::parse(s.as_str()), Some(s));
        }
        assert_eq!(LogStream::parse("nope"), None);
    }
}
