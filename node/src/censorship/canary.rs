//! Canaries: each daemon asks every provider, every few minutes, about the watched addresses,
//! so an undisclosed filter is proven even if no client ever asks about them.
//!
//! Per round, per chain this node routes, per eligible operator (its own node included), per
//! watched address (at most [`ADDRESSES_PER_ROUND`], rotating): balance, nonce and code read
//! strictly (pinned to the trusted head, proven against its state root with a proof from
//! another operator), logs the address emitted in the head block, and a **dry transaction**: a
//! transfer to the address from a key made for the round and never funded, which every
//! well-behaved node refuses for lack of funds. It is sent to that one operator only, never
//! broadcast, and nothing can ever mine it. A wrong read or a refusal for another reason goes
//! through the request path's checks, which turn it into evidence (peers) or a warning (own node).
//!
//! Whatever the watch list, each operator asked in a round is also **audited**: its head block
//! and the balance of that block's miner, read strictly. A provider whose node lies about blocks
//! or state is then proven wrong (and cordoned mesh-wide) within a few rounds even when no
//! client's request ever reaches it.

use std::time::Duration;

use bytes::Bytes;
use rpcmesh_eth::{Address, B256};
use tokio_util::sync::CancellationToken;

use crate::jsonrpc::Request;
use crate::metrics::{CanaryLabels, NodeMetrics};
use crate::router::{AttemptError, Router, Target, VerifyMode};

/// Most watched addresses one round asks about (rotating through longer lists).
pub const ADDRESSES_PER_ROUND: usize = 16;
/// Most operators one round asks, per chain, drawn at random: a daemon's cost per round stays
/// flat in the size of the mesh, and with every daemon drawing, each provider is still asked by
/// about `8 × daemons / providers` daemons per round.
pub const OPERATORS_PER_ROUND: usize = 8;
/// A provider already labelled as filtering an address is asked about it again only when its
/// label has less than this share of its life left: no new evidence every round for a filter
/// the mesh already knows.
pub const RELABEL_WHEN_LEFT: f64 = 0.1;
/// Gas price of the dry transaction, wei: above any base fee a test or main chain has, so the
/// only node-level reason left to refuse it is the empty account.
pub const DRY_GAS_PRICE_WEI: u128 = 1_000_000_000_000;

/// The canary task's settings.
#[derive(Debug, Clone)]
pub struct CanarySettings {
    /// Watched addresses.
    pub watch: Vec<Address>,
    /// Round period (jittered by ±20 %).
    pub interval: Duration,
    /// Whether rounds audit each operator's head block and a balance (strictly verified):
    /// not when `integrity.mode = "off"`, where nothing would be verified (a simulated chain's
    /// blocks cannot be, and asking a quorum for its head each round is wasted work).
    pub audit: bool,
}

/// Runs canary rounds until cancelled. Cancel-safe: a round in progress is dropped.
pub async fn run(router: Router, settings: CanarySettings, metrics: NodeMetrics, cancel: CancellationToken) {
    if settings.interval.is_zero() || (settings.watch.is_empty() && !settings.audit) {
        return;
    }
    let mut offset = 0usize;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(jittered(settings.interval)) => {}
        }
        let n = settings.watch.len().min(ADDRESSES_PER_ROUND);
        let batch: Vec<Address> = (0..n).map(|i| settings.watch[(offset + i) % settings.watch.len()]).collect();
        offset = (offset + n) % settings.watch.len().max(1);
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = round(&router, &batch, settings.audit, &metrics) => {}
        }
    }
}

fn jittered(base: Duration) -> Duration {
    let mut b = [0u8; 2];
    let r = if getrandom::fill(&mut b).is_ok() { u16::from_le_bytes(b) } else { 0x8000 };
    // 0.8 .. 1.2 of the base period: daemons started together do not probe in lockstep.
    base.mul_f64(0.8 + 0.4 * f64::from(r) / f64::from(u16::MAX))
}

/// One round over every chain and operator; operators are asked one after another (a round
/// is background work, its cost stays a trickle).
async fn round(router: &Router, watch: &[Address], audits: bool, metrics: &NodeMetrics) {
    let Some(secret) = fresh_secret() else { return };
    for chain_id in router.served_chains() {
        let mut targets = router.eligible_targets(chain_id);
        shuffle(&mut targets);
        targets.truncate(OPERATORS_PER_ROUND);
        for target in targets {
            if audits {
                audit(router, chain_id, target, metrics).await;
            }
            for address in watch {
                if let Target::Peer(key) = target
                    && router.labelled_long_enough(chain_id, &key, address, RELABEL_WHEN_LEFT)
                {
                    continue;
                }
                for req in reads(*address) {
                    let outcome = read_outcome(router.call_target(chain_id, target, &req, VerifyMode::Strict).await);
                    count(metrics, "read", outcome);
                    if outcome != "honest" {
                        tracing::info!(chain_id, ?target, method = %req.method, address = %address, outcome, "canary read");
                    }
                }
                let outcome = match rpcmesh_eth::dry_transfer(chain_id, secret, *address, DRY_GAS_PRICE_WEI) {
                    Ok(raw) => {
                        let req = send_request(&raw);
                        write_outcome(router.call_target(chain_id, target, &req, VerifyMode::Off).await)
                    }
                    Err(_) => "failed",
                };
                count(metrics, "write", outcome);
                match (outcome, target) {
                    ("filtered", Target::Own(_)) => {
                        tracing::warn!(chain_id, address = %address, "this node's own upstream refuses transactions to a watched address: clients' transactions go to other operators")
                    }
                    ("accepted", _) => tracing::warn!(
                        chain_id,
                        ?target,
                        "an operator accepted a canary transaction from an empty account"
                    ),
                    ("honest", _) => {}
                    (o, _) => tracing::info!(chain_id, ?target, address = %address, outcome = o, "canary transaction"),
                }
            }
        }
    }
}

/// The audit of one operator: its head block, then the balance of the block's miner, both read
/// strictly (the block against the trusted chain, the balance proven at the trusted head).
async fn audit(router: &Router, chain_id: u64, target: Target, metrics: &NodeMetrics) {
    let head = Request::internal("eth_getBlockByNumber", r#"["latest",false]"#);
    let answer = router.call_target(chain_id, target, &head, VerifyMode::Strict).await;
    let miner = answer.as_ref().ok().and_then(|body| miner_of(body));
    let outcome = read_outcome(answer);
    count(metrics, "audit", outcome);
    if outcome != "honest" {
        tracing::info!(chain_id, ?target, outcome, "canary audit of the head block");
    }
    let Some(miner) = miner else { return };
    let balance = Request::internal("eth_getBalance", &format!(r#"["{miner}","latest"]"#));
    let outcome = read_outcome(router.call_target(chain_id, target, &balance, VerifyMode::Strict).await);
    count(metrics, "audit", outcome);
    if outcome != "honest" {
        tracing::info!(chain_id, ?target, outcome, "canary audit of a balance");
    }
}

/// The `miner` of a block answer (a JSON-RPC response body), as a checked address.
fn miner_of(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let m = v.get("result")?.get("miner")?.as_str()?;
    let a: Address = m.parse().ok()?;
    Some(crate::censorship::subject_of(&a))
}

/// Fisher–Yates with OS randomness: which operators a round asks is not predictable.
fn shuffle<T>(items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let mut b = [0u8; 8];
        if getrandom::fill(&mut b).is_err() {
            return;
        }
        let j = (u64::from_le_bytes(b) % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

fn count(metrics: &NodeMetrics, probe: &str, outcome: &str) {
    metrics
        .censorship_canary_checks
        .get_or_create(&CanaryLabels { probe: probe.into(), outcome: outcome.into() })
        .inc();
}

/// A key for one round's dry transactions: random, so no one can fund it ahead of time.
fn fresh_secret() -> Option<B256> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).ok()?;
    // Any 32 bytes below the curve order are a key; all-zero is not one.
    b[0] &= 0x7f;
    b[31] |= 1;
    Some(B256::from(b))
}

fn reads(address: Address) -> Vec<Request> {
    let a = crate::censorship::subject_of(&address);
    vec![
        Request::internal("eth_getBalance", &format!(r#"["{a}","latest"]"#)),
        Request::internal("eth_getTransactionCount", &format!(r#"["{a}","latest"]"#)),
        Request::internal("eth_getCode", &format!(r#"["{a}","latest"]"#)),
        Request::internal("eth_getLogs", &format!(r#"[{{"address":"{a}","fromBlock":"latest","toBlock":"latest"}}]"#)),
    ]
}

fn send_request(raw: &[u8]) -> Request {
    Request::internal("eth_sendRawTransaction", &format!(r#"["0x{}"]"#, hex::encode(raw)))
}

fn read_outcome(r: Result<Bytes, AttemptError>) -> &'static str {
    match r {
        Ok(_) => "honest",
        Err(AttemptError::Unverified(c)) if c.kind == "unverifiable" || c.kind == "bad_material" => "unverifiable",
        Err(AttemptError::Unverified(_)) => "proven_wrong",
        Err(_) => "failed",
    }
}

fn write_outcome(r: Result<Bytes, AttemptError>) -> &'static str {
    match r {
        Ok(body) if crate::censorship::refusal::error_of(&body).is_some() => "honest",
        Ok(_) => "accepted",
        Err(AttemptError::Filtered(_)) => "filtered",
        Err(_) => "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dry_transactions_are_well_formed_requests_to_the_watched_address() {
        let to: Address = "0xa0ee7a142d267c1f36714e4a8f75612f20a79720".parse().unwrap();
        let raw = rpcmesh_eth::dry_transfer(31337, fresh_secret().unwrap(), to, DRY_GAS_PRICE_WEI).unwrap();
        let req = send_request(&raw);
        assert_eq!(crate::censorship::touch::touched(&req.method, &req.raw)[1], to);
        assert_ne!(fresh_secret(), fresh_secret());
    }

    #[test]
    fn the_audited_balance_is_the_head_blocks_miner() {
        let body = br#"{"jsonrpc":"2.0","id":1,"result":{"number":"0x5","miner":"0x00000000000000000000000000000000000000aB"}}"#;
        assert_eq!(miner_of(body).as_deref(), Some("0x00000000000000000000000000000000000000ab"));
        assert_eq!(miner_of(br#"{"result":{"miner":"0x12"}}"#), None, "not an address");
        assert_eq!(miner_of(br#"{"error":{"code":-32000}}"#), None);
    }

    #[test]
    fn shuffling_keeps_every_item() {
        let mut v: Vec<u32> = (0..50).collect();
        shuffle(&mut v);
        let mut sorted = v.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn jitter_stays_within_a_fifth() {
        for _ in 0..100 {
            let d = jittered(Duration::from_secs(100));
            assert!(d >= Duration::from_secs(80) && d <= Duration::from_secs(120), "{d:?}");
        }
    }
}
