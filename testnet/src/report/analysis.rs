//! From records to numbers: the run's timeline ([`Run`]), fault windows, and the
//! [`ReportSummary`]. Pure: no I/O.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use super::censorship::{self, CensorSummary, TransactionSummary};
use super::fmt;
use super::lies::{self, LieSummary};
use super::stats::{RequestStats, p50_p99_max};
use crate::record::{
    CordonChange, FaultAction, FaultEvent, GossipDelivery, LabelChange, Meta, Outcome, Record, Request,
    SentTransaction, ViewChange, base_kind,
};

/// How far back before an injection a gateway's correct answers from the faulty node count as
/// "the gateway was using it" (besides its last correct answer before the injection), ms.
pub const USING_LOOKBACK_MS: u64 = 5_000;

/// A node marked non-healthy this long after a fault on it was healed is still put down to that
/// fault (judgements lag), not counted as a false alarm, ms.
pub const FALSE_ALARM_GRACE_MS: u64 = 5_000;

/// What [`Detection::health`] says when a censoring node was detected by its `filters` label.
pub const FILTERS_LABEL: &str = "filters";

/// What [`Detection::health`] says when a lying node was detected by a cordon.
pub const CORDONED: &str = "cordoned";

/// At most this many wrong answers are listed in `report.md` (all are in the summary).
pub const MAX_LISTED_WRONG: usize = 50;

/// Fault kinds that are a state of the node's backend: a backend holds one at a time, so
/// injecting one replaces the previous one on the same node.
const BACKEND_KINDS: [&str; 7] = ["down", "freeze", "slow", "errors", "stale", "lie", "censor"];

/// Headline numbers of a run: what `report.md` shows, for programs.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ReportSummary {
    /// The last `meta` record, if any.
    pub meta: Option<Meta>,
    /// The run was stopped early: the data is partial.
    pub interrupted: bool,
    /// Length of the run: the `meta` duration or the last recorded time (a request's send time),
    /// whichever is later, ms.
    pub duration_ms: u64,
    /// Records the report was computed from.
    pub records: usize,
    /// Lines of the records file that could not be parsed (0 when given records directly).
    pub malformed_lines: usize,
    /// All requests.
    pub overall: RequestStats,
    /// Per phase, in time order (one phase named `run` if the records have none).
    pub phases: Vec<PhaseSummary>,
    /// Per gateway node.
    pub gateways: Vec<GatewaySummary>,
    /// Per injected fault, in injection order.
    pub faults: Vec<FaultSummary>,
    /// Gossip delivery and convergence.
    pub gossip: GossipSummary,
    /// View changes recorded.
    pub view_changes: usize,
    /// Changes from healthy to not healthy with no fault on the subject at the time (nor within
    /// [`FALSE_ALARM_GRACE_MS`] after one).
    pub false_alarms: Vec<ViewChange>,
    /// Every wrong answer, in time order.
    pub wrong_answers: Vec<Request>,
    /// Wrong answers to requests sent while no fault was open.
    pub wrong_outside_faults: u64,
    /// Failed requests grouped by detail, most frequent first (at most 10).
    pub top_errors: Vec<ErrorCount>,
    /// Per lying fault (`lie`, `lie=KIND,…`), in injection order.
    pub lies: Vec<LieSummary>,
    /// Per censoring fault (`censor=ADDRESS`), in injection order.
    pub censorship: Vec<CensorSummary>,
    /// Transactions the load sent, per recipient: one row per gateway, then the total.
    pub transactions: Vec<TransactionSummary>,
    /// Plain sentences read off the numbers ("What this shows"): one entry per topic (overall,
    /// each fault, phases, gossip, false alarms), in that order.
    pub findings: Vec<String>,
}

/// Requests of one phase.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PhaseSummary {
    /// Phase name.
    pub name: String,
    /// Start, ms since the scenario start.
    pub start_ms: u64,
    /// End, ms since the scenario start.
    pub end_ms: u64,
    /// Requests sent during the phase.
    pub stats: RequestStats,
}

/// Requests through one gateway.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GatewaySummary {
    /// Gateway node.
    pub gateway: usize,
    /// Requests over HTTP.
    pub http: u64,
    /// Requests over WebSocket.
    pub ws: u64,
    /// All its requests.
    pub stats: RequestStats,
}

/// What happened around one injected fault.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FaultSummary {
    /// Kind as written (`down`, `slow=200ms`, `partition 0,1:2`).
    pub kind: String,
    /// Faulty node; `None` for a partition.
    pub node: Option<usize>,
    /// Injection time, ms since the start.
    pub injected_at_ms: u64,
    /// Heal time, if a heal was recorded.
    pub healed_at_ms: Option<u64>,
    /// End of the fault window: the heal, a replacing fault, or the end of the run.
    pub end_ms: u64,
    /// First judgement "not healthy" of the faulty node (for a partition: of a node across it)
    /// during the window, by any observer.
    pub detection: Option<Detection>,
    /// Distinct observers that judged it not healthy during the window.
    pub observers_detecting: usize,
    /// The gateways that were using the faulty node just before the injection, and when each got
    /// a correct answer from another node.
    pub routing: Vec<GatewayRouting>,
    /// The longest time any gateway went without a correct answer inside the window.
    pub longest_stall: Option<Stall>,
    /// Requests sent during the window.
    pub stats: RequestStats,
    /// Requests sent during the window that the faulty node served (from the gateway's side of a
    /// partition: a node across it).
    pub served_by_faulty: u64,
}

impl FaultSummary {
    /// Time to route around: `None` if no gateway was using the faulty node; `Some(None)` if at
    /// least one of them never got a correct answer from another node during the fault;
    /// otherwise the slowest gateway's time, ms.
    pub fn route_around_ms(&self) -> Option<Option<u64>> {
        if self.routing.is_empty() {
            return None;
        }
        Some(self.routing.iter().map(|g| g.after_ms).try_fold(0, |worst, after| after.map(|a| a.max(worst))))
    }

    /// Length of the fault window, ms.
    pub fn window_ms(&self) -> u64 {
        self.end_ms.saturating_sub(self.injected_at_ms)
    }

    /// `partition 0,1:2` or `down on node 3`, for prose.
    pub fn label(&self) -> String {
        match self.node {
            Some(n) => format!("`{}` on node {n}", self.kind),
            None => format!("`{}`", self.kind),
        }
    }
}

/// First detection of a fault.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Detection {
    /// Injection → view change, ms.
    pub after_ms: u64,
    /// Node that noticed.
    pub observer: usize,
    /// Node it judged.
    pub subject: usize,
    /// Its judgement.
    pub health: String,
}

/// How one gateway that was using a faulty node fared.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GatewayRouting {
    /// Gateway node.
    pub gateway: usize,
    /// Injection → completion of its first request (sent after the injection) answered correctly
    /// by another node, ms; `None` if that did not happen during the fault.
    pub after_ms: Option<u64>,
}

/// Longest time a gateway went without a correct answer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stall {
    /// Length, ms.
    pub ms: u64,
    /// Gateway node.
    pub gateway: usize,
}

/// Gossip delivery and convergence.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct GossipSummary {
    /// Deliveries recorded (observer ≠ publisher).
    pub deliveries: u64,
    /// Distinct messages `(publisher, seq)`.
    pub messages: u64,
    /// Nodes that should receive each message (all but the publisher).
    pub expected_observers: usize,
    /// Messages accepted by every expected observer.
    pub fully_delivered: u64,
    /// Messages some observer's polls may have missed (it showed a newer one of the same
    /// publisher instead): left out of the convergence figures.
    pub hidden: u64,
    /// Median publish → accepted delay over all deliveries, ms.
    pub delivery_p50_ms: Option<u64>,
    /// 99th percentile of the same, ms.
    pub delivery_p99_ms: Option<u64>,
    /// Slowest delivery, ms.
    pub delivery_max_ms: Option<u64>,
    /// Median time until a message had reached every expected observer, over all messages but
    /// the hidden ones; `None` if no messages or if the rank falls on a message that never
    /// reached all.
    pub convergence_p50_ms: Option<u64>,
    /// 99th percentile of the same.
    pub convergence_p99_ms: Option<u64>,
    /// Per observer.
    pub per_observer: Vec<ObserverGossip>,
}

/// Gossip as one node received it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ObserverGossip {
    /// The observer.
    pub observer: usize,
    /// Messages it accepted.
    pub deliveries: u64,
    /// Messages published by others that it never accepted.
    pub missed: u64,
    /// Median delay, ms.
    pub p50_ms: Option<u64>,
    /// 99th percentile delay, ms.
    pub p99_ms: Option<u64>,
    /// Slowest, ms.
    pub max_ms: Option<u64>,
}

/// Failed requests with one detail.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ErrorCount {
    /// Error message (`(no detail)` if none).
    pub detail: String,
    /// How many.
    pub count: u64,
}

/// A fault from its injection to its end.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Window {
    pub kind: String,
    pub node: Option<usize>,
    pub start_ms: u64,
    pub heal_ms: Option<u64>,
    pub end_ms: u64,
    /// Sides of a partition (`partition 0,1,2:3,4`), if it is one and parses.
    pub groups: Option<Vec<Vec<usize>>>,
}

impl Window {
    fn base(&self) -> &str {
        base_kind(&self.kind)
    }

    fn is_partition(&self) -> bool {
        self.node.is_none() && self.base() == "partition"
    }

    /// Whether `subject` is faulty as seen from `observer` (the same node for every observer,
    /// or for a partition the nodes on the other side).
    pub fn affects(&self, observer: usize, subject: usize) -> bool {
        match (self.node, &self.groups) {
            (Some(n), _) => subject == n,
            (None, Some(groups)) => {
                let side = |x: usize| groups.iter().position(|g| g.contains(&x));
                matches!((side(observer), side(subject)), (Some(a), Some(b)) if a != b)
            }
            (None, None) => false,
        }
    }

    fn contains(&self, t_ms: u64) -> bool {
        self.start_ms <= t_ms && t_ms < self.end_ms
    }
}

/// Parses `partition 0,1,2:3,4` into its sides.
fn partition_groups(kind: &str) -> Option<Vec<Vec<usize>>> {
    let rest = kind.trim().strip_prefix("partition")?.trim();
    let rest = rest.strip_prefix('=').unwrap_or(rest).trim();
    let groups = rest
        .split(['|', ':'])
        .map(|side| side.split(',').map(|n| n.trim().parse::<usize>().ok()).collect::<Option<Vec<_>>>())
        .collect::<Option<Vec<_>>>()?;
    (groups.len() >= 2 && groups.iter().all(|g| !g.is_empty())).then_some(groups)
}

fn is_backend(base: &str) -> bool {
    BACKEND_KINDS.contains(&base)
}

/// Turns fault events into windows (see the rules in [`crate::record`]).
pub(crate) fn fault_windows(events: &[&FaultEvent], run_end_ms: u64) -> Vec<Window> {
    let mut windows: Vec<Window> = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    for e in events {
        let base = e.base_kind();
        match e.action {
            FaultAction::Inject => {
                open.retain(|&i| {
                    let w = &mut windows[i];
                    let replaced = match (w.node, e.node) {
                        (Some(a), Some(b)) => {
                            a == b && (w.base() == base || (is_backend(w.base()) && is_backend(base)))
                        }
                        (None, None) => w.is_partition() && base == "partition",
                        _ => false,
                    };
                    if replaced {
                        w.end_ms = e.t_ms;
                    }
                    !replaced
                });
                windows.push(Window {
                    kind: e.kind.trim().to_string(),
                    node: e.node,
                    start_ms: e.t_ms,
                    heal_ms: None,
                    end_ms: run_end_ms.max(e.t_ms),
                    groups: if e.node.is_none() { partition_groups(&e.kind) } else { None },
                });
                open.push(windows.len() - 1);
            }
            FaultAction::Heal => {
                let heals_everything = matches!(base, "" | "heal" | "all");
                open.retain(|&i| {
                    let w = &mut windows[i];
                    let healed = match e.node {
                        Some(n) => {
                            w.node == Some(n)
                                && (heals_everything || w.base() == base || (is_backend(w.base()) && is_backend(base)))
                        }
                        None if base == "partition" => w.is_partition(),
                        None => true,
                    };
                    if healed {
                        w.heal_ms = Some(e.t_ms);
                        w.end_ms = e.t_ms.max(w.start_ms);
                    }
                    !healed
                });
            }
        }
    }
    windows
}

/// The records, sorted and indexed.
pub(crate) struct Run<'a> {
    pub meta: Option<&'a Meta>,
    pub nodes: usize,
    pub duration_ms: u64,
    /// Phases as (name, start, end).
    pub phases: Vec<(String, u64, u64)>,
    /// Requests by send time.
    pub requests: Vec<&'a Request>,
    /// Fault events by time.
    pub faults: Vec<&'a FaultEvent>,
    pub windows: Vec<Window>,
    /// View changes by time.
    pub views: Vec<&'a ViewChange>,
    /// Gossip records by time.
    pub gossip: Vec<&'a GossipDelivery>,
    /// `filters` label changes by time.
    pub labels: Vec<&'a LabelChange>,
    /// Cordon changes by time.
    pub cordons: Vec<&'a CordonChange>,
    /// Transactions the load sent, by send time.
    pub transactions: Vec<&'a SentTransaction>,
    pub records: usize,
}

impl<'a> Run<'a> {
    pub fn new(records: &'a [Record]) -> Self {
        let mut meta = None;
        let mut phases = Vec::new();
        let mut requests = Vec::new();
        let mut faults = Vec::new();
        let mut views = Vec::new();
        let mut gossip = Vec::new();
        let mut labels = Vec::new();
        let mut cordons = Vec::new();
        let mut transactions = Vec::new();
        let mut last_ms = 0u64;
        let mut max_node = None::<usize>;
        let mut see = |n: usize| max_node = Some(max_node.map_or(n, |m: usize| m.max(n)));
        for record in records {
            match record {
                Record::Meta(m) => meta = Some(m),
                Record::Phase(p) => phases.push(p),
                Record::Request(r) => {
                    see(r.gateway);
                    r.served_by_node.into_iter().for_each(&mut see);
                    requests.push(r);
                }
                Record::Fault(f) => {
                    f.node.into_iter().for_each(&mut see);
                    faults.push(f);
                }
                Record::View(v) => {
                    see(v.observer);
                    see(v.subject);
                    views.push(v);
                }
                Record::Gossip(g) => {
                    see(g.publisher);
                    see(g.observer);
                    gossip.push(g);
                }
                Record::Label(l) => {
                    see(l.observer);
                    see(l.subject);
                    labels.push(l);
                }
                Record::Cordon(c) => {
                    see(c.observer);
                    see(c.subject);
                    cordons.push(c);
                }
                Record::Transaction(t) => {
                    see(t.gateway);
                    transactions.push(t);
                }
            }
            if let Some(t) = record.t_ms() {
                last_ms = last_ms.max(t);
            }
        }
        let duration_ms = meta.map_or(0, |m| m.duration_ms).max(last_ms);
        let nodes = meta.map_or(0, |m| m.nodes).max(max_node.map_or(0, |m| m + 1));
        requests.sort_by_key(|r| r.t_ms);
        faults.sort_by_key(|f| f.t_ms);
        views.sort_by_key(|v| v.t_ms);
        gossip.sort_by_key(|g| g.t_ms);
        labels.sort_by_key(|l| l.t_ms);
        cordons.sort_by_key(|c| c.t_ms);
        transactions.sort_by_key(|t| t.t_ms);
        phases.sort_by_key(|p| p.t_ms);
        let phases = if phases.is_empty() {
            vec![("run".to_string(), 0, duration_ms)]
        } else {
            (0..phases.len())
                .map(|i| {
                    let start = if i == 0 { 0 } else { phases[i].t_ms };
                    let end = phases.get(i + 1).map_or(duration_ms, |p| p.t_ms);
                    (phases[i].name.clone(), start, end.max(start))
                })
                .collect()
        };
        let windows = fault_windows(&faults, duration_ms);
        Run {
            meta,
            nodes,
            duration_ms,
            phases,
            requests,
            faults,
            windows,
            views,
            gossip,
            labels,
            cordons,
            transactions,
            records: records.len(),
        }
    }

    /// Which node served a request: `served_by_node`, else its PeerId looked up in the meta.
    pub fn served_node(&self, r: &Request) -> Option<usize> {
        r.served_by_node.or_else(|| {
            let peer = r.served_by.as_deref()?;
            self.meta?.node_peer_ids.iter().position(|p| p == peer)
        })
    }

    pub fn interrupted(&self) -> bool {
        self.meta.is_some_and(|m| m.interrupted)
    }

    /// Index of the phase a time falls in.
    pub fn phase_of(&self, t_ms: u64) -> usize {
        self.phases.iter().rposition(|(_, start, _)| *start <= t_ms).unwrap_or(0)
    }
}

/// Computes the summary of a run. `malformed_lines` is only reported.
pub(crate) fn summarize(run: &Run<'_>, malformed_lines: usize) -> ReportSummary {
    let overall = RequestStats::of(run.requests.iter().copied());
    let phases = run
        .phases
        .iter()
        .enumerate()
        .map(|(i, (name, start, end))| PhaseSummary {
            name: name.clone(),
            start_ms: *start,
            end_ms: *end,
            stats: RequestStats::of(run.requests.iter().copied().filter(|r| run.phase_of(r.t_ms) == i)),
        })
        .collect();

    let mut by_gateway: BTreeMap<usize, Vec<&Request>> = BTreeMap::new();
    for r in &run.requests {
        by_gateway.entry(r.gateway).or_default().push(r);
    }
    let gateways = by_gateway
        .iter()
        .map(|(&gateway, rs)| {
            let ws = rs.iter().filter(|r| r.transport == crate::record::Transport::Ws).count() as u64;
            GatewaySummary { gateway, http: rs.len() as u64 - ws, ws, stats: RequestStats::of(rs.iter().copied()) }
        })
        .collect();

    let faults: Vec<FaultSummary> = run.windows.iter().map(|w| fault_summary(run, w, &by_gateway)).collect();

    let wrong_answers: Vec<Request> =
        run.requests.iter().filter(|r| r.outcome == Outcome::Wrong).map(|r| (*r).clone()).collect();
    let wrong_outside_faults =
        wrong_answers.iter().filter(|r| !run.windows.iter().any(|w| w.contains(r.t_ms))).count() as u64;

    let mut errors: HashMap<&str, u64> = HashMap::new();
    for r in run.requests.iter().filter(|r| r.outcome == Outcome::Error) {
        *errors.entry(r.detail.as_deref().unwrap_or("(no detail)")).or_default() += 1;
    }
    let mut top_errors: Vec<ErrorCount> =
        errors.into_iter().map(|(detail, count)| ErrorCount { detail: detail.to_string(), count }).collect();
    top_errors.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.detail.cmp(&b.detail)));
    top_errors.truncate(10);

    let mut summary = ReportSummary {
        meta: run.meta.cloned(),
        interrupted: run.interrupted(),
        duration_ms: run.duration_ms,
        records: run.records,
        malformed_lines,
        overall,
        phases,
        gateways,
        faults,
        gossip: gossip_summary(run),
        view_changes: run.views.len(),
        false_alarms: false_alarms(run),
        wrong_answers,
        wrong_outside_faults,
        top_errors,
        lies: lies::lie_summaries(run),
        censorship: censorship::censor_summaries(run),
        transactions: censorship::transaction_summaries(run),
        findings: Vec::new(),
    };
    summary.findings = findings(run, &summary);
    summary
}

fn fault_summary(run: &Run<'_>, w: &Window, by_gateway: &BTreeMap<usize, Vec<&Request>>) -> FaultSummary {
    let (start_us, end_us) = (w.start_ms * 1000, w.end_ms * 1000);

    let mut detection = None;
    let mut observers = BTreeSet::new();
    if w.base() == "censor" {
        // A censoring node stays healthy: it is detected when a daemon labels it `filters`.
        for l in run.labels.iter().filter(|l| l.labelled && w.contains(l.t_ms) && w.affects(l.observer, l.subject)) {
            observers.insert(l.observer);
            detection.get_or_insert_with(|| Detection {
                after_ms: l.t_ms - w.start_ms,
                observer: l.observer,
                subject: l.subject,
                health: FILTERS_LABEL.into(),
            });
        }
    }
    if w.base() == "lie" {
        // A lying node's head stays honest, so it stays healthy: it is detected when a daemon
        // cordons it on verified evidence.
        for c in run.cordons.iter().filter(|c| c.cordoned && w.contains(c.t_ms) && w.affects(c.observer, c.subject)) {
            observers.insert(c.observer);
            detection.get_or_insert_with(|| Detection {
                after_ms: c.t_ms - w.start_ms,
                observer: c.observer,
                subject: c.subject,
                health: CORDONED.into(),
            });
        }
    }
    for v in run.views.iter().filter(|v| w.contains(v.t_ms) && !v.is_healthy() && w.affects(v.observer, v.subject)) {
        observers.insert(v.observer);
        detection.get_or_insert_with(|| Detection {
            after_ms: v.t_ms - w.start_ms,
            observer: v.observer,
            subject: v.subject,
            health: v.health.clone(),
        });
    }

    let mut routing = Vec::new();
    let mut longest_stall: Option<Stall> = None;
    for (&gateway, rs) in by_gateway {
        let served_by_faulty = |r: &Request| run.served_node(r).is_some_and(|n| w.affects(gateway, n));
        let ok = |r: &&&Request| r.outcome == Outcome::Ok;
        let before = rs.iter().filter(|r| r.t_ms < w.start_ms).filter(ok);
        let last_ok_before = before.clone().next_back();
        let was_using = last_ok_before.is_some_and(|r| served_by_faulty(r))
            || before.filter(|r| r.t_ms + USING_LOOKBACK_MS >= w.start_ms).any(|r| served_by_faulty(r));
        if was_using {
            let first_elsewhere = rs
                .iter()
                .filter(|r| w.contains(r.t_ms))
                .filter(ok)
                .filter(|r| run.served_node(r).is_some_and(|n| !w.affects(gateway, n)))
                .map(|r| r.end_us())
                .min();
            routing.push(GatewayRouting { gateway, after_ms: first_elsewhere.map(|e| (e - start_us) / 1000) });
        }

        if rs.iter().any(|r| w.contains(r.t_ms)) {
            let mut points: Vec<u64> =
                rs.iter().filter(ok).map(|r| r.end_us()).filter(|&e| e > start_us && e <= end_us).collect();
            points.sort_unstable();
            points.insert(0, start_us);
            points.push(end_us);
            let gap_ms = points.windows(2).map(|p| p[1] - p[0]).max().unwrap_or(0) / 1000;
            if longest_stall.as_ref().is_none_or(|s| gap_ms > s.ms) {
                longest_stall = Some(Stall { ms: gap_ms, gateway });
            }
        }
    }

    let during: Vec<&Request> = run.requests.iter().copied().filter(|r| w.contains(r.t_ms)).collect();
    let served_by_faulty =
        during.iter().filter(|r| run.served_node(r).is_some_and(|n| w.affects(r.gateway, n))).count() as u64;
    FaultSummary {
        kind: w.kind.clone(),
        node: w.node,
        injected_at_ms: w.start_ms,
        healed_at_ms: w.heal_ms,
        end_ms: w.end_ms,
        detection,
        observers_detecting: observers.len(),
        routing,
        longest_stall,
        stats: RequestStats::of(during.iter().copied()),
        served_by_faulty,
    }
}

fn gossip_summary(run: &Run<'_>) -> GossipSummary {
    let expected_observers = run.nodes.saturating_sub(1);
    // (publisher, seq) → observer → first delay.
    let mut messages: BTreeMap<(usize, u64), BTreeMap<usize, u64>> = BTreeMap::new();
    let mut per_observer: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    let mut delays = Vec::new();
    for g in &run.gossip {
        let seen = messages.entry((g.publisher, g.seq)).or_default();
        if g.observer == g.publisher || seen.contains_key(&g.observer) {
            continue;
        }
        seen.insert(g.observer, g.delay_ms);
        per_observer.entry(g.observer).or_default().push(g.delay_ms);
        delays.push(g.delay_ms);
    }
    // One definition (crate::measure): a message some node never accepted is infinitely slow;
    // one a node's polls missed because a newer one of its publisher replaced it is left out.
    let mut polled = crate::measure::Polled::default();
    for g in &run.gossip {
        polled.saw(g.observer, g.publisher, g.seq, Some(g.delay_ms));
    }
    let (convergence, hidden) = polled.convergence(run.nodes);
    let (delivery_p50_ms, delivery_p99_ms, delivery_max_ms) = p50_p99_max(delays.clone());
    let observers: BTreeSet<usize> = (0..run.nodes).chain(per_observer.keys().copied()).collect();
    let per_observer = if messages.is_empty() {
        Vec::new()
    } else {
        observers
            .into_iter()
            .map(|observer| {
                let got = per_observer.get(&observer).cloned().unwrap_or_default();
                let expected = messages.keys().filter(|(publisher, _)| *publisher != observer).count() as u64;
                let deliveries = got.len() as u64;
                let (p50_ms, p99_ms, max_ms) = p50_p99_max(got);
                ObserverGossip {
                    observer,
                    deliveries,
                    missed: expected.saturating_sub(deliveries),
                    p50_ms,
                    p99_ms,
                    max_ms,
                }
            })
            .collect()
    };
    GossipSummary {
        deliveries: delays.len() as u64,
        messages: messages.len() as u64,
        expected_observers,
        fully_delivered: convergence.converged,
        hidden,
        delivery_p50_ms,
        delivery_p99_ms,
        delivery_max_ms,
        convergence_p50_ms: convergence.percentile(50.0).value(),
        convergence_p99_ms: convergence.percentile(99.0).value(),
        per_observer,
    }
}

fn false_alarms(run: &Run<'_>) -> Vec<ViewChange> {
    let mut state: HashMap<(usize, usize), &str> = HashMap::new();
    let mut alarms = Vec::new();
    for v in &run.views {
        let before = state.insert((v.observer, v.subject), v.health.as_str());
        let explained = run.windows.iter().any(|w| {
            w.affects(v.observer, v.subject)
                && w.start_ms <= v.t_ms
                && v.t_ms < w.end_ms.saturating_add(FALSE_ALARM_GRACE_MS)
        });
        if before == Some(crate::record::HEALTHY) && !v.is_healthy() && !explained {
            alarms.push((*v).clone());
        }
    }
    alarms
}

/// The "What this shows" sentences: plain readings of the numbers, bad news included.
fn findings(run: &Run<'_>, s: &ReportSummary) -> Vec<String> {
    let mut out = Vec::new();
    if s.interrupted {
        out.push(format!(
            "The run was interrupted after {}: every number here covers only that part.",
            fmt::secs(s.duration_ms)
        ));
    }
    let o = &s.overall;
    if o.requests == 0 {
        out.push("No client requests were recorded, so availability and latency are not measured.".into());
    } else {
        out.push(format!(
            "{}: {} answered correctly, {} failed, {} wrong; p99 latency {} ms.",
            fmt::plural(o.requests, "request", "requests"),
            fmt::percent(o.ok, o.requests),
            o.error,
            o.wrong,
            fmt::opt_latency_ms(o.p99_us)
        ));
    }

    // One paragraph per fault.
    out.extend(s.faults.iter().map(|f| fault_findings(run, f, &s.censorship, &s.lies).join(" ")));
    out.extend(s.transactions.iter().filter(|t| t.gateway.is_none()).map(censorship::transaction_sentence));

    if s.wrong_outside_faults > 0 {
        let mut servers: Vec<usize> = s
            .wrong_answers
            .iter()
            .filter(|r| !run.windows.iter().any(|w| w.contains(r.t_ms)))
            .filter_map(|r| run.served_node(r))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        servers.sort_unstable();
        let by = if servers.is_empty() { String::new() } else { format!(" (served by node {})", fmt::list(&servers)) };
        out.push(format!(
            "{} served while no fault was injected{by}.",
            fmt::plural(s.wrong_outside_faults, "wrong answer was", "wrong answers were"),
        ));
    }

    if let Some(first) = s.phases.first().filter(|p| p.stats.requests > 0 && s.phases.len() > 1) {
        for p in s.phases.iter().skip(1).filter(|p| p.stats.requests > 0) {
            let worse_availability = p.stats.ok * first.stats.requests < first.stats.ok * p.stats.requests;
            let p99_ratio = match (p.stats.p99_us, first.stats.p99_us) {
                (Some(a), Some(b)) if b > 0 => a as f64 / b as f64,
                _ => 1.0,
            };
            if worse_availability || p99_ratio >= 2.0 {
                out.push(format!(
                    "In phase '{}' availability was {} and p99 latency {} ms, against {} and {} ms in '{}'.",
                    p.name,
                    fmt::percent(p.stats.ok, p.stats.requests),
                    fmt::opt_latency_ms(p.stats.p99_us),
                    fmt::percent(first.stats.ok, first.stats.requests),
                    fmt::opt_latency_ms(first.stats.p99_us),
                    first.name
                ));
            }
        }
    }

    let g = &s.gossip;
    if g.messages == 0 {
        out.push("No gossip deliveries were recorded, so gossip convergence is not measured.".into());
    } else {
        let mut line = format!(
            "Gossip: {} of {} reached all {} other nodes",
            g.fully_delivered,
            fmt::plural(g.messages, "message", "messages"),
            g.expected_observers
        );
        match (g.convergence_p50_ms, g.convergence_p99_ms) {
            (Some(p50), Some(p99)) => {
                line +=
                    &format!("; half were everywhere within {}, 99% within {}.", fmt::duration(p50), fmt::duration(p99))
            }
            (Some(p50), None) => {
                line += &format!("; half were everywhere within {}, but more than 1% never were.", fmt::duration(p50))
            }
            _ => line += "; fewer than half of them ever reached every node.",
        }
        out.push(line);
    }

    if let Some(first) = s.false_alarms.first() {
        out.push(format!(
            "Nodes were marked not healthy {} with no fault on them (first: node {} marked node {} `{}` at {}).",
            fmt::plural(s.false_alarms.len() as u64, "time", "times"),
            first.observer,
            first.subject,
            first.health,
            fmt::secs(first.t_ms)
        ));
    }
    if s.malformed_lines > 0 {
        out.push(format!(
            "{} of the records file could not be read and {} skipped.",
            fmt::plural(s.malformed_lines as u64, "line", "lines"),
            if s.malformed_lines == 1 { "was" } else { "were" }
        ));
    }
    out
}

fn fault_findings(run: &Run<'_>, f: &FaultSummary, censors: &[CensorSummary], liars: &[LieSummary]) -> Vec<String> {
    let mut out = Vec::new();
    let until = match f.healed_at_ms {
        Some(h) => fmt::secs(h),
        None if f.end_ms < run.duration_ms => format!("{} (replaced)", fmt::secs(f.end_ms)),
        None => "the end of the run".to_string(),
    };
    let label = format!("{} ({} → {})", f.label(), fmt::secs(f.injected_at_ms), until);
    let target = match f.node {
        Some(n) => format!("node {n}"),
        None => "a node across the partition".to_string(),
    };
    if f.node.is_none() && !partition_parsed(run, f) {
        out.push(format!("{label}: this fault names no node, so detection and routing are not measured."));
    } else {
        let mut sentences = detection_and_routing(f, &label, &target);
        if base_kind(&f.kind) == "censor" {
            // Its labels are told in the censorship sentences below; keep the label and routing.
            // (A lie's detection is its first cordon, told here like any detection.)
            sentences[0] = format!("{label}:");
        }
        out.extend(sentences);
    }

    let st = &f.stats;
    if st.requests == 0 {
        out.push("No requests were sent during the fault.".into());
    } else {
        let stall = f
            .longest_stall
            .as_ref()
            .map(|s| {
                format!(
                    "; the longest time without a correct answer was {} (gateway {})",
                    fmt::duration(s.ms),
                    s.gateway
                )
            })
            .unwrap_or_default();
        out.push(format!(
            "During the fault {} sent: {} failed, {} wrong, {} served by {target}{stall}.",
            fmt::plural(st.requests, "request was", "requests were"),
            st.error,
            st.wrong,
            f.served_by_faulty
        ));
    }

    let node = f.node.map_or_else(|| "the faulty node".to_string(), |n| format!("node {n}"));
    let backend = run.meta.map_or("", |m| m.backend.as_str());
    let liar = liars.iter().find(|l| Some(l.node) == f.node && l.injected_at_ms == f.injected_at_ms);
    match base_kind(&f.kind) {
        // A `lie` fault always names its node, so it always has a summary.
        "lie" => out.extend(liar.map(|l| lies::lie_sentences(l, backend)).unwrap_or_default()),
        "censor" => {
            let censor = censors.iter().find(|c| Some(c.node) == f.node && c.injected_at_ms == f.injected_at_ms);
            match censor {
                Some(c) => out.extend(censorship::censor_sentences(c, backend)),
                None if st.wrong > 0 => out.push(format!(
                    "{} served while {node} censored.",
                    fmt::plural(st.wrong, "wrong answer was", "wrong answers were")
                )),
                None => {}
            }
        }
        _ if st.wrong > 0 => {
            let mut line =
                format!("{} served during this fault", fmt::plural(st.wrong, "wrong answer was", "wrong answers were"));
            // Faults overlap: wrong answers during an outage elsewhere may be a liar's, told in
            // its own paragraph.
            if let Some(liars) = liars_behind(run, f) {
                line += &format!(", all of them while node {} lied (see that fault)", fmt::list(&liars));
            }
            out.push(line + ".");
        }
        _ => {}
    }
    out
}

/// The nodes that were lying when the wrong answers of a (non-lie) fault's window were sent, if
/// every one of those answers was sent while some node lied; `None` otherwise.
fn liars_behind(run: &Run<'_>, f: &FaultSummary) -> Option<Vec<usize>> {
    let lies: Vec<&Window> = run.windows.iter().filter(|w| w.base() == "lie" && w.node.is_some()).collect();
    let mut liars = BTreeSet::new();
    let wrong =
        run.requests.iter().filter(|r| r.outcome == Outcome::Wrong && f.injected_at_ms <= r.t_ms && r.t_ms < f.end_ms);
    for r in wrong {
        let lying: Vec<usize> = lies.iter().filter(|w| w.contains(r.t_ms)).filter_map(|w| w.node).collect();
        if lying.is_empty() {
            return None;
        }
        liars.extend(lying);
    }
    (!liars.is_empty()).then(|| liars.into_iter().collect())
}

/// Sentences on detection of a fault on `target` and on routing around it.
fn detection_and_routing(f: &FaultSummary, label: &str, target: &str) -> Vec<String> {
    let mut out = Vec::new();
    match &f.detection {
        Some(d) => out.push(format!(
            "{label}: first marked `{}` by node {} after {}; {} noticed during the fault.",
            d.health,
            d.observer,
            fmt::duration(d.after_ms),
            fmt::plural(f.observers_detecting as u64, "node", "nodes")
        )),
        None => out.push(format!(
            "{label}: no node marked {target} as not healthy while the fault lasted ({}): rpcmesh did not detect this fault.",
            fmt::duration(f.window_ms())
        )),
    }

    let routed: Vec<usize> = f.routing.iter().filter(|g| g.after_ms.is_some()).map(|g| g.gateway).collect();
    let never: Vec<usize> = f.routing.iter().filter(|g| g.after_ms.is_none()).map(|g| g.gateway).collect();
    let gw = |list: &[usize]| format!("{} {}", if list.len() == 1 { "Gateway" } else { "Gateways" }, fmt::list(list));
    let worst_routed = f.routing.iter().filter_map(|g| g.after_ms).max();
    if f.routing.is_empty() {
        out.push(format!(
            "No gateway was being served by {target} just before the fault, so routing around it is not measured."
        ));
    } else if never.is_empty() {
        out.push(format!(
            "{} that used {target} got a correct answer from another node after at most {}.",
            gw(&routed),
            fmt::duration(worst_routed.unwrap_or(0))
        ));
    } else {
        let mut line =
            format!("{} that used {target} never got a correct answer from another node during the fault", gw(&never));
        if let Some(worst) = worst_routed {
            line += &format!(" ({} did, after at most {})", fmt::list(&routed), fmt::duration(worst));
        }
        out.push(line + ".");
    }

    out
}

fn partition_parsed(run: &Run<'_>, f: &FaultSummary) -> bool {
    run.windows.iter().any(|w| w.start_ms == f.injected_at_ms && w.kind == f.kind && w.groups.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(t_ms: u64, node: Option<usize>, kind: &str, action: FaultAction) -> FaultEvent {
        FaultEvent { t_ms, node, kind: kind.into(), action }
    }

    #[test]
    fn windows_heal_replace_and_run_end() {
        use FaultAction::*;
        let events = [
            ev(1000, Some(1), "slow=200ms", Inject),
            ev(2000, Some(1), "down", Inject), // replaces slow on the same backend
            ev(2500, Some(2), "restart", Inject),
            ev(3000, None, "partition 0,1:2,3", Inject),
            ev(4000, Some(1), "down", Heal),
            ev(5000, None, "partition 0,1:2,3", Heal),
            ev(6000, Some(3), "lie", Inject), // never healed
        ];
        let refs: Vec<&FaultEvent> = events.iter().collect();
        let w = fault_windows(&refs, 9000);
        let spans: Vec<(u64, Option<u64>, u64)> = w.iter().map(|w| (w.start_ms, w.heal_ms, w.end_ms)).collect();
        assert_eq!(
            spans,
            [
                (1000, None, 2000),
                (2000, Some(4000), 4000),
                (2500, None, 9000),
                (3000, Some(5000), 5000),
                (6000, None, 9000)
            ]
        );
        assert_eq!(w[3].groups, Some(vec![vec![0, 1], vec![2, 3]]));
        assert!(w[3].affects(0, 2) && w[3].affects(3, 1) && !w[3].affects(0, 1) && !w[3].affects(4, 0));
        assert!(w[1].affects(0, 1) && w[1].affects(1, 1) && !w[1].affects(1, 0));
    }

    #[test]
    fn heal_without_node_heals_everything() {
        use FaultAction::*;
        let events = [ev(0, Some(1), "down", Inject), ev(0, Some(2), "lie", Inject), ev(500, None, "heal", Heal)];
        let refs: Vec<&FaultEvent> = events.iter().collect();
        let w = fault_windows(&refs, 1000);
        assert!(w.iter().all(|w| w.heal_ms == Some(500) && w.end_ms == 500));
    }

    #[test]
    fn partition_kinds() {
        assert_eq!(partition_groups("partition 0,1,2:3,4"), Some(vec![vec![0, 1, 2], vec![3, 4]]));
        assert_eq!(partition_groups("partition=0|1"), Some(vec![vec![0], vec![1]]));
        assert_eq!(partition_groups("partition 0,1"), None);
        assert_eq!(partition_groups("partition x:1"), None);
        assert_eq!(partition_groups("down"), None);
    }
}
