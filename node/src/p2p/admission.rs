//! Admission of incoming connections before their handshake: at most
//! [`MAX_PENDING_PER_IP`] connections from one IP address may be in the Noise/Yamux handshake
//! at once. Half-open sockets (a TCP connect, then silence) from one host then cannot fill the
//! global `p2p.max_pending_incoming` and lock new peers out; each also ends at the transport's
//! handshake timeout ([`super::transport::HANDSHAKE_TIMEOUT`]).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll};

use libp2p::core::Endpoint;
use libp2p::core::multiaddr::Protocol;
use libp2p::core::transport::PortUse;
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, ListenFailure, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm, dummy,
};
use libp2p::{Multiaddr, PeerId};

/// Incoming connections one IP address may have in the handshake at once. A real peer needs
/// one or two (TCP and QUIC); a few more allow hosts behind one NAT.
pub const MAX_PENDING_PER_IP: usize = 8;

/// Why an incoming connection was refused before its handshake.
#[derive(Debug, thiserror::Error)]
#[error("{MAX_PENDING_PER_IP} incoming connections from {0} are already in the handshake")]
pub struct TooManyPending(IpAddr);

/// Counts pending incoming connections per remote IP and refuses those over the cap.
#[derive(Debug, Default)]
pub struct Behaviour {
    by_connection: HashMap<ConnectionId, IpAddr>,
    by_ip: HashMap<IpAddr, usize>,
}

fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

impl Behaviour {
    fn done(&mut self, connection_id: ConnectionId) {
        if let Some(ip) = self.by_connection.remove(&connection_id)
            && let Some(n) = self.by_ip.get_mut(&ip)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.by_ip.remove(&ip);
            }
        }
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
        let n = self.by_ip.entry(ip).or_default();
        if *n >= MAX_PENDING_PER_IP {
            return Err(ConnectionDenied::new(TooManyPending(ip)));
        }
        *n += 1;
        self.by_connection.insert(connection_id, ip);
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _peer: PeerId,
        _local: &Multiaddr,
        _remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.done(connection_id);
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        _peer: PeerId,
        _addr: &Multiaddr,
        _role_override: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        if let FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) = event {
            self.done(connection_id);
        }
    }

    fn on_connection_handler_event(&mut self, _peer: PeerId, _id: ConnectionId, event: THandlerOutEvent<Self>) {
        match event {}
    }

    fn poll(&mut self, _cx: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_ip_cannot_take_every_pending_slot() {
        let mut b = Behaviour::default();
        let local: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().unwrap();
        let attacker: Multiaddr = "/ip4/127.0.0.2/tcp/5000".parse().unwrap();
        let peer: Multiaddr = "/ip4/127.0.0.1/tcp/6000".parse().unwrap();
        let ids: Vec<ConnectionId> = (0..MAX_PENDING_PER_IP + 1).map(|_| ConnectionId::new_unchecked(0)).collect();
        let mut n = 0;
        for (i, _) in ids.iter().enumerate() {
            let id = ConnectionId::new_unchecked(i);
            if b.handle_pending_inbound_connection(id, &local, &attacker).is_ok() {
                n += 1;
            }
        }
        assert_eq!(n, MAX_PENDING_PER_IP);
        assert!(b.handle_pending_inbound_connection(ConnectionId::new_unchecked(100), &local, &peer).is_ok());
        // A finished handshake frees its slot.
        let _ = b.handle_established_inbound_connection(
            ConnectionId::new_unchecked(0),
            PeerId::random(),
            &local,
            &attacker,
        );
        assert!(b.handle_pending_inbound_connection(ConnectionId::new_unchecked(101), &local, &attacker).is_ok());
    }
}
