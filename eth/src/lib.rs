//! # rpcmesh-eth
//!
//! Cryptographic checks of Ethereum JSON-RPC answers: given the raw JSON `result` a node
//! returned, recompute what can be recomputed and say precisely what does not match. Pure CPU,
//! no I/O, no async.
//!
//! ## Bird's-eye view
//! Trust flows from one block hash the caller trusts (from a quorum of providers, a checkpoint,
//! a light client ...) down to everything else:
//!
//! ```text
//! block hash ──► header (keccak of RLP)            verify_header / verify_block
//!                 ├─ transactionsRoot ─► txs        verify_block (hydrated), verify_transaction
//!                 ├─ receiptsRoot, logsBloom ─► receipts ─► logs
//!                 │                                 verify_block_receipts, verify_receipt,
//!                 │                                 verify_block_logs (altered / omitted)
//!                 └─ stateRoot ─► account proof ─► storage proofs
//!                                                   verify_account_proof, check_balance,
//!                                                   check_transaction_count, check_code, check_storage_at
//! ```
//!
//! - [`header`]: header hash over every fork's fields.
//! - [`block`]: bodies: transactions root, withdrawals root, per-transaction placement.
//! - [`transaction`]: transaction hash for all types (legacy, 2930, 1559, 4844, 7702) and
//!   sender recovery.
//! - [`receipts`]: receipts root, blooms, derived members; single receipts.
//! - [`logs`]: `eth_getLogs` filters, blooms, altered/omitted logs.
//! - [`proof`]: EIP-1186 account and storage proofs (presence and absence); [`state`]: plain
//!   state answers against a proven account.
//! - [`json`]: strict QUANTITY/DATA parsing (the verifier must read hex exactly as a client).
//! - [`error`]: [`EthError`], with a stable [`EthError::kind`] for metrics and evidence.
//!
//! Each check takes `&[u8]` (with a `&serde_json::value::RawValue`, pass
//! `raw.get().as_bytes()`) and returns a `Verified*` value only this crate can build, so a
//! function taking `&VerifiedHeader` knows it was checked. Whether a verified block is the one
//! the caller trusts is a separate question: [`VerifiedHeader::expect`] (by number or hash).
//!
//! Not verifiable from the answers alone, and so not verified: `totalDifficulty`, `size`, uncle
//! headers, a hashes-only block's transaction list, blob sidecars, receipt `blobGas*`, and
//! anything claimed about blocks the caller has no trusted hash for.
//!
//! ```
//! use rpcmesh_eth::{BlockId, verify_block, verify_block_receipts, verify_receipt};
//!
//! let block_json = include_bytes!("../tests/fixtures/block_2_full.json");
//! let block = verify_block(block_json)?;
//! block.expect(BlockId::Number(2))?;
//! assert_eq!(block.full_transactions().map(<[_]>::len), Some(6));
//!
//! let receipts = verify_block_receipts(include_bytes!("../tests/fixtures/block_2_receipts.json"), block.header())?;
//! let single = verify_receipt(include_bytes!("../tests/fixtures/receipt_eip1559.json"), &receipts)?;
//! assert_eq!(single.status, Some(true));
//!
//! // A node that changes a single digit is caught, and says what it changed.
//! let lie = String::from_utf8_lossy(block_json).replacen("\"gasUsed\": \"0x", "\"gasUsed\": \"0x1", 1);
//! assert_eq!(verify_block(lie.as_bytes()).unwrap_err().kind(), "header_hash");
//! # Ok::<(), rpcmesh_eth::EthError>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod block;
pub mod error;
pub mod header;
pub mod json;
pub mod logs;
pub mod proof;
pub mod rawtx;
pub mod receipts;
pub mod state;
pub mod transaction;

pub use alloy_primitives::{Address, B256, Bloom, Bytes, U256, keccak256};
pub use alloy_trie::{EMPTY_ROOT_HASH, KECCAK_EMPTY};
pub use block::{BlockTransactions, VerifiedBlock, verify_block, verify_block_of};
pub use error::{BlockId, EthError, StateValue};
pub use header::{VerifiedHeader, verify_header, verify_header_of};
pub use logs::{
    BlockSpec, ClaimedLog, FilterBlocks, LogFilter, bloom_may_match, group_logs_by_block, log_matches, log_must_match,
    parse_log_filter, parse_logs, verify_block_logs,
};
pub use proof::{VerifiedAccount, VerifiedSlot, verify_account_proof};
pub use rawtx::{RawTransaction, decode_raw_transaction, dry_transfer};
pub use receipts::{
    VerifiedLog, VerifiedReceipt, VerifiedReceipts, verify_block_receipts, verify_block_receipts_with_transactions,
    verify_receipt,
};
pub use state::{check_balance, check_code, check_storage_at, check_transaction_count};
pub use transaction::{TxPlacement, VerifiedTransaction, verify_transaction, verify_transaction_by_hash};
