//! Running `rpcmesh` daemons as child processes: for local testnets and end-to-end tests.
//!
//! Each daemon runs in its own process group, binds only 127.0.0.1 (`p2p.loopback_only`,
//! no mDNS), and is killed with its group when its [`Daemon`] is dropped, so a failing test or
//! a crashed runner leaves no orphan.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A free TCP port on 127.0.0.1, never one this process handed out before: the port is bound
/// then released, and the OS may offer a just-released port again, so ports given to daemons
/// that have not bound them yet are remembered and skipped.
pub fn free_port() -> std::io::Result<u16> {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    for _ in 0..1000 {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = l.local_addr()?.port();
        if !given.contains(&port) {
            given.push(port);
            return Ok(port);
        }
    }
    Err(std::io::Error::other("no fresh free port after 1000 tries"))
}

/// How to configure one daemon.
#[derive(Debug, Clone)]
pub struct DaemonSpec {
    /// The `rpcmesh` binary.
    pub bin: PathBuf,
    /// Its home directory (created by `rpcmesh init`).
    pub home: PathBuf,
    /// Network id.
    pub network_id: String,
    /// `(chain id, HTTP upstream URL)`.
    pub upstreams: Vec<(u64, String)>,
    /// Bootstrap multiaddrs (with `/p2p/`).
    pub bootstrap: Vec<String>,
    /// Extra `--set key=value` overrides.
    pub sets: Vec<String>,
    /// p2p TCP port (`None`: any free port).
    pub p2p_port: Option<u16>,
    /// Gateway port (`None`: a free port).
    pub rpc_port: Option<u16>,
}

impl DaemonSpec {
    /// A spec with free ports.
    pub fn new(bin: PathBuf, home: PathBuf, network_id: impl Into<String>) -> Self {
        Self {
            bin,
            home,
            network_id: network_id.into(),
            upstreams: Vec::new(),
            bootstrap: Vec::new(),
            sets: Vec::new(),
            p2p_port: None,
            rpc_port: None,
        }
    }
}

/// A daemon child process.
pub struct Daemon {
    spec: DaemonSpec,
    child: Option<Child>,
    /// PeerId printed by `rpcmesh init`.
    pub peer_id: String,
    /// Admin API base URL.
    pub admin_url: String,
    /// Gateway address.
    pub gateway_addr: String,
    /// Extra arguments for `rpcmesh run` (e.g. `--set trust.membership_cert=...`).
    pub run_args: Vec<String>,
}

/// Why a daemon operation failed.
pub type DaemonResult<T> = Result<T, String>;

impl Daemon {
    /// Runs `rpcmesh init` for `spec` (fresh ports, loopback only) and starts the daemon.
    pub fn start(spec: DaemonSpec) -> DaemonResult<Daemon> {
        let mut d = Self::init(spec)?;
        d.spawn()?;
        Ok(d)
    }

    /// Runs `rpcmesh init` for `spec` without starting the daemon (see [`Daemon::launch`]).
    pub fn init(spec: DaemonSpec) -> DaemonResult<Daemon> {
        let admin_port = free_port().map_err(|e| e.to_string())?;
        let rpc_port = match spec.rpc_port {
            Some(p) => p,
            None => free_port().map_err(|e| e.to_string())?,
        };
        let p2p_port = spec.p2p_port.unwrap_or(0);
        let mut args: Vec<String> = vec![
            "init".into(),
            "--home".into(),
            spec.home.display().to_string(),
            "--network-id".into(),
            spec.network_id.clone(),
            "--listen".into(),
            format!("/ip4/127.0.0.1/tcp/{p2p_port}"),
            "--rpc-addr".into(),
            format!("127.0.0.1:{rpc_port}"),
            "--admin-addr".into(),
            format!("127.0.0.1:{admin_port}"),
            "--set".into(),
            "p2p.loopback_only=true".into(),
            "--set".into(),
            "p2p.mdns=false".into(),
        ];
        for (chain, url) in &spec.upstreams {
            args.push("--upstream".into());
            args.push(format!("{chain}={url}"));
        }
        for b in &spec.bootstrap {
            args.push("--bootstrap".into());
            args.push(b.clone());
        }
        for s in &spec.sets {
            args.push("--set".into());
            args.push(s.clone());
        }
        let out =
            Command::new(&spec.bin).args(&args).output().map_err(|e| format!("running {}: {e}", spec.bin.display()))?;
        if !out.status.success() {
            return Err(format!("rpcmesh init failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        let peer_id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Ok(Daemon {
            spec,
            child: None,
            peer_id,
            admin_url: format!("http://127.0.0.1:{admin_port}"),
            gateway_addr: format!("127.0.0.1:{rpc_port}"),
            run_args: Vec::new(),
        })
    }

    /// The admin API's bearer token, from the home (`rpcmesh init` writes it).
    pub fn admin_token(&self) -> DaemonResult<String> {
        let path = self.spec.home.join(rpcmesh_node::config::AdminConfig::default().token_file);
        rpcmesh_node::admin::auth::read_token_file(&path).map_err(|e| format!("reading {}: {e}", path.display()))
    }

    /// Starts a daemon made with [`Daemon::init`].
    pub fn launch(&mut self) -> DaemonResult<()> {
        self.restart()
    }

    /// The home directory.
    pub fn home(&self) -> &Path {
        &self.spec.home
    }

    fn spawn(&mut self) -> DaemonResult<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.spec.home.join("daemon.log"))
            .map_err(|e| e.to_string())?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(&self.spec.bin);
        cmd.args(["run", "--home"])
            .arg(&self.spec.home)
            .args(&self.run_args)
            .env("RUST_LOG", std::env::var("RPCMESH_TEST_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        own_group_dying_with_parent(&mut cmd);
        self.child = Some(cmd.spawn().map_err(|e| format!("spawning the daemon: {e}"))?);
        Ok(())
    }

    /// PID of the running daemon.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends `signal` to the daemon's process group.
    pub fn signal(&self, signal: i32) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) on our own child's process group; no memory is touched.
            unsafe {
                libc::kill(-(pid as i32), signal);
            }
        }
    }

    /// Stops the daemon gracefully (SIGTERM) and waits up to `timeout`; then SIGKILL.
    /// Returns the exit code when it exited by itself.
    pub fn stop(&mut self, timeout: Duration) -> Option<i32> {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + timeout;
        let mut child = self.child.take()?;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return status.code(),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                _ => {
                    self.child = Some(child);
                    self.kill();
                    return None;
                }
            }
        }
    }

    /// Kills the daemon's process group at once (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        self.signal(libc::SIGKILL);
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }

    /// Starts the daemon again with the same home (after [`Daemon::stop`] or [`Daemon::kill`]).
    pub fn restart(&mut self) -> DaemonResult<()> {
        if self.child.is_some() {
            return Err("the daemon is still running".into());
        }
        self.spawn()
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.spec.home.join("daemon.log")).unwrap_or_default()
    }

    /// GETs an admin path and parses JSON.
    pub async fn admin_json(&self, path: &str) -> DaemonResult<Value> {
        let body = rpcmesh_node::admin::client::get_ok(&format!("{}{path}", self.admin_url), Duration::from_secs(5))
            .await
            .map_err(|e| e.to_string())?;
        serde_json::from_slice(&body).map_err(|e| e.to_string())
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> DaemonResult<String> {
        let body = rpcmesh_node::admin::client::get_ok(&format!("{}/metrics", self.admin_url), Duration::from_secs(5))
            .await
            .map_err(|e| e.to_string())?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// Waits until the admin API answers `/health`.
    pub async fn wait_up(&self, timeout: Duration) -> DaemonResult<()> {
        wait_for(timeout, "the admin API to answer", || async { self.admin_json("/health").await.is_ok() })
            .await
            .map_err(|e| format!("{e}\n--- daemon log ---\n{}", self.log()))
    }

    /// This daemon's p2p address with `/p2p/<id>`, once it listens.
    pub async fn p2p_addr(&self) -> DaemonResult<String> {
        let status = self.admin_json("/status").await?;
        let addr = status["listen_addrs"]
            .as_array()
            .and_then(|a| a.iter().filter_map(Value::as_str).find(|a| a.contains("/tcp/")))
            .ok_or("the daemon does not listen on TCP yet")?;
        Ok(format!("{addr}/p2p/{}", self.peer_id))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sets `policies` on every `[[chain]]` of the daemon's `config.toml` (written by `rpcmesh init`;
/// chain tables cannot be changed with `--set`). The file is rewritten without its comments.
pub fn declare_policies(home: &Path, policies: &[String]) -> DaemonResult<()> {
    let path = home.join("config.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let mut config: toml::Table = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let Some(toml::Value::Array(chains)) = config.get_mut("chain") else {
        return Err(format!("{} has no [[chain]] table to declare policies on", path.display()));
    };
    let list = toml::Value::Array(policies.iter().map(|p| toml::Value::String(p.clone())).collect());
    for chain in chains.iter_mut() {
        if let toml::Value::Table(t) = chain {
            t.insert("policies".into(), list.clone());
        }
    }
    let text = toml::to_string(&config).map_err(|e| format!("writing {}: {e}", path.display()))?;
    std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes. This waits on an observable
/// state change (a daemon's API), not on time: the timeout only bounds a failure.
pub async fn wait_for<F, Fut>(timeout: Duration, what: &str, mut cond: F) -> DaemonResult<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if cond().await {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("timed out after {} ms waiting for {what}", timeout.as_millis()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Puts the child started by `cmd` in a process group of its own (so it and its children are
/// signalled together) and has the kernel kill it if its parent dies, even by SIGKILL: no
/// orphans, however the testnet or bench ends.
pub(crate) fn own_group_dying_with_parent(cmd: &mut Command) {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt as _;
        cmd.process_group(0);
    }
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt as _;
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_are_declared_on_every_chain() {
        let home = std::env::temp_dir().join(format!("rpcmesh-declare-policies-{}", std::process::id()));
        std::fs::create_dir_all(&home).unwrap();
        let config = "# a comment\nnetwork_id = \"n\"\n\n[[chain]]\nid = 1\npolicies = []\n\n[[chain]]\nid = 137\n";
        std::fs::write(home.join("config.toml"), config).unwrap();
        declare_policies(&home, &["filters:address-list:ab".into()]).unwrap();
        let text = std::fs::read_to_string(home.join("config.toml")).unwrap();
        let t: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(t["network_id"].as_str(), Some("n"));
        let chains = t["chain"].as_array().unwrap();
        assert_eq!(chains.len(), 2);
        for c in chains {
            assert_eq!(c["policies"], toml::Value::Array(vec!["filters:address-list:ab".into()]));
        }
        std::fs::write(home.join("config.toml"), "network_id = \"n\"\n").unwrap();
        assert!(declare_policies(&home, &["x".into()]).unwrap_err().contains("no [[chain]]"));
        std::fs::remove_dir_all(&home).unwrap();
    }
}
