//! The HTTP server loop: hyper's HTTP/1 connection driver with the protections
//! `axum::serve` does not have.
//!
//! `axum::serve` bounds neither how long a client may take to send a request, nor how
//! many connections it holds, nor how long a kept-alive connection may sit idle. A probe
//! held half-sent requests open for minutes; twenty thousand of them used up the
//! process's file descriptors, `accept` failed with EMFILE, and the reconciler could no
//! longer reach Docker or Postgres. This loop serves the same [`Router`], and:
//!
//! - **Request head.** A new connection must deliver its first request head within
//!   `header_timeout` of being accepted; a later request within `header_timeout` of its
//!   first byte. Otherwise the connection is closed (no answer: there is no request).
//! - **Idle.** A kept-alive connection on which no byte of a next request arrives for
//!   `idle_timeout` is closed. Separate from the head timeout on purpose: SDK clients
//!   reuse pooled connections after pauses far longer than a head takes to send.
//! - **Body.** A request body must have arrived completely `body_timeout` after its head;
//!   a body that trickles is cut off there and the request is answered 408
//!   `RequestTimeoutException` (see [`BodyDeadline`] and `http::request_deadlines`).
//! - **Stalled response.** A response the client stops reading is dropped after
//!   `idle_timeout` without a byte going out.
//! - **Connection cap.** At most `max_connections` connections at once. When all are
//!   taken, a new connection is still accepted and the connection that has waited
//!   longest for a request head is closed to make room (nginx treats its idle
//!   connections the same way). Clients that hold connections without sending a request
//!   therefore cannot lock out one that sends its request at once: the API keeps
//!   answering while the attack goes on, instead of after the backlog drains. Only when
//!   every connection has a request in flight does the loop stop accepting (the kernel
//!   backlog holds newcomers) until one ends.
//! - **Descriptors.** [`HttpLimits::from_settings`] raises `RLIMIT_NOFILE`'s soft limit
//!   to the hard limit and keeps the connection cap [`FD_RESERVE`] descriptors below
//!   it, so the reconciler's Docker socket, the Postgres pool and agent calls never
//!   compete with API clients for descriptors.
//! - **`accept` errors** (EMFILE, ENFILE, ENOBUFS, …) are logged and retried after a
//!   short backoff; they never end the loop. Errors of a single aborted connection are
//!   skipped at once.
//! - **Shutdown** on the cancellation token: the listener closes, connections without a
//!   request in flight close at once, requests in flight finish (their connection
//!   closes after the response; at most [`SHUTDOWN_GRACE`]), then [`serve`] returns.
//!
//! About hyper's own `http1::Builder::header_read_timeout` (checked in hyper 1.12's
//! `proto/h1/conn.rs`, `poll_read_head` and `State::idle`): its timer starts when the
//! connection starts reading its first head *and again as soon as a kept-alive
//! connection goes idle* (hyper sets `notify_read` in `idle()` so the next read starts
//! the timer), and stops when a head is complete. It therefore covers a kept-alive
//! connection that goes idle and then sends a partial head, but measures idle time and
//! head time as one span, so on its own it cannot keep idle connections longer than a
//! head may take. The watchdog here enforces the two separately, from what the
//! connection's socket and service see; hyper's timer is set to `header_timeout +
//! idle_timeout` as a backstop that the watchdog always beats.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::http::Request;
use axum::{BoxError, Router};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::{sleep, sleep_until, Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::config::Settings;

/// Descriptors kept free of API connections (for the Postgres pool, the Docker socket,
/// agent calls, log and data files).
pub const FD_RESERVE: u64 = 256;

/// How long shutdown waits for requests in flight before it drops their connections.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// hyper's per-connection buffer limit, which bounds a request head (a larger one is
/// answered 431; hyper checks after each read, so a head may reach about twice this).
/// hyper's default, ~400 KB, would let the connections at the cap pin hundreds of
/// megabytes; SigV4 heads are a few KB.
const MAX_BUF_BYTES: usize = 64 * 1024;

const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// What the server allows a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// To deliver a complete request head (from accept, or from its first byte).
    pub header_timeout: Duration,
    /// For a request body to arrive completely after its head.
    pub body_timeout: Duration,
    /// For a kept-alive connection to start its next request, and for a response to
    /// make progress.
    pub idle_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl HttpLimits {
    /// The limits configured in `settings`, with the connection cap lowered to fit the
    /// descriptor limit (raised to its hard limit first). Logs the limits in force.
    pub fn from_settings(settings: &Settings) -> Self {
        let configured = Self {
            header_timeout: Duration::from_millis(settings.http_header_timeout_ms),
            body_timeout: Duration::from_millis(settings.http_body_timeout_ms),
            idle_timeout: Duration::from_millis(settings.http_idle_timeout_ms),
            max_connections: settings.http_max_connections,
        };
        let fds = raise_fd_limit();
        let max_connections = connection_cap(configured.max_connections, fds.map(|l| l.0));
        if max_connections < configured.max_connections {
            tracing::warn!(
                configured = configured.max_connections,
                effective = max_connections,
                fd_soft_limit = fds.map(|l| l.0),
                reserve = FD_RESERVE,
                "http_max_connections lowered to stay below the file-descriptor limit"
            );
        }
        let limits = Self {
            max_connections,
            ..configured
        };
        tracing::info!(
            fd_soft_limit = fds.map(|l| l.0),
            fd_hard_limit = fds.map(|l| l.1),
            max_connections,
            header_timeout_ms = limits.header_timeout.as_millis() as u64,
            body_timeout_ms = limits.body_timeout.as_millis() as u64,
            idle_timeout_ms = limits.idle_timeout.as_millis() as u64,
            "HTTP limits"
        );
        limits
    }
}

/// Raises `RLIMIT_NOFILE`'s soft limit to its hard limit; returns (soft, hard) in force,
/// or `None` when the limit cannot be read.
pub fn raise_fd_limit() -> Option<(u64, u64)> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read RLIMIT_NOFILE");
            return None;
        }
    };
    if soft < hard {
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => return Some((hard, hard)),
            Err(e) => tracing::warn!(error = %e, soft, hard, "cannot raise RLIMIT_NOFILE"),
        }
    }
    Some((soft, hard))
}

/// The connection cap that leaves [`FD_RESERVE`] descriptors (at most half of them) of
/// `soft_limit` to everything else; at least 1.
pub fn connection_cap(configured: usize, soft_limit: Option<u64>) -> usize {
    let Some(soft) = soft_limit else {
        return configured.max(1);
    };
    let allowed = soft - FD_RESERVE.min(soft / 2);
    let allowed = usize::try_from(allowed).unwrap_or(usize::MAX);
    configured.min(allowed).max(1)
}

/// Serves `router` on `listener` within `limits` until `cancel` fires and the
/// connections have closed (see the module docs). Never fails: `accept` errors are
/// retried; the `io::Result` lets callers treat it like `axum::serve`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    cancel: CancellationToken,
) -> io::Result<()> {
    let max = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let permits = Arc::new(Semaphore::new(max));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .max_buf_size(MAX_BUF_BYTES)
        .header_read_timeout(limits.header_timeout.saturating_add(limits.idle_timeout));
    let shared = Arc::new(Shared {
        router,
        http,
        limits,
        registry: Registry::default(),
        cancel: cancel.clone(),
    });
    let mut backoff = ACCEPT_BACKOFF_MIN;
    'accept: loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = cancel.cancelled() => break,
        };
        let stream = match accepted {
            Ok((stream, peer)) => {
                backoff = ACCEPT_BACKOFF_MIN;
                (stream, peer)
            }
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                tracing::error!(error = %e, retry_in_ms = backoff.as_millis() as u64, "accept failed");
                tokio::select! {
                    () = sleep(backoff) => {}
                    () = cancel.cancelled() => break,
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            // Full: make room by closing the connection that has waited longest for a
            // request head; if every connection has a request in flight, wait until
            // one ends its request (then it is such a connection) or closes.
            Err(_) => loop {
                shared.registry.evict_longest_waiting();
                tokio::select! {
                    permit = permits.clone().acquire_owned() => match permit {
                        Ok(permit) => break permit,
                        Err(_) => break 'accept,
                    },
                    () = shared.registry.request_ended.notified() => {}
                    () = cancel.cancelled() => break 'accept,
                }
            },
        };
        let (stream, peer) = stream;
        let _ = stream.set_nodelay(true);
        tokio::spawn(run_connection(stream, peer, shared.clone(), permit));
    }
    drop(listener);
    // Every connection holds a permit until it is closed.
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    let _ = permits.acquire_many(all).await;
    Ok(())
}

/// Errors of one connection that went away before it was accepted.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

struct Shared {
    router: Router,
    http: http1::Builder,
    limits: HttpLimits,
    registry: Registry,
    cancel: CancellationToken,
}

/// Serves one connection until it ends, runs over its time, is evicted, or shutdown.
/// Every request carries the peer address as `ConnectInfo<SocketAddr>` (audit log,
/// failed-login limits).
async fn run_connection(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    shared: Arc<Shared>,
    _permit: OwnedSemaphorePermit,
) {
    let registered = shared.registry.register();
    let state = registered.state.clone();
    let io = TokioIo::new(Metered {
        inner: stream,
        state: state.clone(),
    });
    let service = {
        let state = state.clone();
        let shared = shared.clone();
        let router = shared.router.clone();
        let body_timeout = shared.limits.body_timeout;
        service_fn(move |req: Request<Incoming>| {
            // hyper calls this as soon as a head is complete, while polling the
            // connection; the future below runs inside that poll too.
            state.set(Phase::Handling);
            let in_flight = InFlight {
                state: state.clone(),
                shared: shared.clone(),
            };
            let mut req = with_body_deadline(req, body_timeout);
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            let router = router.clone();
            async move {
                let Ok(resp) = router.oneshot(req).await;
                in_flight.state.set(Phase::Responding {
                    progress: Instant::now(),
                });
                Ok::<_, Infallible>(resp.map(|inner| Tracked {
                    inner,
                    _in_flight: in_flight,
                }))
            }
        })
    };
    let mut conn = pin!(shared.http.serve_connection(io, service));
    let mut watchdog = Watchdog {
        state: state.clone(),
        limits: shared.limits,
        sleep: None,
    };
    let mut grace = pin!(sleep(Duration::MAX));
    let mut shutting_down = false;
    loop {
        // `biased`: the connection first, so the watchdog always sees the phase the
        // connection's latest poll left.
        tokio::select! {
            biased;
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(error = %e, "HTTP connection ended with an error");
                }
                return;
            }
            () = &mut watchdog => {
                tracing::debug!(phase = ?*state.phase(), "closing HTTP connection: over its time");
                return;
            }
            () = state.evict.notified() => {
                if state.is_waiting() {
                    tracing::debug!("closing HTTP connection to make room for a new one");
                    return;
                }
            }
            () = shared.cancel.cancelled(), if !shutting_down => {
                if state.is_waiting() {
                    return;
                }
                shutting_down = true;
                conn.as_mut().graceful_shutdown();
                grace.as_mut().reset(Instant::now() + SHUTDOWN_GRACE);
            }
            () = &mut grace => {
                tracing::warn!("closing HTTP connection: request still in flight at shutdown");
                return;
            }
        }
    }
}

/// Where a connection is in its request cycle.
#[derive(Clone, Copy, Debug)]
enum Phase {
    /// Waiting for a request head, since `since` (accept, or the end of the previous
    /// response); `first_byte` is when its first byte arrived.
    Waiting {
        since: Instant,
        first_byte: Option<Instant>,
        first_request: bool,
    },
    /// The handler runs (bounded by the request and body timeouts, not here).
    Handling,
    /// The response is being written; a byte last went out at `progress`.
    Responding { progress: Instant },
}

/// A connection's phase, shared by its socket, its service and its watchdog (all of
/// which run in the connection's task).
struct ConnState {
    phase: Mutex<Phase>,
    evict: Notify,
}

impl ConnState {
    fn phase(&self) -> MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set(&self, phase: Phase) {
        *self.phase() = phase;
    }

    fn is_waiting(&self) -> bool {
        matches!(*self.phase(), Phase::Waiting { .. })
    }

    fn bytes_read(&self) {
        if let Phase::Waiting {
            first_byte: first_byte @ None,
            ..
        } = &mut *self.phase()
        {
            *first_byte = Some(Instant::now());
        }
    }

    fn bytes_written(&self) {
        if let Phase::Responding { progress } = &mut *self.phase() {
            *progress = Instant::now();
        }
    }

    /// When the connection is over its time, if anything bounds it here.
    fn deadline(&self, limits: &HttpLimits) -> Option<Instant> {
        match *self.phase() {
            Phase::Waiting {
                since,
                first_request: true,
                ..
            } => Some(since + limits.header_timeout),
            Phase::Waiting {
                first_byte: Some(at),
                ..
            } => Some(at + limits.header_timeout),
            Phase::Waiting { since, .. } => Some(since + limits.idle_timeout),
            Phase::Handling => None,
            Phase::Responding { progress } => Some(progress + limits.idle_timeout),
        }
    }

    /// Since when it has waited for a request head, if it is waiting.
    fn waiting_since(&self) -> Option<Instant> {
        match *self.phase() {
            Phase::Waiting { since, .. } => Some(since),
            _ => None,
        }
    }
}

/// Resolves when the connection's current phase has run over its time. Polled in the
/// connection's task after the connection itself, so it re-reads the deadline whenever
/// the phase may have changed; in `Handling` it has no deadline and waits for that.
struct Watchdog {
    state: Arc<ConnState>,
    limits: HttpLimits,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Future for Watchdog {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let Some(deadline) = this.state.deadline(&this.limits) else {
            return Poll::Pending;
        };
        let sleep = match &mut this.sleep {
            Some(sleep) => {
                if sleep.deadline() != deadline {
                    sleep.as_mut().reset(deadline);
                }
                sleep
            }
            None => this.sleep.insert(Box::pin(sleep_until(deadline))),
        };
        sleep.as_mut().poll(cx)
    }
}

/// The live connections, to find one to evict when all are taken.
#[derive(Default)]
struct Registry {
    next_id: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<ConnState>>>,
    /// Notified when a connection ends a request (and so could make room).
    request_ended: Notify,
}

impl Registry {
    fn conns(&self) -> MutexGuard<'_, HashMap<u64, Arc<ConnState>>> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn register(&self) -> Registered<'_> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(ConnState {
            phase: Mutex::new(Phase::Waiting {
                since: Instant::now(),
                first_byte: None,
                first_request: true,
            }),
            evict: Notify::new(),
        });
        self.conns().insert(id, state.clone());
        Registered {
            registry: self,
            id,
            state,
        }
    }

    /// Asks the connection that has waited longest for a request head to close.
    fn evict_longest_waiting(&self) {
        let conns = self.conns();
        let oldest = conns
            .values()
            .filter_map(|c| c.waiting_since().map(|since| (since, c)))
            .min_by_key(|(since, _)| *since);
        if let Some((_, conn)) = oldest {
            conn.evict.notify_one();
        }
    }
}

/// A connection's entry in the [`Registry`], removed when the connection ends.
struct Registered<'a> {
    registry: &'a Registry,
    id: u64,
    state: Arc<ConnState>,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.registry.conns().remove(&self.id);
    }
}

/// Marks the end of a request when dropped: hyper drops the response body once it has
/// written it (or gave up on the connection).
struct InFlight {
    state: Arc<ConnState>,
    shared: Arc<Shared>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.state.set(Phase::Waiting {
            since: Instant::now(),
            first_byte: None,
            first_request: false,
        });
        self.shared.registry.request_ended.notify_one();
    }
}

/// A response body that carries its request's [`InFlight`] marker.
struct Tracked<B> {
    inner: B,
    _in_flight: InFlight,
}

impl<B: HttpBody + Unpin> HttpBody for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The socket, telling the connection's state when bytes come in or go out.
struct Metered {
    inner: TcpStream,
    state: Arc<ConnState>,
}

impl AsyncRead for Metered {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.state.bytes_read();
        }
        res
    }
}

impl AsyncWrite for Metered {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            this.state.bytes_written();
        }
        res
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            this.state.bytes_written();
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// In the extensions of a request whose body is read under the body timeout: whether
/// the deadline passed. The router answers 408 when it did, whatever the handler made
/// of the failed read (the SigV4 check, for one, reads the body before any handler).
#[derive(Clone, Debug)]
pub struct BodyDeadline {
    expired: Arc<AtomicBool>,
    timeout: Duration,
}

impl BodyDeadline {
    pub fn expired(&self) -> bool {
        self.expired.load(Ordering::Acquire)
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// The error a request body yields when its deadline passes.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimedOut(Duration);

/// Puts the body of `req` (if it has one) under a deadline `timeout` from now.
fn with_body_deadline(req: Request<Incoming>, timeout: Duration) -> Request<Body> {
    let (mut parts, body) = req.into_parts();
    if body.is_end_stream() {
        return Request::from_parts(parts, Body::new(body));
    }
    let deadline = BodyDeadline {
        expired: Arc::default(),
        timeout,
    };
    parts.extensions.insert(deadline.clone());
    let body = DeadlineBody {
        inner: body,
        sleep: Box::pin(sleep(timeout)),
        deadline,
        failed: false,
    };
    Request::from_parts(parts, Body::new(body))
}

/// A body that fails with [`BodyTimedOut`] once its deadline passes: one deadline for the
/// whole body, not per chunk, so a trickle cannot keep it going.
struct DeadlineBody<B> {
    inner: B,
    sleep: Pin<Box<Sleep>>,
    deadline: BodyDeadline,
    failed: bool,
}

impl<B> HttpBody for DeadlineBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending if this.sleep.as_mut().poll(cx).is_ready() => {
                this.failed = true;
                this.deadline.expired.store(true, Ordering::Release);
                Poll::Ready(Some(Err(BodyTimedOut(this.deadline.timeout).into())))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use axum::extract::{Request as AxumRequest, State};
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use axum::routing::{get, post};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const WAIT: Duration = Duration::from_secs(10);

    fn limits(header_ms: u64, idle_ms: u64, body_ms: u64, max: usize) -> HttpLimits {
        HttpLimits {
            header_timeout: Duration::from_millis(header_ms),
            body_timeout: Duration::from_millis(body_ms),
            idle_timeout: Duration::from_millis(idle_ms),
            max_connections: max,
        }
    }

    /// `/block` requests add a permit to `entered`, then wait for one in `release`.
    struct Gate {
        entered: Semaphore,
        release: Semaphore,
    }

    fn test_router(gate: Arc<Gate>) -> Router {
        async fn echo(req: AxumRequest) -> impl IntoResponse {
            let deadline = req.extensions().get::<BodyDeadline>().cloned();
            match axum::body::to_bytes(req.into_body(), 4 << 20).await {
                Ok(b) => (StatusCode::OK, format!("got {}", b.len())),
                Err(_) if deadline.is_some_and(|d| d.expired()) => {
                    (StatusCode::REQUEST_TIMEOUT, "body timed out".to_owned())
                }
                Err(e) => (StatusCode::BAD_REQUEST, e.to_string()),
            }
        }
        async fn block(State(gate): State<Arc<Gate>>) -> &'static str {
            gate.entered.add_permits(1);
            gate.release.acquire().await.expect("gate").forget();
            "released"
        }
        Router::new()
            .route("/ok", get(|| async { "ok" }))
            .route("/echo", post(echo))
            .route("/block", get(block))
            .with_state(gate)
    }

    struct Server {
        addr: std::net::SocketAddr,
        cancel: CancellationToken,
        task: tokio::task::JoinHandle<io::Result<()>>,
        gate: Arc<Gate>,
    }

    impl Server {
        /// Waits until `n` more `/block` requests are in their handler.
        async fn entered(&self, n: u32) {
            tokio::time::timeout(WAIT, self.gate.entered.acquire_many(n))
                .await
                .expect("requests reach the handler")
                .unwrap()
                .forget();
        }
    }

    async fn start(limits: HttpLimits) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cancel = CancellationToken::new();
        let gate = Arc::new(Gate {
            entered: Semaphore::new(0),
            release: Semaphore::new(0),
        });
        let task = tokio::spawn(serve(
            listener,
            test_router(gate.clone()),
            limits,
            cancel.clone(),
        ));
        Server {
            addr,
            cancel,
            task,
            gate,
        }
    }

    /// Connects and sends `bytes`.
    async fn send(addr: std::net::SocketAddr, bytes: &str) -> TcpStream {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(bytes.as_bytes()).await.unwrap();
        s
    }

    /// Reads until the server closes the connection (or resets it); panics after `within`.
    async fn read_to_close(s: &mut TcpStream, within: Duration) -> Vec<u8> {
        let mut out = Vec::new();
        tokio::time::timeout(within, async {
            let mut buf = [0u8; 4096];
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await
        .expect("the server did not close the connection in time");
        out
    }

    /// Reads one response (head plus a `content-length` body); returns it as text.
    async fn read_response(s: &mut TcpStream) -> String {
        tokio::time::timeout(WAIT, async {
            let mut data = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = s.read(&mut buf).await.unwrap();
                assert!(n > 0, "closed before a full response: {data:?}");
                data.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&data).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    if data.len() >= end + 4 + len {
                        return text;
                    }
                }
            }
        })
        .await
        .expect("no response in time")
    }

    const GET_OK: &str = "GET /ok HTTP/1.1\r\nhost: x\r\n\r\n";

    #[tokio::test]
    async fn a_half_sent_head_is_closed_after_the_header_timeout() {
        let server = start(limits(300, 10_000, 10_000, 16)).await;
        let started = std::time::Instant::now();
        let mut s = send(server.addr, "GET /ok HTTP/1.1\r\nhost: x\r\n").await;
        let got = read_to_close(&mut s, WAIT).await;
        let took = started.elapsed();
        assert!(got.is_empty(), "no answer to a half-sent head: {got:?}");
        assert!(
            took >= Duration::from_millis(250),
            "closed too early: {took:?}"
        );
        assert!(took < Duration::from_secs(5), "closed too late: {took:?}");
        server.cancel.cancel();
        server.task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn an_idle_keep_alive_connection_outlives_the_header_timeout_then_closes() {
        let server = start(limits(200, 1_500, 10_000, 16)).await;
        let mut s = send(server.addr, GET_OK).await;
        assert!(read_response(&mut s).await.starts_with("HTTP/1.1 200"));
        let idle_from = std::time::Instant::now();
        // Well past the header timeout and still open: idle is not head time.
        let mut buf = [0u8; 16];
        let early = tokio::time::timeout(Duration::from_millis(800), s.read(&mut buf)).await;
        assert!(early.is_err(), "closed during the idle timeout: {early:?}");
        // It still serves a request...
        s.write_all(GET_OK.as_bytes()).await.unwrap();
        assert!(read_response(&mut s).await.starts_with("HTTP/1.1 200"));
        let idle_from_2 = std::time::Instant::now();
        // ...and is closed once idle for the idle timeout.
        read_to_close(&mut s, WAIT).await;
        assert!(idle_from_2.elapsed() >= Duration::from_millis(1_400));
        assert!(idle_from.elapsed() < Duration::from_secs(8));
        server.cancel.cancel();
        server.task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_kept_alive_connection_sending_a_partial_head_gets_the_header_timeout() {
        let server = start(limits(300, 20_000, 10_000, 16)).await;
        let mut s = send(server.addr, GET_OK).await;
        assert!(read_response(&mut s).await.starts_with("HTTP/1.1 200"));
        let started = std::time::Instant::now();
        s.write_all(b"GET /ok HTTP/1.1\r\n").await.unwrap();
        read_to_close(&mut s, WAIT).await;
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(250), "{took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
        server.cancel.cancel();
        server.task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_trickling_body_is_cut_at_the_body_timeout() {
        let server = start(limits(10_000, 10_000, 300, 16)).await;
        let mut s = send(
            server.addr,
            "POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nx",
        )
        .await;
        let started = std::time::Instant::now();
        let resp = read_response(&mut s).await;
        assert!(resp.starts_with("HTTP/1.1 408"), "{resp}");
        assert!(started.elapsed() >= Duration::from_millis(250));
        // A complete body is read normally.
        let mut s = send(
            server.addr,
            "POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc",
        )
        .await;
        let resp = read_response(&mut s).await;
        assert!(resp.ends_with("got 3"), "{resp}");
        server.cancel.cancel();
        server.task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_huge_head_is_refused_and_a_large_body_still_arrives() {
        let server = start(limits(10_000, 10_000, 10_000, 16)).await;
        let head = format!(
            "GET /ok HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
            "a".repeat(4 * MAX_BUF_BYTES)
        );
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        // hyper answers 431 and closes once its buffer is full (it checks after a read,
        // so a head may reach about twice `MAX_BUF_BYTES`), perhaps before all is sent.
        let _ = s.write_all(head.as_bytes()).await;
        // The connection is closed; the 431 may be lost to the reset that closing a
        // socket with unread bytes sends.
        let resp = String::from_utf8_lossy(&read_to_close(&mut s, WAIT).await).to_string();
        assert!(
            resp.is_empty() || resp.starts_with("HTTP/1.1 431"),
            "{resp}"
        );

        let body = vec![b'x'; 2 << 20];
        let mut s = send(
            server.addr,
            &format!(
                "POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
                body.len()
            ),
        )
        .await;
        s.write_all(&body).await.unwrap();
        let resp = read_response(&mut s).await;
        assert!(resp.ends_with(&format!("got {}", body.len())), "{resp}");
        server.cancel.cancel();
        server.task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn when_full_the_longest_waiting_connection_makes_room() {
        let server = start(limits(30_000, 30_000, 10_000, 4)).await;
        let mut idle = Vec::new();
        for _ in 0..4 {
            idle.push(send(server.addr, "GET /ok HTTP/1.1\r\n").await);
        }
        // A fifth client is served at once, not after the 30 s header timeout.
        let mut s = send(server.addr, GET_OK).await;
        assert!(read_response(&mut s).await.starts_with("HTTP/1.1 200"));
        // ...because one of the half-sent ones was closed.
        let closed = tokio::time::timeout(WAIT, async {
            loop {
                for c in &mut idle {
                    let mut buf = [0u8; 1];
                    if let Ok(Ok(0) | Err(_)) =
                        tokio::time::timeout(Duration::from_millis(20), c.read(&mut buf)).await
                    {
                        return;
                    }
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "no half-sent connection was closed");
        server.cancel.cancel();
        server.task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn when_every_connection_is_busy_new_ones_wait() {
        let server = start(limits(30_000, 30_000, 10_000, 2)).await;
        let mut busy = vec![
            send(server.addr, "GET /block HTTP/1.1\r\nhost: x\r\n\r\n").await,
            send(server.addr, "GET /block HTTP/1.1\r\nhost: x\r\n\r\n").await,
        ];
        server.entered(2).await;
        let mut third = send(server.addr, GET_OK).await;
        let mut buf = [0u8; 1];
        let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut buf)).await;
        assert!(early.is_err(), "served beyond the cap: {early:?}");
        server.gate.release.add_permits(2);
        for s in &mut busy {
            assert!(read_response(s).await.ends_with("released"));
        }
        assert!(read_response(&mut third).await.starts_with("HTTP/1.1 200"));
        server.cancel.cancel();
        server.task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn shutdown_closes_waiting_connections_and_lets_requests_finish() {
        let server = start(limits(30_000, 30_000, 10_000, 16)).await;
        let mut half = send(server.addr, "GET /ok HTTP/1.1\r\n").await;
        let mut kept = send(server.addr, GET_OK).await;
        assert!(read_response(&mut kept).await.starts_with("HTTP/1.1 200"));
        let mut busy = send(server.addr, "GET /block HTTP/1.1\r\nhost: x\r\n\r\n").await;
        server.entered(1).await;
        server.cancel.cancel();
        read_to_close(&mut half, Duration::from_secs(2)).await;
        read_to_close(&mut kept, Duration::from_secs(2)).await;
        assert!(
            !server.task.is_finished(),
            "returned with a request in flight"
        );
        server.gate.release.add_permits(1);
        let resp = String::from_utf8(read_to_close(&mut busy, WAIT).await).unwrap();
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        assert!(resp.ends_with("released"), "{resp}");
        tokio::time::timeout(WAIT, server.task)
            .await
            .expect("serve returns after shutdown")
            .unwrap()
            .unwrap();
    }

    #[test]
    fn the_connection_cap_leaves_descriptors_to_the_rest() {
        assert_eq!(connection_cap(1024, Some(20_000)), 1024);
        assert_eq!(connection_cap(1024, Some(1024)), 768);
        assert_eq!(connection_cap(64, Some(1024)), 64);
        assert_eq!(connection_cap(1024, Some(300)), 150);
        assert_eq!(connection_cap(1024, None), 1024);
        assert_eq!(connection_cap(1024, Some(1)), 1);
    }
}
