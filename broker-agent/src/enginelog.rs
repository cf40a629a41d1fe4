//! The engine's console output: forwarded line by line to the agent's stdout (so
//! `docker logs` shows the engine as before) and kept in a small ring buffer, so that
//! when the engine stops without becoming ready the agent can tell the control plane
//! why (see [`crate::engine::EngineDriver::diagnose_exit`]).
//!
//! The engine's stdout and stderr share one pipe, read by one thread ([`forward`]). Lines
//! are kept at most [`MAX_LINE`] bytes long in the buffer (longer ones are cut; they are
//! still forwarded whole), and the buffer holds the last [`CAPACITY`] lines of the
//! current engine run ([`EngineOutput::begin_run`] empties it before every start).
//! Nothing here is sent anywhere by itself: the excerpt that reaches the health report
//! is chosen and scrubbed of secrets by the agent.
//!
//! With a [`LogStore`] ([`EngineOutput::with_store`]) every line is also stored for
//! `GET /logs` (cleaned and masked by the store), flushed once per read from the pipe.
//! Lines starting with the driver's audit prefix
//! ([`EngineDriver::audit_log_prefix`](crate::engine::EngineDriver::audit_log_prefix))
//! go, without the prefix, to the `audit` stream and not into the ring.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use agent_contract::logs::LogStream;

use crate::logstore::LogStore;

/// Lines kept per engine run.
pub const CAPACITY: usize = 256;
/// Longest line kept (bytes); the rest of a longer line is dropped from the buffer.
pub const MAX_LINE: usize = 4096;

/// A bounded buffer of the last lines an engine printed.
#[derive(Debug)]
pub struct LineRing {
    lines: VecDeque<String>,
    capacity: usize,
    max_line: usize,
}

impl LineRing {
    pub fn new(capacity: usize, max_line: usize) -> LineRing {
        LineRing {
            lines: VecDeque::with_capacity(capacity.min(64)),
            capacity: capacity.max(1),
            max_line,
        }
    }

    /// Add one line (without its line break), without terminal colour codes (RabbitMQ
    /// colours its console log), cut to `max_line` bytes at a character boundary; the
    /// oldest line goes when the buffer is full.
    pub fn push(&mut self, raw: &[u8]) {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let raw = strip_ansi(&raw[..raw.len().min(self.max_line * 2)]);
        let text = String::from_utf8_lossy(&raw[..raw.len().min(self.max_line + 4)]);
        let mut end = text.len().min(self.max_line);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        if self.lines.len() == self.capacity {
            self.lines.pop_front();
        }
        self.lines.push_back(text[..end].to_string());
    }

    pub fn clear(&mut self) {
        self.lines.clear();
    }

    pub fn snapshot(&self) -> Vec<String> {
        self.lines.iter().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

/// `line` without ANSI escape sequences (`ESC [ … final`, `ESC x`).
pub fn strip_ansi(line: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if !line.contains(&0x1b) {
        return std::borrow::Cow::Borrowed(line);
    }
    let mut out = Vec::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        if line[i] != 0x1b {
            out.push(line[i]);
            i += 1;
            continue;
        }
        i += 1;
        if line.get(i) == Some(&b'[') {
            i += 1;
            while i < line.len() && !(0x40..=0x7e).contains(&line[i]) {
                i += 1;
            }
        }
        i += 1;
    }
    std::borrow::Cow::Owned(out)
}

/// The engine's output of the current run, shared by the forwarding threads and the
/// supervisor.
#[derive(Debug, Clone)]
pub struct EngineOutput {
    ring: Arc<Mutex<LineRing>>,
    store: Option<Arc<LogStore>>,
    audit_prefix: Option<&'static str>,
}

impl Default for EngineOutput {
    fn default() -> Self {
        EngineOutput {
            ring: Arc::new(Mutex::new(LineRing::new(CAPACITY, MAX_LINE))),
            store: None,
            audit_prefix: None,
        }
    }
}

impl EngineOutput {
    fn lock(&self) -> std::sync::MutexGuard<'_, LineRing> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forget the previous run's lines.
    pub fn begin_run(&self) {
        self.lock().clear();
    }

    /// Output that is also kept in `store`; lines starting with `audit_prefix` are the
    /// audit stream's.
    pub fn with_store(store: Arc<LogStore>, audit_prefix: Option<&'static str>) -> Self {
        EngineOutput {
            store: Some(store),
            audit_prefix,
            ..EngineOutput::default()
        }
    }

    pub fn push(&self, line: &[u8]) {
        let audit = self
            .audit_prefix
            .and_then(|p| line.strip_prefix(p.as_bytes()));
        match (audit, &self.store) {
            (Some(rest), Some(store)) => store.push(LogStream::Audit, rest),
            (Some(_), None) => {}
            (None, store) => {
                self.lock().push(line);
                if let Some(store) = store {
                    store.push(LogStream::General, line);
                }
            }
        }
    }

    /// The end of a batch of lines: stored lines are written out.
    pub fn end_batch(&self) {
        if let Some(store) = &self.store {
            store.flush();
        }
    }

    /// The lines of the current run, oldest first.
    pub fn lines(&self) -> Vec<String> {
        self.lock().snapshot()
    }
}

/// Read `pipe` until EOF: write every line to `sink` (whole, as one write, so lines of
/// the engine and of the agent's own log never interleave within a line) and keep it in
/// `output`. A line longer than `chunk_max` without a line break is passed on in pieces.
pub fn forward(mut pipe: impl Read, output: &EngineOutput, mut sink: impl Write) {
    const READ: usize = 8192;
    let chunk_max = MAX_LINE * 4;
    let mut buf = vec![0u8; READ];
    let mut pending: Vec<u8> = Vec::new();
    let emit = |line: &[u8], sink: &mut dyn Write| {
        let _ = sink.write_all(line);
        let _ = sink.flush();
        output.push(line.strip_suffix(b"\n").unwrap_or(line));
    };
    loop {
        let n = match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        pending.extend_from_slice(&buf[..n]);
        let mut start = 0;
        while let Some(i) = pending[start..].iter().position(|&b| b == b'\n') {
            let end = start + i + 1;
            emit(&pending[start..end], &mut sink);
            start = end;
        }
        pending.drain(..start);
        if pending.len() > chunk_max {
            let mut piece = std::mem::take(&mut pending);
            piece.push(b'\n');
            emit(&piece, &mut sink);
        }
        output.end_batch();
    }
    if !pending.is_empty() {
        pending.push(b'\n');
        emit(&pending, &mut sink);
    }
    output.end_batch();
}

/// Start a thread that [`forward`]s `pipe` to the agent's stdout.
pub fn spawn_forwarder(
    name: &str,
    pipe: impl Read + Send + 'static,
    output: EngineOutput,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || forward(pipe, &output, StdoutLines))
}

/// The agent's stdout, locked for each write.
struct StdoutLines;

impl Write for StdoutLines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::stdout().lock().write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        std::io::stdout().lock().write_all(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().lock().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_the_last_lines_cut_to_size() {
        let mut ring = LineRing::new(3, 8);
        assert!(ring.is_empty());
        for l in ["one", "two", "three", "four\r"] {
            ring.push(l.as_bytes());
        }
        assert_eq!(ring.snapshot(), ["two", "three", "four"]);
        ring.push("a very long line indeed".as_bytes());
        assert_eq!(ring.snapshot()[2], "a very l");
        // cut at a character boundary, invalid UTF-8 replaced
        ring.push("ééééé".as_bytes());
        assert_eq!(ring.snapshot()[2], "éééé");
        ring.push(b"\xffok");
        assert_eq!(ring.snapshot()[2], "\u{fffd}ok");
        // colour codes go
        let mut wide = LineRing::new(3, 100);
        wide.push(b"\x1b[38;5;214m2026 [warning] x\x1b[0m");
        assert_eq!(wide.snapshot(), ["2026 [warning] x"]);
        assert_eq!(&*strip_ansi(b"a\x1b[1mb\x1bc"), b"ab");
        assert_eq!(ring.len(), 3);
        ring.clear();
        assert!(ring.is_empty());
    }

    #[test]
    fn forwarding_splits_lines_and_passes_everything_on() {
        let output = EngineOutput::default();
        let input: &[u8] = b"first\nsecond\r\n\nno newline at the end";
        let mut sink = Vec::new();
        forward(input, &output, &mut sink);
        assert_eq!(sink, b"first\nsecond\r\n\nno newline at the end\n");
        assert_eq!(
            output.lines(),
            ["first", "second", "", "no newline at the end"]
        );
        output.begin_run();
        assert!(output.lines().is_empty());
    }

    #[test]
    fn forwarding_reads_across_chunks_and_bounds_long_lines() {
        /// A reader that hands out its data a few bytes at a time.
        struct Trickle(Vec<u8>, usize);
        impl Read for Trickle {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = buf.len().min(3).min(self.0.len() - self.1);
                buf[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
                self.1 += n;
                Ok(n)
            }
        }
        let output = EngineOutput::default();
        let mut sink = Vec::new();
        forward(Trickle(b"ab\ncd\nef".to_vec(), 0), &output, &mut sink);
        assert_eq!(output.lines(), ["ab", "cd", "ef"]);

        let output = EngineOutput::default();
        let long = vec![b'x'; MAX_LINE * 10];
        let mut sink = Vec::new();
        forward(long.as_slice(), &output, &mut sink);
        // forwarded completely (plus the line breaks added between pieces) …
        assert_eq!(sink.iter().filter(|&&b| b == b'x').count(), MAX_LINE * 10);
        // … but the buffer holds bounded lines only
        let lines = output.lines();
        assert!(lines.len() >= 2);
        assert!(lines.iter().all(|l| l.len() <= MAX_LINE));
    }

    #[test]
    fn lines_reach_the_store_and_audit_lines_their_stream() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LogStore::open(dir.path()).unwrap());
        let output = EngineOutput::with_store(store.clone(), Some("AUDIT| "));
        let input: &[u8] = b"\x1b[1mstarted\x1b[0m\nAUDIT| admin removed queue q\nlast";
        let mut sink = Vec::new();
        forward(input, &output, &mut sink);
        // stdout still gets everything
        assert!(String::from_utf8_lossy(&sink).contains("AUDIT| admin"));
        assert_eq!(output.lines(), ["started", "last"]);
        let general = store.page(LogStream::General, 0, 10);
        let msgs: Vec<&str> = general.lines.iter().map(|l| l.message.as_str()).collect();
        assert_eq!(msgs, ["started", "last"]);
        let audit = store.page(LogStream::Audit, 0, 10);
        assert_eq!(audit.lines[0].message, "admin removed queue q");
        assert_eq!(audit.lines[0].seq, 1);
    }

    #[test]
    fn the_buffer_is_bounded() {
        let output = EngineOutput::default();
        let input: Vec<u8> = (0..1000)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        forward(input.as_slice(), &output, std::io::sink());
        let lines = output.lines();
        assert_eq!(lines.len(), CAPACITY);
        assert_eq!(lines.last().unwrap(), "line 999");
        assert_eq!(lines[0], format!("line {}", 1000 - CAPACITY));
    }
}
