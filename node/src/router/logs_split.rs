//! `eth_getLogs` ranges over a provider's limit, split and merged: when every provider refuses a
//! range as too wide (or as matching too many logs), the range is asked in halves, recursively,
//! and the answers concatenated in block order. A client sees one answer, as from a node without
//! limits.

use bytes::Bytes;
use serde_json::Value;

use crate::jsonrpc::Request;

/// Most halvings of one request (at most 2^6 = 64 sub-requests).
pub const MAX_SPLIT_DEPTH: u32 = 6;

/// Fragments (lower-case) of the errors providers refuse a too-wide `eth_getLogs` with (geth,
/// erigon, alchemy, infura, quicknode, the testnet's simulated nodes...).
const RANGE_LIMIT: &[&str] = &[
    "block range",
    "range too large",
    "range is too large",
    "exceeds max",
    "exceed maximum",
    "more than",
    "too many results",
    "query timeout",
    "response size",
    "log response size exceeded",
];

/// Whether an error answer says the range (or its result) was too large.
pub fn is_range_limit(body: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<Value>(body) else { return false };
    let Some(m) = v.pointer("/error/message").and_then(Value::as_str) else { return false };
    let m = m.to_ascii_lowercase();
    RANGE_LIMIT.iter().any(|f| m.contains(f))
}

/// The two halves of `req`'s range, as requests with the same id, when the range has numbers
/// (`latest`, `safe`, `finalized` and an absent bound resolve to `head`) and more than one
/// block. `None` for `blockHash` filters, `pending`, or an unknown head.
pub fn halves(req: &Request, head: Option<u64>) -> Option<(Request, Request)> {
    let v: Value = serde_json::from_slice(req.upstream_body()).ok()?;
    let filter = v.get("params")?.as_array()?.first()?.as_object()?.clone();
    if filter.contains_key("blockHash") {
        return None;
    }
    let bound = |k: &str| -> Option<u64> {
        match filter.get(k) {
            None | Some(Value::Null) => head,
            Some(Value::String(s)) => match s.as_str() {
                "latest" | "safe" | "finalized" => head,
                "earliest" => Some(0),
                "pending" => None,
                n => rpcmesh_eth::json::parse_quantity_u64(n).ok(),
            },
            _ => None,
        }
    };
    let (from, to) = (bound("fromBlock")?, bound("toBlock")?);
    if to <= from {
        return None;
    }
    let mid = from + (to - from) / 2;
    let part = |a: u64, b: u64| {
        let mut f = filter.clone();
        f.insert("fromBlock".into(), Value::String(format!("{a:#x}")));
        f.insert("toBlock".into(), Value::String(format!("{b:#x}")));
        let mut body = v.clone();
        body["params"] = Value::Array(vec![Value::Object(f)]);
        Request::new(Bytes::from(body.to_string()), "eth_getLogs", req.upstream_id().map(Bytes::copy_from_slice))
    };
    Some((part(from, mid), part(mid + 1, to)))
}

/// One answer of the two halves' answers (both results): their logs concatenated, with `id`.
pub fn merge(first: &[u8], second: &[u8], id: &[u8]) -> Option<Bytes> {
    let result = |b: &[u8]| -> Option<Vec<Value>> {
        let mut v: Value = serde_json::from_slice(b).ok()?;
        match v.get_mut("result").map(Value::take)? {
            Value::Array(a) => Some(a),
            _ => None,
        }
    };
    let mut logs = result(first)?;
    logs.extend(result(second)?);
    let mut out = Vec::with_capacity(first.len() + second.len() + 32);
    out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    out.extend_from_slice(id);
    out.extend_from_slice(br#","result":"#);
    out.extend_from_slice(Value::Array(logs).to_string().as_bytes());
    out.push(b'}');
    Some(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::{Call, Item, parse};

    fn req(filter: &str) -> Request {
        let raw = Bytes::from(format!(r#"{{"jsonrpc":"2.0","id":4,"method":"eth_getLogs","params":[{filter}]}}"#));
        let Call::Single(Item::Request(r)) = parse(&raw) else { panic!() };
        r
    }

    fn range(r: &Request) -> (String, String) {
        let v: Value = serde_json::from_slice(r.upstream_body()).unwrap();
        (v["params"][0]["fromBlock"].as_str().unwrap().into(), v["params"][0]["toBlock"].as_str().unwrap().into())
    }

    #[test]
    fn ranges_split_in_halves_and_tags_resolve_to_the_head() {
        let (a, b) = halves(&req(r#"{"fromBlock":"0x0","toBlock":"0x9","address":"0x01"}"#), None).unwrap();
        assert_eq!((range(&a), range(&b)), (("0x0".into(), "0x4".into()), ("0x5".into(), "0x9".into())));
        let v: Value = serde_json::from_slice(a.upstream_body()).unwrap();
        assert_eq!((v["params"][0]["address"].as_str(), v["id"].as_u64()), (Some("0x01"), Some(4)));
        let (a, b) = halves(&req(r#"{"fromBlock":"earliest"}"#), Some(3)).unwrap();
        assert_eq!((range(&a), range(&b)), (("0x0".into(), "0x1".into()), ("0x2".into(), "0x3".into())));
        assert!(halves(&req(r#"{"fromBlock":"0x5","toBlock":"0x5"}"#), None).is_none(), "one block");
        assert!(halves(&req(r#"{"fromBlock":"0x1"}"#), None).is_none(), "latest unknown");
        assert!(halves(&req(r#"{"blockHash":"0x11"}"#), Some(9)).is_none());
        assert!(halves(&req(r#"{"fromBlock":"0x1","toBlock":"pending"}"#), Some(9)).is_none());
    }

    #[test]
    fn range_errors_are_recognised_and_answers_merged_in_order() {
        assert!(is_range_limit(
            br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32005,"message":"query exceeds max block range 10000"}}"#
        ));
        assert!(is_range_limit(br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range"}}"#));
        assert!(!is_range_limit(br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"invalid argument 0"}}"#));
        assert!(!is_range_limit(br#"{"jsonrpc":"2.0","id":1,"result":[]}"#));
        let m = merge(br#"{"id":1,"result":[{"n":1}]}"#, br#"{"id":1,"result":[{"n":2},{"n":3}]}"#, b"\"x\"").unwrap();
        let v: Value = serde_json::from_slice(&m).unwrap();
        assert_eq!(v["id"], "x");
        assert_eq!(v["result"], serde_json::json!([{"n":1},{"n":2},{"n":3}]));
        assert!(merge(br#"{"id":1,"error":{}}"#, br#"{"id":1,"result":[]}"#, b"1").is_none());
    }
}
