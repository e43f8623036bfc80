//! `eth_sendRawTransaction`: "already known" is the success it is (the transaction is in the
//! pool: its hash is the answer). Broadcasting to several providers is
//! [`super::Attempts::broadcast`].

use bytes::Bytes;
use serde_json::value::RawValue;
use sha3::{Digest as _, Keccak256};

use crate::jsonrpc::Request;

/// The transaction hash of an `eth_sendRawTransaction` request: keccak256 of the raw bytes.
pub fn tx_hash(req: &Request) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct P<'a> {
        #[serde(borrow)]
        params: Vec<&'a RawValue>,
    }
    let p: P<'_> = serde_json::from_slice(&req.raw).ok()?;
    let hex_str: String = serde_json::from_str(p.params.first()?.get()).ok()?;
    let raw = hex::decode(hex_str.strip_prefix("0x").unwrap_or(&hex_str)).ok()?;
    Some(format!("0x{}", hex::encode(Keccak256::digest(&raw))))
}

/// The result answer an "already known" error stands for: the transaction's hash, with the id
/// the request carried upstream. `None` if the request's transaction is unreadable.
pub fn already_known_answer(req: &Request, upstream_id: &[u8]) -> Option<Bytes> {
    let hash = tx_hash(req)?;
    let mut out = Vec::with_capacity(64 + upstream_id.len() + hash.len());
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(upstream_id);
    out.extend_from_slice(b",\"result\":\"");
    out.extend_from_slice(hash.as_bytes());
    out.extend_from_slice(b"\"}");
    Some(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::{Call, Item, parse};

    #[test]
    fn already_known_becomes_the_hash() {
        let raw =
            Bytes::from_static(br#"{"jsonrpc":"2.0","id":9,"method":"eth_sendRawTransaction","params":["0x01"]}"#);
        let Call::Single(Item::Request(req)) = parse(&raw) else { panic!() };
        // keccak256(0x01)
        let expected = "0x5fe7f977e71dba2ea1a68e21057beebb9be2ac30c6410aa38d4f3fbe41dcffd2";
        assert_eq!(tx_hash(&req).as_deref(), Some(expected));
        let v: serde_json::Value = serde_json::from_slice(&already_known_answer(&req, b"9").unwrap()).unwrap();
        assert_eq!(v["result"], expected);
        assert_eq!(v["id"], 9);
    }
}
