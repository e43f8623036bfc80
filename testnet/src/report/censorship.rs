//! Censorship figures of a run, read off the records alone: for each `censor=ADDRESS` fault, the
//! answers about the censored address that reached clients wrong, the requests the censoring
//! node served, and how long it took every daemon to label it `filters`; and the transactions
//! the load sent to watched addresses (sent, accepted, refused, mined).
//!
//! Definitions (also printed in the report):
//! - A request is *about* an address when it reads that account (`eth_getBalance`,
//!   `eth_getTransactionCount`, `eth_getCode`) or sends it a transaction ([`Request::subject`]).
//! - A *censored answer* is a wrong answer (one that disagrees with the chain's truth), sent while
//!   the censor fault was open, to a read about the censored address or to `eth_getLogs` (the
//!   censor drops the logs naming the address; a log query names no account, so every wrong log
//!   answer during the fault counts).
//! - *Time to label* is, per daemon, injection → the first poll of its `/peers` that showed a
//!   `filters` label on the censoring node (0 if the label was already there); mesh-wide, the
//!   slowest daemon, or never if one never showed it.

use std::collections::BTreeMap;

use serde::Serialize;

use super::analysis::{Run, Window};
use super::fmt;
use super::stats::RequestStats;
use crate::record::{Outcome, Request};

/// What happened around one censoring fault.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CensorSummary {
    /// The censoring node.
    pub node: usize,
    /// The censored address, lowercase `0x…`.
    pub address: String,
    /// Injection time, ms since the start.
    pub injected_at_ms: u64,
    /// End of the fault window (heal, replacement or end of the run), ms since the start.
    pub end_ms: u64,
    /// Policies the censoring node declared on its chains (from the run's `meta`).
    pub declared: Vec<String>,
    /// Requests about the censored address sent while the fault was open.
    pub about: RequestStats,
    /// Censored answers that reached clients: wrong answers to reads about the address or to
    /// `eth_getLogs`, sent while the fault was open (refused writes are counted in the
    /// transactions).
    pub censored_answers: u64,
    /// `eth_getLogs` requests sent while the fault was open.
    pub log_queries: u64,
    /// Requests of any kind sent while the fault was open that the censoring node served (as
    /// far as known: WebSocket answers do not say who served them).
    pub served_by_censor: u64,
    /// Requests sent while the fault was open whose server is known (HTTP).
    pub served_known: u64,
    /// Per daemon, when it labelled the censoring node.
    pub labels: Vec<LabelTime>,
}

/// When one daemon labelled a censoring node `filters`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LabelTime {
    /// The daemon whose `/peers` showed the label.
    pub observer: usize,
    /// Injection → first poll that showed it, ms; `None` if it never did during the run.
    pub after_ms: Option<u64>,
    /// What the label named (addresses or methods), as first shown.
    pub subjects: Vec<String>,
}

impl CensorSummary {
    /// Time until every daemon showed the label (the slowest one), ms; `None` if one never did.
    pub fn labelled_everywhere_ms(&self) -> Option<u64> {
        if self.labels.is_empty() {
            return None;
        }
        self.labels.iter().map(|l| l.after_ms).try_fold(0, |worst, t| t.map(|t| t.max(worst)))
    }

    /// The daemons that labelled it.
    pub fn labelled_by(&self) -> Vec<usize> {
        self.labels.iter().filter(|l| l.after_ms.is_some()).map(|l| l.observer).collect()
    }

    /// Whether the node disclosed a filter (a declared `filters:…` policy).
    pub fn disclosed(&self) -> bool {
        self.declared.iter().any(|p| p.starts_with("filters"))
    }
}

/// Transactions the load sent to one address through one gateway (or all of them).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TransactionSummary {
    /// The recipient, lowercase `0x…`.
    pub to: String,
    /// The gateway; `None` for the total over every gateway.
    pub gateway: Option<usize>,
    /// Transactions sent.
    pub sent: u64,
    /// Accepted: the gateway answered with the transaction's hash.
    pub accepted: u64,
    /// Refused: the gateway answered an error (or a wrong hash), or no answer came.
    pub refused: u64,
    /// Mined by the end of the run (a receipt from the chain itself), accepted or not.
    pub mined: u64,
    /// Accepted but not mined by the end of the run.
    pub accepted_not_mined: u64,
}

/// The censored address of a `censor=0x…` fault kind, lowercase; `None` for other kinds.
pub(crate) fn censored_address(kind: &str) -> Option<String> {
    let arg = kind.trim().strip_prefix("censor")?.trim_start().strip_prefix('=')?.trim();
    let digits = arg.strip_prefix("0x").or_else(|| arg.strip_prefix("0X"))?;
    (digits.len() == 40 && digits.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| format!("0x{}", digits.to_ascii_lowercase()))
}

fn is_about(r: &Request, address: &str) -> bool {
    r.subject.as_deref().is_some_and(|s| s.eq_ignore_ascii_case(address))
}

/// One summary per censoring fault, in injection order.
pub(crate) fn censor_summaries(run: &Run<'_>) -> Vec<CensorSummary> {
    run.windows
        .iter()
        .filter_map(|w| Some((w, w.node?, censored_address(&w.kind)?)))
        .map(|(w, node, address)| censor_summary(run, w, node, address))
        .collect()
}

fn censor_summary(run: &Run<'_>, w: &Window, node: usize, address: String) -> CensorSummary {
    let during: Vec<&Request> =
        run.requests.iter().copied().filter(|r| w.start_ms <= r.t_ms && r.t_ms < w.end_ms).collect();
    let about: Vec<&Request> = during.iter().copied().filter(|r| is_about(r, &address)).collect();
    let censored_answers = during
        .iter()
        .filter(|r| r.outcome == Outcome::Wrong)
        .filter(|r| (is_about(r, &address) && r.method != "eth_sendRawTransaction") || r.method == "eth_getLogs")
        .count() as u64;
    let served: Vec<usize> = during.iter().filter_map(|r| run.served_node(r)).collect();
    CensorSummary {
        node,
        injected_at_ms: w.start_ms,
        end_ms: w.end_ms,
        declared: run.meta.map(|m| m.policies_of(node).to_vec()).unwrap_or_default(),
        about: RequestStats::of(about.iter().copied()),
        censored_answers,
        log_queries: during.iter().filter(|r| r.method == "eth_getLogs").count() as u64,
        served_by_censor: served.iter().filter(|&&n| n == node).count() as u64,
        served_known: served.len() as u64,
        labels: (0..run.nodes).map(|observer| label_time(run, observer, node, w.start_ms)).collect(),
        address,
    }
}

/// When `observer` first showed a `filters` label on `subject` at or after `start_ms` (on any
/// chain); 0 if one was already showing then.
fn label_time(run: &Run<'_>, observer: usize, subject: usize, start_ms: u64) -> LabelTime {
    // Per chain: is a label showing, and since when (relative to the start).
    let mut showing: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let mut first: Option<(u64, Vec<String>)> = None;
    for l in run.labels.iter().filter(|l| l.observer == observer && l.subject == subject) {
        if l.t_ms >= start_ms && first.is_none() {
            if let Some((_, subjects)) = showing.iter().next() {
                first = Some((0, subjects.clone()));
                break;
            }
            if l.labelled {
                first = Some((l.t_ms - start_ms, l.subjects.clone()));
                break;
            }
        }
        if l.labelled {
            showing.insert(l.chain_id, l.subjects.clone());
        } else {
            showing.remove(&l.chain_id);
        }
    }
    if first.is_none()
        && let Some((_, subjects)) = showing.iter().next()
    {
        first = Some((0, subjects.clone()));
    }
    LabelTime { observer, after_ms: first.as_ref().map(|f| f.0), subjects: first.map(|f| f.1).unwrap_or_default() }
}

/// Per recipient: one row per gateway, then the total.
pub(crate) fn transaction_summaries(run: &Run<'_>) -> Vec<TransactionSummary> {
    let mut rows: BTreeMap<(String, Option<usize>), TransactionSummary> = BTreeMap::new();
    for t in &run.transactions {
        for gateway in [Some(t.gateway), None] {
            let row = rows.entry((t.to.to_ascii_lowercase(), gateway)).or_insert_with(|| TransactionSummary {
                to: t.to.to_ascii_lowercase(),
                gateway,
                ..Default::default()
            });
            row.sent += 1;
            row.accepted += u64::from(t.accepted);
            row.refused += u64::from(!t.accepted);
            row.mined += u64::from(t.mined_block.is_some());
            row.accepted_not_mined += u64::from(t.accepted && t.mined_block.is_none());
        }
    }
    // `None` sorts first in the map: move each recipient's total after its gateways.
    let (totals, mut out): (Vec<TransactionSummary>, Vec<TransactionSummary>) =
        rows.into_values().partition(|r| r.gateway.is_none());
    for total in totals {
        let at = out.iter().rposition(|r| r.to == total.to).map_or(out.len(), |i| i + 1);
        out.insert(at, total);
    }
    out
}

/// The sentences of a censoring fault's paragraph in "What this shows".
pub(crate) fn censor_sentences(c: &CensorSummary, backend: &str) -> Vec<String> {
    let mut out = Vec::new();
    let node = format!("node {}", c.node);
    let address = format!("`{}`", c.address);
    if c.disclosed() {
        let declared: Vec<String> = c.declared.iter().map(|p| format!("`{p}`")).collect();
        out.push(if c.served_by_censor == 0 && c.served_known > 0 {
            format!(
                "Node {} declared {} and served none of the {} client requests whose server is known while it censored.",
                c.node,
                declared.join(", "),
                c.served_known
            )
        } else {
            format!(
                "Node {} declared {} and served {} of the {} client requests whose server is known while it censored.",
                c.node,
                declared.join(", "),
                c.served_by_censor,
                c.served_known
            )
        });
    }
    let st = &c.about;
    out.push(if c.censored_answers > 0 {
        format!(
            "{} reached clients while {node} censored {address} (of {} about it and {}): rpcmesh did not shield them from the censoring provider.",
            fmt::plural(c.censored_answers, "censored answer", "censored answers"),
            fmt::plural(st.requests, "request", "requests"),
            fmt::plural(c.log_queries, "log query", "log queries")
        )
    } else if st.requests == 0 {
        format!("No client asked about {address} while {node} censored it, so censored answers are not measured.")
    } else {
        format!(
            "No censored answer reached a client: of {} about {address} while {node} censored it, {} correct, {} failed, {} wrong.",
            fmt::plural(st.requests, "request", "requests"),
            st.ok,
            st.error,
            st.wrong
        )
    });
    let labelled = c.labelled_by();
    let daemons = c.labels.len();
    let named = |l: &LabelTime| {
        if l.subjects.is_empty() { String::new() } else { format!(" ({})", l.subjects.join(", ")) }
    };
    if labelled.is_empty() {
        out.push(if c.disclosed() {
            format!("No daemon labelled {node} `filters`: it disclosed its filter, so there was nothing to detect.")
        } else if backend == "sim" {
            format!(
                "No daemon labelled {node} `filters`: the simulated backend has no proofs or receipts to check reads against, so censorship is measured here, not detected."
            )
        } else {
            format!(
                "No daemon labelled {node} `filters` while the run lasted ({} after the injection): rpcmesh did not detect the censorship.",
                fmt::duration(c.end_ms.max(c.injected_at_ms) - c.injected_at_ms)
            )
        });
    } else if let Some(all) = c.labelled_everywhere_ms() {
        let first = c.labels.iter().filter_map(|l| l.after_ms).min().unwrap_or(all);
        let what = c.labels.iter().find(|l| l.after_ms == Some(first)).map(named).unwrap_or_default();
        out.push(format!(
            "Every daemon ({daemons}) labelled {node} `filters`{what} within {} of the injection (the first after {}).",
            fmt::duration(all),
            fmt::duration(first)
        ));
    } else {
        let never: Vec<usize> = c.labels.iter().filter(|l| l.after_ms.is_none()).map(|l| l.observer).collect();
        let worst = c.labels.iter().filter_map(|l| l.after_ms).max().unwrap_or(0);
        out.push(format!(
            "{} of {daemons} daemons labelled {node} `filters` (the last after {}); {} never did.",
            labelled.len(),
            fmt::duration(worst),
            if never.len() == 1 { format!("daemon {}", never[0]) } else { format!("daemons {}", fmt::list(&never)) }
        ));
    }
    out
}

/// The sentence on one recipient's transactions (its total row).
pub(crate) fn transaction_sentence(t: &TransactionSummary) -> String {
    let mut line = format!(
        "Transactions to `{}`: {} sent, {} accepted by the gateways, {} refused, {} mined",
        t.to, t.sent, t.accepted, t.refused, t.mined
    );
    if t.accepted_not_mined > 0 {
        line += &format!(" ({} accepted but not mined by the end of the run)", t.accepted_not_mined);
    }
    line += ".";
    if t.refused > 0 {
        line += &format!(
            " {} reached clients: rpcmesh did not get them past the refusal.",
            fmt::plural(t.refused, "refusal", "refusals")
        );
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{FaultAction, FaultEvent, LabelChange, Meta, Record, SentTransaction, Transport};

    const A: &str = "0xa0ee7a142d267c1f36714e4a8f75612f20a79720";

    fn request(t_ms: u64, method: &str, subject: Option<&str>, outcome: Outcome, served: Option<usize>) -> Record {
        Record::Request(Request {
            t_ms,
            latency_us: 1000,
            gateway: 0,
            transport: Transport::Http,
            method: method.into(),
            outcome,
            served_by: None,
            served_by_node: served,
            attempts: 1,
            detail: None,
            subject: subject.map(str::to_string),
            verify: None,
        })
    }

    fn label(t_ms: u64, observer: usize, labelled: bool) -> Record {
        Record::Label(LabelChange {
            t_ms,
            observer,
            subject: 1,
            chain_id: 31337,
            labelled,
            subjects: if labelled { vec![A.into()] } else { vec![] },
        })
    }

    fn sent(t_ms: u64, gateway: usize, accepted: bool, mined: bool) -> Record {
        Record::Transaction(SentTransaction {
            t_ms,
            gateway,
            from: "0x90f79bf6eb2c4f870365e785982e1f101e93b906".into(),
            to: A.into(),
            hash: format!("0x{t_ms:064x}"),
            accepted,
            detail: (!accepted).then(|| "transaction rejected".into()),
            mined_block: mined.then_some(7),
        })
    }

    fn run_records() -> Vec<Record> {
        let mut records = vec![
            Record::Meta(Meta {
                scenario: "c".into(),
                nodes: 4,
                duration_ms: 20_000,
                backend: "anvil".into(),
                ..Meta::default()
            }),
            Record::Fault(FaultEvent {
                t_ms: 2000,
                node: Some(1),
                kind: format!("censor={}", A.to_uppercase().replace("0X", "0x")),
                action: FaultAction::Inject,
            }),
            // Before the fault: not counted.
            request(1000, "eth_getBalance", Some(A), Outcome::Wrong, Some(1)),
            request(3000, "eth_getBalance", Some(A), Outcome::Ok, Some(0)),
            request(3100, "eth_getTransactionCount", Some(A), Outcome::Wrong, Some(1)),
            request(
                3200,
                "eth_getBalance",
                Some("0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"),
                Outcome::Wrong,
                Some(1),
            ),
            request(3300, "eth_sendRawTransaction", Some(A), Outcome::Error, None),
            request(3400, "eth_blockNumber", None, Outcome::Ok, Some(2)),
            request(3500, "eth_getLogs", None, Outcome::Wrong, None),
            request(3600, "eth_getBlockByNumber", None, Outcome::Wrong, Some(1)),
            // Daemon 0 had the label before the fault (0), 2 after 3 s, 3 after 5 s; 1 never.
            label(500, 0, true),
            label(5000, 2, true),
            label(6000, 2, false),
            label(7000, 3, true),
            sent(3000, 0, true, true),
            sent(3500, 1, true, false),
            sent(4000, 1, false, false),
        ];
        records.push(Record::Fault(FaultEvent {
            t_ms: 15_000,
            node: Some(1),
            kind: "heal".into(),
            action: FaultAction::Heal,
        }));
        records
    }

    #[test]
    fn censored_answers_and_labels() {
        let records = run_records();
        let run = Run::new(&records);
        let c = censor_summaries(&run);
        assert_eq!(c.len(), 1);
        let c = &c[0];
        assert_eq!((c.node, c.address.as_str(), c.injected_at_ms, c.end_ms), (1, A, 2000, 15_000));
        assert_eq!((c.about.requests, c.about.ok, c.about.error, c.about.wrong), (3, 1, 1, 1));
        assert_eq!(c.censored_answers, 2, "the wrong nonce and logs; the refused send is not an answer");
        assert_eq!((c.served_by_censor, c.served_known), (3, 5));
        let after: Vec<Option<u64>> = c.labels.iter().map(|l| l.after_ms).collect();
        assert_eq!(after, [Some(0), None, Some(3000), Some(5000)]);
        assert_eq!(c.labels[2].subjects, [A]);
        assert_eq!(c.labelled_everywhere_ms(), None);
        assert_eq!(c.labelled_by(), [0, 2, 3]);
        let text = censor_sentences(c, "anvil").join(" ");
        assert!(text.contains("2 censored answers reached clients"), "{text}");
        assert!(
            text.contains("3 of 4 daemons labelled node 1 `filters` (the last after 5 s); daemon 1 never did"),
            "{text}"
        );
    }

    #[test]
    fn everyone_labelled_and_disclosed_filters() {
        let mut records = run_records();
        records.push(label(9000, 1, true));
        if let Record::Meta(m) = &mut records[0] {
            m.node_policies
                .push(crate::record::NodePolicies { node: 1, policies: vec!["filters:address-list:ab".into()] });
        }
        let run = Run::new(&records);
        let c = &censor_summaries(&run)[0];
        assert_eq!(c.labelled_everywhere_ms(), Some(7000));
        assert!(c.disclosed());
        let text = censor_sentences(c, "anvil").join(" ");
        assert!(text.contains("Node 1 declared `filters:address-list:ab` and served 3 of the 5"), "{text}");
        assert!(text.contains("Every daemon (4) labelled node 1 `filters` (0xa0ee"), "{text}");
    }

    #[test]
    fn transactions_per_gateway_then_total() {
        let records = run_records();
        let run = Run::new(&records);
        let t = transaction_summaries(&run);
        let rows: Vec<(Option<usize>, u64, u64, u64, u64, u64)> =
            t.iter().map(|t| (t.gateway, t.sent, t.accepted, t.refused, t.mined, t.accepted_not_mined)).collect();
        assert_eq!(rows, [(Some(0), 1, 1, 0, 1, 0), (Some(1), 2, 1, 1, 0, 1), (None, 3, 2, 1, 1, 1)]);
        let line = transaction_sentence(&t[2]);
        assert!(
            line.starts_with(&format!("Transactions to `{A}`: 3 sent, 2 accepted by the gateways, 1 refused, 1 mined")),
            "{line}"
        );
        assert!(line.contains("1 refusal reached clients"), "{line}");
    }

    #[test]
    fn censored_addresses() {
        let a = format!("0x{}", "ab".repeat(20));
        assert_eq!(censored_address(&format!("censor={}", a.to_uppercase().replace("0X", "0x"))), Some(a.clone()));
        assert_eq!(censored_address(&format!(" censor = {a} ")), Some(a));
        assert_eq!(censored_address("censor=0x12"), None);
        assert_eq!(censored_address("down"), None);
    }
}
