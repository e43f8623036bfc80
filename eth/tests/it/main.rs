//! Fixture tests: real anvil 1.7.1 answers (see `tests/fixtures/record.sh`) must verify, and
//! every kind of alteration must fail with the right [`EthError::kind`].

mod blocks;
mod logs;
mod receipts;
mod state;
mod transactions;

use rpcmesh_eth::{EthError, VerifiedBlock, VerifiedReceipts, verify_block, verify_block_receipts};
use serde_json::Value;

/// The raw bytes of a fixture file.
pub fn raw(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A fixture as a JSON value.
pub fn json(name: &str) -> Value {
    serde_json::from_slice(&raw(name)).unwrap()
}

/// A fixture, changed by `edit`, as bytes.
pub fn edited(name: &str, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v = json(name);
    edit(&mut v);
    serde_json::to_vec(&v).unwrap()
}

/// The kind of the error `result` must be.
#[track_caller]
pub fn kind<T: std::fmt::Debug>(result: Result<T, EthError>) -> &'static str {
    match result {
        Ok(v) => panic!("verified although altered: {v:?}"),
        Err(e) => e.kind(),
    }
}

/// Hydrated block `n` of the main chain.
pub fn block(n: u64) -> VerifiedBlock {
    verify_block(&raw(&format!("block_{n}_full.json"))).unwrap()
}

/// Verified receipts of block `n` of the main chain.
pub fn receipts(n: u64) -> VerifiedReceipts {
    verify_block_receipts(&raw(&format!("block_{n}_receipts.json")), block(n).header()).unwrap()
}

/// The same hex string with one digit changed (first digit after `0x` unless `at` says).
pub fn flip_digit(s: &str, at: usize) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    let i = 2 + at % (chars.len() - 2);
    chars[i] = if chars[i] == '1' { '2' } else { '1' };
    chars.into_iter().collect()
}

/// A quantity plus one (`"0x1f"` -> `"0x20"`).
pub fn plus_one(q: &Value) -> Value {
    let n: rpcmesh_eth::U256 = q.as_str().unwrap().parse().unwrap();
    Value::String(format!("{:#x}", n + rpcmesh_eth::U256::from(1)))
}
