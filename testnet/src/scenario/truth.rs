//! Judging answers against the chain's truth: the simulated chain's own functions, or a direct
//! query to anvil. A wrong answer is detected, never assumed.

use std::time::Duration;

use rpcmesh_node::upstream::{HttpClient, rpc_call};
use serde_json::{Value, json};

use crate::record::Outcome;
use crate::sim::SimChain;

/// Blocks a correct `eth_blockNumber` may trail the chain (a provider within the router's lag
/// allowance is correct enough; more is a stale answer).
pub const HEAD_TOLERANCE: u64 = 5;

/// Where the truth comes from.
#[derive(Clone)]
pub enum Truth {
    /// A simulated chain.
    Sim(SimChain),
    /// A real node, asked directly.
    Direct(Box<Direct>),
}

/// A real node asked for the truth.
#[derive(Clone)]
pub struct Direct {
    /// Its JSON-RPC URL.
    pub url: hyper::Uri,
    /// Client.
    pub client: HttpClient,
    /// Chain id.
    pub chain_id: u64,
}

fn quantity(v: &Value) -> Option<u128> {
    u128::from_str_radix(v.as_str()?.strip_prefix("0x")?, 16).ok()
}

/// Two answers to one state read agree: equal quantities, or equal data whatever the case.
fn same_state(a: &Value, b: &Value) -> bool {
    match (quantity(a), quantity(b)) {
        (Some(x), Some(y)) => x == y,
        _ => match (a.as_str(), b.as_str()) {
            (Some(x), Some(y)) => x.eq_ignore_ascii_case(y),
            _ => a == b,
        },
    }
}

impl Truth {
    async fn direct(&self, method: &str, params: &Value) -> Option<Value> {
        self.ask(method, params.clone()).await.ok()
    }

    /// Asks the real node directly (not through the mesh); the simulated chain answers nothing.
    pub async fn ask(&self, method: &str, params: Value) -> Result<Value, String> {
        match self {
            Truth::Direct(d) => rpc_call(&d.client, &d.url, method, params, Duration::from_secs(5))
                .await
                .map_err(|e| format!("{method} on the chain's node: {e}")),
            Truth::Sim(_) => Err(format!("{method}: the simulated chain is not a node to ask")),
        }
    }

    /// Judges an account read (`method(address, block)`) against the real node. A read at
    /// `latest` was answered at some head between `head_before` (less the lag a correct provider
    /// may have) and now; the account may change in between (transactions the load sends), so it
    /// is correct if it matches the account at any of those blocks.
    async fn judge_account_read(
        &self,
        method: &str,
        params: &Value,
        result: &Value,
        head_before: u64,
    ) -> (Outcome, Option<String>) {
        let Some(want) = self.direct(method, params).await else { return (Outcome::Ok, None) };
        if same_state(result, &want) {
            return (Outcome::Ok, None);
        }
        let at_head = matches!(params.get(1).and_then(Value::as_str), None | Some("latest" | "pending"));
        if at_head {
            let after = self.head().await.unwrap_or(head_before);
            for n in (head_before.saturating_sub(HEAD_TOLERANCE)..=after).rev() {
                let mut at = params.clone();
                if let Some(block) = at.get_mut(1) {
                    *block = Value::String(format!("0x{n:x}"));
                }
                if self.direct(method, &at).await.is_some_and(|v| same_state(result, &v)) {
                    return (Outcome::Ok, None);
                }
            }
        }
        let what = match method {
            "eth_getBalance" => "balance",
            "eth_getTransactionCount" => "nonce",
            _ => "code",
        };
        (Outcome::Wrong, Some(format!("{what} {result}, truth {want}")))
    }

    /// The current head, for choosing request parameters.
    pub async fn head(&self) -> Option<u64> {
        match self {
            Truth::Sim(c) => Some(c.head_now()),
            Truth::Direct(_) => {
                self.direct("eth_blockNumber", &json!([])).await.and_then(|v| quantity(&v)).map(|h| h as u64)
            }
        }
    }

    /// Judges `result` (the `result` member of a successful answer) of `method(params)` asked
    /// between `head_before` and now.
    pub async fn judge(
        &self,
        method: &str,
        params: &Value,
        result: &Value,
        head_before: u64,
    ) -> (Outcome, Option<String>) {
        let wrong = |why: String| (Outcome::Wrong, Some(why));
        match method {
            "eth_chainId" => {
                let want = match self {
                    Truth::Sim(c) => c.chain_id,
                    Truth::Direct(d) => d.chain_id,
                };
                if quantity(result) == Some(u128::from(want)) {
                    (Outcome::Ok, None)
                } else {
                    wrong(format!("chain id {result}, truth {want}"))
                }
            }
            "eth_blockNumber" => {
                let Some(n) = quantity(result) else { return wrong(format!("not a quantity: {result}")) };
                let after = self.head().await.unwrap_or(head_before);
                let lo = u128::from(head_before.saturating_sub(HEAD_TOLERANCE));
                let hi = u128::from(after) + 1;
                if n < lo || n > hi {
                    wrong(format!("head {n}, truth between {head_before} and {after}"))
                } else {
                    (Outcome::Ok, None)
                }
            }
            "eth_getBalance" | "eth_getTransactionCount" | "eth_getCode" if matches!(self, Truth::Direct(_)) => {
                self.judge_account_read(method, params, result, head_before).await
            }
            "eth_getTransactionCount" => {
                let Truth::Sim(c) = self else { return (Outcome::Ok, None) };
                let addr = params.get(0).and_then(Value::as_str).unwrap_or_default();
                let mut a = [0u8; 20];
                if hex::decode_to_slice(addr.trim_start_matches("0x"), &mut a).is_err() {
                    return (Outcome::Error, Some("bad address in the request".into()));
                }
                let want = c.transaction_count(&a);
                match quantity(result) {
                    Some(got) if got == u128::from(want) => (Outcome::Ok, None),
                    got => wrong(format!("nonce {got:?}, truth {want}")),
                }
            }
            "eth_getBalance" => {
                let want = match self {
                    Truth::Sim(c) => {
                        let addr = params.get(0).and_then(Value::as_str).unwrap_or_default();
                        let mut a = [0u8; 20];
                        if hex::decode_to_slice(addr.trim_start_matches("0x"), &mut a).is_err() {
                            return (Outcome::Error, Some("bad address in the request".into()));
                        }
                        Some(c.balance(&a))
                    }
                    Truth::Direct(_) => self.direct(method, params).await.and_then(|v| quantity(&v)),
                };
                match (quantity(result), want) {
                    (Some(got), Some(want)) if got == want => (Outcome::Ok, None),
                    (got, want) => wrong(format!("balance {got:?}, truth {want:?}")),
                }
            }
            "eth_getBlockByNumber" => {
                let got = result.get("hash").and_then(Value::as_str).unwrap_or_default().to_string();
                let want = match self {
                    Truth::Sim(c) => {
                        let n = params.get(0).and_then(quantity).unwrap_or(0) as u64;
                        Some(format!("0x{}", hex::encode(c.block_hash(n))))
                    }
                    Truth::Direct(_) => self
                        .direct(method, params)
                        .await
                        .and_then(|v| v.get("hash").and_then(Value::as_str).map(str::to_string)),
                };
                match want {
                    Some(w) if w == got => (Outcome::Ok, None),
                    Some(w) => wrong(format!("block hash {got}, truth {w}")),
                    None => (Outcome::Ok, None),
                }
            }
            "eth_getLogs" => {
                let want = match self {
                    Truth::Sim(c) => {
                        let f = params.get(0).cloned().unwrap_or_default();
                        let from = f.get("fromBlock").and_then(quantity).unwrap_or(0) as u64;
                        let to = f.get("toBlock").and_then(quantity).unwrap_or(0) as u64;
                        Some(Value::Array(c.logs(from, to)))
                    }
                    Truth::Direct(_) => self.direct(method, params).await,
                };
                match want {
                    Some(w) if &w == result => (Outcome::Ok, None),
                    Some(w) => wrong(format!(
                        "{} logs, truth {} (or different content)",
                        result.as_array().map_or(0, Vec::len),
                        w.as_array().map_or(0, Vec::len)
                    )),
                    None => (Outcome::Ok, None),
                }
            }
            _ => (Outcome::Ok, None),
        }
    }
}
