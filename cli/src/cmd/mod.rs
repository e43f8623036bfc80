//! One module per subcommand.

pub mod admin_cmds;
pub mod federation;
pub mod gateway;
pub mod id;
pub mod init;
pub mod run;
pub mod simulate;
pub mod testnet;
pub mod testnet_prometheus;
pub mod vet;
