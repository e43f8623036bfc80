//! The `--prometheus` part of `rpcmesh testnet up`: writes the testnet's scrape config, starts
//! `prometheus` when it is on `PATH`, and says how to run it otherwise. Kept apart from
//! testnet.rs so that file only calls in at two places.

use std::path::Path;
use std::time::{Duration, Instant};

use rpcmesh_testnet::net::TestnetState;
use rpcmesh_testnet::prometheus::{self, LOG_FILE, PREFERRED_PORT, Prometheus};

/// Prefix of every line this module prints: a detached `up` finds them in runner.log.
const TAG: &str = "prometheus: ";

/// How long Prometheus gets to answer `/-/ready` (it replays its write-ahead log first).
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Writes `dir/prometheus.yml` for `state`'s daemons and starts Prometheus if installed. A
/// Prometheus that cannot start is reported, not fatal: the testnet is up and the config is there.
pub(crate) async fn start(dir: &Path, state: &TestnetState) -> anyhow::Result<Option<Prometheus>> {
    let config = prometheus::write_config(dir, &state.network_id, &state.nodes).map_err(anyhow::Error::msg)?;
    println!("{TAG}scrape config for {} daemons: {}", state.nodes.len(), config.display());
    let hint = |bin: &Path| prometheus::run_command(bin, dir, PREFERRED_PORT).join(" ");
    let Some(bin) = prometheus::find_binary() else {
        println!("{TAG}not on PATH; run it with: {}", hint(Path::new("prometheus")));
        return Ok(None);
    };
    let log = dir.join(LOG_FILE);
    let mut p = match Prometheus::start(&bin, dir) {
        Ok(p) => p,
        Err(e) => {
            println!("{TAG}{e}; run it yourself with: {}", hint(&bin));
            return Ok(None);
        }
    };
    match wait_ready(&mut p).await {
        Ok(()) => {
            println!(
                "{TAG}running (pid {}) on http://{}/ (log {}); stops with the testnet",
                p.pid().unwrap_or_default(),
                p.addr,
                log.display()
            );
            Ok(Some(p))
        }
        Err(why) => {
            println!("{TAG}{why} (see {}); run it yourself with: {}", log.display(), hint(&bin));
            // Dropping it stops whatever is left of it.
            Ok(None)
        }
    }
}

/// Waits until Prometheus answers its readiness endpoint, it exits, or [`READY_TIMEOUT`].
async fn wait_ready(p: &mut Prometheus) -> Result<(), String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let url = p.ready_url();
    loop {
        if rpcmesh_node::admin::client::get_ok(&url, Duration::from_secs(1)).await.is_ok() {
            return Ok(());
        }
        if p.has_exited() {
            return Err(format!("{} exited at start", p.addr));
        }
        if Instant::now() > deadline {
            return Err(format!("not ready on {} after {} s", p.addr, READY_TIMEOUT.as_secs()));
        }
        // Its readiness is only observable by asking: poll it (bounded above).
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// For `up --detach`: repeats what the background runner said about Prometheus (its lines in
/// runner.log), which it printed before reporting the testnet up.
pub(crate) fn print_detached(dir: &Path) {
    let log = std::fs::read_to_string(dir.join("runner.log")).unwrap_or_default();
    for line in log.lines().filter(|l| l.starts_with(TAG)) {
        println!("{line}");
    }
}
