//! Gossipsub as the daemon runs it, on the simulated network: who is connected, the mesh of
//! degree D per topic, and the spread of one message.
//!
//! Modelled, with the daemon's parameters ([`GossipParams::default`], from
//! `node/src/p2p/behaviour.rs` and libp2p-gossipsub 0.50's defaults): flood publishing (the
//! publisher sends to every connected peer), eager push along the mesh (each node forwards the
//! first copy, after validating it, to its mesh peers but the one it came from), content message
//! ids (a second copy is a duplicate and goes no further), and lazy gossip: at each of the
//! `history_gossip` heartbeats after a node took a message, it sends IHAVE to
//! max(`gossip_lazy`, `gossip_factor` × its non-mesh peers) of its non-mesh peers; a peer missing
//! the message answers IWANT and gets it. Not modelled: peer exchange on prune, opportunistic
//! grafting, backoff timers, message-size-dependent transfer time, and IDONTWANT.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};

use super::clock::{Micros, Rng};
use super::network::Network;

/// Never reached.
pub const NEVER: Micros = Micros::MAX;

/// Bytes of one message id in IHAVE / IWANT (the daemon's ids are 20-byte SHA-256 prefixes).
pub const MESSAGE_ID_BYTES: u64 = 20;

/// Gossipsub's knobs.
#[derive(Debug, Clone, PartialEq)]
pub struct GossipParams {
    /// D: mesh peers a node aims for.
    pub mesh_n: usize,
    /// D_lo: below this a node grafts more at its heartbeat.
    pub mesh_n_low: usize,
    /// D_hi: above this a node prunes; a node refuses grafts beyond it.
    pub mesh_n_high: usize,
    /// Minimum peers a node sends IHAVE to per heartbeat.
    pub gossip_lazy: usize,
    /// Share of non-mesh peers a node sends IHAVE to per heartbeat, if more than `gossip_lazy`.
    pub gossip_factor: f64,
    /// Heartbeats during which a message's id is gossiped.
    pub history_gossip: u32,
    /// Heartbeat period, µs.
    pub heartbeat_us: Micros,
    /// The publisher sends to every connected peer, not only its mesh.
    pub flood_publish: bool,
}

impl Default for GossipParams {
    /// The daemon's (`rpcmesh_node::p2p::GOSSIP_*`).
    fn default() -> Self {
        use rpcmesh_node::p2p as daemon;
        Self {
            mesh_n: daemon::GOSSIP_MESH_N,
            mesh_n_low: daemon::GOSSIP_MESH_N_LOW,
            mesh_n_high: daemon::GOSSIP_MESH_N_HIGH,
            gossip_lazy: daemon::GOSSIP_LAZY,
            gossip_factor: daemon::GOSSIP_FACTOR,
            history_gossip: daemon::GOSSIP_HISTORY as u32,
            heartbeat_us: daemon::GOSSIP_HEARTBEAT.as_micros() as Micros,
            flood_publish: daemon::GOSSIP_FLOOD_PUBLISH,
        }
    }
}

/// Connections and the mesh (one topic's; every topic's mesh is built alike).
#[derive(Debug, Clone)]
pub struct Topology {
    /// Connected peers of each node.
    pub peers: Vec<Vec<u32>>,
    /// Mesh peers of each node (a symmetric subset of `peers`).
    pub mesh: Vec<Vec<u32>>,
    /// Heartbeat phase of each node, µs.
    phase_us: Vec<Micros>,
    params: GossipParams,
}

impl Topology {
    /// `n` nodes, each dialling about `connections / 2` random others (links are symmetric, so
    /// a node ends with about `connections`), then grafting a mesh of `mesh_n`.
    pub fn build(n: usize, connections: usize, params: GossipParams, rng: &mut Rng) -> Self {
        let mut peers: Vec<Vec<u32>> = vec![Vec::new(); n];
        if connections + 1 >= n {
            for (i, p) in peers.iter_mut().enumerate() {
                *p = (0..n as u32).filter(|j| *j as usize != i).collect();
            }
        } else {
            let mut edges: HashSet<(u32, u32)> = HashSet::new();
            let dials = connections.div_ceil(2).max(1);
            for i in 0..n {
                for _ in 0..dials {
                    let j = rng.below(n);
                    if j == i {
                        continue;
                    }
                    let e = (i.min(j) as u32, i.max(j) as u32);
                    if edges.insert(e) {
                        peers[i].push(j as u32);
                        peers[j].push(i as u32);
                    }
                }
            }
        }
        let phase_us = (0..n).map(|_| rng.below(params.heartbeat_us as usize) as Micros).collect();
        let mut topo = Self { peers, mesh: vec![Vec::new(); n], phase_us, params };
        let mut order: Vec<usize> = (0..n).collect();
        rng.shuffle(&mut order);
        for i in order {
            topo.graft(i, topo.params.mesh_n, None, rng);
        }
        topo
    }

    /// Grafts `node` to connected peers with room until it has `target` mesh peers (only
    /// reachable ones when `net` is given).
    fn graft(&mut self, node: usize, target: usize, net: Option<&Network>, rng: &mut Rng) {
        if self.mesh[node].len() >= target {
            return;
        }
        let mut candidates = self.peers[node].clone();
        rng.shuffle(&mut candidates);
        for p in candidates {
            if self.mesh[node].len() >= target {
                break;
            }
            let pu = p as usize;
            if self.mesh[pu].len() >= self.params.mesh_n_high
                || self.mesh[node].contains(&p)
                || net.is_some_and(|n| !n.reachable(node, pu))
            {
                continue;
            }
            self.mesh[node].push(p);
            self.mesh[pu].push(node as u32);
        }
    }

    /// Re-forms the mesh after the network changed (a node down or back, a partition or its
    /// heal): mesh links that cannot carry messages are pruned, and nodes below D_lo graft
    /// reachable peers, as their next heartbeat would.
    pub fn repair(&mut self, net: &Network, rng: &mut Rng) {
        for i in 0..self.mesh.len() {
            let keep: Vec<u32> = self.mesh[i].iter().copied().filter(|p| net.reachable(i, *p as usize)).collect();
            self.mesh[i] = keep;
        }
        for i in 0..self.mesh.len() {
            if net.is_up(i) && self.mesh[i].len() < self.params.mesh_n_low {
                self.graft(i, self.params.mesh_n, Some(net), rng);
            }
        }
    }

    /// Nodes.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// The gossip parameters.
    pub fn params(&self) -> &GossipParams {
        &self.params
    }

    /// Peers `node` sends IHAVE to per heartbeat, and of how many non-mesh peers.
    fn lazy_fanout(&self, node: usize) -> (usize, usize) {
        let non_mesh = self.peers[node].len().saturating_sub(self.mesh[node].len());
        let k = self.params.gossip_lazy.max((self.params.gossip_factor * non_mesh as f64) as usize);
        (k.min(non_mesh), non_mesh)
    }

    /// `node`'s first `history_gossip` heartbeats after `t`.
    fn heartbeats_after(&self, node: usize, t: Micros) -> impl Iterator<Item = Micros> + use<> {
        let hb = self.params.heartbeat_us.max(1);
        let phase = self.phase_us[node];
        let first = if t < phase { phase } else { phase + ((t - phase) / hb + 1) * hb };
        (0..u64::from(self.params.history_gossip)).map(move |k| first + k * hb)
    }
}

/// Traffic counters per node and per second of the run.
#[derive(Debug, Clone, Default)]
pub struct Traffic {
    /// Data messages sent by each node (every copy, duplicates included).
    pub sent: Vec<u64>,
    /// Data messages received by each node (every copy).
    pub received: Vec<u64>,
    /// Bytes of data messages sent by each node.
    pub sent_bytes: Vec<u64>,
    /// Bytes of data messages received by each node.
    pub received_bytes: Vec<u64>,
    /// IHAVE and IWANT message ids sent by each node.
    pub control_ids: Vec<u64>,
    /// Data messages received by all nodes, per second of the run.
    pub received_per_second: Vec<u64>,
    /// Copies that arrived at a node that already had the message.
    pub duplicates: u64,
}

impl Traffic {
    /// Counters for `n` nodes and a run of `seconds`.
    pub fn new(n: usize, seconds: usize) -> Self {
        Self {
            sent: vec![0; n],
            received: vec![0; n],
            sent_bytes: vec![0; n],
            received_bytes: vec![0; n],
            control_ids: vec![0; n],
            received_per_second: vec![0; seconds + 1],
            duplicates: 0,
        }
    }

    fn send(&mut self, from: usize, bytes: u64) {
        self.sent[from] += 1;
        self.sent_bytes[from] += bytes;
    }

    fn receive(&mut self, to: usize, bytes: u64, at: Micros) {
        self.received[to] += 1;
        self.received_bytes[to] += bytes;
        let s = ((at / 1_000_000) as usize).min(self.received_per_second.len().saturating_sub(1));
        if let Some(b) = self.received_per_second.get_mut(s) {
            *b += 1;
        }
    }
}

/// One message to spread.
#[derive(Debug, Clone, Copy)]
pub struct Message {
    /// Publisher.
    pub origin: usize,
    /// Publication time.
    pub at: Micros,
    /// Encoded size, bytes.
    pub bytes: u64,
    /// Validation time at each hop before forwarding (signature check, or judging evidence), µs.
    pub validate_us: Micros,
}

/// Reusable buffers of [`Spreader::spread`] (one allocation per run, not per message).
#[derive(Debug, Default)]
pub struct Spreader {
    heap: BinaryHeap<Reverse<(Micros, u32, u32)>>,
    accepted: Vec<Micros>,
}

impl Spreader {
    /// Spreads `msg` over `topo` on `net` (the network as it is at publication, for the whole
    /// spread), counting traffic. Returns when each node accepted it ([`NEVER`] if it did not);
    /// the publisher accepted it at publication.
    pub fn spread(
        &mut self,
        topo: &Topology,
        net: &Network,
        msg: Message,
        rng: &mut Rng,
        traffic: &mut Traffic,
    ) -> &[Micros] {
        let n = topo.len();
        self.accepted.clear();
        self.accepted.resize(n, NEVER);
        self.heap.clear();
        let origin = msg.origin;
        if !net.is_up(origin) {
            return &self.accepted;
        }
        self.accepted[origin] = msg.at;
        let first_hop = if topo.params.flood_publish { &topo.peers[origin] } else { &topo.mesh[origin] };
        for &p in first_hop {
            traffic.send(origin, msg.bytes);
            if let Some(d) = net.transmit(origin, p as usize, rng) {
                self.heap.push(Reverse((msg.at + d, p, origin as u32)));
            }
        }
        for _round in 0..4 {
            self.eager(topo, net, msg, rng, traffic);
            if !self.lazy_recovery(topo, net, msg, rng, traffic) {
                break;
            }
        }
        // IHAVE ids sent: every holder gossips for `history_gossip` heartbeats.
        for (v, at) in self.accepted.iter().enumerate() {
            if *at != NEVER && net.is_up(v) {
                traffic.control_ids[v] += u64::from(topo.params.history_gossip) * topo.lazy_fanout(v).0 as u64;
            }
        }
        &self.accepted
    }

    /// Eager push until no copy is in flight.
    fn eager(&mut self, topo: &Topology, net: &Network, msg: Message, rng: &mut Rng, traffic: &mut Traffic) {
        while let Some(Reverse((t, v, from))) = self.heap.pop() {
            let v = v as usize;
            traffic.receive(v, msg.bytes, t);
            if self.accepted[v] != NEVER {
                traffic.duplicates += 1;
                continue;
            }
            let at = t + msg.validate_us;
            self.accepted[v] = at;
            for &m in &topo.mesh[v] {
                if m == from {
                    continue;
                }
                traffic.send(v, msg.bytes);
                if let Some(d) = net.transmit(v, m as usize, rng) {
                    self.heap.push(Reverse((at + d, m, v as u32)));
                }
            }
        }
    }

    /// For each node still missing the message, the earliest IHAVE → IWANT → message exchange
    /// with a holder that gossips to it; queues those arrivals. Returns whether any was queued.
    fn lazy_recovery(
        &mut self,
        topo: &Topology,
        net: &Network,
        msg: Message,
        rng: &mut Rng,
        traffic: &mut Traffic,
    ) -> bool {
        let mut any = false;
        for p in 0..topo.len() {
            // A node the publisher cannot reach (down, other side of a partition) cannot get it.
            if self.accepted[p] != NEVER || !net.reachable(msg.origin, p) {
                continue;
            }
            let mut best: Option<(Micros, usize)> = None;
            for &v in &topo.peers[p] {
                let v = v as usize;
                let had = self.accepted[v];
                if had == NEVER || topo.mesh[v].contains(&(p as u32)) || !net.reachable(v, p) {
                    continue;
                }
                let (k, non_mesh) = topo.lazy_fanout(v);
                let chance = k as f64 / non_mesh.max(1) as f64;
                for h in topo.heartbeats_after(v, had) {
                    if rng.chance(chance) {
                        let (Some(ihave), Some(iwant), Some(data)) =
                            (net.transmit(v, p, rng), net.transmit(p, v, rng), net.transmit(v, p, rng))
                        else {
                            break;
                        };
                        let arrive = h + ihave + iwant + data;
                        if best.is_none_or(|(b, _)| arrive < b) {
                            best = Some((arrive, v));
                        }
                        break;
                    }
                }
            }
            if let Some((arrive, v)) = best {
                traffic.control_ids[p] += 1;
                traffic.send(v, msg.bytes);
                self.heap.push(Reverse((arrive, p as u32, v as u32)));
                any = true;
            }
        }
        any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::network::Latency;

    fn flat(n: usize, loss: f64) -> Network {
        Network::new(vec![0; n], vec![vec![Latency { median_us: 1_000.0, sigma: 0.0 }]], loss)
    }

    #[test]
    fn mesh_degrees_stay_within_bounds() {
        let mut rng = Rng::new(5);
        let topo = Topology::build(500, 30, GossipParams::default(), &mut rng);
        for (i, m) in topo.mesh.iter().enumerate() {
            assert!(m.len() >= 5 && m.len() <= 12, "node {i} has {} mesh peers", m.len());
            assert!(m.iter().all(|p| topo.mesh[*p as usize].contains(&(i as u32))), "mesh is symmetric");
            assert!(m.iter().all(|p| topo.peers[i].contains(p)), "mesh peers are connected");
        }
    }

    #[test]
    fn a_message_reaches_everyone_with_one_acceptance_each() {
        let mut rng = Rng::new(9);
        let net = flat(200, 0.0);
        let topo = Topology::build(200, 20, GossipParams::default(), &mut rng);
        let mut traffic = Traffic::new(200, 10);
        let msg = Message { origin: 0, at: 0, bytes: 100, validate_us: 100 };
        let accepted = Spreader::default().spread(&topo, &net, msg, &mut rng, &mut traffic).to_vec();
        assert!(accepted.iter().all(|t| *t != NEVER));
        // Every hop costs 1 ms plus 0.1 ms of validation: a few hops, well under 10 ms.
        assert!(accepted.iter().all(|t| *t <= 10_000), "{:?}", accepted.iter().max());
        let received: u64 = traffic.received.iter().sum();
        assert_eq!(received - traffic.duplicates, 199, "one first copy per node but the publisher");
        assert_eq!(traffic.sent.iter().sum::<u64>(), received, "no loss: every copy sent arrives");
    }

    #[test]
    fn lazy_gossip_recovers_lost_copies_and_partitions_stop_messages() {
        let mut rng = Rng::new(11);
        let mut net = flat(300, 0.3);
        let topo = Topology::build(300, 40, GossipParams::default(), &mut rng);
        let mut traffic = Traffic::new(300, 10);
        let msg = Message { origin: 3, at: 0, bytes: 100, validate_us: 0 };
        let mut spreader = Spreader::default();
        let got = spreader.spread(&topo, &net, msg, &mut rng, &mut traffic).iter().filter(|t| **t != NEVER).count();
        assert!(got >= 297, "30 % loss: IHAVE/IWANT brings almost every node the message ({got}/300)");
        assert!(traffic.control_ids.iter().sum::<u64>() > 0);
        net.set_up(7, false);
        let accepted = spreader.spread(&topo, &net, msg, &mut rng, &mut traffic);
        assert_eq!(accepted[7], NEVER, "a node that is down gets nothing");
    }
}
