//! Verified-answers figures of a run, read off the records alone: for each `lie` fault, the
//! wrong answers that reached clients (per gateway and verify mode, split by when they were sent
//! against the liar's detection), and how long it took the daemons to cordon the liar.
//!
//! Definitions (also printed in the report):
//! - *Cordoned after* is, per daemon, injection → the first poll of its `/peers` that showed a
//!   cordon on the lying node (0 if one was already showing then). The poll runs every 250 ms,
//!   so this is rounded up; the daemon's own start time of the cordon (`since_ms`, same machine
//!   clock) is shown beside it.
//! - *Detection* is the first daemon's cordon (any daemon, the liar's own included).
//! - *Mesh-wide cordon* is the slowest of the daemons **other than the liar's own**, or never
//!   if one of them never showed it. The liar's own daemon is left out because a cordon is how a
//!   daemon stops routing to a *peer*: its own node is not a peer, a daemon cannot sign evidence
//!   against it (evidence carries the accused's signed receipt of a relayed answer), and its
//!   router ignores a cordon on itself. What keeps its own clients safe is its own checks of its
//!   node's answers (every one in strict mode; in sample mode every one after the first that
//!   failed). Whether it shows a cordon on itself (from others' evidence) is reported per daemon.
//! - Wrong answers are counted among requests **sent** while the fault was open, and split by
//!   send time: *before detection* (sent before the first cordon was seen; all of them if it
//!   never was), and *after the mesh-wide cordon* (sent after the poll that showed the last
//!   cordon). A request sent before that instant and answered after it was *in flight* at the
//!   boundary: it was routed before every daemon knew, and is counted apart, not as after.
//!   Requests through the liar's own gateway are counted like the others but told apart: that
//!   daemon serves from its own node, to which no cordon applies.

use std::collections::BTreeMap;

use serde::Serialize;

use super::analysis::{Run, Window};
use super::fmt;
use crate::record::{Outcome, Request};

/// What happened around one `lie` fault.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LieSummary {
    /// The lying node.
    pub node: usize,
    /// The fault as written (`lie`, `lie=balance,storage`).
    pub kind: String,
    /// Injection time, ms since the start.
    pub injected_at_ms: u64,
    /// End of the fault window (heal, replacement or end of the run), ms since the start.
    pub end_ms: u64,
    /// Per daemon (the liar's own included), when it cordoned the liar.
    pub cordons: Vec<CordonTime>,
    /// Per gateway and verify mode, the requests sent while the fault was open.
    pub gateways: Vec<LieGateway>,
}

/// When one daemon cordoned a lying node.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CordonTime {
    /// The daemon whose `/peers` showed the cordon.
    pub observer: usize,
    /// Injection → first poll that showed it, ms; `None` if it never did during the fault.
    pub after_ms: Option<u64>,
    /// Injection → the cordon's start by the daemon's own clock, ms, when it began after the
    /// injection (`None` if unknown or earlier).
    pub began_after_ms: Option<u64>,
    /// Kind of lie proven, as first shown.
    pub kind: String,
    /// Node that signed the evidence behind it, if a node of the run.
    pub reporter: Option<usize>,
}

/// Requests through one gateway, with one verify mode, while a node lied.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LieGateway {
    /// Gateway node.
    pub gateway: usize,
    /// `x-rpcmesh-verify` the clients sent; `None`: none (the daemon's configured mode).
    pub verify: Option<String>,
    /// Requests sent while the fault was open.
    pub requests: u64,
    /// Of those, failed.
    pub failed: u64,
    /// Of those, wrong answers (they reached the client).
    pub wrong: u64,
    /// Wrong answers to requests sent before the first cordon was seen.
    pub wrong_before_detection: u64,
    /// Wrong answers to requests sent after the mesh-wide cordon was seen (0 if never).
    pub wrong_after_cordon: u64,
    /// Wrong answers to requests sent before the mesh-wide cordon and answered after it.
    pub wrong_in_flight: u64,
    /// Requests sent after the mesh-wide cordon (0 if never).
    pub requests_after_cordon: u64,
    /// Injection → the send time of the last wrong answer, ms; `None` without wrong answers.
    pub last_wrong_after_ms: Option<u64>,
    /// Requests the lying node served (as far as known: WebSocket answers do not say).
    pub served_by_liar: u64,
    /// Requests whose server is known (HTTP).
    pub served_known: u64,
}

impl LieSummary {
    /// The first cordon of the liar seen on any daemon.
    pub fn detection(&self) -> Option<&CordonTime> {
        self.cordons.iter().filter(|c| c.after_ms.is_some()).min_by_key(|c| (c.after_ms, c.observer))
    }

    /// Injection → the first cordon seen, ms.
    pub fn detected_ms(&self) -> Option<u64> {
        self.detection().and_then(|c| c.after_ms)
    }

    /// The daemons that count for the mesh-wide cordon: every one but the liar's own.
    pub fn others(&self) -> impl Iterator<Item = &CordonTime> {
        self.cordons.iter().filter(move |c| c.observer != self.node)
    }

    /// The liar's own daemon's view of itself, if it was polled.
    pub fn own(&self) -> Option<&CordonTime> {
        self.cordons.iter().find(|c| c.observer == self.node)
    }

    /// Injection → every other daemon showed the cordon (the slowest), ms; `None` if one never
    /// did, or there is no other daemon.
    pub fn cordoned_everywhere_ms(&self) -> Option<u64> {
        let mut others = self.others().peekable();
        others.peek()?;
        others.map(|c| c.after_ms).try_fold(0, |worst, t| t.map(|t| t.max(worst)))
    }

    /// The daemon whose cordon began first after the injection by its own clock (its
    /// [`CordonTime::began_after_ms`]): when the liar was first caught, without the poll's
    /// rounding.
    pub fn detected_began(&self) -> Option<&CordonTime> {
        self.cordons.iter().filter(|c| c.began_after_ms.is_some()).min_by_key(|c| (c.began_after_ms, c.observer))
    }

    /// [`Self::cordoned_everywhere_ms`] by the daemons' own clocks: the latest start of the
    /// other daemons' cordons, ms after the injection; `None` if one is unknown or never came.
    pub fn everywhere_began_ms(&self) -> Option<u64> {
        self.cordoned_everywhere_ms()?;
        self.others().map(|c| c.began_after_ms).try_fold(0, |worst, t| t.map(|t| t.max(worst)))
    }

    /// The daemons that cordoned the liar, its own included.
    pub fn cordoned_by(&self) -> Vec<usize> {
        self.cordons.iter().filter(|c| c.after_ms.is_some()).map(|c| c.observer).collect()
    }

    /// Sum of every gateway row.
    pub fn total(&self) -> LieGateway {
        Self::sum(self.gateways.iter())
    }

    /// Sum of the rows of every gateway but the liar's own.
    pub fn others_total(&self) -> LieGateway {
        Self::sum(self.gateways.iter().filter(|g| g.gateway != self.node))
    }

    /// Sum of the rows of the liar's own gateway (every verify mode).
    pub fn own_total(&self) -> LieGateway {
        Self::sum(self.gateways.iter().filter(|g| g.gateway == self.node))
    }

    fn sum<'a>(rows: impl Iterator<Item = &'a LieGateway>) -> LieGateway {
        let mut t = LieGateway::default();
        for g in rows {
            t.requests += g.requests;
            t.failed += g.failed;
            t.wrong += g.wrong;
            t.wrong_before_detection += g.wrong_before_detection;
            t.wrong_after_cordon += g.wrong_after_cordon;
            t.wrong_in_flight += g.wrong_in_flight;
            t.requests_after_cordon += g.requests_after_cordon;
            t.served_by_liar += g.served_by_liar;
            t.served_known += g.served_known;
            t.last_wrong_after_ms = t.last_wrong_after_ms.max(g.last_wrong_after_ms);
        }
        t
    }
}

/// One summary per `lie` fault on a node, in injection order.
pub(crate) fn lie_summaries(run: &Run<'_>) -> Vec<LieSummary> {
    run.windows
        .iter()
        .filter(|w| crate::record::base_kind(&w.kind) == "lie")
        .filter_map(|w| Some((w, w.node?)))
        .map(|(w, node)| lie_summary(run, w, node))
        .collect()
}

fn lie_summary(run: &Run<'_>, w: &Window, node: usize) -> LieSummary {
    let cordons: Vec<CordonTime> = (0..run.nodes).map(|observer| cordon_time(run, w, observer, node)).collect();
    let mut summary = LieSummary {
        node,
        kind: w.kind.clone(),
        injected_at_ms: w.start_ms,
        end_ms: w.end_ms,
        cordons,
        gateways: Vec::new(),
    };
    // Absolute instants of the first and the mesh-wide cordon, µs on the run's clock.
    let detected_us = summary.detected_ms().map(|ms| (w.start_ms + ms) * 1000);
    let everywhere_us = summary.cordoned_everywhere_ms().map(|ms| (w.start_ms + ms) * 1000);
    let mut rows: BTreeMap<(usize, Option<String>), LieGateway> = BTreeMap::new();
    for r in run.requests.iter().copied().filter(|r| w.start_ms <= r.t_ms && r.t_ms < w.end_ms) {
        let row = rows.entry((r.gateway, r.verify.clone())).or_insert_with(|| LieGateway {
            gateway: r.gateway,
            verify: r.verify.clone(),
            ..LieGateway::default()
        });
        count(row, run, r, w.start_ms, node, detected_us, everywhere_us);
    }
    summary.gateways = rows.into_values().collect();
    summary
}

fn count(
    row: &mut LieGateway,
    run: &Run<'_>,
    r: &Request,
    start_ms: u64,
    liar: usize,
    detected_us: Option<u64>,
    everywhere_us: Option<u64>,
) {
    let sent_us = r.t_ms * 1000;
    let after_cordon = everywhere_us.is_some_and(|e| sent_us >= e);
    row.requests += 1;
    row.requests_after_cordon += u64::from(after_cordon);
    row.failed += u64::from(r.outcome == Outcome::Error);
    if let Some(n) = run.served_node(r) {
        row.served_known += 1;
        row.served_by_liar += u64::from(n == liar);
    }
    if r.outcome != Outcome::Wrong {
        return;
    }
    row.wrong += 1;
    row.last_wrong_after_ms = row.last_wrong_after_ms.max(Some(r.t_ms - start_ms));
    row.wrong_before_detection += u64::from(detected_us.is_none_or(|d| sent_us < d));
    row.wrong_after_cordon += u64::from(after_cordon);
    row.wrong_in_flight += u64::from(everywhere_us.is_some_and(|e| sent_us < e && r.end_us() > e));
}

/// When `observer` first showed a cordon on `subject` during the window (on any chain); 0 if one
/// was already showing at the injection.
fn cordon_time(run: &Run<'_>, w: &Window, observer: usize, subject: usize) -> CordonTime {
    let mut showing: BTreeMap<u64, &crate::record::CordonChange> = BTreeMap::new();
    let mut first: Option<(u64, &crate::record::CordonChange)> = None;
    for c in run.cordons.iter().copied().filter(|c| c.observer == observer && c.subject == subject) {
        if c.t_ms >= w.end_ms {
            break;
        }
        if c.t_ms >= w.start_ms {
            if let Some(already) = showing.values().next() {
                first = Some((0, already));
                break;
            }
            if c.cordoned {
                first = Some((c.t_ms - w.start_ms, c));
                break;
            }
        }
        if c.cordoned {
            showing.insert(c.chain_id, c);
        } else {
            showing.remove(&c.chain_id);
        }
    }
    if first.is_none()
        && let Some(already) = showing.values().next()
    {
        first = Some((0, already));
    }
    CordonTime {
        observer,
        after_ms: first.map(|f| f.0),
        began_after_ms: first.and_then(|(_, c)| c.began_t_ms?.checked_sub(w.start_ms)),
        kind: first.map(|(_, c)| c.kind.clone()).unwrap_or_default(),
        reporter: first.and_then(|(_, c)| c.reporter),
    }
}

/// `gateway 0 (strict)`, for prose and tables.
pub(crate) fn mode_name(verify: &Option<String>) -> String {
    verify.clone().unwrap_or_else(|| "daemon default".into())
}

/// The sentences of a lie fault's paragraph in "What this shows".
pub(crate) fn lie_sentences(l: &LieSummary, backend: &str) -> Vec<String> {
    let mut out = Vec::new();
    let node = format!("node {}", l.node);
    let t = l.total();
    let per_gateway = || -> String {
        l.gateways
            .iter()
            .map(|g| format!("gateway {} ({}): {}", g.gateway, mode_name(&g.verify), g.wrong))
            .collect::<Vec<_>>()
            .join(", ")
    };
    out.push(if t.requests == 0 {
        format!("No client request was sent while {node} lied, so wrong answers are not measured.")
    } else if t.wrong == 0 {
        format!(
            "No wrong answer reached a client while {node} lied: of {} sent, {} correct, {} failed; {node} served {} of the {} whose server is known ({}).",
            fmt::plural(t.requests, "request", "requests"),
            t.requests - t.failed,
            t.failed,
            t.served_by_liar,
            t.served_known,
            l.gateways
                .iter()
                .map(|g| format!("gateway {} in {} mode: {} wrong of {}", g.gateway, mode_name(&g.verify), g.wrong, g.requests))
                .collect::<Vec<_>>()
                .join("; ")
        )
    } else if l.detection().is_none() {
        // The verdict ends the paragraph (below); the breakdown comes first.
        format!("Wrong answers of {}, by gateway: {}.", fmt::plural(t.requests, "request", "requests"), per_gateway())
    } else {
        format!(
            "{} reached clients while {node} lied (of {}; {}): {} sent before the first cordon, {} after it.",
            fmt::plural(t.wrong, "wrong answer", "wrong answers"),
            fmt::plural(t.requests, "request", "requests"),
            per_gateway(),
            t.wrong_before_detection,
            t.wrong - t.wrong_before_detection
        )
    });

    let Some(first) = l.detection() else {
        out.push(if backend == "sim" {
            format!(
                "No daemon cordoned {node}: the simulated backend has no proofs or receipts and its daemons run without integrity checks, so lies are measured here, not detected."
            )
        } else {
            format!(
                "No daemon cordoned {node} while the fault lasted ({}): no verified evidence of its lies reached the mesh.",
                fmt::duration(l.end_ms.saturating_sub(l.injected_at_ms))
            )
        });
        if t.wrong > 0 {
            out.push(format!(
                "{} served while {node} lied: rpcmesh did not detect the lying provider.",
                fmt::plural(t.wrong, "wrong answer was", "wrong answers were")
            ));
        }
        return out;
    };
    let from = |c: &CordonTime| match c.reporter {
        Some(r) if r == c.observer => " on its own evidence".to_string(),
        Some(r) => format!(" on evidence from daemon {r}"),
        None => " on evidence from a reporter outside the run".to_string(),
    };
    // When and by whom it was first seen is the fault's detection sentence; this tells on what.
    let kind = if first.kind.is_empty() { String::new() } else { format!(" (`{}` lie)", first.kind) };
    let mut line =
        format!("The first cordon of {node}, shown by daemon {}{kind}, rested{}", first.observer, from(first));
    if let Some(began) = l.detected_began() {
        line += &format!(
            "; by the daemons' own clocks the first cordon began {} after the injection (daemon {})",
            fmt::duration(began.began_after_ms.unwrap_or(0)),
            began.observer
        );
    }
    out.push(line + ".");
    let others: Vec<&CordonTime> = l.others().collect();
    match l.cordoned_everywhere_ms() {
        Some(all) => {
            let mut line = format!(
                "Every other daemon ({}) had cordoned it {} after the injection",
                others.len(),
                fmt::duration(all)
            );
            if let Some(began) = l.everywhere_began_ms() {
                line += &format!(" ({} by their own clocks)", fmt::duration(began));
            }
            let elsewhere = l.others_total();
            if elsewhere.requests_after_cordon > 0 {
                line += &format!(
                    "; of the {} sent after that through the other daemons' gateways, {} wrong",
                    fmt::plural(elsewhere.requests_after_cordon, "request", "requests"),
                    elsewhere.wrong_after_cordon
                );
                if elsewhere.wrong_in_flight > 0 {
                    line += &format!(
                        " ({} in flight at that moment not counted)",
                        fmt::plural(elsewhere.wrong_in_flight, "wrong answer", "wrong answers")
                    );
                }
            }
            out.push(line + ".");
        }
        None => {
            let never: Vec<usize> = others.iter().filter(|c| c.after_ms.is_none()).map(|c| c.observer).collect();
            out.push(format!(
                "{} of the {} other daemons cordoned {node}; {} never did while the fault lasted, so there was no mesh-wide cordon.",
                others.len() - never.len(),
                others.len(),
                if never.len() == 1 { format!("daemon {}", never[0]) } else { format!("daemons {}", fmt::list(&never)) }
            ));
        }
    }
    let own_gateway = l.own_total();
    if own_gateway.requests > 0 {
        out.push(match own_gateway.last_wrong_after_ms {
            None => format!("No wrong answer reached a client of {node}'s own gateway."),
            Some(last) => format!(
                "{}'s own gateway serves from its own node, to which no cordon applies: {} reached its clients, the last sent {} after the injection{}.",
                capitalise(&node),
                fmt::plural(own_gateway.wrong, "wrong answer", "wrong answers"),
                fmt::duration(last),
                if l.cordoned_everywhere_ms().is_some() {
                    format!(" ({} sent after the mesh-wide cordon)", own_gateway.wrong_after_cordon)
                } else {
                    String::new()
                }
            ),
        });
    }
    if let Some(own) = l.own() {
        out.push(match own.after_ms {
            Some(ms) => format!(
                "{}'s own daemon showed a cordon on itself after {}{} (not counted in the mesh-wide time).",
                capitalise(&node),
                fmt::duration(ms),
                from(own)
            ),
            None => format!(
                "{}'s own daemon never showed a cordon on itself (not counted in the mesh-wide time).",
                capitalise(&node)
            ),
        });
    }
    out
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{CordonChange, FaultAction, FaultEvent, Meta, Record, Transport};

    fn request(t_ms: u64, latency_ms: u64, gateway: usize, outcome: Outcome, served: Option<usize>) -> Record {
        Record::Request(Request {
            t_ms,
            latency_us: latency_ms * 1000,
            gateway,
            transport: Transport::Http,
            method: "eth_getBalance".into(),
            outcome,
            served_by: None,
            served_by_node: served,
            attempts: 1,
            detail: None,
            subject: None,
            verify: Some("sample".into()),
        })
    }

    fn cordon(t_ms: u64, observer: usize, cordoned: bool, reporter: usize) -> Record {
        Record::Cordon(CordonChange {
            t_ms,
            observer,
            subject: 1,
            chain_id: 31337,
            cordoned,
            kind: if cordoned { "state".into() } else { String::new() },
            reporter: cordoned.then_some(reporter),
            evidence_id: cordoned.then_some(1),
            began_t_ms: cordoned.then(|| t_ms - 100),
            reason: String::new(),
        })
    }

    fn records() -> Vec<Record> {
        vec![
            Record::Meta(Meta {
                scenario: "l".into(),
                nodes: 4,
                duration_ms: 30_000,
                backend: "anvil".into(),
                ..Meta::default()
            }),
            Record::Fault(FaultEvent { t_ms: 5000, node: Some(1), kind: "lie".into(), action: FaultAction::Inject }),
            // Before the fault: not counted.
            request(1000, 1, 1, Outcome::Wrong, Some(1)),
            // Before detection (at 8 s): wrong on both gateways.
            request(6000, 1, 1, Outcome::Wrong, Some(1)),
            request(7000, 1, 0, Outcome::Wrong, Some(1)),
            request(7500, 1, 0, Outcome::Ok, Some(2)),
            // Between detection and the mesh-wide cordon (at 10 s); one in flight across it.
            request(9000, 1, 1, Outcome::Wrong, None),
            request(9990, 50, 0, Outcome::Wrong, Some(1)),
            // After it.
            request(11_000, 1, 0, Outcome::Ok, Some(3)),
            request(12_000, 1, 1, Outcome::Wrong, Some(1)),
            request(13_000, 1, 1, Outcome::Error, None),
            // Daemon 0 caught it at 8 s, 2 and 3 by its evidence; 1 (the liar) at 9 s.
            cordon(8000, 0, true, 0),
            cordon(8500, 2, true, 0),
            cordon(9000, 1, true, 0),
            cordon(10_000, 3, true, 0),
            Record::Fault(FaultEvent { t_ms: 20_000, node: Some(1), kind: "heal".into(), action: FaultAction::Heal }),
            // After the heal: ignored.
            cordon(21_000, 3, false, 0),
            request(21_000, 1, 0, Outcome::Wrong, Some(1)),
        ]
    }

    #[test]
    fn detection_mesh_wide_cordon_and_wrong_answers_split() {
        let records = records();
        let run = Run::new(&records);
        let l = lie_summaries(&run);
        assert_eq!(l.len(), 1);
        let l = &l[0];
        assert_eq!((l.node, l.injected_at_ms, l.end_ms), (1, 5000, 20_000));
        assert_eq!(l.detected_ms(), Some(3000));
        assert_eq!(l.detection().map(|c| c.observer), Some(0));
        assert_eq!(l.cordons[0].began_after_ms, Some(2900));
        assert_eq!(l.cordoned_everywhere_ms(), Some(5000), "the slowest of 0, 2 and 3");
        assert_eq!(l.own().and_then(|c| c.after_ms), Some(4000));
        assert_eq!(l.cordoned_by(), [0, 1, 2, 3]);
        let rows: Vec<(usize, u64, u64, u64, u64, u64, u64)> = l
            .gateways
            .iter()
            .map(|g| {
                (
                    g.gateway,
                    g.requests,
                    g.wrong,
                    g.wrong_before_detection,
                    g.wrong_after_cordon,
                    g.wrong_in_flight,
                    g.requests_after_cordon,
                )
            })
            .collect();
        assert_eq!(rows, [(0, 4, 2, 1, 0, 1, 1), (1, 4, 3, 1, 1, 0, 2)]);
        let t = l.total();
        assert_eq!((t.served_by_liar, t.served_known), (4, 6));
        let text = lie_sentences(l, "anvil").join(" ");
        assert!(text.contains("5 wrong answers reached clients while node 1 lied (of 8 requests; gateway 0 (sample): 2, gateway 1 (sample): 3): 2 sent before the first cordon, 3 after it."), "{text}");
        assert!(
            text.contains("The first cordon of node 1, shown by daemon 0 (`state` lie), rested on its own evidence; by the daemons' own clocks the first cordon began 2.9 s after the injection (daemon 0)."),
            "{text}"
        );
        assert_eq!(l.everywhere_began_ms(), Some(4900));
        assert!(
            text.contains(
                "Every other daemon (3) had cordoned it 5 s after the injection (4.9 s by their own clocks); of the 1 request sent after that through the other daemons' gateways, 0 wrong (1 wrong answer in flight"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "Node 1's own gateway serves from its own node, to which no cordon applies: 3 wrong answers reached its clients, the last sent 7 s after the injection (1 sent after the mesh-wide cordon)."
            ),
            "{text}"
        );
        let last: Vec<Option<u64>> = l.gateways.iter().map(|g| g.last_wrong_after_ms).collect();
        assert_eq!(last, [Some(4990), Some(7000)]);
        assert!(
            text.contains("Node 1's own daemon showed a cordon on itself after 4 s on evidence from daemon 0"),
            "{text}"
        );
    }

    #[test]
    fn wrong_answers_during_another_fault_are_put_down_to_the_liar() {
        let mut records = records();
        records.push(Record::Fault(FaultEvent {
            t_ms: 4000,
            node: Some(3),
            kind: "down".into(),
            action: FaultAction::Inject,
        }));
        records.push(Record::Fault(FaultEvent {
            t_ms: 15_000,
            node: Some(3),
            kind: "heal".into(),
            action: FaultAction::Heal,
        }));
        let run = Run::new(&records);
        let findings = super::super::analysis::summarize(&run, 0).findings.join(" ");
        assert!(
            findings.contains(
                "5 wrong answers were served during this fault, all of them while node 1 lied (see that fault)."
            ),
            "{findings}"
        );
        // One wrong answer before the lie began: no longer all of them.
        records.push(request(4500, 1, 0, Outcome::Wrong, Some(2)));
        let run = Run::new(&records);
        let findings = super::super::analysis::summarize(&run, 0).findings.join(" ");
        assert!(findings.contains("6 wrong answers were served during this fault."), "{findings}");
    }

    #[test]
    fn never_cordoned_everywhere() {
        let mut records = records();
        records.retain(|r| !matches!(r, Record::Cordon(c) if c.observer == 3));
        let run = Run::new(&records);
        let l = &lie_summaries(&run)[0];
        assert_eq!(l.cordoned_everywhere_ms(), None);
        assert_eq!(l.total().wrong_after_cordon, 0, "no mesh-wide cordon: nothing is after it");
        let text = lie_sentences(l, "anvil").join(" ");
        assert!(text.contains("2 of the 3 other daemons cordoned node 1; daemon 3 never did"), "{text}");
    }

    #[test]
    fn no_cordon_on_the_sim() {
        let mut records = records();
        records.retain(|r| !matches!(r, Record::Cordon(_)));
        let run = Run::new(&records);
        let l = &lie_summaries(&run)[0];
        assert_eq!((l.detected_ms(), l.total().wrong_before_detection), (None, 5));
        let text = lie_sentences(l, "sim").join(" ");
        assert!(text.contains("No daemon cordoned node 1: the simulated backend"), "{text}");
        assert!(
            text.ends_with("Wrong answers of 8 requests, by gateway: gateway 0 (sample): 2, gateway 1 (sample): 3. No daemon cordoned node 1: the simulated backend has no proofs or receipts and its daemons run without integrity checks, so lies are measured here, not detected. 5 wrong answers were served while node 1 lied: rpcmesh did not detect the lying provider."),
            "{text}"
        );
    }

    #[test]
    fn a_cordon_standing_at_the_injection_counts_as_zero() {
        let mut records = records();
        records.push(cordon(100, 2, true, 0));
        let run = Run::new(&records);
        let l = &lie_summaries(&run)[0];
        assert_eq!(l.cordons[2].after_ms, Some(0));
        assert_eq!(l.cordons[2].began_after_ms, None, "it began before the injection");
    }
}
