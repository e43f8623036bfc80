//! The JSON-RPC engine: parses one HTTP body or WebSocket message (single call or batch), answers
//! every call from a [`View`] of the chain, and renders the response text.
//!
//! Pure and synchronous: no I/O, no clock (the caller builds the view), so the transports decide
//! about faults that concern time and connections, and this module only about content. Ids are
//! echoed byte for byte (`RawValue`); calls without an `id` are notifications and get no answer.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::chain::{
    Address, FINALIZED_DEPTH, GAS_LIMIT, Hash32, LogFilter, PRIORITY_FEE_WEI, SAFE_DEPTH, TRANSFER_GAS, View, hex0x,
    qty, qty128, transaction_hash,
};
use super::pool::SimTxPool;
use crate::transport::{Call, IdOnly};

/// Most calls in one batch (geth's default limit); larger batches get one `-32600` error.
pub const MAX_BATCH_CALLS: usize = 1000;

/// Widest `eth_getLogs` block range; wider ranges fail with `-32005`.
pub const MAX_LOG_BLOCK_RANGE: u64 = 10_000;

/// Most logs in one `eth_getLogs` answer; more fail with `-32005`, like hosted providers do.
pub const MAX_LOGS_PER_QUERY: usize = 10_000;

/// Most addresses, and most alternatives per topic position, in one log filter (geth's limit).
const MAX_FILTER_ALTERNATIVES: usize = 1000;

/// Most blocks in one `eth_feeHistory` answer (geth's limit).
const MAX_FEE_HISTORY_BLOCKS: u64 = 1024;

/// Most `newHeads` subscriptions on one WebSocket connection.
pub const MAX_SUBSCRIPTIONS_PER_CONNECTION: usize = 64;

/// Calldata starting with this 4-byte selector makes `eth_call` and `eth_estimateGas` revert
/// (error code 3, "execution reverted"), for tests of caller-error handling.
pub const REVERT_SELECTOR: [u8; 4] = [0xde, 0xad, 0xbe, 0xef];

/// `net_peerCount` of every simulated node.
const PEER_COUNT: u64 = 25;

/// A JSON-RPC error object.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct RpcError {
    pub code: i64,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl RpcError {
    fn new(code: i64, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), data: None }
    }

    fn parse_error() -> Self {
        Self::new(-32700, "parse error")
    }

    fn invalid_request(why: &str) -> Self {
        Self::new(-32600, format!("invalid request: {why}"))
    }

    fn method_not_found(method: &str) -> Self {
        let shown: String = method.chars().take(64).collect();
        Self::new(-32601, format!("the method {shown} does not exist/is not available"))
    }

    fn invalid_params(why: impl std::fmt::Display) -> Self {
        Self::new(-32602, format!("invalid params: {why}"))
    }

    /// The error injected by `Fault::Errors`.
    pub fn internal() -> Self {
        Self::new(-32603, "internal error")
    }

    fn header_not_found() -> Self {
        Self::new(-32000, "header not found")
    }

    fn reverted() -> Self {
        // ABI encoding of Error(string) with the reason "rpcmesh-sim revert".
        let reason = b"rpcmesh-sim revert";
        let mut data = vec![0x08, 0xc3, 0x79, 0xa0];
        let mut word = [0u8; 32];
        word[31] = 0x20;
        data.extend_from_slice(&word);
        word[31] = reason.len() as u8;
        data.extend_from_slice(&word);
        let mut padded = [0u8; 32];
        padded[..reason.len()].copy_from_slice(reason);
        data.extend_from_slice(&padded);
        Self { code: 3, message: "execution reverted: rpcmesh-sim revert".into(), data: Some(hex0x(&data).into()) }
    }
}

/// Live `newHeads` subscriptions of one WebSocket connection.
#[derive(Debug, Default)]
pub(crate) struct Subscriptions {
    pub list: Vec<Subscription>,
}

/// One `newHeads` subscription.
#[derive(Debug)]
pub(crate) struct Subscription {
    /// The id given to the client, `0x` + 32 hex digits.
    pub id: String,
    /// Lowest block not yet notified.
    pub next_block: u64,
}

/// The result of handling one payload.
#[derive(Debug)]
pub(crate) struct Handled {
    /// Response text; `None` when every call was a notification.
    pub body: Option<String>,
    /// JSON-RPC calls processed (batch items count one each).
    pub calls: u64,
}

/// Everything one payload is answered from.
pub(crate) struct Engine<'a> {
    pub view: View<'a>,
    pub txpool: &'a SimTxPool,
    pub client_version: &'a str,
    /// Source of subscription ids.
    pub sub_counter: &'a AtomicU64,
    /// Answer every call with `-32603` (injected by `Fault::Errors`).
    pub inject_internal: bool,
}

/// Renders one response object.
pub(crate) fn render(id: &RawValue, result: Result<Value, RpcError>) -> String {
    #[derive(Serialize)]
    struct Success<'a> {
        jsonrpc: &'static str,
        id: &'a RawValue,
        result: &'a Value,
    }
    #[derive(Serialize)]
    struct Failure<'a> {
        jsonrpc: &'static str,
        id: &'a RawValue,
        error: &'a RpcError,
    }
    let text = match &result {
        Ok(result) => serde_json::to_string(&Success { jsonrpc: "2.0", id, result }),
        Err(error) => serde_json::to_string(&Failure { jsonrpc: "2.0", id, error }),
    };
    // Serializing strings, numbers and raw JSON cannot fail; keep a valid answer regardless.
    text.unwrap_or_else(|_| r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"internal error"}}"#.into())
}

fn single_error(error: RpcError) -> Handled {
    Handled { body: Some(render(RawValue::NULL, Err(error))), calls: 0 }
}

impl Engine<'_> {
    /// Handles one HTTP body or WebSocket message. `subs` is `Some` on WebSocket connections,
    /// where `eth_subscribe`/`eth_unsubscribe` work.
    pub fn handle(&self, payload: &[u8], mut subs: Option<&mut Subscriptions>) -> Handled {
        let Ok(text) = std::str::from_utf8(payload) else {
            return single_error(RpcError::parse_error());
        };
        if text.trim_start().starts_with('[') {
            let Ok(items) = serde_json::from_str::<Vec<&RawValue>>(text) else {
                return single_error(RpcError::parse_error());
            };
            if items.is_empty() {
                return single_error(RpcError::invalid_request("empty batch"));
            }
            if items.len() > MAX_BATCH_CALLS {
                return single_error(RpcError::invalid_request("batch too large"));
            }
            let mut out = String::from("[");
            for item in &items {
                if let Some(answer) = self.one(item, subs.as_deref_mut()) {
                    if out.len() > 1 {
                        out.push(',');
                    }
                    out.push_str(&answer);
                }
            }
            out.push(']');
            let body = (out.len() > 2).then_some(out);
            Handled { body, calls: items.len() as u64 }
        } else {
            let Ok(item) = serde_json::from_str::<&RawValue>(text) else {
                return single_error(RpcError::parse_error());
            };
            Handled { body: self.one(item, subs), calls: 1 }
        }
    }

    fn one(&self, item: &RawValue, subs: Option<&mut Subscriptions>) -> Option<String> {
        let Ok(req) = serde_json::from_str::<Call<'_>>(item.get()) else {
            // Echo the id if one can be found in the broken call, as JSON-RPC 2.0 asks.
            let id = serde_json::from_str::<IdOnly<'_>>(item.get()).ok().and_then(|r| r.id).unwrap_or(RawValue::NULL);
            return Some(render(id, Err(RpcError::invalid_request("not a JSON-RPC call object"))));
        };
        let result = if self.inject_internal { Err(RpcError::internal()) } else { self.call(&req, subs) };
        req.id.map(|id| render(id, result))
    }

    fn call(&self, req: &Call<'_>, subs: Option<&mut Subscriptions>) -> Result<Value, RpcError> {
        let p = Params::parse(req.params)?;
        let head = self.view.head;
        let chain = self.view.chain;
        match req.method.as_str() {
            "web3_clientVersion" => Ok(self.client_version.into()),
            "net_version" => Ok(chain.chain_id.to_string().into()),
            "net_listening" => Ok(true.into()),
            "net_peerCount" => Ok(qty(PEER_COUNT)),
            "eth_chainId" => Ok(qty(chain.chain_id)),
            "eth_blockNumber" => Ok(qty(head)),
            "eth_syncing" => Ok(false.into()),
            "eth_mining" => Ok(false.into()),
            "eth_accounts" => Ok(json!([])),
            "eth_gasPrice" => Ok(qty(chain.base_fee(head) + PRIORITY_FEE_WEI)),
            "eth_maxPriorityFeePerGas" => Ok(qty(PRIORITY_FEE_WEI)),
            "eth_feeHistory" => self.fee_history(&p),
            "eth_getBlockByNumber" => {
                let n = self.block_target(p.get(0))?;
                Ok(self.view.block(n, false).unwrap_or(Value::Null))
            }
            "eth_getBlockByHash" => {
                let hash = p.hash(0)?;
                Ok(self.view.block_number_of(&hash).and_then(|n| self.view.block(n, false)).unwrap_or(Value::Null))
            }
            "eth_getBlockTransactionCountByNumber" | "eth_getUncleCountByBlockNumber" => {
                let n = self.block_target(p.get(0))?;
                Ok(if n <= head { qty(0) } else { Value::Null })
            }
            "eth_getBlockTransactionCountByHash" | "eth_getUncleCountByBlockHash" => {
                let hash = p.hash(0)?;
                Ok(if self.view.block_number_of(&hash).is_some() { qty(0) } else { Value::Null })
            }
            "eth_getBalance" => {
                let address = p.address(0)?;
                self.state_block(p.get(1))?;
                Ok(qty128(self.view.balance(&address)))
            }
            "eth_getTransactionCount" => {
                let address = p.address(0)?;
                self.state_block(p.get(1))?;
                Ok(qty(chain.transaction_count(&address)))
            }
            "eth_getCode" => {
                let address = p.address(0)?;
                self.state_block(p.get(1))?;
                let is_contract = (0..super::chain::SIM_CONTRACTS).any(|i| chain.contract_address(i) == address);
                Ok(if is_contract { "0x6080604052348015600f57600080fd5b50" } else { "0x" }.into())
            }
            "eth_getStorageAt" => {
                p.address(0)?;
                p.str(1, "storage slot")?;
                self.state_block(p.get(2))?;
                Ok(hex0x(&[0u8; 32]).into())
            }
            "eth_call" => {
                let call = CallObject::parse(p.get(0))?;
                self.state_block(p.get(1))?;
                call.check_revert()?;
                Ok(match call.to {
                    Some(to) => hex0x(&chain.call_result(&to, &call.data)),
                    None => "0x".into(),
                }
                .into())
            }
            "eth_estimateGas" => {
                let call = CallObject::parse(p.get(0))?;
                self.state_block(p.get(1))?;
                call.check_revert()?;
                let calldata: u64 = call.data.iter().map(|b| if *b == 0 { 4 } else { 16 }).sum();
                let create = if call.to.is_none() { 32_000 } else { 0 };
                Ok(qty(TRANSFER_GAS + calldata + create))
            }
            "eth_getLogs" => self.get_logs(p.get(0)),
            "eth_sendRawTransaction" => self.send_raw_transaction(&p),
            "eth_getTransactionByHash" | "eth_getTransactionReceipt" => {
                p.hash(0)?;
                Ok(Value::Null)
            }
            "eth_subscribe" => match subs {
                Some(subs) => self.subscribe(subs, &p),
                None => Err(RpcError::new(-32601, "notifications not supported")),
            },
            "eth_unsubscribe" => match subs {
                Some(subs) => {
                    let id = p.str(0, "subscription id")?;
                    let before = subs.list.len();
                    subs.list.retain(|s| s.id != id);
                    if subs.list.len() < before {
                        Ok(true.into())
                    } else {
                        Err(RpcError::new(-32000, "subscription not found"))
                    }
                }
                None => Err(RpcError::new(-32601, "notifications not supported")),
            },
            other => Err(RpcError::method_not_found(other)),
        }
    }

    /// Resolves a block tag, number or EIP-1898 object (default `latest`); may be above the head.
    fn block_target(&self, v: Option<&Value>) -> Result<u64, RpcError> {
        let head = self.view.head;
        match v {
            None => Ok(head),
            Some(Value::String(s)) => match s.as_str() {
                "latest" | "pending" => Ok(head),
                "safe" => Ok(head.saturating_sub(SAFE_DEPTH)),
                "finalized" => Ok(head.saturating_sub(FINALIZED_DEPTH)),
                "earliest" => Ok(0),
                other => parse_quantity(other).ok_or_else(|| RpcError::invalid_params("bad block number or tag")),
            },
            Some(Value::Object(obj)) => {
                if let Some(hash) = obj.get("blockHash").filter(|v| !v.is_null()) {
                    let hash =
                        hash.as_str().and_then(parse_hash).ok_or_else(|| RpcError::invalid_params("bad blockHash"))?;
                    self.view.block_number_of(&hash).ok_or_else(|| RpcError::new(-32000, "header for hash not found"))
                } else {
                    self.block_target(obj.get("blockNumber").filter(|v| !v.is_null()))
                }
            }
            Some(_) => Err(RpcError::invalid_params("bad block parameter")),
        }
    }

    /// A block for state queries: must exist on this node.
    fn state_block(&self, v: Option<&Value>) -> Result<u64, RpcError> {
        let n = self.block_target(v)?;
        if n > self.view.head { Err(RpcError::header_not_found()) } else { Ok(n) }
    }

    fn fee_history(&self, p: &Params) -> Result<Value, RpcError> {
        let count = match p.get(0) {
            Some(Value::String(s)) => parse_quantity(s),
            Some(Value::Number(n)) => n.as_u64(),
            _ => None,
        }
        .ok_or_else(|| RpcError::invalid_params("bad blockCount"))?;
        let newest = self.block_target(p.get(1))?;
        if newest > self.view.head {
            return Err(RpcError::new(-32000, "request beyond head block"));
        }
        let percentiles = match p.get(2) {
            None => 0,
            Some(Value::Array(list)) if list.len() <= 100 && list.iter().all(Value::is_number) => list.len(),
            Some(_) => return Err(RpcError::invalid_params("bad rewardPercentiles")),
        };
        let count = count.min(MAX_FEE_HISTORY_BLOCKS).min(newest + 1);
        let chain = self.view.chain;
        let oldest = newest + 1 - count;
        let mut result = json!({
            "oldestBlock": qty(oldest),
            "baseFeePerGas": (oldest..=newest + 1).map(|n| qty(chain.base_fee(n))).collect::<Vec<_>>(),
            "gasUsedRatio": (oldest..=newest).map(|n| chain.gas_used(n) as f64 / GAS_LIMIT as f64).collect::<Vec<_>>(),
            "baseFeePerBlobGas": (oldest..=newest + 1).map(|_| qty(1)).collect::<Vec<_>>(),
            "blobGasUsedRatio": (oldest..=newest).map(|_| 0.0).collect::<Vec<_>>(),
        });
        if p.get(2).is_some()
            && let Some(obj) = result.as_object_mut()
        {
            let row = vec![qty(PRIORITY_FEE_WEI); percentiles];
            obj.insert("reward".into(), Value::Array((oldest..=newest).map(|_| Value::from(row.clone())).collect()));
        }
        Ok(result)
    }

    fn get_logs(&self, filter: Option<&Value>) -> Result<Value, RpcError> {
        let obj =
            filter.and_then(Value::as_object).ok_or_else(|| RpcError::invalid_params("filter object expected"))?;
        let present = |key: &str| obj.get(key).filter(|v| !v.is_null());
        let (from, to) = if let Some(hash) = present("blockHash") {
            if present("fromBlock").is_some() || present("toBlock").is_some() {
                return Err(RpcError::invalid_params("cannot specify both blockHash and fromBlock/toBlock"));
            }
            let hash = hash.as_str().and_then(parse_hash).ok_or_else(|| RpcError::invalid_params("bad blockHash"))?;
            let n = self.view.block_number_of(&hash).ok_or_else(|| RpcError::new(-32000, "unknown block"))?;
            (n, n)
        } else {
            (self.block_target(present("fromBlock"))?, self.block_target(present("toBlock"))?)
        };
        if from > to {
            return Err(RpcError::invalid_params("invalid block range params"));
        }
        let clamped_to = to.min(self.view.head);
        if from <= clamped_to && clamped_to - from >= MAX_LOG_BLOCK_RANGE {
            return Err(RpcError::new(-32005, format!("query exceeds max block range {MAX_LOG_BLOCK_RANGE}")));
        }
        let addresses = match present("address") {
            None => Vec::new(),
            Some(Value::String(s)) => vec![parse_address(s).ok_or_else(|| RpcError::invalid_params("bad address"))?],
            Some(Value::Array(list)) if list.len() <= MAX_FILTER_ALTERNATIVES => list
                .iter()
                .map(|v| v.as_str().and_then(parse_address).ok_or_else(|| RpcError::invalid_params("bad address")))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(RpcError::invalid_params("bad address filter")),
        };
        let topics = match present("topics") {
            None => Vec::new(),
            Some(Value::Array(positions)) if positions.len() <= 4 => {
                positions.iter().map(parse_topic_position).collect::<Result<_, _>>()?
            }
            Some(_) => return Err(RpcError::invalid_params("bad topics filter")),
        };
        let filter = LogFilter { from, to, addresses, topics };
        match self.view.logs(&filter, MAX_LOGS_PER_QUERY) {
            Ok(logs) => Ok(Value::Array(logs)),
            Err(_) => Err(RpcError::new(-32005, format!("query returned more than {MAX_LOGS_PER_QUERY} results"))),
        }
    }

    fn send_raw_transaction(&self, p: &Params) -> Result<Value, RpcError> {
        let raw = parse_data(p.str(0, "raw transaction")?).ok_or_else(|| RpcError::invalid_params("bad hex data"))?;
        if raw.is_empty() {
            return Err(RpcError::new(-32000, "typed transaction too short"));
        }
        if let Some(censored) = self.view.censor
            && raw.windows(censored.len()).any(|w| w == censored)
        {
            return Err(RpcError::new(-32003, "transaction rejected"));
        }
        let hash = transaction_hash(&raw);
        if !self.txpool.insert(hash) {
            return Err(RpcError::new(-32000, "already known"));
        }
        Ok(hex0x(&hash).into())
    }

    fn subscribe(&self, subs: &mut Subscriptions, p: &Params) -> Result<Value, RpcError> {
        match p.str(0, "subscription kind")? {
            "newHeads" => {
                if subs.list.len() >= MAX_SUBSCRIPTIONS_PER_CONNECTION {
                    return Err(RpcError::new(-32000, "too many subscriptions on this connection"));
                }
                let n = self.sub_counter.fetch_add(1, Ordering::Relaxed);
                let mut mix = super::fault::SplitMix64::new(n ^ self.view.chain.chain_id.rotate_left(32));
                let id = format!("0x{:016x}{:016x}", mix.next_u64(), mix.next_u64());
                subs.list.push(Subscription { id: id.clone(), next_block: self.view.head + 1 });
                Ok(id.into())
            }
            other => {
                let shown: String = other.chars().take(64).collect();
                Err(RpcError::invalid_params(format!("unsupported subscription kind {shown:?} (only newHeads)")))
            }
        }
    }
}

/// The `eth_subscription` notification carrying `header` for subscription `id`.
pub(crate) fn notification(id: &str, header: Value) -> String {
    json!({
        "jsonrpc": "2.0",
        "method": "eth_subscription",
        "params": { "subscription": id, "result": header },
    })
    .to_string()
}

/// Positional params (by-name params are not supported, as in geth).
struct Params(Vec<Value>);

impl Params {
    fn parse(raw: Option<&RawValue>) -> Result<Self, RpcError> {
        match raw.map(|r| serde_json::from_str::<Value>(r.get())) {
            None | Some(Ok(Value::Null)) => Ok(Self(Vec::new())),
            Some(Ok(Value::Array(list))) => Ok(Self(list)),
            Some(_) => Err(RpcError::invalid_params("params must be an array")),
        }
    }

    /// Param `i`, with `null` treated as absent.
    fn get(&self, i: usize) -> Option<&Value> {
        self.0.get(i).filter(|v| !v.is_null())
    }

    fn str(&self, i: usize, what: &str) -> Result<&str, RpcError> {
        self.get(i).and_then(Value::as_str).ok_or_else(|| RpcError::invalid_params(format!("missing {what}")))
    }

    fn address(&self, i: usize) -> Result<Address, RpcError> {
        parse_address(self.str(i, "address")?).ok_or_else(|| RpcError::invalid_params("bad address"))
    }

    fn hash(&self, i: usize) -> Result<Hash32, RpcError> {
        parse_hash(self.str(i, "hash")?).ok_or_else(|| RpcError::invalid_params("bad hash"))
    }
}

/// The parts of an `eth_call` / `eth_estimateGas` transaction object the simulator uses.
struct CallObject {
    to: Option<Address>,
    data: Vec<u8>,
}

impl CallObject {
    fn parse(v: Option<&Value>) -> Result<Self, RpcError> {
        let obj: &Map<String, Value> =
            v.and_then(Value::as_object).ok_or_else(|| RpcError::invalid_params("transaction object expected"))?;
        let field = |key: &str| obj.get(key).filter(|v| !v.is_null());
        let to = match field("to") {
            None => None,
            Some(v) => Some(v.as_str().and_then(parse_address).ok_or_else(|| RpcError::invalid_params("bad to"))?),
        };
        let data = match field("input").or_else(|| field("data")) {
            None => Vec::new(),
            Some(v) => v.as_str().and_then(parse_data).ok_or_else(|| RpcError::invalid_params("bad input data"))?,
        };
        Ok(Self { to, data })
    }

    fn check_revert(&self) -> Result<(), RpcError> {
        if self.data.starts_with(&REVERT_SELECTOR) { Err(RpcError::reverted()) } else { Ok(()) }
    }
}

fn strip_0x(s: &str) -> Option<&str> {
    s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))
}

/// `0x`-prefixed hex quantity fitting in a u64.
pub(crate) fn parse_quantity(s: &str) -> Option<u64> {
    let digits = strip_0x(s)?;
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// `0x`-prefixed hex bytes of even length.
pub(crate) fn parse_data(s: &str) -> Option<Vec<u8>> {
    hex::decode(strip_0x(s)?).ok()
}

fn parse_fixed<const N: usize>(s: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    hex::decode_to_slice(strip_0x(s)?, &mut out).ok()?;
    Some(out)
}

/// `0x` + 40 hex digits (any case).
pub(crate) fn parse_address(s: &str) -> Option<Address> {
    parse_fixed(s)
}

/// `0x` + 64 hex digits.
pub(crate) fn parse_hash(s: &str) -> Option<Hash32> {
    parse_fixed(s)
}

fn parse_topic_position(v: &Value) -> Result<Option<Vec<Hash32>>, RpcError> {
    let bad = || RpcError::invalid_params("bad topic");
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(vec![parse_hash(s).ok_or_else(bad)?])),
        Value::Array(list) if list.len() <= MAX_FILTER_ALTERNATIVES => list
            .iter()
            .filter(|t| !t.is_null())
            .map(|t| t.as_str().and_then(parse_hash).ok_or_else(bad))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::chain::SimChain;
    use super::*;

    const CHAIN: SimChain = SimChain::new(5, 0, 1000);

    fn answer(payload: &str) -> Value {
        let pool = SimTxPool::new();
        let counter = AtomicU64::new(0);
        let engine = Engine {
            view: View::truth(&CHAIN, 100),
            txpool: &pool,
            client_version: "test",
            sub_counter: &counter,
            inject_internal: false,
        };
        let body = engine.handle(payload.as_bytes(), None).body.unwrap_or_default();
        serde_json::from_str(&body).unwrap_or(Value::Null)
    }

    #[test]
    fn ids_are_echoed_exactly() {
        let pool = SimTxPool::new();
        let counter = AtomicU64::new(0);
        let engine = Engine {
            view: View::truth(&CHAIN, 100),
            txpool: &pool,
            client_version: "test",
            sub_counter: &counter,
            inject_internal: false,
        };
        let body = engine
            .handle(br#"{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"eth_chainId"}"#, None)
            .body
            .unwrap_or_default();
        assert_eq!(body, r#"{"jsonrpc":"2.0","id":123456789012345678901234567890,"result":"0x5"}"#);
        let body = engine.handle(br#"{"id":null,"method":"eth_chainId"}"#, None).body.unwrap_or_default();
        assert!(body.contains(r#""id":null"#));
        assert!(engine.handle(br#"{"method":"eth_chainId"}"#, None).body.is_none(), "notification");
    }

    #[test]
    fn errors_have_standard_codes() {
        assert_eq!(answer("{nope")["error"]["code"], -32700);
        assert_eq!(answer("[]")["error"]["code"], -32600);
        assert_eq!(answer(r#"{"id":1}"#)["error"]["code"], -32600);
        assert_eq!(answer(r#"{"id":1}"#)["id"], 1);
        assert_eq!(answer(r#"[{"id":"x","method":7}]"#)[0]["id"], "x");
        assert_eq!(answer(r#"{"id":1,"method":"nope"}"#)["error"]["code"], -32601);
        assert_eq!(answer(r#"{"id":1,"method":"eth_getBalance","params":["0x12"]}"#)["error"]["code"], -32602);
        assert_eq!(answer(r#"{"id":1,"method":"eth_getBalance","params":{"a":1}}"#)["error"]["code"], -32602);
        let far =
            r#"{"id":1,"method":"eth_getBalance","params":["0x0000000000000000000000000000000000000001","0x65"]}"#;
        assert_eq!(answer(far)["error"]["message"], "header not found");
        let revert = r#"{"id":1,"method":"eth_call","params":[{"to":"0x0000000000000000000000000000000000000001","data":"0xdeadbeef"}]}"#;
        assert_eq!(answer(revert)["error"]["code"], 3);
        let range = r#"{"id":1,"method":"eth_getLogs","params":[{"fromBlock":"0x0","toBlock":"0x2710"}]}"#;
        assert_eq!(answer(range)["error"]["code"], Value::Null, "clamped to head 100: fine");
    }

    #[test]
    fn parsers_reject_garbage() {
        assert_eq!(parse_quantity("0x10"), Some(16));
        assert_eq!(parse_quantity("10"), None);
        assert_eq!(parse_quantity("0x"), None);
        assert_eq!(parse_quantity("0x1ffffffffffffffff"), None);
        assert!(parse_address("0x00000000000000000000000000000000000000zz").is_none());
        assert!(parse_address("0x0000000000000000000000000000000000000001").is_some());
        assert!(parse_hash("0x01").is_none());
        assert_eq!(parse_data("0x0a0B"), Some(vec![10, 11]));
        assert!(parse_data("0xabc").is_none());
    }
}
