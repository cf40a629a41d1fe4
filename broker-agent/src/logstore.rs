//! The node's engine logs, kept on the data volume for `GET /logs` (see
//! [`agent_contract::logs`] for the numbering the collector relies on).
//!
//! Layout under the store's directory (`<engine data dir>/berth-logs/node-<index>`: the
//! volume outlives the container, and two nodes sharing one volume keep apart):
//! - `epoch`: a random id made when the store is created; a store found without it is
//!   discarded and numbered from scratch under a new epoch;
//! - per stream (`general`, `audit`) two segments, `<stream>.log` (written) and
//!   `<stream>.log.1` (the previous one): when the written one reaches
//!   [`SEGMENT_BYTES`] it replaces the previous one and a new one starts, so a stream
//!   holds at most two segments (16 MiB). Each line is a JSON [`LogLine`].
//!
//! At open the store reads each stream's segments once: the last sequence number
//! continues after an agent restart, and a last line torn by a crash is cut off.
//!
//! What goes in ([`LogStore::push`]): the line without terminal colour codes, every
//! secret the agent knows replaced (the spec's passwords, the agent token, the driver's
//! own secrets: [`LogStore::set_secrets`]), values after `password=`/`passcode:`/
//! `token=`-like keys and `Authorization:` headers masked, then cut at
//! [`MAX_LOG_LINE`] bytes (marked with [`CUT_MARK`]). Writes are buffered and flushed
//! once per batch of engine output ([`LogStore::flush`]), so a slow disk costs the
//! engine's pipe one write per batch, not one per line. A failing disk loses lines
//! (counted in the agent's log once), never stops the engine.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use agent_contract::logs::{LogLine, LogPage, LogStream, MAX_LOG_LINE, MAX_LOG_PAGE};
use regex::Regex;

use crate::engine::diagnosis;
use crate::enginelog::strip_ansi;

/// A segment is rotated once it reaches this size.
pub const SEGMENT_BYTES: u64 = 8 << 20;
/// Appended to a line that was cut at [`MAX_LOG_LINE`].
pub const CUT_MARK: &str = " …[cut]";
/// Replaces a masked value.
pub const MASK: &str = "<masked>";
/// Name of the store's directory under the engine's data directory.
pub const DIR_NAME: &str = "berth-logs";

/// The store directory of node `index` under the engine's data directory.
pub fn store_dir(data_dir: &Path, index: u32) -> PathBuf {
    data_dir.join(DIR_NAME).join(format!("node-{index}"))
}

/// Masks values of password-like keys and `Authorization` headers.
#[derive(Debug)]
struct Masker {
    keyed: Regex,
    authorization: Regex,
}

impl Masker {
    fn new() -> Masker {
        Masker {
            keyed: Regex::new(
                r#"(?i)((?:password|passwd|passcode|pwd|secret|token)["']?\s*[=:]\s*["']?)([^\s"',;&}\]]+)"#,
            )
            .expect("static regex"),
            authorization: Regex::new(
                r#"(?i)(authorization["']?\s*[=:]\s*["']?(?:basic\s+|bearer\s+)?)([^\s"',;]+)"#,
            )
                .expect("static regex"),
        }
    }

    fn mask(&self, text: &str) -> String {
        let once = self.keyed.replace_all(text, format!("${{1}}{MASK}"));
        self.authorization
            .replace_all(&once, format!("${{1}}{MASK}"))
            .into_owned()
    }
}

/// `text` cut to at most `max` bytes at a character boundary, marked when cut.
pub fn cut(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max.saturating_sub(CUT_MARK.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{CUT_MARK}", &text[..end])
}

/// The first and last sequence number of a segment, and the length of its good part
/// (up to the end of its last complete, parseable line).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct SegmentInfo {
    first: Option<u64>,
    last: Option<u64>,
    good_len: u64,
}

#[derive(serde::Deserialize)]
struct SeqOnly {
    seq: u64,
}

fn scan_segment(path: &Path) -> SegmentInfo {
    let Ok(file) = File::open(path) else {
        return SegmentInfo::default();
    };
    let mut info = SegmentInfo::default();
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    let mut offset = 0u64;
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if line.last() != Some(&b'\n') {
                    break; // torn
                }
                match serde_json::from_slice::<SeqOnly>(&line) {
                    Ok(s) => {
                        info.first.get_or_insert(s.seq);
                        info.last = Some(s.seq);
                        offset += n as u64;
                        info.good_len = offset;
                    }
                    Err(_) => break,
                }
            }
        }
    }
    info
}

/// One stream's segments.
#[derive(Debug)]
struct StreamFiles {
    current: PathBuf,
    previous: PathBuf,
    writer: Option<BufWriter<File>>,
    current_len: u64,
    current_first: Option<u64>,
    previous_first: Option<u64>,
    last_seq: u64,
    write_failed: bool,
}

impl StreamFiles {
    fn open(dir: &Path, stream: LogStream) -> StreamFiles {
        let current = dir.join(format!("{}.log", stream.as_str()));
        let previous = dir.join(format!("{}.log.1", stream.as_str()));
        let cur = scan_segment(&current);
        let prev = scan_segment(&previous);
        // Cut a torn tail so that the next line starts on a line of its own.
        if let Ok(f) = OpenOptions::new().write(true).open(&current) {
            if f.metadata().map(|m| m.len()).unwrap_or(0) != cur.good_len {
                let _ = f.set_len(cur.good_len);
            }
        }
        StreamFiles {
            current,
            previous,
            writer: None,
            current_len: cur.good_len,
            current_first: cur.first,
            previous_first: prev.first,
            last_seq: cur.last.or(prev.last).unwrap_or(0),
            write_failed: false,
        }
    }

    fn writer(&mut self) -> std::io::Result<&mut BufWriter<File>> {
        if self.writer.is_none() {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.current)?;
            self.writer = Some(BufWriter::with_capacity(64 * 1024, f));
        }
        Ok(self.writer.as_mut().expect("just opened"))
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        if let Some(mut w) = self.writer.take() {
            w.flush()?;
        }
        std::fs::rename(&self.current, &self.previous)?;
        self.previous_first = self.current_first.take();
        self.current_len = 0;
        Ok(())
    }

    fn append(&mut self, line: &LogLine, segment_bytes: u64) -> std::io::Result<()> {
        if self.current_len >= segment_bytes {
            self.rotate()?;
        }
        let mut json = serde_json::to_vec(line).map_err(std::io::Error::other)?;
        json.push(b'\n');
        self.writer()?.write_all(&json)?;
        self.current_len += json.len() as u64;
        self.current_first.get_or_insert(line.seq);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.writer.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }

    fn first_seq(&self) -> u64 {
        self.previous_first.or(self.current_first).unwrap_or(0)
    }

    /// Lines with `seq > after`, at most `limit`, oldest first.
    fn read(&self, after: u64, limit: usize) -> Vec<LogLine> {
        let mut out = Vec::new();
        // The previous segment only holds lines older than the current one's first.
        let skip_previous = self.current_first.is_some_and(|f| f > 0 && after + 1 >= f);
        for path in [&self.previous, &self.current] {
            if out.len() >= limit || (skip_previous && path == &self.previous) {
                continue;
            }
            let Ok(file) = File::open(path) else { continue };
            for line in BufReader::new(file).split(b'\n') {
                let Ok(line) = line else { break };
                let Ok(parsed) = serde_json::from_slice::<LogLine>(&line) else {
                    continue;
                };
                if parsed.seq > after {
                    out.push(parsed);
                    if out.len() >= limit {
                        break;
                    }
                }
            }
        }
        out
    }
}

/// The node's persistent log store. See the module docs.
#[derive(Debug)]
pub struct LogStore {
    epoch: String,
    segment_bytes: u64,
    streams: [Mutex<StreamFiles>; 2],
    secrets: RwLock<Vec<String>>,
    masker: Masker,
}

fn index(stream: LogStream) -> usize {
    match stream {
        LogStream::General => 0,
        LogStream::Audit => 1,
    }
}

impl LogStore {
    /// Open (or create) the store in `dir` with [`SEGMENT_BYTES`] segments.
    pub fn open(dir: &Path) -> anyhow::Result<LogStore> {
        Self::open_with(dir, SEGMENT_BYTES)
    }

    /// [`open`](Self::open) with another segment size (tests).
    pub fn open_with(dir: &Path, segment_bytes: u64) -> anyhow::Result<LogStore> {
        crate::fsutil::ensure_dir(dir, 0o700, None)?;
        let epoch_file = dir.join("epoch");
        let epoch = match std::fs::read_to_string(&epoch_file) {
            Ok(e) if !e.trim().is_empty() => e.trim().to_owned(),
            _ => {
                // Lines of an unknown numbering: start over.
                for s in LogStream::ALL {
                    let _ = std::fs::remove_file(dir.join(format!("{}.log", s.as_str())));
                    let _ = std::fs::remove_file(dir.join(format!("{}.log.1", s.as_str())));
                }
                let e = crate::fsutil::random_hex(8)?;
                crate::fsutil::write_atomic(&epoch_file, e.as_bytes(), 0o600, None)?;
                e
            }
        };
        Ok(LogStore {
            epoch,
            segment_bytes: segment_bytes.max(1),
            streams: LogStream::ALL.map(|s| Mutex::new(StreamFiles::open(dir, s))),
            secrets: RwLock::new(Vec::new()),
            masker: Masker::new(),
        })
    }

    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    fn lock(&self, stream: LogStream) -> std::sync::MutexGuard<'_, StreamFiles> {
        self.streams[index(stream)]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Every secret to replace in lines from now on.
    pub fn set_secrets(&self, secrets: Vec<String>) {
        *self.secrets.write().unwrap_or_else(|e| e.into_inner()) = secrets;
    }

    /// A raw engine line as it is stored: see the module docs.
    pub fn clean(&self, raw: &[u8]) -> String {
        let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let text = String::from_utf8_lossy(&strip_ansi(raw)).into_owned();
        let secrets = self.secrets.read().unwrap_or_else(|e| e.into_inner());
        let text = diagnosis::redact(&text, &secrets);
        cut(self.masker.mask(&text), MAX_LOG_LINE)
    }

    /// Store one line (buffered until [`flush`](Self::flush)).
    pub fn push(&self, stream: LogStream, raw: &[u8]) {
        let message = self.clean(raw);
        let mut files = self.lock(stream);
        let line = LogLine {
            seq: files.last_seq + 1,
            timestamp_ms: now_ms(),
            message,
        };
        match files.append(&line, self.segment_bytes) {
            Ok(()) => {
                files.last_seq = line.seq;
                files.write_failed = false;
            }
            Err(e) => {
                if !files.write_failed {
                    tracing::warn!(error = %e, stream = stream.as_str(), "cannot store engine log lines");
                }
                files.write_failed = true;
                files.writer = None;
            }
        }
    }

    /// Write buffered lines out.
    pub fn flush(&self) {
        for s in LogStream::ALL {
            let _ = self.lock(s).flush();
        }
    }

    /// `GET /logs`: lines of `stream` after `after`, at most `limit` (capped at
    /// [`MAX_LOG_PAGE`]).
    pub fn page(&self, stream: LogStream, after: u64, limit: usize) -> LogPage {
        let mut files = self.lock(stream);
        let _ = files.flush();
        let lines = files.read(after, limit.min(MAX_LOG_PAGE));
        LogPage {
            stream,
            epoch: self.epoch.clone(),
            first_seq: files.first_seq(),
            last_seq: files.last_seq,
            lines,
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push_lines(store: &LogStore, from: usize, to: usize) {
        for i in from..to {
            store.push(LogStream::General, format!("line {i}\n").as_bytes());
        }
        store.flush();
    }

    #[test]
    fn numbers_continue_after_a_restart_and_keep_the_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        let epoch = store.epoch().to_owned();
        assert_eq!(epoch.len(), 16);
        let empty = store.page(LogStream::General, 0, 10);
        assert_eq!((empty.first_seq, empty.last_seq), (0, 0));
        assert!(empty.lines.is_empty());
        push_lines(&store, 0, 5);
        drop(store);

        let store = LogStore::open(dir.path()).unwrap();
        assert_eq!(store.epoch(), epoch);
        push_lines(&store, 5, 7);
        let page = store.page(LogStream::General, 0, 100);
        assert_eq!((page.first_seq, page.last_seq), (1, 7));
        let seqs: Vec<u64> = page.lines.iter().map(|l| l.seq).collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(page.lines[6].message, "line 6");
        assert!(page.lines[0].timestamp_ms > 0);
        // a cursor and a limit
        let page = store.page(LogStream::General, 3, 2);
        let seqs: Vec<u64> = page.lines.iter().map(|l| l.seq).collect();
        assert_eq!(seqs, [4, 5]);
        // the other stream is separate
        let audit = store.page(LogStream::Audit, 0, 10);
        assert_eq!(audit.last_seq, 0);
        assert_eq!(audit.epoch, epoch);
    }

    #[test]
    fn a_store_without_its_epoch_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        let epoch = store.epoch().to_owned();
        push_lines(&store, 0, 3);
        drop(store);
        std::fs::remove_file(dir.path().join("epoch")).unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        assert_ne!(store.epoch(), epoch);
        assert_eq!(store.page(LogStream::General, 0, 10).last_seq, 0);
    }

    #[test]
    fn a_torn_last_line_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        push_lines(&store, 0, 2);
        drop(store);
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join("general.log"))
            .unwrap();
        f.write_all(br#"{"seq":3,"timestamp_ms":1,"mess"#).unwrap();
        drop(f);
        let store = LogStore::open(dir.path()).unwrap();
        push_lines(&store, 2, 3);
        let page = store.page(LogStream::General, 0, 10);
        let got: Vec<(u64, &str)> = page
            .lines
            .iter()
            .map(|l| (l.seq, l.message.as_str()))
            .collect();
        assert_eq!(got, [(1, "line 0"), (2, "line 1"), (3, "line 2")]);
    }

    #[test]
    fn rotation_keeps_two_segments() {
        let dir = tempfile::tempdir().unwrap();
        // each stored line is about 50 bytes: a segment holds about 20 lines
        let store = LogStore::open_with(dir.path(), 1000).unwrap();
        push_lines(&store, 0, 200);
        let page = store.page(LogStream::General, 0, 1000);
        assert_eq!(page.last_seq, 200);
        assert!(page.first_seq > 150, "{}", page.first_seq);
        assert_eq!(page.lines.first().unwrap().seq, page.first_seq);
        assert_eq!(page.lines.last().unwrap().seq, 200);
        // contiguous
        for w in page.lines.windows(2) {
            assert_eq!(w[1].seq, w[0].seq + 1);
        }
        let files: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(files.len(), 3, "{files:?}"); // epoch + two segments
        let total: u64 = ["general.log", "general.log.1"]
            .iter()
            .map(|f| std::fs::metadata(dir.path().join(f)).unwrap().len())
            .sum();
        assert!(total <= 2 * 1000 + 200, "{total}");
        // a cursor in the current segment skips the previous one, and survives reopening
        let after = page.lines[page.lines.len() - 3].seq;
        drop(store);
        let store = LogStore::open_with(dir.path(), 1000).unwrap();
        let tail = store.page(LogStream::General, after, 10);
        assert_eq!(tail.lines.len(), 2);
        assert_eq!(tail.first_seq, page.first_seq);
        // the full cap of MAX_LOG_PAGE
        assert!(store.page(LogStream::General, 0, 5000).lines.len() <= MAX_LOG_PAGE);
    }

    #[test]
    fn lines_are_cleaned_masked_and_cut() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        store.set_secrets(vec!["s3cr3t-spec-pw".into(), "agent-token-123".into()]);
        for (raw, want) in [
            (
                &b"\x1b[38;5;87m2026 [info] user admin logged in with s3cr3t-spec-pw\x1b[0m\r\n"[..],
                "2026 [info] user admin logged in with <redacted>".to_string(),
            ),
            (
                b"connect url=tcp://x?password=hunter2&user=a",
                format!("connect url=tcp://x?password={MASK}&user=a"),
            ),
            (
                b"keystorePassword: \"abc def\" passcode:xyz",
                format!("keystorePassword: \"{MASK} def\" passcode:{MASK}"),
            ),
            (
                b"GET / Authorization: Basic dXNlcjpwdw== ok",
                format!("GET / Authorization: Basic {MASK} ok"),
            ),
            (
                b"header authorization=Bearer agent-token-123",
                format!("header authorization=Bearer {MASK}"),
            ),
            (b"\xffbad utf8", "\u{fffd}bad utf8".to_string()),
        ] {
            assert_eq!(store.clean(raw), want, "{}", String::from_utf8_lossy(raw));
        }
        let long = "é".repeat(MAX_LOG_LINE);
        let cleaned = store.clean(long.as_bytes());
        assert!(cleaned.len() <= MAX_LOG_LINE);
        assert!(cleaned.ends_with(CUT_MARK));
        store.push(LogStream::Audit, long.as_bytes());
        let page = store.page(LogStream::Audit, 0, 1);
        assert_eq!(page.lines[0].message, cleaned);
    }
}
