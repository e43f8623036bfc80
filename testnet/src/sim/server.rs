//! Transport of a simulated backend: the accept loop, HTTP and WebSocket handlers, the block
//! ticker, and the [`SimHandle`] that steers them.
//!
//! Tasks per backend: one accept loop (owns the listener; closes and rebinds it for
//! [`Fault::Down`]; see [`crate::transport`]), one ticker (publishes the chain head on a `watch`
//! at every block boundary, which all WebSocket sessions of the backend share: no timer per
//! subscription), and one task per connection. Connections of one listening period share a
//! cancellation token and a task tracker, so `Down` and shutdown drop them all and wait until
//! they are gone.
//!
//! Bounds: connections ([`SimConfig::max_connections`]), WebSocket sessions
//! ([`SimConfig::max_ws_sessions`]), request and message size ([`MAX_REQUEST_BYTES`]), batch size,
//! log queries and subscriptions (see [`rpc`](super::rpc)), remembered transactions.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State, WebSocketUpgrade};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;

use super::chain::{SimChain, View, now_ms};
use super::fault::{Fault, LieKind};
use super::pool::SimTxPool;
use super::rpc::{Engine, Handled, Subscriptions};
use super::ws;
use crate::transport::{self, Listener, Switch, Upgrades};

/// Largest HTTP request body and WebSocket message accepted, in bytes (1 MiB); larger HTTP
/// bodies get 413.
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// Options of a simulated backend beyond its chain and address.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Seed of the PRNG behind `Slow` jitter and `Errors` draws.
    pub seed: u64,
    /// Most simultaneous TCP connections (HTTP and WebSocket); more are closed on accept.
    pub max_connections: usize,
    /// Most simultaneous WebSocket sessions; further upgrades get HTTP 503.
    pub max_ws_sessions: usize,
    /// `web3_clientVersion` answer.
    pub client_version: String,
    /// Pool of accepted transactions; share one between backends to model instant gossip.
    pub txpool: SimTxPool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 0x5151_0000_0000_0001,
            max_connections: 256,
            max_ws_sessions: 128,
            client_version: format!("rpcmesh-sim/v{}", env!("CARGO_PKG_VERSION")),
            txpool: SimTxPool::new(),
        }
    }
}

/// Counters of a simulated backend since it was spawned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// TCP connections accepted.
    pub connections: u64,
    /// TCP connections closed at once because `max_connections` were open.
    pub rejected_connections: u64,
    /// HTTP requests received on the JSON-RPC route.
    pub http_requests: u64,
    /// WebSocket sessions opened.
    pub ws_sessions: u64,
    /// WebSocket data messages received.
    pub ws_messages: u64,
    /// JSON-RPC calls processed, errors included (each batch item counts; calls failed by
    /// `Fault::Errors` do not).
    pub rpc_calls: u64,
    /// `newHeads` notifications sent.
    pub notifications: u64,
    /// Requests and messages failed by `Fault::Errors`.
    pub injected_errors: u64,
}

/// Counters of what the backend serves; connections and injected errors are counted by its
/// [`Switch`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub http_requests: AtomicU64,
    pub ws_sessions: AtomicU64,
    pub ws_messages: AtomicU64,
    pub rpc_calls: AtomicU64,
    pub notifications: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn snapshot(&self, switch: &Switch) -> SimStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SimStats {
            connections: get(&switch.connections),
            rejected_connections: get(&switch.rejected_connections),
            http_requests: get(&self.http_requests),
            ws_sessions: get(&self.ws_sessions),
            ws_messages: get(&self.ws_messages),
            rpc_calls: get(&self.rpc_calls),
            notifications: get(&self.notifications),
            injected_errors: get(&switch.injected_errors),
        }
    }
}

/// State shared by the handle, the accept loop, the ticker and every connection.
pub(crate) struct Shared {
    pub chain: SimChain,
    pub config: SimConfig,
    /// Fault, listening period and connection counters.
    pub switch: Arc<Switch>,
    /// Chain head (unfaulted), updated at every block boundary by the ticker.
    pub heads: watch::Sender<u64>,
    pub stats: Counters,
    pub sub_counter: AtomicU64,
    pub ws_sessions: Arc<Semaphore>,
}

/// Outcome of the fault checks that precede answering a request.
pub(crate) enum Admission {
    /// Answer under this fault; `inject_internal` answers every call with `-32603`.
    Answer { fault: Fault, inject_internal: bool },
    /// Fail the whole HTTP request with status 500.
    Http500,
}

impl Shared {
    pub fn current_fault(&self) -> Fault {
        self.switch.fault()
    }

    /// Sleeps `delay_ms` plus a random `0..=jitter_ms`.
    pub async fn slow(&self, delay_ms: u64, jitter_ms: u64) {
        self.switch.slow(delay_ms, jitter_ms).await;
    }

    /// Applies `Freeze`/`Down` (wait), `Slow` (sleep) and `Errors` (draw) for one request.
    /// `http` allows answering with a bare HTTP 500.
    pub async fn admit(&self, http: bool) -> Admission {
        match self.switch.admit(http).await {
            transport::Admission::Answer(fault) => Admission::Answer { fault, inject_internal: false },
            transport::Admission::Internal(fault) => Admission::Answer { fault, inject_internal: true },
            transport::Admission::Http500 => Admission::Http500,
        }
    }

    /// The chain as this backend shows it now under `fault`.
    pub fn view(&self, fault: &Fault) -> View<'_> {
        let mut view = View::truth(&self.chain, self.chain.head_at(now_ms()));
        match fault {
            Fault::Stale { blocks } => view.head = view.head.saturating_sub(*blocks),
            Fault::Censor { address } => view.censor = Some(*address),
            _ => {}
        }
        // The sim has no state proofs, transactions or receipts to lie about: it models these two.
        if let Some(kinds) = fault.lies() {
            view.lie_hashes = kinds.contains(LieKind::Hash);
            view.lie_balances = kinds.contains(LieKind::Balance);
        }
        view
    }

    /// Answers `payload` under `fault`.
    pub fn answer(
        &self,
        fault: &Fault,
        inject_internal: bool,
        payload: &[u8],
        subs: Option<&mut Subscriptions>,
    ) -> Handled {
        let engine = Engine {
            view: self.view(fault),
            txpool: &self.config.txpool,
            client_version: &self.config.client_version,
            sub_counter: &self.sub_counter,
            inject_internal,
        };
        let handled = engine.handle(payload, subs);
        if !inject_internal {
            Counters::add(&self.stats.rpc_calls, handled.calls);
        }
        handled
    }
}

/// Spawns simulated Ethereum JSON-RPC backends.
///
/// A backend answers JSON-RPC over HTTP `POST` and WebSocket on one port, any path. Everything it
/// reports follows its [`SimChain`], so backends of one chain agree; faults are set through the
/// returned [`SimHandle`].
#[derive(Debug)]
pub struct SimBackend;

impl SimBackend {
    /// Binds `addr` (`127.0.0.1:0` for any free port) and serves `chain` with default options.
    pub async fn spawn(chain: SimChain, addr: SocketAddr) -> io::Result<SimHandle> {
        Self::spawn_with(chain, addr, SimConfig::default()).await
    }

    /// Binds `addr` and serves `chain` with `config`. Must be called inside a tokio runtime.
    pub async fn spawn_with(chain: SimChain, addr: SocketAddr, config: SimConfig) -> io::Result<SimHandle> {
        let switch = Arc::new(Switch::new("sim backend", config.seed));
        let (heads, _) = watch::channel(chain.head_now());
        let shared = Arc::new(Shared {
            chain,
            ws_sessions: Arc::new(Semaphore::new(config.max_ws_sessions)),
            config,
            switch: switch.clone(),
            heads,
            stats: Counters::default(),
            sub_counter: AtomicU64::new(0),
        });
        let max_connections = shared.config.max_connections;
        let listener = Listener::spawn(switch, addr, router(shared.clone()), max_connections, Upgrades::Allowed)?;
        listener.spawn_task(|shutdown| ticker(shared.clone(), shutdown));
        let addr = listener.addr();
        tracing::debug!(%addr, chain_id = chain.chain_id, "sim backend listening");
        Ok(SimHandle { inner: Arc::new(HandleInner { shared, listener }) })
    }
}

/// Cloneable control of a running simulated backend. The backend stops when [`shutdown`]
/// is called or the last clone is dropped.
///
/// [`shutdown`]: SimHandle::shutdown
#[derive(Clone)]
pub struct SimHandle {
    inner: Arc<HandleInner>,
}

struct HandleInner {
    shared: Arc<Shared>,
    listener: Listener,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle").field("addr", &self.addr()).field("fault", &self.fault()).finish()
    }
}

impl SimHandle {
    /// The bound address (the same across `Down` and heal).
    pub fn addr(&self) -> SocketAddr {
        self.inner.listener.addr()
    }

    /// `http://ip:port/`.
    pub fn http_url(&self) -> String {
        format!("http://{}/", self.addr())
    }

    /// `ws://ip:port/`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/", self.addr())
    }

    /// The chain this backend serves.
    pub fn chain(&self) -> SimChain {
        self.inner.shared.chain
    }

    /// Pool of transactions this backend accepted.
    pub fn txpool(&self) -> &SimTxPool {
        &self.inner.shared.config.txpool
    }

    /// Switches the backend to `fault` at once for requests that arrive from now on (held
    /// `Freeze` requests are released under the new fault). Closing or rebinding the listener for
    /// [`Fault::Down`] happens moments later in the accept loop; await [`SimHandle::ready`] to be sure.
    pub fn set_fault(&self, fault: Fault) {
        self.inner.listener.set_fault(fault);
    }

    /// Sets [`Fault::None`].
    pub fn heal(&self) {
        self.set_fault(Fault::None);
    }

    /// The fault currently set.
    pub fn fault(&self) -> Fault {
        self.inner.shared.current_fault()
    }

    /// Waits until the last fault set is in effect at the socket too: after `Down` the port
    /// refuses connections and earlier connections are closed; after leaving `Down` it listens on
    /// the same port again. Errs if that rebinding fails (it is retried in the background) or the
    /// backend has stopped.
    pub async fn ready(&self) -> io::Result<()> {
        self.inner.listener.ready().await
    }

    /// Sets `fault` and waits until it is in effect (see [`SimHandle::ready`]).
    pub async fn apply(&self, fault: Fault) -> io::Result<()> {
        self.set_fault(fault);
        self.ready().await
    }

    /// Counters since spawn.
    pub fn stats(&self) -> SimStats {
        self.inner.shared.stats.snapshot(&self.inner.shared.switch)
    }

    /// Stops the backend: closes the port, drops all connections and waits for its tasks.
    /// Other clones of the handle then see a stopped backend.
    pub async fn shutdown(self) {
        self.inner.listener.shutdown().await;
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", post(http_rpc).get(ws_upgrade))
        .route("/{*path}", post(http_rpc).get(ws_upgrade))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(shared)
}

async fn http_rpc(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    Counters::add(&shared.stats.http_requests, 1);
    let (fault, inject_internal) = match shared.admit(true).await {
        Admission::Http500 => return (StatusCode::INTERNAL_SERVER_ERROR, "internal server error\n").into_response(),
        Admission::Answer { fault, inject_internal } => (fault, inject_internal),
    };
    match shared.answer(&fault, inject_internal, &body, None).body {
        Some(text) => ([(header::CONTENT_TYPE, "application/json")], text).into_response(),
        None => StatusCode::OK.into_response(),
    }
}

async fn ws_upgrade(State(shared): State<Arc<Shared>>, upgrade: WebSocketUpgrade) -> Response {
    // A frozen node does not complete handshakes either.
    shared.switch.usable_fault().await;
    let Ok(permit) = shared.ws_sessions.clone().try_acquire_owned() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "too many websocket sessions\n").into_response();
    };
    let period = shared.switch.period();
    upgrade
        .max_message_size(MAX_REQUEST_BYTES)
        .max_frame_size(MAX_REQUEST_BYTES)
        .on_upgrade(move |socket| period.tracker.track_future(ws::session(shared, socket, period.token, permit)))
}

/// Publishes the chain head at every block boundary.
async fn ticker(shared: Arc<Shared>, shutdown: CancellationToken) {
    loop {
        let now = now_ms();
        let head = shared.chain.head_at(now);
        shared.heads.send_if_modified(|h| {
            let changed = *h != head;
            *h = head;
            changed
        });
        let wait_ms = shared.chain.block_time_ms_of(head + 1).saturating_sub(now).max(1);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(wait_ms)) => {}
        }
    }
}
