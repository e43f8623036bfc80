//! `rpcmesh testnet ...`: local testnets for research and end-to-end tests.

use std::net::SocketAddr;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use crate::Failure;

/// Arguments of `rpcmesh testnet`.
#[derive(Debug, Args)]
pub struct TestnetArgs {
    #[command(subcommand)]
    command: TestnetCommand,
}

#[derive(Debug, Subcommand)]
enum TestnetCommand {
    /// Forward TCP from one local address to another (a provider's killable path to a shared
    /// node: kill or SIGSTOP this process to take that provider's node down or freeze it)
    Forward {
        /// Address to accept on
        #[arg(long, value_name = "HOST:PORT")]
        listen: SocketAddr,
        /// Address to forward to
        #[arg(long, value_name = "HOST:PORT")]
        to: SocketAddr,
    },
}

/// Runs `rpcmesh testnet`.
pub fn run(args: TestnetArgs) -> Result<(), Failure> {
    match args.command {
        TestnetCommand::Forward { listen, to } => {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("runtime")?;
            rt.block_on(rpcmesh_testnet::forward::run(listen, to))
                .with_context(|| format!("forwarding {listen} to {to}"))?;
            Ok(())
        }
    }
}
