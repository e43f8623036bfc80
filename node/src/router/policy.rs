//! The policy layer: which methods may reach a node at all, before any routing.
//!
//! A method is allowed when it matches an `allow` pattern and no `deny` pattern (deny wins).
//! Patterns are method names with `*` wildcards (`eth_*`, `eth_sign*`, `*_subscribe`). The
//! shipped default serves the public read/write surface (`eth_*`, `net_*`, `web3_*`) and refuses
//! node-admin, dev, debugging and unlocked-account methods: through a gateway nobody should be
//! able to reset the chain (`anvil_reset`), mint balances, or spend the node's own accounts
//! (`eth_sendTransaction`, `eth_sign`).

use std::collections::HashMap;

/// Methods served by default.
pub const DEFAULT_ALLOW: &[&str] = &["eth_*", "net_*", "web3_*"];

/// Methods refused by default even when an allow pattern matches.
pub const DEFAULT_DENY: &[&str] = &[
    // Node administration and dev-chain control.
    "admin_*",
    "personal_*",
    "anvil_*",
    "hardhat_*",
    "ganache_*",
    "evm_*",
    "miner_*",
    "engine_*",
    "clique_*",
    // Expensive or revealing diagnostics.
    "debug_*",
    "trace_*",
    "txpool_*",
    "parity_*",
    "ots_*",
    // The node's own (unlocked) accounts.
    "eth_sign*",
    "eth_sendTransaction",
    "eth_accounts",
    "eth_requestAccounts",
    "eth_coinbase",
    "eth_getWork",
    "eth_submitWork",
    "eth_submitHashrate",
    "eth_mining",
    "eth_hashrate",
];

/// Compiled `*` patterns.
#[derive(Debug, Clone, Default)]
struct Patterns {
    exact: std::collections::HashSet<String>,
    prefixes: Vec<String>,
    /// Patterns with a `*` elsewhere than at the end, as their literal pieces.
    globs: Vec<Vec<String>>,
    any: bool,
}

impl Patterns {
    fn new<S: AsRef<str>>(patterns: &[S]) -> Self {
        let mut p = Self::default();
        for pat in patterns.iter().map(AsRef::as_ref) {
            match pat.find('*') {
                None => {
                    p.exact.insert(pat.to_string());
                }
                Some(_) if pat == "*" => p.any = true,
                Some(i) if i == pat.len() - 1 => p.prefixes.push(pat[..i].to_string()),
                Some(_) => p.globs.push(pat.split('*').map(str::to_string).collect()),
            }
        }
        p
    }

    fn matches(&self, method: &str) -> bool {
        self.any
            || self.exact.contains(method)
            || self.prefixes.iter().any(|pre| method.starts_with(pre.as_str()))
            || self.globs.iter().any(|pieces| glob(pieces, method))
    }
}

/// Whether `s` matches the literal `pieces` of a pattern split at its `*`s.
fn glob(pieces: &[String], s: &str) -> bool {
    let (Some(first), Some(last)) = (pieces.first(), pieces.last()) else { return true };
    if pieces.len() == 1 {
        return s == first;
    }
    if !s.starts_with(first.as_str()) || s.len() < first.len() + last.len() || !s.ends_with(last.as_str()) {
        return false;
    }
    let mut rest = &s[first.len()..s.len() - last.len()];
    for piece in &pieces[1..pieces.len() - 1] {
        match rest.find(piece.as_str()) {
            Some(i) => rest = &rest[i + piece.len()..],
            None => return false,
        }
    }
    true
}

/// Allow and deny patterns.
#[derive(Debug, Clone)]
pub struct MethodRules {
    allow: Patterns,
    deny: Patterns,
}

impl MethodRules {
    /// Rules from pattern lists.
    pub fn new<A: AsRef<str>, D: AsRef<str>>(allow: &[A], deny: &[D]) -> Self {
        Self { allow: Patterns::new(allow), deny: Patterns::new(deny) }
    }

    /// The shipped default.
    pub fn default_public() -> Self {
        Self::new(DEFAULT_ALLOW, DEFAULT_DENY)
    }

    /// Everything allowed (testnets that drive a dev chain through the gateway).
    pub fn allow_all() -> Self {
        Self::new(&["*"], &[] as &[&str])
    }

    /// Whether `method` may be served.
    pub fn allows(&self, method: &str) -> bool {
        self.allow.matches(method) && !self.deny.matches(method)
    }
}

/// A method the policy refuses, with the setting that decides it (named in the error the client
/// gets, so an operator knows what to change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The setting to change.
    pub setting: &'static str,
}

/// The gateway's method policy: per-chain rules, else the gateway-wide ones.
#[derive(Debug, Clone)]
pub struct MethodPolicy {
    default: MethodRules,
    chains: HashMap<u64, MethodRules>,
}

impl MethodPolicy {
    /// A policy from the gateway-wide rules and per-chain overrides.
    pub fn new(default: MethodRules, chains: HashMap<u64, MethodRules>) -> Self {
        Self { default, chains }
    }

    /// Whether `method` may be served on `chain_id`.
    pub fn check(&self, chain_id: u64, method: &str) -> Result<(), Refused> {
        match self.chains.get(&chain_id) {
            Some(rules) if rules.allows(method) => Ok(()),
            Some(_) => Err(Refused { setting: "[[chain]] allow_methods / deny_methods" }),
            None if self.default.allows(method) => Ok(()),
            None => Err(Refused { setting: "gateway.allow_methods / gateway.deny_methods" }),
        }
    }
}

impl Default for MethodPolicy {
    fn default() -> Self {
        Self::new(MethodRules::default_public(), HashMap::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_serves_the_public_surface_and_nothing_else() {
        let p = MethodRules::default_public();
        for ok in [
            "eth_blockNumber",
            "eth_call",
            "eth_getLogs",
            "eth_sendRawTransaction",
            "eth_subscribe",
            "eth_getProof",
            "net_version",
            "web3_clientVersion",
        ] {
            assert!(p.allows(ok), "{ok}");
        }
        for refused in [
            "anvil_reset",
            "anvil_setBalance",
            "evm_mine",
            "hardhat_impersonateAccount",
            "debug_traceTransaction",
            "trace_block",
            "txpool_content",
            "admin_peers",
            "personal_unlockAccount",
            "miner_start",
            "eth_sign",
            "eth_signTransaction",
            "eth_signTypedData_v4",
            "eth_sendTransaction",
            "eth_accounts",
            "eth_coinbase",
            "rpc_modules",
            "made_up",
        ] {
            assert!(!p.allows(refused), "{refused}");
        }
    }

    #[test]
    fn globs_and_deny_wins() {
        let r = MethodRules::new(&["*_subscribe", "debug_trace*Call", "eth_*"], &["eth_get*Proof"]);
        assert!(r.allows("eth_subscribe"));
        assert!(r.allows("debug_traceCall"));
        assert!(r.allows("debug_traceBlockCall"));
        assert!(!r.allows("debug_traceTransaction"));
        assert!(!r.allows("eth_getProof"));
        assert!(r.allows("eth_getBalance"));
        assert!(MethodRules::allow_all().allows("anvil_reset"));
    }

    #[test]
    fn chain_rules_replace_the_gateway_ones() {
        let mut chains = HashMap::new();
        chains.insert(31337, MethodRules::allow_all());
        let policy = MethodPolicy::new(MethodRules::default_public(), chains);
        assert!(policy.check(31337, "anvil_mine").is_ok());
        let refused = policy.check(1, "anvil_mine").unwrap_err();
        assert!(refused.setting.contains("gateway.allow_methods"));
    }
}
