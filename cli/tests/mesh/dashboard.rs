//! The Grafana dashboard (deploy/grafana/dashboards/rpcmesh.json) queries only what daemons
//! export: every metric name in its PromQL (panel targets and template variables) is checked
//! against the `/metrics` of a live mesh — A with no node of its own, B and C over one anvil —
//! after traffic served by A's peers (relays) and by B's own node, over HTTP and WebSocket.
//!
//! What "exists" means, decided here:
//! - every name is declared by a `# TYPE` line of a type that has that name: a gauge by its own
//!   name, a counter `X` as `X_total`, a histogram `X` as `X_bucket`, `X_sum` or `X_count` (so a
//!   query of `rpcmesh_relays` instead of `rpcmesh_relays_total`, or of a histogram's bare
//!   name, fails);
//! - every name has at least one sample after the traffic. The metrics library exports an empty
//!   family not at all, not even its `# TYPE`, so "declared but no sample yet" cannot be told
//!   from "misspelt"; the daemon therefore creates at 0 the series of families that only move
//!   on events a healthy mesh never has (evidence, censorship refusals and canaries, relay
//!   bytes: `NodeMetrics::init_zero`), and the traffic here makes the rest appear;
//! - label names in selectors exist on the metric's samples, and grouping labels (`by`, `on`,
//!   ...) on one of the expression's metrics (Prometheus adds `instance` and `job`).
//!
//! Metric names are found by scanning the PromQL, not by a full parser: identifiers that are
//! not functions, aggregations or keywords are metric names, and a name outside `rpcmesh_` and
//! `libp2p_` fails the test (the daemon exports nothing else, so such a query would graph
//! another exporter's data or nothing). Syntax is Prometheus's to judge: `promtool check rules`
//! on the expressions is how the dashboard was checked when written (docs/operator-guide.md).

use std::collections::{BTreeSet, HashMap, HashSet};

use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::failover::RpcClient;
use crate::support::*;

const CHAIN: u64 = 31337;

/// Labels Prometheus adds to every scraped series.
const TARGET_LABELS: &[&str] = &["instance", "job"];

fn dashboard() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana/dashboards/rpcmesh.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Every panel target's `expr`, with the panel's title.
fn panel_exprs(dash: &Value) -> Vec<(String, String)> {
    fn walk(v: &Value, title: &str, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(m) => {
                let title = m.get("title").and_then(Value::as_str).unwrap_or(title);
                for (k, x) in m {
                    match (k.as_str(), x) {
                        ("expr", Value::String(e)) => out.push((title.to_string(), e.clone())),
                        _ => walk(x, title, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, title, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&dash["panels"], "", &mut out);
    out
}

/// `label_values(METRIC, LABEL)` of every query variable: (variable, metric, label).
fn variable_queries(dash: &Value) -> Vec<(String, String, String)> {
    let vars = dash["templating"]["list"].as_array().cloned().unwrap_or_default();
    vars.iter()
        .filter(|v| v["type"] == "query")
        .map(|v| {
            let name = v["name"].as_str().unwrap_or("?").to_string();
            let q = v["query"]["query"].as_str().or(v["query"].as_str()).unwrap_or("");
            let args = q
                .strip_prefix("label_values(")
                .and_then(|r| r.strip_suffix(')'))
                .unwrap_or_else(|| panic!("variable {name}: expected label_values(METRIC, LABEL), got {q:?}"));
            let (metric, label) =
                args.split_once(',').unwrap_or_else(|| panic!("variable {name}: {q:?} names no metric and label"));
            (name, metric.trim().to_string(), label.trim().to_string())
        })
        .collect()
}

/// A metric selector found in an expression.
#[derive(Debug)]
struct Selector {
    name: String,
    labels: Vec<String>,
}

/// The metric selectors and grouping labels (`by`, `without`, `on`, `ignoring`, `group_left`,
/// `group_right`) of a PromQL expression, Grafana variables included (`$x` is skipped).
fn scan(expr: &str) -> (Vec<Selector>, Vec<String>) {
    const NOT_METRICS: &[&str] = &[
        // Keywords and operators.
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "inf",
        "nan", // Aggregations, which may be followed by `by (...)` instead of `(`.
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
    ];
    const GROUPING: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];
    let b = expr.as_bytes();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    let ident = |i: &mut usize| -> String {
        let start = *i;
        while *i < b.len() && (b[*i].is_ascii_alphanumeric() || b[*i] == b'_' || b[*i] == b':') {
            *i += 1;
        }
        expr[start..*i].to_string()
    };
    let skip_string = |i: &mut usize| {
        let quote = b[*i];
        *i += 1;
        while *i < b.len() && b[*i] != quote {
            *i += if b[*i] == b'\\' { 2 } else { 1 };
        }
        *i += 1;
    };
    let (mut selectors, mut grouping) = (Vec::new(), Vec::new());
    while i < b.len() {
        let c = b[i];
        if c == b'"' || c == b'\'' || c == b'`' {
            skip_string(&mut i);
        } else if c == b'[' {
            // A range or subquery duration, e.g. `[$__rate_interval]`.
            while i < b.len() && b[i] != b']' {
                i += 1;
            }
        } else if c == b'$' {
            i += 1;
            ident(&mut i);
        } else if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                i += 1;
            }
            continue;
        } else if c.is_ascii_alphabetic() || c == b'_' || c == b':' {
            let word = ident(&mut i);
            skip_ws(&mut i);
            let next = b.get(i).copied();
            if GROUPING.contains(&word.as_str()) {
                if next == Some(b'(') {
                    let close = expr[i..].find(')').map_or(b.len(), |p| i + p);
                    grouping
                        .extend(expr[i + 1..close].split(',').map(|l| l.trim().to_string()).filter(|l| !l.is_empty()));
                    i = close;
                }
            } else if next == Some(b'(') || NOT_METRICS.contains(&word.as_str()) {
                // A function call, an aggregation or a keyword.
            } else {
                let mut labels = Vec::new();
                if next == Some(b'{') {
                    i += 1;
                    loop {
                        skip_ws(&mut i);
                        if i >= b.len() || b[i] == b'}' {
                            break;
                        }
                        labels.push(ident(&mut i));
                        while i < b.len() && b[i] != b'"' && b[i] != b'\'' && b[i] != b'`' && b[i] != b'}' {
                            i += 1;
                        }
                        if i < b.len() && b[i] != b'}' {
                            skip_string(&mut i);
                        }
                        skip_ws(&mut i);
                        if i < b.len() && b[i] == b',' {
                            i += 1;
                        }
                    }
                }
                selectors.push(Selector { name: word, labels });
            }
            continue;
        }
        i += 1;
    }
    (selectors, grouping)
}

/// What a scrape declares and has: `# TYPE` by family, label names by sample name.
#[derive(Default)]
struct Exposition {
    types: HashMap<String, String>,
    samples: HashMap<String, HashSet<String>>,
}

impl Exposition {
    fn add(&mut self, text: &str) {
        for line in text.lines() {
            if let Some(t) = line.strip_prefix("# TYPE ") {
                if let Some((name, kind)) = t.split_once(' ') {
                    self.types.insert(name.to_string(), kind.to_string());
                }
                continue;
            }
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            let labels = self.samples.entry(line[..end].to_string()).or_default();
            if line[end..].starts_with('{') {
                labels.extend(label_names(&line[end + 1..]));
            }
        }
    }

    /// Why `name` is not something a query can use, if it is not.
    fn undeclared(&self, name: &str) -> Option<String> {
        let typed = |family: &str, kind: &str| self.types.get(family).is_some_and(|k| k == kind);
        let ok = typed(name, "gauge")
            || name.strip_suffix("_total").is_some_and(|f| typed(f, "counter"))
            || ["_bucket", "_sum", "_count"]
                .iter()
                .any(|s| name.strip_suffix(s).is_some_and(|f| typed(f, "histogram")));
        (!ok).then(|| match self.types.get(name) {
            Some(kind) => format!("{name} is a {kind}: query it with its sample suffix"),
            None => format!("{name} is not declared by any `# TYPE` line"),
        })
    }
}

/// Label names of a sample's `a="x",b="y"} value` (values may hold `,`, `}` and escaped quotes).
fn label_names(s: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = s;
    while let Some((name, after)) = rest.split_once("=\"") {
        names.push(name.trim_start_matches(',').to_string());
        let b = after.as_bytes();
        let mut i = 0;
        while i < b.len() && b[i] != b'"' {
            i += if b[i] == b'\\' { 2 } else { 1 };
        }
        rest = after.get(i + 1..).unwrap_or("");
        if rest.starts_with('}') {
            break;
        }
    }
    names
}

/// A (no node) relays to B and C; B and C serve their own node; a refused method, a batch with
/// an unknown method, a WebSocket call; reads integrity checks sample.
async fn traffic(a: &str, b: &str) {
    let via_a = RpcClient::at(format!("http://{a}/{CHAIN}"));
    let via_b = RpcClient::at(format!("http://{b}/{CHAIN}"));
    for _ in 0..10 {
        let r = via_a.call("eth_getBlockByNumber", json!(["latest", false])).await;
        assert!(r.body.get("result").is_some(), "{}", r.body);
        let r = via_a.call("eth_getBalance", json!(["0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266", "latest"])).await;
        assert!(r.body.get("result").is_some(), "{}", r.body);
        let r = via_b.call("eth_blockNumber", json!([])).await;
        assert!(r.body.get("result").is_some(), "{}", r.body);
    }
    let r = via_a.call("eth_sign", json!(["0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266", "0xdeadbeef"])).await;
    assert!(r.body.get("error").is_some(), "{}", r.body);
    let batch = json!([
        { "jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": [] },
        { "jsonrpc": "2.0", "id": 2, "method": "rpcmesh_noSuchMethod", "params": [] },
    ]);
    via_a.call_raw(&batch.to_string(), &[]).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{a}/{CHAIN}")).await.expect("websocket connects");
    ws.send(Message::text(r#"{"jsonrpc":"2.0","id":7,"method":"eth_blockNumber","params":[]}"#)).await.unwrap();
    let answer = ws.next().await.expect("an answer").expect("a message");
    assert!(answer.to_text().unwrap_or("").contains("\"result\""), "{answer:?}");
}

#[test]
fn scan_finds_metrics_labels_and_grouping() {
    let (sel, grouping) = scan(
        r#"histogram_quantile(0.99, sum by (le, transport) (rate(rpcmesh_request_duration_seconds_bucket{instance=~"$instance",chain=~"a,}b"}[$__rate_interval]))) / on (chain) group_right up"#,
    );
    let names: Vec<&str> = sel.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["rpcmesh_request_duration_seconds_bucket", "up"]);
    assert_eq!(sel[0].labels, ["instance", "chain"]);
    assert_eq!(grouping, ["le", "transport", "chain"]);
    let (sel, _) = scan("count(rpcmesh_upstream_up == 0) or vector(0)");
    assert_eq!(sel.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["rpcmesh_upstream_up"]);
    assert_eq!(label_names(r#"protocols="/ip4/tcp",direction="In\"b}ound"} 3"#), ["protocols", "direction"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_queries_exists_on_a_live_mesh() {
    let dash = dashboard();
    let exprs = panel_exprs(&dash);
    let vars = variable_queries(&dash);
    assert!(exprs.len() >= 20, "the dashboard has its panels: {}", exprs.len());
    let mut ids = HashSet::new();
    for p in dash["panels"].as_array().expect("panels") {
        assert!(ids.insert(p["id"].as_u64().expect("a panel id")), "duplicate panel id {}", p["id"]);
        assert!(p["gridPos"]["w"].as_u64().is_some_and(|w| w <= 24), "panel {} fits the grid", p["title"]);
        if p["type"] != "row" {
            assert!(!p["targets"].as_array().is_none_or(Vec::is_empty), "panel {} has queries", p["title"]);
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let anvil = Anvil::start(CHAIN).await;
    let net = "dashboard";
    let a = start(spec(dir.path(), "a", net, vec![], vec![], fast_sets())).await;
    let boot = a.p2p_addr().await.unwrap();
    let b = start(spec(dir.path(), "b", net, vec![(CHAIN, anvil.url())], vec![boot.clone()], fast_sets())).await;
    let c = start(spec(dir.path(), "c", net, vec![(CHAIN, anvil.url())], vec![boot], fast_sets())).await;
    let others = [b.peer_id.clone(), c.peer_id.clone()];
    wait("A to see B and C healthy", async || {
        let p = peers(&a).await;
        others.iter().all(|id| provider(&p, id).is_some_and(|v| v["chains"][0]["health"] == "healthy"))
    })
    .await;
    traffic(&a.gateway_addr, &b.gateway_addr).await;

    let mut scraped = Exposition::default();
    for d in [&a, &b, &c] {
        scraped.add(&d.metrics().await.expect("/metrics answers"));
    }

    let mut problems = BTreeSet::new();
    let mut used = BTreeSet::new();
    for (title, expr) in &exprs {
        let (selectors, grouping) = scan(expr);
        if selectors.is_empty() {
            problems.insert(format!("panel {title:?}: no metric in {expr:?}"));
        }
        let mut expr_labels: HashSet<&str> = TARGET_LABELS.iter().copied().chain(["le"]).collect();
        for s in &selectors {
            used.insert(s.name.clone());
            if !s.name.starts_with("rpcmesh_") && !s.name.starts_with("libp2p_") {
                problems.insert(format!("panel {title:?}: {} is not an rpcmesh_ or libp2p_ metric", s.name));
                continue;
            }
            if let Some(why) = scraped.undeclared(&s.name) {
                problems.insert(format!("panel {title:?}: {why}"));
                continue;
            }
            let Some(have) = scraped.samples.get(&s.name) else { continue };
            expr_labels.extend(have.iter().map(String::as_str));
            for l in s.labels.iter().filter(|l| !TARGET_LABELS.contains(&l.as_str()) && !have.contains(*l)) {
                problems.insert(format!("panel {title:?}: {} has no label {l} (it has {have:?})", s.name));
            }
        }
        for l in grouping.iter().filter(|l| !expr_labels.contains(l.as_str())) {
            problems.insert(format!("panel {title:?}: grouping label {l} is on none of its metrics: {expr}"));
        }
    }
    for (var, metric, label) in &vars {
        used.insert(metric.clone());
        match (scraped.undeclared(metric), scraped.samples.get(metric)) {
            (Some(why), _) => {
                problems.insert(format!("variable {var}: {why}"));
            }
            (None, Some(have)) if !have.contains(label) && !TARGET_LABELS.contains(&label.as_str()) => {
                problems.insert(format!("variable {var}: {metric} has no label {label}"));
            }
            _ => {}
        }
    }
    for name in &used {
        if !scraped.samples.contains_key(name) && scraped.undeclared(name).is_none() {
            problems.insert(format!("{name} is declared but has no sample after the test's traffic"));
        }
    }
    assert!(problems.is_empty(), "the dashboard queries what the daemons do not export:\n{}", {
        problems.into_iter().collect::<Vec<_>>().join("\n")
    });
}
