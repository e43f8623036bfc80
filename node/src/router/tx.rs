//! `eth_sendRawTransaction`: "already known" is the success it is (the transaction is in the
//! pool: its hash is the answer). Broadcasting to several operators is
//! [`super::Attempts::broadcast`], over a plan ordered by [`across_jurisdictions`].

use bytes::Bytes;
use serde_json::value::RawValue;
use sha3::{Digest as _, Keccak256};

use super::{Plan, Target};
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

/// `plan` reordered for a broadcast: the best target of each jurisdiction first (unknown
/// jurisdictions count as distinct), then the rest in their order. One regulator's filter then
/// stops at most one of the copies.
pub fn across_jurisdictions(plan: Plan, jurisdiction: impl Fn(Target) -> Option<String>) -> Plan {
    let mut seen: Vec<String> = Vec::new();
    let (mut first, mut rest) = (Vec::with_capacity(plan.len()), Vec::new());
    for p in plan {
        match jurisdiction(p.target).map(|j| j.to_ascii_uppercase()) {
            Some(j) if seen.contains(&j) => rest.push(p),
            Some(j) => {
                seen.push(j);
                first.push(p);
            }
            None => first.push(p),
        }
    }
    first.extend(rest);
    first
}

/// An `eth_getTransactionByHash` request for `hash`.
pub fn lookup_request(hash: &str) -> Request {
    Request::internal("eth_getTransactionByHash", &format!(r#"["{hash}"]"#))
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

    #[test]
    fn a_broadcast_plan_puts_one_target_per_jurisdiction_first() {
        use super::super::Planned;
        let p =
            |i| Planned { target: Target::Own(i), hedge_delay: std::time::Duration::ZERO, breaker: Default::default() };
        let j = |t: Target| match t {
            Target::Own(0 | 1) => Some("de".to_string()),
            Target::Own(2) => None,
            _ => Some("US".to_string()),
        };
        let order: Vec<Target> =
            across_jurisdictions(vec![p(0), p(1), p(2), p(3)], j).iter().map(|p| p.target).collect();
        assert_eq!(order, [Target::Own(0), Target::Own(2), Target::Own(3), Target::Own(1)]);
    }
}
