//! `rpcmesh testnet up --prometheus` writes DIR/prometheus.yml with one target per daemon (its
//! admin API, whose /metrics answers without a token), and says how to run Prometheus when it
//! is not installed. PATH is an empty directory here, so no Prometheus is needed or started.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rpcmesh_testnet::net::TestnetState;

use crate::support::*;

/// Stops the detached testnet in `dir` however the test ends: `testnet down`, then SIGKILL to
/// the runner's process group (it called setsid; its daemons die with it) if it is still there.
struct Detached {
    dir: PathBuf,
}

impl Drop for Detached {
    fn drop(&mut self) {
        let state = TestnetState::load(&self.dir).ok();
        let _ = Command::new(bin()).args(["testnet", "down", "--dir"]).arg(&self.dir).output();
        if let Some(s) = state {
            // SAFETY: signal 0 probes, SIGKILL ends the runner's own process group.
            unsafe {
                if libc::kill(s.runner_pid as i32, 0) == 0 {
                    libc::kill(-(s.runner_pid as i32), libc::SIGKILL);
                }
            }
        }
    }
}

/// `host:port` of every `- targets: ["host:port"]` line.
fn targets(yml: &str) -> Vec<String> {
    yml.lines()
        .filter_map(|l| l.trim().strip_prefix("- targets: [\"")?.strip_suffix("\"]").map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn testnet_up_prometheus_writes_a_scrape_config_for_every_daemon() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tn");
    let empty_path = tmp.path().join("empty-path");
    std::fs::create_dir(&empty_path).unwrap();
    let _guard = Detached { dir: dir.clone() };
    let up = Command::new(bin())
        .args(["testnet", "up", "--nodes", "3", "--detach", "--prometheus", "--block-time-ms", "500", "--dir"])
        .arg(&dir)
        .env("PATH", &empty_path)
        .env_remove("RPCMESH_HOME")
        .output()
        .expect("runs rpcmesh");
    let stdout = String::from_utf8_lossy(&up.stdout);
    assert!(up.status.success(), "testnet up failed:\n{stdout}\n{}", String::from_utf8_lossy(&up.stderr));

    let config = dir.join("prometheus.yml");
    assert!(stdout.contains(&format!("prometheus: scrape config for 3 daemons: {}", config.display())), "{stdout}");
    assert!(stdout.contains("prometheus: not on PATH; run it with: prometheus --config.file="), "{stdout}");
    let yml = std::fs::read_to_string(&config).expect("prometheus.yml is written");
    let state = TestnetState::load(&dir).expect("testnet.json");
    assert_eq!(state.nodes.len(), 3);
    let found = targets(&yml);
    let expected: Vec<String> =
        state.nodes.iter().map(|n| n.admin.trim_start_matches("http://").trim_end_matches('/').to_string()).collect();
    assert_eq!(found, expected, "one target per daemon, in node order:\n{yml}");
    for n in &state.nodes {
        assert!(yml.contains(&format!("peer_id: \"{}\"", n.peer_id)), "node {} labelled:\n{yml}", n.index);
    }
    assert!(yml.contains("metrics_path: /metrics"), "{yml}");
    assert!(!Path::new(&dir).join("prometheus.log").exists(), "no Prometheus was started");

    // Each target is a live daemon whose /metrics answers without the admin token.
    for t in &found {
        assert!(t.starts_with("127.0.0.1:"), "testnet daemons listen on loopback: {t}");
        let body = rpcmesh_node::admin::client::get_ok(&format!("http://{t}/metrics"), Duration::from_secs(5))
            .await
            .unwrap_or_else(|e| panic!("scraping {t}: {e}"));
        assert!(String::from_utf8_lossy(&body).contains("# TYPE rpcmesh_known_providers gauge"), "{t}");
    }

    let down = Command::new(bin()).args(["testnet", "down", "--dir"]).arg(&dir).output().expect("runs rpcmesh");
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
}
