//! The lifecycle of a command-line testnet: a **runner** process owns the testnet (daemons,
//! simulated backends, fault proxies), serves its control API ([`crate::control`]) and writes the
//! state file (`DIR/testnet.json`, [`STATE_FILE`]) by which `down`, `fault`, `partition`,
//! `restart` and scenario tools find it; [`detach`] starts that runner in the background in its
//! own session and returns once it is up (or stops everything it started); [`down`] stops it.
//! The CLI (`rpcmesh testnet up|down`) only parses flags and prints.
//!
//! Every process is stopped by PID or process group, never by name: the runner is a session
//! leader (daemons die with it), and `down` also kills each daemon's recorded process group in
//! case the runner died first.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::control::{self, Control};
use crate::net::{STATE_FILE, Testnet, TestnetSpec, TestnetState};

/// How long `down` waits for a runner to stop after asking it, before killing its session.
const DOWN_GRACE: Duration = Duration::from_secs(60);
/// How long a background runner that never came up gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A running testnet owned by this process.
pub struct Runner {
    control: Control,
    state: TestnetState,
    dir: PathBuf,
}

impl Runner {
    /// Starts the testnet of `spec` and its control API (127.0.0.1, a free port). Refused while
    /// a runner recorded in `spec.dir` is alive. The state file is not written yet: see
    /// [`Runner::publish`].
    pub async fn start(spec: TestnetSpec) -> Result<Self, String> {
        let dir = spec.dir.clone();
        if let Ok(existing) = TestnetState::load(&dir)
            && process_alive(existing.runner_pid)
        {
            return Err(format!(
                "a testnet is already running in {} (runner pid {}); stop it with `rpcmesh testnet down --dir {}`",
                dir.display(),
                existing.runner_pid,
                dir.display()
            ));
        }
        let _ = std::fs::remove_file(dir.join(STATE_FILE));
        let testnet = Testnet::up(spec.clone()).await?;
        let nodes = testnet.nodes();
        let control = Control { testnet: Arc::new(tokio::sync::Mutex::new(testnet)), shutdown: Arc::default() };
        let listener =
            tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| format!("binding the control API: {e}"))?;
        let control_addr = listener.local_addr().map_err(|e| format!("control address: {e}"))?;
        let app = control::router(control.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let state = TestnetState {
            runner_pid: std::process::id(),
            control: format!("http://{control_addr}"),
            network_id: spec.network_id.clone(),
            chains: spec.chains.clone(),
            nodes,
        };
        Ok(Self { control, state, dir })
    }

    /// What the state file says (and will say once published).
    pub fn state(&self) -> &TestnetState {
        &self.state
    }

    /// The control API's shared state: the testnet, and the shutdown notice `POST /shutdown`
    /// fires.
    pub fn control(&self) -> &Control {
        &self.control
    }

    /// Writes the state file (a temporary file renamed into place, so a reader never sees half
    /// of it): from then on `down` and `up --detach` find this runner.
    pub fn publish(&self) -> Result<(), String> {
        let tmp = self.dir.join("testnet.json.tmp");
        let json = serde_json::to_vec_pretty(&self.state).map_err(|e| format!("encoding testnet.json: {e}"))?;
        std::fs::write(&tmp, json).map_err(|e| format!("writing testnet.json: {e}"))?;
        std::fs::rename(&tmp, self.dir.join(STATE_FILE)).map_err(|e| format!("writing testnet.json: {e}"))
    }

    /// Stops every daemon (SIGTERM, time to flush its store) and backend, and removes the state
    /// file. (The control API's handlers hold the testnet too, so it is stopped in place: the
    /// CLI's runner used to give up on unwrapping it and leave its daemons to die with it.)
    pub async fn stop(self) {
        self.control.testnet.lock().await.stop_all().await;
        let _ = std::fs::remove_file(self.dir.join(STATE_FILE));
    }
}

/// Starts `bin args` (a runner: `rpcmesh testnet up ... --runner`) in its own session, its
/// output to `DIR/runner.log`, and waits until its state file names it. A runner that exits
/// first, or is not up within [`detach_timeout`] (then stopped with its whole session), is an
/// error carrying its log: a failed `up` leaves nothing running that `down` could not find.
pub fn detach(bin: &Path, args: &[String], dir: &Path, nodes: usize) -> Result<TestnetState, String> {
    use std::os::unix::process::CommandExt as _;
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let _ = std::fs::remove_file(dir.join(STATE_FILE));
    let log = std::fs::File::create(dir.join("runner.log")).map_err(|e| format!("creating runner.log: {e}"))?;
    let err_log = log.try_clone().map_err(|e| format!("runner.log: {e}"))?;
    let mut cmd = std::process::Command::new(bin);
    cmd.args(args).stdin(std::process::Stdio::null()).stdout(log).stderr(err_log);
    // SAFETY: setsid between fork and exec detaches from the terminal's session; no memory is touched.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| format!("starting the background runner: {e}"))?;
    let allowed = detach_timeout(nodes);
    let deadline = std::time::Instant::now() + allowed;
    loop {
        if let Ok(state) = TestnetState::load(dir)
            && state.runner_pid == child.id()
        {
            return Ok(state);
        }
        let timed_out = std::time::Instant::now() > deadline;
        if !runner_alive(&mut child) || timed_out {
            if timed_out {
                stop_runner(&mut child);
            }
            let log = std::fs::read_to_string(dir.join("runner.log")).unwrap_or_default();
            let why = if timed_out { format!("within {} s; it was stopped", allowed.as_secs()) } else { String::new() };
            return Err(format!("the testnet did not come up {why}:\n{log}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// How long [`detach`] waits for the runner to report the testnet up: 120 s, plus 1 s per
/// daemon beyond 20 (a large testnet on a busy machine needs longer than a small one).
fn detach_timeout(nodes: usize) -> Duration {
    Duration::from_secs(120 + nodes.saturating_sub(20) as u64)
}

/// Stops the testnet whose state file is in `dir`: asks its runner (`POST /shutdown`), kills
/// the runner's session if it has not stopped within a minute, then kills the process group of
/// every daemon still alive (the runner may have died without stopping them), and removes the
/// state file.
pub async fn down(dir: &Path) -> Result<(), String> {
    let state = TestnetState::load(dir)?;
    if process_alive(state.runner_pid) {
        let _ = control::call(dir, "/shutdown", serde_json::json!({})).await;
        let deadline = std::time::Instant::now() + DOWN_GRACE;
        while process_alive(state.runner_pid) && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if process_alive(state.runner_pid) {
            // SAFETY: the runner's own process group (it called setsid); daemons die with it.
            unsafe {
                libc::kill(-(state.runner_pid as i32), libc::SIGKILL);
            }
        }
    }
    for n in &state.nodes {
        if let Some(pid) = n.pid
            && process_alive(pid)
        {
            // SAFETY: the daemon's own process group, recorded at start.
            unsafe {
                libc::kill(-(pid as i32), libc::SIGKILL);
            }
        }
    }
    let _ = std::fs::remove_file(dir.join(STATE_FILE));
    Ok(())
}

/// Whether a process with this PID exists.
fn process_alive(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

/// Stops a background runner that never came up: SIGTERM to its process group (it called
/// setsid), then SIGKILL after [`STOP_GRACE`].
fn stop_runner(child: &mut std::process::Child) {
    let group = -(child.id() as i32);
    // SAFETY: signals to the runner's own process group, which this process created.
    unsafe {
        libc::kill(group, libc::SIGTERM);
    }
    let deadline = std::time::Instant::now() + STOP_GRACE;
    while runner_alive(child) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    if runner_alive(child) {
        // SAFETY: as above.
        unsafe {
            libc::kill(group, libc::SIGKILL);
        }
    }
}

/// Whether our child runner still runs (reaped when it has exited: a zombie is not alive).
fn runner_alive(child: &mut std::process::Child) -> bool {
    matches!(child.try_wait(), Ok(None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> (PathBuf, Vec<String>) {
        (PathBuf::from("/bin/sh"), vec!["-c".into(), script.into()])
    }

    #[test]
    fn a_runner_that_exits_before_it_is_up_is_an_error_with_its_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (bin, args) = sh("echo 'no backend for chain 9' >&2; exit 3");
        let err = detach(&bin, &args, dir.path(), 1).expect_err("the runner exited");
        assert!(err.contains("did not come up") && err.contains("no backend for chain 9"), "{err}");
        assert!(!dir.path().join(STATE_FILE).exists());
    }

    #[test]
    fn detach_returns_once_the_state_file_names_the_runner() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join(STATE_FILE);
        // A stand-in runner: writes the state file under its own PID, then idles.
        let script = format!(
            r#"printf '{{"runner_pid":%d,"control":"http://127.0.0.1:9","network_id":"t","chains":[1],"nodes":[]}}' $$ > {}.tmp && mv {}.tmp {} && exec sleep 30"#,
            state.display(),
            state.display(),
            state.display()
        );
        let (bin, args) = sh(&script);
        let got = detach(&bin, &args, dir.path(), 1).expect("up");
        assert!(process_alive(got.runner_pid));
        // Stopped by its process group (it is a session leader), as `down` does.
        // SAFETY: the stand-in's own process group.
        unsafe {
            libc::kill(-(got.runner_pid as i32), libc::SIGKILL);
        }
        assert_eq!(got.network_id, "t");
    }
}
