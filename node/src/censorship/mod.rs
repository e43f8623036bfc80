//! Censorship: no provider decides what clients may read or send.
//!
//! ```text
//!  config [censorship] ──► Censorship (avoid patterns, watched addresses)
//!                              │ per request (router): touched accounts (touch.rs)
//!                              │   watched → verified strictly whatever the integrity mode
//!                              │   avoid (config ∪ x-rpcmesh-avoid) vs announced policies
//!                              │   filter labels vs touched accounts → other providers
//!  answer check (WriteCheck) ─► refusal.rs: a refused transaction with no node-level reason
//!                              │   → retried on the next operator, Refusal evidence
//!  integrity check ───────────► a state read proven wrong whose answer is empty, omitted logs
//!                              │   → evidence whose subjects (filtered_subjects) label, not cordon
//!  canary.rs (task) ──────────► every few minutes, per provider: proven reads of each watched
//!                                  address and a dry transaction to it (never minable)
//! ```
//!
//! A provider proven to filter is **labelled** on that chain with what it filters (evidence
//! task, gossiped like all evidence): requests about those subjects go to other providers, the
//! rest it still serves. One with more than `censorship.max_filtered_subjects` distinct subjects
//! is cordoned like a liar: making every lie "empty" must not be a way around cordons.

pub mod avoid;
pub mod canary;
pub mod refusal;
pub mod touch;
mod write_check;

use std::collections::{HashMap, HashSet};

use rpcmesh_eth::Address;
use rpcmesh_protocol::messages::{Evidence, LieKind};

pub use self::avoid::Avoid;
pub use self::write_check::WriteCheck;
use crate::config::{CensorshipConfig, ChainConfig};

/// Parses a 0x-prefixed 20-byte hex address.
pub fn parse_address(s: &str) -> Option<Address> {
    let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    if digits.len() != 40 {
        return None;
    }
    let bytes = hex::decode(digits).ok()?;
    Some(Address::from_slice(&bytes))
}

/// An address as a label subject: lower-case 0x hex.
pub fn subject_of(a: &Address) -> String {
    format!("0x{}", hex::encode(a.as_slice()))
}

/// The daemon's censorship settings, as the request path needs them.
#[derive(Debug, Clone, Default)]
pub struct Censorship {
    /// Configured avoid patterns.
    pub avoid: Avoid,
    /// Watched addresses.
    pub watch: HashSet<Address>,
    /// This node's own declared policies, per chain (its upstreams are avoided like any
    /// provider whose policies match).
    pub own_policies: HashMap<u64, Vec<String>>,
    /// Distinct operators a transaction is sent to.
    pub broadcast_operators: usize,
    /// Confirmation delay after an accepted transaction (`None`: off).
    pub confirm_ms: Option<u64>,
    /// This operator's declared jurisdiction (broadcasts prefer others).
    pub own_jurisdiction: Option<String>,
}

impl Censorship {
    /// From the configuration (validated: unparsable watch entries were refused at load).
    pub fn new(cfg: &CensorshipConfig, chains: &[ChainConfig], jurisdiction: Option<String>) -> Self {
        Self {
            avoid: Avoid::new(&cfg.avoid),
            watch: cfg.watch.iter().filter_map(|w| parse_address(w)).collect(),
            own_policies: chains.iter().map(|c| (c.id, c.policies.clone())).collect(),
            broadcast_operators: cfg.broadcast_operators.max(1) as usize,
            confirm_ms: (cfg.confirm_ms > 0).then_some(cfg.confirm_ms),
            own_jurisdiction: jurisdiction,
        }
    }

    /// Whether any of `touched` is watched.
    pub fn watched(&self, touched: &[Address]) -> bool {
        !self.watch.is_empty() && touched.iter().any(|a| self.watch.contains(a))
    }
}

/// What a proven bundle shows a provider filtering, if it is censorship rather than a lie:
/// a state read proven wrong whose answer is "empty" (zero balance or nonce, no code, a zero
/// slot), logs left out, or a refused transaction. The subjects are the accounts the request
/// is about (lower-case 0x), or the method when it names none.
pub fn filtered_subjects(ev: &Evidence) -> Option<Vec<String>> {
    let method = crate::jsonrpc::method_of(&ev.request)?;
    let subjects = |accounts: Vec<Address>| {
        if accounts.is_empty() { vec![method.clone()] } else { accounts.iter().map(subject_of).collect() }
    };
    match ev.kind {
        LieKind::Refusal => {
            let to = touch::raw_transaction(&ev.request).and_then(|tx| tx.to);
            Some(subjects(to.into_iter().collect()))
        }
        LieKind::LogOmitted => Some(subjects(touch::touched(&method, &ev.request))),
        LieKind::State if empty_answer(&method, &ev.response) => Some(subjects(touch::touched(&method, &ev.request))),
        _ => None,
    }
}

/// Whether a state read's answer is the "nothing here" a filter returns.
fn empty_answer(method: &str, response: &[u8]) -> bool {
    let Some(result) = crate::integrity::judge::result_of(response) else { return false };
    let Ok(text) = serde_json::from_str::<String>(result.get()) else { return false };
    let digits = text.strip_prefix("0x").unwrap_or(&text);
    match method {
        "eth_getBalance" | "eth_getTransactionCount" | "eth_getStorageAt" => digits.bytes().all(|b| b == b'0'),
        "eth_getCode" => digits.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
