//! One lie per verifiable answer (`lie=KIND`), in front of a real anvil: each kind alters exactly
//! the answers it names (and nothing of the chain id, `net_version` or the head), alike in
//! batches and on every repetition, and `rpcmesh-eth` catches it given honest material fetched
//! from anvil directly (the proof, header or receipts the integrity layer would get from an
//! honest operator). `eth_call` has no proof: only that its answer differs is asserted.

use std::fmt::Debug;

use rpcmesh_eth::{
    Address, B256, BlockId, EthError, VerifiedAccount, VerifiedHeader, VerifiedReceipts, bloom_may_match,
    check_balance, check_code, check_storage_at, check_transaction_count, group_logs_by_block, parse_log_filter,
    parse_logs, verify_account_proof, verify_block_logs, verify_block_of, verify_block_receipts, verify_header_of,
    verify_receipt, verify_transaction_by_hash,
};
use rpcmesh_testnet::faults::parse_fault;
use rpcmesh_testnet::sim::{LieKind, LieKinds};

use super::*;

/// Keccak of `Ping(address,bytes)` and `Pong()`: the contract's two events.
const PING: &str = "3c51a0b156ab6d36837fcd4ce7a94cd3c49a80376baffc5d9c0ddb2bf25f0bc8";
const PONG: &str = "4d015fcc2a20c24d7be893b3a525eac864b5a53a5f88ef7201a600465c73314e";

/// A never-used address: an absent account, proven by an absence proof.
const NEVER_USED: &str = "0x000000000000000000000000000000000000dead";

/// Anvil's second dev account: receives the transfer.
const OTHER: &str = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8";

/// The word the contract call carries (its calldata, stored in slot 1 and logged as data).
const WORD: &str = "0x00000000000000000000000000000000000000000000000000000000000000aa";

/// Init code of the contract of `eth/tests/fixtures/record.sh`: every call does
/// `LOG2(Ping, caller; data = calldata)`, `LOG1(Pong)`, `slot0 += 1`, `slot1 = calldata[0..32]`.
fn contract_init() -> String {
    let runtime = format!("366000600037337f{PING}366000a27f{PONG}60006000a160005460010160005560003560015500");
    format!("0x606280600b6000396000f3{runtime}")
}

fn qty(n: u64) -> String {
    format!("{n:#x}")
}

fn raw(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("JSON")
}

fn address(s: &str) -> Address {
    s.parse().expect("address")
}

fn hash(v: &Value) -> B256 {
    v.as_str().expect("hash").parse().expect("hash")
}

fn slot(n: u8) -> B256 {
    B256::with_last_byte(n)
}

/// Storage slots as JSON parameters.
fn words(slots: &[B256]) -> Value {
    slots.iter().map(|s| Value::String(s.to_string())).collect()
}

/// Asserts that `checked` failed because the answer is provably wrong, with the expected
/// [`EthError::kind`].
#[track_caller]
fn caught<T: Debug>(what: &str, checked: Result<T, EthError>, kind: &str) {
    let err = checked.expect_err(what);
    assert!(err.is_mismatch(), "{what}: not a provable lie: {err}");
    assert_eq!(err.kind(), kind, "{what}: {err}");
}

/// One read of the menu every lie test sends, and the kinds of lie that alter its answer.
struct Read {
    method: &'static str,
    params: Value,
    altered_by: &'static [LieKind],
}

/// A chain with something of everything a liar can alter: a contract with code, storage and
/// logs (block `call_block`), a transfer with a value (the head block), an absent account.
struct Scene {
    anvil: Anvil,
    contract: String,
    /// A call of the contract: two logs, two storage writes, no value.
    call_tx: Value,
    call_block: u64,
    call_block_hash: Value,
    /// A transfer with a value, in the head block.
    transfer_tx: Value,
    head: u64,
}

impl Scene {
    async fn new() -> Scene {
        let anvil = Anvil::start().await;
        let (contract, _) = anvil.deploy(&contract_init()).await;
        let call = transact(&anvil, json!({ "from": DEV, "to": contract, "data": WORD, "gas": "0x20000" })).await;
        let transfer = transact(&anvil, json!({ "from": DEV, "to": OTHER, "value": "0x1234" })).await;
        let call_block = quantity(&call["blockNumber"]);
        let head = quantity(&transfer["blockNumber"]);
        assert_eq!(quantity(&anvil.call("eth_blockNumber", json!([])).await), head);
        assert!(call_block < head, "the call and the transfer are in blocks of their own");
        Scene {
            contract,
            call_tx: call["transactionHash"].clone(),
            call_block,
            call_block_hash: call["blockHash"].clone(),
            transfer_tx: transfer["transactionHash"].clone(),
            head,
            anvil,
        }
    }

    /// A fault proxy in front of the scene's anvil, lying as `spec` says.
    async fn liar(&self, spec: &str) -> FaultProxyHandle {
        let proxy = proxy(&self.anvil).await;
        proxy.apply(parse_fault(spec).expect("fault spec")).await.expect("apply");
        proxy
    }

    fn menu(&self) -> Vec<Read> {
        use LieKind::*;
        let head = qty(self.head);
        let at = qty(self.call_block);
        let read = |method, params, altered_by| Read { method, params, altered_by };
        vec![
            read("eth_chainId", json!([]), &[]),
            read("net_version", json!([]), &[]),
            read("eth_blockNumber", json!([]), &[]),
            read("eth_getBalance", json!([DEV, head]), &[Balance]),
            read("eth_getBalance", json!([NEVER_USED, head]), &[Balance]),
            read("eth_getTransactionCount", json!([DEV, head]), &[Nonce]),
            read("eth_getCode", json!([self.contract, head]), &[Code]),
            read("eth_getCode", json!([DEV, head]), &[Code]),
            read("eth_getStorageAt", json!([self.contract, "0x0", head]), &[Storage]),
            read("eth_getStorageAt", json!([self.contract, "0x2", head]), &[Storage]),
            read("eth_getProof", json!([self.contract, words(&[slot(0), slot(1)]), head]), &[Proof]),
            read("eth_getBlockByNumber", json!([at, false]), &[Hash, Header]),
            read("eth_getBlockByNumber", json!([at, true]), &[Hash, Header, Tx]),
            read("eth_getBlockByNumber", json!(["latest", false]), &[Hash, Header]),
            read("eth_getBlockByHash", json!([self.call_block_hash, false]), &[Hash, Header]),
            read("eth_getBlockTransactionCountByNumber", json!([at]), &[]),
            read("eth_getTransactionByHash", json!([self.transfer_tx]), &[Hash, Tx]),
            read("eth_getTransactionByBlockNumberAndIndex", json!([at, "0x0"]), &[Hash, Tx]),
            read("eth_getTransactionReceipt", json!([self.call_tx]), &[Hash, Receipt]),
            read("eth_getBlockReceipts", json!([at]), &[Hash, Receipt]),
            read("eth_getLogs", json!([{ "fromBlock": "0x0", "toBlock": head }]), &[Hash, LogData, LogOmit]),
            read("eth_call", json!([{ "to": self.contract, "data": WORD }, head]), &[Call]),
            read("eth_call", json!([{ "from": DEV, "data": contract_init() }, head]), &[Call]),
        ]
    }

    /// Sends the whole menu to the liar (one call at a time, again, and as one batch) and to
    /// anvil: an answer differs from anvil's exactly when one of `kinds` alters it, the same
    /// wrong answer every time and inside the batch; the head's number is honest.
    async fn differs_exactly_where_expected(&self, liar: &FaultProxyHandle, kinds: LieKinds) {
        let menu = self.menu();
        let url = liar.http_url();
        let mut batch = Vec::new();
        let mut lies = Vec::new();
        for (k, r) in menu.iter().enumerate() {
            let truth = self.anvil.call(r.method, r.params.clone()).await;
            let told = result(&call(&url, r.method, r.params.clone()).await);
            let again = result(&call(&url, r.method, r.params.clone()).await);
            let what = format!("{}({})", r.method, r.params);
            assert_eq!(told, again, "{what}: the same request must get the same answer");
            let altered = r.altered_by.iter().any(|kind| kinds.contains(*kind));
            if altered {
                assert_ne!(told, truth, "{what} under lie={kinds}");
            } else {
                assert_eq!(told, truth, "{what} under lie={kinds}");
            }
            if r.method == "eth_getBlockByNumber" {
                assert_eq!(told["number"], truth["number"], "{what}: the liar's head is honest");
            }
            batch.push(json!({ "jsonrpc": "2.0", "id": k, "method": r.method, "params": r.params }));
            lies.push(told);
        }
        let (status, body) = post(&url, Value::Array(batch).to_string(), PATIENCE).await.expect("batch");
        assert_eq!(status, 200);
        let answers: Value = serde_json::from_slice(&body).expect("batch answer");
        let answers = answers.as_array().expect("batch answer");
        assert_eq!(answers.len(), menu.len());
        for (k, (r, told)) in menu.iter().zip(&lies).enumerate() {
            assert_eq!(answers[k]["id"], k, "answers in order, ids echoed");
            assert_eq!(&result(&answers[k]), told, "{} in a batch under lie={kinds}", r.method);
        }
    }

    /// Both answers to `method(params)`: anvil's and the liar's.
    async fn both(&self, liar: &FaultProxyHandle, method: &str, params: Value) -> (Value, Value) {
        let truth = self.anvil.call(method, params.clone()).await;
        let lie = result(&call(&liar.http_url(), method, params).await);
        (truth, lie)
    }

    /// Block `n`'s header from anvil, verified against its own hash.
    async fn header(&self, n: u64) -> VerifiedHeader {
        let block = self.anvil.call("eth_getBlockByNumber", json!([qty(n), false])).await;
        verify_header_of(&raw(&block), BlockId::Number(n)).expect("anvil's header verifies")
    }

    /// `who`'s account (with `slots`) at `header`, proven by anvil's `eth_getProof`.
    async fn account(&self, header: &VerifiedHeader, who: &str, slots: &[B256]) -> VerifiedAccount {
        let proof = self.anvil.call("eth_getProof", json!([who, words(slots), qty(header.number())])).await;
        verify_account_proof(&raw(&proof), header.state_root(), address(who), slots).expect("anvil's proof verifies")
    }

    /// The receipts of `header`'s block from anvil, verified against its `receiptsRoot`.
    async fn receipts(&self, header: &VerifiedHeader) -> VerifiedReceipts {
        let receipts = self.anvil.call("eth_getBlockReceipts", json!([qty(header.number())])).await;
        verify_block_receipts(&raw(&receipts), header).expect("anvil's receipts verify")
    }

    /// Checks an `eth_getLogs` answer for `filter` over blocks `0..=head` as `rpcmesh_eth::logs`
    /// describes: every block whose bloom may match (or that the answer has logs for) has its
    /// share checked against its honest receipts, so an omission is caught too.
    async fn check_logs(&self, filter: &Value, answer: &Value) -> Result<(), EthError> {
        let parsed = parse_log_filter(&raw(filter)).expect("filter");
        let groups = group_logs_by_block(&parse_logs(&raw(answer))?);
        let mut seen = 0;
        for n in 0..=self.head {
            let header = self.header(n).await;
            let share = groups.iter().find(|(h, _)| *h == header.hash()).map(|(_, logs)| logs.as_slice());
            seen += usize::from(share.is_some());
            if share.is_none() && !bloom_may_match(header.logs_bloom(), &parsed) {
                continue;
            }
            verify_block_logs(share.unwrap_or_default(), &parsed, &self.receipts(&header).await)?;
        }
        assert_eq!(seen, groups.len(), "every log of the answer is of a block of the range: {answer}");
        Ok(())
    }
}

/// Sends a transaction from an unlocked account and waits until it is mined; its receipt.
async fn transact(anvil: &Anvil, tx: Value) -> Value {
    let hash = anvil.call("eth_sendTransaction", json!([tx])).await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let receipt = anvil.call("eth_getTransactionReceipt", json!([hash])).await;
        if !receipt.is_null() {
            assert_eq!(receipt["status"], "0x1", "{receipt}");
            return receipt;
        }
        assert!(Instant::now() < deadline, "transaction {hash} not mined within {PATIENCE:?}");
        // Anvil mines moments after accepting a transaction and has no event to wait on here.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn lie_balance_is_refuted_by_an_honest_account_proof() {
    let s = Scene::new().await;
    let liar = s.liar("lie=balance").await;
    s.differs_exactly_where_expected(&liar, LieKind::Balance.into()).await;
    let header = s.header(s.head).await;
    for who in [DEV, s.contract.as_str(), NEVER_USED] {
        let (truth, lie) = s.both(&liar, "eth_getBalance", json!([who, qty(s.head)])).await;
        let account = s.account(&header, who, &[]).await;
        check_balance(&raw(&truth), &account).expect("anvil's balance");
        caught(&format!("balance of {who}"), check_balance(&raw(&lie), &account), "balance");
    }
}

#[tokio::test]
async fn lie_nonce_is_refuted_by_an_honest_account_proof() {
    let s = Scene::new().await;
    let liar = s.liar("lie=nonce").await;
    s.differs_exactly_where_expected(&liar, LieKind::Nonce.into()).await;
    let header = s.header(s.head).await;
    for who in [DEV, s.contract.as_str(), NEVER_USED] {
        let (truth, lie) = s.both(&liar, "eth_getTransactionCount", json!([who, qty(s.head)])).await;
        let account = s.account(&header, who, &[]).await;
        check_transaction_count(&raw(&truth), &account).expect("anvil's nonce");
        caught(&format!("nonce of {who}"), check_transaction_count(&raw(&lie), &account), "nonce");
    }
}

#[tokio::test]
async fn lie_code_is_refuted_by_the_proven_code_hash() {
    let s = Scene::new().await;
    let liar = s.liar("lie=code").await;
    s.differs_exactly_where_expected(&liar, LieKind::Code.into()).await;
    let header = s.header(s.head).await;
    for who in [s.contract.as_str(), DEV, NEVER_USED] {
        let (truth, lie) = s.both(&liar, "eth_getCode", json!([who, qty(s.head)])).await;
        let account = s.account(&header, who, &[]).await;
        check_code(&raw(&truth), &account).expect("anvil's code");
        caught(&format!("code of {who}"), check_code(&raw(&lie), &account), "code");
    }
}

#[tokio::test]
async fn lie_storage_is_refuted_by_an_honest_storage_proof() {
    let s = Scene::new().await;
    let liar = s.liar("lie=storage").await;
    s.differs_exactly_where_expected(&liar, LieKind::Storage.into()).await;
    let header = s.header(s.head).await;
    let slots = [slot(0), slot(1), slot(2)]; // 1, the call's word, never written
    let account = s.account(&header, &s.contract, &slots).await;
    for slot in slots {
        let (truth, lie) = s.both(&liar, "eth_getStorageAt", json!([s.contract, words(&[slot])[0], qty(s.head)])).await;
        check_storage_at(&raw(&truth), &account, slot).expect("anvil's word");
        caught(&format!("slot {slot}"), check_storage_at(&raw(&lie), &account, slot), "storage");
    }
}

#[tokio::test]
async fn lie_proof_does_not_verify_against_the_honest_state_root() {
    let s = Scene::new().await;
    let liar = s.liar("lie=proof").await;
    s.differs_exactly_where_expected(&liar, LieKind::Proof.into()).await;
    let root = s.header(s.head).await.state_root();
    let contract_slots = [slot(0), slot(1), slot(2)];
    for (who, slots) in [(s.contract.as_str(), &contract_slots[..]), (DEV, &[]), (NEVER_USED, &[])] {
        let (truth, lie) = s.both(&liar, "eth_getProof", json!([who, words(slots), qty(s.head)])).await;
        // Only the values lie: the proof nodes are the true ones.
        assert_eq!(lie["accountProof"], truth["accountProof"]);
        assert_ne!(lie["balance"], truth["balance"]);
        verify_account_proof(&raw(&truth), root, address(who), slots).expect("anvil's proof");
        let checked = verify_account_proof(&raw(&lie), root, address(who), slots);
        caught(&format!("proof of {who}"), checked, "account_value");
    }
}

#[tokio::test]
async fn lie_header_does_not_hash_to_its_claimed_hash() {
    let s = Scene::new().await;
    let liar = s.liar("lie=header").await;
    s.differs_exactly_where_expected(&liar, LieKind::Header.into()).await;
    for n in [s.call_block, s.head] {
        for full in [false, true] {
            let (truth, lie) = s.both(&liar, "eth_getBlockByNumber", json!([qty(n), full])).await;
            assert_eq!((&lie["hash"], &lie["number"]), (&truth["hash"], &truth["number"]));
            assert_ne!(lie["stateRoot"], truth["stateRoot"]);
            verify_block_of(&raw(&truth), BlockId::Number(n)).expect("anvil's block");
            caught(&format!("block {n}"), verify_block_of(&raw(&lie), BlockId::Number(n)), "header_hash");
        }
    }
    let (truth, lie) = s.both(&liar, "eth_getBlockByHash", json!([s.call_block_hash, false])).await;
    let asked = BlockId::Hash(hash(&s.call_block_hash));
    verify_header_of(&raw(&truth), asked).expect("anvil's header");
    caught("block by hash", verify_header_of(&raw(&lie), asked), "header_hash");
}

#[tokio::test]
async fn lie_tx_does_not_hash_to_its_claimed_hash_alone_or_in_its_block() {
    let s = Scene::new().await;
    let liar = s.liar("lie=tx").await;
    s.differs_exactly_where_expected(&liar, LieKind::Tx.into()).await;
    for tx in [&s.transfer_tx, &s.call_tx] {
        let (truth, lie) = s.both(&liar, "eth_getTransactionByHash", json!([tx])).await;
        assert_eq!(lie["hash"], truth["hash"]);
        assert_ne!(lie["value"], truth["value"]);
        verify_transaction_by_hash(&raw(&truth), hash(tx)).expect("anvil's transaction");
        caught(&format!("transaction {tx}"), verify_transaction_by_hash(&raw(&lie), hash(tx)), "tx_hash");
    }
    for n in [s.call_block, s.head] {
        let (truth, lie) = s.both(&liar, "eth_getBlockByNumber", json!([qty(n), true])).await;
        // The header is honest; the transactions under it are not.
        verify_header_of(&raw(&lie), BlockId::Number(n)).expect("an honest header");
        verify_block_of(&raw(&truth), BlockId::Number(n)).expect("anvil's block");
        caught(&format!("full block {n}"), verify_block_of(&raw(&lie), BlockId::Number(n)), "tx_hash");
    }
}

#[tokio::test]
async fn lie_receipt_does_not_match_the_honest_receipts_root() {
    let s = Scene::new().await;
    let liar = s.liar("lie=receipt").await;
    s.differs_exactly_where_expected(&liar, LieKind::Receipt.into()).await;
    let header = s.header(s.call_block).await;
    let honest = s.receipts(&header).await;
    let (truth, lie) = s.both(&liar, "eth_getTransactionReceipt", json!([s.call_tx])).await;
    assert_eq!((&truth["status"], &lie["status"]), (&json!("0x1"), &json!("0x0")));
    verify_receipt(&raw(&truth), &honest).expect("anvil's receipt");
    caught("receipt", verify_receipt(&raw(&lie), &honest), "receipt_mismatch");
    let (truth, lie) = s.both(&liar, "eth_getBlockReceipts", json!([qty(s.call_block)])).await;
    verify_block_receipts(&raw(&truth), &header).expect("anvil's receipts");
    caught("block receipts", verify_block_receipts(&raw(&lie), &header), "receipts_root");
}

#[tokio::test]
async fn lie_log_data_is_caught_by_the_blocks_receipts() {
    let s = Scene::new().await;
    let liar = s.liar("lie=log-data").await;
    s.differs_exactly_where_expected(&liar, LieKind::LogData.into()).await;
    for filter in [
        json!({ "fromBlock": "0x0", "toBlock": qty(s.head) }),
        json!({ "fromBlock": "0x0", "toBlock": qty(s.head), "address": s.contract, "topics": [format!("0x{PING}")] }),
    ] {
        let (truth, lie) = s.both(&liar, "eth_getLogs", json!([filter])).await;
        assert_eq!(lie.as_array().map(Vec::len), truth.as_array().map(Vec::len));
        s.check_logs(&filter, &truth).await.expect("anvil's logs");
        caught(&format!("logs of {filter}"), s.check_logs(&filter, &lie).await, "log_altered");
    }
}

#[tokio::test]
async fn lie_log_omit_is_caught_by_the_blocks_receipts() {
    let s = Scene::new().await;
    let liar = s.liar("lie=log-omit").await;
    s.differs_exactly_where_expected(&liar, LieKind::LogOmit.into()).await;
    for filter in [
        json!({ "fromBlock": "0x0", "toBlock": qty(s.head) }),
        json!({ "blockHash": s.call_block_hash }),
        json!({ "fromBlock": "0x0", "toBlock": qty(s.head), "topics": [format!("0x{PONG}")] }),
    ] {
        let (truth, lie) = s.both(&liar, "eth_getLogs", json!([filter])).await;
        let truth_logs = truth.as_array().expect("logs");
        assert_eq!(lie.as_array().expect("logs")[..], truth_logs[..truth_logs.len() - 1], "the last log left out");
        s.check_logs(&filter, &truth).await.expect("anvil's logs");
        caught(&format!("logs of {filter}"), s.check_logs(&filter, &lie).await, "log_omitted");
    }
}

#[tokio::test]
async fn lie_call_alters_the_returned_bytes() {
    let s = Scene::new().await;
    let liar = s.liar("lie=call").await;
    s.differs_exactly_where_expected(&liar, LieKind::Call.into()).await;
    // Nothing proves an `eth_call` answer: only a second provider can contradict it.
    let (truth, lie) = s.both(&liar, "eth_call", json!([{ "from": DEV, "data": contract_init() }, "latest"])).await;
    assert_eq!(lie.as_str().map(str::len), truth.as_str().map(str::len));
    assert_ne!(lie, truth);
}

#[tokio::test]
async fn lie_hash_fakes_a_consistent_chain_that_does_not_hash() {
    let s = Scene::new().await;
    let liar = s.liar("lie=hash").await;
    s.differs_exactly_where_expected(&liar, LieKind::Hash.into()).await;
    let (truth, lie) = s.both(&liar, "eth_getBlockByNumber", json!([qty(s.head), false])).await;
    assert_eq!(fake_hash(lie["hash"].as_str().unwrap()).unwrap(), truth["hash"]);
    caught("fake hash", verify_header_of(&raw(&lie), BlockId::Number(s.head)), "header_hash");
    // The liar answers for its fake hashes wherever a block is named by hash.
    let fake = json!({ "blockHash": lie["hash"] });
    let balance = result(&call(&liar.http_url(), "eth_getBalance", json!([DEV, fake])).await);
    assert_eq!(balance, s.anvil.call("eth_getBalance", json!([DEV, qty(s.head)])).await);
    let receipts = result(&call(&liar.http_url(), "eth_getBlockReceipts", json!([lie["hash"]])).await);
    assert_eq!(receipts[0]["blockHash"], lie["hash"]);
}

#[tokio::test]
async fn lie_alone_lies_in_every_way_and_kinds_combine() {
    let s = Scene::new().await;
    let liar = s.liar("lie").await;
    assert_eq!(liar.fault(), Fault::Lie);
    s.differs_exactly_where_expected(&liar, LieKinds::ALL).await;
    let kinds: LieKinds = [LieKind::Balance, LieKind::Storage].into_iter().collect();
    liar.apply(parse_fault("lie=balance,storage").unwrap()).await.unwrap();
    assert_eq!(liar.fault(), Fault::LieAbout { kinds });
    s.differs_exactly_where_expected(&liar, kinds).await;
    liar.heal();
    s.differs_exactly_where_expected(&liar, LieKinds::NONE).await;
}
