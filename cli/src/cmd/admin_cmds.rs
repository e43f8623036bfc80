//! `rpcmesh status`, `rpcmesh peers`, `rpcmesh routes`, `rpcmesh evidence`: the admin API as
//! readable tables.

use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use serde_json::Value;

use crate::Failure;
use crate::home::{HomeArgs, load_config};

/// Where the admin API is.
#[derive(Debug, Args)]
pub struct AdminTarget {
    /// Admin API URL [default: from the home's config admin.addr, else http://127.0.0.1:8546]
    #[arg(long, value_name = "URL", env = "RPCMESH_ADMIN_URL")]
    admin: Option<String>,
    #[command(flatten)]
    home: HomeArgs,
    /// Print the raw JSON
    #[arg(long)]
    json: bool,
}

impl AdminTarget {
    /// The admin token from the home, if there is one (needed beyond loopback).
    fn token(&self) -> Option<String> {
        admin_token(&self.home)
    }

    fn base(&self) -> anyhow::Result<String> {
        admin_base(self.admin.as_deref(), &self.home)
    }
}

/// The admin token in `home` (its `admin.token_file`), if there is one.
pub(crate) fn admin_token(home: &HomeArgs) -> Option<String> {
    let home = home.resolve().ok()?;
    let token_file = match home.join(rpcmesh_node::config::CONFIG_FILE).exists() {
        true => load_config(&home, &[]).ok()?.admin.token_file,
        false => rpcmesh_node::config::AdminConfig::default().token_file,
    };
    rpcmesh_node::admin::auth::read_token_file(&rpcmesh_node::config::Config::resolve(&home, &token_file)).ok()
}

/// The admin API's base URL: `url` when given, else `home`'s `admin.addr`, else the default.
pub(crate) fn admin_base(url: Option<&str>, home: &HomeArgs) -> anyhow::Result<String> {
    if let Some(url) = url {
        return Ok(url.trim_end_matches('/').to_string());
    }
    let addr = match home.resolve() {
        Ok(home) if home.join(rpcmesh_node::config::CONFIG_FILE).exists() => load_config(&home, &[])?.admin.addr,
        _ => rpcmesh_node::config::AdminConfig::default().addr,
    };
    Ok(format!("http://{addr}"))
}

fn fetch(url: &str, token: Option<&str>) -> anyhow::Result<Value> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let body = rt.block_on(rpcmesh_node::admin::client::get_ok_with_token(url, token, Duration::from_secs(10)))?;
    serde_json::from_slice(&body).with_context(|| format!("{url} did not answer JSON"))
}

fn delete(url: &str, token: Option<&str>) -> anyhow::Result<Value> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let body = rt.block_on(rpcmesh_node::admin::client::delete(url, token, Duration::from_secs(10)))?;
    serde_json::from_slice(&body).with_context(|| format!("{url} did not answer JSON"))
}

/// Arguments of `rpcmesh status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    target: AdminTarget,
}

/// Prints this node's status.
pub fn status(args: StatusArgs) -> Result<(), Failure> {
    let v = fetch(&format!("{}/status", args.target.base()?), args.target.token().as_deref())?;
    if args.target.json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    let s = |k: &str| v.get(k).map(display).unwrap_or_default();
    println!("peer_id          {}", s("peer_id"));
    println!("network          {}", s("network_id"));
    println!("version          {}", s("version"));
    println!("uptime           {} s", s("uptime_secs"));
    println!("trust mode       {}", s("trust_mode"));
    println!("gateway          {}", s("gateway_addr"));
    println!("listen           {}", list(v.get("listen_addrs")));
    println!("connected peers  {}", s("connected_peers"));
    println!("providers known  {}", s("providers_known"));
    for w in v.get("warnings").and_then(Value::as_array).into_iter().flatten() {
        println!("WARNING          {}", w.as_str().unwrap_or_default());
    }
    println!();
    println!(
        "{:<8} {:<12} {:>10} {:>10}  {:<10} {:>9}  UPSTREAM",
        "CHAIN", "ALIASES", "HEAD", "REF HEAD", "STATE", "P50 MS"
    );
    for c in v.get("chains").and_then(Value::as_array).into_iter().flatten() {
        let ups = c.get("upstreams").and_then(Value::as_array).cloned().unwrap_or_default();
        if ups.is_empty() {
            println!(
                "{:<8} {:<12} {:>10} {:>10}  {:<10}",
                display(&c["chain_id"]),
                list(c.get("aliases")),
                display(&c["head"]),
                display(&c["reference_head"]),
                "-"
            );
        }
        for u in ups {
            let p50 = u
                .pointer("/window/p50_us")
                .and_then(Value::as_u64)
                .map(|us| format!("{:.2}", us as f64 / 1000.0))
                .unwrap_or_else(|| "-".into());
            println!(
                "{:<8} {:<12} {:>10} {:>10}  {:<10} {:>9}  {}",
                display(&c["chain_id"]),
                list(c.get("aliases")),
                display(&c["head"]),
                display(&c["reference_head"]),
                display(&u["state"]),
                p50,
                display(&u["url"])
            );
        }
    }
    Ok(())
}

/// Arguments of `rpcmesh peers`.
#[derive(Debug, Args)]
pub struct PeersArgs {
    #[command(flatten)]
    target: AdminTarget,
    /// Only providers announcing this chain
    #[arg(long, value_name = "ID")]
    chain: Option<u64>,
}

/// Prints every known provider.
pub fn peers(args: PeersArgs) -> Result<(), Failure> {
    let mut url = format!("{}/peers", args.target.base()?);
    if let Some(c) = args.chain {
        url.push_str(&format!("?chain={c}"));
    }
    let v = fetch(&url, args.target.token().as_deref())?;
    if args.target.json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    println!(
        "{:<14} {:<4} {:<9} {:<5} {:>6} {:>10} {:>5} {:<9} {:>8} {:>5} {:>6} {:>7} {:>4}  {:<28} {:<30} VETTED",
        "PEER",
        "",
        "TRUST",
        "CONN",
        "CHAIN",
        "HEAD",
        "LAG",
        "HEALTH",
        "P50 MS",
        "UTIL",
        "AGE S",
        "ATTEST",
        "LIES",
        "CORDON",
        "FILTERS"
    );
    for p in v.get("providers").and_then(Value::as_array).into_iter().flatten() {
        let peer = display(&p["peer_id"]);
        let short = if peer.len() > 14 { format!("…{}", &peer[peer.len() - 12..]) } else { peer };
        let me = if p["is_self"].as_bool() == Some(true) { "self" } else { "" };
        let trust = p.pointer("/trust/kind").map(display).unwrap_or_default();
        let conn = if p["connected"].as_bool() == Some(true) { "yes" } else { "no" };
        let age = p["announcement_age_ms"].as_u64().map(|ms| format!("{:.1}", ms as f64 / 1000.0)).unwrap_or_default();
        let atts = p["attestations"].as_array().map(|a| a.len()).unwrap_or(0);
        let vetted = vetting(p.pointer("/trust/vetting"));
        for c in p.get("chains").and_then(Value::as_array).into_iter().flatten() {
            if args.chain.is_some_and(|id| c["chain_id"].as_u64() != Some(id)) {
                continue;
            }
            let p50 = c["latency_p50_us"]
                .as_u64()
                .map(|us| format!("{:.2}", us as f64 / 1000.0))
                .unwrap_or_else(|| "-".into());
            let util = c["utilisation_permille"].as_u64().map(|u| format!("{}%", u / 10)).unwrap_or_default();
            let cordon = p["cordons"]
                .as_array()
                .and_then(|cs| cs.iter().find(|x| x["chain_id"] == c["chain_id"]))
                .map(|x| format!("{} (evidence {})", display(&x["kind"]), display(&x["evidence_id"])))
                .unwrap_or_else(|| "-".into());
            let filters = filters_cell(p, c);
            println!(
                "{:<14} {:<4} {:<9} {:<5} {:>6} {:>10} {:>5} {:<9} {:>8} {:>5} {:>6} {:>7} {:>4}  {:<28} {:<30} {}",
                short,
                me,
                trust,
                conn,
                display(&c["chain_id"]),
                display(&c["head"]),
                display(&c["lag_blocks"]),
                display(&c["health"]),
                p50,
                util,
                age,
                atts,
                display(&p["proven_lies"]),
                cordon,
                filters,
                vetted
            );
        }
    }
    Ok(())
}

/// What a provider filters on one chain: proven (a label from evidence: its first subject and
/// how many more) over declared (its announced policies); `-` for neither.
fn filters_cell(p: &Value, chain: &Value) -> String {
    let label = p["filters"].as_array().and_then(|fs| fs.iter().find(|x| x["chain_id"] == chain["chain_id"]));
    if let Some(l) = label {
        let subjects: Vec<String> = l["subjects"].as_array().into_iter().flatten().map(display).collect();
        let first = subjects.first().map(|s| {
            if s.chars().count() > 14 { format!("{}…", s.chars().take(12).collect::<String>()) } else { s.clone() }
        });
        let more = if subjects.len() > 1 { format!(" +{}", subjects.len() - 1) } else { String::new() };
        return format!("proven {}{more} (ev {})", first.unwrap_or_default(), display(&l["evidence_id"]));
    }
    match chain["policies"].as_array().filter(|ps| !ps.is_empty()) {
        Some(ps) => format!("declared {}", ps.iter().map(display).collect::<Vec<_>>().join(",")),
        None => "-".into(),
    }
}

/// A member's vetting from its certificate, as `pass 2026-11-20 rpcmesh-default-v1`; `-` without.
fn vetting(v: Option<&Value>) -> String {
    let Some(v) = v else { return "-".into() };
    let date = v["vetted_at_ms"].as_u64().map(rpcmesh_testnet::report::fmt::utc).unwrap_or_default();
    format!("{} {} {}", display(&v["verdict"]), date.split(' ').next().unwrap_or(""), display(&v["policy"]))
}

fn display(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn list(v: Option<&Value>) -> String {
    v.and_then(Value::as_array).map(|a| a.iter().map(display).collect::<Vec<_>>().join(",")).unwrap_or_default()
}

/// Arguments of `rpcmesh routes`.
#[derive(Debug, Args)]
pub struct RoutesArgs {
    #[command(flatten)]
    target: AdminTarget,
    /// Chain to explain [default: the node's first chain]
    #[arg(long, value_name = "ID")]
    chain: Option<u64>,
    /// Method to judge (namespace matters: eth_*, debug_*, trace_*)
    #[arg(long, default_value = "eth_blockNumber")]
    method: String,
}

/// Prints the routing decision for a chain: every candidate, its score and why.
pub fn routes(args: RoutesArgs) -> Result<(), Failure> {
    let mut url = format!("{}/explain?method={}", args.target.base()?, args.method);
    if let Some(c) = args.chain {
        url.push_str(&format!("&chain={c}"));
    }
    let v = fetch(&url, args.target.token().as_deref())?;
    if args.target.json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    println!(
        "chain {}  method {}  failover {}  reference head {}",
        display(&v["chain_id"]),
        display(&v["method"]),
        display(&v["failover"]),
        display(&v["reference_head"])
    );
    println!(
        "{:<4} {:<5} {:<14} {:<9} {:>10} {:<12} {:>6} {:>5} {:>5} {:>10}  WHY NOT",
        "RANK", "KIND", "PEER", "ELIGIBLE", "LAT MS", "LAT FROM", "ERR%", "UTIL", "LAG", "SCORE"
    );
    for (i, c) in v["candidates"].as_array().into_iter().flatten().enumerate() {
        let peer = display(&c["peer_id"]);
        let short = if peer.len() > 14 { format!("…{}", &peer[peer.len() - 12..]) } else { peer };
        let reasons =
            c["reasons"].as_array().map(|r| r.iter().map(display).collect::<Vec<_>>().join("; ")).unwrap_or_default();
        println!(
            "{:<4} {:<5} {:<14} {:<9} {:>10.2} {:<12} {:>6.1} {:>5.0} {:>5} {:>10.0}  {}",
            i + 1,
            display(&c["kind"]),
            short,
            if c["eligible"] == true { "yes" } else { "no" },
            c["latency_us"].as_f64().unwrap_or(0.0) / 1000.0,
            display(&c["latency_source"]),
            c["error_rate"].as_f64().unwrap_or(0.0) * 100.0,
            c["utilisation"].as_f64().unwrap_or(0.0) * 100.0,
            display(&c["lag_blocks"]),
            c["score"].as_f64().unwrap_or(0.0),
            reasons
        );
    }
    Ok(())
}

/// Arguments of `rpcmesh evidence`.
#[derive(Debug, Args)]
pub struct EvidenceArgs {
    #[command(subcommand)]
    command: EvidenceCommand,
}

#[derive(Debug, clap::Subcommand)]
enum EvidenceCommand {
    /// List the evidence bundles this node keeps (its own reports and proven ones from the mesh)
    List {
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Show one bundle: the decoded fields and the signed bytes anyone can re-check
    Show {
        /// Evidence id (from `rpcmesh evidence list`)
        id: u64,
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Lift the cordon of a provider (the evidence stays on record)
    Clear {
        /// The provider's PeerId or public key (hex)
        peer: String,
        /// Only this chain [default: every chain]
        #[arg(long, value_name = "ID")]
        chain: Option<u64>,
        #[command(flatten)]
        target: AdminTarget,
    },
}

fn utc(ms: &Value) -> String {
    ms.as_u64().map(rpcmesh_testnet::report::fmt::utc).unwrap_or_else(|| "-".into())
}

fn short(peer: String) -> String {
    if peer.len() > 14 { format!("…{}", &peer[peer.len() - 12..]) } else { peer }
}

/// `rpcmesh evidence list|show|clear`.
pub fn evidence(args: EvidenceArgs) -> Result<(), Failure> {
    match args.command {
        EvidenceCommand::List { target } => {
            let v = fetch(&format!("{}/evidence", target.base()?), target.token().as_deref())?;
            if target.json {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                return Ok(());
            }
            println!(
                "{:>6}  {:<14} {:>6}  {:<26} {:<12} {:<20} {:<14} {:<8} CORDONING",
                "ID", "ACCUSED", "CHAIN", "METHOD", "KIND", "WHEN (UTC)", "REPORTER", "VERIFIED"
            );
            for e in v["evidence"].as_array().into_iter().flatten() {
                let reporter = if e["own"] == true { "this node".to_string() } else { short(display(&e["reporter"])) };
                println!(
                    "{:>6}  {:<14} {:>6}  {:<26} {:<12} {:<20} {:<14} {:<8} {}",
                    display(&e["id"]),
                    short(display(&e["accused"])),
                    display(&e["chain_id"]),
                    display(&e["method"]),
                    display(&e["kind"]),
                    utc(&e["issued_at_ms"]),
                    reporter,
                    if e["verified"] == true { "yes" } else { "no" },
                    if e["cordoning"] == true { "yes" } else { "no" },
                );
            }
        }
        EvidenceCommand::Show { id, target } => {
            let v = fetch(&format!("{}/evidence/{id}", target.base()?), target.token().as_deref())?;
            if target.json {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                return Ok(());
            }
            println!("evidence   {}", display(&v["id"]));
            println!("accused    {}", display(&v["accused"]));
            println!("chain      {}", display(&v["chain_id"]));
            println!("method     {}", display(&v["method"]));
            println!("kind       {}", display(&v["kind"]));
            println!("reported   {} by {}", utc(&v["issued_at_ms"]), display(&v["reporter"]));
            println!("verified   {}", if v["verified"] == true { "yes (re-proven by this node)" } else { "no" });
            println!(
                "anchor     {} {}",
                display(&v["decoded"]["anchor"]["number"]),
                display(&v["decoded"]["anchor"]["hash"])
            );
            println!("request    {}", display(&v["decoded"]["request"]));
            println!("response   {}", display(&v["decoded"]["response"]));
            for (i, m) in v["decoded"]["material"].as_array().into_iter().flatten().enumerate() {
                let m = display(m);
                let cut = if m.len() > 200 {
                    format!("{}… ({} bytes)", &m[..m.floor_char_boundary(200)], m.len())
                } else {
                    m
                };
                println!("material[{i}] {cut}");
            }
            println!("signed     {} bytes (--json for the hex)", display(&v["signed_hex"]).len() / 2);
        }
        EvidenceCommand::Clear { peer, chain, target } => {
            let mut url = format!("{}/cordons/{peer}", target.base()?);
            if let Some(c) = chain {
                url.push_str(&format!("?chain={c}"));
            }
            let v = delete(&url, target.token().as_deref())?;
            if target.json {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                return Ok(());
            }
            let chains = list(v.get("cleared_chains"));
            if chains.is_empty() {
                println!("{} had no cordon or filter label to clear", display(&v["peer"]));
            } else {
                println!("cleared the cordons and filter labels of {} on chain(s) {chains}", display(&v["peer"]));
            }
        }
    }
    Ok(())
}
