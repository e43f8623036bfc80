//! Which accounts a request is about: the subjects a filter would act on.
//!
//! State reads name their account; `eth_getLogs` its emitter addresses and any topic that is a
//! left-padded address (an ERC-20 `Transfer`'s `from`/`to`); calls their `from`/`to`; a raw
//! transaction its recovered sender and recipient. Bounded: at most [`MAX_TOUCHED`] addresses
//! are read from one request (a filter naming thousands is judged by its first ones).

use rpcmesh_eth::Address;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

/// Most addresses read from one request.
pub const MAX_TOUCHED: usize = 32;

/// The accounts `method(params)` is about, in request order, without duplicates. Unreadable
/// params touch nothing (the node answers the caller's error).
pub fn touched(method: &str, body: &[u8]) -> Vec<Address> {
    #[derive(Deserialize)]
    struct Envelope<'a> {
        #[serde(borrow, default)]
        params: Option<&'a RawValue>,
    }
    let Ok(env) = serde_json::from_slice::<Envelope<'_>>(body) else { return Vec::new() };
    let Some(params) = env.params else { return Vec::new() };
    let mut out = Vec::new();
    match method {
        "eth_getBalance" | "eth_getTransactionCount" | "eth_getCode" | "eth_getStorageAt" | "eth_getProof" => {
            if let Ok(list) = serde_json::from_str::<Vec<Value>>(params.get())
                && let Some(first) = list.first().and_then(Value::as_str)
            {
                push(&mut out, first);
            }
        }
        "eth_call" | "eth_estimateGas" | "eth_createAccessList" | "eth_simulateV1" => {
            if let Ok(list) = serde_json::from_str::<Vec<Value>>(params.get())
                && let Some(tx) = list.first()
            {
                for key in ["from", "to"] {
                    if let Some(a) = tx.get(key).and_then(Value::as_str) {
                        push(&mut out, a);
                    }
                }
            }
        }
        "eth_getLogs" | "eth_newFilter" => {
            if let Ok(list) = serde_json::from_str::<Vec<Value>>(params.get())
                && let Some(filter) = list.first()
            {
                logs_filter(&mut out, filter);
            }
        }
        "eth_sendRawTransaction" => {
            if let Some(tx) = raw_transaction(body) {
                out.push(tx.from);
                if let Some(to) = tx.to {
                    out.push(to);
                }
            }
        }
        _ => {}
    }
    out.dedup();
    out
}

/// The decoded transaction of an `eth_sendRawTransaction` request, its sender recovered.
pub fn raw_transaction(body: &[u8]) -> Option<rpcmesh_eth::RawTransaction> {
    #[derive(Deserialize)]
    struct Envelope {
        params: (String,),
    }
    let env: Envelope = serde_json::from_slice(body).ok()?;
    let hex_str = env.params.0;
    let raw = hex::decode(hex_str.strip_prefix("0x").unwrap_or(&hex_str)).ok()?;
    rpcmesh_eth::decode_raw_transaction(&raw).ok()
}

fn logs_filter(out: &mut Vec<Address>, filter: &Value) {
    match filter.get("address") {
        Some(Value::String(a)) => push(out, a),
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).for_each(|a| push(out, a)),
        _ => {}
    }
    let Some(Value::Array(topics)) = filter.get("topics") else { return };
    // topic 0 is the event signature; later positions may be indexed addresses.
    for t in topics.iter().skip(1) {
        match t {
            Value::String(s) => push_topic(out, s),
            Value::Array(any) => any.iter().filter_map(Value::as_str).for_each(|s| push_topic(out, s)),
            _ => {}
        }
    }
}

fn push(out: &mut Vec<Address>, s: &str) {
    if out.len() < MAX_TOUCHED
        && let Some(a) = super::parse_address(s)
        && !out.contains(&a)
    {
        out.push(a);
    }
}

/// A 32-byte topic whose first 12 bytes are zero is taken as an address.
fn push_topic(out: &mut Vec<Address>, s: &str) {
    let digits = s.strip_prefix("0x").unwrap_or(s);
    if digits.len() == 64 && digits[..24].bytes().all(|b| b == b'0') {
        push(out, &format!("0x{}", &digits[24..]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0xa0ee7a142d267c1f36714e4a8f75612f20a79720";
    const B: &str = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8";

    fn addr(s: &str) -> Address {
        s.parse().unwrap()
    }

    fn body(method: &str, params: &str) -> Vec<u8> {
        format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{params}}}"#).into_bytes()
    }

    #[test]
    fn state_reads_calls_and_logs_name_their_accounts() {
        assert_eq!(touched("eth_getBalance", &body("eth_getBalance", &format!(r#"["{A}","latest"]"#))), [addr(A)]);
        assert_eq!(touched("eth_getCode", &body("eth_getCode", &format!(r#"["{A}"]"#))), [addr(A)]);
        assert_eq!(
            touched("eth_getStorageAt", &body("eth_getStorageAt", &format!(r#"["{A}","0x0","latest"]"#))),
            [addr(A)]
        );
        let call = body("eth_call", &format!(r#"[{{"from":"{B}","to":"{A}","data":"0x"}},"latest"]"#));
        assert_eq!(touched("eth_call", &call), [addr(B), addr(A)]);
        let padded = format!("0x000000000000000000000000{}", &B[2..]);
        let logs = body(
            "eth_getLogs",
            &format!(
                r#"[{{"address":["{A}"],"topics":["0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef",null,["{padded}"]]}}]"#
            ),
        );
        assert_eq!(touched("eth_getLogs", &logs), [addr(A), addr(B)]);
    }

    #[test]
    fn a_raw_transaction_names_sender_and_recipient() {
        let secret = rpcmesh_eth::B256::repeat_byte(3);
        let raw = rpcmesh_eth::dry_transfer(1, secret, addr(A), 1).unwrap();
        let b = body("eth_sendRawTransaction", &format!(r#"["0x{}"]"#, hex::encode(&raw)));
        let t = touched("eth_sendRawTransaction", &b);
        assert_eq!(t.len(), 2);
        assert_eq!(t[1], addr(A));
    }

    #[test]
    fn garbage_touches_nothing() {
        for (m, p) in [
            ("eth_getBalance", "[1,2]"),
            ("eth_getBalance", r#"["0x12"]"#),
            ("eth_getLogs", r#"[{"address":7,"topics":[null,"0x1"]}]"#),
            ("eth_sendRawTransaction", r#"["0xzz"]"#),
            ("eth_call", "{}"),
        ] {
            assert!(touched(m, &body(m, p)).is_empty(), "{m} {p}");
        }
        let many: Vec<String> = (0..100).map(|i| format!("\"0x{:040x}\"", i)).collect();
        let logs = body("eth_getLogs", &format!(r#"[{{"address":[{}]}}]"#, many.join(",")));
        assert_eq!(touched("eth_getLogs", &logs).len(), MAX_TOUCHED);
    }
}
