//! Simulation scenario files (`testnet/scenarios/sim-*.toml`): the mesh (providers, regions,
//! latencies, loss, liars, censors), gossip and daemon settings (defaults are the daemon's),
//! client load, and a timeline (churn, partitions, floods of forged messages).

use std::time::Duration;

use serde::Deserialize;

use crate::scenario::parse_duration;

fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(serde::de::Error::custom)
}

fn de_opt_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = Option::<String>::deserialize(d)?;
    s.map(|s| parse_duration(&s).map_err(serde::de::Error::custom)).transpose()
}

/// A simulation scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimScenario {
    /// Name (report title).
    pub name: String,
    /// What it shows, in plain words.
    #[serde(default)]
    pub description: String,
    /// Simulated time measured.
    #[serde(deserialize_with = "de_duration")]
    pub duration: Duration,
    /// Seed of every random choice: one seed, one result.
    #[serde(default = "one")]
    pub seed: u64,
    /// The mesh.
    pub mesh: MeshSpec,
    /// Gossip and daemon settings.
    #[serde(default)]
    pub gossip: GossipSpec,
    /// Client load on the observer gateways.
    #[serde(default)]
    pub load: LoadSpec,
    /// Events.
    #[serde(default)]
    pub timeline: Vec<SimEvent>,
}

fn one() -> u64 {
    1
}

/// Providers and the network between them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeshSpec {
    /// Providers (one daemon each).
    pub providers: usize,
    /// Daemons that run the real mesh view, cordon book and route planning, and serve clients
    /// (default: all of them up to 10). The others take part in gossip only.
    #[serde(default)]
    pub observers: Option<usize>,
    /// Peers each daemon stays connected to (default: everyone up to 64).
    #[serde(default)]
    pub connections: Option<usize>,
    /// Regions and the share of providers in each (default: one region `local`).
    #[serde(default)]
    pub regions: Vec<RegionSpec>,
    /// One-way median latency between regions, ms (both directions; unlisted pairs: `default_latency_ms`).
    #[serde(default)]
    pub latency: Vec<LinkSpec>,
    /// Latency of pairs not listed (and within a region unless listed), ms.
    #[serde(default = "default_latency")]
    pub default_latency_ms: f64,
    /// Log-normal jitter: standard deviation of ln(latency / median).
    #[serde(default)]
    pub jitter: f64,
    /// Probability that one transmission is lost.
    #[serde(default)]
    pub loss: f64,
    /// Share of providers whose node lies in every answer (detected by checks, then cordoned).
    #[serde(default)]
    pub liars: f64,
    /// Share of providers whose node censors the watched address (never detected here).
    #[serde(default)]
    pub censors: f64,
}

fn default_latency() -> f64 {
    0.05
}

/// A region.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionSpec {
    /// Name.
    pub name: String,
    /// Share of providers (normalised over all regions).
    pub share: f64,
}

/// Latency between two regions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    /// One region.
    pub from: String,
    /// The other (may be the same).
    pub to: String,
    /// One-way median, ms.
    pub ms: f64,
}

/// Gossip and daemon settings; every default is the daemon's.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GossipSpec {
    /// Gossipsub D.
    pub mesh_n: usize,
    /// Gossipsub D_lo.
    pub mesh_n_low: usize,
    /// Gossipsub D_hi.
    pub mesh_n_high: usize,
    /// Gossipsub gossip_lazy.
    pub gossip_lazy: usize,
    /// Gossipsub gossip_factor.
    pub gossip_factor: f64,
    /// Gossipsub heartbeat, ms.
    pub heartbeat_ms: u64,
    /// Gossipsub flood publishing.
    pub flood_publish: bool,
    /// `announce.heartbeat_ms`.
    pub announce_heartbeat_ms: u64,
    /// `announce.expiry_heartbeats`.
    pub expiry_heartbeats: u32,
    /// `prober.attest_interval_ms`.
    pub attest_interval_ms: u64,
    /// `announce.mesh_rate_per_sec`: beyond `announce_heartbeat_ms × this` providers the
    /// heartbeat stretches to `providers / this` seconds, as in the daemon.
    pub mesh_rate_per_sec: f64,
    /// `prober.mesh_rounds_per_sec`: the same for attestation rounds.
    pub mesh_rounds_per_sec: f64,
    /// Observations in one daemon's attestation round, which it publishes as one signed
    /// message per `attest_interval_ms` (the daemon: at most `chains × (2 × peer_sample + 1)`,
    /// 7 for one chain with `prober.peer_sample = 3`). Sets the round's encoded size.
    pub observations_per_round: usize,
    /// `prober.peer_interval_ms`: an observer's probe round.
    pub probe_interval_ms: u64,
    /// `prober.peer_sample`: peers an observer probes per round.
    pub probe_sample: usize,
    /// Validation time of an announcement or attestation at each hop (decode + one ed25519
    /// verification), µs.
    pub validate_us: u64,
    /// Time to judge an evidence bundle at each hop before forwarding it, µs.
    pub judge_evidence_us: u64,
    /// Bytes of an evidence bundle (receipt, request, response, proof material).
    pub evidence_bytes: u64,
    /// Share of announcements and attestations whose spread is simulated hop by hop (the rest
    /// reach observers with delays drawn from those); 0 = choose so a run stays within about
    /// `max_spread_hops` node-hops.
    pub track_share: f64,
    /// Budget of node-hops for the tracked messages when `track_share` is 0.
    pub max_spread_hops: u64,
}

impl GossipSpec {
    /// The announcement heartbeat of a daemon in a mesh of `providers`, µs.
    pub fn announce_period_us(&self, providers: usize) -> u64 {
        let base = std::time::Duration::from_millis(self.announce_heartbeat_ms);
        rpcmesh_node::pacer::stretched(base, providers, self.mesh_rate_per_sec).as_micros() as u64
    }

    /// The attestation round period of a daemon in a mesh of `providers`, µs.
    pub fn attest_period_us(&self, providers: usize) -> u64 {
        let base = std::time::Duration::from_millis(self.attest_interval_ms);
        rpcmesh_node::pacer::stretched(base, providers, self.mesh_rounds_per_sec).as_micros() as u64
    }
}

impl Default for GossipSpec {
    /// The daemon's defaults.
    fn default() -> Self {
        let daemon = super::gossip::GossipParams::default();
        Self {
            mesh_n: daemon.mesh_n,
            mesh_n_low: daemon.mesh_n_low,
            mesh_n_high: daemon.mesh_n_high,
            gossip_lazy: daemon.gossip_lazy,
            gossip_factor: daemon.gossip_factor,
            heartbeat_ms: daemon.heartbeat_us / 1_000,
            flood_publish: daemon.flood_publish,
            announce_heartbeat_ms: 5_000,
            expiry_heartbeats: 3,
            attest_interval_ms: 10_000,
            mesh_rate_per_sec: rpcmesh_node::config::DEFAULT_MESH_ANNOUNCEMENTS_PER_SEC,
            mesh_rounds_per_sec: rpcmesh_node::config::DEFAULT_MESH_ROUNDS_PER_SEC,
            observations_per_round: 7,
            probe_interval_ms: 2_000,
            probe_sample: 3,
            validate_us: 150,
            judge_evidence_us: 20_000,
            evidence_bytes: 6_000,
            track_share: 0.0,
            max_spread_hops: 400_000_000,
        }
    }
}

/// Client load.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoadSpec {
    /// Requests per second per observer gateway.
    pub rate: f64,
    /// `integrity.verify`: `off`, `sample` or `strict`.
    pub verify: String,
    /// `integrity.sample_permille` in `sample` mode.
    pub sample_permille: u16,
    /// Share of requests about the watched address (what censors filter).
    pub watched_share: f64,
    /// Attempts per request (the router's retry budget).
    pub attempts: usize,
    /// Service time of a provider's node, ms.
    pub service_ms: f64,
}

impl Default for LoadSpec {
    fn default() -> Self {
        Self {
            rate: 10.0,
            verify: "sample".into(),
            sample_permille: 50,
            watched_share: 0.1,
            attempts: 3,
            service_ms: 2.0,
        }
    }
}

/// One timeline event: exactly one action.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimEvent {
    /// When, from the start.
    #[serde(deserialize_with = "de_duration")]
    pub at: Duration,
    /// Region groups that cannot reach each other: `eu:us,asia`.
    #[serde(default)]
    pub partition: Option<String>,
    /// End the partition.
    #[serde(default)]
    pub heal_partition: bool,
    /// Take a share of the providers down for a while.
    #[serde(default)]
    pub churn: Option<ChurnSpec>,
    /// Some providers flood forged messages.
    #[serde(default)]
    pub forge: Option<ForgeSpec>,
}

/// Churn: providers leave and come back.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChurnSpec {
    /// Share of providers (observers excepted) that go down.
    pub share: f64,
    /// How long they stay down.
    #[serde(deserialize_with = "de_duration")]
    pub down_for: Duration,
}

/// A flood of forged gossip.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForgeSpec {
    /// Providers that forge.
    pub forgers: usize,
    /// Forged messages per second per forger.
    pub rate: f64,
    /// `bad-signature` (rejected: the sender's peer score falls) or `replay` (an old valid
    /// message: ignored, no penalty).
    #[serde(default = "bad_signature")]
    pub kind: String,
    /// How long (default: to the end).
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub duration: Option<Duration>,
}

fn bad_signature() -> String {
    "bad-signature".into()
}

impl SimScenario {
    /// Parses and checks a scenario's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let s: SimScenario = toml::from_str(text).map_err(|e| e.to_string())?;
        s.check()?;
        Ok(s)
    }

    /// Checks what a scenario file can get wrong; run again after command-line overrides.
    pub fn check(&self) -> Result<(), String> {
        let m = &self.mesh;
        if m.providers < 2 {
            return Err("mesh.providers must be at least 2".into());
        }
        for (what, v) in [("mesh.loss", m.loss), ("mesh.liars", m.liars), ("mesh.censors", m.censors)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{what} = {v}: a share between 0 and 1"));
            }
        }
        if !matches!(self.load.verify.as_str(), "off" | "sample" | "strict") {
            return Err(format!("load.verify {:?}: use off, sample or strict", self.load.verify));
        }
        if self.gossip.heartbeat_ms == 0
            || self.gossip.announce_heartbeat_ms == 0
            || self.gossip.attest_interval_ms == 0
        {
            return Err("gossip heartbeats and intervals must be positive".into());
        }
        let max_round = rpcmesh_protocol::validate::Limits::default().max_round_observations;
        if !(1..=max_round).contains(&self.gossip.observations_per_round) {
            return Err(format!(
                "gossip.observations_per_round = {}: between 1 and {max_round} (what a daemon accepts in one round)",
                self.gossip.observations_per_round
            ));
        }
        if self.duration.is_zero() {
            return Err("duration must be positive".into());
        }
        let names: Vec<&str> = self.region_names();
        for l in &m.latency {
            for r in [&l.from, &l.to] {
                if !names.contains(&r.as_str()) {
                    return Err(format!("mesh.latency names region {r:?}, not one of {names:?}"));
                }
            }
        }
        for (i, e) in self.timeline.iter().enumerate() {
            let actions = usize::from(e.partition.is_some())
                + usize::from(e.heal_partition)
                + usize::from(e.churn.is_some())
                + usize::from(e.forge.is_some());
            if actions != 1 {
                return Err(format!("timeline[{i}]: exactly one of partition, heal_partition, churn, forge"));
            }
            if let Some(p) = &e.partition {
                self.partition_groups(p).map_err(|err| format!("timeline[{i}]: {err}"))?;
            }
            if let Some(f) = &e.forge
                && !matches!(f.kind.as_str(), "bad-signature" | "replay")
            {
                return Err(format!("timeline[{i}]: forge.kind {:?}: use bad-signature or replay", f.kind));
            }
        }
        Ok(())
    }

    /// Region names, in order (`local` when none are given).
    pub fn region_names(&self) -> Vec<&str> {
        if self.mesh.regions.is_empty() {
            vec!["local"]
        } else {
            self.mesh.regions.iter().map(|r| r.name.as_str()).collect()
        }
    }

    /// The group of each region in `eu:us,asia`; every region must be named once.
    pub fn partition_groups(&self, spec: &str) -> Result<Vec<u8>, String> {
        let names = self.region_names();
        let mut group = vec![u8::MAX; names.len()];
        for (g, part) in spec.split(':').enumerate() {
            for name in part.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let r = names
                    .iter()
                    .position(|n| *n == name)
                    .ok_or_else(|| format!("partition names region {name:?}, not one of {names:?}"))?;
                group[r] = g as u8;
            }
        }
        if let Some(r) = group.iter().position(|g| *g == u8::MAX) {
            return Err(format!("partition {spec:?} leaves out region {:?}", names[r]));
        }
        Ok(group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects_what_it_must() {
        let text = r#"
name = "t"
duration = "10s"
[mesh]
providers = 50
regions = [{ name = "eu", share = 1 }, { name = "us", share = 1 }]
latency = [{ from = "eu", to = "us", ms = 40 }]
liars = 0.1
[[timeline]]
at = "2s"
partition = "eu:us"
[[timeline]]
at = "3s"
forge = { forgers = 2, rate = 10 }
"#;
        let s = SimScenario::parse(text).expect("valid");
        assert_eq!(s.gossip.mesh_n, 6);
        assert_eq!(s.partition_groups("eu:us"), Ok(vec![0, 1]));
        assert!(s.partition_groups("eu").is_err(), "us left out");
        assert!(SimScenario::parse(&text.replace("liars", "lairs")).is_err(), "unknown keys are errors");
        assert!(SimScenario::parse(&text.replace("\"eu:us\"", "\"eu:mars\"")).is_err());
    }
}
