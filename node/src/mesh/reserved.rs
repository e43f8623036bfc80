//! Keeps the p2p admission's trusted peers ([`P2pHandle::set_trusted`]) in step with the mesh
//! view, so that a federation member or `trust.peers` entry keeps its places among the
//! connections even when strangers fill the caps, with the addresses it announces reserved
//! before its handshake.
//!
//! Only explicit and federated trust count: in `trust.mode = "open"` every peer that signs an
//! announcement is trusted, and a place kept for anyone keeps nothing.

use std::sync::Arc;
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::MeshSnapshot;
use crate::p2p::P2pHandle;
use crate::trust::TrustStatus;

/// Trusted providers of `view` (explicitly or by membership) with their announced addresses,
/// sorted by PeerId so that two views can be compared.
pub fn trusted_peers(view: &MeshSnapshot) -> Vec<(PeerId, Vec<Multiaddr>)> {
    let mut out: Vec<(PeerId, Vec<Multiaddr>)> = view
        .providers
        .iter()
        .filter(|p| matches!(p.trust, TrustStatus::Explicit | TrustStatus::Member { .. }))
        .map(|p| (p.key.to_peer_id(), p.listen_addrs.iter().filter_map(|a| a.parse().ok()).collect()))
        .collect();
    out.sort_by_key(|(peer, _)| *peer);
    out
}

/// Least time between two comparisons of the trusted set: building it parses every provider's
/// addresses (O(N)), and the view changes with every gossip batch. Trust moves rarely; a place
/// kept a second late costs nothing.
const MIN_SYNC_GAP: Duration = Duration::from_secs(1);

/// Sends the trusted peers to the p2p loop whenever the view changes them (looked at most once
/// per [`MIN_SYNC_GAP`]), until `cancel` fires or either side stops. Cancel-safe: it only awaits
/// the view, a sleep and the send.
pub async fn sync_trusted(mut view: watch::Receiver<Arc<MeshSnapshot>>, p2p: P2pHandle, cancel: CancellationToken) {
    let mut sent: Option<Vec<(PeerId, Vec<Multiaddr>)>> = None;
    loop {
        let now = trusted_peers(&view.borrow_and_update());
        if sent.as_ref() != Some(&now) {
            if p2p.set_trusted(now.clone()).await.is_err() {
                return;
            }
            sent = Some(now);
        }
        // A change after a quiet second is seen at once; changes in a burst wait for the gap.
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(MIN_SYNC_GAP) => {}
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            changed = view.changed() => if changed.is_err() { return },
        }
    }
}

#[cfg(test)]
mod tests {
    use rpcmesh_protocol::messages::{CapacityAnnouncement, MembershipCert};
    use rpcmesh_protocol::{Identity, MessageHeader, Signed};

    use super::*;
    use crate::config::{TrustConfig, TrustMode};
    use crate::mesh::{MeshSettings, MeshState, Source};
    use crate::trust::TrustPolicy;

    const NET: &str = "reserved-test";
    const T0: u64 = 1_760_000_000_000;

    fn id(n: u8) -> Identity {
        Identity::from_secret_bytes([n; 32])
    }

    fn announcement(who: &Identity, addr: &str, cert: Option<Signed<MembershipCert>>) -> Signed<CapacityAnnouncement> {
        let header = MessageHeader::new(NET, 1, T0, 60_000);
        Signed::sign(CapacityAnnouncement::new(header, vec![], vec![addr.into()], cert, "test".into()), who)
    }

    fn state(mode: TrustMode, explicit: &Identity, root: &Identity, own: &Identity) -> MeshState {
        let cfg = TrustConfig {
            mode,
            peers: vec![explicit.peer_id().to_string()],
            federations: vec![root.public_key().to_hex()],
            ..TrustConfig::default()
        };
        let settings = MeshSettings {
            max_head_lag_blocks: 5,
            probe_fresh_ms: 20_000,
            attestation_fresh_ms: 30_000,
            announce_heartbeat_ms: 5_000,
            forget_after_ms: 120_000,
            probe_window_ms: 60_000,
        };
        MeshState::new(own.public_key(), TrustPolicy::new(&cfg, own.public_key(), NET), settings)
    }

    #[test]
    fn explicit_and_member_peers_with_their_addresses_not_open_or_untrusted_ones() {
        let (me, explicit, member, stranger, root) = (id(1), id(2), id(3), id(4), id(50));
        let header = MessageHeader::new(NET, 1, T0 - 1_000, 3_600_000);
        let cert = Signed::sign(
            MembershipCert { header, member: member.public_key(), operator_name: "Op".into(), vetting: None },
            &root,
        );
        for mode in [TrustMode::Federated, TrustMode::Open] {
            let mut s = state(mode, &explicit, &root, &me);
            s.apply_announcement(announcement(&me, "/ip4/127.0.0.1/tcp/1", None), T0, Source::Local);
            s.apply_announcement(announcement(&explicit, "/ip4/198.51.100.2/tcp/4001", None), T0, Source::Gossip);
            s.apply_announcement(
                announcement(&member, "/ip4/198.51.100.3/udp/4001/quic-v1", Some(cert.clone())),
                T0,
                Source::Gossip,
            );
            s.apply_announcement(announcement(&stranger, "/ip4/203.0.113.4/tcp/4001", None), T0, Source::Gossip);
            let mut want = vec![
                (explicit.peer_id(), vec!["/ip4/198.51.100.2/tcp/4001".parse().unwrap()]),
                (member.peer_id(), vec!["/ip4/198.51.100.3/udp/4001/quic-v1".parse().unwrap()]),
            ];
            want.sort_by_key(|(p, _)| *p);
            // In open mode the stranger is trusted too, but anyone can be: no place is kept for it.
            assert_eq!(trusted_peers(&s.snapshot(T0 + 10)), want, "{mode:?}");
        }
    }
}
