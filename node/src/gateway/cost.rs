//! Compute units: what a call costs against a quota ([`super::quota`]). Calls differ by orders of
//! magnitude in what they ask of a node: `eth_blockNumber` is a lookup, `eth_getLogs` may scan
//! thousands of blocks, `eth_call` runs the EVM, a `debug_trace*` re-executes a block. Counting
//! each as one would let a client within its quota keep a node busy with the expensive ones.
//!
//! The built-in table is [`DEFAULT_METHOD_COSTS`]; a method it does not name costs
//! [`DEFAULT_COST`]. `[gateway.method_costs]` overrides it: its entries (exact names or `*`
//! wildcards) are looked up first, the built-in ones only for methods none of them matches. Among
//! several matching patterns of one table the most specific wins: an exact name, else the
//! pattern with the most literal characters. A batch costs the sum of its items; an item that is
//! not a valid request, or a body that is not JSON, costs [`DEFAULT_COST`] (the gateway did the
//! work of reading it).

use std::collections::{BTreeMap, HashMap};

use crate::jsonrpc::{Call, Item};

/// What a method no table names costs: plain reads (`eth_blockNumber`, `eth_getBalance`,
/// `eth_getTransactionByHash`, `net_version`...) answered from one lookup.
pub const DEFAULT_COST: u32 = 1;

/// Highest cost `[gateway.method_costs]` may set: far above any built-in cost, and low enough that
/// a batch of the largest allowed size cannot overflow the sum.
pub const MAX_METHOD_COST: u32 = 100_000;

/// The built-in costs, in compute units (a plain read is 1). Relative figures, from what each
/// call makes a node do: one block's worth of data is 2; running the EVM or building a Merkle
/// proof is 5 (a write is priced like a call: the node simulates it before taking it); a
/// log query or a block's receipts, which read many blocks or receipts, is 10; tracing and
/// debugging, which re-execute transactions, is 20.
pub const DEFAULT_METHOD_COSTS: &[(&str, u32)] = &[
    ("eth_getBlockByNumber", 2),
    ("eth_getBlockByHash", 2),
    ("eth_getTransactionReceipt", 2),
    ("eth_feeHistory", 2),
    ("eth_call", 5),
    ("eth_estimateGas", 5),
    ("eth_createAccessList", 5),
    ("eth_getProof", 5),
    ("eth_sendRawTransaction", 5),
    ("eth_subscribe", 5),
    ("eth_newFilter", 5),
    ("eth_getLogs", 10),
    ("eth_getFilterLogs", 10),
    ("eth_getFilterChanges", 10),
    ("eth_getBlockReceipts", 10),
    ("debug_*", 20),
    ("trace_*", 20),
];

/// One table of costs: exact names, and wildcard patterns from the most specific.
#[derive(Debug, Default)]
struct Table {
    exact: HashMap<String, u32>,
    globs: Vec<(String, u32)>,
}

impl Table {
    fn new<'a>(entries: impl IntoIterator<Item = (&'a str, u32)>) -> Self {
        let mut t = Table::default();
        for (pattern, cost) in entries {
            if pattern.contains('*') {
                t.globs.push((pattern.to_string(), cost));
            } else {
                t.exact.insert(pattern.to_string(), cost);
            }
        }
        t.globs.sort_by_key(|(p, _)| std::cmp::Reverse(p.bytes().filter(|&b| b != b'*').count()));
        t
    }

    fn get(&self, method: &str) -> Option<u32> {
        self.exact
            .get(method)
            .copied()
            .or_else(|| self.globs.iter().find(|(p, _)| glob_match(p, method)).map(|(_, c)| *c))
    }
}

/// Whether `text` matches `pattern`, where `*` stands for any run of characters.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // Where to resume after the last `*`: its position in the pattern, and how much of the text
    // it has swallowed so far. One backtrack point is enough for `*`-only patterns.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

/// The cost of every method: the operator's `[gateway.method_costs]` over the built-in table.
#[derive(Debug)]
pub struct MethodCosts {
    configured: Table,
    builtin: Table,
}

impl Default for MethodCosts {
    fn default() -> Self {
        Self::new(&BTreeMap::new())
    }
}

impl MethodCosts {
    /// The built-in table with `overrides` (`[gateway.method_costs]`, validated with the config)
    /// looked up first.
    pub fn new(overrides: &BTreeMap<String, u32>) -> Self {
        Self {
            configured: Table::new(overrides.iter().map(|(p, c)| (p.as_str(), *c))),
            builtin: Table::new(DEFAULT_METHOD_COSTS.iter().copied()),
        }
    }

    /// What one call of `method` costs.
    pub fn of(&self, method: &str) -> u32 {
        self.configured.get(method).or_else(|| self.builtin.get(method)).unwrap_or(DEFAULT_COST)
    }

    fn item(&self, item: &Item) -> u32 {
        match item {
            Item::Request(r) => self.of(&r.method),
            Item::Invalid { .. } => DEFAULT_COST,
        }
    }

    /// What `call` costs: the sum of its items for a batch, at least one.
    pub fn units(&self, call: &Call) -> u32 {
        match call {
            Call::Single(item) => self.item(item),
            Call::Batch(items) => items.iter().fold(0u32, |sum, i| sum.saturating_add(self.item(i))),
            Call::Error { .. } => DEFAULT_COST,
        }
        .max(1)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("debug_*", "debug_traceTransaction"));
        assert!(glob_match("*", ""));
        assert!(glob_match("eth_get*Logs", "eth_getFilterLogs"));
        assert!(glob_match("eth_get*Logs", "eth_getLogs"));
        assert!(glob_match("*_*_x", "a_b_c_x"));
        assert!(!glob_match("debug_*", "eth_debug_x"));
        assert!(!glob_match("eth_call", "eth_callMany"));
        assert!(!glob_match("eth_get*Logs", "eth_getLogsX"));
    }

    #[test]
    fn the_builtin_table_prices_by_work() {
        let c = MethodCosts::default();
        assert_eq!(c.of("eth_blockNumber"), 1);
        assert_eq!(c.of("eth_getBalance"), 1);
        assert_eq!(c.of("eth_call"), 5);
        assert_eq!(c.of("eth_estimateGas"), 5);
        assert_eq!(c.of("eth_getLogs"), 10);
        assert_eq!(c.of("debug_traceTransaction"), 20);
        assert_eq!(c.of("trace_block"), 20);
        for (pattern, cost) in DEFAULT_METHOD_COSTS {
            assert!((1..=MAX_METHOD_COST).contains(cost), "{pattern}");
        }
    }

    #[test]
    fn the_operator_table_wins_then_the_most_specific_pattern() {
        let overrides: BTreeMap<String, u32> =
            [("eth_*", 3), ("eth_getLogs", 50), ("debug_trace*", 100), ("*", 7)].map(|(k, v)| (k.into(), v)).into();
        let c = MethodCosts::new(&overrides);
        assert_eq!(c.of("eth_getLogs"), 50, "exact name");
        assert_eq!(c.of("eth_call"), 3, "the operator's eth_* over the built-in eth_call");
        assert_eq!(c.of("debug_traceCall"), 100, "debug_trace* is more specific than *");
        assert_eq!(c.of("net_version"), 7);
        let only_logs: BTreeMap<String, u32> = [("eth_getLogs".to_string(), 2)].into();
        let c = MethodCosts::new(&only_logs);
        assert_eq!(c.of("eth_getLogs"), 2);
        assert_eq!(c.of("eth_call"), 5, "the built-in table for the rest");
    }

    #[test]
    fn a_batch_costs_the_sum_of_its_items() {
        let c = MethodCosts::default();
        let call = crate::jsonrpc::parse(&Bytes::from_static(
            br#"[{"jsonrpc":"2.0","id":1,"method":"eth_getLogs","params":[{}]},
                {"jsonrpc":"2.0","id":2,"method":"eth_call","params":[]},
                {"jsonrpc":"2.0","id":3,"method":"eth_blockNumber"},
                {"id":4},
                {"jsonrpc":"2.0","method":"eth_chainId"}]"#,
        ));
        assert_eq!(c.units(&call), 10 + 5 + 1 + 1 + 1);
        let single = crate::jsonrpc::parse(&Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"method":"trace_block"}"#));
        assert_eq!(c.units(&single), 20);
        assert_eq!(c.units(&crate::jsonrpc::parse(&Bytes::from_static(b"not json"))), 1);
    }
}
