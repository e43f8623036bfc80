//! The requesting side of relays.

use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use rpcmesh_protocol::messages::{MessageHeader, Receipt, RelayRequest, RelayStatus};
use rpcmesh_protocol::validate::{
    Limits, ValidationContext, check_receipt_binds, decode_relay_response_signature_deferred,
};
use rpcmesh_protocol::{PublicKey, Signed, encoding};

use crate::clock::{SeqGen, now_ms};
use crate::metrics::NodeMetrics;
use crate::p2p::{P2pError, P2pHandle};

/// A verified relay answer.
#[derive(Debug, Clone)]
pub struct RelayOutcome {
    /// What the server said.
    pub status: RelayStatus,
    /// Upstream response (status `Ok`) or reason.
    pub body: Vec<u8>,
    /// The verified receipt (status `Ok`).
    pub receipt: Option<Signed<Receipt>>,
    /// Round trip.
    pub elapsed: Duration,
}

impl RelayOutcome {
    /// The provider's reason when it refused the request's method by its relay policy (not
    /// the requester): the caller's request, not the provider, is what failed.
    pub fn method_refusal(&self) -> Option<String> {
        (self.status == RelayStatus::Refused && self.body.starts_with(super::METHOD_REFUSED.as_bytes()))
            .then(|| String::from_utf8_lossy(&self.body).into_owned())
    }
}

/// Why a relay produced no verified answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RelayCallError {
    /// Could not reach the peer, or no answer in time.
    #[error(transparent)]
    Transport(#[from] P2pError),
    /// The answer failed validation (bad receipt, wrong digest, malformed).
    #[error("invalid relay response from {peer}: {reason}")]
    Invalid {
        /// The peer.
        peer: PeerId,
        /// What was wrong.
        reason: String,
    },
}

/// A verified receipt as recorded by the requester.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReceiptRecord {
    /// Serving provider's PeerId.
    pub provider: String,
    /// Chain.
    pub chain_id: u64,
    /// Request seq (the relay request id).
    pub seq: u64,
    /// When the provider signed it, Unix ms.
    pub served_at_ms: u64,
    /// SHA-256 of our request body, hex.
    pub request_digest: String,
    /// SHA-256 of the response body, hex.
    pub response_digest: String,
    /// The provider's head when it answered.
    pub head: Option<u64>,
    /// The signed receipt, hex of its canonical bytes (verifiable by anyone).
    pub signed: String,
}

impl ReceiptRecord {
    fn render(receipt: &Signed<Receipt>) -> Self {
        let r = &receipt.body;
        Self {
            provider: receipt.signer.to_peer_id().to_string(),
            chain_id: r.chain_id,
            seq: r.header.seq,
            served_at_ms: r.header.issued_at_ms,
            request_digest: hex::encode(r.request_digest),
            response_digest: hex::encode(r.response_digest),
            head: r.head,
            signed: hex::encode(receipt.to_bytes()),
        }
    }
}

/// The most recent relay receipts, newest last: evidence of who answered what, should an
/// answer later prove wrong.
///
/// A receipt's signature is checked when the receipt is used, not when it arrives: the Noise
/// channel already proves which provider answered, and the signature (~35 µs, a third of a
/// requester's CPU per relay when checked on every answer) only makes the receipt evidence for
/// third parties. Evidence is re-proven, signature included, before it is published, and
/// [`ReceiptLog::recent`] checks what it shows. One receipt in [`RECEIPT_SAMPLE_EVERY`] is
/// checked on arrival by a background task, so a provider whose signatures are broken (whose
/// receipts could never serve as evidence) is noticed and counted within a few dozen relays.
#[derive(Debug, Clone)]
pub struct ReceiptLog {
    inner: Arc<std::sync::Mutex<LogInner>>,
    wake: Arc<tokio::sync::Notify>,
    metrics: NodeMetrics,
}

#[derive(Debug, Default)]
struct LogInner {
    /// Sampled receipts waiting for the background check (each also in `kept`).
    sampled: Vec<Arc<Kept>>,
    /// Received receipts, newest last.
    kept: std::collections::VecDeque<Arc<Kept>>,
    received: u64,
}

/// A received receipt and what its signature check said, if it ran: shared by the log and the
/// sample queue, so a check marks it in place.
#[derive(Debug)]
struct Kept {
    receipt: Signed<Receipt>,
    /// [`UNCHECKED`], [`GOOD`] or [`BAD`].
    state: std::sync::atomic::AtomicU8,
}

const UNCHECKED: u8 = 0;
const GOOD: u8 = 1;
const BAD: u8 = 2;

impl Kept {
    /// Whether the signature holds, checking it at most once however many readers ask; the
    /// reader that settles it counts it.
    fn check(&self, metrics: &NodeMetrics) -> bool {
        use std::sync::atomic::Ordering;
        match self.state.load(Ordering::Acquire) {
            GOOD => return true,
            BAD => return false,
            _ => {}
        }
        let verdict = self.receipt.verify();
        let state = if verdict.is_ok() { GOOD } else { BAD };
        if self.state.compare_exchange(UNCHECKED, state, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            match verdict {
                Ok(()) => {
                    metrics.receipts_verified.inc();
                }
                Err(e) => {
                    metrics.receipts_invalid.inc();
                    tracing::warn!(provider = %self.receipt.signer.to_peer_id(), error = %e,
                        "a relay receipt failed its signature check: this provider's receipts cannot serve as evidence");
                }
            }
        }
        state == GOOD
    }
}

/// Receipts kept in memory.
pub const RECEIPT_LOG_CAPACITY: usize = 1024;
/// One receipt in this many has its signature checked on arrival.
pub const RECEIPT_SAMPLE_EVERY: u64 = 32;

impl ReceiptLog {
    /// An empty log. Inside a tokio runtime it starts its sample checker, which ends when the
    /// last clone of the log is dropped; outside one, sampled receipts are checked when read.
    pub fn new(metrics: NodeMetrics) -> Self {
        let log = Self { inner: Arc::default(), wake: Arc::default(), metrics };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&log.inner);
            let (wake, metrics) = (log.wake.clone(), log.metrics.clone());
            rt.spawn(async move {
                loop {
                    wake.notified().await;
                    let Some(inner) = weak.upgrade() else { return };
                    Self::check_sampled(&inner, &metrics);
                }
            });
        }
        log
    }

    /// Keeps a receipt whose every rule but the signature was checked.
    fn push_unverified(&self, receipt: Signed<Receipt>) {
        let kept = Arc::new(Kept { receipt, state: UNCHECKED.into() });
        let mut q = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        q.received = q.received.wrapping_add(1);
        // The first receipt is sampled too: a newcomer with broken signatures shows at once.
        if q.received % RECEIPT_SAMPLE_EVERY == 1 && q.sampled.len() < RECEIPT_LOG_CAPACITY {
            q.sampled.push(kept.clone());
            if q.sampled.len() == 1 {
                self.wake.notify_one();
            }
        }
        if q.kept.len() >= RECEIPT_LOG_CAPACITY {
            q.kept.pop_front();
        }
        q.kept.push_back(kept);
    }

    /// Checks the sampled receipts (outside the lock); bad ones leave the log.
    fn check_sampled(inner: &std::sync::Mutex<LogInner>, metrics: &NodeMetrics) {
        let batch = std::mem::take(&mut inner.lock().unwrap_or_else(|p| p.into_inner()).sampled);
        let mut all_good = true;
        for kept in &batch {
            all_good &= kept.check(metrics);
        }
        if !all_good {
            Self::drop_bad(inner);
        }
    }

    fn drop_bad(inner: &std::sync::Mutex<LogInner>) {
        let mut q = inner.lock().unwrap_or_else(|p| p.into_inner());
        q.kept.retain(|k| k.state.load(std::sync::atomic::Ordering::Acquire) != BAD);
    }

    /// The last `n` receipts with a valid signature, newest last (those not checked yet are
    /// checked now; a bad one is counted and dropped).
    pub fn recent(&self, n: usize) -> Vec<ReceiptRecord> {
        Self::check_sampled(&self.inner, &self.metrics);
        // Taken out first: checking and rendering are slow enough that relays should not wait
        // on the lock.
        let picked: Vec<Arc<Kept>> = {
            let q = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            q.kept.iter().skip(q.kept.len().saturating_sub(n)).cloned().collect()
        };
        let shown: Vec<ReceiptRecord> =
            picked.iter().filter(|k| k.check(&self.metrics)).map(|k| ReceiptRecord::render(&k.receipt)).collect();
        if shown.len() < picked.len() {
            Self::drop_bad(&self.inner);
        }
        shown
    }
}

/// Sends relays and checks what comes back.
#[derive(Clone)]
pub struct RelayClient {
    p2p: P2pHandle,
    own: PublicKey,
    network_id: String,
    limits: Limits,
    seq: Arc<SeqGen>,
    metrics: NodeMetrics,
    receipts: ReceiptLog,
    streams: Option<super::stream::RelayStreams>,
}

impl RelayClient {
    /// The same client relaying over `streams` (falling back to request-response with peers that
    /// do not speak the stream protocol).
    pub fn with_streams(mut self, streams: Option<super::stream::RelayStreams>) -> Self {
        self.streams = streams;
        self
    }

    /// A client sending through `p2p`.
    pub fn new(p2p: P2pHandle, own: PublicKey, network_id: String, limits: Limits, metrics: NodeMetrics) -> Self {
        Self {
            p2p,
            own,
            network_id,
            limits,
            seq: Arc::new(SeqGen::default()),
            receipts: ReceiptLog::new(metrics.clone()),
            metrics,
            streams: None,
        }
    }

    /// Verified receipts of recent relays.
    pub fn receipts(&self) -> &ReceiptLog {
        &self.receipts
    }

    /// Relays `body` to `provider` for `chain_id` within `timeout`, verifying the response.
    pub async fn call(
        &self,
        provider: PublicKey,
        chain_id: u64,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<RelayOutcome, RelayCallError> {
        let start = Instant::now();
        let peer = provider.to_peer_id();
        let timeout_ms = timeout.as_millis().clamp(1, u128::from(self.limits.max_relay_timeout_ms)) as u32;
        let header = MessageHeader::new(self.network_id.clone(), self.seq.next(), now_ms(), u64::from(timeout_ms));
        // With span export on, the serving peer's `relay` span joins this request's trace.
        let trace = crate::telemetry::current_trace_context();
        let request = RelayRequest { header, chain_id, timeout_ms, body, trace };
        // The (requester, seq) pair joins this request's span with the serving peer's `relay` span
        // in the logs.
        tracing::debug!(%peer, seq = request.header.seq, chain_id, "relaying");
        let encoded = encoding::to_bytes(&request);
        // Counted when handed to the p2p layer, whether or not the peer is reachable: the load
        // this node puts on the mesh (libp2p_bandwidth_bytes_total has the bytes on the wire).
        self.metrics.relay_bytes("outbound", "request", encoded.len());
        let sent = match &self.streams {
            Some(streams) => match streams.call(peer, encoded, timeout).await {
                Ok(raw) => Ok(raw),
                Err(super::stream::StreamError::Unsupported(encoded)) => self.p2p.relay(peer, encoded, timeout).await,
                Err(super::stream::StreamError::Transport(e)) => Err(e),
            },
            None => self.p2p.relay(peer, encoded, timeout).await,
        };
        let raw = match sent {
            Ok(raw) => raw,
            Err(e) => {
                self.metrics.relay("outbound", "transport_error");
                return Err(e.into());
            }
        };
        self.metrics.relay_bytes("outbound", "response", raw.len());
        let ctx =
            ValidationContext { network_id: self.network_id.clone(), now_ms: now_ms(), limits: self.limits.clone() };
        let invalid = |reason: String| RelayCallError::Invalid { peer, reason };
        let response = decode_relay_response_signature_deferred(&raw, &ctx).map_err(|e| invalid(e.to_string()))?;
        if response.header.seq != request.header.seq {
            return Err(invalid("response to another request".into()));
        }
        if let Some(receipt) = &response.receipt {
            check_receipt_binds(&response, &request.body, &self.own, chain_id).map_err(|e| invalid(e.to_string()))?;
            if receipt.signer != provider {
                return Err(invalid("receipt signed by another provider".into()));
            }
            self.receipts.push_unverified(receipt.clone());
        }
        self.metrics.relay("outbound", response.status.label());
        Ok(RelayOutcome {
            status: response.status,
            body: response.body,
            receipt: response.receipt,
            elapsed: start.elapsed(),
        })
    }
}

#[cfg(test)]
mod tests {
    use rpcmesh_protocol::Identity;

    use super::*;

    fn receipt(provider: &Identity, seq: u64) -> Signed<Receipt> {
        Signed::sign(
            Receipt {
                header: MessageHeader::new("net", seq, 1_000 + seq, 60_000),
                requester: Identity::from_secret_bytes([6; 32]).public_key(),
                chain_id: 1,
                request_digest: [1; 32],
                response_digest: [2; 32],
                head: Some(7),
            },
            provider,
        )
    }

    #[test]
    fn receipt_log_keeps_the_newest_and_renders_them_on_read() {
        let provider = Identity::from_secret_bytes([5; 32]);
        let log = ReceiptLog::new(NodeMetrics::default());
        for seq in 0..RECEIPT_LOG_CAPACITY as u64 + 3 {
            log.push_unverified(receipt(&provider, seq));
        }
        let all = log.recent(usize::MAX);
        assert_eq!(all.len(), RECEIPT_LOG_CAPACITY);
        assert_eq!(all[0].seq, 3, "the oldest were dropped");
        let last = log.recent(2);
        assert_eq!(last.iter().map(|r| r.seq).collect::<Vec<_>>(), [1025, 1026]);
        let r = &last[1];
        assert_eq!(r.provider, provider.peer_id().to_string());
        assert_eq!((r.chain_id, r.served_at_ms, r.head), (1, 2_026, Some(7)));
        assert_eq!(r.request_digest, "01".repeat(32));
        assert_eq!(r.response_digest, "02".repeat(32));
        // Rendered from the receipt as received, the hex is what the provider signed.
        let rendered = Signed::<Receipt>::from_bytes(&hex::decode(&r.signed).unwrap()).unwrap();
        rendered.verify().unwrap();
        assert_eq!(rendered, receipt(&provider, 1026));
    }

    #[test]
    fn a_receipt_with_a_bad_signature_is_dropped_and_counted() {
        let provider = Identity::from_secret_bytes([5; 32]);
        let metrics = NodeMetrics::default();
        let log = ReceiptLog::new(metrics.clone());
        let mut forged = receipt(&provider, 2);
        forged.signature[0] ^= 1;
        log.push_unverified(receipt(&provider, 1));
        log.push_unverified(forged);
        log.push_unverified(receipt(&provider, 3));
        let seqs: Vec<u64> = log.recent(10).iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [1, 3]);
        assert_eq!((metrics.receipts_verified.get(), metrics.receipts_invalid.get()), (2, 1));
    }

    #[test]
    fn a_receipt_is_checked_once() {
        let provider = Identity::from_secret_bytes([5; 32]);
        let metrics = NodeMetrics::default();
        let log = ReceiptLog::new(metrics.clone());
        for seq in 1..=3 {
            log.push_unverified(receipt(&provider, seq));
        }
        assert_eq!(log.recent(10).len(), 3);
        assert_eq!(log.recent(10).len(), 3);
        assert_eq!(metrics.receipts_verified.get(), 3, "read twice, checked once");
    }

    #[tokio::test]
    async fn a_sample_of_receipts_is_checked_in_the_background_without_a_read() {
        let provider = Identity::from_secret_bytes([5; 32]);
        let metrics = NodeMetrics::default();
        let log = ReceiptLog::new(metrics.clone());
        let checked = async |n: u64| {
            // Current-thread runtime: the checker runs when this task yields.
            for _ in 0..1000 {
                if metrics.receipts_verified.get() + metrics.receipts_invalid.get() == n {
                    break;
                }
                tokio::task::yield_now().await;
            }
            (metrics.receipts_verified.get(), metrics.receipts_invalid.get())
        };
        // The first is sampled, the next RECEIPT_SAMPLE_EVERY - 1 are not.
        log.push_unverified(receipt(&provider, 1));
        assert_eq!(checked(1).await, (1, 0), "checked by the background task");
        for seq in 2..=RECEIPT_SAMPLE_EVERY {
            let mut forged = receipt(&provider, seq);
            forged.signature[0] ^= 1;
            log.push_unverified(forged);
        }
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert_eq!(checked(1).await, (1, 0), "not sampled: not checked before use");
        // The next sampled one is forged: counted and dropped without a read.
        let mut forged = receipt(&provider, RECEIPT_SAMPLE_EVERY + 1);
        forged.signature[0] ^= 1;
        log.push_unverified(forged);
        assert_eq!(checked(2).await, (1, 1));
        let q = log.inner.lock().unwrap();
        assert!(q.sampled.is_empty());
        assert_eq!(q.kept.len(), RECEIPT_SAMPLE_EVERY as usize, "the forged sampled one left the log");
        assert_eq!(q.kept[0].state.load(std::sync::atomic::Ordering::Relaxed), GOOD, "the sampled good one is marked");
    }
}
