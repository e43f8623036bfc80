//! `rpcmesh testnet up --prometheus`: a Prometheus scrape config for every daemon of a testnet
//! (`DIR/prometheus.yml`), and a `prometheus` process running it when the binary is installed.
//!
//! Every daemon's admin API serves `/metrics` without the admin token (like `/health`), and
//! testnet daemons bind 127.0.0.1 only, so the config needs no credentials. The Prometheus
//! process runs in its own process group, dies with the runner (PR_SET_PDEATHSIG) and is stopped
//! by [`Prometheus::stop`] when the testnet stops: never looked up by name.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::net::NodeInfo;

/// Name of the scrape config in the testnet directory.
pub const CONFIG_FILE: &str = "prometheus.yml";

/// Prometheus's data directory inside the testnet directory (a run's series outlive it, so
/// a finished run can still be graphed by starting Prometheus on it again).
pub const DATA_DIR: &str = "prometheus-data";

/// Prometheus's log inside the testnet directory.
pub const LOG_FILE: &str = "prometheus.log";

/// Scrape and rule evaluation interval, seconds: testnet runs last minutes, so a finer grain
/// than Prometheus's default 1 min; the dashboard's `$__rate_interval` adapts to it.
pub const SCRAPE_INTERVAL_SECS: u64 = 5;

/// Port Prometheus listens on when it is free (its usual one), else any free port.
pub const PREFERRED_PORT: u16 = 9090;

/// `host:port` of a node's admin API, from its URL (`http://127.0.0.1:PORT`).
fn admin_target(node: &NodeInfo) -> Result<String, String> {
    let rest = node
        .admin
        .strip_prefix("http://")
        .ok_or_else(|| format!("node {}: admin URL {:?} is not http://HOST:PORT", node.index, node.admin))?;
    let target = rest.trim_end_matches('/');
    if target.is_empty() || target.contains('/') {
        return Err(format!("node {}: admin URL {:?} is not http://HOST:PORT", node.index, node.admin));
    }
    Ok(target.to_string())
}

/// A YAML double-quoted string (JSON strings are valid YAML ones).
fn quoted(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// The scrape config: one target per daemon (its admin API), labelled with the node index and
/// PeerId so a graph can tell the nodes apart.
pub fn scrape_config(dir: &Path, network_id: &str, nodes: &[NodeInfo]) -> Result<String, String> {
    let mut s = format!(
        "# Written by `rpcmesh testnet up --prometheus` for the testnet in {dir}.\n\
         # Every daemon's admin /metrics (open without the admin token; testnet daemons bind 127.0.0.1).\n\
         # Run: {run}\n\
         global:\n  scrape_interval: {SCRAPE_INTERVAL_SECS}s\n  evaluation_interval: {SCRAPE_INTERVAL_SECS}s\n\
         scrape_configs:\n  - job_name: rpcmesh\n    metrics_path: /metrics\n    static_configs:\n",
        dir = dir.display(),
        run = run_command(Path::new("prometheus"), dir, PREFERRED_PORT).join(" "),
    );
    for n in nodes {
        s.push_str(&format!(
            "      - targets: [{target}]\n        labels:\n          node: {index}\n          peer_id: {peer}\n          network_id: {net}\n",
            target = quoted(&admin_target(n)?),
            index = quoted(&n.index.to_string()),
            peer = quoted(&n.peer_id),
            net = quoted(network_id),
        ));
    }
    Ok(s)
}

/// Writes [`scrape_config`] to `dir/prometheus.yml` (atomically: a Prometheus reloading it never
/// reads half a file) and returns its path.
pub fn write_config(dir: &Path, network_id: &str, nodes: &[NodeInfo]) -> Result<PathBuf, String> {
    let text = scrape_config(dir, network_id, nodes)?;
    let path = dir.join(CONFIG_FILE);
    let tmp = dir.join(format!("{CONFIG_FILE}.tmp"));
    std::fs::write(&tmp, text).map_err(|e| format!("writing {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &path).map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(path)
}

/// The command line that runs Prometheus on the testnet's config, data in `dir`, on 127.0.0.1.
pub fn run_command(bin: &Path, dir: &Path, port: u16) -> Vec<String> {
    vec![
        bin.display().to_string(),
        format!("--config.file={}", dir.join(CONFIG_FILE).display()),
        format!("--storage.tsdb.path={}", dir.join(DATA_DIR).display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
    ]
}

/// `prometheus` on `PATH`, if installed.
pub fn find_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join("prometheus")).find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A running Prometheus, stopped (its whole process group) when dropped.
#[derive(Debug)]
pub struct Prometheus {
    child: Option<Child>,
    /// Where its web UI and API listen.
    pub addr: SocketAddr,
}

impl Prometheus {
    /// Starts `bin` on the config in `dir` (see [`run_command`]), logging to `dir/prometheus.log`.
    pub fn start(bin: &Path, dir: &Path) -> Result<Prometheus, String> {
        let port = if std::net::TcpListener::bind(("127.0.0.1", PREFERRED_PORT)).is_ok() {
            PREFERRED_PORT
        } else {
            crate::daemon::free_port().map_err(|e| format!("no free port for Prometheus: {e}"))?
        };
        let log_path = dir.join(LOG_FILE);
        let log = std::fs::File::create(&log_path).map_err(|e| format!("creating {}: {e}", log_path.display()))?;
        let log2 = log.try_clone().map_err(|e| format!("{}: {e}", log_path.display()))?;
        let argv = run_command(bin, dir, port);
        let mut cmd = Command::new(bin);
        cmd.args(&argv[1..]).stdin(Stdio::null()).stdout(log).stderr(log2);
        crate::daemon::own_group_dying_with_parent(&mut cmd);
        let child = cmd.spawn().map_err(|e| format!("starting {}: {e}", bin.display()))?;
        Ok(Prometheus { child: Some(child), addr: SocketAddr::from(([127, 0, 0, 1], port)) })
    }

    /// PID of the process (its process group id too).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process has ended (e.g. it could not bind its port or read its config).
    pub fn has_exited(&mut self) -> bool {
        self.child.as_mut().is_none_or(|c| !matches!(c.try_wait(), Ok(None)))
    }

    /// Its readiness endpoint, 200 once it serves queries.
    pub fn ready_url(&self) -> String {
        format!("http://{}/-/ready", self.addr)
    }

    fn signal(&self, sig: i32) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) on the process group of our own child; no memory is touched.
            unsafe {
                libc::kill(-(pid as i32), sig);
            }
        }
    }

    /// SIGTERM (Prometheus flushes its head block), then SIGKILL after `timeout`.
    pub fn stop(mut self, timeout: Duration) {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + timeout;
        if let Some(child) = self.child.as_mut() {
            // Waiting for a child's exit has no event to await in std; poll its status.
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        // Drop: SIGKILL to whatever is left, and reap.
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        // Only while the leader is unreaped: after that its pid (the group id) may be reused.
        if self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None))) {
            self.signal(libc::SIGKILL);
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(index: usize, admin: &str) -> NodeInfo {
        NodeInfo {
            index,
            peer_id: format!("12D3KooWpeer{index}"),
            http: String::new(),
            ws: String::new(),
            admin: admin.into(),
            backend: String::new(),
            pid: None,
            home: PathBuf::new(),
        }
    }

    #[test]
    fn one_labelled_target_per_node() {
        let nodes = [node(0, "http://127.0.0.1:4100"), node(1, "http://127.0.0.1:4101/")];
        let yml = scrape_config(Path::new("/tmp/tn"), "rpcmesh-testnet", &nodes).unwrap();
        assert!(yml.contains("scrape_interval: 5s"), "{yml}");
        assert!(yml.contains("  - job_name: rpcmesh\n    metrics_path: /metrics\n"), "{yml}");
        assert!(
            yml.contains("      - targets: [\"127.0.0.1:4100\"]\n        labels:\n          node: \"0\"\n"),
            "{yml}"
        );
        assert!(yml.contains("      - targets: [\"127.0.0.1:4101\"]\n"), "a trailing slash is not part of the target");
        assert!(yml.contains("peer_id: \"12D3KooWpeer1\""), "{yml}");
        assert!(yml.contains("--config.file=/tmp/tn/prometheus.yml"), "the run hint names the file: {yml}");
    }

    /// A scratch directory holding an executable `fake-prometheus` running `script`.
    fn fake(name: &str, script: &str) -> (PathBuf, PathBuf) {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("rpcmesh-prom-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bin = dir.join("fake-prometheus");
        std::fs::write(&bin, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        (dir, bin)
    }

    #[test]
    fn a_started_prometheus_is_stopped_with_the_testnet_and_logs_in_its_dir() {
        // Stands in for Prometheus: prints, then waits on a child of its own group.
        let (dir, bin) = fake("stop", "echo \"started $*\"; sleep 60 & wait");
        let mut p = Prometheus::start(&bin, &dir).unwrap();
        assert!(p.ready_url().starts_with("http://127.0.0.1:") && p.ready_url().ends_with("/-/ready"));
        // Its log line is the observable sign that it runs (polled, bounded).
        let expected = format!("started --config.file={}", dir.join(CONFIG_FILE).display());
        let deadline = Instant::now() + Duration::from_secs(10);
        let log = || std::fs::read_to_string(dir.join(LOG_FILE)).unwrap_or_default();
        while !log().contains(&expected) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(log().contains(&expected), "{}", log());
        assert!(!p.has_exited());
        // Returns once it is reaped: SIGTERM to its group, SIGKILL after the timeout.
        p.stop(Duration::from_secs(10));
        // Dropped without stop: SIGKILL to its group, reaped (a hang here is a leak).
        let p = Prometheus::start(&bin, &dir).unwrap();
        drop(p);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_prometheus_that_cannot_start_is_seen_to_exit() {
        let (dir, bin) = fake("exit", "echo 'err: bind: address already in use' >&2; exit 1");
        let mut p = Prometheus::start(&bin, &dir).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        // A child's exit has no event to await in std: poll its status, bounded.
        while !p.has_exited() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(p.has_exited());
        assert!(std::fs::read_to_string(dir.join(LOG_FILE)).unwrap().contains("address already in use"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_admin_url_that_is_not_host_port_is_an_error() {
        for bad in ["127.0.0.1:4100", "http://", "http://127.0.0.1:4100/admin"] {
            let err = scrape_config(Path::new("/tmp/tn"), "n", &[node(3, bad)]).unwrap_err();
            assert!(err.starts_with("node 3: admin URL"), "{bad}: {err}");
        }
    }
}
