//! Serving an axum app (the gateway, the admin API) over a listener this module owns, with the
//! bounds `axum::serve` cannot express: a connection cap, a header read timeout (which is also
//! the keep-alive idle timeout), HTTP/2 stream and keep-alive limits.
//!
//! Connections beyond the cap get a bare HTTP 503 and are closed at once, so a flood of idle
//! sockets costs one file descriptor each for at most the header timeout, and never memory that
//! grows with what they send. Each accepted connection holds a [`ConnectionSlot`]; a WebSocket
//! upgrade takes the slot's permit over for the session's lifetime, so WebSocket sessions count
//! against the same cap as HTTP connections.
//!
//! Each address (IPv6: its /64) may hold at most `max_connections_per_ip` of them, so one host
//! re-opening slow connections cannot keep everyone else at the cap. Every connection's reads are
//! counted by a [`ReadMeter`] (in the request's extensions), through which a WebSocket session
//! bounds the message it is receiving. A connection with no request in flight for the header
//! timeout is closed, HTTP/2 included (hyper's header timer covers only HTTP/1).
//!
//! Cancel-safety: the accept loop only awaits `accept` and the shutdown token; on shutdown every
//! connection is asked to finish its in-flight request (graceful shutdown), and [`serve`] returns
//! once they all have.

mod address_cap;
mod metered;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use address_cap::AddressCap;
use address_cap::AddressGuard;
pub use metered::{Metered, ReadMeter};

use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service as _;

/// Pause after a failed `accept` (typically out of file descriptors) before the next one, so
/// the loop does not spin while connections drain.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);
/// Most concurrent HTTP/2 streams per connection: one connection must not be a way around the
/// connection cap.
const H2_MAX_CONCURRENT_STREAMS: u32 = 64;
/// HTTP/2 keep-alive ping period and the wait for its answer: a dead or silent peer is dropped.
const H2_KEEP_ALIVE: Duration = Duration::from_secs(20);
/// What a connection over the cap is told before it is closed.
const OVER_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
connection: close\r\ncontent-length: 0\r\n\r\n";

/// Bounds of one server.
#[derive(Debug, Clone)]
pub struct ServeLimits {
    /// Most open connections, WebSocket sessions included.
    pub max_connections: usize,
    /// Time a client has to send a request's complete headers, from the moment the connection
    /// waits for them (so also the keep-alive idle timeout).
    pub header_timeout: Duration,
    /// The setting named in logs when the cap is reached (`gateway.max_connections`).
    pub setting: &'static str,
    /// Most open connections from one address (IPv6: one /64); 0: no per-address cap.
    pub max_connections_per_ip: usize,
}

/// A connection's places: under the server's cap and its address's.
#[derive(Debug)]
pub struct ConnectionPermit {
    _slot: OwnedSemaphorePermit,
    _address: Option<AddressGuard>,
}

/// The connection-cap permit of the connection a request arrived on, in the request's
/// extensions. A WebSocket upgrade [`take`](ConnectionSlot::take)s it into the session.
#[derive(Debug, Clone)]
pub struct ConnectionSlot(Arc<Mutex<Option<ConnectionPermit>>>);

impl ConnectionSlot {
    /// The permit, once: the taker holds the connection's place under the caps until it drops it.
    pub fn take(&self) -> Option<ConnectionPermit> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// Serves `app` on `listener` within `limits` until `shutdown` is cancelled. Requests carry
/// `ConnectInfo<SocketAddr>`, a [`ConnectionSlot`] and a [`ReadMeter`] in their extensions.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: ServeLimits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let addresses = AddressCap::new(limits.max_connections_per_ip);
    let tracker = TaskTracker::new();
    let mut warned = false;
    let mut warned_address = false;
    loop {
        let (stream, remote) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed; backing off");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            if !warned {
                tracing::warn!(
                    limit = limits.max_connections,
                    setting = limits.setting,
                    "connection limit reached; refusing new connections"
                );
                warned = true;
            }
            // Best effort, never waiting: the client learns why if its socket takes the bytes.
            let _ = stream.try_write(OVER_CAPACITY);
            continue;
        };
        warned = false;
        let address = match addresses.admit(remote.ip()) {
            Ok(g) => g,
            Err(address_cap::AddressFull) => {
                if !warned_address {
                    tracing::warn!(
                        limit = limits.max_connections_per_ip,
                        address = %remote.ip(),
                        "an address reached its connection limit (gateway.max_connections_per_ip); refusing its new connections"
                    );
                    warned_address = true;
                }
                let _ = stream.try_write(OVER_CAPACITY);
                continue;
            }
        };
        warned_address = false;
        let _ = stream.set_nodelay(true);
        let slot = ConnectionSlot(Arc::new(Mutex::new(Some(ConnectionPermit { _slot: permit, _address: address }))));
        tracker.spawn(connection(stream, remote, app.clone(), slot, limits.header_timeout, shutdown.clone()));
    }
    tracker.close();
    tracker.wait().await;
    Ok(())
}

/// A connection's requests: whether one ever began, how many are in flight and when the last
/// one ended, to close silent and idle connections.
#[derive(Debug)]
struct Activity {
    started: tokio::time::Instant,
    begun: AtomicBool,
    in_flight: AtomicUsize,
    /// Milliseconds from the connection's start to the end of its last request.
    last_end_ms: AtomicU64,
}

/// A request in flight; its end is recorded when dropped.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let ms = u64::try_from(self.0.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.last_end_ms.store(ms, Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            started: tokio::time::Instant::now(),
            begun: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            last_end_ms: AtomicU64::new(0),
        })
    }

    /// A request's headers arrived.
    fn begin(self: &Arc<Self>) -> Busy {
        self.begun.store(true, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }

    fn ever_begun(&self) -> bool {
        self.begun.load(Ordering::Relaxed)
    }

    /// How long no request has been in flight (zero while one is; since the connection began
    /// if none ever was).
    fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        let last = Duration::from_millis(self.last_end_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }
}

async fn connection(
    stream: TcpStream,
    remote: SocketAddr,
    app: axum::Router,
    slot: ConnectionSlot,
    header_timeout: Duration,
    shutdown: CancellationToken,
) {
    let meter = ReadMeter::default();
    let activity = Activity::new();
    let activity_of_service = activity.clone();
    let meter_of_service = meter.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(ConnectInfo(remote));
        req.extensions_mut().insert(slot.clone());
        req.extensions_mut().insert(meter_of_service.clone());
        let mut app = app.clone();
        let busy = activity_of_service.begin();
        async move {
            let response = app.call(req).await.unwrap_or_else(|never| match never {});
            drop(busy);
            Ok::<_, Infallible>(response)
        }
    });
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
        .keep_alive_interval(H2_KEEP_ALIVE)
        .keep_alive_timeout(H2_KEEP_ALIVE);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(Metered::new(stream, meter)), service);
    tokio::pin!(conn);
    // The first check, a header timeout after the connection began, closes a connection whose
    // first request's headers never arrived (hyper's header timer starts after protocol
    // detection, which waits for bytes that a silent client never sends). Later ones close idle
    // connections: HTTP/2 has no idle timeout of its own, and a client keeping an idle connection
    // open (answering keep-alive pings) would hold its place forever.
    let mut idle_check = tokio::time::interval_at(activity.started + header_timeout, header_timeout);
    idle_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::trace!(error = %e, %remote, "connection ended with an error");
                }
                return;
            }
            _ = idle_check.tick() => {
                if !activity.ever_begun() {
                    tracing::trace!(%remote, "no request headers within the header timeout; closing");
                    return;
                }
                if activity.idle_for() >= header_timeout {
                    tracing::trace!(%remote, "connection idle for the header timeout; closing");
                    conn.as_mut().graceful_shutdown();
                    break;
                }
            }
            _ = shutdown.cancelled() => {
                conn.as_mut().graceful_shutdown();
                break;
            }
        }
    }
    let _ = conn.await;
}
