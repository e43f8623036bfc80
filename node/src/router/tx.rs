//! `eth_sendRawTransaction`: optional broadcast to several providers, and "already known"
//! turned into the success it is (the transaction is in the pool: its hash is the answer).

use std::time::Instant;

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt as _};
use serde_json::value::RawValue;
use sha3::{Digest as _, Keccak256};

use super::classify::{Verdict, is_already_known};
use super::select::Candidate;
use super::{Routed, Router};
use crate::gateway::jsonrpc::{self, RESOURCE_UNAVAILABLE, Request, ResponseKind, response_kind};

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

/// Rewrites an "already known" error answer into a result carrying the transaction hash.
pub fn normalize_send(req: &Request, body: Bytes) -> Bytes {
    match response_kind(&body) {
        ResponseKind::Error(e) if is_already_known(&e) => match tx_hash(req) {
            Some(hash) => {
                let id = req.id.as_deref().unwrap_or(b"null");
                let mut out = Vec::with_capacity(64 + id.len() + hash.len());
                out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
                out.extend_from_slice(id);
                out.extend_from_slice(b",\"result\":\"");
                out.extend_from_slice(hash.as_bytes());
                out.extend_from_slice(b"\"}");
                Bytes::from(out)
            }
            None => body,
        },
        _ => body,
    }
}

impl Router {
    /// Sends a transaction to the best `broadcast_transactions` providers at once; the first
    /// acceptance (a hash or "already known") answers. Never hedged: every copy is deliberate.
    pub(super) async fn broadcast(
        &self,
        chain_id: u64,
        req: &Request,
        order: &[Candidate],
        deadline: Instant,
    ) -> Routed {
        let n = (self.inner.cfg.broadcast_transactions as usize).max(1);
        let mut inflight = FuturesUnordered::new();
        let mut attempts = 0;
        for c in order.iter() {
            if inflight.len() >= n {
                break;
            }
            if self.admit(chain_id, &c.target) {
                attempts += 1;
                inflight.push(self.attempt(
                    chain_id,
                    c.target.clone(),
                    req.raw.clone(),
                    deadline,
                    true,
                    req.is_notification(),
                ));
            }
        }
        let mut caller_error: Option<Routed> = None;
        let mut last_error = String::from("no eligible provider (see /explain)");
        while let Some(r) = inflight.next().await {
            match r.verdict {
                Verdict::Success => {
                    self.record(chain_id, &r.target, r.started.elapsed(), true);
                    return Routed {
                        body: normalize_send(req, r.body),
                        served_by: Some(self.served_by(&r.target)),
                        attempts,
                    };
                }
                Verdict::CallerError => {
                    self.record(chain_id, &r.target, r.started.elapsed(), true);
                    caller_error.get_or_insert(Routed {
                        body: r.body,
                        served_by: Some(self.served_by(&r.target)),
                        attempts,
                    });
                }
                Verdict::Retry(reason) => {
                    self.record(chain_id, &r.target, r.started.elapsed(), false);
                    last_error = reason;
                }
            }
        }
        if let Some(mut e) = caller_error {
            e.attempts = attempts;
            return e;
        }
        let id = req.id.as_deref().unwrap_or(b"null");
        Routed {
            body: jsonrpc::error_response(
                id,
                RESOURCE_UNAVAILABLE,
                &format!("no provider accepted the transaction: {last_error}"),
            ),
            served_by: None,
            attempts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn already_known_becomes_the_hash() {
        let raw = r#"{"jsonrpc":"2.0","id":9,"method":"eth_sendRawTransaction","params":["0x01"]}"#;
        let req = Request {
            raw: Bytes::from(raw),
            method: "eth_sendRawTransaction".into(),
            id: Some(Bytes::from_static(b"9")),
        };
        // keccak256(0x01)
        let expected = "0x5fe7f977e71dba2ea1a68e21057beebb9be2ac30c6410aa38d4f3fbe41dcffd2";
        assert_eq!(tx_hash(&req).as_deref(), Some(expected));
        let known =
            Bytes::from_static(br#"{"jsonrpc":"2.0","id":9,"error":{"code":-32000,"message":"already known"}}"#);
        let v: serde_json::Value = serde_json::from_slice(&normalize_send(&req, known)).unwrap();
        assert_eq!(v["result"], expected);
        assert_eq!(v["id"], 9);
        let other =
            Bytes::from_static(br#"{"jsonrpc":"2.0","id":9,"error":{"code":-32000,"message":"nonce too low"}}"#);
        assert_eq!(normalize_send(&req, other.clone()), other);
    }
}
