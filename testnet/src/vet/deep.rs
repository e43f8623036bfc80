//! Checks that need material: receipts against the block's `receiptsRoot`, logs against those
//! receipts, state reads against an `eth_getProof` at the block's `stateRoot`.
//!
//! The header of each pinned block is the candidate's own, accepted only when its fields hash to
//! the hash the pinning source gave (a reference's, when one was given). Receipts and proofs are
//! asked of the candidate too: a candidate that alters a balance must then also forge a Merkle
//! proof to a root whose header hashes right, which it cannot. A candidate without
//! `eth_getProof` (or `eth_getBlockReceipts`) leaves those reads "not verifiable", not failed.

use std::collections::HashMap;

use rpcmesh_eth::{
    Address, B256, BlockId, StateValue, VerifiedHeader, VerifiedReceipts, check_balance, check_code, check_storage_at,
    check_transaction_count, logs::parse_log_filter, parse_logs, verify_account_proof, verify_block_logs,
    verify_block_receipts, verify_header_of, verify_receipt,
};
use serde_json::{Value, json};

use super::correctness::{Pinned, Read};
use super::target::{Rpc, RpcTarget, qty};
use super::verify::Verification;

/// A pinned block's verified header, and its verified receipts when the candidate gave them.
pub struct BlockMaterial {
    header: VerifiedHeader,
    receipts: Option<VerifiedReceipts>,
}

/// The verified material of each pinned block (by number); blocks whose header did not verify or
/// did not match the pinned hash are absent.
pub async fn material<S: RpcTarget>(candidate: Rpc<'_, S>, pinned: &[Pinned]) -> HashMap<u64, BlockMaterial> {
    let mut out = HashMap::new();
    for p in pinned {
        let Ok(block) = candidate.call("eth_getBlockByNumber", &json!([qty(p.number), false])).await else { continue };
        let Ok(header) = verify_header_of(&bytes(&block), BlockId::Number(p.number)) else { continue };
        if !super::verify::same_hex(&format!("{}", header.hash()), &p.hash) {
            continue;
        }
        let receipts = match candidate.call("eth_getBlockReceipts", &json!([qty(p.number)])).await {
            Ok(r) => verify_block_receipts(&bytes(&r), &header).ok(),
            Err(_) => None,
        };
        out.insert(p.number, BlockMaterial { header, receipts });
    }
    out
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// The material check of `answer` to `read`, when one applies (`None`: keep the plain check).
pub async fn verify<S: RpcTarget>(
    candidate: Rpc<'_, S>,
    read: &Read,
    answer: &Value,
    material: &HashMap<u64, BlockMaterial>,
) -> Option<Verification> {
    let m = material.get(&read.block?)?;
    if answer.is_null() {
        return None;
    }
    let outcome = |r: Result<(), rpcmesh_eth::EthError>, kind: &'static str| match r {
        Ok(()) => Verification::Verified(kind),
        Err(e) => Verification::Failed(e.to_string()),
    };
    let no_receipts = || Verification::NotVerifiable;
    Some(match read.method {
        "eth_getBlockReceipts" => outcome(verify_block_receipts(&bytes(answer), &m.header).map(drop), "receipts root"),
        "eth_getTransactionReceipt" => match &m.receipts {
            Some(r) => outcome(verify_receipt(&bytes(answer), r).map(drop), "receipt in the block's receipts root"),
            None => no_receipts(),
        },
        "eth_getLogs" => {
            let Some(r) = &m.receipts else { return Some(no_receipts()) };
            let filter = read.params.get(0).map(bytes).and_then(|f| parse_log_filter(&f).ok())?;
            let logs = match parse_logs(&bytes(answer)) {
                Ok(l) => l,
                Err(e) => return Some(Verification::Failed(e.to_string())),
            };
            outcome(verify_block_logs(&logs, &filter, r).map(drop), "logs in the block's receipts")
        }
        "eth_getBalance" | "eth_getTransactionCount" | "eth_getCode" | "eth_getStorageAt" => {
            let address: Address = read.params.get(0)?.as_str()?.parse().ok()?;
            let slot: Option<B256> = match read.method {
                "eth_getStorageAt" => Some(slot_of(read.params.get(1)?.as_str()?)?),
                _ => None,
            };
            let slots: Vec<Value> = slot.iter().map(|s| json!(format!("{s}"))).collect();
            let params = json!([format!("{address:#x}"), slots, qty(m.header.number())]);
            let Ok(proof) = candidate.call("eth_getProof", &params).await else {
                return Some(Verification::NotVerifiable);
            };
            let slot_list: Vec<B256> = slot.into_iter().collect();
            let account = match verify_account_proof(&bytes(&proof), m.header.state_root(), address, &slot_list) {
                Ok(a) => a,
                Err(e) => return Some(Verification::Failed(format!("eth_getProof: {e}"))),
            };
            let a = bytes(answer);
            let value = match read.method {
                "eth_getBalance" => StateValue::Balance,
                "eth_getTransactionCount" => StateValue::Nonce,
                "eth_getCode" => StateValue::Code,
                _ => StateValue::Storage,
            };
            let checked = match (value, slot) {
                (StateValue::Balance, _) => check_balance(&a, &account).map(drop),
                (StateValue::Nonce, _) => check_transaction_count(&a, &account).map(drop),
                (StateValue::Code, _) => check_code(&a, &account).map(drop),
                (_, Some(s)) => check_storage_at(&a, &account, s).map(drop),
                (_, None) => return None,
            };
            outcome(checked, "proof against the state root")
        }
        _ => return None,
    })
}

/// A storage slot parameter (a quantity, possibly short) as a 32-byte word.
fn slot_of(s: &str) -> Option<B256> {
    let n = rpcmesh_eth::json::parse_quantity(s).ok()?;
    Some(B256::from(n.to_be_bytes::<32>()))
}
