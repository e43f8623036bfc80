//! `rpcmesh federation vet`: runs the vetting battery (`rpcmesh_testnet::vet`) against a
//! candidate's endpoint (`--endpoint`), or against its own node through the mesh (`--peer`: a
//! running daemon's relay route, `--via` its admin API, the admin token read from `--home`),
//! writes the report directory and signs its digest with the vetting operator's key.
//!
//! The key: `--key FILE`, else the identity key of the node in `--home` (the operator's own
//! daemon). Not the federation root key, which `federation init` says to keep offline: vetting
//! runs on a networked host, and the root only needs the signed report at `admit` time.
//!
//! Exit codes: 0 pass, 1 fail (or an incomplete report after Ctrl-C), 2 usage.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use rpcmesh_node::config::Config;
use rpcmesh_protocol::{Identity, PublicKey};
use rpcmesh_testnet::vet::mesh::{self as vet_mesh, MeshError};
use rpcmesh_testnet::vet::policy::DEFAULT_POLICY_TOML;
use rpcmesh_testnet::vet::seal::{self, REPORT_JSON, REPORT_MD};
use rpcmesh_testnet::vet::target::redact_url;
use rpcmesh_testnet::vet::{
    self, HttpTarget, MeshTarget, Policy, Progress, ProgressSink, RpcTarget, Settings, VetConfig, VetError, VetReport,
};
use tokio_util::sync::CancellationToken;

use super::admin_cmds::{admin_base, admin_token};
use super::federation::parse_duration;
use crate::Failure;
use crate::home::{HomeArgs, load_config};

/// Longest ramp accepted: vetting is a test, not a soak.
const MAX_DURATION: Duration = Duration::from_secs(3600);
/// Highest rate accepted, requests/s.
const MAX_RATE: u32 = 100_000;
/// Network of a report when `--network-id` is not given (and no daemon says otherwise).
const DEFAULT_NETWORK: &str = "rpcmesh-mainnet";

/// Arguments of `rpcmesh federation vet`.
#[derive(Debug, Args)]
pub struct VetArgs {
    /// The candidate's JSON-RPC endpoint (http://)
    #[arg(long, value_name = "URL", conflicts_with = "peer")]
    endpoint: Option<String>,
    /// Vet a provider's own node through the mesh, by its PeerId: relayed by the running daemon
    /// at --via (its admin token read from --home) over libp2p
    #[arg(long, value_name = "PEERID")]
    peer: Option<String>,
    /// With --peer: the admin API of the daemon to relay through [default: from the home's
    /// config admin.addr, else http://127.0.0.1:8546]
    #[arg(long, value_name = "ADMIN_URL", requires = "peer")]
    via: Option<String>,
    /// The candidate's WebSocket endpoint (ws://), checked for newHeads without gaps (not with
    /// --peer: a relay carries no subscriptions)
    #[arg(long, value_name = "URL", conflicts_with = "peer")]
    ws: Option<String>,
    /// EIP-155 chain id the candidate must serve
    #[arg(long, value_name = "ID")]
    chain: Option<u64>,
    /// A trusted endpoint of the same chain to compare answers and heads with (repeatable)
    #[arg(long = "reference", value_name = "URL")]
    references: Vec<String>,
    /// Policy file (TOML) [default: the shipped policy, see --print-default-policy]
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Length of the load ramp, e.g. 60s, 5m
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// Top rate of the load ramp, requests/s: the rate the candidate claims to serve [default:
    /// 50; with --peer the candidate's announced max_requests_per_sec, which also caps it]
    #[arg(long, value_name = "N")]
    rate: Option<u32>,
    /// Directory for report.md, report.json, the plots and report.sig
    #[arg(long, value_name = "DIR", default_value = "vet-report")]
    out: PathBuf,
    /// Replace a report already in --out
    #[arg(long)]
    force: bool,
    /// The vetting operator's key (signs the report) [default: the identity key of --home]
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    #[command(flatten)]
    home: HomeArgs,
    /// Network the candidate is vetted for (must match the certificate's at admit) [default:
    /// rpcmesh-mainnet; with --peer the relaying daemon's network]
    #[arg(long, value_name = "ID")]
    network_id: Option<String>,
    /// The candidate's PeerId: the report can then only admit that member [default with --peer:
    /// that peer]
    #[arg(long, value_name = "PEERID")]
    member: Option<String>,
    /// Pin the correctness reads at this block (repeatable) [default: the first block with
    /// transactions at or below head - confirmations]
    #[arg(long = "block", value_name = "N")]
    blocks: Vec<u64>,
    /// Blocks below the head to pin reads at when no --block is given
    #[arg(long, value_name = "N", default_value_t = 64)]
    confirmations: u64,
    /// Timeout of one request
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
    /// How long the signed verdict stands, e.g. 30d
    #[arg(long, default_value = "30d", value_parser = parse_duration)]
    valid_for: Duration,
    /// Widest eth_getLogs range probed, blocks
    #[arg(long, value_name = "BLOCKS", default_value_t = 100_000)]
    logs_range_max: u64,
    /// Largest batch probed, calls
    #[arg(long, value_name = "CALLS", default_value_t = 1000)]
    batch_max: u64,
    /// Most requests in flight during the ramp (with --peer also at most the candidate's
    /// announced max_concurrent_relays, and 48)
    #[arg(long, value_name = "N", default_value_t = 512)]
    max_in_flight: usize,
    /// Print the shipped default policy (a commented TOML file to start from) and exit
    #[arg(long)]
    print_default_policy: bool,
}

fn usage(msg: String) -> Failure {
    Failure::Usage(anyhow::anyhow!(msg))
}

/// Runs `rpcmesh federation vet`.
pub fn run(args: VetArgs) -> Result<(), Failure> {
    if args.print_default_policy {
        print!("{DEFAULT_POLICY_TOML}");
        return Ok(());
    }
    let chain = args.chain.ok_or_else(|| usage("--chain ID is required".into()))?;
    if args.endpoint.is_none() && args.peer.is_none() {
        return Err(usage(
            "--endpoint URL (the candidate's node) or --peer PEERID (through the mesh) is required".into(),
        ));
    }
    if let Some(rate) = args.rate
        && (rate == 0 || rate > MAX_RATE)
    {
        return Err(usage(format!("--rate must be 1..={MAX_RATE}")));
    }
    if args.duration > MAX_DURATION {
        return Err(usage(format!("--duration must be at most {} s", MAX_DURATION.as_secs())));
    }
    if args.max_in_flight == 0 {
        return Err(usage("--max-in-flight must be positive".into()));
    }
    if let Some(ws) = &args.ws
        && !ws.starts_with("ws://")
    {
        return Err(usage(format!("--ws {}: only ws:// is supported", redact_url(ws))));
    }
    if let Some(m) = &args.member {
        PublicKey::parse(m).map_err(|e| usage(format!("--member {m:?}: {e}")))?;
    }
    let policy = match &args.policy {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| usage(format!("--policy {}: {e}", path.display())))?;
            Policy::from_toml(&text).map_err(|e| usage(format!("--policy {}: {e}", path.display())))?
        }
        None => Policy::shipped_default(),
    };
    // Checked before anything is read or written: a bad URL is a usage error.
    let direct = match &args.endpoint {
        Some(e) => Some(HttpTarget::new(e, args.timeout).map_err(|e| usage(format!("--endpoint {e}")))?),
        None => None,
    };
    let references = args
        .references
        .iter()
        .map(|u| HttpTarget::new(u, args.timeout).map_err(|e| usage(format!("--reference {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    if args.out.join(REPORT_JSON).exists() && !args.force {
        return Err(Failure::Runtime(anyhow::anyhow!(
            "{} already holds a report; pass --force to replace it, or another --out",
            args.out.display()
        )));
    }
    let vetter = load_key(&args)?;
    let mut config = VetConfig {
        chain_id: chain,
        network_id: args.network_id.clone().unwrap_or_else(|| DEFAULT_NETWORK.into()),
        member: args.member.clone(),
        ws_url: args.ws.clone(),
        settings: Settings {
            rate_per_sec: args.rate.unwrap_or(vet_mesh::DEFAULT_RATE),
            duration_ms: args.duration.as_millis() as u64,
            request_timeout_ms: args.timeout.as_millis() as u64,
            confirmations: args.confirmations,
            blocks: args.blocks.clone(),
            ws: args.ws.as_deref().map(redact_url),
            logs_range_max: args.logs_range_max.max(1),
            batch_max: args.batch_max.max(1),
            max_in_flight: args.max_in_flight,
        },
        policy,
    };

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let report = match (direct, &args.peer) {
        (Some(candidate), _) => rt.block_on(execute(&config, &candidate, &references)),
        (None, Some(peer)) => {
            let candidate = rt.block_on(through_mesh(&args, peer, &mut config))?;
            rt.block_on(execute(&config, &candidate, &references))
        }
        (None, None) => return Err(usage("--endpoint URL or --peer PEERID is required".into())),
    };
    let mut report = report.map_err(|e| Failure::Runtime(anyhow::anyhow!(e)))?;

    report.vetter = Some(vetter.peer_id().to_string());
    let digest = seal::write_report(&args.out, &report).context("writing the report")?;
    let summary = seal::sign_summary(&report, digest, &vetter, args.valid_for.as_millis() as u64);
    seal::write_signature(&args.out, &summary).context("writing the signature")?;

    let v = &report.verdict;
    println!(
        "{}{}: {} against policy {} (report {})",
        v.verdict.to_uppercase(),
        if report.partial { " (partial report)" } else { "" },
        report.candidate,
        report.policy.name,
        args.out.join(REPORT_MD).display()
    );
    for c in v.criteria.iter().filter(|c| c.outcome == vet::Outcome::Fail) {
        println!("  failed {}: {} (required: {})", c.name, c.measured, c.required);
    }
    println!("report digest {} signed by {}", hex_digest(&digest), vetter.peer_id());
    match v.verdict.as_str() {
        "pass" => Ok(()),
        "fail" => Err(Failure::Runtime(anyhow::anyhow!("the candidate failed: {}", v.failed.join(", ")))),
        _ if report.partial => {
            Err(Failure::Runtime(anyhow::anyhow!("the vetting is incomplete (interrupted); run it again")))
        }
        _ => {
            let not_run: Vec<&str> =
                v.criteria.iter().filter(|c| c.outcome == vet::Outcome::NotRun).map(|c| c.name.as_str()).collect();
            Err(Failure::Runtime(anyhow::anyhow!(
                "the vetting is incomplete: not judged: {} (see the report)",
                not_run.join(", ")
            )))
        }
    }
}

/// Runs the battery against `candidate` with the progress bar and Ctrl-C handling.
async fn execute<C: RpcTarget>(
    config: &VetConfig,
    candidate: &C,
    references: &[HttpTarget],
) -> Result<VetReport, VetError> {
    let bar = Bar::new();
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    let signals = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\ninterrupted: writing a partial report (Ctrl-C again to quit at once)");
            on_signal.cancel();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    let report = vet::run(config, candidate, references, &bar, &cancel).await;
    signals.abort();
    bar.finish();
    report
}

/// The candidate `peer` reached through the daemon at `--via`: checks the route, fixes the
/// member and network to the peer's and the daemon's, and bounds the ramp by the candidate's
/// announced capacity (recorded in the report's caveats).
async fn through_mesh(args: &VetArgs, peer: &str, config: &mut VetConfig) -> Result<MeshTarget, Failure> {
    let key = PublicKey::parse(peer).map_err(|e| usage(format!("--peer {peer:?}: {e}")))?;
    let peer_id = key.to_peer_id().to_string();
    if let Some(m) = &args.member
        && PublicKey::parse(m).ok() != Some(key)
    {
        return Err(usage(format!(
            "--member {m} is not --peer {peer_id}: a report through the mesh names the peer it reached"
        )));
    }
    let admin = admin_base(args.via.as_deref(), &args.home).map_err(Failure::Runtime)?;
    let token = admin_token(&args.home);
    // Within the announced concurrency (checked below) and the admin API's own bound.
    let in_flight = args.max_in_flight.min(vet_mesh::MESH_MAX_IN_FLIGHT);
    let mut target = MeshTarget::connect(&admin, token, &peer_id, config.chain_id, args.timeout, in_flight)
        .await
        .map_err(|e| match e {
            MeshError::Admin(_) => Failure::Runtime(anyhow::anyhow!(e)),
            MeshError::NotAPeer(..) | MeshError::Token(..) | MeshError::Itself(_) => usage(e.to_string()),
        })?;
    if let Some(n) = &args.network_id
        && n != target.network_id()
    {
        return Err(usage(format!(
            "--network-id {n}: the daemon at {} is in network {}, where the candidate is reached",
            redact_url(&admin),
            target.network_id()
        )));
    }
    config.network_id = target.network_id().to_string();
    config.member = Some(peer_id);
    let bounds = vet_mesh::bound_load(args.rate, args.max_in_flight, target.announced());
    config.settings.rate_per_sec = bounds.rate_per_sec;
    config.settings.max_in_flight = bounds.max_in_flight;
    for note in bounds.notes {
        eprintln!("vet: {note}");
        target.add_caveat(note);
    }
    eprintln!("vet: reaching {} through {} ({})", target.candidate(), target.via(), redact_url(&admin));
    Ok(target)
}

fn hex_digest(d: &[u8; 32]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// The vetting operator's key: `--key`, else the identity of `--home`.
fn load_key(args: &VetArgs) -> Result<Identity, Failure> {
    let path = match &args.key {
        Some(k) => k.clone(),
        None => {
            let home = args.home.resolve()?;
            let config = load_config(&home, &[])?;
            let path = Config::resolve(&home, &config.identity.key_file);
            if !path.exists() {
                return Err(usage(format!(
                    "no identity at {} to sign the report with; pass --key FILE or run `rpcmesh init --home {}`",
                    path.display(),
                    home.display()
                )));
            }
            path
        }
    };
    Ok(Identity::load(&path).with_context(|| format!("loading the vetting key {}", path.display()))?)
}

/// Progress on stderr: a bar redrawn in place on a terminal, plain lines otherwise (a line per
/// phase, and during the ramp one every [`PLAIN_EVERY`]).
struct Bar {
    tty: bool,
    state: Mutex<BarState>,
}

struct BarState {
    last_phase: Option<&'static str>,
    last_draw: Option<Instant>,
    drawn: bool,
}

/// Shortest interval between redraws on a terminal.
const TTY_EVERY: Duration = Duration::from_millis(100);
/// Shortest interval between plain progress lines within one phase.
const PLAIN_EVERY: Duration = Duration::from_secs(5);
/// Width of the bar, characters.
const BAR_WIDTH: usize = 24;

impl Bar {
    fn new() -> Self {
        Self {
            tty: std::io::stderr().is_terminal(),
            state: Mutex::new(BarState { last_phase: None, last_draw: None, drawn: false }),
        }
    }

    fn finish(&self) {
        let state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.tty && state.drawn {
            eprintln!();
        }
    }
}

fn eta(d: Option<Duration>) -> String {
    match d {
        Some(d) if d.as_secs() >= 60 => format!("ETA {}m{:02}s", d.as_secs() / 60, d.as_secs() % 60),
        Some(d) => format!("ETA {}s", d.as_secs()),
        None => String::new(),
    }
}

impl ProgressSink for Bar {
    fn update(&self, p: &Progress) {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let phase = p.phase.name();
        let changed = state.last_phase != Some(phase);
        let every = if self.tty { TTY_EVERY } else { PLAIN_EVERY };
        if !changed && state.last_draw.is_some_and(|t| t.elapsed() < every) {
            return;
        }
        state.last_phase = Some(phase);
        state.last_draw = Some(Instant::now());
        let pct = (p.fraction * 100.0).floor() as u32;
        let mut err = std::io::stderr().lock();
        if self.tty {
            let filled = ((p.fraction * BAR_WIDTH as f64).round() as usize).min(BAR_WIDTH);
            let detail: String = p.detail.chars().take(40).collect();
            let _ = write!(
                err,
                "\r\x1b[2K[{}{}] {pct:>3}% {:<9} {:<11} {detail}",
                "#".repeat(filled),
                "-".repeat(BAR_WIDTH - filled),
                phase,
                eta(p.eta)
            );
            let _ = err.flush();
            state.drawn = true;
        } else {
            let _ = writeln!(err, "vet: {phase} {pct}% {} {}", eta(p.eta), p.detail);
        }
    }
}
