use proptest::prelude::*;
use rpcmesh_eth::{BlockId, BlockTransactions, verify_block, verify_block_of, verify_header};
use serde_json::{Value, json};

use crate::{edited, flip_digit, json, kind, plus_one, raw};

#[test]
fn every_recorded_block_verifies() {
    for n in 0..=4u64 {
        let full = verify_block_of(&raw(&format!("block_{n}_full.json")), BlockId::Number(n)).unwrap();
        let hashes = verify_block(&raw(&format!("block_{n}_hashes.json"))).unwrap();
        assert_eq!(full.header(), hashes.header());
        if n > 0 {
            assert!(matches!(hashes.transactions(), BlockTransactions::Hashes(_)));
        }
        assert_eq!(full.transaction_hashes(), hashes.transaction_hashes());
        full.expect(BlockId::Hash(full.hash())).unwrap();
        assert_eq!(full.withdrawals(), Some(&[][..]));
    }
    let by_hash = verify_block(&raw("block_2_by_hash_full.json")).unwrap();
    assert_eq!(by_hash, verify_block(&raw("block_2_full.json")).unwrap());
    // one of each transaction type anvil produced
    let mut types: Vec<u8> = (0..=4)
        .flat_map(|n| crate::block(n).full_transactions().unwrap().iter().map(|t| t.tx_type()).collect::<Vec<_>>())
        .collect();
    types.sort();
    types.dedup();
    assert_eq!(types, vec![0, 1, 2, 3, 4]);
}

#[test]
fn every_hardfork_header_shape_verifies() {
    // (fixture, baseFee, withdrawalsRoot, blobGasUsed, parentBeaconBlockRoot, requestsHash)
    for (hf, shape) in [
        ("berlin", [false, false, false, false, false]),
        ("london", [true, false, false, false, false]),
        ("shanghai", [true, true, false, false, false]),
        ("cancun", [true, true, true, true, false]),
        ("prague", [true, true, true, true, true]),
    ] {
        let name = format!("hf_{hf}_block_1_full.json");
        let block = verify_block(&raw(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let h = block.header().header();
        let got = [
            h.base_fee_per_gas.is_some(),
            h.withdrawals_root.is_some(),
            h.blob_gas_used.is_some(),
            h.parent_beacon_block_root.is_some(),
            h.requests_hash.is_some(),
        ];
        assert_eq!(got, shape, "{hf}");
        assert_eq!(block.full_transactions().unwrap().len(), 2, "{hf}");
    }
    // The latest-hardfork chain (block 0) carries all of Prague's fields.
    assert!(crate::block(0).header().header().requests_hash.is_some());
}

/// A different, well-formed value for a header member.
fn other_value(member: &str, v: &Value) -> Value {
    match member {
        "difficulty" | "number" | "gasLimit" | "gasUsed" | "timestamp" | "baseFeePerGas" | "blobGasUsed"
        | "excessBlobGas" => plus_one(v),
        "extraData" => json!("0x01"),
        _ => Value::String(flip_digit(v.as_str().unwrap(), 5)),
    }
}

const HEADER_MEMBERS: [&str; 22] = [
    "hash",
    "parentHash",
    "sha3Uncles",
    "miner",
    "stateRoot",
    "transactionsRoot",
    "receiptsRoot",
    "logsBloom",
    "difficulty",
    "number",
    "gasLimit",
    "gasUsed",
    "timestamp",
    "extraData",
    "mixHash",
    "nonce",
    "baseFeePerGas",
    "withdrawalsRoot",
    "blobGasUsed",
    "excessBlobGas",
    "parentBeaconBlockRoot",
    "requestsHash",
];

#[test]
fn changing_any_header_member_breaks_the_hash() {
    for fixture in
        ["block_2_hashes.json", "block_2_full.json", "hf_berlin_block_1_full.json", "hf_cancun_block_1_full.json"]
    {
        let original = json(fixture);
        for member in HEADER_MEMBERS {
            let Some(v) = original.get(member) else { continue };
            let changed = edited(fixture, |b| b[member] = other_value(member, v));
            assert_eq!(kind(verify_header(&changed)), "header_hash", "{fixture}: {member}");
            assert_eq!(kind(verify_block(&changed)), "header_hash", "{fixture}: {member}");
        }
    }
}

#[test]
fn dropping_or_adding_fork_fields() {
    // The last fork field dropped: a shorter RLP list, another hash.
    let dropped = edited("block_2_hashes.json", |b| {
        b.as_object_mut().unwrap().remove("requestsHash");
    });
    assert_eq!(kind(verify_header(&dropped)), "header_hash");
    // A middle one dropped: a gap, malformed.
    let gap = edited("block_2_hashes.json", |b| {
        b.as_object_mut().unwrap().remove("parentBeaconBlockRoot");
    });
    assert_eq!(kind(verify_header(&gap)), "malformed");
    // A field of a later fork added to an older header.
    let added = edited("hf_shanghai_block_1_full.json", |b| b["blobGasUsed"] = json!("0x0"));
    assert_eq!(kind(verify_header(&added)), "header_hash");
}

#[test]
fn not_the_block_asked_for() {
    let bytes = raw("block_2_hashes.json");
    assert_eq!(kind(verify_block_of(&bytes, BlockId::Number(3))), "unexpected_block");
    let block_3 = crate::block(3);
    assert_eq!(kind(verify_block_of(&bytes, BlockId::Hash(block_3.hash()))), "unexpected_block");
    assert_eq!(kind(verify_block(b"null")), "not_found");
}

#[test]
fn body_alterations() {
    let f = "block_2_full.json";
    // a signed field of a transaction
    assert_eq!(kind(verify_block(&edited(f, |b| b["transactions"][0]["value"] = json!("0x1")))), "tx_hash");
    // its sender
    assert_eq!(
        kind(verify_block(
            &edited(f, |b| b["transactions"][1]["from"] = json!("0x0000000000000000000000000000000000000001"))
        )),
        "tx_sender"
    );
    // its signature
    assert_eq!(
        kind(verify_block(&edited(f, |b| b["transactions"][2]["r"] = plus_one(&b["transactions"][2]["r"])))),
        "tx_hash"
    );
    // its placement
    assert_eq!(kind(verify_block(&edited(f, |b| b["transactions"][3]["transactionIndex"] = json!("0x4")))), "tx_field");
    assert_eq!(kind(verify_block(&edited(f, |b| b["transactions"][3]["blockNumber"] = json!("0x3")))), "tx_field");
    let other_hash = crate::block(3).hash().to_string();
    assert_eq!(kind(verify_block(&edited(f, |b| b["transactions"][0]["blockHash"] = json!(other_hash)))), "tx_field");
    // the effective gas price of an EIP-1559 transaction
    assert_eq!(
        kind(verify_block(
            &edited(f, |b| b["transactions"][2]["gasPrice"] = plus_one(&b["transactions"][2]["gasPrice"]))
        )),
        "tx_field"
    );
    // a transaction dropped from the end
    assert_eq!(
        kind(verify_block(&edited(f, |b| {
            b["transactions"].as_array_mut().unwrap().pop();
        }))),
        "tx_root"
    );
    // two transactions swapped, indices fixed up
    let swapped = edited(f, |b| {
        let txs = b["transactions"].as_array_mut().unwrap();
        txs.swap(0, 3);
        txs[0]["transactionIndex"] = json!("0x0");
        txs[3]["transactionIndex"] = json!("0x3");
    });
    assert_eq!(kind(verify_block(&swapped)), "tx_root");
    // a transaction of another block inserted, placement fixed up
    let foreign = edited(f, |b| {
        let mut tx = json("block_4_full.json")["transactions"][0].clone();
        tx["blockHash"] = b["hash"].clone();
        tx["blockNumber"] = b["number"].clone();
        tx["transactionIndex"] = json!("0x6");
        b["transactions"].as_array_mut().unwrap().push(tx);
    });
    assert_eq!(kind(verify_block(&foreign)), "tx_root");
    // withdrawals added or removed
    let withdrawal = json!({"index":"0x0","validatorIndex":"0x1","address":"0x0000000000000000000000000000000000000001","amount":"0x1"});
    assert_eq!(kind(verify_block(&edited(f, |b| b["withdrawals"] = json!([withdrawal])))), "withdrawals_root");
    assert_eq!(
        kind(verify_block(&edited(f, |b| {
            b.as_object_mut().unwrap().remove("withdrawals");
        }))),
        "withdrawals_root"
    );
    // an uncle claimed
    assert_eq!(kind(verify_block(&edited(f, |b| b["uncles"] = json!([b["parentHash"].clone()])))), "ommers");
    // hashes mixed with objects
    let mixed = edited(f, |b| b["transactions"][1] = b["transactions"][1]["hash"].clone());
    assert_eq!(kind(verify_block(&mixed)), "malformed");
}

/// The header members that are hex strings, for the property test below.
fn hex_members() -> Vec<(&'static str, String)> {
    let b = json("block_2_hashes.json");
    HEADER_MEMBERS
        .iter()
        .filter_map(|m| b.get(*m).and_then(Value::as_str).map(|s| (*m, s.to_string())))
        .filter(|(_, s)| s.len() > 2)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Changing any hex digit of any header member never verifies.
    #[test]
    fn flipping_any_header_digit_never_verifies(member in 0usize..22, at in 0usize..600, digit in 0u32..16) {
        let members = hex_members();
        let (name, value) = &members[member % members.len()];
        let i = 2 + at % (value.len() - 2);
        let new_digit = char::from_digit(digit, 16).unwrap();
        let old_digit = value.as_bytes()[i] as char;
        prop_assume!(old_digit.to_ascii_lowercase() != new_digit);
        let mut changed = value.clone();
        changed.replace_range(i..=i, &new_digit.to_string());
        let bytes = edited("block_2_hashes.json", |b| b[*name] = Value::String(changed.clone()));
        prop_assert!(verify_header(&bytes).is_err(), "{} = {} verified", name, changed);
    }
}

/// anvil 1.7.1 commits to blob transactions with their sidecar (see the block module docs).
#[test]
fn blob_sidecars_in_the_transactions_root() {
    assert!(crate::block(3).root_includes_blob_sidecars());
    assert!(!crate::block(2).root_includes_blob_sidecars());
    // Without the sidecar the consensus encoding is all there is, and anvil's root does not match it.
    let stripped = edited("block_3_full.json", |b| {
        for m in ["blobs", "commitments", "cellProofs"] {
            b["transactions"][0].as_object_mut().unwrap().remove(m);
        }
    });
    assert_eq!(kind(verify_block(&stripped)), "tx_root");
    // Any change to the sidecar breaks that root.
    for member in ["blobs", "commitments", "cellProofs"] {
        let changed = edited("block_3_full.json", |b| {
            let item = b["transactions"][0][member][0].as_str().unwrap().to_string();
            b["transactions"][0][member][0] = json!(flip_digit(&item, 100));
        });
        assert_eq!(kind(verify_block(&changed)), "tx_root", "{member}");
    }
}
