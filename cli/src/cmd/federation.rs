//! `rpcmesh federation init|admit`: a federation root key and the membership certificates it
//! signs. A node trusts members of the federations listed in its `trust.federations`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use rpcmesh_node::clock::{now_ms, now_us};
use rpcmesh_node::trust::cert_file;
use rpcmesh_protocol::messages::MembershipCert;
use rpcmesh_protocol::{Identity, MessageHeader, PublicKey, Signed};

use crate::Failure;

/// Arguments of `rpcmesh federation`.
#[derive(Debug, Args)]
pub struct FederationArgs {
    #[command(subcommand)]
    command: FederationCommand,
}

#[derive(Debug, Subcommand)]
enum FederationCommand {
    /// Create a federation root key (mode 0600) and print the federation id (its public key, hex)
    Init {
        /// Where to write the root key
        #[arg(long, value_name = "ROOT.key")]
        out: PathBuf,
        /// Replace an existing key file
        #[arg(long)]
        force: bool,
    },
    /// Sign a membership certificate for a provider
    Admit {
        /// The federation root key
        #[arg(long, value_name = "ROOT.key")]
        root: PathBuf,
        /// The member's PeerId (from `rpcmesh id`)
        #[arg(long, value_name = "PEERID")]
        member: String,
        /// Operator name written in the certificate
        #[arg(long)]
        name: String,
        /// Validity, e.g. 90d, 12h, 30m, 3600s
        #[arg(long, default_value = "90d", value_parser = parse_duration)]
        valid_for: Duration,
        /// Network the certificate is valid in (must match the members' network_id)
        #[arg(long, value_name = "ID", default_value = "rpcmesh-mainnet")]
        network_id: String,
        /// Where to write the certificate (give it to the member: trust.membership_cert)
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Replace an existing certificate file
        #[arg(long)]
        force: bool,
    },
}

/// Parses `90d`, `12h`, `30m`, `45s` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is not a duration like 90d, 12h, 30m or 45s"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("unknown unit in {s:?}; use d, h, m or s")),
    };
    if secs == 0 {
        return Err("the validity must be positive".into());
    }
    Ok(Duration::from_secs(secs))
}

/// Runs `rpcmesh federation`.
pub fn run(args: FederationArgs) -> Result<(), Failure> {
    match args.command {
        FederationCommand::Init { out, force } => {
            let root = Identity::generate();
            root.save(&out, force)?;
            eprintln!("federation root key written to {} (mode 0600); keep it offline", out.display());
            eprintln!("members' nodes trust this federation with: trust.federations = [\"{}\"]", root.public_key());
            println!("{}", root.public_key());
            Ok(())
        }
        FederationCommand::Admit { root, member, name, valid_for, network_id, out, force } => {
            let max =
                std::time::Duration::from_millis(rpcmesh_protocol::validate::Limits::default().max_cert_validity_ms);
            if valid_for > max {
                return Err(Failure::Usage(anyhow::anyhow!(
                    "--valid-for is over the protocol's limit of {} days",
                    max.as_secs() / 86_400
                )));
            }
            if out.exists() && !force {
                return Err(Failure::Runtime(anyhow::anyhow!("{} exists; pass --force to replace it", out.display())));
            }
            let root =
                Identity::load(&root).with_context(|| format!("loading the federation root key {}", root.display()))?;
            let member_key =
                PublicKey::parse(&member).map_err(|e| Failure::Usage(anyhow::anyhow!("--member {member:?}: {e}")))?;
            if name.trim().is_empty() || name.len() > 128 {
                return Err(Failure::Usage(anyhow::anyhow!("--name must be 1..=128 bytes")));
            }
            let issued = now_ms();
            let header = MessageHeader::new(network_id.clone(), now_us(), issued, valid_for.as_millis() as u64);
            let cert = Signed::sign(MembershipCert { header, member: member_key, operator_name: name.clone() }, &root);
            std::fs::write(&out, cert_file::render(&cert)).with_context(|| format!("writing {}", out.display()))?;
            let out = std::path::absolute(&out).unwrap_or(out);
            eprintln!(
                "certificate for {name} ({}) on network {network_id}, valid {} days, written to {}",
                member_key.to_peer_id(),
                valid_for.as_secs() / 86_400,
                out.display()
            );
            eprintln!("the member sets trust.membership_cert = \"{}\" in its config.toml", out.display());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90d").unwrap(), Duration::from_secs(90 * 86_400));
        assert_eq!(parse_duration("12h").unwrap(), Duration::from_secs(12 * 3600));
        assert_eq!(parse_duration("45").unwrap(), Duration::from_secs(45));
        assert!(parse_duration("0d").is_err());
        assert!(parse_duration("3w").is_err());
        assert!(parse_duration("soon").is_err());
    }
}
