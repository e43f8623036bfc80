//! [`MeshState`]: the single-writer fold of everything the node learns about providers.
//! Pure (no I/O, time passed in), so every rule is unit-tested.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use rpcmesh_protocol::messages::{AttestationRound, CapacityAnnouncement, HealthAttestation, MessageHeader};
use rpcmesh_protocol::{PublicKey, Signed};

use super::view::{AttestationSummary, ChainView, Health, MeshSnapshot, ProviderView, Source, Standing};
use crate::trust::{TrustPolicy, TrustStatus};
use crate::upstream::{LatencyWindow, Sample};

/// Tuning of the fold.
#[derive(Debug, Clone)]
pub struct MeshSettings {
    /// Most blocks behind the reference head a provider may be and still be healthy.
    pub max_head_lag_blocks: u64,
    /// Our own probe results older than this no longer decide health, ms.
    pub probe_fresh_ms: u64,
    /// Attestations of the configured period stay fresh this long, ms. A round is fresh for its
    /// own lifetime (its signer stretches its period in a large mesh), at most
    /// [`MAX_STRETCH`] times this.
    pub attestation_fresh_ms: u64,
    /// The configured announcement heartbeat, ms: an announced head older than this is
    /// extrapolated at the chain's block pace (large meshes stretch their heartbeats).
    pub announce_heartbeat_ms: u64,
    /// Expired providers are forgotten after this long, ms.
    pub forget_after_ms: u64,
    /// Window of our probe statistics, ms.
    pub probe_window_ms: u64,
}

/// How far an attestation's own lifetime may stretch its freshness beyond
/// [`MeshSettings::attestation_fresh_ms`]: a signer cannot keep a verdict alive for a day.
pub const MAX_STRETCH: u64 = 64;

/// How long an attestation under `header` counts: its own lifetime, at most [`MAX_STRETCH`] ×
/// `fresh_ms`.
fn fresh_for(header: &MessageHeader, fresh_ms: u64) -> u64 {
    header.expires_at_ms.saturating_sub(header.issued_at_ms).min(fresh_ms.saturating_mul(MAX_STRETCH))
}

/// Fewer successful probes than this fraction make a provider unhealthy.
const MIN_SUCCESS_RATE: f64 = 0.5;

/// A provider's cached view is rebuilt at least this often, ms, as a safety net: expiry,
/// freshness flips and samples leaving our probe windows are tracked exactly
/// ([`MeshState::view_valid_until`]). It was 250 ms while window ageing was not tracked: in a
/// mesh of 100 that rebuilt every view four times a second, the largest idle cost.
const VIEW_MAX_AGE_MS: u64 = 2_000;
/// In a larger mesh the safety net widens by this much per provider held (up to
/// [`VIEW_MAX_AGE_CAP_MS`]), so that its rebuilds stay at about 25 views a second whatever
/// the size: at 2 s for 100 providers they were 50 a second, with ~60 attestations each, the
/// largest share of building snapshots in an idle daemon (`perf record -p`). What the net
/// refreshes is only a view's shown `lag_blocks`; every health flip is tracked exactly.
const VIEW_MAX_AGE_PER_PROVIDER_MS: u64 = 40;
/// The safety net never waits longer than this.
const VIEW_MAX_AGE_CAP_MS: u64 = 10_000;

#[derive(Debug, Clone)]
struct LocalObs {
    window: LatencyWindow,
    head: Option<u64>,
    last_at_ms: u64,
}

#[derive(Debug, Clone)]
struct Entry {
    announcement: Arc<Signed<CapacityAnnouncement>>,
    /// Its PeerId, encoded once: bs58 per snapshot dominated an idle daemon's CPU.
    peer_id: String,
    received_at_ms: u64,
    source: Source,
    trust: TrustStatus,
    local: HashMap<u64, LocalObs>,
    /// The last view built, when, and until when it holds; `None` once an input touched the
    /// provider.
    view: Option<CachedView>,
}

#[derive(Debug, Clone)]
struct CachedView {
    view: Arc<ProviderView>,
    built_at_ms: u64,
    valid_until_ms: u64,
}

/// The latest attestation of one attester on one chain, with the attester's PeerId encoded once.
#[derive(Debug, Clone)]
struct HeldAttestation {
    body: HealthAttestation,
    /// Shared by every view built from it: a view rebuild copies no string per attestation.
    attester_peer_id: Arc<str>,
}

/// The mesh as known to this node; see the module docs.
#[derive(Debug)]
pub struct MeshState {
    own: PublicKey,
    policy: TrustPolicy,
    settings: MeshSettings,
    entries: HashMap<PublicKey, Entry>,
    /// Latest attestation per subject, attester and chain (kept even before the subject announces).
    attestations: HashMap<PublicKey, HashMap<(PublicKey, u64), HeldAttestation>>,
    connected: HashSet<PublicKey>,
    /// Reference heads of the last snapshot: when they move, every provider's lag moves.
    last_reference: BTreeMap<u64, u64>,
    /// Cordons and reputation, as the evidence task last sent them.
    standings: Arc<HashMap<PublicKey, Standing>>,
    /// Block pace per chain, learned from this node's own probes.
    pace: HashMap<u64, BlockPace>,
    /// The snapshot's provider order (this node first, then by PeerId) and its index, kept
    /// while the set of providers stays the same: sorting and indexing them per snapshot was
    /// a tenth of an idle daemon's work in a mesh of 100. `None` once a provider came or went.
    order: Option<Order>,
}

/// Providers in snapshot order, and each one's place in it.
#[derive(Debug)]
struct Order {
    keys: Vec<PublicKey>,
    index: Arc<HashMap<PublicKey, usize>>,
}

/// Milliseconds per block of one chain: each provider's pace measured over spans of at least
/// [`BlockPace::SPAN`] blocks of its probed heads (own upstreams included), so that the probe
/// period's rounding is a small part of each measurement; the chain's pace is the median of the
/// providers' (the slower one for an even count), so one provider whose heads race ahead or
/// crawl cannot move every extrapolated head with it.
#[derive(Debug, Clone, Default)]
struct BlockPace {
    /// Per provider: the span being measured, and its last measured pace.
    spans: HashMap<PublicKey, Span>,
    /// The median of the providers' paces.
    ms_per_block: Option<f64>,
}

#[derive(Debug, Clone, Copy)]
struct Span {
    head: u64,
    at_ms: u64,
    ms_per_block: Option<f64>,
}

impl BlockPace {
    const SPAN: u64 = 8;
    /// Spans longer than this many ms are restarted, not measured (a provider that was down).
    const MAX_SPAN_MS: u64 = 10 * 60 * 1000;

    fn observe(&mut self, key: PublicKey, head: u64, at_ms: u64) {
        let span = self.spans.entry(key).or_insert(Span { head, at_ms, ms_per_block: None });
        if head < span.head || at_ms < span.at_ms || at_ms - span.at_ms > Self::MAX_SPAN_MS {
            *span = Span { head, at_ms, ms_per_block: span.ms_per_block };
        } else if head - span.head >= Self::SPAN {
            let pace = (at_ms - span.at_ms) as f64 / (head - span.head) as f64;
            *span = Span { head, at_ms, ms_per_block: Some(pace) };
            self.settle();
        }
    }

    /// Drops a forgotten provider's span and its say in the median.
    fn forget(&mut self, key: &PublicKey) {
        if self.spans.remove(key).is_some() {
            self.settle();
        }
    }

    fn settle(&mut self) {
        let mut paces: Vec<f64> = self.spans.values().filter_map(|s| s.ms_per_block).collect();
        paces.sort_unstable_by(f64::total_cmp);
        self.ms_per_block = paces.get(paces.len() / 2).copied();
    }
}

impl MeshState {
    /// An empty state.
    pub fn new(own: PublicKey, policy: TrustPolicy, settings: MeshSettings) -> Self {
        Self {
            own,
            policy,
            settings,
            entries: HashMap::new(),
            attestations: HashMap::new(),
            connected: HashSet::new(),
            last_reference: BTreeMap::new(),
            standings: Arc::default(),
            pace: HashMap::new(),
            order: None,
        }
    }

    /// Replaces the evidence standings (the evidence task sends them whole on every change).
    pub fn set_standings(&mut self, standings: Arc<HashMap<PublicKey, Standing>>) {
        self.standings = standings;
    }

    /// Drops the cached view of `key` (an input touched it).
    fn invalidate(&mut self, key: &PublicKey) {
        if let Some(e) = self.entries.get_mut(key) {
            e.view = None;
        }
    }

    /// Drops every cached view (trust or reference heads moved).
    fn invalidate_all(&mut self) {
        for e in self.entries.values_mut() {
            e.view = None;
        }
    }

    /// Providers held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no provider is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Folds in an announcement (already validated). Keeps the held one if it has a higher or
    /// equal `seq`: replays and reordering never regress the view. Returns whether it changed.
    pub fn apply_announcement(
        &mut self,
        msg: Signed<CapacityAnnouncement>,
        received_at_ms: u64,
        source: Source,
    ) -> bool {
        let key = msg.signer;
        if let Some(held) = self.entries.get(&key)
            && held.announcement.body.header.seq >= msg.body.header.seq
        {
            return false;
        }
        let trust = self.policy.judge(&key, msg.body.membership_cert.as_ref(), received_at_ms);
        let (local, peer_id, was_trusted) = match self.entries.remove(&key) {
            Some(e) => (e.local, e.peer_id, Some(e.trust.is_trusted())),
            None => (HashMap::new(), key.to_peer_id().to_string(), None),
        };
        // Attestation summaries elsewhere show whether their attester is trusted (a newcomer was
        // judged without its certificate until now).
        if was_trusted != Some(trust.is_trusted()) {
            self.invalidate_all();
        }
        if was_trusted.is_none() {
            self.order = None;
        }
        let entry = Entry { announcement: Arc::new(msg), peer_id, received_at_ms, source, trust, local, view: None };
        self.entries.insert(key, entry);
        true
    }

    /// Folds in an attestation (already validated). Keeps the newest per attester and chain.
    pub fn apply_attestation(&mut self, msg: &Signed<HealthAttestation>) -> bool {
        self.apply_observation(msg.signer, msg.body.clone())
    }

    /// Folds in every observation of a round (already validated), each as an attestation with
    /// the round's header. Returns whether any changed the view. Costs O(observations): only
    /// the subjects' cached views are dropped.
    pub fn apply_round(&mut self, msg: &Signed<AttestationRound>) -> bool {
        let mut changed = false;
        for att in msg.body.attestations() {
            changed |= self.apply_observation(msg.signer, att);
        }
        changed
    }

    fn apply_observation(&mut self, attester: PublicKey, body: HealthAttestation) -> bool {
        let slot = self.attestations.entry(body.observation.subject).or_default();
        let key = (attester, body.observation.chain_id);
        let attester_peer_id = match slot.get(&key) {
            Some(held) if held.body.header.seq >= body.header.seq => return false,
            Some(held) => held.attester_peer_id.clone(),
            None => match self.entries.get(&attester) {
                Some(e) => Arc::from(e.peer_id.as_str()),
                None => Arc::from(attester.to_peer_id().to_string()),
            },
        };
        let subject = body.observation.subject;
        slot.insert(key, HeldAttestation { body, attester_peer_id });
        self.invalidate(&subject);
        true
    }

    /// Records one of our own probes of `key` on `chain_id`.
    pub fn apply_probe(
        &mut self,
        key: &PublicKey,
        chain_id: u64,
        latency_us: u32,
        ok: bool,
        head: Option<u64>,
        at_ms: u64,
    ) {
        let window_ms = self.settings.probe_window_ms;
        let Some(entry) = self.entries.get_mut(key) else { return };
        entry.view = None;
        let obs = entry.local.entry(chain_id).or_insert_with(|| LocalObs {
            window: LatencyWindow::new(256, window_ms),
            head: None,
            last_at_ms: 0,
        });
        obs.window.record(Sample { at_ms, latency_us, ok });
        if at_ms >= obs.last_at_ms {
            obs.last_at_ms = at_ms;
            if head.is_some() {
                obs.head = head;
            }
        }
        // Spans are kept for held providers only (this returned above for others), and
        // dropped with them in `maintain`.
        if let Some(h) = head {
            self.pace.entry(chain_id).or_default().observe(*key, h, at_ms);
        }
    }

    /// The learned pace of `chain_id`, ms per block.
    pub fn block_ms(&self, chain_id: u64) -> Option<f64> {
        self.pace.get(&chain_id).and_then(|p| p.ms_per_block)
    }

    /// When an attestation stops counting: its own lifetime, at most [`MAX_STRETCH`] times the
    /// configured freshness.
    fn fresh_until(&self, header: &MessageHeader) -> u64 {
        header.issued_at_ms.saturating_add(fresh_for(header, self.settings.attestation_fresh_ms))
    }

    /// An announced head `age_ms` old, moved on by the blocks the chain made since beyond the
    /// configured heartbeat: in a stretched mesh announcements come less often than the chain
    /// moves, and comparing stale heads with fresh ones would make every provider look behind.
    /// A provider that stalls after announcing shows it in this node's probes and requests,
    /// which are fresher than any announcement (`best_head` prefers them).
    fn extrapolated(&self, chain_id: u64, announced: u64, age_ms: u64) -> u64 {
        let beyond = age_ms.saturating_sub(self.settings.announce_heartbeat_ms);
        match self.block_ms(chain_id) {
            Some(ms) if beyond > 0 && ms >= 1.0 => announced.saturating_add((beyond as f64 / ms) as u64),
            _ => announced,
        }
    }

    /// Marks a provider connected or not.
    pub fn set_connected(&mut self, key: PublicKey, connected: bool) -> bool {
        let changed = if connected { self.connected.insert(key) } else { self.connected.remove(&key) };
        if changed {
            self.invalidate(&key);
        }
        changed
    }

    /// Re-judges trust (certificates expire) and forgets providers expired for long.
    /// Returns the forgotten keys.
    pub fn maintain(&mut self, now_ms: u64) -> Vec<PublicKey> {
        let forget_after = self.settings.forget_after_ms;
        let forgotten: Vec<PublicKey> = self
            .entries
            .iter()
            .filter(|(k, e)| {
                **k != self.own && now_ms > e.announcement.body.header.expires_at_ms.saturating_add(forget_after)
            })
            .map(|(k, _)| *k)
            .collect();
        if !forgotten.is_empty() {
            self.order = None;
        }
        for k in &forgotten {
            self.entries.remove(k);
            self.attestations.remove(k);
            for pace in self.pace.values_mut() {
                pace.forget(k);
            }
        }
        let mut trust_moved = false;
        for (key, e) in self.entries.iter_mut() {
            let trust = self.policy.judge(key, e.announcement.body.membership_cert.as_ref(), now_ms);
            if trust != e.trust {
                trust_moved = true;
                e.trust = trust;
            }
        }
        let fresh = self.settings.attestation_fresh_ms;
        for (subject, slot) in self.attestations.iter_mut() {
            let before = slot.len();
            // Kept for ten times as long as it counts (a view lists recent stale ones too).
            slot.retain(|_, a| {
                let h = &a.body.header;
                now_ms <= h.issued_at_ms.saturating_add(fresh_for(h, fresh).saturating_mul(10))
            });
            if slot.len() != before
                && let Some(e) = self.entries.get_mut(subject)
            {
                e.view = None;
            }
        }
        if trust_moved || !forgotten.is_empty() {
            self.invalidate_all();
        }
        forgotten
    }

    /// The trust decision about `key` (untrusted if unknown, unless it is this node).
    pub fn trust_of(&self, key: &PublicKey, now_ms: u64) -> TrustStatus {
        match self.entries.get(key) {
            Some(e) => e.trust.clone(),
            None => self.policy.judge(key, None, now_ms),
        }
    }

    /// Whether `key` is trusted, without copying its trust decision.
    fn is_trusted(&self, key: &PublicKey, now_ms: u64) -> bool {
        match self.entries.get(key) {
            Some(e) => e.trust.is_trusted(),
            None => self.policy.judge(key, None, now_ms).is_trusted(),
        }
    }

    /// Last accepted announcement `seq` per provider.
    pub fn seqs(&self) -> Vec<(PublicKey, u64)> {
        self.entries.iter().map(|(k, e)| (*k, e.announcement.body.header.seq)).collect()
    }

    fn is_current(e: &Entry, now_ms: u64) -> bool {
        now_ms <= e.announcement.body.header.expires_at_ms
    }

    /// Best known head of a provider on a chain. A fresh probe newer than the announcement is
    /// the provider's head now (so our probes can lower a head it over-claims); an announcement
    /// newer than our probes can only raise what we saw (announced heads are bucketed).
    fn best_head(&self, e: &Entry, chain_id: u64, now_ms: u64) -> Option<u64> {
        let announced_at = e.announcement.body.header.issued_at_ms;
        let announced =
            e.announcement.body.chain(chain_id).and_then(|c| {
                c.head.map(|h| self.extrapolated(chain_id, h.number, now_ms.saturating_sub(announced_at)))
            });
        let probed = e
            .local
            .get(&chain_id)
            .filter(|o| now_ms.saturating_sub(o.last_at_ms) <= self.settings.probe_fresh_ms)
            .and_then(|o| o.head.map(|h| (h, o.last_at_ms)));
        match (announced, probed) {
            (Some(_), Some((p, at))) if at >= announced_at => Some(p),
            (Some(a), Some((p, _))) => Some(a.max(p)),
            (Some(a), None) => Some(a),
            (None, p) => p.map(|(h, _)| h),
        }
    }

    /// Median head per chain over trusted providers with current announcements. The median,
    /// never the maximum: one provider lying about the tip cannot move it.
    pub fn reference_heads(&self, now_ms: u64) -> BTreeMap<u64, u64> {
        let mut heads: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for e in self.entries.values().filter(|e| e.trust.is_trusted() && Self::is_current(e, now_ms)) {
            // A provider announcing no head has its nodes down: its last probed head is history.
            for c in e.announcement.body.chains.iter().filter(|c| c.head.is_some()) {
                if let Some(h) = self.best_head(e, c.chain_id, now_ms) {
                    heads.entry(c.chain_id).or_default().push(h);
                }
            }
        }
        heads
            .into_iter()
            .map(|(chain, mut v)| {
                v.sort_unstable();
                // Lower median for even counts: conservative, a lagging majority is not overruled.
                (chain, v[(v.len() - 1) / 2])
            })
            .collect()
    }

    /// Builds the read-only view. Rebuilds only the providers an input touched since the last
    /// call, or whose view is older than [`VIEW_MAX_AGE_MS`] or just expired: a gossip message
    /// costs one provider's view, not the whole mesh's.
    pub fn snapshot(&mut self, now_ms: u64) -> MeshSnapshot {
        let reference = self.reference_heads(now_ms);
        if reference != self.last_reference {
            self.invalidate_lag_flips(&reference, now_ms);
            self.last_reference = reference.clone();
        }
        let stale: Vec<PublicKey> = self
            .entries
            .iter()
            .filter(|(_, e)| e.view.as_ref().is_none_or(|c| now_ms < c.built_at_ms || now_ms >= c.valid_until_ms))
            .map(|(k, _)| *k)
            .collect();
        for key in stale {
            if let Some(e) = self.entries.get(&key) {
                let view = Arc::new(self.provider_view(&key, e, &reference, now_ms));
                let valid_until_ms = self.view_valid_until(&key, e, now_ms);
                if let Some(e) = self.entries.get_mut(&key) {
                    e.view = Some(CachedView { view, built_at_ms: now_ms, valid_until_ms });
                }
            }
        }
        let order = self.order.get_or_insert_with(|| {
            let mut keys: Vec<(&PublicKey, &Entry)> = self.entries.iter().collect();
            keys.sort_by(|(a, x), (b, y)| {
                (**b == self.own).cmp(&(**a == self.own)).then_with(|| x.peer_id.cmp(&y.peer_id))
            });
            let keys: Vec<PublicKey> = keys.into_iter().map(|(k, _)| *k).collect();
            let index = Arc::new(keys.iter().enumerate().map(|(i, k)| (*k, i)).collect());
            Order { keys, index }
        });
        // Every held provider has a view now (the stale ones were just built).
        let providers: Vec<Arc<ProviderView>> = order
            .keys
            .iter()
            .filter_map(|k| self.entries.get(k).and_then(|e| e.view.as_ref()).map(|c| c.view.clone()))
            .collect();
        if providers.len() != order.keys.len() {
            // Cannot happen (see above); were it to, a shifted index would hand out another
            // provider's view, so the snapshot indexes its own list instead.
            self.order = None;
            return MeshSnapshot::new(now_ms, reference, providers).with_standings(self.standings.clone());
        }
        MeshSnapshot::indexed(now_ms, reference, providers, order.index.clone()).with_standings(self.standings.clone())
    }

    /// Drops the views whose health a move of the reference heads to `reference` changes: a
    /// provider whose lag now crosses the allowed lag (either way), or whose chain gained or
    /// lost its reference. The others keep their `lag_blocks` until their next rebuild (at
    /// most [`VIEW_MAX_AGE_MS`]): with extrapolated heads the reference moves every block,
    /// and rebuilding every view then was the largest share of an idle daemon's work in a mesh
    /// of 100, although most lags had not changed, since the heads moved with the reference.
    fn invalidate_lag_flips(&mut self, reference: &BTreeMap<u64, u64>, now_ms: u64) {
        let max = self.settings.max_head_lag_blocks as i64;
        let flipped: Vec<PublicKey> = self
            .entries
            .iter()
            .filter(|(_, e)| {
                e.view.as_ref().is_some_and(|cached| {
                    cached.view.chains.iter().any(|c| {
                        let lag = match (reference.get(&c.chain_id), self.best_head(e, c.chain_id, now_ms)) {
                            (Some(r), Some(h)) => Some(*r as i64 - h as i64),
                            _ => None,
                        };
                        lag.map(|l| l > max) != c.lag_blocks.map(|l| l > max)
                    })
                })
            })
            .map(|(k, _)| *k)
            .collect();
        for key in flipped {
            self.invalidate(&key);
        }
    }

    /// Longest a cached view is kept without an input touching it (see [`VIEW_MAX_AGE_MS`]).
    fn view_max_age_ms(&self) -> u64 {
        (self.entries.len() as u64)
            .saturating_mul(VIEW_MAX_AGE_PER_PROVIDER_MS)
            .clamp(VIEW_MAX_AGE_MS, VIEW_MAX_AGE_CAP_MS)
    }

    /// The first instant after `now_ms` at which a view built at `now_ms` could read
    /// differently with no new input: the announcement expires, or one of our probes or an
    /// attestation stops being fresh, or a sample leaves a probe window; at most
    /// [`MeshState::view_max_age_ms`] ahead.
    fn view_valid_until(&self, key: &PublicKey, e: &Entry, now_ms: u64) -> u64 {
        let mut until = now_ms.saturating_add(self.view_max_age_ms());
        let mut flips_after = |t: u64| {
            if t >= now_ms {
                until = until.min(t.saturating_add(1));
            }
        };
        flips_after(e.announcement.body.header.expires_at_ms);
        for o in e.local.values() {
            flips_after(o.last_at_ms.saturating_add(self.settings.probe_fresh_ms));
            if let Some(t) = o.window.next_exit_ms(now_ms) {
                flips_after(t);
            }
        }
        for att in self.attestations.get(key).into_iter().flat_map(|m| m.values()) {
            flips_after(self.fresh_until(&att.body.header));
        }
        until
    }

    fn provider_view(&self, key: &PublicKey, e: &Entry, reference: &BTreeMap<u64, u64>, now_ms: u64) -> ProviderView {
        let a = &e.announcement.body;
        let expired = !Self::is_current(e, now_ms);
        let attestations: Vec<(&(PublicKey, u64), &HeldAttestation, bool)> = self
            .attestations
            .get(key)
            .map(|m| m.iter().map(|(k, att)| (k, att, self.is_trusted(&k.0, now_ms))).collect())
            .unwrap_or_default();
        let chains = a
            .chains
            .iter()
            .map(|c| {
                let head = self.best_head(e, c.chain_id, now_ms);
                let lag = match (reference.get(&c.chain_id), head) {
                    (Some(r), Some(h)) => Some(*r as i64 - h as i64),
                    _ => None,
                };
                let local = e
                    .local
                    .get(&c.chain_id)
                    .filter(|o| now_ms.saturating_sub(o.last_at_ms) <= self.settings.probe_fresh_ms);
                let local_stats = local.map(|o| o.window.stats(now_ms)).filter(|s| s.sent > 0);
                let trusted_att: Vec<&HealthAttestation> = attestations
                    .iter()
                    .filter(|((_, chain), att, trusted)| {
                        *chain == c.chain_id && *trusted && now_ms <= self.fresh_until(&att.body.header)
                    })
                    .map(|(_, att, _)| &att.body)
                    .collect();
                let (success_rate, p50, p95, evidence) = if let Some(s) = local_stats {
                    (
                        Some(f64::from(s.ok) / f64::from(s.sent)),
                        (s.ok > 0).then_some(s.p50_us),
                        (s.ok > 0).then_some(s.p95_us),
                        format!("{}/{} of our probes ok", s.ok, s.sent),
                    )
                } else if !trusted_att.is_empty() {
                    let sent: u64 = trusted_att.iter().map(|a| u64::from(a.observation.probes_sent)).sum();
                    let ok: u64 = trusted_att.iter().map(|a| u64::from(a.observation.probes_ok)).sum();
                    // Latencies only of attesters that saw successes: a failed probe has no latency.
                    let mut p50s: Vec<u32> = trusted_att
                        .iter()
                        .filter(|a| a.observation.probes_ok > 0)
                        .map(|a| a.observation.latency_p50_us)
                        .collect();
                    let mut p95s: Vec<u32> = trusted_att
                        .iter()
                        .filter(|a| a.observation.probes_ok > 0)
                        .map(|a| a.observation.latency_p95_us)
                        .collect();
                    p50s.sort_unstable();
                    p95s.sort_unstable();
                    let rate = if sent == 0 { None } else { Some(ok as f64 / sent as f64) };
                    (
                        rate,
                        (!p50s.is_empty()).then(|| p50s[(p50s.len() - 1) / 2]),
                        (!p95s.is_empty()).then(|| p95s[(p95s.len() - 1) / 2]),
                        format!("{ok}/{sent} probes ok by {} trusted attesters", trusted_att.len()),
                    )
                } else {
                    (None, None, None, "no probes yet; judged by its announcement".into())
                };
                let (health, reason) = if expired {
                    // Names the instant, not the age: a view must not change with the clock alone.
                    (
                        Health::Expired,
                        format!("announcement expired at {} (Unix ms), none newer received", a.header.expires_at_ms),
                    )
                } else if c.head.is_none() {
                    (Health::Down, "announces no head: its upstreams are down".into())
                } else if success_rate.is_some_and(|r| r < MIN_SUCCESS_RATE) {
                    (Health::Unhealthy, evidence)
                } else if lag.is_some_and(|l| l > self.settings.max_head_lag_blocks as i64) {
                    (Health::Lagging, format!("{} blocks behind the median head; {evidence}", lag.unwrap_or(0)))
                } else {
                    (Health::Healthy, evidence)
                };
                ChainView {
                    chain_id: c.chain_id,
                    announced_head: c.head.map(|h| h.number),
                    announced_head_hash: c.head.map(|h| format!("0x{}", hex::encode(h.hash))),
                    head,
                    lag_blocks: lag,
                    health,
                    health_reason: reason,
                    latency_p50_us: p50,
                    latency_p95_us: p95,
                    success_rate,
                    utilisation_permille: c.utilisation_permille,
                    max_requests_per_sec: c.max_requests_per_sec,
                    max_concurrent_relays: c.max_concurrent_relays,
                    archive: c.archive,
                    method_groups: c.method_groups.clone(),
                    policies: c.policies.clone(),
                }
            })
            .collect();
        let mut summaries: Vec<AttestationSummary> = attestations
            .iter()
            .map(|((_, chain), att, trusted)| AttestationSummary {
                attester: att.attester_peer_id.clone(),
                attester_trusted: *trusted,
                chain_id: *chain,
                issued_at_ms: att.body.header.issued_at_ms,
                probes_sent: att.body.observation.probes_sent,
                probes_ok: att.body.observation.probes_ok,
                latency_p50_us: att.body.observation.latency_p50_us,
                latency_p95_us: att.body.observation.latency_p95_us,
                head_lag_blocks: att.body.observation.head_lag_blocks,
            })
            .collect();
        summaries.sort_by(|x, y| (x.chain_id, &x.attester).cmp(&(y.chain_id, &y.attester)));
        ProviderView {
            peer_id: e.peer_id.clone(),
            public_key: key.to_hex(),
            is_self: *key == self.own,
            trust: e.trust.clone(),
            connected: *key == self.own || self.connected.contains(key),
            seq: a.header.seq,
            announced_at_ms: a.header.issued_at_ms,
            received_at_ms: e.received_at_ms,
            expires_at_ms: a.header.expires_at_ms,
            expired,
            source: e.source,
            listen_addrs: a.listen_addrs.clone(),
            software_version: a.software_version.clone(),
            operator: a.membership_cert.as_ref().map(|c| c.body.operator_name.clone()),
            jurisdiction: a.jurisdiction.clone(),
            chains,
            attestations: summaries,
            announcement: e.announcement.clone(),
            key: *key,
        }
    }
}

#[cfg(test)]
mod tests;
