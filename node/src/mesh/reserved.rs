//! Keeps the p2p admission's trusted peers ([`P2pHandle::set_trusted`]) in step with the mesh
//! view, so that a federation member or `trust.peers` entry keeps its places among the
//! connections even when strangers fill the caps, with the addresses it announces reserved
//! before its handshake.
//!
//! Only explicit and federated trust count: in `trust.mode = "open"` every peer that signs an
//! announcement is trusted, and a place kept for anyone keeps nothing.

use std::sync::Arc;

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

/// Sends the trusted peers to the p2p loop whenever the view changes them, until `cancel` fires
/// or either side stops. Cancel-safe: it only awaits the view and the send.
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
        tokio::select! {
            _ = cancel.cancelled() => return,
            changed = view.changed() => if changed.is_err() { return },
        }
    }
}
