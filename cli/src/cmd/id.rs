//! `rpcmesh id`: print this daemon's PeerId and public key.

use anyhow::Context as _;
use clap::Args;
use rpcmesh_node::config::Config;
use rpcmesh_protocol::Identity;

use crate::Failure;
use crate::home::{HomeArgs, load_config};

/// Arguments of `rpcmesh id`.
#[derive(Debug, Args)]
pub struct IdArgs {
    #[command(flatten)]
    home: HomeArgs,
    /// Print JSON: {"peer_id": ..., "public_key": ...}
    #[arg(long)]
    json: bool,
}

/// Runs `rpcmesh id`.
pub fn run(args: IdArgs) -> Result<(), Failure> {
    let home = args.home.resolve()?;
    let config = load_config(&home, &[])?;
    let key_path = Config::resolve(&home, &config.identity.key_file);
    if !key_path.exists() {
        return Err(Failure::Runtime(anyhow::anyhow!(
            "no identity at {}; run `rpcmesh init --home {}` first",
            key_path.display(),
            home.display()
        )));
    }
    let id = Identity::load(&key_path).with_context(|| format!("loading the identity of {}", home.display()))?;
    if args.json {
        let v = serde_json::json!({ "peer_id": id.peer_id().to_string(), "public_key": id.public_key().to_hex() });
        println!("{v}");
    } else {
        println!("peer_id     {}", id.peer_id());
        println!("public_key  {}", id.public_key());
    }
    Ok(())
}
