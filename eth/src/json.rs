//! Strict parsing of the JSON-RPC scalar encodings.
//!
//! The [execution-apis] encoding has two hex forms, and a verifier must read them exactly as an
//! honest client would, or a node could make the verifier and the client see different values:
//!
//! - QUANTITY (numbers): `0x` + the shortest hex digits, `0x0` for zero. Rejected: a missing
//!   `0x`, `0x` alone, leading zeros (`0x01`), non-hex digits (`+`, `_`, a second `0x`), and
//!   values that overflow the target width.
//! - DATA (bytes, hashes, addresses): `0x` + two hex digits per byte. Rejected: odd length, a
//!   missing `0x`, and a length other than the type's (32 bytes for a hash, 20 for an address,
//!   256 for a bloom, 8 for a block nonce).
//!
//! Upper- and lower-case digits are both accepted (an address's EIP-55 mixed case is not checked).
//!
//! [execution-apis]: https://ethereum.github.io/execution-apis/api-documentation/

use alloy_primitives::{Address, B64, B256, Bloom, Bytes, U256, hex};
use serde::Deserialize;

use crate::EthError;

/// Longest input echoed back in an error message.
const SHOWN_CHARS: usize = 80;

fn show(s: &str) -> String {
    if s.len() <= SHOWN_CHARS {
        format!("{s:?}")
    } else {
        let cut = (0..=SHOWN_CHARS).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
        format!("{:?}... ({} chars)", &s[..cut], s.len())
    }
}

/// The digits after the mandatory `0x`. Their characters are checked by the callers: by
/// const-hex's (vectorized) decoder for DATA, by [`quantity_digits`] for QUANTITY. const-hex
/// strips one more `0x` of its own, so a second prefix is rejected here.
fn hex_digits(s: &str) -> Result<&str, String> {
    let digits = s.strip_prefix("0x").ok_or_else(|| format!("{} lacks the 0x prefix", show(s)))?;
    if matches!(digits.as_bytes(), [b'0', b'x' | b'X', ..]) {
        return Err(format!("{} has two 0x prefixes", show(s)));
    }
    Ok(digits)
}

fn quantity_digits(s: &str, bits: usize) -> Result<&str, String> {
    let digits = hex_digits(s)?;
    if let Some(bad) = digits.bytes().find(|b| !b.is_ascii_hexdigit()) {
        return Err(format!("{} has a non-hex character {:?}", show(s), char::from(bad)));
    }
    if digits.is_empty() {
        return Err("\"0x\" is not a quantity (zero is \"0x0\")".into());
    }
    if digits.len() > 1 && digits.starts_with('0') {
        return Err(format!("{} has leading zeros", show(s)));
    }
    if digits.len() > bits / 4 {
        return Err(format!("{} overflows {bits} bits", show(s)));
    }
    Ok(digits)
}

pub(crate) fn quantity_u64(s: &str) -> Result<u64, String> {
    let digits = quantity_digits(s, 64)?;
    u64::from_str_radix(digits, 16).map_err(|e| format!("{}: {e}", show(s)))
}

pub(crate) fn quantity_u128(s: &str) -> Result<u128, String> {
    let digits = quantity_digits(s, 128)?;
    u128::from_str_radix(digits, 16).map_err(|e| format!("{}: {e}", show(s)))
}

pub(crate) fn quantity_u256(s: &str) -> Result<U256, String> {
    let digits = quantity_digits(s, 256)?;
    U256::from_str_radix(digits, 16).map_err(|e| format!("{}: {e}", show(s)))
}

pub(crate) fn data(s: &str) -> Result<Bytes, String> {
    let digits = hex_digits(s)?;
    if digits.len() % 2 != 0 {
        return Err(format!("{} has an odd number of hex digits", show(s)));
    }
    hex::decode(digits).map(Bytes::from).map_err(|e| format!("{}: {e}", show(s)))
}

pub(crate) fn fixed<const N: usize>(s: &str) -> Result<[u8; N], String> {
    let digits = hex_digits(s)?;
    if digits.len() != 2 * N {
        return Err(format!("{} is not {N} bytes ({} hex digits)", show(s), 2 * N));
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(digits, &mut out).map_err(|e| format!("{}: {e}", show(s)))?;
    Ok(out)
}

/// Attaches the JSON member name to a scalar parse error.
pub(crate) fn field<T>(name: &str, parsed: Result<T, String>) -> Result<T, EthError> {
    parsed.map_err(|e| EthError::Malformed(format!("`{name}`: {e}")))
}

/// A required member that the struct has as `Option` (because it is optional for other types).
pub(crate) fn required<'a>(name: &str, value: Option<&'a str>) -> Result<&'a str, EthError> {
    value.ok_or_else(|| EthError::Malformed(format!("missing `{name}`")))
}

/// Parses a JSON-RPC `result`; `null` becomes [`EthError::NotFound`].
pub(crate) fn parse_result<'a, T: Deserialize<'a>>(what: &str, json: &'a [u8]) -> Result<T, EthError> {
    if json.trim_ascii() == b"null" {
        return Err(EthError::NotFound);
    }
    serde_json::from_slice(json).map_err(|e| EthError::Malformed(format!("{what}: {e}")))
}

/// Parses a QUANTITY up to 64 bits (`"0x1a"`).
pub fn parse_quantity_u64(s: &str) -> Result<u64, EthError> {
    field("quantity", quantity_u64(s))
}

/// Parses a QUANTITY up to 128 bits (gas prices).
pub fn parse_quantity_u128(s: &str) -> Result<u128, EthError> {
    field("quantity", quantity_u128(s))
}

/// Parses a QUANTITY up to 256 bits (balances, values, storage words).
pub fn parse_quantity(s: &str) -> Result<U256, EthError> {
    field("quantity", quantity_u256(s))
}

/// Parses unformatted DATA of any (even) length.
pub fn parse_data(s: &str) -> Result<Bytes, EthError> {
    field("data", data(s))
}

/// Parses a 32-byte hash.
pub fn parse_hash(s: &str) -> Result<B256, EthError> {
    field("hash", fixed::<32>(s).map(B256::new))
}

/// Parses a 20-byte address (any letter case; the EIP-55 checksum is not checked).
pub fn parse_address(s: &str) -> Result<Address, EthError> {
    field("address", fixed::<20>(s).map(Address::new))
}

/// Parses a 256-byte logs bloom.
pub fn parse_bloom(s: &str) -> Result<Bloom, EthError> {
    field("logsBloom", fixed::<256>(s).map(Bloom::new))
}

/// Parses an 8-byte block nonce.
pub fn parse_block_nonce(s: &str) -> Result<B64, EthError> {
    field("nonce", fixed::<8>(s).map(B64::new))
}

/// Parses a JSON-RPC `result` that is a single QUANTITY string (`eth_getBalance`,
/// `eth_getTransactionCount`, `eth_blockNumber` ...).
pub fn parse_quantity_result(json: &[u8]) -> Result<U256, EthError> {
    let s: &str = parse_result("quantity", json)?;
    parse_quantity(s)
}

/// Parses a JSON-RPC `result` that is a single DATA string (`eth_getCode`, `eth_call` ...).
pub fn parse_data_result(json: &[u8]) -> Result<Bytes, EthError> {
    let s: &str = parse_result("data", json)?;
    parse_data(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn quantities_are_strict() {
        assert_eq!(quantity_u64("0x0"), Ok(0));
        assert_eq!(quantity_u64("0x1a"), Ok(26));
        assert_eq!(quantity_u64("0xFF"), Ok(255));
        assert_eq!(quantity_u64("0xffffffffffffffff"), Ok(u64::MAX));
        for bad in ["", "0x", "1a", "0X1a", "0x01", "0x00", "0x+1", "0x-1", "0x1_0", "0x 1", "0x0x1", "0xg", "26"] {
            assert!(quantity_u64(bad).is_err(), "{bad:?} accepted");
        }
        assert!(quantity_u64("0x10000000000000000").is_err(), "u64 overflow accepted");
        assert!(quantity_u128("0x100000000000000000000000000000000").is_err());
        assert_eq!(quantity_u256(&format!("0x{}", "f".repeat(64))), Ok(U256::MAX));
        assert!(quantity_u256(&format!("0x1{}", "0".repeat(64))).is_err());
    }

    #[test]
    fn data_is_strict() {
        assert_eq!(data("0x"), Ok(Bytes::new()));
        assert_eq!(data("0xbeEF"), Ok(Bytes::from(vec![0xbe, 0xef])));
        for bad in ["", "beef", "0xbee", "0x0xbe", "0x0Xbe", "0xzz", "0x be", "0x+1", "0xé1"] {
            assert!(data(bad).is_err(), "{bad:?} accepted");
        }
        assert!(fixed::<2>("0xbeef").is_ok());
        assert!(fixed::<2>("0xbe").is_err());
        assert!(fixed::<2>("0x00beef").is_err());
        assert!(fixed::<2>("0x0xbeef").is_err());
        assert!(fixed::<2>("0xbeeg").is_err());
        assert!(parse_address("0x5FbDB2315678afecb367f032d93F642f64180aa3").is_ok());
        assert!(parse_hash("0x5fbdb2315678afecb367f032d93f642f64180aa3").is_err());
    }

    #[test]
    fn results_parse_and_null_is_not_found() {
        assert_eq!(parse_quantity_result(b" \"0x10\" "), Ok(U256::from(16)));
        assert_eq!(parse_quantity_result(b"null"), Err(EthError::NotFound));
        assert!(matches!(parse_quantity_result(b"16"), Err(EthError::Malformed(_))));
        assert_eq!(parse_data_result(b"\"0x\""), Ok(Bytes::new()));
    }

    #[test]
    fn long_inputs_are_cut_in_errors() {
        let long = format!("0x{}z", "a".repeat(10_000));
        let Err(EthError::Malformed(msg)) = parse_data(&long) else { panic!("accepted") };
        assert!(msg.len() < 200, "{msg}");
    }

    proptest! {
        #[test]
        fn quantity_round_trips(n in any::<u64>()) {
            prop_assert_eq!(quantity_u64(&format!("{n:#x}")), Ok(n));
            prop_assert_eq!(quantity_u256(&format!("{n:#x}")), Ok(U256::from(n)));
        }

        #[test]
        fn padded_quantities_are_rejected(n in any::<u64>(), zeros in 1usize..4) {
            let padded = format!("0x{}{n:x}", "0".repeat(zeros));
            prop_assert!(quantity_u64(&padded).is_err());
        }

        #[test]
        fn data_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(data(&format!("0x{}", hex::encode(&bytes))), Ok(Bytes::from(bytes)));
        }
    }
}
