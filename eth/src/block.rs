//! Blocks: the header, plus what the body lets us recompute.
//!
//! - Hydrated (`eth_getBlockBy*(.., true)`): every transaction is verified
//!   ([`crate::verify_transaction`]), its `blockHash`/`blockNumber`/`transactionIndex` must be
//!   this block and its position, its `gasPrice` the effective price under the block's base fee,
//!   and the transactions must hash to `transactionsRoot`.
//! - Hashes only (`.., false`): the hashes are returned as claimed. A trie root cannot be
//!   recomputed from transaction hashes (the leaves are the encoded transactions), so a node can
//!   list wrong hashes undetected here; ask for the hydrated block when it matters.
//! - Blob transactions: consensus commits to them without their sidecar, and that is the root
//!   checked first. anvil 1.7.1 returns the sidecar (`blobs`, `commitments`, `cellProofs`) in
//!   hydrated blocks and computes `transactionsRoot` over the network encoding that includes it;
//!   when the canonical root does not match and the answer carries sidecars, the root over the
//!   network encoding is tried too ([`VerifiedBlock::root_includes_blob_sidecars`]). Either way
//!   the transactions are bound to the header hash; only the encoding differs.
//! - `withdrawals` (Shanghai on) must hash to `withdrawalsRoot`; `uncles` must be empty exactly
//!   when `sha3Uncles` is the empty-list hash (uncle headers are not in the answer, so a
//!   non-empty list is not checked further).

use alloy_consensus::EMPTY_OMMER_ROOT_HASH;
use alloy_consensus::proofs::{calculate_transaction_root, calculate_withdrawals_root, ordered_trie_root_with_encoder};
use alloy_eips::eip4895::Withdrawal;
use alloy_primitives::{Address, B256, Bytes};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::EthError;
use crate::error::BlockId;
use crate::header::{RpcBlock, VerifiedHeader};
use crate::json::{self, field, parse_result};
use crate::transaction::{RpcTransaction, VerifiedTransaction};

/// The transactions of a block answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockTransactions {
    /// Hydrated answer: each transaction verified and the list bound to `transactionsRoot`.
    /// An empty `transactions` list is this variant (bound: the root must be the empty root).
    Full(Vec<VerifiedTransaction>),
    /// Hashes-only answer: **claimed**, not verified (see the module docs).
    Hashes(Vec<B256>),
}

/// A block whose header hash and body roots were recomputed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedBlock {
    header: VerifiedHeader,
    transactions: BlockTransactions,
    uncles: Vec<B256>,
    withdrawals: Option<Vec<Withdrawal>>,
    root_includes_blob_sidecars: bool,
}

impl VerifiedBlock {
    /// True when `transactionsRoot` matched only over the blob transactions' network encoding
    /// (with sidecars), as anvil 1.7.1 computes it; false for the consensus encoding.
    pub fn root_includes_blob_sidecars(&self) -> bool {
        self.root_includes_blob_sidecars
    }
    /// The verified header.
    pub fn header(&self) -> &VerifiedHeader {
        &self.header
    }
    /// The block hash.
    pub fn hash(&self) -> B256 {
        self.header.hash()
    }
    /// The block number.
    pub fn number(&self) -> u64 {
        self.header.number()
    }
    /// The transactions (verified when hydrated, claimed hashes otherwise).
    pub fn transactions(&self) -> &BlockTransactions {
        &self.transactions
    }
    /// The verified transactions of a hydrated answer; `None` for a hashes-only answer.
    pub fn full_transactions(&self) -> Option<&[VerifiedTransaction]> {
        match &self.transactions {
            BlockTransactions::Full(txs) => Some(txs),
            BlockTransactions::Hashes(_) => None,
        }
    }
    /// The transaction hashes, in block order (verified only for a hydrated answer).
    pub fn transaction_hashes(&self) -> Vec<B256> {
        match &self.transactions {
            BlockTransactions::Full(txs) => txs.iter().map(VerifiedTransaction::hash).collect(),
            BlockTransactions::Hashes(hashes) => hashes.clone(),
        }
    }
    /// The uncle hashes as listed (only their emptiness is checked).
    pub fn uncles(&self) -> &[B256] {
        &self.uncles
    }
    /// The withdrawals, bound to `withdrawalsRoot` (Shanghai on).
    pub fn withdrawals(&self) -> Option<&[Withdrawal]> {
        self.withdrawals.as_deref()
    }

    /// Checks that this is the block the caller asked for.
    pub fn expect(&self, asked: BlockId) -> Result<(), EthError> {
        self.header.expect(asked)
    }

    /// Checks a separately answered transaction (`eth_getTransactionByHash` ...) against this
    /// hydrated block: it must be the block's transaction at its claimed index, with the same
    /// hash (which covers every signed field) and this block's hash and number.
    pub fn transaction(&self, tx: &VerifiedTransaction) -> Result<(), EthError> {
        let hash = tx.hash();
        let txs = self.full_transactions().ok_or_else(|| {
            EthError::malformed("checking a transaction against a block needs the hydrated block (full transactions)")
        })?;
        let placement = tx.placement().ok_or(EthError::TransactionFieldMismatch { hash, field: "blockHash" })?;
        if placement.block_hash != self.hash() {
            return Err(EthError::TransactionFieldMismatch { hash, field: "blockHash" });
        }
        if placement.block_number != self.number() {
            return Err(EthError::TransactionFieldMismatch { hash, field: "blockNumber" });
        }
        let at = usize::try_from(placement.index).ok().and_then(|i| txs.get(i));
        match at {
            Some(in_block) if in_block.hash() == hash => Ok(()),
            _ => Err(EthError::TransactionFieldMismatch { hash, field: "transactionIndex" }),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RpcWithdrawal<'a> {
    index: &'a str,
    validator_index: &'a str,
    address: &'a str,
    amount: &'a str,
}

/// The blob sidecar members some nodes (anvil) put in a transaction answer.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RpcSidecar<'a> {
    #[serde(borrow)]
    blobs: Option<Vec<&'a str>>,
    #[serde(borrow)]
    commitments: Option<Vec<&'a str>>,
    #[serde(borrow)]
    proofs: Option<Vec<&'a str>>,
    #[serde(borrow)]
    cell_proofs: Option<Vec<&'a str>>,
}

/// EIP-2718 network encoding of a blob transaction with its sidecar: `0x03 || rlp([tx, blobs,
/// commitments, proofs])` (EIP-4844) or `0x03 || rlp([tx, 1, blobs, commitments, cellProofs])`
/// (EIP-7594). `None` when the answer carries no sidecar.
fn network_encoding(tx: &VerifiedTransaction, raw: &RawValue) -> Result<Option<Vec<u8>>, EthError> {
    use alloy_eips::eip2718::Encodable2718;
    use alloy_rlp::Encodable;
    let sidecar: RpcSidecar<'_> =
        serde_json::from_str(raw.get()).map_err(|e| EthError::malformed(format!("blob sidecar: {e}")))?;
    let (Some(blobs), Some(commitments)) = (sidecar.blobs, sidecar.commitments) else { return Ok(None) };
    let list = |name: &str, items: &[&str]| -> Result<Vec<Bytes>, EthError> {
        items.iter().map(|i| field(name, json::data(i))).collect()
    };
    let mut canonical = Vec::new();
    tx.envelope().encode_2718(&mut canonical);
    let Some((&ty, signed_fields)) = canonical.split_first() else { return Ok(None) };
    let mut payload = signed_fields.to_vec();
    match (sidecar.cell_proofs, sidecar.proofs) {
        (Some(cell_proofs), _) => {
            1u8.encode(&mut payload);
            list("blobs", &blobs)?.encode(&mut payload);
            list("commitments", &commitments)?.encode(&mut payload);
            list("cellProofs", &cell_proofs)?.encode(&mut payload);
        }
        (None, Some(proofs)) => {
            list("blobs", &blobs)?.encode(&mut payload);
            list("commitments", &commitments)?.encode(&mut payload);
            list("proofs", &proofs)?.encode(&mut payload);
        }
        (None, None) => return Ok(None),
    }
    let mut out = vec![ty];
    alloy_rlp::Header { list: true, payload_length: payload.len() }.encode(&mut out);
    out.extend_from_slice(&payload);
    Ok(Some(out))
}

/// The transactions root over the network encoding of blob transactions that carry sidecars;
/// `None` when none does.
fn root_with_sidecars(txs: &[VerifiedTransaction], items: &[&RawValue]) -> Result<Option<B256>, EthError> {
    use alloy_eips::eip2718::Encodable2718;
    let mut any = false;
    let mut encoded = Vec::with_capacity(txs.len());
    for (tx, raw) in txs.iter().zip(items) {
        let network = if tx.tx_type() == 3 { network_encoding(tx, raw)? } else { None };
        any |= network.is_some();
        encoded.push(network.unwrap_or_else(|| tx.envelope().encoded_2718()));
    }
    Ok(any.then(|| ordered_trie_root_with_encoder(&encoded, |e: &Vec<u8>, buf| buf.extend_from_slice(e))))
}

/// The effective gas price of a transaction in a block with `base_fee` (EIP-1559): what
/// `gasPrice` of a mined transaction and `effectiveGasPrice` of its receipt must say.
pub(crate) fn effective_gas_price(tx: &VerifiedTransaction, base_fee: Option<u64>) -> Option<u128> {
    use alloy_consensus::Transaction;
    let env = tx.envelope();
    match base_fee {
        Some(base) if env.is_dynamic_fee() => Some(env.effective_gas_price(Some(base))),
        _ => env.gas_price(),
    }
}

fn verify_body(raw: &RpcBlock<'_>, header: VerifiedHeader) -> Result<VerifiedBlock, EthError> {
    // uncles
    let uncles: Vec<&str> = match raw.uncles {
        Some(u) => serde_json::from_str(u.get()).map_err(|e| EthError::malformed(format!("`uncles`: {e}")))?,
        None => Vec::new(),
    };
    let uncles =
        uncles.iter().map(|u| field("uncles", json::fixed::<32>(u).map(B256::new))).collect::<Result<Vec<_>, _>>()?;
    let ommers_hash = header.header().ommers_hash;
    if raw.uncles.is_some() && uncles.is_empty() != (ommers_hash == EMPTY_OMMER_ROOT_HASH) {
        return Err(EthError::OmmersMismatch { ommers_hash, uncles: uncles.len() });
    }

    // withdrawals
    let withdrawals = match raw.withdrawals {
        Some(w) => {
            let list: Vec<RpcWithdrawal<'_>> =
                serde_json::from_str(w.get()).map_err(|e| EthError::malformed(format!("`withdrawals`: {e}")))?;
            let list = list
                .iter()
                .map(|w| {
                    Ok(Withdrawal {
                        index: field("withdrawals.index", json::quantity_u64(w.index))?,
                        validator_index: field("withdrawals.validatorIndex", json::quantity_u64(w.validator_index))?,
                        address: field("withdrawals.address", json::fixed::<20>(w.address).map(Address::new))?,
                        amount: field("withdrawals.amount", json::quantity_u64(w.amount))?,
                    })
                })
                .collect::<Result<Vec<_>, EthError>>()?;
            Some(list)
        }
        None => None,
    };
    let claimed_root = header.withdrawals_root();
    let computed_root = withdrawals.as_deref().map(calculate_withdrawals_root);
    // A header-only answer has neither; a block answer must carry the list iff the root exists.
    if raw.transactions.is_some() && claimed_root != computed_root {
        return Err(EthError::WithdrawalsRootMismatch { claimed: claimed_root, computed: computed_root });
    }

    // transactions
    let items: Vec<&RawValue> = match raw.transactions {
        Some(t) => serde_json::from_str(t.get()).map_err(|e| EthError::malformed(format!("`transactions`: {e}")))?,
        None => return Err(EthError::malformed("missing `transactions` (a header, not a block)")),
    };
    let mut root_includes_blob_sidecars = false;
    let hashes_only = items.first().is_some_and(|t| t.get().starts_with('"'));
    let transactions = if hashes_only {
        let hashes = items
            .iter()
            .map(|t| {
                let s: &str = serde_json::from_str(t.get())
                    .map_err(|_| EthError::malformed("`transactions` mixes hashes and objects"))?;
                field("transactions", json::fixed::<32>(s).map(B256::new))
            })
            .collect::<Result<Vec<_>, _>>()?;
        BlockTransactions::Hashes(hashes)
    } else {
        let mut txs = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let rpc: RpcTransaction<'_> = serde_json::from_str(item.get())
                .map_err(|e| EthError::malformed(format!("`transactions[{index}]`: {e}")))?;
            let tx = rpc.verify()?;
            let hash = tx.hash();
            let placement = tx.placement().ok_or(EthError::TransactionFieldMismatch { hash, field: "blockHash" })?;
            if placement.block_hash != header.hash() {
                return Err(EthError::TransactionFieldMismatch { hash, field: "blockHash" });
            }
            if placement.block_number != header.number() {
                return Err(EthError::TransactionFieldMismatch { hash, field: "blockNumber" });
            }
            if placement.index != index as u64 {
                return Err(EthError::TransactionFieldMismatch { hash, field: "transactionIndex" });
            }
            if let Some(claimed) = tx.claimed_gas_price()
                && Some(claimed) != effective_gas_price(&tx, header.base_fee_per_gas())
            {
                return Err(EthError::TransactionFieldMismatch { hash, field: "gasPrice" });
            }
            txs.push(tx);
        }
        let computed = calculate_transaction_root(&txs.iter().map(VerifiedTransaction::envelope).collect::<Vec<_>>());
        if computed != header.transactions_root() {
            if root_with_sidecars(&txs, &items)? != Some(header.transactions_root()) {
                return Err(EthError::TransactionsRootMismatch { claimed: header.transactions_root(), computed });
            }
            root_includes_blob_sidecars = true;
        }
        BlockTransactions::Full(txs)
    };

    Ok(VerifiedBlock { header, transactions, uncles, withdrawals, root_includes_blob_sidecars })
}

/// Verifies a block answer (`eth_getBlockByNumber` / `eth_getBlockByHash`, hydrated or not):
/// the header hash, and whatever the body lets us recompute (see the module docs).
pub fn verify_block(result: &[u8]) -> Result<VerifiedBlock, EthError> {
    let raw = parse_result::<RpcBlock<'_>>("block", result)?;
    let header = raw.verify_header()?;
    verify_body(&raw, header)
}

/// [`verify_block`], and the block must be the one asked for.
pub fn verify_block_of(result: &[u8], asked: BlockId) -> Result<VerifiedBlock, EthError> {
    let block = verify_block(result)?;
    block.expect(asked)?;
    Ok(block)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_is_not_a_block() {
        let header = r#"{"hash":"0x88e96d4537bea4d9c05d12549907b32561d3bf31f45aae734cdc119f13406cb6","parentHash":"0xd4e56740f876aef8c010b86a40d5f56745a118d0906a34e69aec8c0db1cb8fa3","sha3Uncles":"0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347","miner":"0x05a56e2d52c817161883f50c441c3228cfe54d9f","stateRoot":"0xd67e4d450343046425ae4271474353857ab860dbc0a1dde64b41b5cd3a532bf3","transactionsRoot":"0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421","receiptsRoot":"0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421","logsBloom":"0x00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000","difficulty":"0x3ff800000","number":"0x1","gasLimit":"0x1388","gasUsed":"0x0","timestamp":"0x55ba4224","extraData":"0x476574682f76312e302e302f6c696e75782f676f312e342e32","mixHash":"0x969b900de27b6ac6a67742365dd65f55a0526c41fd18e1b16f1a1215c2e66f59","nonce":"0x539bd4979fef1ec4"}"#;
        assert!(crate::verify_header(header.as_bytes()).is_ok());
        assert_eq!(verify_block(header.as_bytes()).unwrap_err().kind(), "malformed");
        let block = header.replace("}", r#","uncles":[],"transactions":[]}"#);
        let verified = verify_block_of(block.as_bytes(), BlockId::Number(1)).unwrap();
        assert_eq!(verified.transactions(), &BlockTransactions::Full(vec![]));
        let with_uncle = header.replace(
            "}",
            r#","uncles":["0x88e96d4537bea4d9c05d12549907b32561d3bf31f45aae734cdc119f13406cb6"],"transactions":[]}"#,
        );
        assert_eq!(verify_block(with_uncle.as_bytes()).unwrap_err().kind(), "ommers");
    }
}
