//! Relay streams: one long-lived libp2p stream per peer carries many relays at once, each frame
//! tagged with an id, so a relay costs no stream negotiation and no trip through the swarm event
//! loop (request-response opened a stream per relay and passed every request and answer through
//! the event loop on both sides: ~5 task hops per direction).
//!
//! Frames, both ways: `u32` big-endian length of the rest, then a `u64` big-endian id chosen by
//! the requester, then an encoded `RelayRequest` (or, back, `RelayResponse`): the bytes the
//! request-response relay carries, validated the same way on both ends. The length is capped
//! (`relay.max_body_bytes` plus headroom); a larger frame fails the stream.
//!
//! Requester ([`RelayStreams`]): the first relay to a peer opens the stream; a writer task sends
//! frames, a reader task hands answers to the waiting callers by id. A broken stream fails the
//! relays waiting on it (the router fails over as for any transport error) and the next relay
//! opens a new one. A peer that does not speak the protocol is remembered for
//! [`UNSUPPORTED_FOR`] and relayed to over request-response meanwhile.
//!
//! Server ([`accept`]): each accepted stream gets a reader that passes requests to the relay
//! server (the same checks, capacity permits and receipts as request-response relays) and a
//! writer for the answers; at most [`MAX_IN_FLIGHT_PER_STREAM`] relays of one stream are served at
//! once (the reader stops reading beyond it: backpressure on that peer only) and a peer may hold
//! at most [`MAX_STREAMS_PER_PEER`] streams.
//!
//! Cancel-safety: the tasks hold no state outside their stream; dropping them fails the relays in
//! flight on it, which their callers see as transport errors.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, StreamExt as _};
use libp2p::{PeerId, StreamProtocol};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::p2p::P2pError;

/// Relays of one stream served at once; further frames wait unread.
pub const MAX_IN_FLIGHT_PER_STREAM: usize = 256;
/// Streams one peer may hold open to this node.
pub const MAX_STREAMS_PER_PEER: usize = 4;
/// How long a peer that refused the protocol is relayed to over request-response instead.
pub const UNSUPPORTED_FOR: Duration = Duration::from_secs(600);
/// Longest wait for a new stream to be opened.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);
/// Frames queued for the writer of one stream.
const WRITE_QUEUE: usize = 256;
/// Bytes of a frame besides the message: the id.
const ID_BYTES: usize = 8;

/// The protocol name of relay streams on `network_id`.
pub fn protocol(network_id: &str) -> Result<StreamProtocol, String> {
    StreamProtocol::try_from_owned(format!("/rpcmesh/{network_id}/relay-stream/1"))
        .map_err(|e| format!("network id makes an invalid protocol name: {e}"))
}

/// The head of one frame: the length of the rest, then the id.
fn frame_head(id: u64, message_len: usize) -> [u8; 4 + ID_BYTES] {
    let len = u32::try_from(ID_BYTES + message_len).unwrap_or(u32::MAX);
    let mut head = [0u8; 4 + ID_BYTES];
    head[..4].copy_from_slice(&len.to_be_bytes());
    head[4..].copy_from_slice(&id.to_be_bytes());
    head
}

/// Reads one frame of at most `max_message` message bytes; `None` when the stream ends between
/// frames (or inside one: either way nothing more comes).
async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, max_message: usize) -> io::Result<Option<(u64, Vec<u8>)>> {
    let len = match crate::p2p::read_len(r, ID_BYTES + max_message).await {
        Ok(len) => len,
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    };
    if len < ID_BYTES {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("relay frame of {len} bytes")));
    }
    let mut id = [0u8; ID_BYTES];
    r.read_exact(&mut id).await?;
    let mut message = vec![0u8; len - ID_BYTES];
    r.read_exact(&mut message).await?;
    Ok(Some((u64::from_be_bytes(id), message)))
}

/// Frames of at most this many message bytes are gathered into one write; larger ones are
/// written as queued (head, then the message: no copy).
const GATHER_BYTES: usize = 16 * 1024;

/// Writes queued frames, flushing when the queue is empty (several frames, one flush). Small
/// frames are gathered into one buffer first: every write to a yamux stream is a yamux frame of
/// its own, which the connection may encrypt and send on its own, so a 12-byte head written apart
/// from its message costs a frame, a Noise seal and often a syscall of its own.
async fn write_frames<W: AsyncWrite + Unpin>(w: &mut W, queue: &mut mpsc::Receiver<(u64, Vec<u8>)>) -> io::Result<()> {
    let mut gathered = Vec::with_capacity(GATHER_BYTES + 4 + ID_BYTES);
    while let Some((id, message)) = queue.recv().await {
        let head = frame_head(id, message.len());
        if message.len() <= GATHER_BYTES {
            gathered.extend_from_slice(&head);
            gathered.extend_from_slice(&message);
        } else {
            if !gathered.is_empty() {
                w.write_all(&gathered).await?;
                gathered.clear();
            }
            w.write_all(&head).await?;
            w.write_all(&message).await?;
        }
        let idle = queue.is_empty();
        if (idle || gathered.len() >= GATHER_BYTES) && !gathered.is_empty() {
            w.write_all(&gathered).await?;
            gathered.clear();
        }
        if idle {
            w.flush().await?;
        }
    }
    let _ = w.close().await;
    Ok(())
}

/// Why a relay over a stream failed.
#[derive(Debug)]
pub enum StreamError {
    /// The peer does not speak the protocol: relay over request-response (the request, back).
    Unsupported(Vec<u8>),
    /// No stream, or it broke, or no answer in time.
    Transport(P2pError),
}

/// Why no link to a peer was had.
enum Opened {
    Unsupported,
    Failed(P2pError),
}

/// The requester side: streams to peers, opened on first use.
#[derive(Clone)]
pub struct RelayStreams {
    inner: Arc<Client>,
}

struct Client {
    control: libp2p_stream::Control,
    protocol: StreamProtocol,
    max_message: usize,
    /// Per peer: its open link, behind a lock only the opener of a new one waits on.
    links: Mutex<HashMap<PeerId, LinkSlot>>,
    unsupported: Mutex<HashMap<PeerId, Instant>>,
}

/// A peer's link, behind an async lock that only the opener of a new link waits on.
type LinkSlot = Arc<tokio::sync::Mutex<Option<Arc<Link>>>>;

/// One open stream to a peer.
struct Link {
    queue: mpsc::Sender<(u64, Vec<u8>)>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Vec<u8>>>>,
    next_id: AtomicU64,
    broken: AtomicBool,
    stop: CancellationToken,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Link {
    fn fail_all(&self) {
        self.broken.store(true, Ordering::Release);
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

impl RelayStreams {
    /// Streams of `protocol` opened through `control`; answers of at most `max_message` bytes.
    pub fn new(control: libp2p_stream::Control, protocol: StreamProtocol, max_message: usize) -> Self {
        Self {
            inner: Arc::new(Client {
                control,
                protocol,
                max_message,
                links: Mutex::default(),
                unsupported: Mutex::default(),
            }),
        }
    }

    /// Relays the encoded `request` to `peer` and returns the encoded response, within `timeout`.
    pub async fn call(&self, peer: PeerId, request: Vec<u8>, timeout: Duration) -> Result<Vec<u8>, StreamError> {
        let deadline = Instant::now() + timeout;
        if self.unsupported(&peer) {
            return Err(StreamError::Unsupported(request));
        }
        let link = match self.link(peer, deadline).await {
            Ok(l) => l,
            Err(Opened::Unsupported) => return Err(StreamError::Unsupported(request)),
            Err(Opened::Failed(e)) => return Err(StreamError::Transport(e)),
        };
        let id = link.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        link.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(id, tx);
        let failed = |reason: &str| StreamError::Transport(P2pError::Relay { peer, reason: reason.into() });
        let forget = || {
            link.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        };
        match tokio::time::timeout_at(deadline, link.queue.send((id, request))).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                forget();
                return Err(failed("relay stream closed"));
            }
            Err(_) => {
                forget();
                return Err(StreamError::Transport(P2pError::Timeout(peer)));
            }
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(failed("relay stream broke")),
            Err(_) => {
                forget();
                Err(StreamError::Transport(P2pError::Timeout(peer)))
            }
        }
    }

    fn unsupported(&self, peer: &PeerId) -> bool {
        let mut u = self.inner.unsupported.lock().unwrap_or_else(|p| p.into_inner());
        match u.get(peer) {
            Some(since) if since.elapsed() < UNSUPPORTED_FOR => true,
            Some(_) => {
                u.remove(peer);
                false
            }
            None => false,
        }
    }

    /// The open link to `peer`, opening one if there is none (or it broke).
    async fn link(&self, peer: PeerId, deadline: Instant) -> Result<Arc<Link>, Opened> {
        let slot = {
            let mut links = self.inner.links.lock().unwrap_or_else(|p| p.into_inner());
            links.entry(peer).or_default().clone()
        };
        let mut slot = match tokio::time::timeout_at(deadline, slot.lock()).await {
            Ok(s) => s,
            Err(_) => return Err(Opened::Failed(P2pError::Timeout(peer))),
        };
        if let Some(link) = slot.as_ref().filter(|l| !l.broken.load(Ordering::Acquire)) {
            return Ok(link.clone());
        }
        *slot = None;
        let open_by = deadline.min(Instant::now() + OPEN_TIMEOUT);
        let mut control = self.inner.control.clone();
        let stream =
            match tokio::time::timeout_at(open_by, control.open_stream(peer, self.inner.protocol.clone())).await {
                Ok(Ok(s)) => s,
                Ok(Err(libp2p_stream::OpenStreamError::UnsupportedProtocol(_))) => {
                    self.inner.unsupported.lock().unwrap_or_else(|p| p.into_inner()).insert(peer, Instant::now());
                    return Err(Opened::Unsupported);
                }
                Ok(Err(e)) => return Err(Opened::Failed(P2pError::Relay { peer, reason: e.to_string() })),
                Err(_) => return Err(Opened::Failed(P2pError::Timeout(peer))),
            };
        let (queue, mut rx) = mpsc::channel(WRITE_QUEUE);
        let link = Arc::new(Link {
            queue,
            pending: Mutex::default(),
            next_id: AtomicU64::new(0),
            broken: AtomicBool::new(false),
            stop: CancellationToken::new(),
        });
        let (mut reader, mut writer) = stream.split();
        let (weak, stop, max) = (Arc::downgrade(&link), link.stop.clone(), self.inner.max_message);
        tokio::spawn(async move {
            let read = async {
                while let Some((id, answer)) = read_frame(&mut reader, max).await? {
                    let Some(link) = weak.upgrade() else { break };
                    let waiter = link.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                    if let Some(w) = waiter {
                        let _ = w.send(answer);
                    }
                }
                Ok(())
            };
            drive(peer, "outbound", read, &mut writer, &mut rx, &stop).await;
            if let Some(link) = weak.upgrade() {
                link.fail_all();
            }
        });
        *slot = Some(link.clone());
        Ok(link)
    }
}

/// A relay that arrived on a stream, for the relay server; its answer goes back with
/// [`StreamReply::send`].
pub struct StreamRelay {
    /// The requesting peer (authenticated by the connection).
    pub peer: PeerId,
    /// The encoded `RelayRequest`.
    pub request: Vec<u8>,
    /// Where the encoded `RelayResponse` goes.
    pub reply: StreamReply,
}

/// The way back to one relay's stream; holds the relay's place among the stream's in-flight
/// relays until sent or dropped.
pub struct StreamReply {
    id: u64,
    out: mpsc::Sender<(u64, Vec<u8>)>,
    _slot: OwnedSemaphorePermit,
}

impl StreamReply {
    /// Sends the encoded response (dropped if the stream is gone).
    pub async fn send(self, response: Vec<u8>) {
        let _ = self.out.send((self.id, response)).await;
    }
}

/// Accepts relay streams of `protocol` until `cancel`, passing each relay to `server`.
pub async fn accept(
    mut control: libp2p_stream::Control,
    protocol: StreamProtocol,
    max_message: usize,
    server: mpsc::Sender<StreamRelay>,
    cancel: CancellationToken,
) {
    let mut incoming = match control.accept(protocol) {
        Ok(i) => i,
        Err(e) => {
            tracing::error!(error = %e, "relay streams not served");
            return;
        }
    };
    let per_peer: Arc<Mutex<HashMap<PeerId, usize>>> = Arc::default();
    loop {
        let (peer, stream) = tokio::select! {
            _ = cancel.cancelled() => return,
            next = incoming.next() => match next {
                Some(s) => s,
                None => return,
            },
        };
        {
            let mut open = per_peer.lock().unwrap_or_else(|p| p.into_inner());
            let n = open.entry(peer).or_insert(0);
            if *n >= MAX_STREAMS_PER_PEER {
                tracing::debug!(%peer, "too many relay streams from one peer; dropping one");
                continue;
            }
            *n += 1;
        }
        let (server, cancel, per_peer) = (server.clone(), cancel.clone(), per_peer.clone());
        tokio::spawn(async move {
            serve_stream(peer, stream, max_message, server, cancel).await;
            let mut open = per_peer.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = open.get_mut(&peer) {
                *n -= 1;
                if *n == 0 {
                    open.remove(&peer);
                }
            }
        });
    }
}

async fn serve_stream(
    peer: PeerId,
    stream: libp2p::Stream,
    max_message: usize,
    server: mpsc::Sender<StreamRelay>,
    cancel: CancellationToken,
) {
    let (mut reader, mut writer) = stream.split();
    let (out, mut queue) = mpsc::channel(WRITE_QUEUE);
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT_PER_STREAM));
    let read = async {
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else { return Ok(()) };
            let Some((id, request)) = read_frame(&mut reader, max_message).await? else { return Ok(()) };
            let reply = StreamReply { id, out: out.clone(), _slot: slot };
            if server.send(StreamRelay { peer, request, reply }).await.is_err() {
                return Ok(());
            }
        }
    };
    drive(peer, "inbound", read, &mut writer, &mut queue, &cancel).await;
}

/// Runs one relay stream until its reading side (`read`, which consumes the incoming frames)
/// or its writing side (what `queue` holds) ends, or `cancel` fires: either side's end is the
/// stream's end.
async fn drive<W: AsyncWrite + Unpin>(
    peer: PeerId,
    direction: &'static str,
    read: impl Future<Output = io::Result<()>>,
    writer: &mut W,
    queue: &mut mpsc::Receiver<(u64, Vec<u8>)>,
    cancel: &CancellationToken,
) {
    tokio::select! {
        r = read => if let Err(e) = r {
            tracing::debug!(%peer, direction, error = %e, "relay stream read failed");
        },
        r = write_frames(writer, queue) => if let Err(e) = r {
            tracing::debug!(%peer, direction, error = %e, "relay stream write failed");
        },
        _ = cancel.cancelled() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_oversized_ones_are_refused() {
        let frame = |id: u64, m: &[u8]| [&frame_head(id, m.len())[..], m].concat();
        let mut bytes = frame(7, b"hello");
        bytes.extend(frame(u64::MAX, b""));
        let mut r = futures::io::Cursor::new(bytes);
        assert_eq!(read_frame(&mut r, 16).await.unwrap(), Some((7, b"hello".to_vec())));
        assert_eq!(read_frame(&mut r, 16).await.unwrap(), Some((u64::MAX, Vec::new())));
        assert_eq!(read_frame(&mut r, 16).await.unwrap(), None, "a clean end");
        let mut big = futures::io::Cursor::new(frame(1, &[0u8; 17]));
        assert_eq!(read_frame(&mut big, 16).await.unwrap_err().kind(), io::ErrorKind::InvalidData);
        let mut short = futures::io::Cursor::new(vec![0, 0, 0, 3, 1, 2, 3]);
        assert_eq!(
            read_frame(&mut short, 16).await.unwrap_err().kind(),
            io::ErrorKind::InvalidData,
            "no room for an id"
        );
    }

    /// Records each write apart.
    #[derive(Default)]
    struct Writes(Vec<Vec<u8>>);

    impl AsyncWrite for Writes {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<io::Result<usize>> {
            self.0.push(buf.to_vec());
            std::task::Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn poll_close(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn small_frames_go_out_in_one_write_and_large_ones_uncopied() {
        let (tx, mut rx) = mpsc::channel(8);
        let large = vec![9u8; GATHER_BYTES + 1];
        for (id, m) in [(1, b"a".to_vec()), (2, b"bc".to_vec()), (3, large.clone()), (4, b"d".to_vec())] {
            tx.send((id, m)).await.unwrap();
        }
        drop(tx);
        let mut w = Writes::default();
        write_frames(&mut w, &mut rx).await.unwrap();
        let sizes: Vec<usize> = w.0.iter().map(Vec::len).collect();
        // 1 and 2 gathered; 3's head and body apart; 4 alone at the end.
        assert_eq!(sizes, [2 * (4 + ID_BYTES) + 3, 4 + ID_BYTES, large.len(), 4 + ID_BYTES + 1]);
        let mut r = futures::io::Cursor::new(w.0.concat());
        let mut read = Vec::new();
        while let Some(f) = read_frame(&mut r, 2 * GATHER_BYTES).await.unwrap() {
            read.push(f);
        }
        assert_eq!(read, [(1, b"a".to_vec()), (2, b"bc".to_vec()), (3, large), (4, b"d".to_vec())]);
    }
}
