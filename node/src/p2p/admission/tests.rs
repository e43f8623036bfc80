//! Admission decisions driven the way the swarm drives them: `handle_*` first, then the
//! `ConnectionEstablished`/`ConnectionClosed` events, then `poll` for the evictions.

use std::task::{Context, Poll};

use futures::task::noop_waker_ref;
use libp2p::core::ConnectedPoint;

use super::*;

const LOCAL: &str = "/ip4/127.0.0.1/tcp/4001";

fn addr(ip: &str) -> Multiaddr {
    format!("/ip4/{ip}/tcp/5000").parse().unwrap()
}

struct Harness {
    b: Behaviour,
    next_id: usize,
    counter: Family<AdmissionLabels, Counter>,
}

impl Harness {
    fn new(limits: AdmissionLimits, trusted: &[PeerId], bootstrap: &[Multiaddr]) -> Self {
        let counter = Family::default();
        Self { b: Behaviour::new(limits, trusted.iter().copied(), bootstrap, counter.clone()), next_id: 0, counter }
    }

    fn id(&mut self) -> ConnectionId {
        self.next_id += 1;
        ConnectionId::new_unchecked(self.next_id)
    }

    fn count(&self, outcome: &str) -> u64 {
        self.counter.get_or_create(&AdmissionLabels { outcome: outcome.into() }).get()
    }

    /// A connection from `ip` that starts its handshake; `Some(id)` if admitted.
    fn pending(&mut self, ip: &str) -> Option<ConnectionId> {
        let id = self.id();
        let local: Multiaddr = LOCAL.parse().unwrap();
        self.b.handle_pending_inbound_connection(id, &local, &addr(ip)).ok().map(|()| id)
    }

    /// The handshake of `id` from `ip` completes as `peer`; whether the connection was taken.
    fn establish_inbound(&mut self, id: ConnectionId, peer: PeerId, ip: &str) -> bool {
        let local: Multiaddr = LOCAL.parse().unwrap();
        let remote = addr(ip);
        if self.b.handle_established_inbound_connection(id, peer, &local, &remote).is_err() {
            self.b.on_swarm_event(FromSwarm::ListenFailure(ListenFailure {
                local_addr: &local,
                send_back_addr: &remote,
                error: &libp2p::swarm::ListenError::Aborted,
                connection_id: id,
                peer_id: Some(peer),
            }));
            return false;
        }
        let endpoint = ConnectedPoint::Listener { local_addr: local, send_back_addr: remote };
        self.b.on_swarm_event(FromSwarm::ConnectionEstablished(ConnectionEstablished {
            peer_id: peer,
            connection_id: id,
            endpoint: &endpoint,
            failed_addresses: &[],
            other_established: 0,
        }));
        true
    }

    /// A whole incoming connection from `ip` as `peer`: `Some(id)` if it got through.
    fn inbound(&mut self, peer: PeerId, ip: &str) -> Option<ConnectionId> {
        let id = self.pending(ip)?;
        self.establish_inbound(id, peer, ip).then_some(id)
    }

    fn outbound(&mut self, peer: PeerId, ip: &str) -> Option<ConnectionId> {
        let id = self.id();
        let address = addr(ip);
        self.b.handle_established_outbound_connection(id, peer, &address, Endpoint::Dialer, PortUse::Reuse).ok()?;
        let endpoint = ConnectedPoint::Dialer { address, role_override: Endpoint::Dialer, port_use: PortUse::Reuse };
        self.b.on_swarm_event(FromSwarm::ConnectionEstablished(ConnectionEstablished {
            peer_id: peer,
            connection_id: id,
            endpoint: &endpoint,
            failed_addresses: &[],
            other_established: 0,
        }));
        Some(id)
    }

    /// The connections the behaviour asks to close, closed (as the swarm would).
    fn evictions(&mut self) -> Vec<ConnectionId> {
        let mut out = Vec::new();
        let mut cx = Context::from_waker(noop_waker_ref());
        while let Poll::Ready(ToSwarm::CloseConnection { peer_id, connection: CloseConnection::One(id) }) =
            self.b.poll(&mut cx)
        {
            let endpoint =
                ConnectedPoint::Listener { local_addr: LOCAL.parse().unwrap(), send_back_addr: addr("1.1.1.1") };
            self.b.on_swarm_event(FromSwarm::ConnectionClosed(ConnectionClosed {
                peer_id,
                connection_id: id,
                endpoint: &endpoint,
                cause: None,
                remaining_established: 0,
            }));
            out.push(id);
        }
        out
    }
}

fn limits(max_pending_incoming: usize, max_incoming: usize, max_established: usize) -> AdmissionLimits {
    AdmissionLimits { max_pending_incoming, max_pending_per_ip: MAX_PENDING_PER_IP, max_incoming, max_established }
}

#[test]
fn one_ip_cannot_take_every_pending_slot() {
    let mut h = Harness::new(limits(64, 64, 64), &[], &[]);
    let admitted = (0..MAX_PENDING_PER_IP + 1).filter_map(|_| h.pending("127.0.0.2")).collect::<Vec<_>>();
    assert_eq!(admitted.len(), MAX_PENDING_PER_IP);
    assert_eq!(h.count("refused_pending_per_ip"), 1);
    assert!(h.pending("127.0.0.3").is_some(), "another address still gets in");
    // A finished handshake frees its slot.
    assert!(h.establish_inbound(admitted[0], PeerId::random(), "127.0.0.2"));
    assert!(h.pending("127.0.0.2").is_some());
}

#[test]
fn many_addresses_fill_the_pending_cap_but_not_a_bootstrap_address() {
    let boot_peer = PeerId::random();
    let boot: Multiaddr = format!("/ip4/10.0.0.1/tcp/4001/p2p/{boot_peer}").parse().unwrap();
    let mut h = Harness::new(limits(16, 64, 64), &[], &[boot]);
    let mut n = 0;
    for i in 0..32 {
        n += usize::from(h.pending(&format!("192.0.2.{i}")).is_some());
    }
    assert_eq!(n, 16, "strangers take at most p2p.max_pending_incoming");
    assert_eq!(h.count("refused_pending"), 16);
    assert!(h.pending("192.0.2.200").is_none());
    // The bootstrap peer's address is reserved (the per-address cap still holds there).
    assert!(h.inbound(boot_peer, "10.0.0.1").is_some());
    let held = (0..MAX_PENDING_PER_IP).filter(|_| h.pending("10.0.0.1").is_some()).count();
    assert_eq!(held, MAX_PENDING_PER_IP);
    assert!(h.pending("10.0.0.1").is_none());
}

#[test]
fn trusted_addresses_come_from_the_mesh_view_and_are_replaced() {
    let t = PeerId::random();
    let mut h = Harness::new(limits(1, 64, 64), &[], &[]);
    assert!(h.pending("192.0.2.1").is_some());
    assert!(h.pending("198.51.100.7").is_none(), "the cap is full and the address unknown");
    h.b.set_trusted([(t, vec!["/ip4/198.51.100.7/udp/4001/quic-v1".parse().unwrap()])]);
    assert!(h.pending("198.51.100.7").is_some());
    h.b.set_trusted([]);
    assert!(h.pending("198.51.100.7").is_none(), "no longer trusted, no longer reserved");
}

#[test]
fn strangers_are_capped_and_a_trusted_peer_evicts_the_newest() {
    let trusted = PeerId::random();
    let mut h = Harness::new(limits(64, 3, 4), &[trusted], &[]);
    let out = h.outbound(PeerId::random(), "203.0.113.1").expect("an outgoing connection");
    let strangers: Vec<ConnectionId> =
        (0..5).filter_map(|i| h.inbound(PeerId::random(), &format!("192.0.2.{i}"))).collect();
    assert_eq!(strangers.len(), 3, "p2p.max_incoming");
    assert_eq!(h.count("refused_incoming"), 2);
    // Full (3 in + 1 out = 4): another outgoing connection to a stranger is refused too.
    assert!(h.outbound(PeerId::random(), "203.0.113.2").is_none());
    assert_eq!(h.count("refused_total"), 1);
    // The trusted peer gets in, from any address, and the newest incoming stranger goes.
    assert!(h.inbound(trusted, "198.51.100.9").is_some());
    assert_eq!(h.evictions(), vec![strangers[2]]);
    assert_eq!(h.count("evicted"), 1);
    assert_eq!(h.b.open_total(), 4);
    // Its address is now known: reserved before the handshake too.
    assert!(h.b.is_reserved_ip(&"198.51.100.9".parse().unwrap()));
    // Incoming strangers go before the outgoing one.
    let trusted2 = PeerId::random();
    h.b.set_trusted([(trusted2, vec![])]);
    assert!(h.inbound(trusted2, "198.51.100.10").is_some());
    assert_eq!(h.evictions(), vec![strangers[1]]);
    let _ = (out, strangers[0]);
}

#[test]
fn reserved_peers_are_refused_only_when_every_place_is_reserved() {
    let peers: Vec<PeerId> = (0..3).map(|_| PeerId::random()).collect();
    let mut h = Harness::new(limits(64, 2, 2), &peers, &[]);
    assert!(h.inbound(peers[0], "10.0.0.1").is_some());
    assert!(h.outbound(peers[1], "10.0.0.2").is_some());
    assert!(h.inbound(peers[2], "10.0.0.3").is_none());
    assert_eq!(h.count("refused_total"), 1);
    assert!(h.evictions().is_empty());
}

#[test]
fn a_bootstrap_address_without_a_peer_id_is_reserved_by_address() {
    let boot: Multiaddr = "/ip4/10.0.0.5/tcp/4001".parse().unwrap();
    let mut h = Harness::new(limits(64, 0, 4), &[], &[boot]);
    assert!(h.inbound(PeerId::random(), "192.0.2.1").is_none(), "p2p.max_incoming = 0: strangers never get in");
    assert!(h.inbound(PeerId::random(), "10.0.0.5").is_some());
}
