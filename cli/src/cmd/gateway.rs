//! `rpcmesh gateway key new`: a fresh API key for a gateway client. The key is printed once and
//! never stored; the config gets only its SHA-256 (see `[[gateway.keys]]`).

use anyhow::Context as _;
use clap::{Args, Subcommand};
use rpcmesh_node::gateway::access::new_key;

use crate::Failure;

/// Arguments of `rpcmesh gateway`.
#[derive(Debug, Args)]
pub struct GatewayArgs {
    #[command(subcommand)]
    command: GatewayCommand,
}

#[derive(Debug, Subcommand)]
enum GatewayCommand {
    /// API keys of gateway clients
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Print a new random key (give it to the client) and the [[gateway.keys]] lines to add to
    /// config.toml (they hold the key's SHA-256, not the key)
    New {
        /// Who holds the key: shown in metrics (letters, digits, _, - and .)
        #[arg(long)]
        name: String,
        /// Calls (batch items) per second the key may make (default: no quota)
        #[arg(long, value_name = "N")]
        requests_per_sec: Option<u32>,
        /// Calls the key may make at once above its rate (default: one second's worth)
        #[arg(long, value_name = "N", requires = "requests_per_sec")]
        burst: Option<u32>,
        /// Methods the key may call ("*" wildcards; repeat or separate with commas; default: all
        /// the gateway allows)
        #[arg(long, value_name = "GLOB", value_delimiter = ',')]
        allow_methods: Vec<String>,
    },
}

/// Runs `rpcmesh gateway`.
pub fn run(args: GatewayArgs) -> Result<(), Failure> {
    let GatewayCommand::Key { command: KeyCommand::New { name, requests_per_sec, burst, allow_methods } } =
        args.command;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)) {
        return Err(Failure::Usage(anyhow::anyhow!("--name {name:?} must be letters, digits, _, - and .")));
    }
    if requests_per_sec == Some(0) || burst == Some(0) {
        return Err(Failure::Usage(anyhow::anyhow!("--requests-per-sec and --burst must be at least 1")));
    }
    let (key, digest) = new_key().context("reading randomness for the key")?;
    println!("# The key (give it to the client; it is shown only this once):");
    println!("#   {key}");
    println!("# Clients send it as \"Authorization: Bearer <key>\" or in the path: http://HOST:PORT/k/<key>/<chain>");
    println!("# Add to config.toml:");
    println!("[[gateway.keys]]");
    println!("name = {}", toml_string(&name));
    println!("key_sha256 = \"{digest}\"");
    if let Some(r) = requests_per_sec {
        println!("requests_per_sec = {r}");
    }
    if let Some(b) = burst {
        println!("burst = {b}");
    }
    if !allow_methods.is_empty() {
        let list: Vec<String> = allow_methods.iter().map(|m| toml_string(m)).collect();
        println!("allow_methods = [{}]", list.join(", "));
    }
    Ok(())
}

/// `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}
