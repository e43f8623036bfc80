//! Transport of a simulated backend: the accept loop, HTTP and WebSocket handlers, the block
//! ticker, and the [`SimHandle`] that steers them.
//!
//! Tasks per backend: one accept loop (owns the listener; closes and rebinds it for
//! [`Fault::Down`]), one ticker (publishes the chain head on a `watch` at every block boundary,
//! which all WebSocket sessions of the backend share: no timer per subscription), and one task per
//! connection. Connections of one listening period share a [`CancellationToken`] and a
//! [`TaskTracker`], so `Down` and shutdown drop them all and wait until they are gone.
//!
//! Bounds: connections ([`SimConfig::max_connections`]), WebSocket sessions
//! ([`SimConfig::max_ws_sessions`]), request and message size ([`MAX_REQUEST_BYTES`]), batch size,
//! log queries and subscriptions (see [`rpc`](super::rpc)), remembered transactions.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State, WebSocketUpgrade};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;

use super::chain::{SimChain, View, now_ms};
use super::fault::{Fault, SplitMix64};
use super::pool::SimTxPool;
use super::rpc::{Engine, Handled, Subscriptions};
use super::ws;

/// Largest HTTP request body and WebSocket message accepted, in bytes (1 MiB); larger HTTP
/// bodies get 413.
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// Pause before retrying to bind the port again after leaving [`Fault::Down`] failed (the port
/// was taken meanwhile); retried until it succeeds, the fault changes or the backend stops.
const REBIND_RETRY: Duration = Duration::from_millis(100);

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(10);

/// Longest wait for dropped connections to finish when going down or shutting down; they end at
/// their next poll, so this only guards against a wedged task.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Listen backlog of the backend socket.
const LISTEN_BACKLOG: u32 = 1024;

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

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub connections: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub http_requests: AtomicU64,
    pub ws_sessions: AtomicU64,
    pub ws_messages: AtomicU64,
    pub rpc_calls: AtomicU64,
    pub notifications: AtomicU64,
    pub injected_errors: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn snapshot(&self) -> SimStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SimStats {
            connections: get(&self.connections),
            rejected_connections: get(&self.rejected_connections),
            http_requests: get(&self.http_requests),
            ws_sessions: get(&self.ws_sessions),
            ws_messages: get(&self.ws_messages),
            rpc_calls: get(&self.rpc_calls),
            notifications: get(&self.notifications),
            injected_errors: get(&self.injected_errors),
        }
    }
}

/// The fault currently set and how many times it was set.
#[derive(Clone, Debug, Default)]
pub(crate) struct FaultState {
    pub generation: u64,
    pub fault: Fault,
}

/// Connections of one listening period: dropped together when the backend goes down.
#[derive(Clone, Debug)]
pub(crate) struct Period {
    pub token: CancellationToken,
    pub tracker: TaskTracker,
}

/// What the accept loop has put into effect.
#[derive(Clone, Debug, Default)]
struct SocketState {
    /// Generation of the fault in effect.
    generation: u64,
    /// Why binding the port failed, while it fails.
    bind_error: Option<(io::ErrorKind, String)>,
}

/// State shared by the handle, the accept loop, the ticker and every connection.
pub(crate) struct Shared {
    pub chain: SimChain,
    pub config: SimConfig,
    pub fault: watch::Sender<FaultState>,
    /// Chain head (unfaulted), updated at every block boundary by the ticker.
    pub heads: watch::Sender<u64>,
    pub stats: Counters,
    pub sub_counter: AtomicU64,
    rng: Mutex<SplitMix64>,
    period: Mutex<Period>,
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
        self.fault.borrow().fault.clone()
    }

    fn current_period(&self) -> Period {
        self.period.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn with_rng<T>(&self, f: impl FnOnce(&mut SplitMix64) -> T) -> T {
        f(&mut self.rng.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Waits while requests are held (`Freeze`, `Down`), then returns the fault to answer under.
    async fn usable_fault(&self) -> Fault {
        let mut rx = self.fault.subscribe();
        let usable = rx.wait_for(|s| !s.fault.holds_requests()).await.map(|state| state.fault.clone());
        match usable {
            Ok(fault) => fault,
            // The sender lives in `self`: cannot happen while we hold `self`; hold like Freeze.
            Err(_) => std::future::pending().await,
        }
    }

    /// Sleeps `delay_ms` plus a random `0..=jitter_ms`.
    pub async fn slow(&self, delay_ms: u64, jitter_ms: u64) {
        let extra = self.with_rng(|r| r.up_to(jitter_ms));
        tokio::time::sleep(Duration::from_millis(delay_ms.saturating_add(extra))).await;
    }

    /// Applies `Freeze`/`Down` (wait), `Slow` (sleep) and `Errors` (draw) for one request.
    /// `http` allows answering with a bare HTTP 500.
    pub async fn admit(&self, http: bool) -> Admission {
        let fault = self.usable_fault().await;
        match fault {
            Fault::Slow { delay_ms, jitter_ms } => self.slow(delay_ms, jitter_ms).await,
            Fault::Errors { rate } => {
                let (fail, as_500) = self.with_rng(|r| (r.chance(rate), r.next_u64() & 1 == 0));
                if fail {
                    Counters::add(&self.stats.injected_errors, 1);
                    if http && as_500 {
                        return Admission::Http500;
                    }
                    return Admission::Answer { fault, inject_internal: true };
                }
            }
            _ => {}
        }
        Admission::Answer { fault, inject_internal: false }
    }

    /// The chain as this backend shows it now under `fault`.
    pub fn view(&self, fault: &Fault) -> View<'_> {
        let mut view = View::truth(&self.chain, self.chain.head_at(now_ms()));
        match fault {
            Fault::Stale { blocks } => view.head = view.head.saturating_sub(*blocks),
            Fault::Lie => view.lie = true,
            Fault::Censor { address } => view.censor = Some(*address),
            _ => {}
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
        let listener = bind(addr)?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let (heads, _) = watch::channel(chain.head_now());
        let shared = Arc::new(Shared {
            chain,
            rng: Mutex::new(SplitMix64::new(config.seed)),
            ws_sessions: Arc::new(Semaphore::new(config.max_ws_sessions)),
            config,
            fault: watch::Sender::new(FaultState::default()),
            heads,
            stats: Counters::default(),
            sub_counter: AtomicU64::new(0),
            period: Mutex::new(Period { token: shutdown.child_token(), tracker: TaskTracker::new() }),
        });
        let (socket_tx, socket_rx) = watch::channel(SocketState::default());
        let accept = AcceptLoop {
            router: router(shared.clone()),
            connections: Arc::new(Semaphore::new(shared.config.max_connections)),
            shared: shared.clone(),
            addr,
            socket: socket_tx,
            shutdown: shutdown.clone(),
        };
        let tasks = vec![tokio::spawn(accept.run(listener)), tokio::spawn(ticker(shared.clone(), shutdown.clone()))];
        tracing::debug!(%addr, chain_id = chain.chain_id, "sim backend listening");
        Ok(SimHandle {
            inner: Arc::new(HandleInner {
                shared,
                addr,
                socket: socket_rx,
                tasks: Mutex::new(tasks),
                shutdown: shutdown.clone(),
                _stop_on_drop: shutdown.drop_guard(),
            }),
        })
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
    addr: SocketAddr,
    socket: watch::Receiver<SocketState>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    shutdown: CancellationToken,
    _stop_on_drop: DropGuard,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle").field("addr", &self.inner.addr).field("fault", &self.fault()).finish()
    }
}

impl SimHandle {
    /// The bound address (the same across `Down` and heal).
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// `http://ip:port/`.
    pub fn http_url(&self) -> String {
        format!("http://{}/", self.inner.addr)
    }

    /// `ws://ip:port/`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/", self.inner.addr)
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
        tracing::debug!(addr = %self.inner.addr, fault = fault.name(), "sim backend fault");
        self.inner.shared.fault.send_modify(|s| {
            s.generation += 1;
            s.fault = fault;
        });
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
        let stopped = || io::Error::new(io::ErrorKind::NotConnected, "sim backend has stopped");
        if self.inner.shutdown.is_cancelled() {
            return Err(stopped());
        }
        let wanted = self.inner.shared.fault.borrow().generation;
        let mut rx = self.inner.socket.clone();
        let state = rx.wait_for(|s| s.generation >= wanted).await.map_err(|_| stopped())?;
        match &state.bind_error {
            Some((kind, message)) => Err(io::Error::new(*kind, message.clone())),
            None => Ok(()),
        }
    }

    /// Sets `fault` and waits until it is in effect (see [`SimHandle::ready`]).
    pub async fn apply(&self, fault: Fault) -> io::Result<()> {
        self.set_fault(fault);
        self.ready().await
    }

    /// Counters since spawn.
    pub fn stats(&self) -> SimStats {
        self.inner.shared.stats.snapshot()
    }

    /// Stops the backend: closes the port, drops all connections and waits for its tasks.
    /// Other clones of the handle then see a stopped backend.
    pub async fn shutdown(self) {
        self.inner.shutdown.cancel();
        let tasks = std::mem::take(&mut *self.inner.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        for task in tasks {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "sim backend task failed");
            }
        }
    }
}

/// A listening socket with `SO_REUSEADDR`, so the same port can be bound again right after
/// `Down` even with connections in `TIME_WAIT`.
fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
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
    shared.usable_fault().await;
    let Ok(permit) = shared.ws_sessions.clone().try_acquire_owned() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "too many websocket sessions\n").into_response();
    };
    let period = shared.current_period();
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

struct AcceptLoop {
    shared: Arc<Shared>,
    router: Router,
    connections: Arc<Semaphore>,
    addr: SocketAddr,
    socket: watch::Sender<SocketState>,
    shutdown: CancellationToken,
}

enum Step {
    Stop,
    FaultChanged,
    RetryBind,
    Accepted(io::Result<(TcpStream, SocketAddr)>),
}

impl AcceptLoop {
    /// Owns the listener: serves connections, closes it for `Down`, rebinds after.
    /// Ends on shutdown, dropping all connections.
    async fn run(self, listener: TcpListener) {
        let mut fault_rx = self.shared.fault.subscribe();
        let mut listener = Some(listener);
        let mut bind_error: Option<io::Error> = None;
        let retry = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(retry);
        loop {
            let (generation, down) = {
                let state = fault_rx.borrow_and_update();
                (state.generation, state.fault == Fault::Down)
            };
            if down {
                bind_error = None;
                if listener.take().is_some() {
                    self.drop_connections().await;
                    tracing::debug!(addr = %self.addr, "sim backend down");
                }
            } else if listener.is_none() {
                match bind(self.addr) {
                    Ok(bound) => {
                        listener = Some(bound);
                        bind_error = None;
                        *self.shared.period.lock().unwrap_or_else(PoisonError::into_inner) =
                            Period { token: self.shutdown.child_token(), tracker: TaskTracker::new() };
                        tracing::debug!(addr = %self.addr, "sim backend up again");
                    }
                    Err(e) => {
                        tracing::warn!(addr = %self.addr, error = %e, "sim backend cannot rebind its port; retrying");
                        bind_error = Some(e);
                        retry.as_mut().reset(tokio::time::Instant::now() + REBIND_RETRY);
                    }
                }
            }
            self.socket.send_replace(SocketState {
                generation,
                bind_error: bind_error.as_ref().map(|e| (e.kind(), e.to_string())),
            });
            let rebinding = listener.is_none() && !down;
            let step = tokio::select! {
                () = self.shutdown.cancelled() => Step::Stop,
                changed = fault_rx.changed() => if changed.is_ok() { Step::FaultChanged } else { Step::Stop },
                () = &mut retry, if rebinding => Step::RetryBind,
                accepted = accept(listener.as_ref()) => Step::Accepted(accepted),
            };
            match step {
                Step::Stop => break,
                Step::FaultChanged | Step::RetryBind => {}
                Step::Accepted(Ok((stream, _peer))) => self.serve(stream),
                Step::Accepted(Err(e)) => {
                    tracing::debug!(error = %e, "sim backend accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            }
        }
        drop(listener);
        self.drop_connections().await;
    }

    /// Cancels every connection of the current period and waits until they are gone.
    async fn drop_connections(&self) {
        let period = self.shared.current_period();
        period.token.cancel();
        period.tracker.close();
        if tokio::time::timeout(DRAIN_TIMEOUT, period.tracker.wait()).await.is_err() {
            tracing::warn!(addr = %self.addr, "sim backend connections did not stop in time");
        }
    }

    fn serve(&self, stream: TcpStream) {
        let Ok(permit) = self.connections.clone().try_acquire_owned() else {
            Counters::add(&self.shared.stats.rejected_connections, 1);
            return;
        };
        Counters::add(&self.shared.stats.connections, 1);
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "set_nodelay failed");
        }
        let period = self.shared.current_period();
        let token = period.token.clone();
        let service = TowerToHyperService::new(self.router.clone());
        period.tracker.spawn(async move {
            let builder = auto::Builder::new(TokioExecutor::new());
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            tokio::select! {
                result = connection => {
                    if let Err(e) = result {
                        tracing::trace!(error = %e, "sim backend connection ended with error");
                    }
                }
                () = token.cancelled() => {}
            }
            drop(permit);
        });
    }
}

async fn accept(listener: Option<&TcpListener>) -> io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}
