//! Verification costs, from raw JSON bytes to a verified value (parsing included).
//!
//! Run: `cargo bench -p rpcmesh-eth` (add `-- --quick` for a fast pass, or a filter such as
//! `-- proof/`). Results and the machine are in eth/README.md.
//!
//! Inputs: the anvil 1.7.1 fixtures (small tries: a handful of accounts), and synthetic answers
//! built here with alloy, sized like mainnet: a block of `TXS` signed EIP-1559 transactions with
//! two logs each, its receipts, an `eth_getLogs` answer for it, and account/storage proofs from a
//! `ACCOUNTS`-account state trie and a `SLOTS`-slot storage trie.

use std::hint::black_box;
use std::time::Duration;

use alloy_consensus::crypto::secp256k1::sign_message;
use alloy_consensus::proofs::{calculate_receipt_root, calculate_transaction_root};
use alloy_consensus::{
    Eip658Value, Header, Receipt, ReceiptEnvelope, ReceiptWithBloom, SignableTransaction, TxEip1559, TxEnvelope,
};
use alloy_primitives::{Address, B256, Bloom, Bytes, Log, LogData, TxKind, U256, keccak256, logs_bloom};
use alloy_trie::proof::ProofRetainer;
use alloy_trie::{EMPTY_ROOT_HASH, HashBuilder, KECCAK_EMPTY, Nibbles, TrieAccount};
use criterion::{Criterion, criterion_group, criterion_main};
use rpcmesh_eth::{
    parse_log_filter, parse_logs, verify_account_proof, verify_block, verify_block_logs, verify_block_receipts,
    verify_header, verify_transaction,
};
use serde_json::{Value, json};

/// Transactions (and receipts) in the synthetic block: a busy mainnet block.
const TXS: usize = 200;
/// Accounts in the synthetic state trie (proof depth 5 to 6; mainnet's is 8 to 9).
const ACCOUNTS: u64 = 100_000;
/// Slots in the synthetic storage trie.
const SLOTS: u64 = 10_000;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn hex(bytes: impl AsRef<[u8]>) -> String {
    format!("0x{}", alloy_primitives::hex::encode(bytes))
}

fn q(n: impl Into<u128>) -> String {
    format!("{:#x}", n.into())
}

/// A block of `TXS` transactions, its receipts and an `eth_getLogs` answer, all consistent.
struct SyntheticBlock {
    block: Vec<u8>,
    receipts: Vec<u8>,
    logs: Vec<u8>,
    filter: Vec<u8>,
}

fn synthetic_block() -> SyntheticBlock {
    let key = B256::repeat_byte(0x42);
    let contract = Address::repeat_byte(0xcc);
    let topic0 = keccak256("Ping(address,bytes)");
    let base_fee: u64 = 1_000_000_000;
    let mut envelopes = Vec::new();
    let mut receipts = Vec::new();
    let mut from = Address::ZERO;
    for i in 0..TXS as u64 {
        let tx = TxEip1559 {
            chain_id: 1,
            nonce: i,
            gas_limit: 100_000,
            max_fee_per_gas: 3 * u128::from(base_fee),
            max_priority_fee_per_gas: 1_000_000_000,
            to: TxKind::Call(contract),
            value: U256::from(i),
            access_list: Default::default(),
            input: Bytes::from(B256::from(U256::from(i)).to_vec()),
        };
        let sig = sign_message(key, tx.signature_hash()).unwrap();
        from = alloy_consensus::crypto::secp256k1::recover_signer(&sig, tx.signature_hash()).unwrap();
        envelopes.push(TxEnvelope::Eip1559(tx.into_signed(sig)));
        let logs = vec![
            Log {
                address: contract,
                data: LogData::new_unchecked(vec![topic0, from.into_word()], B256::from(U256::from(i)).to_vec().into()),
            },
            Log { address: contract, data: LogData::new_unchecked(vec![keccak256("Pong()")], Bytes::new()) },
        ];
        receipts.push(Receipt { status: Eip658Value::Eip658(true), cumulative_gas_used: 50_000 * (i + 1), logs });
    }
    let receipt_envelopes: Vec<ReceiptEnvelope> = receipts
        .iter()
        .map(|r| ReceiptEnvelope::Eip1559(ReceiptWithBloom::new(r.clone(), logs_bloom(&r.logs))))
        .collect();
    let mut bloom = Bloom::ZERO;
    for r in &receipt_envelopes {
        bloom |= *r.logs_bloom();
    }
    let header = Header {
        parent_hash: B256::repeat_byte(1),
        beneficiary: Address::repeat_byte(2),
        state_root: B256::repeat_byte(3),
        transactions_root: calculate_transaction_root(&envelopes),
        receipts_root: calculate_receipt_root(&receipt_envelopes),
        logs_bloom: bloom,
        number: 20_000_000,
        gas_limit: 36_000_000,
        gas_used: 50_000 * TXS as u64,
        timestamp: 1_760_000_000,
        extra_data: Bytes::from_static(b"synthetic"),
        mix_hash: B256::repeat_byte(4),
        base_fee_per_gas: Some(base_fee),
        withdrawals_root: Some(EMPTY_ROOT_HASH),
        blob_gas_used: Some(0),
        excess_blob_gas: Some(0),
        parent_beacon_block_root: Some(B256::repeat_byte(5)),
        requests_hash: Some(B256::repeat_byte(6)),
        ..Header::default()
    };
    let hash = header.hash_slow();
    let number = q(header.number);
    let txs: Vec<Value> = envelopes
        .iter()
        .enumerate()
        .map(|(i, env)| {
            let TxEnvelope::Eip1559(s) = env else { unreachable!() };
            let tx = s.tx();
            json!({
                "type": "0x2", "chainId": "0x1", "nonce": q(tx.nonce), "gas": q(tx.gas_limit),
                "maxFeePerGas": q(tx.max_fee_per_gas), "maxPriorityFeePerGas": q(tx.max_priority_fee_per_gas),
                "to": contract.to_string(), "value": format!("{:#x}", tx.value), "accessList": [], "input": hex(&tx.input),
                "r": format!("{:#x}", s.signature().r()), "s": format!("{:#x}", s.signature().s()),
                "yParity": q(u8::from(s.signature().v())), "v": q(u8::from(s.signature().v())),
                "hash": s.hash().to_string(), "blockHash": hash.to_string(), "blockNumber": number,
                "transactionIndex": q(i as u64), "from": from.to_string(), "gasPrice": q(2 * u128::from(base_fee)),
            })
        })
        .collect();
    let block = json!({
        "hash": hash.to_string(), "parentHash": header.parent_hash.to_string(),
        "sha3Uncles": header.ommers_hash.to_string(), "miner": header.beneficiary.to_string(),
        "stateRoot": header.state_root.to_string(), "transactionsRoot": header.transactions_root.to_string(),
        "receiptsRoot": header.receipts_root.to_string(), "logsBloom": hex(header.logs_bloom),
        "difficulty": "0x0", "number": number, "gasLimit": q(header.gas_limit), "gasUsed": q(header.gas_used),
        "timestamp": q(header.timestamp), "extraData": hex(&header.extra_data), "mixHash": header.mix_hash.to_string(),
        "nonce": hex(header.nonce), "baseFeePerGas": q(base_fee), "withdrawalsRoot": EMPTY_ROOT_HASH.to_string(),
        "blobGasUsed": "0x0", "excessBlobGas": "0x0", "parentBeaconBlockRoot": B256::repeat_byte(5).to_string(),
        "requestsHash": B256::repeat_byte(6).to_string(), "totalDifficulty": "0x0", "size": "0x0",
        "uncles": [], "withdrawals": [], "transactions": txs,
    });
    let mut log_index = 0u64;
    let mut all_logs = Vec::new();
    let receipts_json: Vec<Value> = receipts
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let tx_hash = envelopes[i].tx_hash().to_string();
            let logs: Vec<Value> = r
                .logs
                .iter()
                .map(|l| {
                    let v = json!({
                        "address": l.address.to_string(),
                        "topics": l.topics().iter().map(ToString::to_string).collect::<Vec<_>>(),
                        "data": hex(&l.data.data), "blockHash": hash.to_string(), "blockNumber": number,
                        "transactionHash": tx_hash, "transactionIndex": q(i as u64), "logIndex": q(log_index),
                        "removed": false,
                    });
                    log_index += 1;
                    all_logs.push(v.clone());
                    v
                })
                .collect();
            json!({
                "type": "0x2", "status": "0x1", "cumulativeGasUsed": q(r.cumulative_gas_used), "gasUsed": q(50_000u64),
                "logs": logs, "logsBloom": hex(logs_bloom(&r.logs)), "transactionHash": tx_hash,
                "transactionIndex": q(i as u64), "blockHash": hash.to_string(), "blockNumber": number,
                "from": from.to_string(), "to": contract.to_string(), "contractAddress": null,
                "effectiveGasPrice": q(2 * u128::from(base_fee)),
            })
        })
        .collect();
    // The Ping logs of every transaction: half the block's logs.
    let pings: Vec<Value> = all_logs.into_iter().filter(|l| l["topics"].as_array().unwrap().len() == 2).collect();
    let filter =
        json!({"blockHash": hash.to_string(), "address": contract.to_string(), "topics": [topic0.to_string()]});
    SyntheticBlock {
        block: serde_json::to_vec(&block).unwrap(),
        receipts: serde_json::to_vec(&receipts_json).unwrap(),
        logs: serde_json::to_vec(&pings).unwrap(),
        filter: serde_json::to_vec(&filter).unwrap(),
    }
}

/// Builds a trie of `leaves` (key preimage, value) and returns its root and the proof of `target`.
fn trie_proof(mut leaves: Vec<(B256, Vec<u8>)>, target: B256) -> (B256, Vec<String>) {
    leaves.sort_by_key(|(k, _)| keccak256(k));
    let path = Nibbles::unpack(keccak256(target));
    let mut hb = HashBuilder::default().with_proof_retainer(ProofRetainer::new(vec![path]));
    for (k, v) in &leaves {
        hb.add_leaf(Nibbles::unpack(keccak256(k)), v);
    }
    let root = hb.root();
    let proof = hb.take_proof_nodes().matching_nodes_sorted(&path).into_iter().map(|(_, n)| hex(n)).collect();
    (root, proof)
}

/// An `eth_getProof` answer for one account of an `ACCOUNTS`-account state trie, with one
/// storage proof from a `SLOTS`-slot storage trie.
fn synthetic_proof() -> (Vec<u8>, B256, Address, B256) {
    let slot = B256::from(U256::from(7));
    let storage: Vec<(B256, Vec<u8>)> =
        (1..=SLOTS).map(|i| (B256::from(U256::from(i)), alloy_rlp::encode(U256::from(i * 1000)))).collect();
    let (storage_root, storage_proof) = trie_proof(storage, slot);
    let target = Address::with_last_byte(7);
    let account = |i: u64| TrieAccount {
        nonce: i,
        balance: U256::from(i) * U256::from(10).pow(U256::from(18)),
        storage_root: if i == 7 { storage_root } else { EMPTY_ROOT_HASH },
        code_hash: if i == 7 { keccak256([0x60, 0x00]) } else { KECCAK_EMPTY },
    };
    let mut sorted: Vec<(Nibbles, Vec<u8>)> = (1..=ACCOUNTS)
        .map(|i| {
            let mut a = [0u8; 20];
            a[12..].copy_from_slice(&i.to_be_bytes());
            (Nibbles::unpack(keccak256(a)), alloy_rlp::encode(account(i)))
        })
        .collect();
    sorted.sort();
    let path = Nibbles::unpack(keccak256(target));
    let mut hb = HashBuilder::default().with_proof_retainer(ProofRetainer::new(vec![path]));
    for (k, v) in &sorted {
        hb.add_leaf(*k, v);
    }
    let state_root = hb.root();
    let account_proof: Vec<String> =
        hb.take_proof_nodes().matching_nodes_sorted(&path).into_iter().map(|(_, n)| hex(n)).collect();
    let a = account(7);
    let answer = json!({
        "address": target.to_string(), "balance": format!("{:#x}", a.balance), "nonce": q(a.nonce),
        "codeHash": a.code_hash.to_string(), "storageHash": a.storage_root.to_string(), "accountProof": account_proof,
        "storageProof": [{"key": slot.to_string(), "value": q(7000u64), "proof": storage_proof}],
    });
    (serde_json::to_vec(&answer).unwrap(), state_root, target, slot)
}

fn benches(c: &mut Criterion) {
    // Inputs, each verified once so the benches time the honest path.
    let header_json = fixture("block_2_hashes.json");
    verify_header(&header_json).unwrap();
    let tx_json = fixture("tx_eip1559.json");
    verify_transaction(&tx_json).unwrap();
    let anvil_state_root = verify_header(&fixture("block_4_hashes.json")).unwrap().state_root();
    let anvil_eoa: Address = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266".parse().unwrap();
    let anvil_proof = fixture("proof_eoa.json");
    verify_account_proof(&anvil_proof, anvil_state_root, anvil_eoa, &[]).unwrap();

    let synthetic = synthetic_block();
    let block = verify_block(&synthetic.block).unwrap();
    let receipts = verify_block_receipts(&synthetic.receipts, block.header()).unwrap();
    let filter = parse_log_filter(&synthetic.filter).unwrap();
    let logs = parse_logs(&synthetic.logs).unwrap();
    assert_eq!(verify_block_logs(&logs, &filter, &receipts).unwrap().len(), TXS);

    let (proof_json, state_root, address, slot) = synthetic_proof();
    let account = verify_account_proof(&proof_json, state_root, address, &[slot]).unwrap();
    assert_eq!(account.storage_value(slot), Some(U256::from(7000)));
    let no_storage = {
        let mut v: Value = serde_json::from_slice(&proof_json).unwrap();
        v["storageProof"] = json!([]);
        serde_json::to_vec(&v).unwrap()
    };
    let account_nodes = serde_json::from_slice::<Value>(&proof_json).unwrap()["accountProof"].as_array().unwrap().len();
    let storage_nodes =
        serde_json::from_slice::<Value>(&proof_json).unwrap()["storageProof"][0]["proof"].as_array().unwrap().len();
    eprintln!("synthetic account proof: {account_nodes} nodes; storage proof: {storage_nodes} nodes");

    c.bench_function("header/anvil_block_json", |b| b.iter(|| verify_header(black_box(&header_json)).unwrap()));
    c.bench_function("header/synthetic_200tx_block_json", |b| {
        b.iter(|| verify_header(black_box(&synthetic.block)).unwrap())
    });
    c.bench_function("transaction/eip1559_hash_and_sender", |b| {
        b.iter(|| verify_transaction(black_box(&tx_json)).unwrap())
    });
    c.bench_function("proof/account_anvil", |b| {
        b.iter(|| verify_account_proof(black_box(&anvil_proof), anvil_state_root, anvil_eoa, &[]).unwrap())
    });
    c.bench_function("proof/account_100k_trie", |b| {
        b.iter(|| verify_account_proof(black_box(&no_storage), state_root, address, &[]).unwrap())
    });
    c.bench_function("proof/account_and_one_storage_slot", |b| {
        b.iter(|| verify_account_proof(black_box(&proof_json), state_root, address, &[slot]).unwrap())
    });
    c.bench_function("receipts/root_and_blooms_200", |b| {
        b.iter(|| verify_block_receipts(black_box(&synthetic.receipts), block.header()).unwrap())
    });
    c.bench_function("block/full_200tx", |b| b.iter(|| verify_block(black_box(&synthetic.block)).unwrap()));
    c.bench_function("logs/parse_and_check_200_of_400", |b| {
        b.iter(|| {
            let logs = parse_logs(black_box(&synthetic.logs)).unwrap();
            verify_block_logs(&logs, &filter, &receipts).unwrap()
        })
    });
}

criterion_group! {
    name = verify;
    // 2 shared cores: short runs, enough samples for a stable median.
    config = Criterion::default().sample_size(30).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    targets = benches
}
criterion_main!(verify);
