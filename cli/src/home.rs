//! Locating the home directory: `--home`, else `$RPCMESH_HOME`, else `~/.rpcmesh`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use rpcmesh_node::config::{CONFIG_FILE, Config, ConfigError, Override, env_overrides};

/// The `--home` flag shared by every command that reads a home directory.
#[derive(Debug, Clone, Args)]
pub struct HomeArgs {
    /// Home directory holding config.toml, identity.key and the store
    /// [default: $RPCMESH_HOME, else ~/.rpcmesh]
    #[arg(long, value_name = "DIR", env = "RPCMESH_HOME")]
    pub home: Option<PathBuf>,
}

impl HomeArgs {
    /// The home directory to use.
    pub fn resolve(&self) -> anyhow::Result<PathBuf> {
        match &self.home {
            Some(h) => Ok(h.clone()),
            None => dirs::home_dir()
                .map(|h| h.join(".rpcmesh"))
                .context("cannot find your home directory; pass --home DIR or set RPCMESH_HOME"),
        }
    }
}

/// Loads `HOME/config.toml` (defaults if absent) with `RPCMESH_*` variables, then `flags`, applied.
pub fn load_config(home: &Path, flags: &[Override]) -> Result<Config, ConfigError> {
    let mut overrides = env_overrides(std::env::vars());
    overrides.extend_from_slice(flags);
    Config::load(&home.join(CONFIG_FILE), false, &overrides)
}
