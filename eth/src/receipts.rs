//! Receipts: recompute `receiptsRoot` and `logsBloom` of a block from all its receipts.
//!
//! The receipts trie commits to each receipt's type, status (or pre-Byzantium state root),
//! `cumulativeGasUsed`, `logsBloom` and logs (`address`, `topics`, `data`). The other members
//! are derived, and checked from what they derive from:
//!
//! | member | checked against |
//! | --- | --- |
//! | `logsBloom` (each) | the bloom of its own logs |
//! | `gasUsed` | difference of consecutive `cumulativeGasUsed` |
//! | `blockHash`, `blockNumber`, `blockTimestamp` | the verified header |
//! | `transactionIndex`, logs' `logIndex`/`transactionIndex`/`transactionHash` | position in the block, the receipt |
//! | `transactionHash`, `type`, `from`, `to`, `contractAddress`, `effectiveGasPrice` | the block's verified transactions, with [`verify_block_receipts_with_transactions`] only |
//!
//! `blobGasUsed`, `blobGasPrice` and L2 extras are not verified.
//!
//! A single `eth_getTransactionReceipt` answer is verified by [`verify_receipt`]: it must equal,
//! member by member, the receipt of the same transaction among the block's verified receipts.

use alloy_consensus::proofs::calculate_receipt_root;
use alloy_consensus::{Eip658Value, Receipt, ReceiptEnvelope, ReceiptWithBloom};
use alloy_primitives::{Address, B256, Bloom, Bytes, Log, LogData, logs_bloom};
use serde::Deserialize;

use crate::EthError;
use crate::block::{VerifiedBlock, effective_gas_price};
use crate::header::VerifiedHeader;
use crate::json::{self, field, parse_result};
use crate::transaction::VerifiedTransaction;

/// A log of a verified receipt, with its place in the block.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedLog {
    /// The emitting contract.
    pub address: Address,
    /// The topics (0 to 4).
    pub topics: Vec<B256>,
    /// The unindexed data.
    pub data: Bytes,
    /// Index of the log in the block.
    pub log_index: u64,
    /// Index of the transaction in the block.
    pub transaction_index: u64,
    /// The transaction hash (claimed unless the receipts were bound to transactions).
    pub transaction_hash: B256,
    /// The block hash.
    pub block_hash: B256,
    /// The block number.
    pub block_number: u64,
}

/// A receipt bound to a verified header's `receiptsRoot`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedReceipt {
    /// The EIP-2718 type byte.
    pub tx_type: u8,
    /// `Some(success)` from Byzantium on, `None` before (see `post_state`).
    pub status: Option<bool>,
    /// Pre-Byzantium intermediate state root (`root`).
    pub post_state: Option<B256>,
    /// Gas used by the block up to and including this transaction.
    pub cumulative_gas_used: u64,
    /// Gas used by this transaction.
    pub gas_used: u64,
    /// The bloom of this receipt's logs.
    pub logs_bloom: Bloom,
    /// The logs, with their block-wide indices.
    pub logs: Vec<VerifiedLog>,
    /// Position in the block.
    pub transaction_index: u64,
    /// The transaction hash (claimed unless bound to transactions).
    pub transaction_hash: B256,
    /// `from` (claimed unless bound to transactions).
    pub from: Option<Address>,
    /// `to` (claimed unless bound to transactions).
    pub to: Option<Address>,
    /// `contractAddress` (claimed unless bound to transactions).
    pub contract_address: Option<Address>,
    /// `effectiveGasPrice` (claimed unless bound to transactions).
    pub effective_gas_price: Option<u128>,
}

/// All receipts of one block, bound to its verified header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedReceipts {
    block_hash: B256,
    block_number: u64,
    block_timestamp: u64,
    receipts: Vec<VerifiedReceipt>,
    bound_to_transactions: bool,
}

impl VerifiedReceipts {
    /// The block hash.
    pub fn block_hash(&self) -> B256 {
        self.block_hash
    }
    /// The block number.
    pub fn block_number(&self) -> u64 {
        self.block_number
    }
    /// The block timestamp.
    pub fn block_timestamp(&self) -> u64 {
        self.block_timestamp
    }
    /// The receipts in block order.
    pub fn receipts(&self) -> &[VerifiedReceipt] {
        &self.receipts
    }
    /// True when transaction hashes, `from`, `to`, `contractAddress` and `effectiveGasPrice`
    /// were checked against the block's transactions.
    pub fn bound_to_transactions(&self) -> bool {
        self.bound_to_transactions
    }
    /// Every log of the block, in `logIndex` order.
    pub fn logs(&self) -> impl Iterator<Item = &VerifiedLog> {
        self.receipts.iter().flat_map(|r| r.logs.iter())
    }
    /// The receipt of a transaction, by hash.
    pub fn by_transaction(&self, tx_hash: B256) -> Option<&VerifiedReceipt> {
        self.receipts.iter().find(|r| r.transaction_hash == tx_hash)
    }
}

/// A block timestamp as hex QUANTITY or (as anvil 1.7.1 writes it in receipts) a JSON number.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum Timestamp<'a> {
    Hex(&'a str),
    Number(u64),
}

impl Timestamp<'_> {
    pub(crate) fn value(&self) -> Result<u64, EthError> {
        match self {
            Self::Hex(s) => field("blockTimestamp", json::quantity_u64(s)),
            Self::Number(n) => Ok(*n),
        }
    }
}

/// The members of a log (in a receipt or an `eth_getLogs` answer).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RpcLog<'a> {
    pub address: &'a str,
    #[serde(borrow)]
    pub topics: Vec<&'a str>,
    pub data: &'a str,
    #[serde(borrow)]
    pub block_hash: Option<&'a str>,
    #[serde(borrow)]
    pub block_number: Option<&'a str>,
    #[serde(borrow)]
    pub block_timestamp: Option<Timestamp<'a>>,
    #[serde(borrow)]
    pub transaction_hash: Option<&'a str>,
    #[serde(borrow)]
    pub transaction_index: Option<&'a str>,
    #[serde(borrow)]
    pub log_index: Option<&'a str>,
    #[serde(default)]
    pub removed: bool,
}

/// A log parsed strictly, with everything it claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ParsedLog {
    pub log: Log,
    pub block_hash: Option<B256>,
    pub block_number: Option<u64>,
    pub block_timestamp: Option<u64>,
    pub transaction_hash: Option<B256>,
    pub transaction_index: Option<u64>,
    pub log_index: Option<u64>,
    pub removed: bool,
}

impl RpcLog<'_> {
    pub(crate) fn parse(&self) -> Result<ParsedLog, EthError> {
        let topics = self
            .topics
            .iter()
            .map(|t| field("topics", json::fixed::<32>(t).map(B256::new)))
            .collect::<Result<Vec<_>, _>>()?;
        let data = field("data", json::data(self.data))?;
        let log_data = LogData::new(topics, data).ok_or_else(|| EthError::malformed("a log has more than 4 topics"))?;
        let hash =
            |name: &str, v: Option<&str>| v.map(|s| field(name, json::fixed::<32>(s).map(B256::new))).transpose();
        let num = |name: &str, v: Option<&str>| v.map(|s| field(name, json::quantity_u64(s))).transpose();
        Ok(ParsedLog {
            log: Log { address: field("address", json::fixed::<20>(self.address).map(Address::new))?, data: log_data },
            block_hash: hash("blockHash", self.block_hash)?,
            block_number: num("blockNumber", self.block_number)?,
            block_timestamp: self.block_timestamp.as_ref().map(Timestamp::value).transpose()?,
            transaction_hash: hash("transactionHash", self.transaction_hash)?,
            transaction_index: num("transactionIndex", self.transaction_index)?,
            log_index: num("logIndex", self.log_index)?,
            removed: self.removed,
        })
    }
}

/// The members of a receipt answer.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RpcReceipt<'a> {
    #[serde(rename = "type", borrow)]
    ty: Option<&'a str>,
    #[serde(borrow)]
    status: Option<&'a str>,
    #[serde(borrow)]
    root: Option<&'a str>,
    cumulative_gas_used: &'a str,
    gas_used: &'a str,
    logs_bloom: &'a str,
    #[serde(borrow)]
    logs: Vec<RpcLog<'a>>,
    transaction_hash: &'a str,
    transaction_index: &'a str,
    block_hash: &'a str,
    block_number: &'a str,
    #[serde(borrow)]
    block_timestamp: Option<Timestamp<'a>>,
    #[serde(borrow)]
    from: Option<&'a str>,
    #[serde(borrow)]
    to: Option<&'a str>,
    #[serde(borrow)]
    contract_address: Option<&'a str>,
    #[serde(borrow)]
    effective_gas_price: Option<&'a str>,
}

/// A receipt parsed strictly, before any check.
struct ParsedReceipt {
    tx_type: u8,
    status: Eip658Value,
    cumulative_gas_used: u64,
    gas_used: u64,
    logs_bloom: Bloom,
    logs: Vec<ParsedLog>,
    transaction_hash: B256,
    transaction_index: u64,
    block_hash: B256,
    block_number: u64,
    block_timestamp: Option<u64>,
    from: Option<Address>,
    to: Option<Address>,
    contract_address: Option<Address>,
    effective_gas_price: Option<u128>,
}

impl RpcReceipt<'_> {
    fn parse(&self) -> Result<ParsedReceipt, EthError> {
        let tx_type = match self.ty {
            Some(t) => field("type", json::quantity_u64(t))?,
            None => 0,
        };
        let tx_type = u8::try_from(tx_type)
            .ok()
            .filter(|t| *t <= 4)
            .ok_or(EthError::UnsupportedTransactionType(u8::try_from(tx_type).unwrap_or(u8::MAX)))?;
        let status = match (self.status, self.root) {
            (Some(s), _) => match field("status", json::quantity_u64(s))? {
                0 => Eip658Value::Eip658(false),
                1 => Eip658Value::Eip658(true),
                other => return Err(EthError::malformed(format!("`status` {other} is not 0 or 1"))),
            },
            (None, Some(root)) => Eip658Value::PostState(field("root", json::fixed::<32>(root).map(B256::new))?),
            (None, None) => return Err(EthError::malformed("missing `status` (or pre-Byzantium `root`)")),
        };
        let addr =
            |name: &str, v: Option<&str>| v.map(|s| field(name, json::fixed::<20>(s).map(Address::new))).transpose();
        Ok(ParsedReceipt {
            tx_type,
            status,
            cumulative_gas_used: field("cumulativeGasUsed", json::quantity_u64(self.cumulative_gas_used))?,
            gas_used: field("gasUsed", json::quantity_u64(self.gas_used))?,
            logs_bloom: field("logsBloom", json::fixed::<256>(self.logs_bloom).map(Bloom::new))?,
            logs: self.logs.iter().map(RpcLog::parse).collect::<Result<_, _>>()?,
            transaction_hash: field("transactionHash", json::fixed::<32>(self.transaction_hash).map(B256::new))?,
            transaction_index: field("transactionIndex", json::quantity_u64(self.transaction_index))?,
            block_hash: field("blockHash", json::fixed::<32>(self.block_hash).map(B256::new))?,
            block_number: field("blockNumber", json::quantity_u64(self.block_number))?,
            block_timestamp: self.block_timestamp.as_ref().map(Timestamp::value).transpose()?,
            from: addr("from", self.from)?,
            to: addr("to", self.to)?,
            contract_address: addr("contractAddress", self.contract_address)?,
            effective_gas_price: self
                .effective_gas_price
                .map(|p| field("effectiveGasPrice", json::quantity_u128(p)))
                .transpose()?,
        })
    }
}

fn envelope(r: &ParsedReceipt) -> ReceiptEnvelope {
    let receipt = ReceiptWithBloom::new(
        Receipt {
            status: r.status,
            cumulative_gas_used: r.cumulative_gas_used,
            logs: r.logs.iter().map(|l| l.log.clone()).collect(),
        },
        r.logs_bloom,
    );
    match r.tx_type {
        0 => ReceiptEnvelope::Legacy(receipt),
        1 => ReceiptEnvelope::Eip2930(receipt),
        2 => ReceiptEnvelope::Eip1559(receipt),
        3 => ReceiptEnvelope::Eip4844(receipt),
        _ => ReceiptEnvelope::Eip7702(receipt),
    }
}

/// Checks one receipt's self-consistency and its place in the block; returns it verified
/// (the root is checked by the caller over all receipts).
fn check_receipt(
    index: usize,
    r: &ParsedReceipt,
    header: &VerifiedHeader,
    previous_cumulative: u64,
    first_log_index: u64,
) -> Result<VerifiedReceipt, EthError> {
    let bad = |field: String| EthError::ReceiptFieldMismatch { index, field };
    if r.block_hash != header.hash() {
        return Err(bad("blockHash".into()));
    }
    if r.block_number != header.number() {
        return Err(bad("blockNumber".into()));
    }
    if r.block_timestamp.is_some_and(|t| t != header.timestamp()) {
        return Err(bad("blockTimestamp".into()));
    }
    if r.transaction_index != index as u64 {
        return Err(bad("transactionIndex".into()));
    }
    if r.cumulative_gas_used.checked_sub(previous_cumulative) != Some(r.gas_used) {
        return Err(bad("gasUsed".into()));
    }
    if logs_bloom(r.logs.iter().map(|l| &l.log)) != r.logs_bloom {
        return Err(EthError::ReceiptBloomMismatch { index });
    }
    let mut logs = Vec::with_capacity(r.logs.len());
    for (j, l) in r.logs.iter().enumerate() {
        let log_index = first_log_index + j as u64;
        let checks: [(&str, bool); 7] = [
            ("logIndex", l.log_index == Some(log_index)),
            ("transactionIndex", l.transaction_index == Some(index as u64)),
            ("transactionHash", l.transaction_hash == Some(r.transaction_hash)),
            ("blockHash", l.block_hash == Some(header.hash())),
            ("blockNumber", l.block_number == Some(header.number())),
            ("blockTimestamp", l.block_timestamp.is_none_or(|t| t == header.timestamp())),
            ("removed", !l.removed),
        ];
        if let Some((name, _)) = checks.iter().find(|(_, ok)| !ok) {
            return Err(bad(format!("logs[{j}].{name}")));
        }
        logs.push(VerifiedLog {
            address: l.log.address,
            topics: l.log.topics().to_vec(),
            data: l.log.data.data.clone(),
            log_index,
            transaction_index: index as u64,
            transaction_hash: r.transaction_hash,
            block_hash: header.hash(),
            block_number: header.number(),
        });
    }
    let (status, post_state) = match r.status {
        Eip658Value::Eip658(ok) => (Some(ok), None),
        Eip658Value::PostState(root) => (None, Some(root)),
    };
    Ok(VerifiedReceipt {
        tx_type: r.tx_type,
        status,
        post_state,
        cumulative_gas_used: r.cumulative_gas_used,
        gas_used: r.gas_used,
        logs_bloom: r.logs_bloom,
        logs,
        transaction_index: index as u64,
        transaction_hash: r.transaction_hash,
        from: r.from,
        to: r.to,
        contract_address: r.contract_address,
        effective_gas_price: r.effective_gas_price,
    })
}

/// Checks the receipt members that derive from the transaction at the same index.
fn check_against_transaction(
    index: usize,
    r: &VerifiedReceipt,
    tx: &VerifiedTransaction,
    base_fee: Option<u64>,
) -> Result<(), EthError> {
    let bad = |field: &str| Err(EthError::ReceiptFieldMismatch { index, field: field.into() });
    if r.transaction_hash != tx.hash() {
        return bad("transactionHash");
    }
    if r.tx_type != tx.tx_type() {
        return bad("type");
    }
    if r.from.is_some_and(|f| f != tx.from()) {
        return bad("from");
    }
    if r.to != tx.to() {
        return bad("to");
    }
    let created = if tx.to().is_none() { Some(tx.from().create(tx.nonce())) } else { None };
    if r.contract_address != created {
        return bad("contractAddress");
    }
    if r.effective_gas_price.is_some() && r.effective_gas_price != effective_gas_price(tx, base_fee) {
        return bad("effectiveGasPrice");
    }
    Ok(())
}

fn parse_receipts(result: &[u8]) -> Result<Vec<ParsedReceipt>, EthError> {
    let raw: Vec<RpcReceipt<'_>> = parse_result("block receipts", result)?;
    raw.iter().map(RpcReceipt::parse).collect()
}

fn verify_parsed(parsed: &[ParsedReceipt], header: &VerifiedHeader) -> Result<Vec<VerifiedReceipt>, EthError> {
    let mut receipts = Vec::with_capacity(parsed.len());
    let mut cumulative = 0;
    let mut next_log_index = 0;
    for (index, r) in parsed.iter().enumerate() {
        let verified = check_receipt(index, r, header, cumulative, next_log_index)?;
        cumulative = r.cumulative_gas_used;
        next_log_index += r.logs.len() as u64;
        receipts.push(verified);
    }
    let envelopes: Vec<ReceiptEnvelope> = parsed.iter().map(envelope).collect();
    let computed = calculate_receipt_root(&envelopes);
    if computed != header.receipts_root() {
        return Err(EthError::ReceiptsRootMismatch { claimed: header.receipts_root(), computed });
    }
    let mut bloom = Bloom::ZERO;
    for r in parsed {
        bloom |= r.logs_bloom;
    }
    if &bloom != header.logs_bloom() {
        return Err(EthError::LogsBloomMismatch);
    }
    Ok(receipts)
}

/// Verifies all receipts of a block (`eth_getBlockReceipts`) against its verified header:
/// `receiptsRoot`, the block `logsBloom`, each receipt's bloom, `gasUsed`, and every
/// positional member (see the module docs). Transaction hashes stay claimed: use
/// [`verify_block_receipts_with_transactions`] to bind them.
pub fn verify_block_receipts(result: &[u8], header: &VerifiedHeader) -> Result<VerifiedReceipts, EthError> {
    let parsed = parse_receipts(result)?;
    let receipts = verify_parsed(&parsed, header)?;
    Ok(VerifiedReceipts {
        block_hash: header.hash(),
        block_number: header.number(),
        block_timestamp: header.timestamp(),
        receipts,
        bound_to_transactions: false,
    })
}

/// [`verify_block_receipts`] plus the members that derive from the block's transactions:
/// `transactionHash`, `type`, `from`, `to`, `contractAddress`, `effectiveGasPrice`. Needs the
/// hydrated block.
pub fn verify_block_receipts_with_transactions(
    result: &[u8],
    block: &VerifiedBlock,
) -> Result<VerifiedReceipts, EthError> {
    let txs = block
        .full_transactions()
        .ok_or_else(|| EthError::malformed("binding receipts to transactions needs the hydrated block"))?;
    let parsed = parse_receipts(result)?;
    if parsed.len() != txs.len() {
        return Err(EthError::ReceiptCountMismatch { expected: txs.len(), got: parsed.len() });
    }
    let receipts = verify_parsed(&parsed, block.header())?;
    let base_fee = block.header().base_fee_per_gas();
    for (index, (r, tx)) in receipts.iter().zip(txs).enumerate() {
        check_against_transaction(index, r, tx, base_fee)?;
    }
    Ok(VerifiedReceipts {
        block_hash: block.hash(),
        block_number: block.number(),
        block_timestamp: block.header().timestamp(),
        receipts,
        bound_to_transactions: true,
    })
}

/// Verifies a single receipt (`eth_getTransactionReceipt`) by finding it among the block's
/// verified receipts: every member it carries must equal the verified one.
pub fn verify_receipt(result: &[u8], block: &VerifiedReceipts) -> Result<VerifiedReceipt, EthError> {
    let raw: RpcReceipt<'_> = parse_result("receipt", result)?;
    let r = raw.parse()?;
    let tx_hash = r.transaction_hash;
    let known = block.by_transaction(tx_hash).ok_or(EthError::ReceiptNotInBlock { tx_hash })?;
    let differs = |field: String| EthError::ReceiptMismatch { tx_hash, field };
    let status = match r.status {
        Eip658Value::Eip658(ok) => (Some(ok), None),
        Eip658Value::PostState(root) => (None, Some(root)),
    };
    let scalar_checks: [(&str, bool); 14] = [
        ("blockHash", r.block_hash == block.block_hash),
        ("blockTimestamp", r.block_timestamp.is_none_or(|t| t == block.block_timestamp)),
        ("blockNumber", r.block_number == block.block_number),
        ("transactionIndex", r.transaction_index == known.transaction_index),
        ("type", r.tx_type == known.tx_type),
        ("status", status == (known.status, known.post_state)),
        ("cumulativeGasUsed", r.cumulative_gas_used == known.cumulative_gas_used),
        ("gasUsed", r.gas_used == known.gas_used),
        ("logsBloom", r.logs_bloom == known.logs_bloom),
        ("from", r.from == known.from),
        ("to", r.to == known.to),
        ("contractAddress", r.contract_address == known.contract_address),
        ("effectiveGasPrice", r.effective_gas_price == known.effective_gas_price),
        ("logs", r.logs.len() == known.logs.len()),
    ];
    if let Some((name, _)) = scalar_checks.iter().find(|(_, ok)| !ok) {
        return Err(differs((*name).into()));
    }
    for (j, (got, want)) in r.logs.iter().zip(&known.logs).enumerate() {
        let log_checks: [(&str, bool); 8] = [
            ("address", got.log.address == want.address),
            ("topics", got.log.topics() == want.topics.as_slice()),
            ("data", got.log.data.data == want.data),
            ("logIndex", got.log_index == Some(want.log_index)),
            ("transactionIndex", got.transaction_index == Some(want.transaction_index)),
            ("transactionHash", got.transaction_hash == Some(want.transaction_hash)),
            ("blockHash", got.block_hash == Some(want.block_hash)),
            ("blockNumber", got.block_number == Some(want.block_number)),
        ];
        if let Some((name, _)) = log_checks.iter().find(|(_, ok)| !ok) {
            return Err(differs(format!("logs[{j}].{name}")));
        }
        if got.removed {
            return Err(differs(format!("logs[{j}].removed")));
        }
    }
    Ok(known.clone())
}
