//! Measurement records of a scenario run, one JSON object per line in `DIR/records.jsonl`.
//!
//! The scenario runner writes them as things happen (with a [`RecordWriter`]); the report
//! ([`crate::report`]) is computed from them afterwards, so a report can always be rebuilt from the
//! raw data alone ([`read_records`]).
//!
//! # Format
//!
//! Every line is a [`Record`], tagged by `"type"`:
//!
//! ```text
//! {"type":"meta","scenario":"failover","description":"…","nodes":5,"chains":[1],"backend":"sim",…}
//! {"type":"phase","t_ms":0,"name":"warmup"}
//! {"type":"request","t_ms":5012,"latency_us":830,"gateway":0,"transport":"http","method":"eth_blockNumber","outcome":"ok","served_by":"12D3Koo…","served_by_node":3,"attempts":1}
//! {"type":"fault","t_ms":5000,"node":3,"kind":"down","action":"inject"}
//! {"type":"view","t_ms":6200,"observer":1,"subject":3,"health":"down"}
//! {"type":"gossip","t_ms":7100,"publisher":2,"seq":14,"observer":4,"delay_ms":38}
//! {"type":"label","t_ms":9300,"observer":0,"subject":1,"chain_id":31337,"labelled":true,"subjects":["0xa0ee…"]}
//! {"type":"cordon","t_ms":6100,"observer":2,"subject":1,"chain_id":31337,"cordoned":true,"kind":"state","reporter":0,"evidence_id":3,"began_t_ms":6042,"reason":"proven state lie…"}
//! {"type":"transaction","t_ms":5100,"gateway":1,"from":"0x90f7…","to":"0xa0ee…","hash":"0x…","accepted":true,"mined_block":12}
//! ```
//!
//! Conventions the report relies on:
//! - All `t_ms` are milliseconds since the scenario started (one clock for the whole run).
//!   Lines need not be in time order (concurrent writers); the report sorts.
//! - A request's `t_ms` is when it was **sent**; it completed at `t_ms + latency_us / 1000`.
//!   `outcome` is judged by comparing the answer with the chain's truth, never assumed.
//! - Node indexes (`gateway`, `served_by_node`, `node`, `observer`, `subject`, `publisher`) index
//!   [`Meta::node_peer_ids`]; node *i* is daemon *i* with its own backend *i*.
//! - A fault is open from its `inject` record until a `heal` record for the same node (a `heal`
//!   without a node heals every open fault; one whose kind starts with `partition` heals
//!   partitions only), or until another backend fault is injected on the same node (a backend
//!   holds one fault at a time), or until the run ends. `restart` is injected when the daemon is
//!   stopped and healed when it runs again.
//! - `view` records are written only when an observer's judgement of a subject changes.
//! - A `gossip` record is one delivery: the message `(publisher, seq)` was accepted by `observer`
//!   `delay_ms` after it was published. A record with `observer == publisher` (delay 0) registers
//!   the publish itself, so messages nobody received still count; it is not a delivery.
//! - `label` records are written only when an observer's `filters` label of a subject on a chain
//!   appears or goes (the daemons' `/peers`, polled with the views).
//! - `cordon` records likewise, when an observer's cordon of a subject on a chain appears, goes, or
//!   is replaced by one of another kind (the same poll of `/peers`).
//! - `transaction` records are written at the end of the run, once the chain had time to mine
//!   what was sent: one per transaction the load sent, accepted or not.
//! - `meta` comes first. It may be repeated (e.g. once at the start, once at the end with the real
//!   `duration_ms` and `interrupted`): the last one wins.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// File name of the raw records inside a run directory.
pub const RECORDS_FILE: &str = "records.jsonl";

/// The `health` of a subject that is fine. Every other value counts as "not healthy".
pub const HEALTHY: &str = "healthy";

/// One line of `records.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    /// What ran: written first.
    Meta(Meta),
    /// A phase boundary.
    Phase(Phase),
    /// One client request, as the client saw it.
    Request(Request),
    /// A fault injected or healed.
    Fault(FaultEvent),
    /// An observer's judgement of a subject changed.
    View(ViewChange),
    /// A gossip message reached a node.
    Gossip(GossipDelivery),
    /// An observer's `filters` label of a subject appeared or went.
    Label(LabelChange),
    /// An observer's cordon of a subject (proven wrong answers) appeared or went.
    Cordon(CordonChange),
    /// A transaction the load sent through a gateway, and whether the chain mined it.
    Transaction(SentTransaction),
}

impl Record {
    /// When it happened (ms since the start); `None` for [`Record::Meta`].
    pub fn t_ms(&self) -> Option<u64> {
        match self {
            Record::Meta(_) => None,
            Record::Phase(r) => Some(r.t_ms),
            Record::Request(r) => Some(r.t_ms),
            Record::Fault(r) => Some(r.t_ms),
            Record::View(r) => Some(r.t_ms),
            Record::Gossip(r) => Some(r.t_ms),
            Record::Label(r) => Some(r.t_ms),
            Record::Cordon(r) => Some(r.t_ms),
            Record::Transaction(r) => Some(r.t_ms),
        }
    }
}

/// Description of the run (the first line).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// Scenario name.
    pub scenario: String,
    /// Scenario description, from the scenario file.
    #[serde(default)]
    pub description: String,
    /// Number of daemons.
    pub nodes: usize,
    /// Chain ids served.
    #[serde(default)]
    pub chains: Vec<u64>,
    /// What the daemons' upstreams were (e.g. `sim`, `anvil`).
    #[serde(default)]
    pub backend: String,
    /// Wall-clock start, Unix milliseconds: the instant `t_ms` counts from in the final `meta`
    /// (the first one is written during set-up, a little earlier).
    #[serde(default)]
    pub started_at_unix_ms: u64,
    /// Length of the run in ms (planned at the start, actual in a final `meta`).
    #[serde(default)]
    pub duration_ms: u64,
    /// PeerId of node *i* at index *i*.
    #[serde(default)]
    pub node_peer_ids: Vec<String>,
    /// The run was stopped before its planned end: the data is partial.
    #[serde(default)]
    pub interrupted: bool,
    /// Policies nodes declared on their chains (e.g. `filters:address-list:…`); nodes that
    /// declared none are left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_policies: Vec<NodePolicies>,
}

impl Meta {
    /// The policies node `node` declared (empty if none).
    pub fn policies_of(&self, node: usize) -> &[String] {
        self.node_policies.iter().find(|p| p.node == node).map_or(&[], |p| p.policies.as_slice())
    }
}

/// Policies one node declared on every chain it serves.
// A list of these rather than a map by node index: records are an internally tagged enum, whose
// maps cannot have integer keys in JSON.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodePolicies {
    /// The node.
    pub node: usize,
    /// Its policies, as announced.
    pub policies: Vec<String>,
}

/// Start of a phase; it lasts until the next phase starts or the run ends. The first phase is
/// taken to start at 0 whatever its `t_ms`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// Start, ms since the scenario start.
    pub t_ms: u64,
    /// Phase name from the scenario.
    pub name: String,
}

/// How a client request ended, judged against the chain's truth.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A correct answer.
    Ok,
    /// No answer: transport error, timeout, or a JSON-RPC error the truth would not give.
    Error,
    /// An answer that disagrees with the chain's truth.
    Wrong,
}

/// How the client talked to the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// JSON-RPC over HTTP.
    Http,
    /// JSON-RPC over WebSocket.
    Ws,
}

/// One client request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// When it was sent, ms since the scenario start.
    pub t_ms: u64,
    /// Time until the answer (or the error), µs.
    pub latency_us: u64,
    /// Node whose gateway the client used.
    pub gateway: usize,
    /// HTTP or WebSocket.
    pub transport: Transport,
    /// JSON-RPC method (the first one, for a batch).
    pub method: String,
    /// Ok, error or wrong.
    pub outcome: Outcome,
    /// PeerId that served it (`x-rpcmesh-served-by`), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_by: Option<String>,
    /// Index of the node that served it, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_by_node: Option<usize>,
    /// Attempts the gateway reported (`x-rpcmesh-attempts`); 0 if unknown.
    #[serde(default)]
    pub attempts: u32,
    /// Error message, or what was wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The account the request is about (lowercase `0x…`): the address of an account read, the
    /// recipient of a transaction; `None` for requests about no account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The `x-rpcmesh-verify` mode the client asked for (`off`, `sample`, `strict`); `None` when
    /// it sent none, so the gateway's configured mode applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<String>,
}

impl Request {
    /// Completion time, µs since the scenario start.
    pub fn end_us(&self) -> u64 {
        self.t_ms.saturating_mul(1000).saturating_add(self.latency_us)
    }
}

/// Whether a fault starts or ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultAction {
    /// The fault starts.
    Inject,
    /// The fault ends.
    Heal,
}

/// A fault injected or healed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultEvent {
    /// When, ms since the scenario start.
    pub t_ms: u64,
    /// The node it concerns; `None` for mesh-wide faults (partition, heal all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<usize>,
    /// As written in the scenario: `down`, `freeze`, `slow=200ms`, `errors=0.3`, `stale=5`, `lie`,
    /// `lie=balance,storage`, `censor=0x…`, `partition 0,1,2:3,4`, `restart`, `heal`.
    pub kind: String,
    /// Inject or heal.
    pub action: FaultAction,
}

impl FaultEvent {
    /// The kind without its parameter: `slow=200ms` → `slow`, `partition 0,1:2` → `partition`.
    pub fn base_kind(&self) -> &str {
        base_kind(&self.kind)
    }
}

/// The kind without its parameter: `slow=200ms` → `slow`, `partition 0,1:2` → `partition`.
pub fn base_kind(kind: &str) -> &str {
    let kind = kind.trim();
    let end = kind.find(|c: char| c == '=' || c == ':' || c.is_whitespace()).unwrap_or(kind.len());
    &kind[..end]
}

/// An observer's judgement of a subject changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ViewChange {
    /// When, ms since the scenario start.
    pub t_ms: u64,
    /// Node whose mesh view changed.
    pub observer: usize,
    /// Node it judges.
    pub subject: usize,
    /// `healthy`, `lagging`, `unhealthy`, `down`, `expired` or `missing`.
    pub health: String,
}

impl ViewChange {
    /// Whether the new judgement is [`HEALTHY`].
    pub fn is_healthy(&self) -> bool {
        self.health == HEALTHY
    }
}

/// A gossip message accepted by a node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GossipDelivery {
    /// When it was accepted, ms since the scenario start.
    pub t_ms: u64,
    /// Node that published it.
    pub publisher: usize,
    /// Its sequence number (per publisher).
    pub seq: u64,
    /// Node that accepted it.
    pub observer: usize,
    /// Publish → accepted, ms.
    pub delay_ms: u64,
}

/// An observer's `filters` label of a subject (a provider proven to filter without disclosure)
/// on one chain appeared or went.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabelChange {
    /// When the observer's `/peers` first showed the change, ms since the scenario start.
    pub t_ms: u64,
    /// Node whose view changed.
    pub observer: usize,
    /// Node it labels.
    pub subject: usize,
    /// The chain of the label.
    pub chain_id: u64,
    /// Whether the label is there now.
    pub labelled: bool,
    /// What the subject was seen filtering (addresses or methods), as the label lists them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<String>,
}

/// An observer's cordon of a subject on one chain appeared, went, or changed kind: the
/// observer holds verified evidence that the subject answered wrongly and keeps it out of
/// routing on that chain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CordonChange {
    /// When the observer's `/peers` first showed the change, ms since the scenario start.
    pub t_ms: u64,
    /// Node whose view changed.
    pub observer: usize,
    /// Node it cordons.
    pub subject: usize,
    /// The chain of the cordon.
    pub chain_id: u64,
    /// Whether the cordon is there now.
    pub cordoned: bool,
    /// The kind of lie proven (`header`, `state`, `logs`...), as `/peers` names it; empty when
    /// the cordon went.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Node that signed the evidence behind it (the observer itself for its own findings);
    /// `None` when the cordon went or the reporter is not a node of the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reporter: Option<usize>,
    /// The observer's id of the bundle behind it (`GET /evidence/{id}` on the observer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence_id: Option<u64>,
    /// When the cordon began by the observer's own clock (its `since_ms`), ms since the scenario
    /// start; `None` when it began before the run (or the cordon went). The daemons share the
    /// runner's machine clock, so this is exact where `t_ms` is rounded up to the next poll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub began_t_ms: Option<u64>,
    /// The reason in words, as `/peers` gives it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// A transaction the load sent through a gateway.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SentTransaction {
    /// When it was sent, ms since the scenario start.
    pub t_ms: u64,
    /// Node whose gateway the client used.
    pub gateway: usize,
    /// Sender (lowercase `0x…`).
    pub from: String,
    /// Recipient (lowercase `0x…`).
    pub to: String,
    /// Its hash (keccak of the signed bytes).
    pub hash: String,
    /// The gateway answered with the transaction's hash.
    pub accepted: bool,
    /// The gateway's error (or unexpected answer) when it did not accept it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Block the chain mined it in (a receipt from the chain itself, not through the mesh);
    /// `None` if it was not mined by the end of the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mined_block: Option<u64>,
}

/// Appends records to a JSONL file, one per line.
///
/// Buffered by default: call [`flush`](Self::flush) at checkpoints (dropping it flushes too, but
/// cannot report an error). With [`flush_each_line`](Self::flush_each_line) every record reaches
/// the file before [`write`](Self::write) returns, so a killed run leaves complete lines (a torn
/// last line is skipped by [`read_records`]).
#[derive(Debug)]
pub struct RecordWriter {
    out: BufWriter<File>,
    flush_each_line: bool,
    lines: u64,
}

impl RecordWriter {
    /// Creates (or truncates) `path`.
    pub fn create(path: &Path) -> io::Result<Self> {
        Ok(Self::new(File::create(path)?))
    }

    /// Opens `path` for appending, creating it if needed.
    pub fn append(path: &Path) -> io::Result<Self> {
        Ok(Self::new(OpenOptions::new().create(true).append(true).open(path)?))
    }

    fn new(file: File) -> Self {
        Self { out: BufWriter::new(file), flush_each_line: false, lines: 0 }
    }

    /// Flush after every record (slower, but nothing is lost if the process dies).
    pub fn flush_each_line(mut self, on: bool) -> Self {
        self.flush_each_line = on;
        self
    }

    /// Writes one record as one line.
    pub fn write(&mut self, record: &Record) -> io::Result<()> {
        let line = serde_json::to_vec(record).map_err(io::Error::other)?;
        self.out.write_all(&line)?;
        self.out.write_all(b"\n")?;
        self.lines += 1;
        if self.flush_each_line {
            self.out.flush()?;
        }
        Ok(())
    }

    /// Pushes buffered lines to the file.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Records written so far by this writer.
    pub fn lines_written(&self) -> u64 {
        self.lines
    }
}

impl Drop for RecordWriter {
    fn drop(&mut self) {
        // Best effort: an error here cannot be reported; call `flush` to see it.
        let _ = self.out.flush();
    }
}

/// Writes `records` to `path` (created or truncated), one per line.
pub fn write_records(path: &Path, records: &[Record]) -> io::Result<()> {
    let mut writer = RecordWriter::create(path)?;
    for record in records {
        writer.write(record)?;
    }
    writer.flush()
}

/// Records parsed from JSONL text, and how many lines could not be parsed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParsedRecords {
    /// The records, in file order.
    pub records: Vec<Record>,
    /// Non-blank lines that were not a valid record (torn last line, unknown type, bad field).
    pub malformed: usize,
    /// 1-based number of the first malformed line.
    pub first_malformed_line: Option<usize>,
}

/// Parses JSONL bytes; blank lines are ignored, malformed ones skipped and counted.
pub fn parse_records(bytes: &[u8]) -> ParsedRecords {
    let mut parsed = ParsedRecords::default();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Record>(line) {
            Ok(record) => parsed.records.push(record),
            Err(_) => {
                parsed.malformed += 1;
                parsed.first_malformed_line.get_or_insert(i + 1);
            }
        }
    }
    parsed
}

/// Reads a records file, skipping malformed lines (counted in [`ParsedRecords::malformed`]).
pub fn read_records_counted(path: &Path) -> io::Result<ParsedRecords> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    Ok(parse_records(&bytes))
}

/// Reads a records file, skipping malformed lines (their count is logged as a warning; use
/// [`read_records_counted`] to get it).
pub fn read_records(path: &Path) -> io::Result<Vec<Record>> {
    let parsed = read_records_counted(path)?;
    if parsed.malformed > 0 {
        tracing::warn!(
            path = %path.display(),
            malformed = parsed.malformed,
            first_line = parsed.first_malformed_line,
            "skipped malformed record lines"
        );
    }
    Ok(parsed.records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(t_ms: u64, outcome: Outcome) -> Record {
        Record::Request(Request {
            t_ms,
            latency_us: 1500,
            gateway: 0,
            transport: Transport::Ws,
            method: "eth_getBalance".into(),
            outcome,
            served_by: Some("12D3KooWpeer".into()),
            served_by_node: Some(2),
            attempts: 2,
            detail: (outcome != Outcome::Ok).then(|| "balance 2x the truth".into()),
            subject: None,
            verify: None,
        })
    }

    #[test]
    fn wire_format_is_tagged_and_lowercase() {
        let line = serde_json::to_string(&request(12, Outcome::Wrong)).unwrap();
        assert!(line.starts_with(r#"{"type":"request","t_ms":12,"latency_us":1500,"gateway":0,"transport":"ws""#));
        assert!(line.contains(r#""outcome":"wrong""#));
        let fault = Record::Fault(FaultEvent { t_ms: 5, node: None, kind: "heal".into(), action: FaultAction::Heal });
        assert_eq!(
            serde_json::to_string(&fault).unwrap(),
            r#"{"type":"fault","t_ms":5,"kind":"heal","action":"heal"}"#
        );
    }

    #[test]
    fn optional_fields_may_be_missing() {
        let r: Record = serde_json::from_str(
            r#"{"type":"request","t_ms":1,"latency_us":2,"gateway":3,"transport":"http","method":"m","outcome":"error"}"#,
        )
        .unwrap();
        let Record::Request(r) = r else { panic!("not a request") };
        assert_eq!((r.served_by, r.served_by_node, r.attempts, r.detail), (None, None, 0, None));
        let m: Record = serde_json::from_str(r#"{"type":"meta","scenario":"s","nodes":2}"#).unwrap();
        assert_eq!(m, Record::Meta(Meta { scenario: "s".into(), nodes: 2, ..Meta::default() }));
    }

    #[test]
    fn new_kinds_round_trip() {
        let records = [
            Record::Meta(Meta {
                node_policies: vec![NodePolicies { node: 1, policies: vec!["filters:address-list:ab".into()] }],
                ..Meta::default()
            }),
            Record::Label(LabelChange {
                t_ms: 1,
                observer: 0,
                subject: 1,
                chain_id: 31337,
                labelled: true,
                subjects: vec!["0xab".into()],
            }),
            Record::Cordon(CordonChange {
                t_ms: 3,
                observer: 2,
                subject: 1,
                chain_id: 31337,
                cordoned: true,
                kind: "state".into(),
                reporter: Some(0),
                evidence_id: Some(4),
                began_t_ms: Some(2),
                reason: "proven state lie answering eth_getBalance (evidence 4)".into(),
            }),
            Record::Cordon(CordonChange {
                t_ms: 9,
                observer: 2,
                subject: 1,
                chain_id: 31337,
                cordoned: false,
                kind: String::new(),
                reporter: None,
                evidence_id: None,
                began_t_ms: None,
                reason: String::new(),
            }),
            Record::Transaction(SentTransaction {
                t_ms: 2,
                gateway: 1,
                from: "0x01".into(),
                to: "0x02".into(),
                hash: "0x03".into(),
                accepted: false,
                detail: Some("refused".into()),
                mined_block: None,
            }),
        ];
        let text: String = records.iter().map(|r| serde_json::to_string(r).unwrap() + "\n").collect();
        let parsed = parse_records(text.as_bytes());
        assert_eq!(parsed.malformed, 0, "{text}");
        assert_eq!(parsed.records, records);
        let Record::Meta(m) = &records[0] else { unreachable!() };
        assert_eq!(m.policies_of(1), ["filters:address-list:ab"]);
        assert!(m.policies_of(0).is_empty());
    }

    #[test]
    fn parse_skips_and_counts_malformed_lines() {
        let good = serde_json::to_string(&request(1, Outcome::Ok)).unwrap();
        let text = format!("{good}\n\n{{\"type\":\"nope\"}}\n{good}\n{{\"type\":\"request\",\"t_ms\":");
        let parsed = parse_records(text.as_bytes());
        assert_eq!(parsed.records.len(), 2);
        assert_eq!(parsed.malformed, 2);
        assert_eq!(parsed.first_malformed_line, Some(3));
    }

    #[test]
    fn base_kinds() {
        for (kind, base) in [
            ("down", "down"),
            ("slow=200ms", "slow"),
            ("errors=0.3", "errors"),
            ("censor=0xabc", "censor"),
            ("partition 0,1,2:3,4", "partition"),
            (" lie ", "lie"),
        ] {
            assert_eq!(base_kind(kind), base);
        }
    }

    #[test]
    fn t_ms_of_each_kind() {
        assert_eq!(Record::Meta(Meta::default()).t_ms(), None);
        assert_eq!(request(7, Outcome::Ok).t_ms(), Some(7));
        let Record::Request(r) = request(7, Outcome::Ok) else { unreachable!() };
        assert_eq!(r.end_us(), 8500);
    }
}
