//! Equivocation: two different signed answers from one provider to the same question pinned to
//! one block hash. A block hash fixes everything such a question can depend on, so the pair is
//! a lie by itself — no trusted material is needed to prove it, only the provider's two receipts.
//!
//! [`Memory`] keeps, per provider, the last signed answers to hash-pinned questions (bounded);
//! an answer that differs from the one remembered becomes an [`LieKind::Equivocation`] bundle:
//! `request`/`response`/`receipt` are the new exchange, `material` is `[anchor header, earlier
//! request, earlier response, earlier receipt (signed envelope bytes)]`. [`recheck`] proves it
//! from those bytes alone.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use rpcmesh_protocol::digest::sha256;
use rpcmesh_protocol::messages::{Evidence, LieKind, Receipt};
use rpcmesh_protocol::{PublicKey, Signed};
use serde_json::Value;

use super::claim::{BlockSel, Claim, claim_of, params_text};
use super::judge::result_of;

/// Signed answers remembered (all providers together).
pub const REMEMBERED_ANSWERS: usize = 4096;
/// Larger answers are not remembered (memory stays bounded by the product).
pub const MAX_REMEMBERED_BYTES: usize = 64 * 1024;

/// Whether `method(body)` is a question whose answer a block hash fixes.
pub fn pinned_by_hash(method: &str, body: &[u8]) -> bool {
    match claim_of(method, body) {
        Ok(Some(
            Claim::Block { block: BlockSel::Hash(_) }
            | Claim::BlockReceipts { block: BlockSel::Hash(_) }
            | Claim::State { block: BlockSel::Hash(_), .. }
            | Claim::Call { block: BlockSel::Hash(_) },
        )) => true,
        Ok(Some(Claim::Logs { filter })) => matches!(filter.blocks, rpcmesh_eth::logs::FilterBlocks::Hash(_)),
        _ => false,
    }
}

/// One remembered exchange.
#[derive(Clone)]
pub struct Exchange {
    /// The request as relayed.
    pub request: Vec<u8>,
    /// The answer as received.
    pub response: Vec<u8>,
    /// The provider's receipt for them.
    pub receipt: Signed<Receipt>,
}

type Key = (PublicKey, u64, String, String);

/// The last signed answer of each provider to each hash-pinned question, bounded.
#[derive(Default)]
pub struct Memory {
    inner: Mutex<(HashMap<Key, Exchange>, VecDeque<Key>)>,
}

impl Memory {
    /// Remembers `now` (an answer of `provider` to a hash-pinned `method`) and returns the
    /// earlier exchange it contradicts, if any.
    pub fn observe(&self, provider: PublicKey, chain_id: u64, method: &str, now: Exchange) -> Option<Exchange> {
        if now.response.len() > MAX_REMEMBERED_BYTES {
            return None;
        }
        let params = params_text(&now.request)?;
        let result = result_of(&now.response)?.get().to_string();
        let key = (provider, chain_id, method.to_string(), canonical(&params)?);
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (map, order) = &mut *g;
        if let Some(before) = map.get(&key) {
            let before_result = result_of(&before.response).map(|r| r.get().to_string());
            if before_result.as_deref() == Some(result.as_str()) || same_json(before_result.as_deref(), &result) {
                return None;
            }
            return Some(before.clone());
        }
        map.insert(key.clone(), now);
        order.push_back(key);
        while order.len() > REMEMBERED_ANSWERS {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
        None
    }
}

/// Params as a canonical JSON text (key order and whitespace do not make two questions differ).
fn canonical(params: &str) -> Option<String> {
    serde_json::from_str::<Value>(params).ok().map(|v| v.to_string())
}

fn same_json(a: Option<&str>, b: &str) -> bool {
    let parse = |s: &str| serde_json::from_str::<Value>(s).ok();
    a.and_then(parse).is_some_and(|a| Some(a) == parse(b))
}

/// The material of an equivocation bundle: the earlier exchange after the anchor header.
pub fn material(header_json: Vec<u8>, earlier: &Exchange) -> Vec<Vec<u8>> {
    vec![header_json, earlier.request.clone(), earlier.response.clone(), earlier.receipt.to_bytes()]
}

/// Re-proves an equivocation bundle from its bytes: the earlier receipt is the accused's, signed,
/// for the same chain and bound to the earlier request and response; both requests ask the same
/// hash-pinned question; both answers are results, and different JSON. (The new exchange's
/// binding to the accused is checked by the protocol rules before this.)
pub fn recheck(ev: &Evidence) -> Result<(), String> {
    if ev.kind != LieKind::Equivocation {
        return Err("not an equivocation".into());
    }
    let [_, request, response, receipt] = ev.material.as_slice() else {
        return Err("material must be [header, request, response, receipt]".into());
    };
    let earlier = Signed::<Receipt>::from_bytes(receipt).map_err(|e| format!("earlier receipt: {e}"))?;
    earlier.verify().map_err(|e| format!("earlier receipt: {e}"))?;
    if earlier.signer != ev.accused {
        return Err("the earlier receipt is not the accused's".into());
    }
    if earlier.body.chain_id != ev.chain_id {
        return Err("the earlier receipt is for another chain".into());
    }
    if earlier.body.request_digest != sha256(request) || earlier.body.response_digest != sha256(response) {
        return Err("the earlier receipt does not bind the earlier exchange".into());
    }
    let method = crate::jsonrpc::method_of;
    let (m1, m2) = (method(&ev.request).ok_or("no method")?, method(request).ok_or("no earlier method")?);
    if m1 != m2 || !pinned_by_hash(&m1, &ev.request) {
        return Err("not the same question pinned to a block hash".into());
    }
    let p1 = params_text(&ev.request).and_then(|p| canonical(&p));
    let p2 = params_text(request).and_then(|p| canonical(&p));
    if p1.is_none() || p1 != p2 {
        return Err("the two requests ask different questions".into());
    }
    let (r1, r2) = (result_of(&ev.response).ok_or("no result")?, result_of(response).ok_or("no earlier result")?);
    if same_json(Some(r1.get()), r2.get()) {
        return Err("the two answers are the same".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rpcmesh_protocol::Identity;
    use rpcmesh_protocol::messages::{BlockRef, MessageHeader};

    use super::*;

    const HASH: &str = "0x1111111111111111111111111111111111111111111111111111111111111111";
    const ACCOUNT: &str = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266";

    fn exchange(who: &Identity, id: u32, params: &str, result: &str) -> Exchange {
        let request =
            format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"eth_getBalance","params":{params}}}"#).into_bytes();
        let response = format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#).into_bytes();
        let receipt = Receipt {
            header: MessageHeader::new(String::from("t"), u64::from(id), 1, 60_000),
            requester: Identity::from_secret_bytes([7; 32]).public_key(),
            chain_id: 1,
            request_digest: sha256(&request),
            response_digest: sha256(&response),
            head: None,
        };
        Exchange { request, response, receipt: Signed::sign(receipt, who) }
    }

    fn bundle(who: &Identity, first: &Exchange, second: &Exchange) -> Evidence {
        Evidence {
            header: MessageHeader::new(String::from("t"), 1, 1, 1),
            accused: who.public_key(),
            chain_id: 1,
            kind: LieKind::Equivocation,
            request: second.request.clone(),
            response: second.response.clone(),
            receipt: second.receipt.clone(),
            anchor: BlockRef { number: 1, hash: [0; 32] },
            material: material(b"{}".to_vec(), first),
        }
    }

    fn pinned() -> String {
        format!(r#"["{ACCOUNT}",{{"blockHash":"{HASH}"}}]"#)
    }

    #[test]
    fn two_answers_to_one_pinned_question_prove_themselves() {
        let liar = Identity::from_secret_bytes([1; 32]);
        let memory = Memory::default();
        let a = exchange(&liar, 1, &pinned(), r#""0x10""#);
        assert!(memory.observe(liar.public_key(), 1, "eth_getBalance", a.clone()).is_none());
        // The same answer again (another id, other spacing of the params) is no contradiction.
        let spaced = format!(r#"[ "{ACCOUNT}", {{ "blockHash": "{HASH}" }} ]"#);
        let same = exchange(&liar, 2, &spaced, r#""0x10""#);
        assert!(memory.observe(liar.public_key(), 1, "eth_getBalance", same).is_none());
        let b = exchange(&liar, 3, &spaced, r#""0x0""#);
        let earlier = memory.observe(liar.public_key(), 1, "eth_getBalance", b.clone()).expect("a contradiction");
        assert!(recheck(&bundle(&liar, &earlier, &b)).is_ok());
        // Another provider's answer is not this one's contradiction.
        let other = Identity::from_secret_bytes([2; 32]);
        assert!(
            memory
                .observe(other.public_key(), 1, "eth_getBalance", exchange(&other, 4, &pinned(), r#""0x5""#))
                .is_none()
        );
    }

    #[test]
    fn what_is_not_equivocation_is_not_proven() {
        let liar = Identity::from_secret_bytes([1; 32]);
        let a = exchange(&liar, 1, &pinned(), r#""0x10""#);
        let same = exchange(&liar, 2, &pinned(), r#""0x010""#.replace("0x010", "0x10").as_str());
        assert!(recheck(&bundle(&liar, &a, &same)).is_err(), "same answer");
        let by_number = format!(r#"["{ACCOUNT}","0x5"]"#);
        let (x, y) = (exchange(&liar, 1, &by_number, r#""0x1""#), exchange(&liar, 2, &by_number, r#""0x2""#));
        assert!(recheck(&bundle(&liar, &x, &y)).is_err(), "a number is not a hash: a reorg may change it");
        let other_q = exchange(
            &liar,
            2,
            &format!(r#"["0x00000000000000000000000000000000000000aa",{{"blockHash":"{HASH}"}}]"#),
            r#""0x1""#,
        );
        assert!(recheck(&bundle(&liar, &a, &other_q)).is_err(), "different questions");
        let someone = Identity::from_secret_bytes([3; 32]);
        let theirs = exchange(&someone, 2, &pinned(), r#""0x0""#);
        let mut ev = bundle(&liar, &theirs, &exchange(&liar, 3, &pinned(), r#""0x0""#));
        assert!(recheck(&ev).is_err(), "the earlier receipt must be the accused's");
        ev.material[3] = b"garbage".to_vec();
        assert!(recheck(&ev).is_err());
    }
}
