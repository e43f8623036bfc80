//! A connection's bytes read, counted where they come off the socket, so that a WebSocket
//! session can see a message that has begun but not ended: the WebSocket library buffers an
//! unfinished message out of sight, and a client that sends all but its last byte would
//! otherwise hold that buffer (up to the largest message) for as long as it likes.
//!
//! Once a session [`watch`](ReadMeter::watch)es unfinished messages, the bytes read since the
//! last whole message are charged, as they arrive, against a byte budget shared with request
//! bodies; a read the budget cannot cover fails the connection. The session tells the meter when
//! a message ended ([`message_done`](ReadMeter::message_done)), which frees them, and asks how long
//! one has been unfinished ([`unfinished_since`](ReadMeter::unfinished_since)) to enforce a time
//! limit.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use crate::gateway::body::BodyBudget;

/// The read side of one connection, shared by its stream and (through the request's
/// extensions) the handler that serves it.
#[derive(Debug, Clone, Default)]
pub struct ReadMeter(Arc<Shared>);

#[derive(Debug, Default)]
struct Shared {
    read: AtomicU64,
    watching: AtomicBool,
    unfinished: Mutex<Unfinished>,
}

/// The message being received, while watched.
#[derive(Debug, Default)]
struct Unfinished {
    budget: Option<BodyBudget>,
    /// Bytes read when the last message ended.
    baseline: u64,
    /// The unfinished message's bytes taken from the budget (a permit per byte).
    held: Option<OwnedSemaphorePermit>,
    since: Option<Instant>,
}

impl Unfinished {
    fn held_bytes(&self) -> u64 {
        self.held.as_ref().map_or(0, |p| p.num_permits() as u64)
    }
}

impl ReadMeter {
    /// Bytes read from the connection so far.
    pub fn bytes_read(&self) -> u64 {
        self.0.read.load(Ordering::Relaxed)
    }

    /// From now on, bytes read past a whole message are charged against `budget` until
    /// [`message_done`](Self::message_done).
    pub fn watch(&self, budget: BodyBudget) {
        let mut u = self.lock();
        u.budget = Some(budget);
        u.baseline = self.bytes_read();
        u.held = None;
        u.since = None;
        self.0.watching.store(true, Ordering::Release);
    }

    /// A whole message has been read: what was read so far is no longer unfinished.
    pub fn message_done(&self) {
        let mut u = self.lock();
        u.baseline = self.bytes_read();
        u.held = None;
        u.since = None;
    }

    /// When the unfinished message's first byte was read, if one is being received.
    pub fn unfinished_since(&self) -> Option<Instant> {
        self.lock().since
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Unfinished> {
        self.0.unfinished.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts `n` bytes just read; an error when a watched message outgrows the budget.
    fn count(&self, n: usize) -> io::Result<()> {
        let total = self.0.read.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        if n == 0 || !self.0.watching.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut u = self.lock();
        let pending = total.saturating_sub(u.baseline);
        let held = u.held_bytes();
        if pending <= held {
            return Ok(());
        }
        u.since.get_or_insert_with(Instant::now);
        let Some(budget) = u.budget.clone() else { return Ok(()) };
        let more = usize::try_from(pending - held).unwrap_or(usize::MAX);
        budget
            .take(more, &mut u.held)
            .map_err(|_| io::Error::other("an unfinished WebSocket message is over the shared body budget"))
    }
}

/// A stream whose reads are counted by a [`ReadMeter`].
#[derive(Debug)]
pub struct Metered<S> {
    inner: S,
    meter: ReadMeter,
}

impl<S> Metered<S> {
    /// `inner`, counted by `meter`.
    pub fn new(inner: S, meter: ReadMeter) -> Self {
        Self { inner, meter }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => Poll::Ready(this.meter.count(buf.filled().len() - before)),
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    #[tokio::test]
    async fn unwatched_reads_are_only_counted() {
        let (mut client, server) = tokio::io::duplex(64);
        let meter = ReadMeter::default();
        let mut s = Metered::new(server, meter.clone());
        client.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(meter.bytes_read(), 5);
        assert_eq!(meter.unfinished_since(), None);
    }

    #[tokio::test]
    async fn an_unfinished_message_holds_budget_until_done_and_fails_past_it() {
        let (mut client, server) = tokio::io::duplex(64);
        let meter = ReadMeter::default();
        let budget = BodyBudget::new(10);
        let mut s = Metered::new(server, meter.clone());
        meter.watch(budget.clone());
        let mut buf = [0u8; 16];
        client.write_all(b"123456").await.unwrap();
        assert_eq!(s.read(&mut buf).await.unwrap(), 6);
        assert_eq!(budget.available(), 4);
        assert!(meter.unfinished_since().is_some());
        meter.message_done();
        assert_eq!((budget.available(), meter.unfinished_since()), (10, None));
        client.write_all(b"12345678901").await.unwrap();
        let err = s.read(&mut buf).await.expect_err("11 bytes of a budget of 10");
        assert!(err.to_string().contains("budget"), "{err}");
        assert_eq!(budget.available(), 10, "a refused read takes nothing");
    }
}
