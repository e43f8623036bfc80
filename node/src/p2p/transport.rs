//! The libp2p transport: QUIC, and TCP upgraded with Noise and Yamux; DNS resolution for
//! `/dns*` addresses; bandwidth metrics; and, for local testnets, a loopback-only guard.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::Either;
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::{Boxed, DialOpts, ListenerId, TransportError, TransportEvent};
use libp2p::core::upgrade::Version;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId, Transport as _};

/// Whether an address is on the loopback interface (127.0.0.0/8 or ::1).
pub fn is_loopback(addr: &Multiaddr) -> bool {
    match addr.iter().next() {
        Some(Protocol::Ip4(ip)) => ip.is_loopback(),
        Some(Protocol::Ip6(ip)) => ip.is_loopback(),
        _ => false,
    }
}

/// Whether an address can be dialled by others (not unspecified, not a relay circuit).
pub fn is_dialable(addr: &Multiaddr) -> bool {
    match addr.iter().next() {
        Some(Protocol::Ip4(ip)) => !ip.is_unspecified(),
        Some(Protocol::Ip6(ip)) => !ip.is_unspecified(),
        Some(Protocol::Dns(_) | Protocol::Dns4(_) | Protocol::Dns6(_)) => true,
        _ => false,
    }
}

/// Longest a TCP connection may take to finish its Noise and Yamux handshake. A real peer needs
/// a few round trips (well under a second across continents); a half-open socket holds a
/// pending-connection slot until this passes.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Builds the transport. With `loopback_only`, every dial or listen outside 127.0.0.0/8 and ::1
/// fails at the transport, whichever behaviour asked for it: the guarantee local testnets need.
pub fn build(
    keypair: &libp2p::identity::Keypair,
    loopback_only: bool,
    registry: &mut prometheus_client::registry::Registry,
) -> std::io::Result<Boxed<(PeerId, StreamMuxerBox)>> {
    let noise = libp2p::noise::Config::new(keypair).map_err(std::io::Error::other)?;
    let tcp = libp2p::tcp::tokio::Transport::new(libp2p::tcp::Config::new().nodelay(true))
        .upgrade(Version::V1Lazy)
        .authenticate(noise)
        .multiplex(libp2p::yamux::Config::default())
        .timeout(HANDSHAKE_TIMEOUT);
    let quic = libp2p::quic::tokio::Transport::new(libp2p::quic::Config::new(keypair));
    let both = quic.or_transport(tcp).map(|either, _| match either {
        Either::Left((peer, muxer)) => (peer, StreamMuxerBox::new(muxer)),
        Either::Right((peer, muxer)) => (peer, StreamMuxerBox::new(muxer)),
    });
    let mut metered = |t| {
        libp2p::metrics::BandwidthTransport::new(t, registry).map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
    };
    if loopback_only {
        Ok(metered(LoopbackOnly(both).boxed()).boxed())
    } else {
        let dns = libp2p::dns::tokio::Transport::system(both)?;
        Ok(metered(dns.boxed()).boxed())
    }
}

/// Refuses to listen on or dial anything but loopback addresses.
struct LoopbackOnly<T>(T);

impl<T: libp2p::core::Transport + Unpin> libp2p::core::Transport for LoopbackOnly<T> {
    type Output = T::Output;
    type Error = T::Error;
    type ListenerUpgrade = T::ListenerUpgrade;
    type Dial = T::Dial;

    fn listen_on(&mut self, id: ListenerId, addr: Multiaddr) -> Result<(), TransportError<Self::Error>> {
        if !is_loopback(&addr) {
            return Err(TransportError::MultiaddrNotSupported(addr));
        }
        self.0.listen_on(id, addr)
    }

    fn remove_listener(&mut self, id: ListenerId) -> bool {
        self.0.remove_listener(id)
    }

    fn dial(&mut self, addr: Multiaddr, opts: DialOpts) -> Result<Self::Dial, TransportError<Self::Error>> {
        if !is_loopback(&addr) {
            tracing::debug!(%addr, "refused to dial a non-loopback address (p2p.loopback_only)");
            return Err(TransportError::MultiaddrNotSupported(addr));
        }
        self.0.dial(addr, opts)
    }

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<TransportEvent<Self::ListenerUpgrade, Self::Error>> {
        Pin::new(&mut self.get_mut().0).poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_dialable() {
        let a: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().unwrap();
        let b: Multiaddr = "/ip4/10.0.0.1/tcp/1".parse().unwrap();
        let c: Multiaddr = "/ip4/0.0.0.0/tcp/1".parse().unwrap();
        let d: Multiaddr = "/ip6/::1/udp/1/quic-v1".parse().unwrap();
        assert!(is_loopback(&a) && is_loopback(&d));
        assert!(!is_loopback(&b) && !is_loopback(&c));
        assert!(is_dialable(&a) && is_dialable(&b) && !is_dialable(&c));
    }
}
