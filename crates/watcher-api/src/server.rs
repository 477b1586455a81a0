//! The API's HTTP server: hyper's HTTP/1.1 connections under limits that
//! keep watcherd answering when clients misbehave.
//!
//! - At most `max_connections` connections are kept. When a new one
//!   arrives at the cap, the connection that has been idle longest (no
//!   request being handled: waiting for headers, trickling them, or idle
//!   between keep-alive requests) is closed to make room; connections
//!   handling a request are never closed. So thousands of idle or
//!   half-sent connections cannot starve a real request, nor exhaust the
//!   process's file descriptors.
//! - Headers must arrive within `header_timeout`; a keep-alive connection
//!   idle for `idle_timeout` is closed; a request is answered within
//!   `request_timeout` (503 with Watcher's error body, otherwise).
//! - TLS handshakes (with `--tls-cert`) happen in the connection's own
//!   task, under `header_timeout` too.
//! - Headers past [`MAX_HEADER_COUNT`], [`MAX_HEADER_LINE`] or
//!   [`MAX_HEADER_BYTES`] get 431 with Watcher's error body. hyper's own
//!   limits sit above ours and only stop heads too big to buffer; its
//!   bodiless answers are given Watcher's body too (`bare_errors.rs`).

use crate::bare_errors::ErrorBodies;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// The most headers a request may carry (eventlet's, under upstream).
pub const MAX_HEADER_COUNT: usize = 100;
/// The longest header line, name and value (oslo.service's `max_header_line`).
pub const MAX_HEADER_LINE: usize = 16 * 1024;
/// All header lines together.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// hyper's limits: above ours, so that ours answer with a body.
const HYPER_MAX_HEADERS: usize = 2 * MAX_HEADER_COUNT;
const HYPER_MAX_BUF: usize = 2 * MAX_HEADER_BYTES;

/// Why a request's headers are refused, if they are.
fn headers_refused(headers: &axum::http::HeaderMap) -> Option<String> {
    if headers.len() > MAX_HEADER_COUNT {
        return Some(format!(
            "The request has {} headers; at most {MAX_HEADER_COUNT} are accepted.",
            headers.len()
        ));
    }
    let mut total = 0;
    for (name, value) in headers {
        let line = name.as_str().len() + 2 + value.len();
        if line > MAX_HEADER_LINE {
            return Some(format!(
                "Header {name} is {line} bytes long; a header line may have at most {MAX_HEADER_LINE}."
            ));
        }
        total += line + 2;
    }
    (total > MAX_HEADER_BYTES).then(|| {
        format!(
            "The request's headers take {total} bytes; at most {MAX_HEADER_BYTES} are accepted."
        )
    })
}

/// What the server shares among connections to keep memory bounded.
struct Budgets {
    /// Turns to run a handler (`max_requests`).
    handlers: tokio::sync::Semaphore,
    /// KiB of answers not written yet (`max_unsent_mib`).
    unsent_kib: Arc<tokio::sync::Semaphore>,
    max_kib: usize,
}

/// Answers below this size are never refused for the budget.
const SMALL_ANSWER_KIB: usize = 16;

impl Budgets {
    /// The answer with its share of the unsent budget, held until it has
    /// been written (or its connection dropped); 503 when a large answer
    /// finds the budget spent. The answers are rendered in memory already
    /// (JSON), so taking their bytes costs nothing more.
    async fn hold_until_sent(&self, resp: axum::response::Response) -> axum::response::Response {
        use axum::response::IntoResponse;
        use hyper::body::Body as _;
        let hint = resp.body().size_hint();
        let kib = (hint.exact().unwrap_or(hint.lower()) as usize).div_ceil(1024);
        if kib < SMALL_ANSWER_KIB || hint.exact().is_none() {
            return resp;
        }
        match self
            .unsent_kib
            .clone()
            .try_acquire_many_owned(kib.min(self.max_kib) as u32)
        {
            Ok(permit) => {
                let (parts, body) = resp.into_parts();
                match axum::body::to_bytes(body, usize::MAX).await {
                    Ok(data) => axum::response::Response::from_parts(
                        parts,
                        axum::body::Body::new(Budgeted {
                            data,
                            _permit: permit,
                        }),
                    ),
                    Err(e) => crate::ApiError::new(
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        format!("The answer could not be produced: {e}"),
                    )
                    .into_response(),
                }
            }
            Err(_) => crate::ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "The server holds too many answers that clients have not read yet; retry in a few seconds.",
            )
            .into_response(),
        }
    }
}

/// An answer's body holding its share of the unsent budget. It is handed
/// to hyper a frame at a time, and hyper asks for the next only when its
/// write buffer has room: the permit goes when the last bytes do.
struct Budgeted {
    data: bytes::Bytes,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

const FRAME_BYTES: usize = 16 * 1024;

impl hyper::body::Body for Budgeted {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        if self.data.is_empty() {
            return std::task::Poll::Ready(None);
        }
        let n = self.data.len().min(FRAME_BYTES);
        let frame = self.data.split_to(n);
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(frame))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_empty()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.data.len() as u64)
    }
}

/// The router's outer layer (inside the access log): 431 with Watcher's
/// error body for headers past our limits.
pub(crate) async fn refuse_large_headers(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match headers_refused(req.headers()) {
        Some(why) => {
            crate::ApiError::new(axum::http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, why)
                .into_response()
        }
        None => next.run(req).await,
    }
}

/// `[api]` limits (see docs/operations.md).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerLimits {
    /// Connections kept open at once; past it the longest-idle one is
    /// closed for each new one.
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers (and to finish
    /// the TLS handshake).
    pub header_timeout_secs: f64,
    /// Seconds a keep-alive connection may stay idle between requests.
    pub idle_timeout_secs: f64,
    /// Seconds a request may take before it is answered with 503.
    pub request_timeout_secs: f64,
    /// Requests handled at once; the others wait their turn (within
    /// `request_timeout_secs`). A list of a thousand actions is rendered in
    /// memory: without this, a thousand clients asking at once cost a
    /// thousand renderings at the same time.
    pub max_requests: usize,
    /// MiB of answers waiting to be written, all connections together. A
    /// client that asks for a thousand actions and never reads keeps its
    /// answer in memory; past this, a large answer gets 503 instead (small
    /// ones always go), until idle and stalled connections are closed.
    pub max_unsent_mib: usize,
    /// Without authentication, the names (`host` or `host:port`) this
    /// watcherd answers to besides loopback names and IP addresses, e.g.
    /// the name of a proxy in front of it; any other `Host` gets 421, so a
    /// web page whose name was rebound to this address (DNS rebinding)
    /// cannot read the answers.
    pub allowed_hosts: Vec<String>,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_connections: 512,
            header_timeout_secs: 10.0,
            idle_timeout_secs: 60.0,
            request_timeout_secs: 120.0,
            max_requests: 32,
            max_unsent_mib: 64,
            allowed_hosts: Vec::new(),
        }
    }
}

impl ServerLimits {
    pub fn check(&self) -> Result<(), String> {
        if self.max_connections == 0 {
            return Err("api.max_connections must be at least 1".into());
        }
        if self.max_requests == 0 {
            return Err("api.max_requests must be at least 1".into());
        }
        if self.max_unsent_mib == 0 {
            return Err("api.max_unsent_mib must be at least 1".into());
        }
        for (name, v) in [
            ("api.header_timeout_secs", self.header_timeout_secs),
            ("api.idle_timeout_secs", self.idle_timeout_secs),
            ("api.request_timeout_secs", self.request_timeout_secs),
        ] {
            if !(v > 0.0 && v.is_finite()) {
                return Err(format!("{name} must be a positive number of seconds"));
            }
        }
        Ok(())
    }
}

/// One open connection, shared by the accept loop and its task.
struct Conn {
    /// A request is being handled: never evicted.
    busy: AtomicBool,
    /// When it last became idle (accepted, or a request answered).
    idle_since: Mutex<Instant>,
    close: CancellationToken,
}

impl Conn {
    fn idle_for(&self) -> Option<Duration> {
        (!self.busy.load(Ordering::Acquire))
            .then(|| self.idle_since.lock().expect("idle lock").elapsed())
    }
}

type Registry = Arc<Mutex<HashMap<u64, Arc<Conn>>>>;

/// What the server serves: the API's router, whose errors are answers.
pub trait App:
    tower::Service<
        Request,
        Response = axum::response::Response,
        Error = std::convert::Infallible,
        Future: Send,
    > + Clone
    + Send
    + 'static
{
}

impl<S> App for S where
    S: tower::Service<
            Request,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
            Future: Send,
        > + Clone
        + Send
        + 'static
{
}

/// Serves `app` on `listener` until `shutdown` fires, then lets requests
/// being handled finish (idle connections are closed at once).
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<watcher_tls::rustls::ServerConfig>>,
    app: impl App,
    limits: ServerLimits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let registry: Registry = Arc::default();
    let next_id = AtomicU64::new(0);
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    let tasks = tokio_util::task::TaskTracker::new();
    let turns = Arc::new(Budgets {
        handlers: tokio::sync::Semaphore::new(limits.max_requests),
        unsent_kib: Arc::new(tokio::sync::Semaphore::new(limits.max_unsent_mib * 1024)),
        max_kib: limits.max_unsent_mib * 1024,
    });
    loop {
        let (stream, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: make room, wait.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    evict_longest_idle(&registry);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        if registry.lock().expect("registry lock").len() >= limits.max_connections {
            evict_longest_idle(&registry);
        }
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            busy: AtomicBool::new(false),
            idle_since: Mutex::new(Instant::now()),
            close: shutdown.child_token(),
        });
        registry
            .lock()
            .expect("registry lock")
            .insert(id, conn.clone());
        let (registry, app, tls, limits, turns) = (
            registry.clone(),
            app.clone(),
            tls.clone(),
            limits.clone(),
            turns.clone(),
        );
        tasks.spawn(async move {
            let header_timeout = Duration::from_secs_f64(limits.header_timeout_secs);
            match tls {
                None => connection(stream, app, &limits, conn, turns, peer).await,
                Some(acceptor) => {
                    match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => connection(s, app, &limits, conn, turns, peer).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
            registry.lock().expect("registry lock").remove(&id);
        });
    }
    // Stop: idle connections go now, busy ones finish their request.
    tasks.close();
    tasks.wait().await;
    Ok(())
}

/// Closes the connection idle the longest, if any is idle.
fn evict_longest_idle(registry: &Registry) {
    let registry = registry.lock().expect("registry lock");
    let victim = registry
        .values()
        .filter(|c| !c.close.is_cancelled())
        .filter_map(|c| Some((c.idle_for()?, c)))
        .max_by_key(|(idle, _)| *idle);
    if let Some((_, c)) = victim {
        c.close.cancel();
    }
}

/// One HTTP/1.1 connection: requests through `app`, closed when `close`
/// fires while it is idle, or after `idle_timeout` without a request.
async fn connection(
    io: impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
    app: impl App,
    limits: &ServerLimits,
    state: Arc<Conn>,
    turns: Arc<Budgets>,
    peer: std::net::SocketAddr,
) {
    let request_timeout = Duration::from_secs_f64(limits.request_timeout_secs);
    let idle_timeout = Duration::from_secs_f64(limits.idle_timeout_secs);
    let shared = state.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let (app, state, turns) = (app.clone(), shared.clone(), turns.clone());
        state.busy.store(true, Ordering::Release);
        async move {
            use axum::response::IntoResponse;
            let mut req = req.map(axum::body::Body::new);
            // Who is calling, for the dashboard's loopback rule.
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            // Its turn among `max_requests`, then the handler; the timeout
            // covers both.
            let handled = async {
                let _turn = turns.handlers.acquire().await;
                app.oneshot(req).await
            };
            let resp = match tokio::time::timeout(request_timeout, handled).await {
                Ok(Ok(r)) => turns.hold_until_sent(r).await,
                Ok(Err(never)) => match never {},
                Err(_) => crate::ApiError::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "The request took longer than {:.0} s and was abandoned; retry it.",
                        request_timeout.as_secs_f64()
                    ),
                )
                .into_response(),
            };
            *state.idle_since.lock().expect("idle lock") = Instant::now();
            state.busy.store(false, Ordering::Release);
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs_f64(limits.header_timeout_secs))
        .max_headers(HYPER_MAX_HEADERS)
        .max_buf_size(HYPER_MAX_BUF)
        .keep_alive(true)
        .serve_connection(
            TokioIo::new(ErrorBodies::new(io, MAX_HEADER_BYTES)),
            service,
        );
    tokio::pin!(conn);
    let mut tick = tokio::time::interval(Duration::from_secs(1).min(idle_timeout));
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = state.close.cancelled(), if !state.busy.load(Ordering::Acquire) => break,
            _ = tick.tick() => {
                if state.idle_for().is_some_and(|idle| idle >= idle_timeout) {
                    break;
                }
            }
        }
    }
    // Finish a response being written, then close.
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(bytes: usize) -> axum::response::Response {
        axum::response::Response::new(axum::body::Body::from(vec![b'x'; bytes]))
    }

    #[tokio::test]
    async fn large_answers_hold_the_unsent_budget_until_written_and_small_ones_always_go() {
        let budgets = Budgets {
            handlers: tokio::sync::Semaphore::new(1),
            unsent_kib: Arc::new(tokio::sync::Semaphore::new(1024)),
            max_kib: 1024,
        };
        let first = budgets.hold_until_sent(answer(800 * 1024)).await;
        assert_eq!(first.status(), 200);
        let second = budgets.hold_until_sent(answer(800 * 1024)).await;
        assert_eq!(second.status(), 503);
        let body = axum::body::to_bytes(second.into_body(), usize::MAX)
            .await
            .unwrap();
        assert!(String::from_utf8_lossy(&body).contains("not read yet"));
        assert_eq!(
            budgets.hold_until_sent(answer(4 * 1024)).await.status(),
            200
        );
        // Written out (or its connection gone): the budget comes back.
        let sent = axum::body::to_bytes(first.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(sent.len(), 800 * 1024);
        assert_eq!(budgets.unsent_kib.available_permits(), 1024);
        assert_eq!(
            budgets.hold_until_sent(answer(800 * 1024)).await.status(),
            200
        );
    }
}
