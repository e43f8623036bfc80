//! [`EthError`]: what did not match, with a stable short [`EthError::kind`] for metrics and
//! evidence records.
//!
//! Variants carry the claimed and the computed (or proven) value where both are small, so a log
//! line or an evidence record can show the lie without the whole answer. `Malformed` is the only
//! variant that does not accuse the answer of a wrong value: it did not parse under the JSON-RPC
//! rules (missing field, `0x` missing, odd-length data, overflow, unknown transaction type ...).

use alloy_primitives::{Address, B256, U256};

/// What a block answer is expected to be: the caller passes what it asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockId {
    /// Asked by number (`eth_getBlockByNumber` with a numeric argument).
    Number(u64),
    /// Asked by hash (`eth_getBlockByHash`, or a log filter's `blockHash`).
    Hash(B256),
}

impl std::fmt::Display for BlockId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Number(n) => write!(f, "block #{n}"),
            Self::Hash(h) => write!(f, "block {h}"),
        }
    }
}

/// The account-state values a plain answer (`eth_getBalance` ...) is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateValue {
    /// `eth_getBalance`.
    Balance,
    /// `eth_getTransactionCount`.
    Nonce,
    /// `eth_getCode` (compared through `keccak256(code)` and the proven code hash).
    Code,
    /// `eth_getStorageAt`.
    Storage,
}

/// Why an Ethereum JSON-RPC answer was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EthError {
    /// The answer does not parse under the JSON-RPC encoding rules; the message names the field.
    #[error("malformed answer: {0}")]
    Malformed(String),
    /// The node answered `null` (unknown block, transaction or receipt). Absence cannot be
    /// proven from such an answer; the caller decides whether to retry elsewhere.
    #[error("the node answered null")]
    NotFound,
    /// A transaction type this crate cannot hash (e.g. an L2 deposit type).
    #[error("unsupported transaction type {0:#x}")]
    UnsupportedTransactionType(u8),

    /// keccak256(rlp(header fields)) differs from the `hash` the answer claims.
    #[error("header hash mismatch: claimed {claimed}, computed {computed}")]
    HeaderHashMismatch {
        /// The `hash` member of the answer.
        claimed: B256,
        /// keccak256 of the RLP of the answer's header fields.
        computed: B256,
    },
    /// A valid block, but not the one asked for.
    #[error("expected {expected}, got block #{number} {hash}")]
    UnexpectedBlock {
        /// What the caller asked for.
        expected: BlockId,
        /// The answer's (verified) number.
        number: u64,
        /// The answer's (verified) hash.
        hash: B256,
    },
    /// The transactions of a full block do not hash to the header's `transactionsRoot`.
    #[error("transactions root mismatch: header {claimed}, computed {computed}")]
    TransactionsRootMismatch {
        /// The header's `transactionsRoot`.
        claimed: B256,
        /// The root of the answer's transactions.
        computed: B256,
    },
    /// The block's `withdrawals` do not hash to the header's `withdrawalsRoot` (or one of the
    /// two is missing).
    #[error("withdrawals root mismatch: header {claimed:?}, computed {computed:?}")]
    WithdrawalsRootMismatch {
        /// The header's `withdrawalsRoot`.
        claimed: Option<B256>,
        /// The root of the answer's `withdrawals`.
        computed: Option<B256>,
    },
    /// `uncles` is empty but `sha3Uncles` is not the empty-list hash, or the reverse.
    #[error("ommers mismatch: sha3Uncles {ommers_hash} with {uncles} uncle(s)")]
    OmmersMismatch {
        /// The header's `sha3Uncles`.
        ommers_hash: B256,
        /// How many uncle hashes the answer lists.
        uncles: usize,
    },

    /// The transaction's signed fields hash to something else than its claimed `hash`.
    #[error("transaction hash mismatch: claimed {claimed}, computed {computed}")]
    TransactionHashMismatch {
        /// The `hash` member of the transaction.
        claimed: B256,
        /// keccak256 of the EIP-2718 encoding of its signed fields.
        computed: B256,
    },
    /// A valid transaction, but not the one asked for.
    #[error("expected transaction {expected}, got {got}")]
    UnexpectedTransaction {
        /// What the caller asked for.
        expected: B256,
        /// The answer's (verified) hash.
        got: B256,
    },
    /// The signature recovers to another address than the claimed `from`.
    #[error("sender mismatch in {hash}: claimed {claimed}, recovered {recovered}")]
    SenderMismatch {
        /// The transaction hash.
        hash: B256,
        /// The `from` member.
        claimed: Address,
        /// The address recovered from the signature.
        recovered: Address,
    },
    /// No public key can be recovered from the signature.
    #[error("invalid signature in transaction {hash}")]
    InvalidSignature {
        /// The transaction hash.
        hash: B256,
    },
    /// A transaction member outside the signed fields is inconsistent with its block
    /// (`blockHash`, `blockNumber`, `transactionIndex`, the effective `gasPrice`) or with what
    /// was asked (`eth_getTransactionByBlock*AndIndex`).
    #[error("transaction {hash}: `{field}` is inconsistent with its block")]
    TransactionFieldMismatch {
        /// The transaction hash.
        hash: B256,
        /// The JSON member that does not match.
        field: &'static str,
    },

    /// The receipts do not hash to the header's `receiptsRoot`.
    #[error("receipts root mismatch: header {claimed}, computed {computed}")]
    ReceiptsRootMismatch {
        /// The header's `receiptsRoot`.
        claimed: B256,
        /// The root of the answer's receipts.
        computed: B256,
    },
    /// The union of the receipts' blooms is not the header's `logsBloom`.
    #[error("the receipts' blooms do not add up to the header's logsBloom")]
    LogsBloomMismatch,
    /// A receipt's `logsBloom` is not the bloom of its own logs.
    #[error("receipt {index}: logsBloom does not match its logs")]
    ReceiptBloomMismatch {
        /// Position of the receipt in the block.
        index: usize,
    },
    /// The number of receipts is not the number of transactions.
    #[error("expected {expected} receipts, got {got}")]
    ReceiptCountMismatch {
        /// Transactions in the block.
        expected: usize,
        /// Receipts in the answer.
        got: usize,
    },
    /// A receipt member outside the receipts root is inconsistent (`gasUsed`, `blockHash`,
    /// `transactionIndex`, `logIndex`, `contractAddress`, `from` ...).
    #[error("receipt {index}: `{field}` is inconsistent")]
    ReceiptFieldMismatch {
        /// Position of the receipt in the block.
        index: usize,
        /// The JSON member that does not match (`logs[1].logIndex` for a log member).
        field: String,
    },
    /// A single receipt (`eth_getTransactionReceipt`) differs from the block's verified one.
    #[error("receipt of {tx_hash}: `{field}` differs from the block's verified receipt")]
    ReceiptMismatch {
        /// The transaction hash.
        tx_hash: B256,
        /// The JSON member that differs.
        field: String,
    },
    /// A single receipt's transaction is not among the block's verified receipts.
    #[error("no receipt for {tx_hash} in the verified block")]
    ReceiptNotInBlock {
        /// The transaction hash the receipt claims.
        tx_hash: B256,
    },

    /// A returned log differs from the receipts' log at the same `logIndex`.
    #[error("log {log_index}: `{field}` differs from the block's receipts")]
    LogAltered {
        /// The log's `logIndex`.
        log_index: u64,
        /// The JSON member that differs.
        field: &'static str,
    },
    /// A returned log's `logIndex` does not exist in the block.
    #[error("log {log_index} does not exist in the block")]
    LogFabricated {
        /// The claimed `logIndex`.
        log_index: u64,
    },
    /// A log of the block matches the filter but is missing from the answer.
    #[error("log {log_index} of block {block_hash} matches the filter but was omitted")]
    LogOmitted {
        /// The block.
        block_hash: B256,
        /// The omitted log's index in the block.
        log_index: u64,
    },
    /// A returned log (real) does not match the filter.
    #[error("log {log_index} does not match the filter")]
    LogNotRequested {
        /// The log's `logIndex`.
        log_index: u64,
    },

    /// A Merkle-Patricia proof does not lead from the trusted root to any value at the key.
    #[error("invalid {what} proof: {reason}")]
    ProofInvalid {
        /// `account 0x..` or `storage slot 0x..`.
        what: String,
        /// What the trie walk found wrong.
        reason: String,
    },
    /// The proof is valid but the account it proves differs from the claimed one.
    #[error("account {address}: claimed {field} {claimed}, proven {proven}")]
    AccountMismatch {
        /// The account.
        address: Address,
        /// `nonce`, `balance`, `codeHash`, `storageHash` or `existence`.
        field: &'static str,
        /// The answer's value.
        claimed: String,
        /// The value the proof leads to.
        proven: String,
    },
    /// The proof is valid but the slot value it proves differs from the claimed one.
    #[error("storage slot {slot}: claimed {claimed}, proven {proven}")]
    StorageMismatch {
        /// The slot (32-byte key).
        slot: B256,
        /// The answer's `value`.
        claimed: U256,
        /// The value the proof leads to (zero when the slot is absent).
        proven: U256,
    },
    /// `eth_getProof` answered for another address than asked.
    #[error("proof is for {got}, asked for {expected}")]
    AddressMismatch {
        /// What the caller asked for.
        expected: Address,
        /// The answer's `address`.
        got: Address,
    },
    /// A requested storage slot has no proof in the answer.
    #[error("no storage proof for slot {slot}")]
    MissingStorageProof {
        /// The requested slot.
        slot: B256,
    },
    /// A plain state answer (`eth_getBalance` ...) differs from the proven account.
    #[error("{what:?}: claimed {claimed}, proven {proven}")]
    ValueMismatch {
        /// Which answer.
        what: StateValue,
        /// The answer.
        claimed: String,
        /// The proven value.
        proven: String,
    },
}

impl EthError {
    /// A stable short name for metrics labels and evidence records.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::NotFound => "not_found",
            Self::UnsupportedTransactionType(_) => "unsupported_tx_type",
            Self::HeaderHashMismatch { .. } => "header_hash",
            Self::UnexpectedBlock { .. } => "unexpected_block",
            Self::TransactionsRootMismatch { .. } => "tx_root",
            Self::WithdrawalsRootMismatch { .. } => "withdrawals_root",
            Self::OmmersMismatch { .. } => "ommers",
            Self::TransactionHashMismatch { .. } => "tx_hash",
            Self::UnexpectedTransaction { .. } => "unexpected_tx",
            Self::SenderMismatch { .. } => "tx_sender",
            Self::InvalidSignature { .. } => "tx_signature",
            Self::TransactionFieldMismatch { .. } => "tx_field",
            Self::ReceiptsRootMismatch { .. } => "receipts_root",
            Self::LogsBloomMismatch => "logs_bloom",
            Self::ReceiptBloomMismatch { .. } => "receipt_bloom",
            Self::ReceiptCountMismatch { .. } => "receipt_count",
            Self::ReceiptFieldMismatch { .. } => "receipt_field",
            Self::ReceiptMismatch { .. } => "receipt_mismatch",
            Self::ReceiptNotInBlock { .. } => "receipt_not_in_block",
            Self::LogAltered { .. } => "log_altered",
            Self::LogFabricated { .. } => "log_fabricated",
            Self::LogOmitted { .. } => "log_omitted",
            Self::LogNotRequested { .. } => "log_unrequested",
            Self::ProofInvalid { .. } => "proof_invalid",
            Self::AccountMismatch { .. } => "account_value",
            Self::StorageMismatch { .. } => "storage_value",
            Self::AddressMismatch { .. } => "proof_address",
            Self::MissingStorageProof { .. } => "storage_missing",
            Self::ValueMismatch { what: StateValue::Balance, .. } => "balance",
            Self::ValueMismatch { what: StateValue::Nonce, .. } => "nonce",
            Self::ValueMismatch { what: StateValue::Code, .. } => "code",
            Self::ValueMismatch { what: StateValue::Storage, .. } => "storage",
        }
    }

    /// True when the answer is provably wrong (a lie or a corrupted answer), false when it only
    /// failed to parse, was `null`, or uses a transaction type this crate cannot check.
    pub fn is_mismatch(&self) -> bool {
        !matches!(self, Self::Malformed(_) | Self::NotFound | Self::UnsupportedTransactionType(_))
    }

    pub(crate) fn malformed(msg: impl Into<String>) -> Self {
        Self::Malformed(msg.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_distinct_and_short() {
        let errors = [
            EthError::Malformed(String::new()),
            EthError::NotFound,
            EthError::HeaderHashMismatch { claimed: B256::ZERO, computed: B256::ZERO },
            EthError::LogsBloomMismatch,
            EthError::ValueMismatch { what: StateValue::Code, claimed: String::new(), proven: String::new() },
            EthError::ValueMismatch { what: StateValue::Balance, claimed: String::new(), proven: String::new() },
        ];
        let kinds: std::collections::BTreeSet<_> = errors.iter().map(EthError::kind).collect();
        assert_eq!(kinds.len(), errors.len());
        assert!(kinds.iter().all(|k| k.len() <= 24 && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
        assert!(!EthError::NotFound.is_mismatch());
        assert!(EthError::LogsBloomMismatch.is_mismatch());
    }

    #[test]
    fn stays_small() {
        // Every `Result` carries it: stay under clippy's `result_large_err` threshold (128 bytes).
        assert!(std::mem::size_of::<EthError>() <= 128, "{}", std::mem::size_of::<EthError>());
    }
}
