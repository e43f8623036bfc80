//! The deterministic chain every simulated backend serves.
//!
//! Every value a backend reports (head, blocks, hashes, logs, balances, nonces, call results) is a
//! pure function of [`SimChain`], the wall clock and the query, so all backends of one chain agree
//! the way synced real nodes do, with no coordination between them. [`SimChain`] is also the
//! "truth" tests and reports compare answers against.
//!
//! Hashes are SHA-256 based (the workspace has no keccak); the block number is folded into the last
//! 8 bytes of a block hash (XOR with its first 8 bytes) so `eth_getBlockByHash` is O(1) without an
//! index. Blocks carry no transaction bodies (`transactions: []`); each log stands for one token
//! transfer whose transaction body is not served.
//!
//! [`View`] is what one backend shows at one moment: the chain cut at its (possibly lagging) head,
//! optionally lying (altered hashes and balances) or censoring an address.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// A 20-byte account or contract address.
pub type Address = [u8; 20];

/// A 32-byte hash (block, transaction, topic).
pub type Hash32 = [u8; 32];

/// Block gas limit of every simulated block (30 M, mainnet-like).
pub const GAS_LIMIT: u64 = 30_000_000;

/// Gas of one plain transfer; simulated blocks use `TRANSFER_GAS` per log as `gasUsed`.
pub const TRANSFER_GAS: u64 = 21_000;

/// One ether in wei.
pub const WEI_PER_ETH: u128 = 1_000_000_000_000_000_000;

/// Priority fee (tip) in wei reported by `eth_maxPriorityFeePerGas` and added in `eth_gasPrice`: 1 gwei.
pub const PRIORITY_FEE_WEI: u64 = 1_000_000_000;

/// Number of token contracts emitting logs ([`SimChain::contract_address`]).
pub const SIM_CONTRACTS: usize = 4;

/// Number of accounts appearing as `from`/`to` in logs ([`SimChain::account_address`]).
pub const SIM_ACCOUNTS: usize = 16;

/// Fewest logs in a block.
pub const MIN_LOGS_PER_BLOCK: u64 = 2;

/// Most logs in a block (average is about 4, so a 100 KiB `eth_getLogs` answer spans ~40 blocks).
pub const MAX_LOGS_PER_BLOCK: u64 = 6;

/// Depth of the `safe` block tag below the head (one epoch, as on mainnet).
pub const SAFE_DEPTH: u64 = 32;

/// Depth of the `finalized` block tag below the head (two epochs).
pub const FINALIZED_DEPTH: u64 = 64;

/// Topic 0 of an ERC-20 `Transfer(address,address,uint256)` event (its real keccak hash).
pub const TRANSFER_TOPIC: Hash32 = [
    0xdd, 0xf2, 0x52, 0xad, 0x1b, 0xe2, 0xc8, 0x9b, 0x69, 0xc2, 0xb0, 0x68, 0xfc, 0x37, 0x8d, 0xaa, 0x95, 0x2b, 0xa7,
    0xf1, 0x63, 0xc4, 0xa1, 0x16, 0x28, 0xf5, 0x5a, 0x4d, 0xf5, 0x23, 0xb3, 0xef,
];

/// Root of an empty Merkle-Patricia trie (transactions, receipts, withdrawals of an empty block).
const EMPTY_TRIE_ROOT: &str = "0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421";

/// Hash of an empty uncle list.
const EMPTY_UNCLES_HASH: &str = "0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347";

/// Nominal `size` of a simulated block in bytes.
const BLOCK_SIZE_BYTES: u64 = 583;

/// Current wall-clock time in unix milliseconds (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Hash of a raw signed transaction as the simulator reports it from `eth_sendRawTransaction`
/// (SHA-256 standing in for keccak).
pub fn transaction_hash(raw: &[u8]) -> Hash32 {
    digest(&[raw])
}

/// `0x`-prefixed lowercase hex of `bytes`.
pub(crate) fn hex0x(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

/// JSON-RPC quantity: `0x`-prefixed hex without leading zeros.
pub(crate) fn qty(v: u64) -> Value {
    Value::String(format!("{v:#x}"))
}

/// JSON-RPC quantity of a 128-bit value.
pub(crate) fn qty128(v: u128) -> Value {
    Value::String(format!("{v:#x}"))
}

fn digest(parts: &[&[u8]]) -> Hash32 {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    if let Some(src) = bytes.get(at..at + 8) {
        word.copy_from_slice(src);
    }
    u64::from_be_bytes(word)
}

fn last20(h: &Hash32) -> Address {
    let mut a = [0u8; 20];
    a.copy_from_slice(&h[12..]);
    a
}

fn pad_address(a: &Address) -> Hash32 {
    let mut t = [0u8; 32];
    t[12..].copy_from_slice(a);
    t
}

/// One deterministic chain, shared by all simulated backends that serve it.
///
/// The head at wall time `t` (unix ms) is `(t - genesis_ms) / block_time_ms` (0 before genesis);
/// block `n` is produced at `genesis_ms + n * block_time_ms`. Put `genesis_ms` in the past to have
/// history (see [`SimChain::with_history`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SimChain {
    /// EIP-155 chain id (`eth_chainId`, `net_version`).
    pub chain_id: u64,
    /// Unix time of block 0, in milliseconds.
    pub genesis_ms: u64,
    /// Time between blocks in milliseconds; 0 is treated as 1.
    pub block_time_ms: u64,
}

impl SimChain {
    /// A chain with the given id, genesis time (unix ms) and block time (ms).
    pub const fn new(chain_id: u64, genesis_ms: u64, block_time_ms: u64) -> Self {
        Self { chain_id, genesis_ms, block_time_ms }
    }

    /// A chain whose head is `history_blocks` right now, so that much history exists at once.
    pub fn with_history(chain_id: u64, block_time_ms: u64, history_blocks: u64) -> Self {
        let block_time_ms = block_time_ms.max(1);
        let genesis_ms = now_ms().saturating_sub(history_blocks.saturating_mul(block_time_ms));
        Self { chain_id, genesis_ms, block_time_ms }
    }

    fn block_time(&self) -> u64 {
        self.block_time_ms.max(1)
    }

    /// Head block number at unix time `now_ms` (0 before genesis).
    pub fn head_at(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.genesis_ms) / self.block_time()
    }

    /// Head block number now (wall clock).
    pub fn head_now(&self) -> u64 {
        self.head_at(now_ms())
    }

    /// Unix time in milliseconds at which block `n` is produced.
    pub fn block_time_ms_of(&self, n: u64) -> u64 {
        self.genesis_ms.saturating_add(n.saturating_mul(self.block_time()))
    }

    /// The true hash of block `n`.
    pub fn block_hash(&self, n: u64) -> Hash32 {
        numbered_hash(b"rpcmesh-sim/block", self.chain_id, n)
    }

    /// The block number whose true hash is `hash`, at any height (`None` if it is no block's hash).
    pub fn block_number_of(&self, hash: &Hash32) -> Option<u64> {
        let n = number_in_hash(hash);
        (self.block_hash(n) == *hash).then_some(n)
    }

    /// The true block `n` as a JSON-RPC block object (`eth_getBlockByNumber(n, false)`), whether or
    /// not it exists yet at the current time.
    pub fn block(&self, n: u64) -> Value {
        View::truth(self, u64::MAX).render_block(n, false)
    }

    /// The true header of block `n` as sent in `newHeads` notifications.
    pub fn header(&self, n: u64) -> Value {
        View::truth(self, u64::MAX).render_block(n, true)
    }

    /// Base fee of block `n` in wei (1 to 1.5 gwei).
    pub fn base_fee(&self, n: u64) -> u64 {
        1_000_000_000 + u64_at(&self.block_hash(n), 8) % 500_000_000
    }

    /// Number of logs in block `n` (`MIN_LOGS_PER_BLOCK..=MAX_LOGS_PER_BLOCK`).
    pub fn log_count(&self, n: u64) -> u64 {
        MIN_LOGS_PER_BLOCK + u64_at(&self.block_hash(n), 16) % (MAX_LOGS_PER_BLOCK - MIN_LOGS_PER_BLOCK + 1)
    }

    /// `gasUsed` of block `n`: one transfer per log.
    pub fn gas_used(&self, n: u64) -> u64 {
        self.log_count(n) * TRANSFER_GAS
    }

    /// True balance of `address` in wei: 1000 ETH plus an address-derived amount below 1 ETH.
    /// Constant over blocks.
    pub fn balance(&self, address: &Address) -> u128 {
        let d = digest(&[b"rpcmesh-sim/balance", &self.chain_id.to_be_bytes(), address]);
        1000 * WEI_PER_ETH + u128::from(u64_at(&d, 0)) % WEI_PER_ETH
    }

    /// True nonce (`eth_getTransactionCount`) of `address`: 0..=255, derived from the address.
    pub fn transaction_count(&self, address: &Address) -> u64 {
        let d = digest(&[b"rpcmesh-sim/nonce", &self.chain_id.to_be_bytes(), address]);
        u64::from(d[0])
    }

    /// Address of token contract `i` (taken modulo [`SIM_CONTRACTS`]); these emit all logs.
    pub fn contract_address(&self, i: usize) -> Address {
        let i = (i % SIM_CONTRACTS) as u64;
        last20(&digest(&[b"rpcmesh-sim/contract", &self.chain_id.to_be_bytes(), &i.to_be_bytes()]))
    }

    /// Address of account `i` (taken modulo [`SIM_ACCOUNTS`]); these appear as `from`/`to` in logs.
    pub fn account_address(&self, i: usize) -> Address {
        let i = (i % SIM_ACCOUNTS) as u64;
        last20(&digest(&[b"rpcmesh-sim/account", &self.chain_id.to_be_bytes(), &i.to_be_bytes()]))
    }

    /// Address of the block producer (`miner`) of every block.
    pub fn miner(&self) -> Address {
        last20(&digest(&[b"rpcmesh-sim/miner", &self.chain_id.to_be_bytes()]))
    }

    /// `eth_call` result (32 bytes) of calling `to` with `data`: a hash of both, the same at every block.
    pub fn call_result(&self, to: &Address, data: &[u8]) -> Hash32 {
        digest(&[b"rpcmesh-sim/call", &self.chain_id.to_be_bytes(), to, data])
    }

    /// All true logs of blocks `from..=to`, as `eth_getLogs` returns them without a filter.
    /// Costs two SHA-256 per log; keep ranges modest.
    pub fn logs(&self, from: u64, to: u64) -> Vec<Value> {
        let filter = LogFilter { from, to, addresses: Vec::new(), topics: Vec::new() };
        View::truth(self, u64::MAX).logs(&filter, usize::MAX).unwrap_or_default()
    }

    /// A block range `(from, to)` ending at `to` whose unfiltered `eth_getLogs` result is at least
    /// `target_bytes` of JSON (or starts at block 0 if history is too short).
    ///
    /// For benchmarks that want, say, a 100 KiB response: query `eth_getLogs` with
    /// `{"fromBlock": from, "toBlock": to}` (as hex quantities). The range is at most
    /// [`MAX_LOG_BLOCK_RANGE`](super::MAX_LOG_BLOCK_RANGE) blocks.
    pub fn log_range_for_size(&self, to: u64, target_bytes: usize) -> (u64, u64) {
        let view = View::truth(self, u64::MAX);
        let mut bytes = 2usize;
        let mut from = to;
        loop {
            for i in 0..self.log_count(from) {
                bytes += view.render_log(&view.log(from, i)).to_string().len() + 1;
            }
            if bytes >= target_bytes || from == 0 || to - from + 1 >= super::MAX_LOG_BLOCK_RANGE {
                return (from, to);
            }
            from -= 1;
        }
    }
}

fn numbered_hash(tag: &[u8], chain_id: u64, n: u64) -> Hash32 {
    let mut h = digest(&[tag, &chain_id.to_be_bytes(), &n.to_be_bytes()]);
    let folded = u64_at(&h, 0) ^ n;
    h[24..].copy_from_slice(&folded.to_be_bytes());
    h
}

fn number_in_hash(h: &Hash32) -> u64 {
    u64_at(h, 24) ^ u64_at(h, 0)
}

/// One simulated log before rendering.
struct SimLog {
    block: u64,
    index: u64,
    address: Address,
    topics: [Hash32; 3],
    data: Hash32,
    tx_hash: Hash32,
}

/// A parsed `eth_getLogs` filter over an inclusive block range.
#[derive(Clone, Debug, Default)]
pub(crate) struct LogFilter {
    pub from: u64,
    pub to: u64,
    /// Empty: any address.
    pub addresses: Vec<Address>,
    /// Per position: `None` matches anything, `Some(list)` any of the list.
    pub topics: Vec<Option<Vec<Hash32>>>,
}

impl LogFilter {
    fn matches(&self, log: &SimLog) -> bool {
        if !self.addresses.is_empty() && !self.addresses.contains(&log.address) {
            return false;
        }
        // geth semantics: a filter with more positions than the log has topics never matches.
        if self.topics.len() > log.topics.len() {
            return false;
        }
        self.topics.iter().zip(log.topics.iter()).all(|(want, have)| match want {
            Some(list) if !list.is_empty() => list.contains(have),
            _ => true,
        })
    }
}

/// `eth_getLogs` matched more than the allowed number of logs.
#[derive(Debug)]
pub(crate) struct TooManyLogs;

/// What one backend shows at one moment.
#[derive(Clone, Copy, Debug)]
pub(crate) struct View<'a> {
    pub chain: &'a SimChain,
    /// Highest block this backend has; blocks above it do not exist for it.
    pub head: u64,
    /// Alter block hashes (a consistent fake hash chain).
    pub lie_hashes: bool,
    /// Double balances.
    pub lie_balances: bool,
    /// Hide this address: zero balance, no logs.
    pub censor: Option<Address>,
}

impl<'a> View<'a> {
    /// The honest view with the given head.
    pub fn truth(chain: &'a SimChain, head: u64) -> Self {
        Self { chain, head, lie_hashes: false, lie_balances: false, censor: None }
    }

    /// Block hash as this view reports it.
    pub fn hash(&self, n: u64) -> Hash32 {
        if self.lie_hashes {
            numbered_hash(b"rpcmesh-sim/lie", self.chain.chain_id, n)
        } else {
            self.chain.block_hash(n)
        }
    }

    /// Number of the block this view knows under `hash`, if any.
    pub fn block_number_of(&self, hash: &Hash32) -> Option<u64> {
        let n = number_in_hash(hash);
        (n <= self.head && self.hash(n) == *hash).then_some(n)
    }

    /// Block `n` (or its `newHeads` header), `None` above the head.
    pub fn block(&self, n: u64, header_only: bool) -> Option<Value> {
        (n <= self.head).then(|| self.render_block(n, header_only))
    }

    fn render_block(&self, n: u64, header_only: bool) -> Value {
        let c = self.chain;
        let id = c.chain_id.to_be_bytes();
        let num = n.to_be_bytes();
        let parent = if n == 0 { [0u8; 32] } else { self.hash(n - 1) };
        let mut block = json!({
            "number": qty(n),
            "hash": hex0x(&self.hash(n)),
            "parentHash": hex0x(&parent),
            "nonce": "0x0000000000000000",
            "sha3Uncles": EMPTY_UNCLES_HASH,
            "logsBloom": hex0x(&[0u8; 256]),
            "transactionsRoot": EMPTY_TRIE_ROOT,
            "stateRoot": hex0x(&digest(&[b"rpcmesh-sim/state", &id, &num])),
            "receiptsRoot": EMPTY_TRIE_ROOT,
            "miner": hex0x(&c.miner()),
            "difficulty": "0x0",
            "extraData": hex0x(b"rpcmesh-sim"),
            "gasLimit": qty(GAS_LIMIT),
            "gasUsed": qty(c.gas_used(n)),
            "timestamp": qty(c.block_time_ms_of(n) / 1000),
            "mixHash": hex0x(&digest(&[b"rpcmesh-sim/randao", &id, &num])),
            "baseFeePerGas": qty(c.base_fee(n)),
            "withdrawalsRoot": EMPTY_TRIE_ROOT,
            "blobGasUsed": "0x0",
            "excessBlobGas": "0x0",
            "parentBeaconBlockRoot": hex0x(&digest(&[b"rpcmesh-sim/beacon", &id, &num])),
        });
        if !header_only && let Some(obj) = block.as_object_mut() {
            obj.insert("size".into(), qty(BLOCK_SIZE_BYTES));
            obj.insert("totalDifficulty".into(), qty(0));
            obj.insert("transactions".into(), json!([]));
            obj.insert("uncles".into(), json!([]));
            obj.insert("withdrawals".into(), json!([]));
        }
        block
    }

    /// Balance as this view reports it.
    pub fn balance(&self, address: &Address) -> u128 {
        if self.censor.as_ref() == Some(address) {
            0
        } else if self.lie_balances {
            self.chain.balance(address).saturating_mul(2)
        } else {
            self.chain.balance(address)
        }
    }

    fn log(&self, n: u64, index: u64) -> SimLog {
        let c = self.chain;
        let d = digest(&[b"rpcmesh-sim/log", &c.chain_id.to_be_bytes(), &n.to_be_bytes(), &index.to_be_bytes()]);
        let mut amount = [0u8; 32];
        amount[24..].copy_from_slice(&d[8..16]);
        SimLog {
            block: n,
            index,
            address: c.contract_address(usize::from(d[0])),
            topics: [
                TRANSFER_TOPIC,
                pad_address(&c.account_address(usize::from(d[1]))),
                pad_address(&c.account_address(usize::from(d[2]))),
            ],
            data: amount,
            tx_hash: digest(&[b"rpcmesh-sim/tx", &c.chain_id.to_be_bytes(), &n.to_be_bytes(), &index.to_be_bytes()]),
        }
    }

    fn render_log(&self, log: &SimLog) -> Value {
        json!({
            "address": hex0x(&log.address),
            "topics": log.topics.iter().map(|t| hex0x(t)).collect::<Vec<_>>(),
            "data": hex0x(&log.data),
            "blockNumber": qty(log.block),
            "blockHash": hex0x(&self.hash(log.block)),
            "blockTimestamp": qty(self.chain.block_time_ms_of(log.block) / 1000),
            "transactionHash": hex0x(&log.tx_hash),
            "transactionIndex": qty(log.index),
            "logIndex": qty(log.index),
            "removed": false,
        })
    }

    fn censored(&self, log: &SimLog) -> bool {
        self.censor.is_some_and(|c| log.address == c || log.topics[1..].contains(&pad_address(&c)))
    }

    /// Logs matching `filter` in blocks up to this view's head; more than `max` is an error.
    pub fn logs(&self, filter: &LogFilter, max: usize) -> Result<Vec<Value>, TooManyLogs> {
        let mut out = Vec::new();
        if filter.from > self.head {
            return Ok(out);
        }
        for n in filter.from..=filter.to.min(self.head) {
            for i in 0..self.chain.log_count(n) {
                let log = self.log(n, i);
                if filter.matches(&log) && !self.censored(&log) {
                    if out.len() == max {
                        return Err(TooManyLogs);
                    }
                    out.push(self.render_log(&log));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHAIN: SimChain = SimChain::new(7, 1_000_000, 1000);

    #[test]
    fn head_follows_wall_time() {
        assert_eq!(CHAIN.head_at(0), 0);
        assert_eq!(CHAIN.head_at(1_000_999), 0);
        assert_eq!(CHAIN.head_at(1_001_000), 1);
        assert_eq!(CHAIN.head_at(1_010_500), 10);
        assert_eq!(SimChain::new(1, 0, 0).head_at(5), 5, "block time 0 is treated as 1 ms");
    }

    #[test]
    fn hashes_chain_and_decode() {
        let b5 = CHAIN.block(5);
        assert_eq!(b5["parentHash"], hex0x(&CHAIN.block_hash(4)));
        assert_eq!(b5["hash"], hex0x(&CHAIN.block_hash(5)));
        assert_eq!(b5["timestamp"], "0x3ed"); // (1_000_000 + 5_000) / 1000 = 1005
        assert_eq!(CHAIN.block(0)["parentHash"], hex0x(&[0u8; 32]));
        assert_eq!(CHAIN.block_number_of(&CHAIN.block_hash(123_456)), Some(123_456));
        assert_ne!(CHAIN.block_hash(1), SimChain::new(8, 1_000_000, 1000).block_hash(1));
        let liar = View { lie_hashes: true, ..View::truth(&CHAIN, 10) };
        assert_ne!(liar.hash(3), CHAIN.block_hash(3));
        assert_eq!(liar.block_number_of(&liar.hash(3)), Some(3));
        assert_eq!(liar.block_number_of(&CHAIN.block_hash(3)), None);
        assert_eq!(View::truth(&CHAIN, 2).block_number_of(&CHAIN.block_hash(3)), None);
    }

    #[test]
    fn logs_filter_and_censor() {
        let all = CHAIN.logs(10, 19);
        let expected: u64 = (10..20).map(|n| CHAIN.log_count(n)).sum();
        assert_eq!(all.len() as u64, expected);
        let target = CHAIN.contract_address(0);
        let view = View::truth(&CHAIN, 100);
        let filter = LogFilter { from: 10, to: 19, addresses: vec![target], topics: Vec::new() };
        let some = view.logs(&filter, 1000).unwrap_or_default();
        assert!(some.iter().all(|l| l["address"] == hex0x(&target)));
        let censoring = View { censor: Some(target), ..view };
        assert!(censoring.logs(&filter, 1000).unwrap_or_default().is_empty());
        assert!(view.logs(&LogFilter { from: 0, to: 100, ..LogFilter::default() }, 3).is_err());
        let topic = LogFilter { from: 10, to: 19, topics: vec![Some(vec![[1u8; 32]])], ..LogFilter::default() };
        assert!(view.logs(&topic, 1000).unwrap_or_default().is_empty());
    }

    #[test]
    fn log_range_reaches_size() {
        let (from, to) = CHAIN.log_range_for_size(5000, 100 * 1024);
        assert_eq!(to, 5000);
        let bytes = serde_json::to_string(&CHAIN.logs(from, to)).unwrap_or_default().len();
        assert!(bytes >= 100 * 1024, "{bytes}");
        assert!(bytes < 110 * 1024, "{bytes}");
    }
}
