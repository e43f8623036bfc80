//! What peers may ask of this node's upstreams, and whether what the upstream answered may be
//! signed.
//!
//! The requesting gateway applies its own method policy, but a peer is a stranger running
//! whatever it likes: the serving side decides for itself. [`RelayMethodPolicy`] is the
//! operator's `relay.allow_methods`/`deny_methods` (the gateway's safe default unless changed)
//! plus per-peer `[[relay.grants]]`. [`check_answer`] is answer hygiene before a receipt is
//! signed: a provider must never put its signature under a truncated or foreign answer.

use std::collections::HashMap;

use rpcmesh_protocol::PublicKey;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::config::RelayConfig;
use crate::jsonrpc::{Call, Item, parse_response};
use crate::router::MethodRules;

/// How a refusal by method policy starts its reason: the requester recognises it and answers
/// its client JSON-RPC -32601 instead of "no provider" (no other provider is asked: the method,
/// not the provider, is the problem).
pub const METHOD_REFUSED: &str = "method not relayed: ";

/// The relay server's method policy.
#[derive(Debug, Clone)]
pub struct RelayMethodPolicy {
    base: MethodRules,
    grants: HashMap<PublicKey, MethodRules>,
}

impl Default for RelayMethodPolicy {
    fn default() -> Self {
        Self { base: MethodRules::default_public(), grants: HashMap::new() }
    }
}

impl RelayMethodPolicy {
    /// The policy of `[relay]`. Grants whose peer does not parse are skipped (the config check
    /// refuses them before a daemon starts).
    pub fn from_config(c: &RelayConfig) -> Self {
        let grants = c
            .grants
            .iter()
            .filter_map(|g| {
                let key = PublicKey::parse(&g.peer).ok()?;
                Some((key, MethodRules::new(&g.allow_methods, &[] as &[&str])))
            })
            .collect();
        Self { base: MethodRules::new(&c.allow_methods, &c.deny_methods), grants }
    }

    /// Whether `requester` may have `method` served.
    pub fn allows(&self, requester: &PublicKey, method: &str) -> bool {
        self.base.allows(method) || self.grants.get(requester).is_some_and(|g| g.allows(method))
    }

    /// `Err(reason)` unless every request in `call` is a valid request of an allowed method.
    /// Invalid elements are refused too: a node may read leniently what this parser rejects
    /// (another `jsonrpc` version, say) and run a method the policy never saw.
    pub fn check(&self, requester: &PublicKey, call: &Call) -> Result<(), String> {
        let items: &[Item] = match call {
            Call::Single(item) => std::slice::from_ref(item),
            Call::Batch(items) => items,
            Call::Error { message, .. } => return Err(format!("not a JSON-RPC request: {message}")),
        };
        for item in items {
            match item {
                Item::Request(r) if self.allows(requester, &r.method) => {}
                Item::Request(r) => {
                    return Err(format!(
                        "{METHOD_REFUSED}{} is not served to peers by this provider (its relay.allow_methods / \
                         relay.deny_methods; [[relay.grants]] opts a peer in)",
                        r.method
                    ));
                }
                Item::Invalid { message, .. } => return Err(format!("not a JSON-RPC request: {message}")),
            }
        }
        Ok(())
    }
}

/// Checks that `answer` (what the upstream sent back with HTTP 200) is a well-formed JSON-RPC
/// answer to `call`: one response with the request's id, an array of responses to the batch's
/// ids, or, for notifications only, nothing. `Err` says what is wrong.
pub fn check_answer(call: &Call, answer: &[u8]) -> Result<(), String> {
    match call {
        Call::Single(Item::Request(r)) => match &r.id {
            Some(id) => parse_response(answer, id).map(drop).map_err(|m| m.to_string()),
            None => check_notification_answer(answer),
        },
        Call::Batch(items) => {
            let ids: Vec<&[u8]> = items
                .iter()
                .filter_map(|i| match i {
                    Item::Request(r) => r.id.as_deref(),
                    Item::Invalid { .. } => None,
                })
                .collect();
            if ids.is_empty() {
                return check_notification_answer(answer);
            }
            check_batch_answer(&ids, answer)
        }
        // Refused before reaching the upstream.
        Call::Single(Item::Invalid { .. }) | Call::Error { .. } => Err("not a request".into()),
    }
}

fn check_notification_answer(answer: &[u8]) -> Result<(), String> {
    if answer.trim_ascii().is_empty() || serde_json::from_slice::<serde::de::IgnoredAny>(answer).is_ok() {
        Ok(())
    } else {
        Err("not JSON".into())
    }
}

fn check_batch_answer(ids: &[&[u8]], answer: &[u8]) -> Result<(), String> {
    #[derive(Deserialize)]
    struct IdOnly<'a> {
        #[serde(borrow, default)]
        id: Option<&'a RawValue>,
    }
    let elements: Vec<&RawValue> =
        serde_json::from_slice(answer).map_err(|_| "not a JSON array of responses".to_string())?;
    if elements.len() > ids.len() {
        return Err(format!("{} responses to {} requests", elements.len(), ids.len()));
    }
    for e in elements {
        let text = e.get().as_bytes();
        let id = serde_json::from_slice::<IdOnly<'_>>(text)
            .ok()
            .and_then(|o| o.id)
            .map(|id| id.get().as_bytes())
            .unwrap_or(b"null");
        // Exact first; `parse_response` also compares numerically (`1.0` answers `1`).
        let expected =
            ids.iter().find(|want| **want == id).or_else(|| ids.iter().find(|want| parse_response(text, want).is_ok()));
        let Some(expected) = expected else {
            return Err("a response to a request not in the batch (id mismatch)".into());
        };
        parse_response(text, expected).map_err(|m| m.to_string())?;
    }
    Ok(())
}

/// The reason a malformed answer is refused with, for the requester's logs.
pub fn malformed_reason(why: &str) -> String {
    format!("the provider's node answered a malformed response ({why}); not signed")
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use rpcmesh_protocol::Identity;

    use super::*;
    use crate::config::RelayGrant;
    use crate::jsonrpc;

    fn call(s: &str) -> Call {
        jsonrpc::parse(&Bytes::from(s.to_string()))
    }

    #[test]
    fn the_default_refuses_the_dangerous_set_and_grants_opt_a_peer_in() {
        let stranger = Identity::from_secret_bytes([1; 32]).public_key();
        let rig = Identity::from_secret_bytes([2; 32]).public_key();
        let config = RelayConfig {
            grants: vec![RelayGrant { peer: rig.to_peer_id().to_string(), allow_methods: vec!["anvil_*".into()] }],
            ..RelayConfig::default()
        };
        let p = RelayMethodPolicy::from_config(&config);
        let read = call(r#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}"#);
        assert!(p.check(&stranger, &read).is_ok());
        for m in ["anvil_reset", "eth_sendTransaction", "eth_sign", "debug_traceTransaction", "evm_mine"] {
            let c = call(&format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{m}","params":[]}}"#));
            let why = p.check(&stranger, &c).unwrap_err();
            assert!(why.starts_with(METHOD_REFUSED) && why.contains(m) && why.contains("relay.allow_methods"), "{why}");
        }
        let reset = call(r#"{"jsonrpc":"2.0","id":1,"method":"anvil_reset","params":[]}"#);
        assert!(p.check(&rig, &reset).is_ok(), "granted");
        assert!(p.check(&rig, &call(r#"{"jsonrpc":"2.0","id":1,"method":"eth_sign","params":[]}"#)).is_err());
        // One refused method refuses the whole batch; so do invalid elements and non-requests.
        let batch = call(
            r#"[{"jsonrpc":"2.0","id":1,"method":"eth_chainId"},{"jsonrpc":"2.0","id":2,"method":"personal_sign"}]"#,
        );
        assert!(p.check(&stranger, &batch).unwrap_err().contains("personal_sign"));
        let lenient = call(r#"{"jsonrpc":"1.0","id":1,"method":"anvil_reset"}"#);
        assert!(!p.check(&stranger, &lenient).unwrap_err().starts_with(METHOD_REFUSED));
        assert!(p.check(&stranger, &call("{")).is_err());
        let escaped = call(r#"{"jsonrpc":"2.0","id":1,"method":"anvil\u005freset"}"#);
        assert!(p.check(&stranger, &escaped).unwrap_err().contains("anvil_reset"));
    }

    #[test]
    fn only_well_formed_answers_to_the_request_pass() {
        let single = call(r#"{"jsonrpc":"2.0","id":7,"method":"eth_blockNumber"}"#);
        assert!(check_answer(&single, br#"{"jsonrpc":"2.0","id":7,"result":"0x1"}"#).is_ok());
        assert!(check_answer(&single, br#"{"jsonrpc":"2.0","id":7,"error":{"code":3,"message":"x"}}"#).is_ok());
        for bad in [
            &br#"{"jsonrpc":"2.0","id":7,"result":"0x"#[..],
            b"<html>502</html>",
            br#"{"jsonrpc":"2.0","id":8,"result":"0x1"}"#,
            br#"[{"jsonrpc":"2.0","id":7,"result":"0x1"}]"#,
            b"",
        ] {
            assert!(check_answer(&single, bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let batch = call(r#"[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","id":"b","method":"c"}]"#);
        let ok = br#"[{"jsonrpc":"2.0","id":"b","result":1},{"jsonrpc":"2.0","id":1,"result":2}]"#;
        assert!(check_answer(&batch, ok).is_ok());
        assert!(check_answer(&batch, br#"[{"jsonrpc":"2.0","id":1,"result":2},"#).is_err());
        assert!(check_answer(&batch, br#"[{"jsonrpc":"2.0","id":3,"result":2}]"#).is_err());
        assert!(check_answer(&batch, br#"[{"jsonrpc":"2.0","id":1}]"#).is_err());
        let notification = call(r#"{"jsonrpc":"2.0","method":"eth_blockNumber"}"#);
        assert!(check_answer(&notification, b"").is_ok());
        assert!(check_answer(&notification, b"{trunc").is_err());
    }
}
