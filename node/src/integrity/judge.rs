//! Pure judgement of one answer against material this node trusts: a verified header of a block
//! on the trusted chain and, per method, a proof, the block's receipts or the full block.
//!
//! The same functions judge an answer when it arrives ([`super::check`]) and re-judge an
//! evidence bundle a peer gossips ([`recheck`]), so a receiver convicts with exactly the rules
//! the reporter used. A verdict separates a proven lie (the answer contradicts verified
//! material) from an answer that merely could not be verified (material missing, malformed or
//! itself unproven): only the first becomes evidence.

use rpcmesh_eth::{
    Address, B256, BlockId, ClaimedLog, EthError, LogFilter, StateValue, VerifiedBlock, VerifiedHeader,
    VerifiedReceipts, check_balance, check_code, check_storage_at, check_transaction_count, parse_logs,
    verify_account_proof, verify_block, verify_block_logs, verify_block_receipts, verify_header, verify_receipt,
    verify_transaction_by_hash,
};
use rpcmesh_protocol::messages::{Evidence, LieKind};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::claim::{BlockSel, Claim, claim_of};
use crate::router::Verified;

/// Why an answer was not accepted as verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The answer contradicts verified material: a lie (or a corrupted answer), provable to others.
    Lie {
        /// What it got wrong.
        kind: LieKind,
        /// What did not match.
        detail: String,
    },
    /// The answer could not be verified (no trusted material, or a request it cannot judge).
    Unverifiable(String),
    /// The material failed its own verification: it proves nothing either way, and material
    /// from another operator may do better.
    BadMaterial(String),
}

impl Verdict {
    fn from_eth(kind: LieKind, e: EthError) -> Self {
        if e.is_mismatch() { Self::Lie { kind, detail: e.to_string() } } else { Self::Unverifiable(e.to_string()) }
    }

    /// Stable label for metrics and `CheckFailure`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Lie { kind, .. } => kind.as_str(),
            Self::Unverifiable(_) | Self::BadMaterial(_) => "unverifiable",
        }
    }

    /// The `outcome` label of `rpcmesh_integrity_checks_total`: `lie_<kind>` for a lie (a bare
    /// kind would read like a verification level: `header` is both), else `unverifiable`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Lie { kind, .. } => kind.outcome(),
            Self::Unverifiable(_) | Self::BadMaterial(_) => "unverifiable",
        }
    }
}

/// Material that failed its own verification proves nothing about the answer.
fn material(e: EthError) -> Verdict {
    Verdict::BadMaterial(e.to_string())
}

/// The outcome of a judgement.
pub type Judged = Result<Verified, Verdict>;

/// `null`: the node does not know the object. Absence cannot be proven from an answer, and
/// clients poll for receipts that do not exist yet: passed on, marked unverified.
pub fn is_null(result: &[u8]) -> bool {
    result.trim_ascii() == b"null"
}

/// A block answer on its own: the header hash recomputed (and the transactions root when
/// hydrated), and the block the one asked for. Returns the verified block for the trust check.
pub fn block_alone(result: &[u8], asked: BlockSel) -> Result<VerifiedBlock, Verdict> {
    let block = verify_block(result).map_err(|e| {
        let kind = if matches!(e, EthError::HeaderHashMismatch { .. }) { LieKind::Header } else { LieKind::Block };
        Verdict::from_eth(kind, e)
    })?;
    is_asked_block(block.header(), asked)?;
    Ok(block)
}

/// A verified block is the one asked for (any block answers a head or `pending` selector).
pub fn is_asked_block(header: &VerifiedHeader, asked: BlockSel) -> Result<(), Verdict> {
    let expected = match asked {
        BlockSel::Number(n) => Some(BlockId::Number(n)),
        BlockSel::Earliest => Some(BlockId::Number(0)),
        BlockSel::Hash(h) => Some(BlockId::Hash(h)),
        BlockSel::Head | BlockSel::Pending => None,
    };
    match expected {
        Some(id) => header.expect(id).map_err(|e| Verdict::from_eth(LieKind::Header, e)),
        None => Ok(()),
    }
}

/// A verified block is the trusted one at its height.
pub fn on_trusted_chain(block: &VerifiedHeader, trusted: &VerifiedHeader) -> Judged {
    if block.number() != trusted.number() || block.hash() != trusted.hash() {
        return Err(Verdict::Lie {
            kind: LieKind::Header,
            detail: format!(
                "block #{} {} is not the trusted block #{} {}",
                block.number(),
                block.hash(),
                trusted.number(),
                trusted.hash()
            ),
        });
    }
    Ok(Verified::Header)
}

/// A transaction answer on its own: its hash recomputed from the signed fields, the sender
/// recovered.
pub fn transaction_alone(result: &[u8], asked: B256) -> Result<rpcmesh_eth::VerifiedTransaction, Verdict> {
    verify_transaction_by_hash(result, asked).map_err(|e| Verdict::from_eth(LieKind::Transaction, e))
}

/// A transaction placed in a trusted full block: it is there, at the position it claims.
pub fn transaction_in(tx: &rpcmesh_eth::VerifiedTransaction, block: &[u8], trusted: &VerifiedHeader) -> Judged {
    let block = verify_block(block).map_err(material)?;
    on_trusted_chain(block.header(), trusted).map_err(|_| material(EthError::NotFound))?;
    block.transaction(tx).map_err(|e| Verdict::from_eth(LieKind::Transaction, e))?;
    Ok(Verified::Header)
}

/// A block's receipts (material) verified against its trusted header, for reuse by
/// [`receipt_against`] and [`logs_against`].
pub fn verified_receipts(block_receipts: &[u8], trusted: &VerifiedHeader) -> Result<VerifiedReceipts, Verdict> {
    verify_block_receipts(block_receipts, trusted).map_err(material)
}

/// A single receipt against the trusted block's receipts (`block_receipts` is material).
pub fn receipt(result: &[u8], block_receipts: &[u8], trusted: &VerifiedHeader) -> Judged {
    receipt_against(result, &verified_receipts(block_receipts, trusted)?)
}

/// A single receipt against the block's verified receipts.
pub fn receipt_against(result: &[u8], receipts: &VerifiedReceipts) -> Judged {
    verify_receipt(result, receipts).map_err(|e| Verdict::from_eth(LieKind::Receipt, e))?;
    Ok(Verified::Header)
}

/// A block's receipts against its trusted header.
pub fn block_receipts(result: &[u8], trusted: &VerifiedHeader) -> Judged {
    verify_block_receipts(result, trusted).map_err(|e| Verdict::from_eth(LieKind::Receipt, e))?;
    Ok(Verified::Header)
}

/// One block's share of an `eth_getLogs` answer against its trusted receipts: nothing altered,
/// nothing left out.
pub fn logs_of_block(result: &[u8], filter: &LogFilter, block_receipts: &[u8], trusted: &VerifiedHeader) -> Judged {
    let receipts = verified_receipts(block_receipts, trusted)?;
    let logs = parse_logs(result).map_err(|e| Verdict::from_eth(LieKind::Logs, e))?;
    let mine: Vec<_> = logs.into_iter().filter(|l| l.block_hash == trusted.hash()).collect();
    logs_against(&mine, filter, &receipts)
}

/// The answer's logs of one block (`mine`, already parsed) against that block's verified
/// receipts.
pub fn logs_against(mine: &[ClaimedLog], filter: &LogFilter, receipts: &VerifiedReceipts) -> Judged {
    verify_block_logs(mine, filter, receipts).map_err(|e| {
        let kind = if matches!(e, EthError::LogOmitted { .. }) { LieKind::LogOmitted } else { LieKind::Logs };
        Verdict::from_eth(kind, e)
    })?;
    Ok(Verified::Header)
}

/// A state read against an `eth_getProof` answer (`proof`, material) verified against the
/// trusted header's state root.
pub fn state(
    result: &[u8],
    value: StateValue,
    address: Address,
    slot: Option<B256>,
    proof: &[u8],
    trusted: &VerifiedHeader,
) -> Judged {
    let slots: Vec<B256> = slot.into_iter().collect();
    let account = verify_account_proof(proof, trusted.state_root(), address, &slots).map_err(material)?;
    let checked = match (value, slot) {
        (StateValue::Balance, _) => check_balance(result, &account).map(drop),
        (StateValue::Nonce, _) => check_transaction_count(result, &account).map(drop),
        (StateValue::Code, _) => check_code(result, &account).map(drop),
        (StateValue::Storage, Some(slot)) => check_storage_at(result, &account, slot).map(drop),
        (StateValue::Storage, None) => return Err(Verdict::Unverifiable("no slot".into())),
    };
    checked.map_err(|e| Verdict::from_eth(LieKind::State, e))?;
    Ok(Verified::Proof)
}

/// The raw `result` of a JSON-RPC response body (`None`: an error answer or not a response).
pub fn result_of(body: &[u8]) -> Option<&RawValue> {
    #[derive(Deserialize)]
    struct Response<'a> {
        #[serde(borrow)]
        result: Option<&'a RawValue>,
    }
    serde_json::from_slice::<Response<'_>>(body).ok()?.result
}

/// Why a bundle does not prove what it claims.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("evidence not proven: {0}")]
pub struct NotProven(pub String);

/// Re-judges an evidence bundle from its own bytes: the request's claim, the accused's answer,
/// and the material (`material[0]` is the header of `anchor`, then per kind: the full block for
/// `transaction`, the block's receipts for `receipt`/`logs`/`log_omitted`, the account proof for
/// `state`). Proven only when the answer is a lie of the kind the bundle names.
///
/// Not checked here (the caller does): the signatures and digests that bind the request and
/// answer to the accused, and whether `anchor` is on the receiver's own trusted chain.
pub fn recheck(ev: &Evidence) -> Result<(), NotProven> {
    let fail = |why: &str| NotProven(why.to_string());
    let method = crate::jsonrpc::method_of(&ev.request).ok_or_else(|| fail("request has no method"))?;
    if matches!(ev.kind, LieKind::Refusal | LieKind::Equivocation) {
        // A refused write and an equivocation prove themselves from the accused's own signed
        // receipts; the anchor's header only places the bundle in time on the receiver's chain.
        let header_json = ev.material.first().ok_or_else(|| fail("no header"))?;
        let header = verify_header(header_json).map_err(|e| NotProven(format!("header: {e}")))?;
        if header.hash().0 != ev.anchor.hash || header.number() != ev.anchor.number {
            return Err(fail("header is not the anchor"));
        }
        return match ev.kind {
            LieKind::Refusal => crate::censorship::refusal::recheck(ev).map_err(NotProven),
            _ => super::equivocation::recheck(ev).map_err(NotProven),
        };
    }
    let claim = claim_of(&method, &ev.request)
        .map_err(|e| NotProven(format!("request: {}", e.0)))?
        .ok_or_else(|| fail("method is not verifiable"))?;
    let answer = result_of(&ev.response).ok_or_else(|| fail("response has no result"))?.get().as_bytes();
    let header_json = ev.material.first().ok_or_else(|| fail("no header"))?;
    let header = verify_header(header_json).map_err(|e| NotProven(format!("header: {e}")))?;
    if header.hash().0 != ev.anchor.hash || header.number() != ev.anchor.number {
        return Err(fail("header is not the anchor"));
    }
    let extra = |i: usize| ev.material.get(i).map(Vec::as_slice).ok_or_else(|| fail("material missing"));
    let judged = match (&claim, ev.kind) {
        (Claim::Block { block }, LieKind::Header | LieKind::Block) => {
            block_alone(answer, *block).and_then(|b| on_trusted_chain(b.header(), &header))
        }
        (Claim::Transaction { hash }, LieKind::Transaction) => {
            let block = extra(1)?;
            transaction_alone(answer, *hash).and_then(|tx| transaction_in(&tx, block, &header))
        }
        (Claim::Receipt { .. }, LieKind::Receipt) => receipt(answer, extra(1)?, &header),
        (Claim::BlockReceipts { .. }, LieKind::Receipt) => block_receipts(answer, &header),
        (Claim::Logs { filter }, LieKind::Logs | LieKind::LogOmitted) => {
            logs_of_block(answer, filter, extra(1)?, &header)
        }
        (Claim::State { value, address, slot, .. }, LieKind::State) => {
            state(answer, *value, *address, *slot, extra(1)?, &header)
        }
        _ => return Err(fail("this kind of lie is not provable from one bundle")),
    };
    match judged {
        Err(Verdict::Lie { kind, .. }) if kind == ev.kind => Ok(()),
        Err(Verdict::Lie { kind, detail }) => {
            Err(NotProven(format!("a lie of another kind ({}): {detail}", kind.as_str())))
        }
        Err(Verdict::Unverifiable(why) | Verdict::BadMaterial(why)) => Err(NotProven(why)),
        Ok(_) => Err(fail("the answer is correct")),
    }
}

#[cfg(test)]
mod tests {
    use rpcmesh_eth::{Address, verify_header};
    use rpcmesh_protocol::messages::{BlockRef, MessageHeader, Receipt};
    use rpcmesh_protocol::{Identity, Signed};

    use super::*;

    macro_rules! fixture {
        ($name:literal) => {
            include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../eth/tests/fixtures/", $name)).as_slice()
        };
    }

    const EOA: &str = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266";

    fn block4() -> VerifiedHeader {
        verify_header(fixture!("block_4_hashes.json")).unwrap()
    }

    fn eoa() -> Address {
        EOA.parse().unwrap()
    }

    #[test]
    fn a_true_balance_is_proven_and_a_false_one_is_a_state_lie() {
        let truth = fixture!("balance_eoa.json");
        assert_eq!(
            state(truth, StateValue::Balance, eoa(), None, fixture!("proof_eoa.json"), &block4()),
            Ok(Verified::Proof)
        );
        let lie = br#""0x1""#;
        let verdict = state(lie, StateValue::Balance, eoa(), None, fixture!("proof_eoa.json"), &block4()).unwrap_err();
        assert!(matches!(verdict, Verdict::Lie { kind: LieKind::State, .. }), "{verdict:?}");
    }

    #[test]
    fn a_proof_for_another_root_is_bad_material_not_a_lie() {
        let other = verify_header(fixture!("block_3_hashes.json")).unwrap();
        let verdict = state(br#""0x1""#, StateValue::Balance, eoa(), None, fixture!("proof_eoa.json"), &other);
        assert!(matches!(verdict, Err(Verdict::BadMaterial(_))), "{verdict:?}");
    }

    #[test]
    fn a_block_with_an_altered_field_is_a_header_lie_and_off_chain_blocks_too() {
        let honest = fixture!("block_2_full.json");
        let b = block_alone(honest, BlockSel::Number(2)).unwrap();
        let trusted = verify_header(fixture!("block_2_hashes.json")).unwrap();
        assert_eq!(on_trusted_chain(b.header(), &trusted), Ok(Verified::Header));
        let altered = String::from_utf8_lossy(honest).replacen("\"gasUsed\": \"0x", "\"gasUsed\": \"0x1", 1);
        let v = block_alone(altered.as_bytes(), BlockSel::Number(2)).unwrap_err();
        assert!(matches!(v, Verdict::Lie { kind: LieKind::Header, .. }), "{v:?}");
        // A well-formed block that is not the trusted one at its height.
        assert!(matches!(on_trusted_chain(b.header(), &block4()), Err(Verdict::Lie { kind: LieKind::Header, .. })));
        // Asked for #3, answered #2.
        assert!(matches!(block_alone(honest, BlockSel::Number(3)), Err(Verdict::Lie { kind: LieKind::Header, .. })));
    }

    #[test]
    fn null_answers_are_recognised() {
        assert!(is_null(b" null\n"));
        assert!(!is_null(b"\"0x0\""));
    }

    fn evidence(response_result: &str, anchor: &VerifiedHeader, header_json: &[u8]) -> Evidence {
        let accused = Identity::generate();
        let request = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":["{EOA}","0x4"]}}"#);
        let response = format!(r#"{{"jsonrpc":"2.0","id":1,"result":{response_result}}}"#);
        let receipt = Signed::sign(
            Receipt {
                header: MessageHeader::new("test", 1, 1, 1),
                requester: Identity::generate().public_key(),
                chain_id: 31337,
                request_digest: rpcmesh_protocol::digest::sha256(request.as_bytes()),
                response_digest: rpcmesh_protocol::digest::sha256(response.as_bytes()),
                head: None,
            },
            &accused,
        );
        Evidence {
            header: MessageHeader::new("test", 1, 1, 1),
            accused: accused.public_key(),
            chain_id: 31337,
            kind: LieKind::State,
            request: request.into_bytes(),
            response: response.into_bytes(),
            receipt,
            anchor: BlockRef { number: anchor.number(), hash: anchor.hash().0 },
            material: vec![header_json.to_vec(), fixture!("proof_eoa.json").to_vec()],
        }
    }

    #[test]
    fn recheck_proves_a_lie_from_the_bundle_alone() {
        let lie = evidence(r#""0x1""#, &block4(), fixture!("block_4_hashes.json"));
        assert_eq!(recheck(&lie), Ok(()));
    }

    #[test]
    fn recheck_refuses_a_true_answer_a_wrong_kind_or_a_swapped_header() {
        let truth = String::from_utf8_lossy(fixture!("balance_eoa.json")).trim().to_string();
        assert!(recheck(&evidence(&truth, &block4(), fixture!("block_4_hashes.json"))).is_err());
        let mut wrong_kind = evidence(r#""0x1""#, &block4(), fixture!("block_4_hashes.json"));
        wrong_kind.kind = LieKind::Header;
        assert!(recheck(&wrong_kind).is_err());
        // The header is not the anchor it claims to be.
        let b3 = verify_header(fixture!("block_3_hashes.json")).unwrap();
        assert!(recheck(&evidence(r#""0x1""#, &b3, fixture!("block_4_hashes.json"))).is_err());
        // Against another block's state root the proof proves nothing.
        assert!(recheck(&evidence(r#""0x1""#, &b3, fixture!("block_3_hashes.json"))).is_err());
    }
}
