//! The simulated mesh and its run: providers publishing on schedule, observer daemons running
//! the daemon's real [`MeshState`], [`CordonBook`] and route planning ([`table::build`],
//! [`plan::plan`]), clients on the observers' gateways, liars caught by checks, evidence spread
//! by gossip, and the timeline (churn, partitions, forged floods).

use std::collections::HashMap;
use std::sync::Arc;

use rpcmesh_node::censorship::Avoid;
use rpcmesh_node::config::{TrustConfig, TrustMode};
use rpcmesh_node::evidence::CordonBook;
use rpcmesh_node::mesh::{MeshSettings, MeshState, Source};
use rpcmesh_node::router::Target;
use rpcmesh_node::router::plan::{self, PlanInput};
use rpcmesh_node::router::table::{self, Breakers, Tables};
use rpcmesh_node::store::CordonRecord;
use rpcmesh_node::trust::TrustPolicy;
use rpcmesh_node::upstream::UpstreamSet;
use rpcmesh_protocol::messages::{
    AttestationRound, BlockRef, CapacityAnnouncement, ChainCapacity, MembershipCert, Observation,
};
use rpcmesh_protocol::{Identity, MessageHeader, PublicKey, Signed};

use super::clock::{EventQueue, Micros, Rng};
use super::gossip::{GossipParams, Message, NEVER, Spreader, Topology, Traffic};
use super::network::{Latency, Network};
use super::scenario::SimScenario;

/// Network id of simulated meshes.
const NET: &str = "sim-1";
/// Unix ms of the simulated start (certificates and messages carry Unix times).
const T0_MS: u64 = 1_760_000_000_000;
/// The one chain served.
const CHAIN: u64 = 1;
/// How often an observer rebuilds its snapshot and routing tables, µs (the daemon rebuilds on
/// every input; once a second bounds the cost at 10 000 providers).
const REFRESH_US: Micros = 1_000_000;
/// How often an observer runs `MeshState::maintain`, µs.
const MAINTAIN_US: Micros = 5_000_000;
/// Time given to the last messages to spread after the measured duration, µs.
pub const DRAIN_US: Micros = 5_000_000;
/// Delays of tracked messages kept to time untracked ones at observers.
const DELAY_RESERVOIR: usize = 4_096;
/// Delivery delays kept per tracked message for the delivery percentiles.
const DELIVERY_SAMPLE: usize = 64;
/// `integrity.cordon_secs` default, ms.
const CORDON_MS: u64 = 3_600_000;
/// Gossipsub score of invalid messages (`invalid_message_deliveries_weight`, topic weight 1),
/// its decay per second, and the graylist threshold: the daemon's (`node/src/p2p/behaviour.rs`).
const INVALID_WEIGHT: f64 = -10.0;
const INVALID_DECAY_PER_S: f64 = 0.97;
const GRAYLIST: f64 = -80.0;

/// What a provider's node does to answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Truthful.
    Honest,
    /// Every answer wrong (detectable by a full check).
    Liar,
    /// Answers about the watched address censored (not detectable here).
    Censor,
}

/// Kinds of gossip measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Capacity announcements.
    Announcement,
    /// Health attestations.
    Attestation,
    /// Evidence bundles.
    Evidence,
}

/// Client request outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Correct.
    Ok,
    /// A lie reached the client.
    Wrong,
    /// A censored answer reached the client.
    Censored,
    /// No provider answered within the attempts.
    Failed,
}

enum Ev {
    Announce(usize),
    Attest(usize),
    Deliver { obs: usize, ann: Arc<Signed<CapacityAnnouncement>> },
    Evidence { obs: usize, accused: usize, reporter: usize, id: u64 },
    Request(usize),
    Probe(usize),
    Refresh(usize),
    Timeline(usize),
    Down(usize),
    Up(usize),
    Forge { forger: usize, until: Micros, replay: bool, every: Micros },
}

struct Observer {
    node: usize,
    state: MeshState,
    book: CordonBook,
    breakers: Breakers,
    tables: Option<Arc<Tables>>,
    probe_cursor: usize,
    caught: Vec<usize>,
    last_maintain: Micros,
}

/// Per-liar detection: when each node cordoned it.
pub struct LiarTrace {
    /// The liar.
    pub node: usize,
    /// First detection (evidence published), µs.
    pub detected_at: Option<Micros>,
    /// When each node's daemon cordoned it ([`NEVER`] if it did not).
    pub cordoned_at: Vec<Micros>,
}

/// Forged flood counters.
#[derive(Debug, Clone, Default)]
pub struct ForgeStats {
    /// Forged copies sent.
    pub sent: u64,
    /// Validated and rejected (bad signature) or ignored (replay) by the receiving peer.
    pub validated: u64,
    /// Dropped unread: the sender was graylisted.
    pub dropped_graylisted: u64,
    /// Forged copies forwarded by anyone (the daemon validates before forwarding: always 0).
    pub forwarded: u64,
    /// Per forger, when every connected peer had graylisted it, µs.
    pub isolated_at: Vec<Option<Micros>>,
    /// Forged messages per second per receiving peer at the flood's start, for the record.
    pub per_peer_rate: f64,
}

/// Everything a run measured.
pub struct Outcome {
    /// Providers.
    pub providers: usize,
    /// Observer nodes.
    pub observers: Vec<usize>,
    /// Role of each provider.
    pub roles: Vec<Role>,
    /// Share of announcements and attestations spread hop by hop.
    pub track_share: f64,
    /// Published messages per kind.
    pub published: HashMap<Kind, u64>,
    /// Per tracked message of each kind: convergence time (µs) or `None` (never).
    pub convergence: HashMap<Kind, Vec<Option<u64>>>,
    /// Delivery delays (publish → accepted at one node) of tracked messages, µs (sampled).
    pub deliveries: HashMap<Kind, Vec<u64>>,
    /// Traffic of announcements and attestations (tracked ones; scale by 1 / `track_share`).
    pub traffic: Traffic,
    /// Traffic of evidence (every bundle tracked).
    pub evidence_traffic: Traffic,
    /// Encoded bytes of one announcement and one attestation (the real encodings).
    pub sizes: (u64, u64),
    /// Client answers per second: `[ok, wrong, censored, failed]`.
    pub answers_per_second: Vec<[u64; 4]>,
    /// Client answers in total, by [`Answer`].
    pub answers: [u64; 4],
    /// Client answers by verify mode's catches: lies caught by a check and retried elsewhere.
    pub lies_caught: u64,
    /// Per liar.
    pub liars: Vec<LiarTrace>,
    /// Forged floods.
    pub forge: ForgeStats,
    /// Timeline marks for the plots: `(µs, label)`.
    pub marks: Vec<(Micros, String)>,
    /// Events processed.
    pub events: u64,
    /// Simulated duration measured, µs.
    pub duration_us: Micros,
}

struct World<'a> {
    sc: &'a SimScenario,
    rng: Rng,
    q: EventQueue<Ev>,
    net: Network,
    topo: Topology,
    spreader: Spreader,
    keys: Vec<PublicKey>,
    index: HashMap<PublicKey, usize>,
    seqs: Vec<u64>,
    roles: Vec<Role>,
    observers: Vec<Observer>,
    observer_of: HashMap<usize, usize>,
    track_share: f64,
    out: Outcome,
    reservoir: Vec<u64>,
    reservoir_next: usize,
    forge_scores: HashMap<(u32, u32), (f64, Micros)>,
    forge_slots: HashMap<usize, usize>,
    next_evidence_id: u64,
    end: Micros,
    upstreams: UpstreamSet,
    avoid: Avoid,
    expected_scratch: Vec<bool>,
}

fn unix_ms(t: Micros) -> u64 {
    T0_MS + t / 1_000
}

/// The chain's head at `t` (one block a second).
fn head_at(t: Micros) -> u64 {
    1_000 + t / 1_000_000
}

/// Runs `sc`: the whole simulation, single-threaded and a function of `sc.seed`.
pub fn run(sc: &SimScenario, progress: &mut dyn FnMut(Micros, Micros)) -> Outcome {
    let mut world = World::new(sc);
    world.schedule_start();
    let end = world.end;
    let total = end + DRAIN_US;
    let mut next_progress = 0;
    while let Some(ev) = world.q.pop_until(total) {
        world.out.events += 1;
        let now = world.q.now();
        if now >= next_progress {
            progress(now, total);
            next_progress = now + 1_000_000;
        }
        world.handle(ev, now);
    }
    progress(total, total);
    world.finish()
}

impl<'a> World<'a> {
    fn new(sc: &'a SimScenario) -> Self {
        let mut rng = Rng::new(sc.seed);
        let m = &sc.mesh;
        let n = m.providers;
        // Regions by share, latency matrix by name.
        let names = sc.region_names();
        let shares: Vec<f64> =
            if m.regions.is_empty() { vec![1.0] } else { m.regions.iter().map(|r| r.share.max(0.0)).collect() };
        let total: f64 = shares.iter().sum::<f64>().max(f64::MIN_POSITIVE);
        let mut region = Vec::with_capacity(n);
        let mut acc = 0.0;
        for (r, s) in shares.iter().enumerate() {
            acc += s / total;
            let upto = if r + 1 == shares.len() { n } else { ((acc * n as f64).round() as usize).min(n) };
            while region.len() < upto {
                region.push(r as u8);
            }
        }
        rng.shuffle(&mut region);
        let lat = |ms: f64| Latency { median_us: ms * 1_000.0, sigma: m.jitter };
        let mut latency = vec![vec![lat(m.default_latency_ms); names.len()]; names.len()];
        for l in &m.latency {
            let (Some(a), Some(b)) = (names.iter().position(|x| *x == l.from), names.iter().position(|x| *x == l.to))
            else {
                continue;
            };
            latency[a][b] = lat(l.ms);
            latency[b][a] = lat(l.ms);
        }
        let net = Network::new(region, latency, m.loss);
        let g = &sc.gossip;
        let params = GossipParams {
            mesh_n: g.mesh_n,
            mesh_n_low: g.mesh_n_low,
            mesh_n_high: g.mesh_n_high,
            gossip_lazy: g.gossip_lazy,
            gossip_factor: g.gossip_factor,
            heartbeat_us: g.heartbeat_ms * 1_000,
            flood_publish: g.flood_publish,
            ..GossipParams::default()
        };
        let connections = m.connections.unwrap_or(64).min(n - 1);
        let topo = Topology::build(n, connections, params, &mut rng);

        let root = Identity::from_secret_bytes(seed_bytes(sc.seed, u64::MAX));
        let ids: Vec<Identity> = (0..n).map(|i| Identity::from_secret_bytes(seed_bytes(sc.seed, i as u64))).collect();
        let keys: Vec<PublicKey> = ids.iter().map(|i| i.public_key()).collect();
        let index = keys.iter().enumerate().map(|(i, k)| (*k, i)).collect();
        // One real certificate, for the encoded size of an announcement carrying it.
        let certs: Vec<Signed<MembershipCert>> = ids
            .iter()
            .take(1)
            .enumerate()
            .map(|(i, id)| {
                let header = MessageHeader::new(NET, 1, T0_MS - 60_000, 365 * 86_400_000);
                let body = MembershipCert {
                    header,
                    member: id.public_key(),
                    operator_name: format!("operator-{i}"),
                    vetting: None,
                };
                Signed::sign(body, &root)
            })
            .collect();

        // Roles: observers are honest; liars and censors among the rest.
        let n_obs = m.observers.unwrap_or(10).clamp(1, n);
        let mut order: Vec<usize> = (0..n).collect();
        rng.shuffle(&mut order);
        let observer_nodes: Vec<usize> = order[..n_obs].to_vec();
        let rest = &order[n_obs..];
        let n_liars = ((m.liars * n as f64).round() as usize).min(rest.len());
        let n_censors = ((m.censors * n as f64).round() as usize).min(rest.len() - n_liars);
        let mut roles = vec![Role::Honest; n];
        for &i in &rest[..n_liars] {
            roles[i] = Role::Liar;
        }
        for &i in &rest[n_liars..n_liars + n_censors] {
            roles[i] = Role::Censor;
        }
        // Trust by explicit listing: the real `TrustPolicy` decides, without the one ed25519
        // verification per judgement that a federation certificate costs (signatures are not
        // the subject here; announcements still carry the certificate's bytes, see `sizes`).
        let trust = TrustConfig {
            mode: TrustMode::Federated,
            peers: ids.iter().map(|i| i.peer_id().to_string()).collect(),
            ..TrustConfig::default()
        };
        let ttl_ms = g.announce_period_us(n) / 1_000 * u64::from(g.expiry_heartbeats);
        let settings = MeshSettings {
            max_head_lag_blocks: 5,
            probe_fresh_ms: 20_000,
            attestation_fresh_ms: 30_000,
            announce_heartbeat_ms: g.announce_heartbeat_ms,
            forget_after_ms: ttl_ms.max(60_000),
            probe_window_ms: 30_000,
        };
        let observers: Vec<Observer> = observer_nodes
            .iter()
            .map(|&node| Observer {
                node,
                state: MeshState::new(keys[node], TrustPolicy::new(&trust, keys[node], NET), settings.clone()),
                book: CordonBook::default(),
                breakers: Breakers::default(),
                tables: None,
                probe_cursor: rng.below(n),
                caught: Vec::new(),
                last_maintain: 0,
            })
            .collect();
        let observer_of = observer_nodes.iter().enumerate().map(|(o, n)| (*n, o)).collect();

        let end = sc.duration.as_micros() as Micros;
        let seconds = (end + DRAIN_US).div_ceil(1_000_000) as usize;
        // Real encoded sizes of one announcement (with its certificate) and one attestation round.
        let sample_ann = Signed::sign(announcement(0, 1, Some(&certs[0]), ttl_ms), &ids[0]);
        let sample_round = Signed::sign(attestation_round(&keys, g.observations_per_round, 0, 1), &ids[0]);
        let sizes = (sample_ann.to_bytes().len() as u64, sample_round.to_bytes().len() as u64);

        // Track as many messages hop by hop as the budget allows.
        let per_s = n as f64 * (1e6 / g.announce_period_us(n) as f64 + 1e6 / g.attest_period_us(n) as f64);
        let hops_per_msg = (n * (topo.params().mesh_n + 1) + connections) as f64;
        let track_share = if g.track_share > 0.0 {
            g.track_share.min(1.0)
        } else {
            (g.max_spread_hops as f64 / (per_s * sc.duration.as_secs_f64() * hops_per_msg)).min(1.0)
        };

        let out = Outcome {
            providers: n,
            observers: observer_nodes,
            roles: roles.clone(),
            track_share,
            published: HashMap::new(),
            convergence: HashMap::new(),
            deliveries: HashMap::new(),
            traffic: Traffic::new(n, seconds),
            evidence_traffic: Traffic::new(n, seconds),
            sizes,
            answers_per_second: vec![[0; 4]; seconds + 1],
            answers: [0; 4],
            lies_caught: 0,
            liars: roles
                .iter()
                .enumerate()
                .filter(|(_, r)| **r == Role::Liar)
                .map(|(i, _)| LiarTrace { node: i, detected_at: None, cordoned_at: Vec::new() })
                .collect(),
            forge: ForgeStats::default(),
            marks: Vec::new(),
            events: 0,
            duration_us: end,
        };
        Self {
            sc,
            rng,
            q: EventQueue::default(),
            net,
            topo,
            spreader: Spreader::default(),
            keys,
            index,
            seqs: vec![0; n],
            roles,
            observers,
            observer_of,
            track_share,
            out,
            reservoir: Vec::with_capacity(DELAY_RESERVOIR),
            reservoir_next: 0,
            forge_scores: HashMap::new(),
            forge_slots: HashMap::new(),
            next_evidence_id: 1,
            end,
            upstreams: UpstreamSet::default(),
            avoid: Avoid::default(),
            expected_scratch: Vec::new(),
        }
    }

    fn schedule_start(&mut self) {
        let g = &self.sc.gossip;
        let n = self.keys.len();
        // Every daemon starts within the first announce heartbeat, at a random phase.
        for i in 0..n {
            let a = self.rng.below((g.announce_heartbeat_ms * 1_000) as usize) as Micros;
            self.q.at(a, Ev::Announce(i));
            let b = self.rng.below((g.attest_interval_ms * 1_000) as usize) as Micros;
            self.q.at(b, Ev::Attest(i));
        }
        let rate = self.sc.load.rate;
        for o in 0..self.observers.len() {
            self.q.at(REFRESH_US, Ev::Refresh(o));
            self.q.at(self.rng.below(g.probe_interval_ms as usize * 1_000) as Micros, Ev::Probe(o));
            if rate > 0.0 {
                // Clients start once the view had a few heartbeats to fill.
                let start = (g.announce_heartbeat_ms * 1_000).min(self.end / 4);
                self.q.at(start + self.rng.below((1e6 / rate) as usize) as Micros, Ev::Request(o));
            }
        }
        for (i, e) in self.sc.timeline.iter().enumerate() {
            self.q.at(e.at.as_micros() as Micros, Ev::Timeline(i));
        }
    }

    fn handle(&mut self, ev: Ev, now: Micros) {
        match ev {
            Ev::Announce(i) => self.announce(i, now),
            Ev::Attest(i) => self.attest(i, now),
            Ev::Deliver { obs, ann } => {
                let o = &mut self.observers[obs];
                let source = if ann.signer == self.keys[o.node] { Source::Local } else { Source::Gossip };
                o.state.apply_announcement((*ann).clone(), unix_ms(now), source);
            }
            Ev::Evidence { obs, accused, reporter, id } => self.cordon_at(obs, accused, reporter, id, now),
            Ev::Request(o) => {
                self.request(o, now);
                if now < self.end {
                    let mean = 1e6 / self.sc.load.rate;
                    // Poisson arrivals.
                    let gap = (-(1.0 - self.rng.unit()).ln() * mean) as Micros;
                    self.q.at(now + gap.max(1), Ev::Request(o));
                }
            }
            Ev::Probe(o) => {
                self.probe(o, now);
                self.q.at(now + self.sc.gossip.probe_interval_ms * 1_000, Ev::Probe(o));
            }
            Ev::Refresh(o) => {
                self.refresh(o, now);
                self.q.at(now + REFRESH_US, Ev::Refresh(o));
            }
            Ev::Timeline(i) => self.timeline(i, now),
            Ev::Down(i) => {
                self.net.set_up(i, false);
                self.topo.repair(&self.net, &mut self.rng);
            }
            Ev::Up(i) => {
                self.net.set_up(i, true);
                self.topo.repair(&self.net, &mut self.rng);
                // A daemon announces as soon as it starts.
                self.q.at(now, Ev::Announce(i));
            }
            Ev::Forge { forger, until, replay, every } => {
                self.forge(forger, replay, now);
                if now + every < until.min(self.end) {
                    self.q.at(now + every, Ev::Forge { forger, until, replay, every });
                }
            }
        }
    }

    /// One announcement by `i`: spread it (tracked) or time it to the observers (untracked).
    /// Daemons start within the configured heartbeat; their next ones come at the heartbeat
    /// stretched for the mesh's size, as the daemon's announcer does once it knows the mesh.
    fn announce(&mut self, i: usize, now: Micros) {
        let hb = self.sc.gossip.announce_period_us(self.keys.len());
        if now + hb < self.end + DRAIN_US {
            self.q.at(now + hb, Ev::Announce(i));
        }
        if !self.net.is_up(i) || now >= self.end {
            return;
        }
        self.seqs[i] += 1;
        let ttl_ms = hb / 1_000 * u64::from(self.sc.gossip.expiry_heartbeats);
        let body = announcement(now, self.seqs[i], None, ttl_ms);
        // No signature: the observers' MeshState takes messages already validated, and the
        // validation cost is modelled as `validate_us` per hop.
        let ann = Arc::new(Signed { body, signer: self.keys[i], signature: [0; 64] });
        *self.out.published.entry(Kind::Announcement).or_default() += 1;
        if let Some(&o) = self.observer_of.get(&i) {
            self.q.at(now, Ev::Deliver { obs: o, ann: ann.clone() });
        }
        let bytes = self.out.sizes.0;
        if self.rng.chance(self.track_share) {
            let accepted = self.spread(Kind::Announcement, i, now, bytes, self.sc.gossip.validate_us, false);
            for (o, obs) in self.observers.iter().enumerate() {
                let at = accepted[obs.node];
                if at != NEVER && obs.node != i {
                    self.q.at(at, Ev::Deliver { obs: o, ann: ann.clone() });
                }
            }
            for obs in &self.observers {
                let at = accepted[obs.node];
                if at != NEVER && obs.node != i {
                    push_reservoir(&mut self.reservoir, &mut self.reservoir_next, at - now);
                }
            }
        } else {
            for o in 0..self.observers.len() {
                let node = self.observers[o].node;
                if node == i || !self.net.reachable(i, node) {
                    continue;
                }
                let delay = if self.reservoir.is_empty() {
                    self.net.round_trip(i, node, &mut self.rng).unwrap_or(0) / 2 + self.sc.gossip.validate_us
                } else {
                    self.reservoir[self.rng.below(self.reservoir.len())]
                };
                self.q.at(now + delay, Ev::Deliver { obs: o, ann: ann.clone() });
            }
        }
    }

    /// One attestation round of `i`: only traffic and convergence (observers do not fold
    /// attestations; their health comes from their own probes and announcements).
    fn attest(&mut self, i: usize, now: Micros) {
        let every = self.sc.gossip.attest_period_us(self.keys.len());
        if now + every < self.end {
            self.q.at(now + every, Ev::Attest(i));
        }
        if !self.net.is_up(i) || now >= self.end {
            return;
        }
        *self.out.published.entry(Kind::Attestation).or_default() += 1;
        if self.rng.chance(self.track_share) {
            self.spread(Kind::Attestation, i, now, self.out.sizes.1, self.sc.gossip.validate_us, false);
        }
    }

    /// Spreads one message hop by hop and records its convergence; returns acceptance times.
    fn spread(
        &mut self,
        kind: Kind,
        origin: usize,
        now: Micros,
        bytes: u64,
        validate_us: u64,
        evidence: bool,
    ) -> Vec<Micros> {
        let msg = Message { origin, at: now, bytes, validate_us };
        let traffic = if evidence { &mut self.out.evidence_traffic } else { &mut self.out.traffic };
        let accepted = self.spreader.spread(&self.topo, &self.net, msg, &mut self.rng, traffic).to_vec();
        // Expected: every node up at publication but the publisher.
        self.expected_scratch.clear();
        let mut expected = 0usize;
        let mut got = 0usize;
        let mut max = 0u64;
        for (v, at) in accepted.iter().enumerate() {
            if v == origin || !self.net.is_up(v) {
                continue;
            }
            expected += 1;
            if *at != NEVER {
                got += 1;
                max = max.max(at - now);
            }
        }
        let conv = (expected > 0 && got >= expected).then_some(max);
        self.out.convergence.entry(kind).or_default().push(conv);
        let sample = self.out.deliveries.entry(kind).or_default();
        for _ in 0..DELIVERY_SAMPLE.min(accepted.len()) {
            let v = self.rng.below(accepted.len());
            if v != origin && accepted[v] != NEVER {
                sample.push(accepted[v] - now);
            }
        }
        accepted
    }

    fn refresh(&mut self, o: usize, now: Micros) {
        let obs = &mut self.observers[o];
        if now >= obs.last_maintain + MAINTAIN_US {
            obs.state.maintain(unix_ms(now));
            obs.last_maintain = now;
        }
        let snap = Arc::new(obs.state.snapshot(unix_ms(now)));
        obs.tables = Some(Arc::new(table::build(snap, &obs.breakers, 5)));
    }

    fn probe(&mut self, o: usize, now: Micros) {
        let n = self.keys.len();
        for _ in 0..self.sc.gossip.probe_sample {
            let obs = &mut self.observers[o];
            obs.probe_cursor = (obs.probe_cursor + 1) % n;
            let target = obs.probe_cursor;
            let node = obs.node;
            if target == node {
                continue;
            }
            let rtt = self.net.round_trip(node, target, &mut self.rng);
            let service = (self.sc.load.service_ms * 1_000.0) as u64;
            let at = unix_ms(now);
            let (lat, ok, head) = match rtt {
                Some(r) => ((r + service).min(u64::from(u32::MAX)) as u32, true, Some(head_at(now))),
                None => (2_000_000, false, None),
            };
            let key = self.keys[target];
            self.observers[o].state.apply_probe(&key, CHAIN, lat, ok, head, at);
        }
    }

    /// One client request on observer `o`'s gateway, routed by the real planner.
    fn request(&mut self, o: usize, now: Micros) {
        if now >= self.end {
            return;
        }
        let about_watched = self.rng.chance(self.sc.load.watched_share);
        let answer = self.route(o, now, about_watched);
        let s = ((now / 1_000_000) as usize).min(self.out.answers_per_second.len() - 1);
        let k = answer as usize;
        self.out.answers_per_second[s][k] += 1;
        self.out.answers[k] += 1;
    }

    fn route(&mut self, o: usize, now: Micros, about_watched: bool) -> Answer {
        let Some(tables) = self.observers[o].tables.clone() else { return Answer::Failed };
        let input = PlanInput {
            chain_id: CHAIN,
            method: "eth_getBalance",
            namespace: "eth",
            failover: true,
            max_lag: 5,
            own_policies: &[],
            avoid: &self.avoid,
            touched: &[],
        };
        let Ok(targets) = plan::plan(&input, &tables, &self.upstreams, &[], None, tokio::time::Instant::now()) else {
            return Answer::Failed;
        };
        let node = self.observers[o].node;
        for planned in targets.iter().take(self.sc.load.attempts.max(1)) {
            let Target::Peer(key) = planned.target else { continue };
            let Some(&p) = self.index.get(&key) else { continue };
            if !self.net.reachable(node, p) {
                continue;
            }
            match self.roles[p] {
                Role::Liar => {
                    let checked = match self.sc.load.verify.as_str() {
                        "strict" => true,
                        "sample" => self.rng.chance(f64::from(self.sc.load.sample_permille) / 1_000.0),
                        _ => false,
                    };
                    if !checked {
                        return Answer::Wrong;
                    }
                    self.out.lies_caught += 1;
                    self.detect(o, p, now);
                }
                Role::Censor if about_watched => return Answer::Censored,
                _ => return Answer::Ok,
            }
        }
        Answer::Failed
    }

    /// Observer `o` proved `liar` wrong: it cordons at once and spreads the evidence.
    fn detect(&mut self, o: usize, liar: usize, now: Micros) {
        let reporter = self.observers[o].node;
        let id = self.next_evidence_id;
        self.next_evidence_id += 1;
        self.cordon_at(o, liar, reporter, id, now);
        if self.observers[o].caught.contains(&liar) {
            return;
        }
        self.observers[o].caught.push(liar);
        *self.out.published.entry(Kind::Evidence).or_default() += 1;
        let (bytes, judge) = (self.sc.gossip.evidence_bytes, self.sc.gossip.judge_evidence_us);
        let accepted = self.spread(Kind::Evidence, reporter, now, bytes, judge, true);
        let n = self.keys.len();
        if let Some(trace) = self.out.liars.iter_mut().find(|t| t.node == liar) {
            if trace.cordoned_at.is_empty() {
                trace.cordoned_at = vec![NEVER; n];
            }
            trace.detected_at = Some(trace.detected_at.map_or(now, |d| d.min(now)));
            for (v, at) in accepted.iter().enumerate() {
                trace.cordoned_at[v] = trace.cordoned_at[v].min(*at);
            }
        }
        for (other, obs) in self.observers.iter().enumerate() {
            let at = accepted[obs.node];
            if other != o && at != NEVER {
                self.q.at(at, Ev::Evidence { obs: other, accused: liar, reporter, id });
            }
        }
    }

    /// The real cordon book of observer `o` cordons `accused`; routing sees it at once.
    fn cordon_at(&mut self, o: usize, accused: usize, reporter: usize, id: u64, now: Micros) {
        let rec = CordonRecord {
            since_ms: unix_ms(now),
            until_ms: unix_ms(now) + CORDON_MS,
            evidence_id: id,
            kind: "state".into(),
            reporter: self.keys[reporter],
        };
        let obs = &mut self.observers[o];
        if obs.book.cordon(self.keys[accused], CHAIN, rec) {
            obs.state.set_standings(obs.book.standings(|r| format!("evidence {}", r.evidence_id)));
            let snap = Arc::new(obs.state.snapshot(unix_ms(now)));
            obs.tables = Some(Arc::new(table::build(snap, &obs.breakers, 5)));
        }
    }

    fn timeline(&mut self, i: usize, now: Micros) {
        let e = &self.sc.timeline[i];
        if let Some(p) = &e.partition {
            if let Ok(groups) = self.sc.partition_groups(p) {
                self.net.partition(groups);
                self.topo.repair(&self.net, &mut self.rng);
            }
            self.out.marks.push((now, format!("partition {p}")));
        } else if e.heal_partition {
            self.net.heal();
            self.topo.repair(&self.net, &mut self.rng);
            self.out.marks.push((now, "heal".into()));
        } else if let Some(c) = &e.churn {
            let candidates: Vec<usize> =
                (0..self.keys.len()).filter(|v| !self.observer_of.contains_key(v) && self.net.is_up(*v)).collect();
            let k = ((c.share * self.keys.len() as f64).round() as usize).min(candidates.len());
            let picked = self.rng.sample(candidates.len(), k);
            for j in picked {
                let v = candidates[j];
                self.q.at(now, Ev::Down(v));
                self.q.at(now + c.down_for.as_micros() as Micros, Ev::Up(v));
            }
            self.out.marks.push((now, format!("churn {k} down {:?}", c.down_for)));
        } else if let Some(f) = &e.forge {
            let candidates: Vec<usize> = (0..self.keys.len()).filter(|v| !self.observer_of.contains_key(v)).collect();
            let picked = self.rng.sample(candidates.len(), f.forgers.min(candidates.len()));
            let until = f.duration.map_or(Micros::MAX, |d| now + d.as_micros() as Micros);
            let every = (1e6 / f.rate.max(1e-3)) as Micros;
            let replay = f.kind == "replay";
            self.out.forge.per_peer_rate = f.rate;
            for j in picked {
                let forger = candidates[j];
                self.forge_slots.insert(forger, self.out.forge.isolated_at.len());
                self.out.forge.isolated_at.push(None);
                self.q.at(now, Ev::Forge { forger, until, replay, every });
            }
            self.out.marks.push((now, format!("forge {} × {}/s {}", f.forgers, f.rate, f.kind)));
        }
    }

    /// One forged message from `forger` to every connected peer (flood publishing): each peer
    /// validates it (and never forwards it), unless it has graylisted the forger.
    fn forge(&mut self, forger: usize, replay: bool, now: Micros) {
        let peers = self.topo.peers[forger].clone();
        let mut graylisted = 0usize;
        let mut reachable = 0usize;
        for p in peers {
            if !self.net.reachable(forger, p as usize) {
                continue;
            }
            reachable += 1;
            self.out.forge.sent += 1;
            let (count, last) = self.forge_scores.entry((p, forger as u32)).or_insert((0.0, now));
            *count *= INVALID_DECAY_PER_S.powf((now - *last) as f64 / 1e6);
            *last = now;
            if INVALID_WEIGHT * *count * *count <= GRAYLIST {
                self.out.forge.dropped_graylisted += 1;
                graylisted += 1;
                continue;
            }
            self.out.forge.validated += 1;
            if !replay {
                *count += 1.0;
            }
            if INVALID_WEIGHT * *count * *count <= GRAYLIST {
                graylisted += 1;
            }
        }
        if reachable > 0
            && graylisted == reachable
            && let Some(&slot) = self.forge_slots.get(&forger)
            && self.out.forge.isolated_at[slot].is_none()
        {
            self.out.forge.isolated_at[slot] = Some(now);
        }
    }

    fn finish(mut self) -> Outcome {
        // Liars never detected: nobody cordoned them.
        let n = self.keys.len();
        for t in &mut self.out.liars {
            if t.cordoned_at.is_empty() {
                t.cordoned_at = vec![NEVER; n];
            }
        }
        self.out
    }
}

fn push_reservoir(r: &mut Vec<u64>, next: &mut usize, v: u64) {
    if r.len() < DELAY_RESERVOIR {
        r.push(v);
    } else {
        r[*next] = v;
        *next = (*next + 1) % DELAY_RESERVOIR;
    }
}

fn seed_bytes(seed: u64, i: u64) -> [u8; 32] {
    let mut r = Rng::new(seed.wrapping_mul(0x1000_0000_01B3) ^ i);
    let mut out = [0u8; 32];
    for chunk in out.chunks_mut(8) {
        chunk.copy_from_slice(&r.next_u64().to_le_bytes());
    }
    out
}

fn announcement(now: Micros, seq: u64, cert: Option<&Signed<MembershipCert>>, ttl_ms: u64) -> CapacityAnnouncement {
    let header = MessageHeader::new(NET, seq, unix_ms(now), ttl_ms);
    let chain = ChainCapacity {
        chain_id: CHAIN,
        head: Some(BlockRef { number: head_at(now), hash: [7; 32] }),
        max_requests_per_sec: 100,
        utilisation_permille: 100,
        max_concurrent_relays: 8,
        archive: false,
        method_groups: vec!["eth".into()],
        policies: vec![],
    };
    CapacityAnnouncement::new(
        header,
        vec![chain],
        vec!["/ip4/10.0.0.1/tcp/4001".into(), "/ip4/10.0.0.1/udp/4001/quic-v1".into()],
        cert.cloned(),
        "rpcmesh/0.1.0".into(),
    )
}

/// A round of `n` observations (about the first `n` of `subjects`, cycling), for its size.
fn attestation_round(subjects: &[PublicKey], n: usize, now: Micros, seq: u64) -> AttestationRound {
    let observations =
        subjects.iter().cycle().take(n).enumerate().map(|(k, s)| observation(*s, k as u64, now)).collect();
    AttestationRound { header: MessageHeader::new(NET, seq, unix_ms(now), 60_000), observations }
}

fn observation(subject: PublicKey, chain_id: u64, now: Micros) -> Observation {
    Observation {
        subject,
        chain_id,
        window_start_ms: unix_ms(now).saturating_sub(30_000),
        window_end_ms: unix_ms(now),
        probes_sent: 15,
        probes_ok: 15,
        latency_p50_us: 1_000,
        latency_p95_us: 2_000,
        observed_head: Some(head_at(now)),
        reference_head: Some(head_at(now)),
        head_lag_blocks: Some(0),
    }
}
