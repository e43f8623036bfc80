//! What an answer claims, read from its request: which method family, which block, which
//! account. Parsing only; no trust decisions.

use rpcmesh_eth::{Address, B256, LogFilter, StateValue, json, logs::parse_log_filter};
use serde::Deserialize;
use serde_json::value::RawValue;

/// A block as a request names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockSel {
    /// A number.
    Number(u64),
    /// A hash (EIP-1898 `{"blockHash": ..}` or `eth_getBlockByHash`).
    Hash(B256),
    /// `latest`, `safe`, `finalized` or an omitted block parameter: whatever the answering node
    /// calls its head. Pinned to the trusted head before forwarding in strict mode.
    Head,
    /// `pending`: state that is in no block, so nothing can prove it (never pinned: pinning a
    /// pending nonce to a past block would hand out a used nonce).
    Pending,
    /// `earliest` (block 0).
    Earliest,
}

/// What a verifiable request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// `eth_getBlockByNumber` / `eth_getBlockByHash`.
    Block {
        /// The block asked for.
        block: BlockSel,
    },
    /// `eth_getTransactionByHash`.
    Transaction {
        /// The hash asked for.
        hash: B256,
    },
    /// `eth_getTransactionReceipt`.
    Receipt {
        /// The transaction's hash.
        tx: B256,
    },
    /// `eth_getBlockReceipts`.
    BlockReceipts {
        /// The block asked for.
        block: BlockSel,
    },
    /// `eth_getLogs`.
    Logs {
        /// The filter (boxed: it holds address and topic lists).
        filter: Box<LogFilter>,
    },
    /// `eth_getBalance`, `eth_getTransactionCount`, `eth_getCode`, `eth_getStorageAt`.
    State {
        /// Which value.
        value: StateValue,
        /// The account.
        address: Address,
        /// The slot (`eth_getStorageAt`).
        slot: Option<B256>,
        /// The block.
        block: BlockSel,
    },
    /// `eth_call` / `eth_estimateGas`: no proof exists without executing; checked by asking
    /// other operators the same question pinned to the same block.
    Call {
        /// The block.
        block: BlockSel,
    },
    /// `eth_blockNumber`.
    Head,
    /// `eth_chainId`.
    ChainId,
}

/// Why a request could not be read as a claim (the node will judge such a request itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable(pub String);

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
}

/// The params of a request body as JSON text (`[]` when absent), to ask another operator the
/// same question.
pub fn params_text(body: &[u8]) -> Option<String> {
    let env: Envelope<'_> = serde_json::from_slice(body).ok()?;
    Some(env.params.map_or_else(|| "[]".to_string(), |p| p.get().to_string()))
}

/// The claim of a request, `Ok(None)` when the method is not verifiable.
pub fn claim_of(method: &str, body: &[u8]) -> Result<Option<Claim>, Unreadable> {
    let state = |value| Some(value);
    let value = match method {
        "eth_getBalance" => state(StateValue::Balance),
        "eth_getTransactionCount" => state(StateValue::Nonce),
        "eth_getCode" => state(StateValue::Code),
        "eth_getStorageAt" => state(StateValue::Storage),
        _ => None,
    };
    let verifiable = value.is_some()
        || matches!(
            method,
            "eth_getBlockByNumber"
                | "eth_getBlockByHash"
                | "eth_getTransactionByHash"
                | "eth_getTransactionReceipt"
                | "eth_getBlockReceipts"
                | "eth_getLogs"
                | "eth_blockNumber"
                | "eth_chainId"
                | "eth_call"
                | "eth_estimateGas"
        );
    if !verifiable {
        return Ok(None);
    }
    let env: Envelope<'_> = serde_json::from_slice(body).map_err(|e| Unreadable(e.to_string()))?;
    let params: Vec<&RawValue> = match env.params {
        Some(p) => serde_json::from_str(p.get()).map_err(|_| Unreadable("params is not an array".into()))?,
        None => Vec::new(),
    };
    let at = |i: usize| params.get(i).copied();
    let need = |i: usize| at(i).ok_or_else(|| Unreadable(format!("missing parameter {i}")));
    let claim = match method {
        "eth_getBlockByNumber" => Claim::Block { block: block_sel(Some(need(0)?))? },
        "eth_getBlockByHash" => Claim::Block { block: BlockSel::Hash(hash(need(0)?)?) },
        "eth_getTransactionByHash" => Claim::Transaction { hash: hash(need(0)?)? },
        "eth_getTransactionReceipt" => Claim::Receipt { tx: hash(need(0)?)? },
        "eth_getBlockReceipts" => Claim::BlockReceipts { block: block_sel(Some(need(0)?))? },
        "eth_getLogs" => {
            let filter = parse_log_filter(need(0)?.get().as_bytes()).map_err(|e| Unreadable(e.to_string()))?;
            Claim::Logs { filter: Box::new(filter) }
        }
        "eth_blockNumber" => Claim::Head,
        "eth_call" | "eth_estimateGas" => Claim::Call { block: block_sel(at(1))? },
        "eth_chainId" => Claim::ChainId,
        _ => {
            let Some(value) = value else { return Ok(None) };
            let address = address(need(0)?)?;
            let (slot, block_at) = if value == StateValue::Storage { (Some(slot(need(1)?)?), 2) } else { (None, 1) };
            Claim::State { value, address, slot, block: block_sel(at(block_at))? }
        }
    };
    Ok(Some(claim))
}

/// Index of the block parameter of a state read (the one pinned in strict mode).
pub fn block_param_index(method: &str) -> Option<usize> {
    match method {
        "eth_getBalance" | "eth_getTransactionCount" | "eth_getCode" | "eth_call" | "eth_estimateGas" => Some(1),
        "eth_getStorageAt" => Some(2),
        _ => None,
    }
}

fn string(v: &RawValue) -> Result<&str, Unreadable> {
    let s = v.get();
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .filter(|s| !s.contains('\\'))
        .ok_or_else(|| Unreadable(format!("{s} is not a plain string")))
}

fn hash(v: &RawValue) -> Result<B256, Unreadable> {
    json::parse_hash(string(v)?).map_err(|e| Unreadable(e.to_string()))
}

fn address(v: &RawValue) -> Result<Address, Unreadable> {
    json::parse_address(string(v)?).map_err(|e| Unreadable(e.to_string()))
}

fn slot(v: &RawValue) -> Result<B256, Unreadable> {
    // A slot is a QUANTITY in the spec, but clients also send 32-byte DATA: both name a number.
    let s = string(v)?;
    let n = json::parse_quantity(s)
        .or_else(|_| json::parse_hash(s).map(|h| h.into()))
        .map_err(|e| Unreadable(e.to_string()))?;
    Ok(B256::from(n))
}

/// Reads a block parameter: a tag, a number, or an EIP-1898 object.
pub fn block_sel(v: Option<&RawValue>) -> Result<BlockSel, Unreadable> {
    let Some(v) = v else { return Ok(BlockSel::Head) };
    if v.get().starts_with('{') {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Eip1898<'a> {
            block_hash: Option<&'a str>,
            block_number: Option<&'a str>,
        }
        let o: Eip1898<'_> = serde_json::from_str(v.get()).map_err(|e| Unreadable(e.to_string()))?;
        return match (o.block_hash, o.block_number) {
            (Some(h), None) => json::parse_hash(h).map(BlockSel::Hash).map_err(|e| Unreadable(e.to_string())),
            (None, Some(n)) => json::parse_quantity_u64(n).map(BlockSel::Number).map_err(|e| Unreadable(e.to_string())),
            _ => Err(Unreadable("a block object needs exactly one of blockHash, blockNumber".into())),
        };
    }
    if v.get() == "null" {
        return Ok(BlockSel::Head);
    }
    match string(v)? {
        "latest" | "safe" | "finalized" => Ok(BlockSel::Head),
        "pending" => Ok(BlockSel::Pending),
        "earliest" => Ok(BlockSel::Earliest),
        s => json::parse_quantity_u64(s).map(BlockSel::Number).map_err(|e| Unreadable(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(method: &str, params: &str) -> Option<Claim> {
        let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{params}}}"#);
        claim_of(method, body.as_bytes()).unwrap()
    }

    #[test]
    fn reads_each_family() {
        let a = "0x00000000000000000000000000000000000000aa";
        assert_eq!(
            claim("eth_getBalance", &format!(r#"["{a}","0x10"]"#)),
            Some(Claim::State {
                value: StateValue::Balance,
                address: a.parse().unwrap(),
                slot: None,
                block: BlockSel::Number(16)
            })
        );
        assert!(matches!(
            claim("eth_getStorageAt", &format!(r#"["{a}","0x1"]"#)),
            Some(Claim::State { value: StateValue::Storage, slot: Some(_), block: BlockSel::Head, .. })
        ));
        assert_eq!(claim("eth_getBlockByNumber", r#"["latest",false]"#), Some(Claim::Block { block: BlockSel::Head }));
        assert!(matches!(claim("eth_getLogs", r#"[{"fromBlock":"0x1","toBlock":"0x2"}]"#), Some(Claim::Logs { .. })));
        assert_eq!(claim("eth_call", r#"[{}, "latest"]"#), Some(Claim::Call { block: BlockSel::Head }));
        assert_eq!(claim("eth_estimateGas", r#"[{}]"#), Some(Claim::Call { block: BlockSel::Head }));
        assert!(matches!(
            claim("eth_getTransactionCount", r#"["0x00000000000000000000000000000000000000aa","pending"]"#),
            Some(Claim::State { block: BlockSel::Pending, .. })
        ));
        assert_eq!(claim("eth_gasPrice", "[]"), None);
        assert_eq!(claim("eth_blockNumber", "[]"), Some(Claim::Head));
    }

    #[test]
    fn unreadable_params_are_not_claims() {
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":[7]}"#;
        assert!(claim_of("eth_getBalance", body).is_err());
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":["0x00000000000000000000000000000000000000aa",{"blockHash":"0x1","blockNumber":"0x1"}]}"#;
        assert!(claim_of("eth_getBalance", body).is_err());
    }
}
