//! Who is trusted. `federated` (default): the explicit `trust.peers`, plus holders of a
//! current membership certificate signed by a root in `trust.federations`. `open`: every peer
//! whose messages validate (ranked later by observed reputation). A peer outside the trusted
//! set is never routed to and its relays are refused.

pub mod cert_file;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use rpcmesh_protocol::messages::MembershipCert;
use rpcmesh_protocol::{PublicKey, Signed};
use serde::Serialize;

use crate::config::{TrustConfig, TrustMode};

/// Why a provider is or is not trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum TrustStatus {
    /// This node itself.
    Own,
    /// Listed in `trust.peers`.
    Explicit,
    /// Holds a current certificate from a trusted federation.
    Member {
        /// Root key (hex) that signed the certificate.
        federation: String,
        /// Operator name in the certificate.
        operator: String,
        /// When the certificate expires, Unix ms.
        expires_at_ms: u64,
        /// How the member was vetted before admission, when its certificate says so.
        #[serde(skip_serializing_if = "Option::is_none")]
        vetting: Option<VettingInfo>,
    },
    /// `trust.mode = "open"`.
    Open,
    /// Not trusted.
    Untrusted {
        /// Why.
        reason: String,
    },
}

impl TrustStatus {
    /// Whether requests may be routed to, and relays served for, this provider.
    pub fn is_trusted(&self) -> bool {
        !matches!(self, Self::Untrusted { .. })
    }
}

/// When, on which chain and against which policy a member was vetted, from the vetting summary
/// embedded in its certificate (`rpcmesh federation admit --vetting-report`). Shown by `/peers`;
/// it informs operators and does not change the trust decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VettingInfo {
    /// When the vetting run ended, Unix ms.
    pub vetted_at_ms: u64,
    /// Chain the candidate's endpoint was vetted on.
    pub chain_id: u64,
    /// The policy's name.
    pub policy: String,
    /// SHA-256 of the policy (hex): equal digests mean equal thresholds.
    pub policy_digest: String,
    /// `pass`, `fail` (admitted with `--force`) or `incomplete`.
    pub verdict: &'static str,
    /// PeerId of the vetting operator who signed the summary.
    pub vetter: String,
    /// SHA-256 of the report (hex), to ask the federation for `report.json`.
    pub report_digest: String,
}

impl VettingInfo {
    /// What a certificate says about its member's vetting. The root's signature over the
    /// certificate covers the summary (and `admit` checked the vetter's signature), so it is read
    /// as is, without a second signature check per judgement.
    pub fn of(cert: &MembershipCert) -> Option<Self> {
        let v = cert.vetting.as_ref()?;
        Some(Self {
            vetted_at_ms: v.body.header.issued_at_ms,
            chain_id: v.body.chain_id,
            policy: v.body.policy_name.clone(),
            policy_digest: hex::encode(v.body.policy_digest),
            verdict: v.body.verdict.as_str(),
            vetter: v.signer.to_peer_id().to_string(),
            report_digest: hex::encode(v.body.report_digest),
        })
    }
}

/// Certificates whose signature checked out, remembered by their digest: the mesh re-judges
/// every provider's trust each second (certificates expire), and a signature check per provider
/// per second would make each daemon's idle cost grow with the mesh.
const VERIFIED_CERTS_CAPACITY: usize = 4096;

/// The configured trust rules.
#[derive(Debug, Clone)]
pub struct TrustPolicy {
    mode: TrustMode,
    own: PublicKey,
    explicit: HashSet<PublicKey>,
    federations: HashSet<PublicKey>,
    network_id: String,
    clock_skew_ms: u64,
    /// Digests of certificates whose signature verified ([`VERIFIED_CERTS_CAPACITY`] at most;
    /// forgotten all at once when full, which costs one check per certificate again).
    verified_certs: Arc<Mutex<HashSet<rpcmesh_protocol::digest::Digest>>>,
}

impl TrustPolicy {
    /// Builds the policy; entries were validated with the config, bad ones are skipped.
    pub fn new(cfg: &TrustConfig, own: PublicKey, network_id: &str) -> Self {
        Self {
            mode: cfg.mode,
            own,
            explicit: cfg.peers.iter().filter_map(|p| PublicKey::parse(p).ok()).collect(),
            federations: cfg.federations.iter().filter_map(|f| PublicKey::parse(f).ok()).collect(),
            network_id: network_id.to_string(),
            clock_skew_ms: 30_000,
            verified_certs: Arc::default(),
        }
    }

    /// The mode in force.
    pub fn mode(&self) -> TrustMode {
        self.mode
    }

    /// Judges `key`, presenting `cert`, at `now_ms`.
    pub fn judge(&self, key: &PublicKey, cert: Option<&Signed<MembershipCert>>, now_ms: u64) -> TrustStatus {
        if key == &self.own {
            return TrustStatus::Own;
        }
        if self.explicit.contains(key) {
            return TrustStatus::Explicit;
        }
        let cert_status = cert.map(|c| self.judge_cert(key, c, now_ms));
        if let Some(Ok(member)) = &cert_status {
            return member.clone();
        }
        if self.mode == TrustMode::Open {
            return TrustStatus::Open;
        }
        let reason = match cert_status {
            Some(Err(why)) => why,
            Some(Ok(_)) => unreachable!("handled above"),
            None => "not in trust.peers and presents no membership certificate".into(),
        };
        TrustStatus::Untrusted { reason }
    }

    fn judge_cert(&self, key: &PublicKey, cert: &Signed<MembershipCert>, now_ms: u64) -> Result<TrustStatus, String> {
        let body = &cert.body;
        if !self.federations.contains(&cert.signer) {
            return Err(format!("certificate signed by {}, not a federation in trust.federations", cert.signer));
        }
        if &body.member != key {
            return Err("certificate names another member".into());
        }
        if body.header.network_id != self.network_id {
            return Err(format!("certificate is for network {:?}", body.header.network_id));
        }
        if now_ms.saturating_add(self.clock_skew_ms) < body.header.issued_at_ms {
            return Err("certificate not yet valid".into());
        }
        if now_ms > body.header.expires_at_ms {
            return Err("certificate expired".into());
        }
        self.verify_cert(cert)?;
        Ok(TrustStatus::Member {
            federation: cert.signer.to_hex(),
            operator: body.operator_name.clone(),
            expires_at_ms: body.header.expires_at_ms,
            vetting: VettingInfo::of(body),
        })
    }
}

impl TrustPolicy {
    /// Checks `cert`'s signature once per distinct certificate (the digest covers the body and
    /// the signature, so a changed byte is a new certificate and checked again).
    fn verify_cert(&self, cert: &Signed<MembershipCert>) -> Result<(), String> {
        let digest = rpcmesh_protocol::digest::sha256(&cert.to_bytes());
        if self.verified_certs.lock().unwrap_or_else(|p| p.into_inner()).contains(&digest) {
            return Ok(());
        }
        cert.verify().map_err(|e| format!("certificate: {e}"))?;
        let mut known = self.verified_certs.lock().unwrap_or_else(|p| p.into_inner());
        if known.len() >= VERIFIED_CERTS_CAPACITY {
            known.clear();
        }
        known.insert(digest);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rpcmesh_protocol::{Identity, MessageHeader};

    use super::*;

    fn cert(member: &Identity, root: &Identity, net: &str, from: u64, ttl: u64) -> Signed<MembershipCert> {
        Signed::sign(
            MembershipCert {
                header: MessageHeader::new(net, 1, from, ttl),
                member: member.public_key(),
                operator_name: "Op".into(),
                vetting: None,
            },
            root,
        )
    }

    #[test]
    fn federated_trust_rules() {
        let (me, root, other_root, a, b) = (
            Identity::generate(),
            Identity::generate(),
            Identity::generate(),
            Identity::generate(),
            Identity::generate(),
        );
        let cfg = TrustConfig {
            federations: vec![root.public_key().to_hex()],
            peers: vec![b.peer_id().to_string()],
            ..TrustConfig::default()
        };
        let p = TrustPolicy::new(&cfg, me.public_key(), "n");
        let now = 1_000_000;
        assert_eq!(p.judge(&me.public_key(), None, now), TrustStatus::Own);
        assert_eq!(p.judge(&b.public_key(), None, now), TrustStatus::Explicit);
        assert!(!p.judge(&a.public_key(), None, now).is_trusted());
        assert!(p.judge(&a.public_key(), Some(&cert(&a, &root, "n", now - 10, 1000)), now).is_trusted());
        for (c, why) in [
            (cert(&a, &other_root, "n", now - 10, 1000), "not a federation"),
            (cert(&b, &root, "n", now - 10, 1000), "another member"),
            (cert(&a, &root, "m", now - 10, 1000), "network"),
            (cert(&a, &root, "n", now - 2000, 1000), "expired"),
            (cert(&a, &root, "n", now + 60_000, 1000), "not yet valid"),
        ] {
            match p.judge(&a.public_key(), Some(&c), now) {
                TrustStatus::Untrusted { reason } => assert!(reason.contains(why), "{reason} vs {why}"),
                other => panic!("{why}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_remembered_certificate_still_expires_and_a_forged_copy_is_still_refused() {
        let (me, root, a) = (Identity::generate(), Identity::generate(), Identity::generate());
        let cfg = TrustConfig { federations: vec![root.public_key().to_hex()], ..TrustConfig::default() };
        let p = TrustPolicy::new(&cfg, me.public_key(), "n");
        let now = 1_000_000;
        let good = cert(&a, &root, "n", now - 10, 1000);
        assert!(p.judge(&a.public_key(), Some(&good), now).is_trusted());
        // Judged again from memory: the time rules still apply.
        assert!(p.judge(&a.public_key(), Some(&good), now + 500).is_trusted());
        assert!(!p.judge(&a.public_key(), Some(&good), now + 2000).is_trusted(), "expired");
        // The same body under a damaged signature, or a changed body under the good signature.
        let mut bad_sig = good.clone();
        bad_sig.signature[0] ^= 1;
        let mut changed = good.clone();
        changed.body.operator_name = "Other".into();
        for forged in [bad_sig, changed] {
            match p.judge(&a.public_key(), Some(&forged), now) {
                TrustStatus::Untrusted { reason } => assert!(reason.contains("certificate"), "{reason}"),
                other => panic!("a forged certificate was trusted: {other:?}"),
            }
        }
    }

    #[test]
    fn a_vetted_member_shows_when_how_and_by_whom() {
        use rpcmesh_protocol::messages::{VettingSummary, VettingVerdict};
        let (me, root, vetter, a) =
            (Identity::generate(), Identity::generate(), Identity::generate(), Identity::generate());
        let cfg = TrustConfig { federations: vec![root.public_key().to_hex()], ..TrustConfig::default() };
        let p = TrustPolicy::new(&cfg, me.public_key(), "n");
        let summary = VettingSummary {
            header: MessageHeader::new("n", 1, 900_000, 1000),
            chain_id: 1,
            member: Some(a.public_key()),
            report_digest: [7; 32],
            policy_name: "strict".into(),
            policy_digest: [9; 32],
            verdict: VettingVerdict::Pass,
        };
        let mut c = cert(&a, &root, "n", 999_990, 1000).body;
        c.vetting = Some(Box::new(Signed::sign(summary, &vetter)));
        let c = Signed::sign(c, &root);
        match p.judge(&a.public_key(), Some(&c), 1_000_000) {
            TrustStatus::Member { vetting: Some(v), .. } => {
                assert_eq!((v.vetted_at_ms, v.chain_id, v.policy.as_str(), v.verdict), (900_000, 1, "strict", "pass"));
                assert_eq!(v.vetter, vetter.peer_id().to_string());
                assert_eq!(v.report_digest, "07".repeat(32));
            }
            other => panic!("{other:?}"),
        }
        // Without a summary, nothing is shown (and nothing else changes).
        let plain = cert(&a, &root, "n", 999_990, 1000);
        assert!(matches!(p.judge(&a.public_key(), Some(&plain), 1_000_000), TrustStatus::Member { vetting: None, .. }));
    }

    #[test]
    fn open_mode_trusts_everyone_valid() {
        let cfg = TrustConfig { mode: TrustMode::Open, ..TrustConfig::default() };
        let p = TrustPolicy::new(&cfg, Identity::generate().public_key(), "n");
        assert_eq!(p.judge(&Identity::generate().public_key(), None, 0), TrustStatus::Open);
    }
}
