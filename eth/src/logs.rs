//! Logs: `eth_getLogs` filters, bloom pre-checks, and the altered/omitted check of an answer
//! against a block's verified receipts.
//!
//! ## Flow for one `eth_getLogs` answer
//! 1. [`parse_log_filter`] the request's filter and [`parse_logs`] the answer;
//!    [`group_logs_by_block`] splits it per block hash.
//! 2. For every block of the range (or the `blockHash` block): verify its header; if the header's
//!    bloom may match ([`bloom_may_match`]) or the answer has logs for it, verify its receipts
//!    ([`crate::verify_block_receipts`]) and call [`verify_block_logs`] with that block's logs
//!    (possibly none). Blocks whose bloom cannot match and that the answer has no logs for are
//!    done: the bloom is a superset of what their receipts can match.
//!
//! ## Matching rules
//! Addresses: any of the list (empty: any). Topics: position `i` is a wildcard when `null` or
//! `[]` (or an OR-array containing `null`), else the log's topic `i` must be one of the list.
//! Clients differ on a log with *fewer* topics than the filter has positions when the extra
//! positions are wildcards: geth does not return it, alloy-based nodes (reth, anvil) do. So a
//! returned log is accepted when it matches under the lenient rule ([`log_matches`]), and a
//! missing log is an omission only when it matches under the strict rule too.

use alloy_primitives::{Address, B256, Bloom, BloomInput, Bytes, Log};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::EthError;
use crate::json::{self, field, parse_result};
use crate::receipts::{RpcLog, VerifiedLog, VerifiedReceipts};

/// Most topic positions a filter can have (LOG0..LOG4).
pub const MAX_TOPIC_POSITIONS: usize = 4;

/// A `fromBlock` / `toBlock` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockSpec {
    /// A block number.
    Number(u64),
    /// `earliest`.
    Earliest,
    /// `latest`.
    Latest,
    /// `safe`.
    Safe,
    /// `finalized`.
    Finalized,
    /// `pending`.
    Pending,
}

/// Which blocks a filter covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterBlocks {
    /// `fromBlock` / `toBlock` (absent: `latest`, resolved by the node).
    Range {
        /// `fromBlock`.
        from: Option<BlockSpec>,
        /// `toBlock`.
        to: Option<BlockSpec>,
    },
    /// `blockHash` (EIP-234).
    Hash(B256),
}

/// An `eth_getLogs` filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogFilter {
    /// Emitting contracts; empty matches any.
    pub addresses: Vec<Address>,
    /// Topic positions (at most 4): `None` is a wildcard, `Some(list)` an OR of topics.
    pub topics: Vec<Option<Vec<B256>>>,
    /// The blocks covered.
    pub blocks: FilterBlocks,
}

impl LogFilter {
    /// Whether the filter covers block `number`/`hash`: `Some(answer)` when it can be told from
    /// the filter alone, `None` when a tag (`latest` ...) must first be resolved by the caller.
    pub fn covers_block(&self, number: u64, hash: B256) -> Option<bool> {
        match self.blocks {
            FilterBlocks::Hash(h) => Some(h == hash),
            FilterBlocks::Range { from, to } => {
                let lower = match from {
                    Some(BlockSpec::Number(n)) => n <= number,
                    Some(BlockSpec::Earliest) => true,
                    _ => return None,
                };
                let upper = match to {
                    Some(BlockSpec::Number(n)) => number <= n,
                    Some(BlockSpec::Earliest) => number == 0,
                    _ => return None,
                };
                Some(lower && upper)
            }
        }
    }
}

fn block_spec(name: &str, s: &str) -> Result<BlockSpec, EthError> {
    Ok(match s {
        "earliest" => BlockSpec::Earliest,
        "latest" => BlockSpec::Latest,
        "safe" => BlockSpec::Safe,
        "finalized" => BlockSpec::Finalized,
        "pending" => BlockSpec::Pending,
        n => BlockSpec::Number(field(name, json::quantity_u64(n))?),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RpcFilter<'a> {
    #[serde(borrow)]
    from_block: Option<&'a str>,
    #[serde(borrow)]
    to_block: Option<&'a str>,
    #[serde(borrow)]
    block_hash: Option<&'a str>,
    #[serde(borrow)]
    address: Option<&'a RawValue>,
    #[serde(borrow)]
    topics: Option<Vec<Option<&'a RawValue>>>,
}

fn one_or_many<'a>(name: &str, raw: &'a RawValue) -> Result<Vec<Option<&'a str>>, EthError> {
    let text = raw.get();
    let bad = |e: serde_json::Error| EthError::malformed(format!("`{name}`: {e}"));
    if text.starts_with('[') {
        serde_json::from_str::<Vec<Option<&str>>>(text).map_err(bad)
    } else {
        Ok(vec![serde_json::from_str::<Option<&str>>(text).map_err(bad)?])
    }
}

/// Parses an `eth_getLogs` filter object (the first element of the request's `params`).
/// Unknown members are rejected: the verifier must not ignore a restriction the node applied.
pub fn parse_log_filter(json: &[u8]) -> Result<LogFilter, EthError> {
    let raw: RpcFilter<'_> = serde_json::from_slice(json).map_err(|e| EthError::malformed(format!("filter: {e}")))?;
    let blocks = match (raw.block_hash, raw.from_block, raw.to_block) {
        (Some(h), None, None) => FilterBlocks::Hash(field("blockHash", json::fixed::<32>(h).map(B256::new))?),
        (Some(_), _, _) => return Err(EthError::malformed("filter has both `blockHash` and a block range")),
        (None, from, to) => FilterBlocks::Range {
            from: from.map(|s| block_spec("fromBlock", s)).transpose()?,
            to: to.map(|s| block_spec("toBlock", s)).transpose()?,
        },
    };
    let addresses = match raw.address {
        None => Vec::new(),
        Some(a) => one_or_many("address", a)?
            .into_iter()
            .flatten()
            .map(|s| field("address", json::fixed::<20>(s).map(Address::new)))
            .collect::<Result<_, _>>()?,
    };
    let positions = raw.topics.unwrap_or_default();
    if positions.len() > MAX_TOPIC_POSITIONS {
        return Err(EthError::malformed(format!("filter has {} topic positions (at most 4)", positions.len())));
    }
    let mut topics = Vec::with_capacity(positions.len());
    for position in positions {
        let Some(raw) = position else {
            topics.push(None);
            continue;
        };
        let alternatives = one_or_many("topics", raw)?;
        if alternatives.is_empty() || alternatives.iter().any(Option::is_none) {
            topics.push(None); // `[]` or an OR containing null: any topic
            continue;
        }
        let set = alternatives
            .into_iter()
            .flatten()
            .map(|s| field("topics", json::fixed::<32>(s).map(B256::new)))
            .collect::<Result<Vec<_>, _>>()?;
        topics.push(Some(set));
    }
    Ok(LogFilter { addresses, topics, blocks })
}

/// Whether a block whose `logsBloom` is `bloom` may contain a log matching `filter`. `false` is
/// certain (no such log); `true` may be a false positive.
pub fn bloom_may_match(bloom: &Bloom, filter: &LogFilter) -> bool {
    let address_ok = filter.addresses.is_empty()
        || filter.addresses.iter().any(|a| bloom.contains_input(BloomInput::Raw(a.as_slice())));
    address_ok
        && filter
            .topics
            .iter()
            .flatten()
            .all(|set| set.iter().any(|t| bloom.contains_input(BloomInput::Raw(t.as_slice()))))
}

fn matches(address: &Address, topics: &[B256], filter: &LogFilter, strict: bool) -> bool {
    if !filter.addresses.is_empty() && !filter.addresses.contains(address) {
        return false;
    }
    if strict && filter.topics.len() > topics.len() {
        return false;
    }
    filter.topics.iter().enumerate().all(|(i, position)| match position {
        None => true,
        Some(set) => topics.get(i).is_some_and(|t| set.contains(t)),
    })
}

/// Whether a node may return `log` for `filter` (lenient rule, see the module docs).
pub fn log_matches(log: &Log, filter: &LogFilter) -> bool {
    matches(&log.address, log.topics(), filter, false)
}

/// Whether every client returns `log` for `filter` (strict rule, see the module docs).
pub fn log_must_match(log: &Log, filter: &LogFilter) -> bool {
    matches(&log.address, log.topics(), filter, true)
}

/// A log as an `eth_getLogs` answer claims it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClaimedLog {
    /// The emitting contract.
    pub address: Address,
    /// The topics.
    pub topics: Vec<B256>,
    /// The data.
    pub data: Bytes,
    /// `blockHash`.
    pub block_hash: B256,
    /// `blockNumber`.
    pub block_number: u64,
    /// `blockTimestamp`, when the node sends it.
    pub block_timestamp: Option<u64>,
    /// `transactionHash`.
    pub transaction_hash: B256,
    /// `transactionIndex`.
    pub transaction_index: u64,
    /// `logIndex`.
    pub log_index: u64,
    /// `removed` (reorged out).
    pub removed: bool,
}

/// Parses an `eth_getLogs` answer strictly. Every log must carry its block and transaction
/// placement (pending logs cannot be verified).
pub fn parse_logs(result: &[u8]) -> Result<Vec<ClaimedLog>, EthError> {
    let raw: Vec<RpcLog<'_>> = parse_result("logs", result)?;
    raw.iter()
        .map(|r| {
            let p = r.parse()?;
            let need = |name: &str| EthError::malformed(format!("a log lacks `{name}`"));
            Ok(ClaimedLog {
                address: p.log.address,
                topics: p.log.topics().to_vec(),
                data: p.log.data.data.clone(),
                block_hash: p.block_hash.ok_or_else(|| need("blockHash"))?,
                block_number: p.block_number.ok_or_else(|| need("blockNumber"))?,
                block_timestamp: p.block_timestamp,
                transaction_hash: p.transaction_hash.ok_or_else(|| need("transactionHash"))?,
                transaction_index: p.transaction_index.ok_or_else(|| need("transactionIndex"))?,
                log_index: p.log_index.ok_or_else(|| need("logIndex"))?,
                removed: p.removed,
            })
        })
        .collect()
}

/// Splits an answer's logs per block hash, blocks in order of first appearance.
pub fn group_logs_by_block(logs: &[ClaimedLog]) -> Vec<(B256, Vec<ClaimedLog>)> {
    let mut groups: Vec<(B256, Vec<ClaimedLog>)> = Vec::new();
    for log in logs {
        match groups.iter_mut().find(|(h, _)| *h == log.block_hash) {
            Some((_, group)) => group.push(log.clone()),
            None => groups.push((log.block_hash, vec![log.clone()])),
        }
    }
    groups
}

/// Checks one block's share of an `eth_getLogs` answer against the block's verified receipts:
/// (a) every returned log is exactly a log of the receipts (address, topics, data, `logIndex`,
/// `transactionHash`, `transactionIndex`, `blockHash`, `blockNumber`, `removed: false`), in
/// ascending `logIndex` order and matching the filter; (b) no log of the receipts that matches
/// the filter is missing. Pass an empty `logs` to check a block the answer has nothing for.
/// Logs of a block the filter does not cover are [`EthError::LogNotRequested`].
///
/// `transactionHash` is compared with the receipts' own; it is bound to the block's transactions
/// only when the receipts were ([`crate::verify_block_receipts_with_transactions`]).
pub fn verify_block_logs(
    logs: &[ClaimedLog],
    filter: &LogFilter,
    receipts: &VerifiedReceipts,
) -> Result<Vec<VerifiedLog>, EthError> {
    let block_hash = receipts.block_hash();
    if filter.covers_block(receipts.block_number(), block_hash) == Some(false) {
        // Nothing of this block was asked for: any log of it is unrequested, none is omitted.
        return match logs.first() {
            Some(first) => Err(EthError::LogNotRequested { log_index: first.log_index }),
            None => Ok(Vec::new()),
        };
    }
    let block_logs: Vec<&VerifiedLog> = receipts.logs().collect();
    let mut verified = Vec::with_capacity(logs.len());
    let mut previous: Option<u64> = None;
    for claimed in logs {
        let log_index = claimed.log_index;
        let altered = |field: &'static str| EthError::LogAltered { log_index, field };
        if previous.is_some_and(|p| log_index <= p) {
            return Err(altered("logIndex"));
        }
        previous = Some(log_index);
        let real = usize::try_from(log_index)
            .ok()
            .and_then(|i| block_logs.get(i))
            .ok_or(EthError::LogFabricated { log_index })?;
        let checks: [(&'static str, bool); 9] = [
            ("blockHash", claimed.block_hash == block_hash),
            ("blockNumber", claimed.block_number == receipts.block_number()),
            ("blockTimestamp", claimed.block_timestamp.is_none_or(|t| t == receipts.block_timestamp())),
            ("address", claimed.address == real.address),
            ("topics", claimed.topics == real.topics),
            ("data", claimed.data == real.data),
            ("transactionHash", claimed.transaction_hash == real.transaction_hash),
            ("transactionIndex", claimed.transaction_index == real.transaction_index),
            ("removed", !claimed.removed),
        ];
        if let Some((name, _)) = checks.iter().find(|(_, ok)| !ok) {
            return Err(altered(name));
        }
        if !matches(&real.address, &real.topics, filter, false) {
            return Err(EthError::LogNotRequested { log_index });
        }
        verified.push((*real).clone());
    }
    // `logs` is strictly ascending by `logIndex` (checked above): binary search for omissions.
    for real in block_logs {
        if matches(&real.address, &real.topics, filter, true)
            && logs.binary_search_by_key(&real.log_index, |l| l.log_index).is_err()
        {
            return Err(EthError::LogOmitted { block_hash, log_index: real.log_index });
        }
    }
    Ok(verified)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{LogData, address, b256};

    const T0: B256 = b256!("3c51a0b156ab6d36837fcd4ce7a94cd3c49a80376baffc5d9c0ddb2bf25f0bc8");
    const T1: B256 = b256!("0000000000000000000000003c44cdddb6a900fa2b585dd299e03d12fa4293bc");
    const A: Address = address!("5fbdb2315678afecb367f032d93f642f64180aa3");

    fn log(address: Address, topics: &[B256]) -> Log {
        Log { address, data: LogData::new_unchecked(topics.to_vec(), Bytes::new()) }
    }

    #[test]
    fn filter_parsing() {
        let f = parse_log_filter(
            br#"{"fromBlock":"0x1","toBlock":"latest","address":["0x5fbdb2315678afecb367f032d93f642f64180aa3"],
                "topics":[null,["0x3c51a0b156ab6d36837fcd4ce7a94cd3c49a80376baffc5d9c0ddb2bf25f0bc8"],[],["0x3c51a0b156ab6d36837fcd4ce7a94cd3c49a80376baffc5d9c0ddb2bf25f0bc8",null]]}"#,
        )
        .unwrap();
        assert_eq!(f.addresses, vec![A]);
        assert_eq!(f.topics, vec![None, Some(vec![T0]), None, None]);
        assert_eq!(f.blocks, FilterBlocks::Range { from: Some(BlockSpec::Number(1)), to: Some(BlockSpec::Latest) });
        assert_eq!(f.covers_block(5, B256::ZERO), None);

        let single = parse_log_filter(br#"{"address":"0x5fbdb2315678afecb367f032d93f642f64180aa3","topics":["0x3c51a0b156ab6d36837fcd4ce7a94cd3c49a80376baffc5d9c0ddb2bf25f0bc8"]}"#).unwrap();
        assert_eq!(single.addresses, vec![A]);
        assert_eq!(single.topics, vec![Some(vec![T0])]);

        for bad in [
            &br#"{"topics":[null,null,null,null,null]}"#[..],
            br#"{"blockHash":"0x3c51a0b156ab6d36837fcd4ce7a94cd3c49a80376baffc5d9c0ddb2bf25f0bc8","fromBlock":"0x1"}"#,
            br#"{"fromBlock":"1"}"#,
            br#"{"address":"0x5fbd"}"#,
            br#"{"topic":[]}"#,
        ] {
            assert_eq!(parse_log_filter(bad).unwrap_err().kind(), "malformed", "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn matching_rules() {
        let f = |topics: Vec<Option<Vec<B256>>>, addresses: Vec<Address>| LogFilter {
            addresses,
            topics,
            blocks: FilterBlocks::Range { from: None, to: None },
        };
        let l = log(A, &[T0, T1]);
        assert!(log_matches(&l, &f(vec![], vec![])));
        assert!(log_matches(&l, &f(vec![Some(vec![T0])], vec![A])));
        assert!(log_matches(&l, &f(vec![None, Some(vec![T0, T1])], vec![])));
        assert!(!log_matches(&l, &f(vec![Some(vec![T1])], vec![])));
        assert!(!log_matches(&l, &f(vec![], vec![Address::ZERO])));
        // Fewer topics than wildcard positions: lenient yes, strict no.
        let short = log(A, &[T0]);
        let trailing = f(vec![Some(vec![T0]), None], vec![]);
        assert!(log_matches(&short, &trailing));
        assert!(!log_must_match(&short, &trailing));
        assert!(!log_matches(&short, &f(vec![None, Some(vec![T1])], vec![])));
    }

    #[test]
    fn bloom_check() {
        let l = log(A, &[T0, T1]);
        let bloom = alloy_primitives::logs_bloom([&l]);
        let f = |topics: Vec<Option<Vec<B256>>>, addresses: Vec<Address>| LogFilter {
            addresses,
            topics,
            blocks: FilterBlocks::Range { from: None, to: None },
        };
        assert!(bloom_may_match(&bloom, &f(vec![None, Some(vec![T1])], vec![A])));
        assert!(bloom_may_match(&bloom, &f(vec![], vec![])));
        assert!(!bloom_may_match(&bloom, &f(vec![], vec![Address::repeat_byte(7)])));
        assert!(!bloom_may_match(&Bloom::ZERO, &f(vec![Some(vec![T0])], vec![])));
        assert!(bloom_may_match(&Bloom::ZERO, &f(vec![None], vec![])));
    }
}
