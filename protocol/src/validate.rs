//! Validation rules: explicit limits, typed errors, and the gossip verdict each error implies.
//!
//! [`decode_and_validate`] is the one entry point for untrusted bytes: size check, decode,
//! header rules, body limits, then the signature (cheapest checks first). It is pure and takes
//! microseconds, so the p2p loop can run it inline. Sequence numbers are stateful and checked
//! separately with [`crate::replay::SeqTracker`].

use crate::PROTOCOL_VERSION;
use crate::encoding::{self, DecodeError};
use crate::identity::PublicKey;
use crate::messages::{
    AttestationRound, CapacityAnnouncement, Evidence, HealthAttestation, MembershipCert, MessageHeader, Observation,
    Receipt, RelayRequest, RelayResponse, RelayStatus,
};
use crate::signed::{SignatureError, Signed, SignedBody};

/// Bounds on what a receiver accepts. Defaults suit the public mesh; tests may tighten them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest encoded gossip message (announcement, attestation, certificate), bytes.
    pub max_gossip_bytes: usize,
    /// Largest relay body (request or response), bytes. Real `eth_getLogs` answers run to MiBs.
    pub max_relay_body_bytes: usize,
    /// Most chains in one announcement.
    pub max_chains: usize,
    /// Most listen addresses in one announcement, and the longest one in bytes.
    pub max_listen_addrs: usize,
    /// Longest listen address, bytes.
    pub max_addr_len: usize,
    /// Most method groups per chain, and the longest token.
    pub max_method_groups: usize,
    /// Longest method group token, bytes.
    pub max_method_group_len: usize,
    /// Most policy disclosures per chain.
    pub max_policies: usize,
    /// Longest policy disclosure, bytes.
    pub max_policy_len: usize,
    /// Longest network id, operator name and software version, bytes.
    pub max_short_text_len: usize,
    /// How far in the future `issued_at_ms` may be (clock skew allowance), ms.
    pub max_clock_skew_ms: u64,
    /// Longest lifetime (`expires_at_ms - issued_at_ms`) of a gossip message, ms.
    pub max_gossip_ttl_ms: u64,
    /// Longest validity of a membership certificate, ms.
    pub max_cert_validity_ms: u64,
    /// Longest relay budget, ms.
    pub max_relay_timeout_ms: u32,
    /// Largest encoded `Signed<Evidence>`, bytes. Its material may hold a whole block's receipts
    /// (a full mainnet block's `eth_getBlockReceipts` answer runs to 1-3 MiB), so this is far
    /// above `max_gossip_bytes`.
    pub max_evidence_bytes: usize,
    /// Longest `Evidence.request`, bytes: one JSON-RPC request, never a large body.
    pub max_evidence_request_bytes: usize,
    /// Most `Evidence.material` items: each kind needs a header plus one or two proofs.
    pub max_evidence_material_items: usize,
    /// Most observations in one [`AttestationRound`]: a round holds
    /// `chains × (2 × peer_sample + 1)` of them (7 per chain with the defaults).
    pub max_round_observations: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_gossip_bytes: 64 * 1024,
            max_relay_body_bytes: 32 * 1024 * 1024,
            max_chains: 64,
            max_listen_addrs: 16,
            max_addr_len: 256,
            max_method_groups: 32,
            max_method_group_len: 32,
            max_policies: 16,
            max_policy_len: 256,
            max_short_text_len: 128,
            max_clock_skew_ms: 30_000,
            max_gossip_ttl_ms: 24 * 3600 * 1000,
            max_cert_validity_ms: 5 * 366 * 24 * 3600 * 1000,
            max_relay_timeout_ms: 120_000,
            max_evidence_bytes: 4 * 1024 * 1024,
            max_evidence_request_bytes: 64 * 1024,
            max_evidence_material_items: 16,
            max_round_observations: 256,
        }
    }
}

/// What a receiver checks against.
#[derive(Debug, Clone)]
pub struct ValidationContext {
    /// The receiver's network id.
    pub network_id: String,
    /// The receiver's clock, Unix milliseconds.
    pub now_ms: u64,
    /// Limits in force.
    pub limits: Limits,
}

impl ValidationContext {
    /// A context with default limits.
    pub fn new(network_id: impl Into<String>, now_ms: u64) -> Self {
        Self { network_id: network_id.into(), now_ms, limits: Limits::default() }
    }
}

/// What gossip should do with a message, mirroring gossipsub's acceptance values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Valid: deliver and forward.
    Accept,
    /// Invalid in a way an honest forwarder would never send: drop and penalize the sender.
    Reject,
    /// Not useful but not malicious (stale, expired, newer protocol): drop without penalty.
    Ignore,
}

/// Why a message was not accepted.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ValidationError {
    /// Larger than the limit for its kind.
    #[error("message is {size} bytes, over the {limit}-byte limit")]
    Oversized {
        /// Actual size.
        size: usize,
        /// Limit in force.
        limit: usize,
    },
    /// Not a valid encoding.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Signature or signer key invalid.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// A protocol version this node does not speak.
    #[error("protocol version {0} is not supported (this node speaks {PROTOCOL_VERSION})")]
    UnsupportedVersion(u16),
    /// For another mesh.
    #[error("network id {got:?} does not match this node's {expected:?}")]
    WrongNetwork {
        /// Network id in the message.
        got: String,
        /// This node's.
        expected: String,
    },
    /// Past its expiry.
    #[error("expired {ago_ms} ms ago")]
    Expired {
        /// How long ago.
        ago_ms: u64,
    },
    /// Issued further in the future than the skew allowance.
    #[error("issued {ahead_ms} ms in the future (allowance {allowed_ms} ms)")]
    FromFuture {
        /// How far ahead.
        ahead_ms: u64,
        /// Allowance in force.
        allowed_ms: u64,
    },
    /// Expiry not after issue time, or a lifetime over the limit.
    #[error("lifetime {lifetime_ms} ms is outside 1..={max_ms} ms")]
    BadLifetime {
        /// `expires_at_ms - issued_at_ms` (0 if negative).
        lifetime_ms: u64,
        /// Longest allowed.
        max_ms: u64,
    },
    /// `seq` not newer than the last accepted from this signer.
    #[error("seq {seq} is not newer than {last_seen} already seen")]
    StaleSeq {
        /// The message's seq.
        seq: u64,
        /// The last accepted.
        last_seen: u64,
    },
    /// A field breaks a limit or an internal consistency rule.
    #[error("invalid field {field}: {reason}")]
    Field {
        /// Which field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The embedded membership certificate is invalid or names someone else.
    #[error("membership certificate: {0}")]
    Certificate(Box<ValidationError>),
}

impl ValidationError {
    /// The gossip verdict: penalize only what an honest peer, having validated, would not forward.
    pub fn verdict(&self) -> Verdict {
        match self {
            // An embedded certificate is judged like a message of its own.
            Self::Certificate(inner) => inner.verdict(),
            Self::Expired { .. } | Self::StaleSeq { .. } | Self::UnsupportedVersion(_) => Verdict::Ignore,
            // An honest forwarder with a slightly different clock may pass these on.
            Self::FromFuture { .. } => Verdict::Ignore,
            _ => Verdict::Reject,
        }
    }
}

impl ValidationError {
    /// A short stable code for metrics and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Oversized { .. } => "oversized",
            Self::Decode(_) => "malformed",
            Self::Signature(_) => "bad_signature",
            Self::UnsupportedVersion(_) => "unsupported_version",
            Self::WrongNetwork { .. } => "wrong_network",
            Self::Expired { .. } => "expired",
            Self::FromFuture { .. } => "from_future",
            Self::BadLifetime { .. } => "bad_lifetime",
            Self::StaleSeq { .. } => "stale_seq",
            Self::Field { .. } => "invalid_field",
            Self::Certificate(_) => "bad_certificate",
        }
    }
}

fn field(field: &'static str, reason: impl Into<String>) -> ValidationError {
    ValidationError::Field { field, reason: reason.into() }
}

fn check_len(name: &'static str, len: usize, max: usize) -> Result<(), ValidationError> {
    if len > max {
        return Err(field(name, format!("{len} over the limit of {max}")));
    }
    Ok(())
}

/// Checks the header rules: version, network, lifetime, expiry, skew.
///
/// `expiry_grace_ms` extends the expiry: 0 for gossip (the signer's own clock sets its
/// lifetime), the skew allowance for relays (the deadline is a peer's clock, the budget that
/// counts is `timeout_ms`).
pub fn validate_header(
    h: &MessageHeader,
    ctx: &ValidationContext,
    max_ttl_ms: u64,
    expiry_grace_ms: u64,
) -> Result<(), ValidationError> {
    if h.version != PROTOCOL_VERSION {
        return Err(ValidationError::UnsupportedVersion(h.version));
    }
    check_len("header.network_id", h.network_id.len(), ctx.limits.max_short_text_len)?;
    if h.network_id != ctx.network_id {
        return Err(ValidationError::WrongNetwork { got: h.network_id.clone(), expected: ctx.network_id.clone() });
    }
    let lifetime_ms = h.expires_at_ms.saturating_sub(h.issued_at_ms);
    if lifetime_ms == 0 || lifetime_ms > max_ttl_ms {
        return Err(ValidationError::BadLifetime { lifetime_ms, max_ms: max_ttl_ms });
    }
    if ctx.now_ms > h.expires_at_ms.saturating_add(expiry_grace_ms) {
        return Err(ValidationError::Expired { ago_ms: ctx.now_ms - h.expires_at_ms });
    }
    let allowed_ms = ctx.limits.max_clock_skew_ms;
    if h.issued_at_ms > ctx.now_ms.saturating_add(allowed_ms) {
        return Err(ValidationError::FromFuture { ahead_ms: h.issued_at_ms - ctx.now_ms, allowed_ms });
    }
    Ok(())
}

/// A message kind's own rules beyond the header.
pub trait Validate {
    /// The message's header.
    fn header(&self) -> &MessageHeader;
    /// Longest lifetime allowed for this kind.
    fn max_ttl_ms(limits: &Limits) -> u64;
    /// Largest encoded size for this kind.
    fn max_bytes(limits: &Limits) -> usize;
    /// Field limits and consistency. `signer` is the envelope's signer, where there is one.
    fn validate_body(&self, signer: Option<&PublicKey>, ctx: &ValidationContext) -> Result<(), ValidationError>;
}

/// A message whose signature, header and body rules all passed. Only this module builds one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified<T>(Signed<T>);

impl<T> Verified<T> {
    /// The signer's key.
    pub fn signer(&self) -> PublicKey {
        self.0.signer
    }
    /// The message.
    pub fn body(&self) -> &T {
        &self.0.body
    }
    /// The whole signed envelope.
    pub fn signed(&self) -> &Signed<T> {
        &self.0
    }
    /// Gives up the proof of validity.
    pub fn into_signed(self) -> Signed<T> {
        self.0
    }
}

/// Validates an already-decoded signed message: header, body, then signature.
pub fn validate_signed<T: SignedBody + Validate>(
    msg: Signed<T>,
    ctx: &ValidationContext,
) -> Result<Verified<T>, ValidationError> {
    validate_header(msg.body.header(), ctx, T::max_ttl_ms(&ctx.limits), 0)?;
    msg.body.validate_body(Some(&msg.signer), ctx)?;
    msg.verify()?;
    Ok(Verified(msg))
}

/// Size check, decode, then [`validate_signed`]. The entry point for untrusted gossip bytes.
pub fn decode_and_validate<T: SignedBody + Validate>(
    bytes: &[u8],
    ctx: &ValidationContext,
) -> Result<Verified<T>, ValidationError> {
    let limit = T::max_bytes(&ctx.limits);
    if bytes.len() > limit {
        return Err(ValidationError::Oversized { size: bytes.len(), limit });
    }
    let msg: Signed<T> = encoding::from_bytes(bytes)?;
    validate_signed(msg, ctx)
}

/// Size check, decode and validate an unsigned relay message.
pub fn decode_relay<T: Validate + bincode::Decode<()>>(
    bytes: &[u8],
    ctx: &ValidationContext,
) -> Result<T, ValidationError> {
    decode_relay_with(bytes, ctx, |msg: &T, ctx| msg.validate_body(None, ctx))
}

/// [`decode_relay`] with `check` in place of the message's body rules.
fn decode_relay_with<T: Validate + bincode::Decode<()>>(
    bytes: &[u8],
    ctx: &ValidationContext,
    check: impl FnOnce(&T, &ValidationContext) -> Result<(), ValidationError>,
) -> Result<T, ValidationError> {
    let limit = T::max_bytes(&ctx.limits);
    if bytes.len() > limit {
        return Err(ValidationError::Oversized { size: bytes.len(), limit });
    }
    let msg: T = encoding::from_bytes(bytes)?;
    validate_header(msg.header(), ctx, T::max_ttl_ms(&ctx.limits), ctx.limits.max_clock_skew_ms)?;
    check(&msg, ctx)?;
    Ok(msg)
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Longest `jurisdiction` accepted: a region code such as `DE` or `US-CA`, not prose.
pub const MAX_JURISDICTION_LEN: usize = 16;

impl Validate for CapacityAnnouncement {
    fn header(&self) -> &MessageHeader {
        &self.header
    }
    fn max_ttl_ms(limits: &Limits) -> u64 {
        limits.max_gossip_ttl_ms
    }
    fn max_bytes(limits: &Limits) -> usize {
        limits.max_gossip_bytes
    }
    fn validate_body(&self, signer: Option<&PublicKey>, ctx: &ValidationContext) -> Result<(), ValidationError> {
        let l = &ctx.limits;
        check_len("chains", self.chains.len(), l.max_chains)?;
        check_len("listen_addrs", self.listen_addrs.len(), l.max_listen_addrs)?;
        check_len("software_version", self.software_version.len(), l.max_short_text_len)?;
        if let Some(j) = &self.jurisdiction {
            check_len("jurisdiction", j.len(), MAX_JURISDICTION_LEN)?;
            if j.is_empty() || !j.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return Err(field("jurisdiction", format!("{j:?} is not a region code (letters, digits, '-')")));
            }
        }
        for addr in &self.listen_addrs {
            check_len("listen_addrs[]", addr.len(), l.max_addr_len)?;
            if !addr.starts_with('/') {
                return Err(field("listen_addrs[]", "not a multiaddr"));
            }
        }
        let mut seen = std::collections::HashSet::with_capacity(self.chains.len());
        for c in &self.chains {
            if !seen.insert(c.chain_id) {
                return Err(field("chains[].chain_id", format!("chain {} listed twice", c.chain_id)));
            }
            if c.utilisation_permille > 1000 {
                return Err(field("chains[].utilisation_permille", "over 1000"));
            }
            check_len("chains[].method_groups", c.method_groups.len(), l.max_method_groups)?;
            for g in &c.method_groups {
                check_len("chains[].method_groups[]", g.len(), l.max_method_group_len)?;
                if !is_token(g) {
                    return Err(field("chains[].method_groups[]", format!("{g:?} is not a lower-case token")));
                }
            }
            check_len("chains[].policies", c.policies.len(), l.max_policies)?;
            for p in &c.policies {
                check_len("chains[].policies[]", p.len(), l.max_policy_len)?;
            }
        }
        if let Some(cert) = &self.membership_cert {
            validate_embedded_cert(cert, signer, ctx).map_err(|e| ValidationError::Certificate(Box::new(e)))?;
        }
        Ok(())
    }
}

/// An embedded certificate must be well-formed, correctly signed and name the announcer.
/// Whether its root is trusted, and whether it is still valid, is the node's trust decision:
/// an expired certificate makes a provider untrusted, not its announcement invalid.
fn validate_embedded_cert(
    cert: &Signed<MembershipCert>,
    announcer: Option<&PublicKey>,
    ctx: &ValidationContext,
) -> Result<(), ValidationError> {
    if cert.body.header.version != PROTOCOL_VERSION {
        return Err(ValidationError::UnsupportedVersion(cert.body.header.version));
    }
    if cert.body.header.network_id != ctx.network_id {
        return Err(ValidationError::WrongNetwork {
            got: cert.body.header.network_id.clone(),
            expected: ctx.network_id.clone(),
        });
    }
    cert.body.validate_body(Some(&cert.signer), ctx)?;
    if let Some(announcer) = announcer
        && &cert.body.member != announcer
    {
        return Err(field("member", "names another provider"));
    }
    cert.verify()?;
    Ok(())
}

impl Validate for MembershipCert {
    fn header(&self) -> &MessageHeader {
        &self.header
    }
    fn max_ttl_ms(limits: &Limits) -> u64 {
        limits.max_cert_validity_ms
    }
    fn max_bytes(limits: &Limits) -> usize {
        limits.max_gossip_bytes
    }
    fn validate_body(&self, _signer: Option<&PublicKey>, ctx: &ValidationContext) -> Result<(), ValidationError> {
        check_len("operator_name", self.operator_name.len(), ctx.limits.max_short_text_len)?;
        if self.operator_name.trim().is_empty() {
            return Err(field("operator_name", "empty"));
        }
        let lifetime_ms = self.header.expires_at_ms.saturating_sub(self.header.issued_at_ms);
        if lifetime_ms == 0 || lifetime_ms > ctx.limits.max_cert_validity_ms {
            return Err(ValidationError::BadLifetime { lifetime_ms, max_ms: ctx.limits.max_cert_validity_ms });
        }
        Ok(())
    }
}

impl Validate for HealthAttestation {
    fn header(&self) -> &MessageHeader {
        &self.header
    }
    fn max_ttl_ms(limits: &Limits) -> u64 {
        limits.max_gossip_ttl_ms
    }
    fn max_bytes(limits: &Limits) -> usize {
        limits.max_gossip_bytes
    }
    fn validate_body(&self, _signer: Option<&PublicKey>, ctx: &ValidationContext) -> Result<(), ValidationError> {
        check_observation(&self.observation, &self.header, ctx)
    }
}

/// The rules of one observation, made under `header` (a [`HealthAttestation`]'s, or the
/// [`AttestationRound`]'s it belongs to).
fn check_observation(o: &Observation, header: &MessageHeader, ctx: &ValidationContext) -> Result<(), ValidationError> {
    if o.window_start_ms > o.window_end_ms {
        return Err(field("window_start_ms", "after window_end_ms"));
    }
    if o.window_end_ms > header.issued_at_ms.saturating_add(ctx.limits.max_clock_skew_ms) {
        return Err(field("window_end_ms", "after the attestation was issued"));
    }
    if o.probes_ok > o.probes_sent {
        return Err(field("probes_ok", "more than probes_sent"));
    }
    if o.latency_p50_us > o.latency_p95_us {
        return Err(field("latency_p50_us", "above latency_p95_us"));
    }
    match (o.observed_head, o.reference_head, o.head_lag_blocks) {
        (Some(obs), Some(reference), Some(lag)) if i128::from(reference) - i128::from(obs) != i128::from(lag) => {
            Err(field("head_lag_blocks", "differs from reference_head - observed_head"))
        }
        (None, _, Some(_)) | (_, None, Some(_)) => {
            Err(field("head_lag_blocks", "given without both observed_head and reference_head"))
        }
        _ => Ok(()),
    }
}

impl Validate for AttestationRound {
    fn header(&self) -> &MessageHeader {
        &self.header
    }
    fn max_ttl_ms(limits: &Limits) -> u64 {
        limits.max_gossip_ttl_ms
    }
    fn max_bytes(limits: &Limits) -> usize {
        limits.max_gossip_bytes
    }
    /// Every observation by the rules of a [`HealthAttestation`] under the round's header; at
    /// least one, at most `max_round_observations`, never two about the same (subject, chain)
    /// (a round says one thing about each).
    fn validate_body(&self, _signer: Option<&PublicKey>, ctx: &ValidationContext) -> Result<(), ValidationError> {
        if self.observations.is_empty() {
            return Err(field("observations", "empty"));
        }
        check_len("observations", self.observations.len(), ctx.limits.max_round_observations)?;
        let mut seen = std::collections::HashSet::with_capacity(self.observations.len());
        for o in &self.observations {
            if !seen.insert((o.subject, o.chain_id)) {
                return Err(field("observations", "two about the same subject and chain"));
            }
            check_observation(o, &self.header, ctx)?;
        }
        Ok(())
    }
}

impl Validate for Receipt {
    fn header(&self) -> &MessageHeader {
        &self.header
    }
    fn max_ttl_ms(limits: &Limits) -> u64 {
        limits.max_gossip_ttl_ms
    }
    fn max_bytes(limits: &Limits) -> usize {
        limits.max_gossip_bytes
    }
    fn validate_body(&self, _signer: Option<&PublicKey>, _ctx: &ValidationContext) -> Result<(), ValidationError> {
        Ok(())
    }
}

impl Validate for Evidence {
    fn header(&self) -> &MessageHeader {
        &self.header
    }
    fn max_ttl_ms(limits: &Limits) -> u64 {
        limits.max_gossip_ttl_ms
    }
    fn max_bytes(limits: &Limits) -> usize {
        limits.max_evidence_bytes
    }
    /// Everything a receiver can check without knowing the chain: sizes, that the receipt is
    /// the accused's own signed statement about exactly these request and response bytes on
    /// this chain, and its signature. Whether the anchor is on the trusted chain and whether the
    /// material proves the lie are the node's judgement (they need chain state).
    fn validate_body(&self, signer: Option<&PublicKey>, ctx: &ValidationContext) -> Result<(), ValidationError> {
        check_evidence_binding(self, signer, ctx)?;
        self.receipt.verify()?;
        Ok(())
    }
}

/// Every rule of an [`Evidence`] body but the receipt's signature (rules 1 to 9 of the spec).
pub fn check_evidence_binding(
    e: &Evidence,
    signer: Option<&PublicKey>,
    ctx: &ValidationContext,
) -> Result<(), ValidationError> {
    let l = &ctx.limits;
    check_len("request", e.request.len(), l.max_evidence_request_bytes)?;
    check_len("response", e.response.len(), l.max_evidence_bytes)?;
    check_len("material", e.material.len(), l.max_evidence_material_items)?;
    if e.material.iter().any(Vec::is_empty) {
        return Err(field("material[]", "empty item"));
    }
    if signer == Some(&e.accused) {
        return Err(field("accused", "a reporter cannot accuse itself"));
    }
    let r = &e.receipt;
    if r.signer != e.accused {
        return Err(field("receipt.signer", "is not the accused"));
    }
    if r.body.header.version != PROTOCOL_VERSION || r.body.header.network_id != ctx.network_id {
        return Err(field("receipt.header", "another protocol version or network"));
    }
    if r.body.header.issued_at_ms > e.header.issued_at_ms.saturating_add(l.max_clock_skew_ms) {
        return Err(field("receipt.header.issued_at_ms", "after the evidence was issued"));
    }
    if r.body.chain_id != e.chain_id {
        return Err(field("receipt.chain_id", "another chain"));
    }
    if r.body.request_digest != crate::digest::sha256(&e.request) {
        return Err(field("receipt.request_digest", "is not the digest of the request"));
    }
    if r.body.response_digest != crate::digest::sha256(&e.response) {
        return Err(field("receipt.response_digest", "is not the digest of the response"));
    }
    Ok(())
}

impl Validate for RelayRequest {
    fn header(&self) -> &MessageHeader {
        &self.header
    }
    fn max_ttl_ms(limits: &Limits) -> u64 {
        u64::from(limits.max_relay_timeout_ms)
    }
    fn max_bytes(limits: &Limits) -> usize {
        limits.max_relay_body_bytes.saturating_add(4096)
    }
    fn validate_body(&self, _signer: Option<&PublicKey>, ctx: &ValidationContext) -> Result<(), ValidationError> {
        check_len("body", self.body.len(), ctx.limits.max_relay_body_bytes)?;
        if self.timeout_ms == 0 || self.timeout_ms > ctx.limits.max_relay_timeout_ms {
            return Err(field("timeout_ms", format!("must be 1..={}", ctx.limits.max_relay_timeout_ms)));
        }
        Ok(())
    }
}

impl Validate for RelayResponse {
    fn header(&self) -> &MessageHeader {
        &self.header
    }
    fn max_ttl_ms(limits: &Limits) -> u64 {
        u64::from(limits.max_relay_timeout_ms)
    }
    fn max_bytes(limits: &Limits) -> usize {
        limits.max_relay_body_bytes.saturating_add(4096)
    }
    fn validate_body(&self, _signer: Option<&PublicKey>, ctx: &ValidationContext) -> Result<(), ValidationError> {
        check_relay_response(self, ctx)?;
        if let Some(receipt) = &self.receipt {
            receipt.verify()?;
        }
        Ok(())
    }
}

/// Every rule of a [`RelayResponse`] but the receipt's signature (rules 1 to 3.3 of the spec).
fn check_relay_response(r: &RelayResponse, ctx: &ValidationContext) -> Result<(), ValidationError> {
    check_len("body", r.body.len(), ctx.limits.max_relay_body_bytes)?;
    match (&r.receipt, r.status) {
        (Some(receipt), RelayStatus::Ok) => {
            let b = &receipt.body;
            if b.header.seq != r.header.seq {
                return Err(field("receipt.seq", "does not match the response"));
            }
            if b.header.version != PROTOCOL_VERSION || b.header.network_id != ctx.network_id {
                return Err(field("receipt.header", "another protocol version or network"));
            }
            if b.response_digest != crate::digest::sha256(&r.body) {
                return Err(field("receipt.response_digest", "is not the digest of the body"));
            }
        }
        (Some(_), _) => return Err(field("receipt", "present on a response that is not Ok")),
        (None, RelayStatus::Ok) => return Err(field("receipt", "missing on an Ok response")),
        (None, _) => {}
    }
    Ok(())
}

/// [`decode_relay`] for a [`RelayResponse`], except that the receipt's signature (rule 3.4) is
/// left to the caller. For a requester that received the response over an authenticated
/// channel from the provider it asked: the channel already proves who answered, and the
/// signature only makes the receipt evidence for third parties, so it can be checked after the
/// answer was used. The receipt MUST NOT be shown or used as evidence before
/// [`Signed::verify`] passed.
pub fn decode_relay_response_signature_deferred(
    bytes: &[u8],
    ctx: &ValidationContext,
) -> Result<RelayResponse, ValidationError> {
    decode_relay_with(bytes, ctx, check_relay_response)
}

/// Checks that a validated relay response's receipt is about this exchange: the request the
/// caller sent, by the caller, on the chain asked. [`decode_relay`] already checked the
/// signature and that it covers the response body.
pub fn check_receipt_binds(
    response: &RelayResponse,
    request_body: &[u8],
    requester: &PublicKey,
    chain_id: u64,
) -> Result<(), ValidationError> {
    let Some(receipt) = &response.receipt else { return Ok(()) };
    let r = &receipt.body;
    if &r.requester != requester {
        return Err(field("receipt.requester", "names another requester"));
    }
    if r.chain_id != chain_id {
        return Err(field("receipt.chain_id", "another chain"));
    }
    if r.request_digest != crate::digest::sha256(request_body) {
        return Err(field("receipt.request_digest", "is not the digest of the request sent"));
    }
    Ok(())
}
