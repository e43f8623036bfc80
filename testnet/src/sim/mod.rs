//! Simulated Ethereum JSON-RPC backends with fault injection.
//!
//! A [`SimBackend`] is a small HTTP + WebSocket JSON-RPC server standing in for one provider's
//! node (geth, reth, ...). It is cheap (two tasks plus one per connection), so a testnet can run
//! dozens. All backends spawned with the same [`SimChain`] follow one deterministic chain: at the
//! same wall time they report the same head, block hashes, logs and balances, computed on demand
//! (nothing is stored per block), so they agree the way synced real nodes do.
//!
//! ```text
//!  SimHandle ──set_fault──► watch<FaultState> ──► accept loop (closes / rebinds the port)
//!      │                                      └──► each request: Freeze / Slow / Errors / view
//!  client ──HTTP POST /──► http_rpc ──► rpc::Engine(View of SimChain) ──► JSON
//!  client ──WS GET /────► ws::session ◄── ticker: watch<head> (one per backend) ──► newHeads
//! ```
//!
//! Methods: `web3_clientVersion`, `net_version`, `net_listening`, `net_peerCount`, `eth_chainId`,
//! `eth_blockNumber`, `eth_syncing`, `eth_mining`, `eth_accounts`, `eth_gasPrice`,
//! `eth_maxPriorityFeePerGas`, `eth_feeHistory`, `eth_getBlockByNumber`, `eth_getBlockByHash`,
//! `eth_getBlockTransactionCountBy{Number,Hash}`, `eth_getUncleCountBy{Number,Hash}`,
//! `eth_getBalance`, `eth_getTransactionCount`, `eth_getCode`, `eth_getStorageAt`, `eth_call`,
//! `eth_estimateGas`, `eth_getLogs`, `eth_sendRawTransaction`, `eth_getTransactionByHash` and
//! `eth_getTransactionReceipt` (always `null`), and on WebSocket `eth_subscribe("newHeads")` /
//! `eth_unsubscribe`. Batches, notifications (no `id`), exact id echo, and the standard error
//! codes (-32700, -32600, -32601, -32602; -32000 `header not found` / `already known`; -32005
//! limits; 3 `execution reverted` for calldata starting with [`REVERT_SELECTOR`]).
//!
//! Faults ([`Fault`]) are switched on a running backend through its [`SimHandle`];
//! [`SimHandle::heal`] restores normal behaviour. Random choices use a seeded PRNG
//! ([`SimConfig::seed`]).
//!
//! Time is the wall clock ([`now_ms`]), so backends in different processes agree too; for the
//! same reason they do not follow tokio's paused test clock (`start_paused`): use real time and a
//! short [`SimChain::block_time_ms`] in tests.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use rpcmesh_testnet::sim::{Fault, SimBackend, SimChain};
//!
//! // Chain 1337 with 1 s blocks and 10 000 blocks of history.
//! let chain = SimChain::with_history(1337, 1000, 10_000);
//! let a = SimBackend::spawn(chain, "127.0.0.1:0".parse().unwrap()).await?;
//! let b = SimBackend::spawn(chain, "127.0.0.1:0".parse().unwrap()).await?;
//! println!("providers at {} and {}", a.http_url(), b.ws_url());
//! b.apply(Fault::Stale { blocks: 5 }).await?; // b lags 5 blocks behind a
//! a.apply(Fault::Down).await?; // a refuses connections
//! a.apply(Fault::None).await?; // a listens again on the same port
//! # Ok(()) }
//! ```

mod chain;
mod fault;
mod pool;
mod rpc;
mod server;
mod ws;

pub use chain::{
    Address, FINALIZED_DEPTH, GAS_LIMIT, Hash32, MAX_LOGS_PER_BLOCK, MIN_LOGS_PER_BLOCK, PRIORITY_FEE_WEI, SAFE_DEPTH,
    SIM_ACCOUNTS, SIM_CONTRACTS, SimChain, TRANSFER_GAS, TRANSFER_TOPIC, WEI_PER_ETH, now_ms, transaction_hash,
};
pub(crate) use fault::SplitMix64;
pub use fault::{Fault, LieKind, LieKinds};
pub use pool::{SimTxPool, TXPOOL_CAPACITY};
pub use rpc::{
    MAX_BATCH_CALLS, MAX_LOG_BLOCK_RANGE, MAX_LOGS_PER_QUERY, MAX_SUBSCRIPTIONS_PER_CONNECTION, REVERT_SELECTOR,
};
pub use server::{MAX_REQUEST_BYTES, SimBackend, SimConfig, SimHandle, SimStats};
pub use ws::MAX_CATCHUP_HEADS;
