//! The transport side shared by the simulated backend ([`crate::sim`]) and the fault proxy
//! ([`crate::fault_proxy`]): the listener, per-connection control, the transport faults, and the
//! JSON-RPC envelope of incoming calls.
//!
//! - [`Switch`]: the fault currently set (a `watch`, read by every request and by the accept
//!   loop), the transport faults applied to one request ([`Switch::admit`]: `Freeze`/`Down` hold,
//!   `Slow` sleeps, `Errors` draws from a seeded PRNG), the connections of the current listening
//!   [`Period`], and the connection counters.
//! - [`Listener`]: held by a server's handle. Spawns the accept loop, which owns the listening
//!   socket: it closes it for [`Fault::Down`] (dropping every open connection) and binds the same
//!   port again when the fault changes, retrying while that fails. [`Listener::ready`] waits until
//!   the last fault set is in effect at the socket.
//!
//! Connections of one listening period share a [`CancellationToken`] and a [`TaskTracker`], so
//! `Down` and shutdown drop them all and wait until they are gone. Connections beyond the
//! server's limit are closed on accept.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;

use crate::sim::{Fault, SplitMix64};

/// Pause before retrying to bind the port again after leaving [`Fault::Down`] failed (the port
/// was taken meanwhile); retried until it succeeds, the fault changes or the server stops.
const REBIND_RETRY: Duration = Duration::from_millis(100);

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(10);

/// Longest wait for dropped connections to finish when going down or shutting down; they end at
/// their next poll, so this only guards against a wedged task.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Listen backlog of the server socket.
const LISTEN_BACKLOG: u32 = 1024;

/// The fault currently set and how many times a fault was set.
#[derive(Clone, Debug, Default)]
struct FaultState {
    generation: u64,
    fault: Fault,
}

/// Connections of one listening period: dropped together when the server goes down.
#[derive(Clone, Debug)]
pub(crate) struct Period {
    /// Cancelled when the period ends; every connection of the period stops on it.
    pub token: CancellationToken,
    /// Tracks every connection (and upgraded session) of the period.
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

/// How one request is answered after the transport faults had their say.
pub(crate) enum Admission {
    /// Answer under this fault.
    Answer(Fault),
    /// Answer every call with `-32603` (drawn by `Fault::Errors`, which is the fault given).
    Internal(Fault),
    /// Fail the whole HTTP request with status 500.
    Http500,
}

/// Transport faults and connection control of one server, shared by its handle, its accept loop
/// and every request.
pub(crate) struct Switch {
    /// What the server is called in logs and errors (`sim backend`, `fault proxy`).
    name: &'static str,
    fault: watch::Sender<FaultState>,
    rng: Mutex<SplitMix64>,
    period: Mutex<Period>,
    /// Stops the server: the accept loop, every connection and any task of
    /// [`Listener::spawn_task`].
    shutdown: CancellationToken,
    /// TCP connections accepted.
    pub connections: AtomicU64,
    /// TCP connections closed at once because the most connections were open.
    pub rejected_connections: AtomicU64,
    /// Requests and messages failed by `Fault::Errors`.
    pub injected_errors: AtomicU64,
}

impl Switch {
    /// A switch without fault; `seed` seeds the PRNG behind `Slow` jitter and `Errors` draws.
    pub fn new(name: &'static str, seed: u64) -> Self {
        let shutdown = CancellationToken::new();
        Self {
            name,
            fault: watch::Sender::new(FaultState::default()),
            rng: Mutex::new(SplitMix64::new(seed)),
            period: Mutex::new(Period { token: shutdown.child_token(), tracker: TaskTracker::new() }),
            shutdown,
            connections: AtomicU64::new(0),
            rejected_connections: AtomicU64::new(0),
            injected_errors: AtomicU64::new(0),
        }
    }

    /// The fault currently set.
    pub fn fault(&self) -> Fault {
        self.fault.borrow().fault.clone()
    }

    /// The connections of the current listening period.
    pub fn period(&self) -> Period {
        self.period.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Starts a new listening period (after binding the port again).
    fn new_period(&self) {
        *self.period.lock().unwrap_or_else(PoisonError::into_inner) =
            Period { token: self.shutdown.child_token(), tracker: TaskTracker::new() };
    }

    fn with_rng<T>(&self, f: impl FnOnce(&mut SplitMix64) -> T) -> T {
        f(&mut self.rng.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Waits while requests are held (`Freeze`, `Down`), then returns the fault to answer under.
    pub async fn usable_fault(&self) -> Fault {
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

    /// Applies `Freeze`/`Down` (wait), `Slow` (sleep) and `Errors` (draw) to one request.
    /// `http` allows failing it with a bare HTTP 500 (half the drawn errors); otherwise every
    /// drawn error is [`Admission::Internal`].
    pub async fn admit(&self, http: bool) -> Admission {
        let fault = self.usable_fault().await;
        match fault {
            Fault::Slow { delay_ms, jitter_ms } => self.slow(delay_ms, jitter_ms).await,
            Fault::Errors { rate } => {
                let (fail, as_500) = self.with_rng(|r| (r.chance(rate), r.next_u64() & 1 == 0));
                if fail {
                    add(&self.injected_errors);
                    if http && as_500 {
                        return Admission::Http500;
                    }
                    return Admission::Internal(fault);
                }
            }
            _ => {}
        }
        Admission::Answer(fault)
    }
}

fn add(counter: &AtomicU64) {
    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Whether connections may switch protocols (HTTP/1 `Upgrade`, for WebSocket).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Upgrades {
    /// Upgraded connections are served (the handler takes the upgraded socket).
    Allowed,
    /// Plain HTTP only.
    Refused,
}

/// The listening side of a running server, held by its handle: its address, the state of its
/// socket, and its tasks. Dropping it stops the server.
pub(crate) struct Listener {
    switch: Arc<Switch>,
    addr: SocketAddr,
    socket: watch::Receiver<SocketState>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    _stop_on_drop: DropGuard,
}

impl Listener {
    /// Binds `addr` (`127.0.0.1:0` for any free port) and spawns the accept loop, which serves
    /// `router` on at most `max_connections` connections at once under the faults of `switch`.
    /// Must be called inside a tokio runtime.
    pub fn spawn(
        switch: Arc<Switch>,
        addr: SocketAddr,
        router: Router,
        max_connections: usize,
        upgrades: Upgrades,
    ) -> io::Result<Self> {
        let listener = bind(addr)?;
        let addr = listener.local_addr()?;
        let (socket_tx, socket_rx) = watch::channel(SocketState::default());
        let accept = AcceptLoop {
            switch: switch.clone(),
            router,
            connections: Arc::new(Semaphore::new(max_connections)),
            upgrades,
            addr,
            socket: socket_tx,
        };
        let task = tokio::spawn(accept.run(listener));
        Ok(Self {
            _stop_on_drop: switch.shutdown.clone().drop_guard(),
            switch,
            addr,
            socket: socket_rx,
            tasks: Mutex::new(vec![task]),
        })
    }

    /// The bound address (the same across `Down` and heal).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Spawns `task`, which [`Listener::shutdown`] waits for; it gets the shutdown token and
    /// must end when that is cancelled.
    pub fn spawn_task<F>(&self, task: impl FnOnce(CancellationToken) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let handle = tokio::spawn(task(self.switch.shutdown.clone()));
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner).push(handle);
    }

    /// Switches to `fault` at once for requests that arrive from now on (held `Freeze` requests
    /// are released under the new fault). Closing or rebinding the listener for [`Fault::Down`]
    /// happens moments later in the accept loop; await [`Listener::ready`] to be sure.
    pub fn set_fault(&self, fault: Fault) {
        tracing::debug!(addr = %self.addr, fault = fault.name(), "{} fault", self.switch.name);
        self.switch.fault.send_modify(|s| {
            s.generation += 1;
            s.fault = fault;
        });
    }

    /// Waits until the last fault set is in effect at the socket too: after `Down` the port
    /// refuses connections and earlier connections are closed; after leaving `Down` it listens on
    /// the same port again. Errs if that rebinding fails (it is retried in the background) or the
    /// server has stopped.
    pub async fn ready(&self) -> io::Result<()> {
        let stopped = || io::Error::new(io::ErrorKind::NotConnected, format!("{} has stopped", self.switch.name));
        if self.switch.shutdown.is_cancelled() {
            return Err(stopped());
        }
        let wanted = self.switch.fault.borrow().generation;
        let mut rx = self.socket.clone();
        let state = rx.wait_for(|s| s.generation >= wanted).await.map_err(|_| stopped())?;
        match &state.bind_error {
            Some((kind, message)) => Err(io::Error::new(*kind, message.clone())),
            None => Ok(()),
        }
    }

    /// Stops the server: closes the port, drops all connections and waits for its tasks.
    pub async fn shutdown(&self) {
        self.switch.shutdown.cancel();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        for task in tasks {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "{} task failed", self.switch.name);
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

struct AcceptLoop {
    switch: Arc<Switch>,
    router: Router,
    connections: Arc<Semaphore>,
    upgrades: Upgrades,
    addr: SocketAddr,
    socket: watch::Sender<SocketState>,
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
        let name = self.switch.name;
        let mut fault_rx = self.switch.fault.subscribe();
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
                    tracing::debug!(addr = %self.addr, "{name} down");
                }
            } else if listener.is_none() {
                match bind(self.addr) {
                    Ok(bound) => {
                        listener = Some(bound);
                        bind_error = None;
                        self.switch.new_period();
                        tracing::debug!(addr = %self.addr, "{name} up again");
                    }
                    Err(e) => {
                        tracing::warn!(addr = %self.addr, error = %e, "{name} cannot rebind its port; retrying");
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
                () = self.switch.shutdown.cancelled() => Step::Stop,
                changed = fault_rx.changed() => if changed.is_ok() { Step::FaultChanged } else { Step::Stop },
                () = &mut retry, if rebinding => Step::RetryBind,
                accepted = accept(listener.as_ref()) => Step::Accepted(accepted),
            };
            match step {
                Step::Stop => break,
                Step::FaultChanged | Step::RetryBind => {}
                Step::Accepted(Ok((stream, _peer))) => self.serve(stream),
                Step::Accepted(Err(e)) => {
                    tracing::debug!(error = %e, "{name} accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            }
        }
        drop(listener);
        self.drop_connections().await;
    }

    /// Cancels every connection of the current period and waits until they are gone.
    async fn drop_connections(&self) {
        let period = self.switch.period();
        period.token.cancel();
        period.tracker.close();
        if tokio::time::timeout(DRAIN_TIMEOUT, period.tracker.wait()).await.is_err() {
            tracing::warn!(addr = %self.addr, "{} connections did not stop in time", self.switch.name);
        }
    }

    fn serve(&self, stream: TcpStream) {
        let name = self.switch.name;
        let Ok(permit) = self.connections.clone().try_acquire_owned() else {
            add(&self.switch.rejected_connections);
            return;
        };
        add(&self.switch.connections);
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "set_nodelay failed");
        }
        let period = self.switch.period();
        let token = period.token.clone();
        let service = TowerToHyperService::new(self.router.clone());
        let upgrades = self.upgrades;
        period.tracker.spawn(async move {
            let builder = auto::Builder::new(TokioExecutor::new());
            let io = TokioIo::new(stream);
            let connection = async {
                match upgrades {
                    Upgrades::Allowed => builder.serve_connection_with_upgrades(io, service).await,
                    Upgrades::Refused => builder.serve_connection(io, service).await,
                }
            };
            tokio::select! {
                result = connection => {
                    if let Err(e) = result {
                        tracing::trace!(error = %e, "{name} connection ended with error");
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

// ---------------------------------------------------------------------------------------------
// JSON-RPC envelope of incoming calls.

/// One JSON-RPC call of a request body (single or batch item).
#[derive(Deserialize)]
pub(crate) struct Call<'a> {
    /// `None` if absent (a notification); `Some("null")` for an explicit null id.
    #[serde(default, borrow, deserialize_with = "raw_present")]
    pub id: Option<&'a RawValue>,
    /// The method name.
    pub method: String,
    /// The parameters as they were sent, if any.
    #[serde(default, borrow)]
    pub params: Option<&'a RawValue>,
}

/// Only the id of a call (to answer an item that is not a valid [`Call`], or every call with an
/// error).
#[derive(Deserialize)]
pub(crate) struct IdOnly<'a> {
    /// As [`Call::id`].
    #[serde(default, borrow, deserialize_with = "raw_present")]
    pub id: Option<&'a RawValue>,
}

/// A present field as `Some`, even when it is `null` (an absent one is `None` by `default`).
fn raw_present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&'de RawValue>::deserialize(d).map(Some)
}
