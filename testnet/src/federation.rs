//! A federation made with the `rpcmesh` binary itself (`federation init|admit`), as an operator
//! would: a root key, and membership certificates for daemons about to be launched.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::daemon::Daemon;

/// A federation root key on disk and its id.
#[derive(Debug, Clone)]
pub struct Federation {
    bin: PathBuf,
    /// The root key file.
    pub root_key: PathBuf,
    /// The federation id (the root public key, hex), as `rpcmesh federation init` printed it.
    pub id: String,
}

impl Federation {
    /// Creates (or replaces) `dir/root.key` with `bin federation init`.
    pub fn init(bin: &Path, dir: &Path) -> Result<Federation, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let root_key = dir.join("root.key");
        let out = Command::new(bin)
            .args(["federation", "init", "--force", "--out"])
            .arg(&root_key)
            .output()
            .map_err(|e| format!("running {}: {e}", bin.display()))?;
        if !out.status.success() {
            return Err(format!("federation init failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Ok(Federation { bin: bin.to_path_buf(), root_key, id })
    }

    /// The config override that makes a daemon trust this federation.
    pub fn trust_set(&self) -> String {
        format!("trust.federations=[\"{}\"]", self.id)
    }

    /// Admits `daemon` (made with [`Daemon::init`], not yet launched) under `name` for
    /// `network_id`: writes its certificate into its home and has it presented at launch.
    pub fn admit(&self, daemon: &mut Daemon, name: &str, network_id: &str, valid_for: &str) -> Result<(), String> {
        let cert = daemon.home().join("member.cert");
        let out = Command::new(&self.bin)
            .args(["federation", "admit", "--force", "--root"])
            .arg(&self.root_key)
            .args(["--member", &daemon.peer_id, "--name", name, "--valid-for", valid_for])
            .args(["--network-id", network_id, "--out"])
            .arg(&cert)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!("federation admit failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        daemon.run_args = vec!["--set".into(), format!("trust.membership_cert={}", cert.display())];
        Ok(())
    }
}
