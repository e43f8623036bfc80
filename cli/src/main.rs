//! `rpcmesh`: the command-line front of the rpcmesh daemon. Parses arguments, sets up logging,
//! and calls into `rpcmesh-node`; no business logic lives here.
//!
//! Exit codes: 0 success, 1 runtime error, 2 usage error (bad flags, bad overrides).

mod cmd;
mod flags;
mod home;
mod logging;
mod memory;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `rpcmesh --version`: the crate version and the git commit it was built from (`unknown` when
/// built outside a git checkout without `RPCMESH_GIT_COMMIT`; see build.rs).
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("RPCMESH_GIT_COMMIT"), ")");

/// rpcmesh: a peer-to-peer mesh of blockchain RPC providers. Point any Ethereum client at a
/// local daemon; it serves from its own nodes or fails over to trusted peers.
#[derive(Debug, Parser)]
#[command(name = "rpcmesh", version = VERSION, propagate_version = true, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a home directory: config.toml (every option, commented), identity.key, store.
    Init(cmd::init::InitArgs),
    /// Print this daemon's PeerId and public key.
    Id(cmd::id::IdArgs),
    /// Run the daemon in the foreground (stops cleanly on SIGINT/SIGTERM).
    Run(cmd::run::RunArgs),
    /// Show this node's status (from its admin API).
    Status(cmd::admin_cmds::StatusArgs),
    /// List every provider this node knows, per chain (from its admin API).
    Peers(cmd::admin_cmds::PeersArgs),
    /// Explain how requests for a chain would be routed right now (from its admin API).
    Routes(cmd::admin_cmds::RoutesArgs),
    /// Evidence of wrong answers this node keeps, and the cordons it caused (from its admin API).
    Evidence(cmd::admin_cmds::EvidenceArgs),
    /// Federation root keys and membership certificates (federated trust).
    Federation(cmd::federation::FederationArgs),
    /// Gateway client access: `rpcmesh gateway key new --name NAME` makes an API key.
    Gateway(cmd::gateway::GatewayArgs),
    /// Local testnets: many daemons on one machine, fault injection, scenarios.
    Testnet(cmd::testnet::TestnetArgs),
}

/// An error and the exit code it maps to.
pub(crate) enum Failure {
    /// Something the user typed or configured is wrong, or the store needs the operator: exit 2.
    Usage(anyhow::Error),
    /// Anything else: exit 1.
    Runtime(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        let e: anyhow::Error = e.into();
        // Every configuration error exits 2: the documented systemd unit stops restarting on it
        // (restarting cannot fix a config), and scripts can tell it from a runtime failure.
        // A damaged store, or one a newer rpcmesh wrote, exits 2 as well: a restart finds it
        // the same, and the message says what the operator must do.
        use rpcmesh_node::launch::LaunchError;
        use rpcmesh_node::store::StoreError;
        let store_needs_operator =
            |s: &StoreError| matches!(s, StoreError::Corrupt { .. } | StoreError::NewerSchema { .. });
        let config_error = e.downcast_ref::<rpcmesh_node::config::ConfigError>().is_some()
            || e.downcast_ref::<rpcmesh_protocol::KeyFileError>().is_some()
            || matches!(e.downcast_ref::<LaunchError>(), Some(LaunchError::Config(_) | LaunchError::Identity(_)))
            || matches!(e.downcast_ref::<LaunchError>(), Some(LaunchError::Store(s)) if store_needs_operator(s))
            || e.downcast_ref::<StoreError>().is_some_and(store_needs_operator);
        if config_error { Failure::Usage(e) } else { Failure::Runtime(e) }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Init(args) => cmd::init::run(args),
        Command::Id(args) => cmd::id::run(args),
        Command::Run(args) => cmd::run::run(args),
        Command::Status(args) => cmd::admin_cmds::status(args),
        Command::Peers(args) => cmd::admin_cmds::peers(args),
        Command::Routes(args) => cmd::admin_cmds::routes(args),
        Command::Evidence(args) => cmd::admin_cmds::evidence(args),
        Command::Federation(args) => cmd::federation::run(args),
        Command::Gateway(args) => cmd::gateway::run(args),
        Command::Testnet(args) => cmd::testnet::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
