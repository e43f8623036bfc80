//! The `rpcmesh` binary as users run it: files, modes, output and exit codes.

use std::path::Path;
use std::process::{Command, Output};

fn rpcmesh(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rpcmesh")).args(args).env_remove("RPCMESH_HOME").output().expect("runs the binary")
}

fn rpcmesh_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rpcmesh"));
    cmd.args(args).env_remove("RPCMESH_HOME");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("runs the binary")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn init(home: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["init", "--home", home.to_str().unwrap()];
    args.extend_from_slice(extra);
    rpcmesh(&args)
}

#[test]
fn init_then_id_agree_and_files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let out = init(
        &home,
        &["--network-id", "t1", "--upstream", "1=http://127.0.0.1:8545", "--upstream", "137=http://127.0.0.1:9545"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let peer_id = stdout(&out).trim().to_string();
    assert!(peer_id.starts_with("12D3KooW"), "{peer_id}");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(home.join("identity.key")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    assert!(home.join("store").is_dir());
    let config = std::fs::read_to_string(home.join("config.toml")).unwrap();
    assert!(config.contains("network_id = \"t1\""));
    assert!(config.contains("id = 137"));

    let out = rpcmesh(&["id", "--home", home.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&peer_id), "{}", stdout(&out));

    let out = rpcmesh_env(&["id", "--json"], &[("RPCMESH_HOME", home.to_str().unwrap())]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["peer_id"], peer_id.as_str());
    assert_eq!(v["public_key"].as_str().unwrap().len(), 64);
}

#[test]
fn init_refuses_to_replace_identity_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let first = stdout(&init(home, &[])).trim().to_string();
    let out = init(home, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    let still = rpcmesh(&["id", "--home", home.to_str().unwrap()]);
    assert!(stdout(&still).contains(&first));

    let out = init(home, &["--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let second = stdout(&out).trim().to_string();
    assert_ne!(first, second);
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().to_str().unwrap();
    for args in [
        vec!["init", "--home", home, "--bogus"],
        vec!["init", "--home", home, "--upstream", "notachain"],
        vec!["init", "--home", home, "--upstream", "1=ftp://x"],
        vec!["init", "--home", home, "--rpc-addr", "nope"],
        vec!["init", "--home", home, "--set", "p2p.mdsn=true"],
        vec!["frobnicate"],
        vec![],
    ] {
        let out = rpcmesh(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
    let out = rpcmesh(&["init", "--home", home, "--set", "p2p.mdsn=true"]);
    assert!(stderr(&out).contains("mdsn"), "{}", stderr(&out));
    assert!(!Path::new(home).join("identity.key").exists(), "a usage error must not create anything");
}

#[test]
fn unknown_config_key_is_a_configuration_error_naming_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    assert!(init(home, &[]).status.success());
    let path = home.join("config.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("mdns = false", "mdsn = false")).unwrap();
    let out = rpcmesh(&["id", "--home", home.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "every configuration error exits 2");
    let err = stderr(&out);
    assert!(err.contains("mdsn") && err.contains("line"), "{err}");
}

#[test]
fn unknown_env_key_is_a_usage_error_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    assert!(init(home, &[]).status.success());
    let out = rpcmesh_env(&["id", "--home", home.to_str().unwrap()], &[("RPCMESH_P2P__MDSN", "true")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("RPCMESH_P2P__MDSN"), "{}", stderr(&out));
}

#[cfg(unix)]
#[test]
fn id_refuses_a_readable_key() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    assert!(init(home, &[]).status.success());
    std::fs::set_permissions(home.join("identity.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = rpcmesh(&["id", "--home", home.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "a key file problem is a configuration error");
    assert!(stderr(&out).contains("chmod 600"), "{}", stderr(&out));
}

#[test]
fn id_without_init_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = rpcmesh(&["id", "--home", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("rpcmesh init"), "{}", stderr(&out));
}

#[test]
fn help_for_every_command() {
    for args in [vec!["--help"], vec!["init", "--help"], vec!["id", "--help"], vec!["help", "init"]] {
        let out = rpcmesh(&args);
        assert!(out.status.success(), "{args:?}");
        assert!(stdout(&out).contains("Usage"), "{args:?}");
    }
    let out = rpcmesh(&["init", "--help"]);
    for flag in
        ["--home", "--network-id", "--upstream", "--listen", "--bootstrap", "--rpc-addr", "--admin-addr", "--force"]
    {
        assert!(stdout(&out).contains(flag), "init --help lacks {flag}");
    }
}

/// `rpcmesh --version` (and every subcommand's) is `rpcmesh VERSION (COMMIT)`: the crate version
/// and the commit build.rs found (`unknown` outside a git checkout), matching the checkout's HEAD
/// when the tests run in one.
#[test]
fn version_names_the_crate_version_and_the_git_commit() {
    let commit = env!("RPCMESH_GIT_COMMIT");
    let expected = format!("rpcmesh {} ({commit})\n", env!("CARGO_PKG_VERSION"));
    for args in [vec!["--version"], vec!["-V"]] {
        let out = rpcmesh(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert_eq!(stdout(&out), expected, "{args:?}");
    }
    // Subcommands say the same after their own name (`rpcmesh-run 0.1.0 (…)`).
    let out = rpcmesh(&["run", "--version"]);
    assert!(stdout(&out).starts_with("rpcmesh-run ") && stdout(&out).ends_with(&expected["rpcmesh".len()..]));
    assert!(
        commit == "unknown" || (commit.len() >= 7 && commit.bytes().all(|b| b.is_ascii_hexdigit())),
        "the commit is a hex id or `unknown`: {commit:?}"
    );
    // Built from this checkout (and not told otherwise): the commit is its HEAD. Abbreviations
    // can differ in length as a repository grows, so one is a prefix of the other.
    let head = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| stdout(&o).trim().to_string());
    if let Some(head) = head
        && std::env::var_os("RPCMESH_GIT_COMMIT").is_none()
    {
        assert!(head.starts_with(commit) || commit.starts_with(&head), "built from {commit}, HEAD is {head}");
    }
}

/// Configuration errors exit 2 (the systemd unit stops restarting on it) with a message that
/// names what to change; none of these starts a daemon.
#[test]
fn configuration_errors_exit_2_and_say_what_to_change() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let h = home.to_str().unwrap();
    let out = init(&home, &["--rpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let out = rpcmesh(&["run", "--home", h, "--set", "gateway.max_connections=0"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("gateway.max_connections"), "{}", stderr(&out));

    // The key file is a directory: said so, not reported as a file mode.
    let key_dir = dir.path().join("keydir");
    std::fs::create_dir(&key_dir).unwrap();
    let out = rpcmesh(&["run", "--home", h, "--set", &format!("identity.key_file={}", key_dir.display())]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("is a directory"), "{}", stderr(&out));

    // An empty config file is refused, not taken for the defaults.
    std::fs::write(home.join("config.toml"), "\n").unwrap();
    let out = rpcmesh(&["run", "--home", h]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("is empty"), "{}", stderr(&out));
}

#[test]
fn evidence_commands_parse_and_name_the_admin_api_when_it_is_down() {
    for sub in ["list", "show", "clear"] {
        let out = rpcmesh(&["evidence", sub, "--help"]);
        assert!(out.status.success() && stdout(&out).contains("--admin"), "evidence {sub} --help");
    }
    assert!(stdout(&rpcmesh(&["evidence", "clear", "--help"])).contains("--chain"));
    // Port 9 (discard) on loopback: nothing listens; the error says where it looked.
    let out = rpcmesh(&["evidence", "list", "--admin", "http://127.0.0.1:9"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("admin API"), "{}", stderr(&out));
    let out = rpcmesh(&["evidence", "show", "not-a-number"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn gateway_key_new_prints_a_key_once_and_config_lines_that_accept_it() {
    let out =
        rpcmesh(&["gateway", "key", "new", "--name", "alice", "--requests-per-sec", "5", "--allow-methods", "eth_*"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let key = text
        .lines()
        .find_map(|l| l.trim_start_matches('#').trim().strip_prefix("rmk_"))
        .map(|rest| format!("rmk_{rest}"))
        .expect("the key is printed");
    assert!(!text.lines().any(|l| !l.starts_with('#') && l.contains(&key)), "the key is not in the config lines");
    let config = rpcmesh_node::config::Config::from_toml(&text, Path::new("stdout")).expect("valid config lines");
    config.check().expect("consistent");
    let k = &config.gateway.keys[0];
    assert_eq!(
        (k.name.as_str(), k.requests_per_sec, k.allow_methods.clone()),
        ("alice", Some(5), vec!["eth_*".into()])
    );
    let access = rpcmesh_node::gateway::access::Access::new(&config.gateway, Default::default());
    assert_eq!(access.authenticate(Some(&key)).expect("accepted").expect("a key").name.as_ref(), "alice");
    assert!(access.authenticate(Some("rmk_other")).is_err());
    let bad = rpcmesh(&["gateway", "key", "new", "--name", "a b"]);
    assert_eq!(bad.status.code(), Some(2));
}

/// `rpcmesh run` with a bounded wait: the daemon is killed (by its PID) if it has not exited
/// within `limit`, and the test fails then.
fn run_expecting_exit(home: &Path, limit: std::time::Duration) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_rpcmesh"))
        .args(["run", "--home", home.to_str().unwrap()])
        .env_remove("RPCMESH_HOME")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs the binary");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("waits for the binary"),
        Err(_) => {
            // SAFETY: kill(2) on our own child's PID; no memory is touched.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
            panic!("rpcmesh run did not exit within {limit:?} on a damaged store");
        }
    }
}

#[test]
fn a_damaged_store_exits_2_and_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let loopback = ["--rpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--listen", "/ip4/127.0.0.1/tcp/0"];
    let out = init(&home, &loopback);
    assert!(out.status.success(), "{}", stderr(&out));
    let conf = home.join("store").join("conf");
    assert!(conf.is_file(), "init made the store");
    // Bytes that are not UTF-8 in sled's settings file: sled blames "a sled version earlier
    // than 0.29"; the daemon must say what happened and what to do instead.
    let mut damaged = std::fs::read(&conf).unwrap();
    damaged.extend_from_slice(b"\xff\xfe\x00\x00");
    std::fs::write(&conf, &damaged).unwrap();
    let out = run_expecting_exit(&home, std::time::Duration::from_secs(30));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for said in ["is damaged", "move the directory aside", "rebuilds its view of the mesh", "evidence", "are lost"] {
        assert!(err.contains(said), "{said:?} missing from: {err}");
    }
    // Moved aside as advised, a new store opens in its place.
    std::fs::rename(home.join("store"), home.join("store.damaged")).unwrap();
    assert!(rpcmesh_node::store::Store::open(&home.join("store"), Default::default()).is_ok());
}

/// `rpcmesh testnet simulate` on a tiny scenario: the report files exist, the summary names the
/// figures, and a bad scenario is a usage error naming the key.
#[test]
fn testnet_simulate_writes_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("tiny.toml");
    std::fs::write(
        &scenario,
        "name = \"tiny\"\nduration = \"5s\"\n[mesh]\nproviders = 30\nobservers = 3\nliars = 0.1\n[load]\nrate = 20\nverify = \"strict\"\n",
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let out = rpcmesh(&["testnet", "simulate", scenario.to_str().unwrap(), "--out", out_dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("30 providers") && stdout(&out).contains("convergence p50"), "{}", stdout(&out));
    for f in ["report.md", "report.json", "convergence_cdf.svg", "traffic.svg", "answers.svg"] {
        assert!(out_dir.join(f).is_file(), "{f}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["providers"], 30);
    assert_eq!(json["answers"]["wrong"], 0, "strict verification: no lie reaches a client");

    std::fs::write(&scenario, "name = \"bad\"\nduration = \"5s\"\n[mesh]\nproviders = 30\nlairs = 0.1\n").unwrap();
    let out = rpcmesh(&["testnet", "simulate", scenario.to_str().unwrap(), "--out", out_dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("lairs"), "{}", stderr(&out));

    // Command-line overrides obey the same rules as the file.
    std::fs::write(&scenario, "name = \"ok\"\nduration = \"5s\"\n[mesh]\nproviders = 30\n").unwrap();
    for (flag, value, says) in [("--duration", "0s", "duration must be positive"), ("--providers", "1", "at least 2")] {
        let out = rpcmesh(&[
            "testnet",
            "simulate",
            scenario.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
            flag,
            value,
        ]);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{flag} {value}: {}", stderr(&out));
    }
}
