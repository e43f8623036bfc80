//! `rpcmesh federation init|vet|admit`: a federation root key, the vetting of a candidate's
//! endpoint (see [`super::vet`]), and the membership certificates the root signs, with the
//! candidate's signed vetting summary embedded. A node trusts members of the federations listed in
//! its `trust.federations`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use rpcmesh_node::clock::{now_ms, now_us};
use rpcmesh_node::trust::cert_file;
use rpcmesh_protocol::messages::{MembershipCert, VettingSummary, VettingVerdict};
use rpcmesh_protocol::{Identity, MessageHeader, PublicKey, Signed};
use rpcmesh_testnet::vet::seal;

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
    /// Test a candidate provider's endpoint against a policy and write a signed report
    Vet(Box<super::vet::VetArgs>),
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
        /// The member's vetting report (from `federation vet`): its signed summary and verdict go
        /// into the certificate; a failed, incomplete or expired report is refused
        #[arg(long, value_name = "DIR")]
        vetting_report: Option<PathBuf>,
        /// Replace an existing certificate file, and admit on a failed, incomplete or expired
        /// vetting report
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

/// The signed vetting summary of the report in `dir`, if it may admit `member` on `network_id`
/// at `now_ms`: the signature and digest check out, it names this member (or none), it is for this
/// network, and it passed and has not expired (both overridable with `force`).
fn checked_vetting(
    dir: &std::path::Path,
    member: &PublicKey,
    network_id: &str,
    now_ms: u64,
    force: bool,
) -> Result<Signed<VettingSummary>, Failure> {
    let sealed = seal::open(dir).with_context(|| format!("--vetting-report {}", dir.display()))?;
    let s = &sealed.summary.body;
    let refuse = |why: String| Failure::Runtime(anyhow::anyhow!("refusing --vetting-report {}: {why}", dir.display()));
    if s.member.is_some_and(|m| &m != member) {
        return Err(refuse(format!(
            "it vetted member {}, not {}",
            s.member.map(|m| m.to_peer_id().to_string()).unwrap_or_default(),
            member.to_peer_id()
        )));
    }
    if s.header.network_id != network_id {
        return Err(refuse(format!("it is for network {:?}, not {network_id:?}", s.header.network_id)));
    }
    let mut overridable = Vec::new();
    match s.verdict {
        VettingVerdict::Pass => {}
        VettingVerdict::Fail => overridable.push(format!(
            "the candidate failed policy {} ({})",
            s.policy_name,
            sealed.report.verdict.failed.join(", ")
        )),
        VettingVerdict::Incomplete => overridable.push("the report is incomplete (the run was interrupted)".into()),
    }
    if now_ms > s.header.expires_at_ms {
        overridable.push("the vetting has expired (run `federation vet` again)".into());
    }
    if !overridable.is_empty() {
        if !force {
            return Err(refuse(format!("{}; pass --force to admit anyway", overridable.join("; "))));
        }
        eprintln!("admitting despite: {} (--force)", overridable.join("; "));
    }
    eprintln!(
        "vetting report {}: {} against policy {} by {}, at {}",
        dir.display(),
        s.verdict.as_str(),
        s.policy_name,
        sealed.summary.signer.to_peer_id(),
        rpcmesh_testnet::report::fmt::utc(s.header.issued_at_ms)
    );
    Ok(sealed.summary)
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
        FederationCommand::Vet(args) => super::vet::run(*args),
        FederationCommand::Admit { root, member, name, valid_for, network_id, out, vetting_report, force } => {
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
            let vetting = match &vetting_report {
                Some(dir) => Some(Box::new(checked_vetting(dir, &member_key, &network_id, issued, force)?)),
                None => None,
            };
            let header = MessageHeader::new(network_id.clone(), now_us(), issued, valid_for.as_millis() as u64);
            let cert = Signed::sign(
                MembershipCert { header, member: member_key, operator_name: name.clone(), vetting },
                &root,
            );
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
