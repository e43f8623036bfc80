//! Plain state answers checked against a proven account: `eth_getBalance`,
//! `eth_getTransactionCount`, `eth_getCode`, `eth_getStorageAt`.
//!
//! The caller first verifies an `eth_getProof` answer for the same address and block
//! ([`crate::verify_account_proof`], with the slots it wants to read), then checks the plain
//! answer against it. Code is compared through its hash: `keccak256(code)` must be the proven
//! `codeHash` (`0x` for an account without code, whose hash is [`KECCAK_EMPTY`]).

use alloy_primitives::{B256, Bytes, U256, keccak256};
use alloy_trie::KECCAK_EMPTY;

use crate::error::StateValue;
use crate::json::{parse_data_result, parse_quantity_result, parse_result};
use crate::proof::VerifiedAccount;
use crate::{EthError, json};

fn mismatch(what: StateValue, claimed: impl ToString, proven: impl ToString) -> EthError {
    EthError::ValueMismatch { what, claimed: claimed.to_string(), proven: proven.to_string() }
}

/// Checks an `eth_getBalance` answer; returns the balance.
pub fn check_balance(result: &[u8], account: &VerifiedAccount) -> Result<U256, EthError> {
    let claimed = parse_quantity_result(result)?;
    if claimed != account.balance() {
        return Err(mismatch(StateValue::Balance, claimed, account.balance()));
    }
    Ok(claimed)
}

/// Checks an `eth_getTransactionCount` answer; returns the nonce.
pub fn check_transaction_count(result: &[u8], account: &VerifiedAccount) -> Result<u64, EthError> {
    let claimed = parse_quantity_result(result)?;
    if claimed != U256::from(account.nonce()) {
        return Err(mismatch(StateValue::Nonce, claimed, account.nonce()));
    }
    Ok(account.nonce())
}

/// Checks an `eth_getCode` answer; returns the code.
pub fn check_code(result: &[u8], account: &VerifiedAccount) -> Result<Bytes, EthError> {
    let code = parse_data_result(result)?;
    let hash = if code.is_empty() { KECCAK_EMPTY } else { keccak256(&code) };
    if hash != account.code_hash() {
        return Err(mismatch(StateValue::Code, format!("code hashing to {hash}"), account.code_hash()));
    }
    Ok(code)
}

/// Checks an `eth_getStorageAt` answer (a 32-byte word) for `slot`, which the account proof must
/// have covered; returns the word.
pub fn check_storage_at(result: &[u8], account: &VerifiedAccount, slot: B256) -> Result<B256, EthError> {
    let s: &str = parse_result("storage word", result)?;
    let word = json::parse_hash(s)?;
    let proven = account.storage_value(slot).ok_or(EthError::MissingStorageProof { slot })?;
    if U256::from_be_bytes(word.0) != proven {
        return Err(mismatch(StateValue::Storage, word, B256::from(proven)));
    }
    Ok(word)
}
