//! Scenarios: a topology, a client load and a timeline of faults, run against a local testnet
//! with every request, fault, view change and gossip delivery recorded (see [`crate::record`])
//! and turned into a report (see [`crate::report`]).
//!
//! ```toml
//! name = "provider-outage"
//! description = "What clients of node 0 see when node 0's own node goes down."
//! duration = "30s"
//!
//! [topology]
//! nodes = 5
//! chains = [1]
//! backend = "sim"        # or "anvil"
//! block_time_ms = 1000
//! sets = []              # extra daemon config, e.g. ["routing.hedge=false"]
//!
//! [topology.node_sets]   # extra daemon config of single nodes (after `sets`, so it wins)
//! 0 = ["censorship.avoid=[\"filters:*\"]"]
//!
//! [topology.node_policies]  # policies a node declares on every chain it serves
//! 1 = ["filters:address-list:<sha256 of the list>"]
//!
//! [load]
//! gateways = [0]         # whose gateways clients use
//! transport = "http"     # http | ws | both
//! concurrency = 4        # client loops per gateway
//! rate = 0               # requests/s per loop; 0 = closed loop
//! methods = [{ method = "eth_blockNumber", weight = 3 }, { method = "eth_getBalance", weight = 1 }]
//! watched = "0x…"        # optional: half the account reads ask about it; `send_to_watched`
//!                        # (anvil only) sends it transactions through the gateway
//! reads_at = "latest"    # or "number": account reads ask at a block just below the head
//!
//! [[timeline]]
//! at = "10s"
//! node = 0
//! fault = "down"         # down | freeze | slow=200ms | errors=0.3 | stale=5 | lie[=balance,…] | censor=0x.. | heal
//! phase = "outage"       # optional: a phase starts here
//!
//! [[timeline]]
//! at = "20s"
//! partition = "0,1:2,3,4"   # or heal_partition = true, or restart = 2
//! ```

mod load;
mod run;
mod truth;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::net::NodeExtras;

pub use load::{READ_DEPTH, ReadsAt, SEND_TO_WATCHED, SENDERS, SUPPORTED_METHODS};
pub use run::{RunOptions, load, run_scenario};

/// A scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name.
    pub name: String,
    /// What it shows.
    #[serde(default)]
    pub description: String,
    /// Length of the measured run (after warm-up), e.g. `30s`.
    #[serde(deserialize_with = "de_duration")]
    pub duration: Duration,
    /// The testnet.
    pub topology: Topology,
    /// The clients.
    pub load: Load,
    /// Faults, partitions and restarts.
    #[serde(default)]
    pub timeline: Vec<Event>,
}

/// `[topology]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// Number of daemons.
    pub nodes: usize,
    /// Chains every provider serves.
    #[serde(default = "default_chains")]
    pub chains: Vec<u64>,
    /// `sim` or `anvil`.
    #[serde(default = "default_backend")]
    pub backend: String,
    /// Block time, ms.
    #[serde(default = "default_block_time")]
    pub block_time_ms: u64,
    /// Extra daemon `--set` overrides.
    #[serde(default)]
    pub sets: Vec<String>,
    /// Extra `--set` overrides of single daemons, by node index (`"1" = ["key=value"]`); they
    /// come after [`Topology::sets`], so they win.
    #[serde(default)]
    pub node_sets: BTreeMap<String, Vec<String>>,
    /// Policies a daemon declares (signed, in its announcements) on every chain it serves, by
    /// node index, e.g. `"1" = ["filters:address-list:<sha256>"]`.
    #[serde(default)]
    pub node_policies: BTreeMap<String, Vec<String>>,
}

impl Topology {
    /// [`Topology::node_sets`] and [`Topology::node_policies`] by node index.
    pub fn extras(&self) -> Result<BTreeMap<usize, NodeExtras>, String> {
        let mut out: BTreeMap<usize, NodeExtras> = BTreeMap::new();
        let index = |table: &str, key: &str| -> Result<usize, String> {
            match key.trim().parse::<usize>() {
                Ok(k) if k < self.nodes => Ok(k),
                _ => Err(format!("topology.{table}: {key:?} is not a node index 0..{}", self.nodes.saturating_sub(1))),
            }
        };
        for (key, sets) in &self.node_sets {
            out.entry(index("node_sets", key)?).or_default().sets.extend(sets.iter().cloned());
        }
        for (key, policies) in &self.node_policies {
            out.entry(index("node_policies", key)?).or_default().policies.extend(policies.iter().cloned());
        }
        Ok(out)
    }
}

fn default_chains() -> Vec<u64> {
    vec![1]
}
fn default_backend() -> String {
    "sim".into()
}
fn default_block_time() -> u64 {
    1000
}

/// `[load]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Load {
    /// Node indexes whose gateways clients use.
    #[serde(default = "default_gateways")]
    pub gateways: Vec<usize>,
    /// `http`, `ws` or `both`.
    #[serde(default = "default_transport")]
    pub transport: String,
    /// Client loops per gateway.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Requests per second per loop (0: as fast as answers come).
    #[serde(default)]
    pub rate: f64,
    /// Method mix.
    #[serde(default = "default_methods")]
    pub methods: Vec<MethodWeight>,
    /// Per-request client timeout, ms.
    #[serde(default = "default_client_timeout")]
    pub timeout_ms: u64,
    /// `x-rpcmesh-verify` sent with every request (`off`, `sample`, `strict`); unset: the
    /// daemons' configured mode.
    #[serde(default)]
    pub verify: Option<String>,
    /// An address the clients care about (`0x` + 40 hex digits): account reads
    /// (`eth_getBalance`, `eth_getTransactionCount`, `eth_getCode`) ask about it one time in
    /// two, and `send_to_watched` sends it transactions. With anvil, if it is one of anvil's
    /// unlocked accounts, it sends one transaction before the run, so its nonce is not 0 and a
    /// nonce read as 0 is wrong.
    #[serde(default)]
    pub watched: Option<String>,
    /// Block the account reads ask at: `latest` (default) or `number` (a block number
    /// [`READ_DEPTH`] below the head). A daemon in `sample` mode proves only numbered reads: it
    /// never rewrites a `latest` read to pin it to a block, so a lie about the latest state
    /// passes its sample.
    #[serde(default)]
    pub reads_at: Option<String>,
}

impl Load {
    /// [`Load::reads_at`] parsed (checked by [`Scenario::parse`]).
    pub fn reads_at(&self) -> Result<ReadsAt, String> {
        match self.reads_at.as_deref() {
            None | Some("latest") => Ok(ReadsAt::Latest),
            Some("number") => Ok(ReadsAt::Number),
            Some(other) => Err(format!("load.reads_at {other:?}: use latest or number")),
        }
    }
}

fn default_gateways() -> Vec<usize> {
    vec![0]
}
fn default_transport() -> String {
    "http".into()
}
fn default_concurrency() -> usize {
    4
}
fn default_client_timeout() -> u64 {
    15_000
}
fn default_methods() -> Vec<MethodWeight> {
    vec![
        MethodWeight { method: "eth_blockNumber".into(), weight: 3 },
        MethodWeight { method: "eth_getBalance".into(), weight: 2 },
        MethodWeight { method: "eth_getBlockByNumber".into(), weight: 1 },
    ]
}

/// One method of the mix.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MethodWeight {
    /// One of [`SUPPORTED_METHODS`]: a JSON-RPC method, or `send_to_watched` (a transaction of
    /// 1 wei to [`Load::watched`], signed by anvil for one of its dev accounts and sent with
    /// `eth_sendRawTransaction` through the gateway).
    pub method: String,
    /// Relative weight.
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

/// One timeline event; exactly one action per event.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// When, from the start of the measured run.
    #[serde(deserialize_with = "de_duration")]
    pub at: Duration,
    /// Node of a `fault` or... the node index.
    #[serde(default)]
    pub node: Option<usize>,
    /// Fault to inject on `node` (`heal` removes it).
    #[serde(default)]
    pub fault: Option<String>,
    /// Groups to split the mesh into, e.g. `0,1:2,3`.
    #[serde(default)]
    pub partition: Option<String>,
    /// Remove the partition.
    #[serde(default)]
    pub heal_partition: bool,
    /// Node to restart.
    #[serde(default)]
    pub restart: Option<usize>,
    /// Name of a phase starting at this event.
    #[serde(default)]
    pub phase: Option<String>,
}

/// Parses `30s`, `500ms`, `2m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len()));
    let n: f64 = num.parse().map_err(|_| format!("{s:?} is not a duration like 30s, 500ms or 2m"))?;
    let ms = match unit.trim() {
        "ms" => n,
        "s" | "" => n * 1000.0,
        "m" => n * 60_000.0,
        u => return Err(format!("unknown unit {u:?} in {s:?}")),
    };
    Ok(Duration::from_millis(ms as u64))
}

fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(serde::de::Error::custom)
}

impl Scenario {
    /// Parses and checks a scenario file's text.
    pub fn parse(text: &str) -> Result<Scenario, String> {
        let s: Scenario = toml::from_str(text).map_err(|e| e.to_string())?;
        s.check()?;
        Ok(s)
    }

    fn check(&self) -> Result<(), String> {
        let n = self.topology.nodes;
        if n == 0 {
            return Err("topology.nodes must be at least 1".into());
        }
        if !matches!(self.topology.backend.as_str(), "sim" | "anvil") {
            return Err(format!("topology.backend {:?}: use sim or anvil", self.topology.backend));
        }
        if !matches!(self.load.transport.as_str(), "http" | "ws" | "both") {
            return Err(format!("load.transport {:?}: use http, ws or both", self.load.transport));
        }
        if let Some(v) = &self.load.verify
            && !matches!(v.as_str(), "off" | "sample" | "strict")
        {
            return Err(format!("load.verify {v:?}: use off, sample or strict"));
        }
        self.load.reads_at()?;
        if let Some(g) = self.load.gateways.iter().find(|g| **g >= n) {
            return Err(format!("load.gateways names node {g}, but there are {n} nodes"));
        }
        for m in &self.load.methods {
            if !load::SUPPORTED_METHODS.contains(&m.method.as_str()) {
                return Err(format!("load.methods: {:?} is not one of {:?}", m.method, load::SUPPORTED_METHODS));
            }
        }
        if let Some(w) = &self.load.watched
            && load::parse_address(w).is_none()
        {
            return Err(format!("load.watched {w:?} is not an address (0x and 40 hex digits)"));
        }
        if self.load.methods.iter().any(|m| m.method == SEND_TO_WATCHED) {
            if self.load.watched.is_none() {
                return Err(format!("load.methods: {SEND_TO_WATCHED} needs load.watched"));
            }
            if self.topology.backend != "anvil" {
                return Err(format!("load.methods: {SEND_TO_WATCHED} needs backend = \"anvil\" (anvil signs them)"));
            }
        }
        self.topology.extras()?;
        for (i, e) in self.timeline.iter().enumerate() {
            let actions = [e.fault.is_some(), e.partition.is_some(), e.heal_partition, e.restart.is_some()]
                .iter()
                .filter(|b| **b)
                .count();
            if actions > 1 || (actions == 0 && e.phase.is_none()) {
                return Err(format!(
                    "timeline[{i}]: give exactly one of fault, partition, heal_partition, restart (or only a phase)"
                ));
            }
            if let Some(f) = &e.fault {
                crate::faults::parse_fault(f).map_err(|m| format!("timeline[{i}]: {m}"))?;
                match e.node {
                    Some(k) if k < n => {}
                    _ => return Err(format!("timeline[{i}]: a fault needs node = 0..{}", n - 1)),
                }
            }
            if let Some(p) = &e.partition {
                crate::net::parse_groups(p).map_err(|m| format!("timeline[{i}]: {m}"))?;
            }
            if e.restart.is_some_and(|k| k >= n) {
                return Err(format!("timeline[{i}]: no node {:?}", e.restart));
            }
            if e.at > self.duration {
                return Err(format!("timeline[{i}]: at {:?} is after the end ({:?})", e.at, self.duration));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WATCHED: &str = "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720";

    fn scenario(topology: &str, load: &str) -> Result<Scenario, String> {
        Scenario::parse(&format!(
            "name = \"t\"\nduration = \"10s\"\n[topology]\nnodes = 3\n{topology}\n[load]\n{load}\n"
        ))
    }

    #[test]
    fn per_node_sets_and_policies() {
        let s = scenario(
            "backend = \"anvil\"\nsets = [\"a.b=1\"]\n[topology.node_sets]\n1 = [\"c.d=2\"]\n2 = [\"e.f=3\"]\n\
             [topology.node_policies]\n1 = [\"filters:address-list:ab\"]",
            "",
        )
        .unwrap();
        let extras = s.topology.extras().unwrap();
        assert_eq!(extras.len(), 2);
        assert_eq!(extras[&1].sets, ["c.d=2"]);
        assert_eq!(extras[&1].policies, ["filters:address-list:ab"]);
        assert_eq!(extras[&2], NodeExtras { sets: vec!["e.f=3".into()], policies: vec![] });
        let err = scenario("[topology.node_sets]\n3 = [\"a=1\"]", "").unwrap_err();
        assert!(err.contains("topology.node_sets") && err.contains("0..2"), "{err}");
        let err = scenario("[topology.node_policies]\nx = [\"a\"]", "").unwrap_err();
        assert!(err.contains("topology.node_policies"), "{err}");
    }

    #[test]
    fn sending_to_the_watched_address_needs_it_and_anvil() {
        let send = "methods = [{ method = \"send_to_watched\" }, { method = \"eth_getTransactionCount\" }]";
        let ok = scenario("backend = \"anvil\"", &format!("watched = \"{WATCHED}\"\n{send}")).unwrap();
        assert_eq!(ok.load.watched.as_deref(), Some(WATCHED));
        let err = scenario("backend = \"anvil\"", send).unwrap_err();
        assert!(err.contains("load.watched"), "{err}");
        let err = scenario("backend = \"sim\"", &format!("watched = \"{WATCHED}\"\n{send}")).unwrap_err();
        assert!(err.contains("anvil"), "{err}");
        let err = scenario("", "watched = \"0x1234\"").unwrap_err();
        assert!(err.contains("not an address"), "{err}");
    }
}
