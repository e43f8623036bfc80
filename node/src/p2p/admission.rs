//! Admission of connections: which ones the swarm takes, and which it closes to make room for
//! the peers this node must not lose, its bootstrap and trusted peers ("reserved" peers).
//!
//! Everyone else (a "stranger") is held to these caps:
//! - at most `p2p.max_pending_per_ip` ([`MAX_PENDING_PER_IP`]) incoming connections from one IP address in the Noise/Yamux
//!   handshake at once (each also ends at the transport's handshake timeout,
//!   [`super::transport::HANDSHAKE_TIMEOUT`]), so half-open sockets from one host cannot hold
//!   the handshake slots;
//! - at most `p2p.max_pending_incoming` incoming connections in the handshake from addresses that
//!   are not reserved, so half-open sockets from many hosts cannot either;
//! - at most `p2p.max_incoming` established incoming connections from strangers;
//! - at most `p2p.max_connections` established connections in total.
//!
//! A connection is known to come from a reserved peer in two steps. Before its handshake only
//! its IP address is known: addresses of bootstrap multiaddrs, addresses trusted peers announce
//! ([`Behaviour::set_trusted`], from the mesh view) and addresses reserved peers were seen
//! connecting from are reserved, and skip the second cap (not the first: a reserved address may
//! be a NAT shared with strangers). Once established its PeerId is known: a bootstrap peer's or
//! a trusted peer's connection skips the third cap, and when the total is at the fourth it is
//! admitted anyway and a stranger's connection is closed to make room (the newest incoming
//! one, else the newest outgoing one: the oldest links are the ones the mesh has invested in).
//! Only when every connection is a reserved peer's is a reserved peer refused; raise
//! `p2p.max_connections` then.
//!
//! Everything here runs inside the swarm's poll (the event loop's task): no locks, no awaits.

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll, Waker};

use libp2p::core::Endpoint;
use libp2p::core::multiaddr::Protocol;
use libp2p::core::transport::PortUse;
use libp2p::swarm::behaviour::ConnectionEstablished;
use libp2p::swarm::{
    CloseConnection, ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, ListenFailure, NetworkBehaviour,
    THandler, THandlerInEvent, THandlerOutEvent, ToSwarm, dummy,
};
use libp2p::{Multiaddr, PeerId};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

/// Default of `p2p.max_pending_per_ip`: incoming connections one IP address may have in the
/// handshake at once. A real peer needs one or two (TCP and QUIC); a few more allow hosts
/// behind one NAT.
pub const MAX_PENDING_PER_IP: usize = 8;

/// Most addresses remembered as reserved (trusted peers' announced addresses plus those reserved
/// peers connected from). A federation of thousands of members with several addresses each fits;
/// beyond it, later addresses are simply not reserved before their handshake.
pub const MAX_RESERVED_IPS: usize = 4096;

/// The caps strangers are held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// Incoming connections in the handshake from addresses that are not reserved
    /// (`p2p.max_pending_incoming`).
    pub max_pending_incoming: usize,
    /// Incoming connections in the handshake from one IP address (`p2p.max_pending_per_ip`).
    pub max_pending_per_ip: usize,
    /// Established incoming connections from strangers (`p2p.max_incoming`).
    pub max_incoming: usize,
    /// Established connections in total (`p2p.max_connections`).
    pub max_established: usize,
}

/// Why a connection was refused (the message names the setting that decides).
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The address already has `p2p.max_pending_per_ip` connections in the handshake.
    #[error("{1} incoming connections from {0} are already in the handshake (p2p.max_pending_per_ip)")]
    PendingPerIp(IpAddr, usize),
    /// The handshake slots for addresses that are not reserved are full.
    #[error("{0} incoming connections are already in the handshake (p2p.max_pending_incoming)")]
    Pending(usize),
    /// The established incoming connections of strangers are at their cap.
    #[error("{0} incoming connections from peers that are neither bootstrap nor trusted (p2p.max_incoming)")]
    Incoming(usize),
    /// Every place is taken (by reserved peers only, when the refused one is reserved).
    #[error("{0} connections established (p2p.max_connections)")]
    Total(usize),
}

/// Labels of [`Behaviour`]'s counter, `rpcmesh_p2p_admission_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AdmissionLabels {
    /// `refused_pending_per_ip`, `refused_pending`, `refused_incoming`, `refused_total`,
    /// `reserved` (a bootstrap or trusted peer's connection admitted) or `evicted` (a stranger's
    /// connection closed to make room for one).
    pub outcome: String,
}

#[derive(Debug)]
struct Pending {
    ip: IpAddr,
    /// Counted against `max_pending_incoming` (its address was not reserved when it arrived).
    counted: bool,
}

#[derive(Debug)]
struct Established {
    peer: PeerId,
    ip: Option<IpAddr>,
    inbound: bool,
    /// Order of establishment: the newest stranger is closed first.
    seq: u64,
}

/// Admits and evicts connections as the module documentation says.
#[derive(Debug)]
pub struct Behaviour {
    limits: AdmissionLimits,
    /// Bootstrap peers with a PeerId and `trust.peers`: fixed for the daemon's life.
    static_peers: HashSet<PeerId>,
    /// Addresses of the bootstrap multiaddrs.
    static_ips: HashSet<IpAddr>,
    /// Addresses of bootstrap multiaddrs without a `/p2p/` PeerId: the address is all there is
    /// to recognise them by, after the handshake too.
    anonymous_ips: HashSet<IpAddr>,
    /// Trusted peers from the mesh view, replaced by [`Behaviour::set_trusted`].
    trusted_peers: HashSet<PeerId>,
    /// Their announced addresses.
    trusted_ips: HashSet<IpAddr>,
    /// Addresses reserved peers connected from (NAT, DNS bootstrap names), and whose they are.
    learned_ips: HashMap<IpAddr, PeerId>,
    pending: HashMap<ConnectionId, Pending>,
    pending_by_ip: HashMap<IpAddr, usize>,
    pending_counted: usize,
    established: HashMap<ConnectionId, Established>,
    next_seq: u64,
    /// Connections asked to close (still established until the swarm says so).
    closing: HashSet<ConnectionId>,
    to_close: VecDeque<(PeerId, ConnectionId)>,
    waker: Option<Waker>,
    counter: Family<AdmissionLabels, Counter>,
}

fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

impl Behaviour {
    /// Admission under `limits`, reserving `peers` (`trust.peers`) and the peers and addresses of
    /// `bootstrap`; decisions are counted in `counter`.
    pub fn new(
        limits: AdmissionLimits,
        peers: impl IntoIterator<Item = PeerId>,
        bootstrap: &[Multiaddr],
        counter: Family<AdmissionLabels, Counter>,
    ) -> Self {
        let mut static_peers: HashSet<PeerId> = peers.into_iter().collect();
        let mut static_ips = HashSet::new();
        let mut anonymous_ips = HashSet::new();
        for addr in bootstrap {
            let ip = ip_of(addr);
            match peer_of(addr) {
                Some(peer) => {
                    static_peers.insert(peer);
                }
                None => anonymous_ips.extend(ip),
            }
            static_ips.extend(ip);
        }
        Self {
            limits,
            static_peers,
            static_ips,
            anonymous_ips,
            trusted_peers: HashSet::new(),
            trusted_ips: HashSet::new(),
            learned_ips: HashMap::new(),
            pending: HashMap::new(),
            pending_by_ip: HashMap::new(),
            pending_counted: 0,
            established: HashMap::new(),
            next_seq: 0,
            closing: HashSet::new(),
            to_close: VecDeque::new(),
            waker: None,
            counter,
        }
    }

    /// Replaces the trusted peers learned from the mesh view, with the addresses they announce.
    /// Addresses beyond [`MAX_RESERVED_IPS`] are left out.
    pub fn set_trusted(&mut self, trusted: impl IntoIterator<Item = (PeerId, Vec<Multiaddr>)>) {
        self.trusted_peers.clear();
        self.trusted_ips.clear();
        for (peer, addrs) in trusted {
            self.trusted_peers.insert(peer);
            for ip in addrs.iter().filter_map(ip_of) {
                if self.trusted_ips.len() < MAX_RESERVED_IPS {
                    self.trusted_ips.insert(ip);
                }
            }
        }
        let (statics, trusted) = (&self.static_peers, &self.trusted_peers);
        self.learned_ips.retain(|_, p| statics.contains(p) || trusted.contains(p));
    }

    fn is_reserved_peer(&self, peer: &PeerId) -> bool {
        self.static_peers.contains(peer) || self.trusted_peers.contains(peer)
    }

    /// Whether an established connection of `peer` from `ip` is a reserved peer's.
    fn is_reserved(&self, peer: &PeerId, ip: Option<IpAddr>) -> bool {
        self.is_reserved_peer(peer) || ip.is_some_and(|ip| self.anonymous_ips.contains(&ip))
    }

    /// Whether a connection from `ip` may be a reserved peer's (before its handshake).
    fn is_reserved_ip(&self, ip: &IpAddr) -> bool {
        self.static_ips.contains(ip) || self.trusted_ips.contains(ip) || self.learned_ips.contains_key(ip)
    }

    fn count(&self, outcome: &str) {
        self.counter.get_or_create(&AdmissionLabels { outcome: outcome.into() }).inc();
    }

    fn refuse(&self, outcome: &str, why: Refused) -> ConnectionDenied {
        self.count(outcome);
        tracing::debug!(reason = %why, "connection refused");
        ConnectionDenied::new(why)
    }

    fn end_pending(&mut self, connection_id: ConnectionId) {
        let Some(p) = self.pending.remove(&connection_id) else { return };
        if p.counted {
            self.pending_counted = self.pending_counted.saturating_sub(1);
        }
        if let Some(n) = self.pending_by_ip.get_mut(&p.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.pending_by_ip.remove(&p.ip);
            }
        }
    }

    /// Established connections not asked to close.
    fn open(&self) -> impl Iterator<Item = (&ConnectionId, &Established)> {
        self.established.iter().filter(|(id, _)| !self.closing.contains(id))
    }

    fn open_total(&self) -> usize {
        self.established.len().saturating_sub(self.closing.len())
    }

    fn open_incoming_strangers(&self) -> usize {
        self.open().filter(|(_, c)| c.inbound && !self.is_reserved(&c.peer, c.ip)).count()
    }

    /// The stranger's connection to close for a reserved peer: the newest incoming one, else
    /// the newest outgoing one.
    fn victim(&self) -> Option<(PeerId, ConnectionId)> {
        self.open()
            .filter(|(_, c)| !self.is_reserved(&c.peer, c.ip))
            .max_by_key(|(_, c)| (c.inbound, c.seq))
            .map(|(id, c)| (c.peer, *id))
    }

    /// Whether an established connection of `peer` from `ip` may be taken.
    fn admit(&self, peer: &PeerId, ip: Option<IpAddr>, inbound: bool) -> Result<(), ConnectionDenied> {
        let total = self.open_total();
        if self.is_reserved(peer, ip) {
            if total >= self.limits.max_established && self.victim().is_none() {
                return Err(self.refuse("refused_total", Refused::Total(total)));
            }
            self.count("reserved");
            return Ok(());
        }
        if inbound {
            let strangers = self.open_incoming_strangers();
            if strangers >= self.limits.max_incoming {
                return Err(self.refuse("refused_incoming", Refused::Incoming(strangers)));
            }
        }
        if total >= self.limits.max_established {
            return Err(self.refuse("refused_total", Refused::Total(total)));
        }
        Ok(())
    }

    fn on_established(&mut self, e: ConnectionEstablished) {
        let ip = ip_of(e.endpoint.get_remote_address());
        self.next_seq += 1;
        let c = Established { peer: e.peer_id, ip, inbound: e.endpoint.is_listener(), seq: self.next_seq };
        if let Some(ip) = ip
            && self.is_reserved_peer(&e.peer_id)
            && (self.learned_ips.len() < MAX_RESERVED_IPS || self.learned_ips.contains_key(&ip))
        {
            self.learned_ips.insert(ip, e.peer_id);
        }
        self.established.insert(e.connection_id, c);
        // Over the total only through a reserved peer's admission: make room.
        while self.open_total() > self.limits.max_established {
            let Some((peer, id)) = self.victim() else { break };
            self.closing.insert(id);
            self.to_close.push_back((peer, id));
            self.count("evicted");
            tracing::info!(%peer, "closing a connection of a peer that is neither bootstrap nor trusted, to make room for one that is");
        }
        if !self.to_close.is_empty()
            && let Some(w) = self.waker.take()
        {
            w.wake();
        }
    }

    fn on_closed(&mut self, e: ConnectionClosed) {
        self.established.remove(&e.connection_id);
        self.closing.remove(&e.connection_id);
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        let Some(ip) = ip_of(remote) else { return Ok(()) };
        let per_ip = self.limits.max_pending_per_ip;
        if self.pending_by_ip.get(&ip).copied().unwrap_or(0) >= per_ip {
            return Err(self.refuse("refused_pending_per_ip", Refused::PendingPerIp(ip, per_ip)));
        }
        let counted = !self.is_reserved_ip(&ip);
        if counted && self.pending_counted >= self.limits.max_pending_incoming {
            return Err(self.refuse("refused_pending", Refused::Pending(self.pending_counted)));
        }
        *self.pending_by_ip.entry(ip).or_default() += 1;
        if counted {
            self.pending_counted += 1;
        }
        self.pending.insert(connection_id, Pending { ip, counted });
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.end_pending(connection_id);
        self.admit(&peer, ip_of(remote), true)?;
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        _role_override: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.admit(&peer, ip_of(addr), false)?;
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) => self.end_pending(connection_id),
            FromSwarm::ConnectionEstablished(e) => self.on_established(e),
            FromSwarm::ConnectionClosed(e) => self.on_closed(e),
            _ => {}
        }
    }

    fn on_connection_handler_event(&mut self, _peer: PeerId, _id: ConnectionId, event: THandlerOutEvent<Self>) {
        match event {}
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        if let Some((peer_id, id)) = self.to_close.pop_front() {
            return Poll::Ready(ToSwarm::CloseConnection { peer_id, connection: CloseConnection::One(id) });
        }
        self.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests;
