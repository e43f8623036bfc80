//! The `--prometheus` part of `rpcmesh testnet up`: writes the testnet's scrape config, starts
//! `prometheus` when it is on `PATH`, and says how to run it otherwise. Kept apart from
//! testnet.rs so that file only calls in at two places.

use std::path::Path;

use rpcmesh_testnet::net::TestnetState;
use rpcmesh_testnet::prometheus::{self, LOG_FILE, PREFERRED_PORT, Prometheus};

/// Prefix of every line this module prints: a detached `up` finds them in runner.log.
const TAG: &str = "prometheus: ";

/// Writes `dir/prometheus.yml` for `state`'s daemons and starts Prometheus if installed. A
/// Prometheus that cannot start is reported, not fatal: the testnet is up and the config is there.
pub(crate) fn start(dir: &Path, state: &TestnetState) -> anyhow::Result<Option<Prometheus>> {
    let config = prometheus::write_config(dir, &state.network_id, &state.nodes).map_err(anyhow::Error::msg)?;
    println!("{TAG}scrape config for {} daemons: {}", state.nodes.len(), config.display());
    let hint = |bin: &Path| prometheus::run_command(bin, dir, PREFERRED_PORT).join(" ");
    let Some(bin) = prometheus::find_binary() else {
        println!("{TAG}not on PATH; run it with: {}", hint(Path::new("prometheus")));
        return Ok(None);
    };
    match Prometheus::start(&bin, dir) {
        Ok(p) => {
            println!(
                "{TAG}running (pid {}) on http://{}/ (log {}); stops with the testnet",
                p.pid().unwrap_or_default(),
                p.addr,
                dir.join(LOG_FILE).display()
            );
            Ok(Some(p))
        }
        Err(e) => {
            println!("{TAG}{e}; run it yourself with: {}", hint(&bin));
            Ok(None)
        }
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
