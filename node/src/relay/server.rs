//! The relay server task.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use libp2p::PeerId;
use rpcmesh_protocol::messages::{MessageHeader, Receipt, RelayRequest, RelayResponse, RelayStatus};
use rpcmesh_protocol::validate::{Limits, ValidationContext, decode_relay};
use rpcmesh_protocol::{Identity, PublicKey, Signed, digest, encoding};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::policy::{RelayMethodPolicy, check_answer, malformed_reason};
use super::status_response;
use super::stream::StreamRelay;
use crate::clock::now_ms;
use crate::jsonrpc;
use crate::mesh::MeshSnapshot;
use crate::metrics::NodeMetrics;
use crate::p2p::{InboundRelay, P2pHandle};
use crate::trust::TrustPolicy;
use crate::upstream::{TransportError, UpstreamSet};

/// Relay server configuration.
#[derive(Debug, Clone)]
pub struct RelayServerSettings {
    /// Network id.
    pub network_id: String,
    /// Serve untrusted peers too.
    pub open: bool,
    /// Protocol limits.
    pub limits: Limits,
    /// Which methods peers may have served.
    pub methods: RelayMethodPolicy,
}

/// Per-chain relay permits: the announced `max_concurrent_relays`, shared with the announcer,
/// which reports their use as utilisation.
#[derive(Debug, Clone, Default)]
pub struct Capacity {
    chains: Arc<HashMap<u64, (Arc<Semaphore>, u32)>>,
}

impl Capacity {
    /// Permits per chain.
    pub fn new(per_chain: impl IntoIterator<Item = (u64, u32)>) -> Self {
        let chains = per_chain.into_iter().map(|(c, n)| (c, (Arc::new(Semaphore::new(n as usize)), n))).collect();
        Self { chains: Arc::new(chains) }
    }

    /// Takes a permit for `chain_id` without waiting. `None`: not served. `Some(None)`: full.
    pub fn try_acquire(&self, chain_id: u64) -> Option<Option<tokio::sync::OwnedSemaphorePermit>> {
        self.chains.get(&chain_id).map(|(s, _)| s.clone().try_acquire_owned().ok())
    }

    /// Permits in use, in permille of the capacity.
    pub fn utilisation_permille(&self, chain_id: u64) -> u16 {
        match self.chains.get(&chain_id) {
            Some((s, max)) if *max > 0 => {
                let used = max.saturating_sub(s.available_permits() as u32);
                ((u64::from(used) * 1000) / u64::from(*max)).min(1000) as u16
            }
            _ => 0,
        }
    }
}

/// Most requester keys remembered; far above `p2p.max_connections`, so in practice only peers
/// that stopped relaying are forgotten.
const KEY_CACHE_MAX: usize = 4096;

/// Requesters' public keys by PeerId. Recovering a key from a PeerId decompresses a curve point
/// and re-encodes the PeerId to check it is canonical, and the same few peers send every relay.
/// Only keys that decoded are kept: a PeerId maps to one key for good, so entries never go stale.
#[derive(Debug)]
struct KeyCache {
    /// Each key with the PeerId's text, which names the requester in every relay's span
    /// (base58 of the PeerId, a few µs to make afresh per relay).
    keys: Mutex<HashMap<PeerId, (PublicKey, Arc<str>)>>,
    max: usize,
}

impl Default for KeyCache {
    fn default() -> Self {
        Self { keys: Mutex::default(), max: KEY_CACHE_MAX }
    }
}

impl KeyCache {
    /// The ed25519 key of `peer`, `None` if it is not an ed25519 PeerId.
    fn get(&self, peer: &PeerId) -> Option<PublicKey> {
        self.known(peer).map(|(key, _)| key)
    }

    /// The text of `peer`, as `Display` writes it.
    fn name(&self, peer: &PeerId) -> Arc<str> {
        self.known(peer).map_or_else(|| Arc::from(peer.to_string()), |(_, name)| name)
    }

    fn known(&self, peer: &PeerId) -> Option<(PublicKey, Arc<str>)> {
        if let Some(known) = self.keys.lock().unwrap_or_else(|p| p.into_inner()).get(peer) {
            return Some(known.clone());
        }
        // Decoded outside the lock: concurrent relays of other peers do not wait on it.
        let known = (PublicKey::from_peer_id(peer).ok()?, Arc::from(peer.to_string()));
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if keys.len() >= self.max
            && let Some(old) = keys.keys().next().copied()
        {
            keys.remove(&old);
        }
        keys.insert(*peer, known.clone());
        Some(known)
    }
}

/// Serves relays for peers; see the module docs.
pub struct RelayServer {
    /// Signs receipts.
    pub identity: Arc<Identity>,
    /// Settings.
    pub settings: RelayServerSettings,
    /// Own upstreams.
    pub upstreams: Arc<UpstreamSet>,
    /// Trust rules for requesters the mesh view does not know.
    pub policy: TrustPolicy,
    /// The mesh view (requesters' trust).
    pub mesh: watch::Receiver<Arc<MeshSnapshot>>,
    /// Answers go back through the swarm.
    pub p2p: P2pHandle,
    /// Metrics.
    pub metrics: NodeMetrics,
    /// Per-chain permits.
    pub capacity: Capacity,
}

/// The `relay` span of one served relay, joined to the requester's trace when it sent one (read
/// from the request's prefix without copying the body; the full request is validated in `serve`).
fn relay_span(keys: &KeyCache, peer: &PeerId, request: &[u8]) -> tracing::Span {
    let span = tracing::info_span!("relay", from = %keys.name(peer));
    if let Some(trace) = trace_context_of(request) {
        crate::telemetry::join_remote_trace(&span, &trace);
    }
    span
}

impl RelayServer {
    /// Serves until cancelled: relays from request-response (`inbound`) and from relay streams
    /// (`streams`). Each relay runs in its own task, bounded by the per-chain permits.
    pub async fn run(
        self,
        mut inbound: mpsc::Receiver<InboundRelay>,
        mut streams: mpsc::Receiver<StreamRelay>,
        cancel: CancellationToken,
    ) {
        let this = Arc::new(self);
        let keys = Arc::new(KeyCache::default());
        let mut streams_open = true;
        loop {
            let relay = tokio::select! {
                _ = cancel.cancelled() => return,
                r = inbound.recv() => match r { Some(r) => r, None => return },
                r = streams.recv(), if streams_open => match r {
                    Some(r) => {
                        let (this, keys) = (this.clone(), keys.clone());
                        tokio::spawn(async move {
                            let span = relay_span(&keys, &r.peer, &r.request);
                            let response = tracing::Instrument::instrument(this.serve(&keys, &r.peer, &r.request), span).await;
                            this.metrics.relay_bytes("inbound", "request", r.request.len());
                            this.metrics.relay_bytes("inbound", "response", response.len());
                            r.reply.send(response).await;
                        });
                        continue;
                    }
                    None => {
                        streams_open = false;
                        continue;
                    }
                },
            };
            let this = this.clone();
            let keys = keys.clone();
            tokio::spawn(async move {
                let span = relay_span(&keys, &relay.peer, &relay.request);
                let response =
                    tracing::Instrument::instrument(this.serve(&keys, &relay.peer, &relay.request), span).await;
                // Counted here, once per relay, so refusals and errors count as well as answers.
                this.metrics.relay_bytes("inbound", "request", relay.request.len());
                this.metrics.relay_bytes("inbound", "response", response.len());
                let _ = this.p2p.respond(relay.channel, response).await;
            });
        }
    }

    fn refuse(&self, request: &[u8], status: RelayStatus, reason: &str) -> Vec<u8> {
        self.metrics.relay("inbound", status.label());
        status_response(request, &self.settings.network_id, status, reason)
    }

    async fn serve(&self, keys: &KeyCache, peer: &PeerId, raw: &[u8]) -> Vec<u8> {
        let now = now_ms();
        let ctx = ValidationContext {
            network_id: self.settings.network_id.clone(),
            now_ms: now,
            limits: self.settings.limits.clone(),
        };
        let request = match decode_relay::<RelayRequest>(raw, &ctx) {
            Ok(r) => r,
            Err(e) => return self.refuse(raw, RelayStatus::Refused, &format!("invalid relay request: {e}")),
        };
        let seq = request.header.seq;
        tracing::debug!(seq, chain_id = request.chain_id, "serving a relay");
        let Some(requester) = keys.get(peer) else {
            return self.refuse(raw, RelayStatus::Refused, "requester is not an ed25519 peer");
        };
        if !self.settings.open {
            let trusted = match self.mesh.borrow().provider(&requester) {
                Some(p) => p.trust.is_trusted(),
                None => self.policy.judge(&requester, None, now).is_trusted(),
            };
            if !trusted {
                return self.refuse(raw, RelayStatus::Refused, "requester is not trusted by this provider");
            }
        }
        // Parsed once for the method policy and for checking the answer (views, no copy).
        let body = Bytes::from(request.body);
        let call = jsonrpc::parse(&body);
        if let Err(why) = self.settings.methods.check(&requester, &call) {
            return self.refuse(raw, RelayStatus::Refused, &why);
        }
        // Never queue past the announced capacity: the requester fails over faster than it waits.
        let _permit = match self.capacity.try_acquire(request.chain_id) {
            None => {
                return self.refuse(
                    raw,
                    RelayStatus::NotServingChain,
                    &format!("chain {} is not served here", request.chain_id),
                );
            }
            Some(None) => return self.refuse(raw, RelayStatus::Busy, "at capacity"),
            Some(Some(permit)) => permit,
        };
        let Some(upstream) = self.upstreams.best(request.chain_id).cloned() else {
            return self.refuse(raw, RelayStatus::UpstreamError, "no healthy upstream");
        };
        let timeout = Duration::from_millis(u64::from(request.timeout_ms));
        let request_digest = digest::sha256(&body);
        let (status, body) = match upstream.forward(body, timeout).await {
            Ok(reply) if reply.status == 200 => match check_answer(&call, &reply.body) {
                Ok(()) => (RelayStatus::Ok, reply.body),
                Err(why) => {
                    tracing::warn!(chain = request.chain_id, error = %why, "upstream answered a relay with a malformed response");
                    (RelayStatus::UpstreamError, Bytes::from(malformed_reason(&why)))
                }
            },
            Ok(reply) => (RelayStatus::UpstreamError, Bytes::from(format!("upstream answered HTTP {}", reply.status))),
            Err(TransportError::Timeout(_)) => (RelayStatus::Timeout, Bytes::from_static(b"upstream timed out")),
            Err(e) => (RelayStatus::UpstreamError, Bytes::from(e.to_string())),
        };
        self.metrics.relay("inbound", status.label());
        let header = MessageHeader::new(self.settings.network_id.clone(), seq, now_ms(), 60_000);
        let receipt = (status == RelayStatus::Ok).then(|| {
            Signed::sign(
                Receipt {
                    header: header.clone(),
                    requester,
                    chain_id: request.chain_id,
                    request_digest,
                    response_digest: digest::sha256(&body),
                    head: upstream.head().map(|h| h.number),
                },
                &self.identity,
            )
        });
        // Takes the buffer over without a copy when this is its only reference (`to_vec` always
        // copied); the digest above was computed first.
        encoding::to_bytes(&RelayResponse { header, status, body: Vec::from(body), receipt })
    }
}

/// The trace context at the end of an encoded relay request, if it carries one. Reads only
/// the fixed-size tail, after checking that the request's body length leaves room for it.
fn trace_context_of(raw: &[u8]) -> Option<rpcmesh_protocol::messages::TraceContext> {
    use rpcmesh_protocol::messages::TraceContext;
    // header, chain_id (8), timeout_ms (4), body length (8): where the body starts and its length.
    let header = encoding::from_prefix::<MessageHeader>(raw).ok()?;
    let fixed = encoding::to_bytes(&header).len() + 8 + 4;
    let len_bytes: [u8; 8] = raw.get(fixed..fixed + 8)?.try_into().ok()?;
    let body_end = (fixed + 8).checked_add(usize::try_from(u64::from_le_bytes(len_bytes)).ok()?)?;
    if raw.len() != body_end.checked_add(TraceContext::ENCODED_BYTES)? {
        return None;
    }
    encoding::from_bytes::<TraceContext>(&raw[body_end..]).ok()
}

#[cfg(test)]
mod tests {
    use rpcmesh_protocol::Identity;

    use super::*;

    #[test]
    fn the_trace_context_is_read_from_the_tail() {
        use rpcmesh_protocol::messages::TraceContext;
        let trace = TraceContext { trace_id: [3; 16], parent_span_id: [4; 8], flags: 1 };
        let mut request = RelayRequest {
            header: MessageHeader::new("net", 5, 1_000, 2_000),
            chain_id: 1,
            timeout_ms: 2_000,
            body: vec![0xee; 40],
            trace: Some(trace),
        };
        assert_eq!(trace_context_of(&encoding::to_bytes(&request)), Some(trace));
        request.trace = None;
        assert_eq!(trace_context_of(&encoding::to_bytes(&request)), None);
        // A body whose last 25 bytes look like a trace context is still a body.
        request.body = encoding::to_bytes(&trace);
        assert_eq!(trace_context_of(&encoding::to_bytes(&request)), None);
        assert_eq!(trace_context_of(b"junk"), None);
    }

    #[test]
    fn key_cache_answers_from_memory_and_stays_bounded() {
        let cache = KeyCache { keys: Mutex::default(), max: 3 };
        let a = Identity::from_secret_bytes([1; 32]);
        assert_eq!(cache.get(&a.peer_id()), Some(a.public_key()));
        // A hit is answered from the map, without decoding the PeerId again.
        let other = Identity::from_secret_bytes([2; 32]).public_key();
        cache.keys.lock().unwrap().insert(a.peer_id(), (other, Arc::from("cached")));
        assert_eq!(cache.get(&a.peer_id()), Some(other));
        assert_eq!(&*cache.name(&a.peer_id()), "cached", "the name is remembered with the key");

        // A PeerId that is not an inline ed25519 key (a SHA-256 multihash) is refused, not kept.
        let mut sha = vec![0x12, 0x20];
        sha.extend_from_slice(&[7; 32]);
        let hashed = PeerId::from_bytes(&sha).unwrap();
        assert_eq!(cache.get(&hashed), None);
        assert_eq!(&*cache.name(&hashed), hashed.to_string());
        assert_eq!(cache.keys.lock().unwrap().len(), 1);

        for n in 10..20 {
            let id = Identity::from_secret_bytes([n; 32]);
            assert_eq!(cache.get(&id.peer_id()), Some(id.public_key()));
            assert!(cache.keys.lock().unwrap().len() <= 3);
        }
    }
}
