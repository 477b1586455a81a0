//! hyper's own error answers, given Watcher's error body.
//!
//! When a request cannot even be parsed (a head larger than hyper will
//! buffer, a URI too long, bytes that are not HTTP), hyper answers by
//! itself, before any handler runs, with a status line and no body. Every
//! other refusal of ours carries Watcher's error body, and clients
//! (python-watcherclient among them) print its `faultstring`; an empty
//! body leaves the operator with a bare number. hyper offers no hook for
//! these answers, so the connection's writes are watched instead: a
//! response hyper wrote with `content-length: 0` and one of the statuses
//! only hyper produces bodiless is replaced, whole, by the same status
//! with Watcher's body. Handlers' answers always have a body (or are not
//! one of these statuses), so they pass untouched.

use axum::http::StatusCode;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// An IO stream whose bodiless parse-error answers get Watcher's body.
pub(crate) struct ErrorBodies<T> {
    inner: T,
    /// The size of request heads the server reads, for the 431's message.
    head_limit: usize,
    /// A replacement answer not yet fully written.
    pending: Vec<u8>,
    written: usize,
}

impl<T> ErrorBodies<T> {
    pub fn new(inner: T, head_limit: usize) -> Self {
        ErrorBodies {
            inner,
            head_limit,
            pending: Vec::new(),
            written: 0,
        }
    }
}

/// What the operator is told for each status hyper answers alone.
fn explanation(status: StatusCode, head_limit: usize) -> Option<String> {
    Some(match status {
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => format!(
            "The request's headers are larger than the {} KiB watcherd reads; send fewer or \
             shorter headers (a token too large for one?).",
            head_limit / 1024
        ),
        StatusCode::URI_TOO_LONG => {
            "The request's URI is too long; pass long values in the body of a POST or PATCH, \
             or in fewer query parameters."
                .to_string()
        }
        StatusCode::BAD_REQUEST => {
            "The request is not valid HTTP/1.1 and could not be read.".to_string()
        }
        _ => return None,
    })
}

/// The replacement for `bytes`, if they are a whole bodiless error answer
/// of hyper's own.
fn replacement(bytes: &[u8], head_limit: usize) -> Option<Vec<u8>> {
    // Every write passes here: answers' bodies are never scanned.
    if bytes.len() > 1024 || !bytes.starts_with(b"HTTP/1.1 4") {
        return None;
    }
    let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    if head_end != bytes.len() {
        return None;
    }
    let head = std::str::from_utf8(bytes).ok()?;
    let code: u16 = head.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()?;
    let status = StatusCode::from_u16(code).ok()?;
    let message = explanation(status, head_limit)?;
    if !head
        .lines()
        .any(|l| l.eq_ignore_ascii_case("content-length: 0"))
    {
        return None;
    }
    let body = crate::error::error_body(status, &message);
    Some(
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

impl<T: AsyncRead + Unpin> AsyncRead for ErrorBodies<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> ErrorBodies<T> {
    /// Writes what is left of a replacement; ready once it is all out.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ErrorBodies<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_pending(cx))?;
        if let Some(answer) = replacement(buf, this.head_limit) {
            // Taken whole: hyper sees its bytes written; ours follow.
            this.pending = answer;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }

    // Not vectored: hyper then flattens each answer into one buffer, so a
    // whole error answer arrives in one write.
    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_bodiless_error_answers_are_replaced() {
        let bare = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: Mon, 07 Dec 2026 20:00:00 GMT\r\n\r\n";
        let new = String::from_utf8(replacement(bare, 64 * 1024).unwrap()).unwrap();
        assert!(new.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        let (_, body) = new.split_once("\r\n\r\n").unwrap();
        assert!(new.contains(&format!("content-length: {}\r\n", body.len())));
        let outer: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(outer["error_message"]
            .as_str()
            .unwrap()
            .contains("headers are larger"));
        // A handler's 431 has a body; a 200 is never touched.
        assert!(replacement(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 12\r\n\r\n",
            64 * 1024
        )
        .is_none());
        assert!(replacement(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n{}",
            64 * 1024
        )
        .is_none());
        assert!(replacement(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", 64 * 1024).is_none());
        assert!(replacement(
            b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\n\r\n",
            64 * 1024
        )
        .is_some());
    }
}
