use rpcmesh_eth::{Address, BlockId, verify_block, verify_transaction, verify_transaction_by_hash};
use serde_json::{Value, json};

use crate::{edited, flip_digit, json, kind, plus_one, raw};

const TXS: [(&str, u8); 10] = [
    ("tx_legacy.json", 0),
    ("tx_legacy_call.json", 0),
    ("tx_legacy_create.json", 0),
    ("tx_eip2930.json", 1),
    ("tx_eip1559.json", 2),
    ("tx_eip1559_revert.json", 2),
    ("tx_deploy.json", 2),
    ("tx_eip4844.json", 3),
    ("tx_eip7702.json", 4),
    ("tx_delegated_call.json", 2),
];

#[test]
fn every_recorded_transaction_verifies_and_is_in_its_block() {
    for (name, ty) in TXS {
        let answer = json(name);
        let hash = answer["hash"].as_str().unwrap().parse().unwrap();
        let tx = verify_transaction_by_hash(&raw(name), hash).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(tx.tx_type(), ty, "{name}");
        assert_eq!(tx.from(), answer["from"].as_str().unwrap().parse::<Address>().unwrap(), "{name}");
        assert_eq!(tx.chain_id(), Some(31337), "{name}");
        let placement = tx.placement().unwrap();
        let block = crate::block(placement.block_number);
        block.transaction(&tx).unwrap();
        tx.expect_position(BlockId::Hash(block.hash()), placement.index).unwrap();
        // ... and not in another block
        let other = crate::block(if placement.block_number == 4 { 3 } else { 4 });
        assert_eq!(kind(other.transaction(&tx)), "tx_field", "{name}");
        // not the transaction asked for
        assert_eq!(kind(verify_transaction_by_hash(&raw(name), other.header().parent_hash())), "unexpected_tx");
    }
}

#[test]
fn by_block_and_index_answers() {
    let block_2 = crate::block(2);
    let tx = verify_transaction(&raw("tx_block2_index1.json")).unwrap();
    tx.expect_position(BlockId::Hash(block_2.hash()), 1).unwrap();
    block_2.transaction(&tx).unwrap();
    assert_eq!(kind(tx.expect_position(BlockId::Hash(block_2.hash()), 2)), "tx_field");
    assert_eq!(kind(tx.expect_position(BlockId::Number(3), 1)), "tx_field");

    let tx = verify_transaction(&raw("tx_block3_index0.json")).unwrap();
    tx.expect_position(BlockId::Number(3), 0).unwrap();
    // An answer for index 1 that lies about its index is caught by the block.
    let lying = verify_transaction(&edited("tx_block3_index0.json", |t| t["transactionIndex"] = json!("0x1"))).unwrap();
    assert_eq!(kind(crate::block(3).transaction(&lying)), "tx_field");
}

/// For each type, every signed member: changing it must move the hash.
#[test]
fn changing_any_signed_member_moves_the_hash() {
    let common = ["nonce", "gas", "value", "input", "r", "s"];
    let cases: [(&str, &[&str]); 5] = [
        ("tx_legacy.json", &["gasPrice", "to", "v"]),
        ("tx_eip2930.json", &["chainId", "gasPrice", "to", "yParity", "accessList"]),
        ("tx_eip1559.json", &["chainId", "maxFeePerGas", "maxPriorityFeePerGas", "to", "yParity", "accessList"]),
        ("tx_eip4844.json", &["chainId", "maxFeePerGas", "maxFeePerBlobGas", "blobVersionedHashes", "to", "yParity"]),
        ("tx_eip7702.json", &["chainId", "maxPriorityFeePerGas", "authorizationList", "to", "yParity"]),
    ];
    for (name, specific) in cases {
        for member in common.iter().chain(specific) {
            let changed = edited(name, |t| {
                let v = t[*member].clone();
                t[*member] = match *member {
                    "input" => json!("0x00ff"),
                    "to" => json!("0x0000000000000000000000000000000000000001"),
                    "yParity" => json!(if v == json!("0x0") { "0x1" } else { "0x0" }),
                    // v + 2: same parity, another chain id
                    "v" => json!(format!("{:#x}", u64::from_str_radix(&v.as_str().unwrap()[2..], 16).unwrap() + 2)),
                    "accessList" => {
                        json!([{"address": "0x0000000000000000000000000000000000000001", "storageKeys": []}])
                    }
                    "blobVersionedHashes" => json!([flip_digit(v[0].as_str().unwrap(), 10)]),
                    "authorizationList" => {
                        let mut a = v.clone();
                        a[0]["nonce"] = plus_one(&a[0]["nonce"]);
                        a
                    }
                    _ => plus_one(&v),
                };
                if *member == "yParity" {
                    t["v"] = t["yParity"].clone();
                }
                if *member == "v" {
                    t["chainId"] = plus_one(&t["chainId"]);
                }
            });
            let k = kind(verify_transaction(&changed));
            assert!(
                k == "tx_hash" || (k == "tx_signature" && (*member == "r" || *member == "s")),
                "{name}.{member}: {k}"
            );
        }
    }
}

#[test]
fn sender_and_signature_lies() {
    for (name, _) in TXS {
        let forged = edited(name, |t| t["from"] = json!("0x000000000000000000000000000000000000dead"));
        assert_eq!(kind(verify_transaction(&forged)), "tx_sender", "{name}");
    }
    // A typed transaction whose yParity and v disagree.
    let split = edited("tx_eip1559.json", |t| t["v"] = json!("0x1"));
    let original_y = json("tx_eip1559.json")["yParity"].clone();
    if original_y == json!("0x0") {
        assert_eq!(kind(verify_transaction(&split)), "malformed");
    }
    // A legacy chainId member that disagrees with v.
    assert_eq!(kind(verify_transaction(&edited("tx_legacy.json", |t| t["chainId"] = json!("0x1")))), "malformed");
    // Missing type-specific members.
    for (name, member) in
        [("tx_eip1559.json", "maxFeePerGas"), ("tx_eip2930.json", "accessList"), ("tx_eip4844.json", "to")]
    {
        let missing = edited(name, |t| {
            t.as_object_mut().unwrap().remove(member);
        });
        assert_eq!(kind(verify_transaction(&missing)), "malformed", "{name} without {member}");
    }
    assert_eq!(kind(verify_transaction(b"null")), "not_found");
}

#[test]
fn a_consistently_resigned_lie_is_caught_by_recovery() {
    // Re-hash after changing the signature so the hash matches: the recovered sender changes.
    use alloy_consensus::{SignableTransaction, TxEip1559};
    use alloy_primitives::{Signature, TxKind, U256};
    let t: Value = json("tx_eip1559.json");
    let q = |m: &str| u128::from_str_radix(&t[m].as_str().unwrap()[2..], 16).unwrap();
    let tx = TxEip1559 {
        chain_id: q("chainId") as u64,
        nonce: q("nonce") as u64,
        gas_limit: q("gas") as u64,
        max_fee_per_gas: q("maxFeePerGas"),
        max_priority_fee_per_gas: q("maxPriorityFeePerGas"),
        to: TxKind::Call(t["to"].as_str().unwrap().parse().unwrap()),
        value: U256::from(q("value")),
        access_list: Default::default(),
        input: t["input"].as_str().unwrap().parse().unwrap(),
    };
    let r: U256 = t["r"].as_str().unwrap().parse().unwrap();
    let s: U256 = t["s"].as_str().unwrap().parse().unwrap();
    let honest = tx.clone().into_signed(Signature::new(r, s, t["yParity"] == json!("0x1")));
    assert_eq!(honest.hash().to_string(), t["hash"].as_str().unwrap(), "fixture rebuilt exactly");
    let other_s = s - U256::from(1);
    let resigned = tx.into_signed(Signature::new(r, other_s, t["yParity"] == json!("0x1")));
    let lie = edited("tx_eip1559.json", |t| {
        t["s"] = json!(format!("{other_s:#x}"));
        t["hash"] = json!(resigned.hash().to_string());
    });
    let k = kind(verify_transaction(&lie));
    assert!(k == "tx_sender" || k == "tx_signature", "{k}");
    // In the block, the same lie also breaks the transactions root (after the sender check).
    let block_lie = edited("block_2_full.json", |b| {
        b["transactions"][2]["s"] = json!(format!("{other_s:#x}"));
        b["transactions"][2]["hash"] = json!(resigned.hash().to_string());
    });
    assert!(verify_block(&block_lie).is_err());
}

#[test]
fn blob_sidecar_members_are_ignored() {
    let t = json("tx_eip4844.json");
    assert!(t.get("blobs").is_some(), "anvil 1.7.1 returns the sidecar with the transaction");
    let without = edited("tx_eip4844.json", |t| {
        for m in ["blobs", "commitments", "proofs"] {
            t.as_object_mut().unwrap().remove(m);
        }
    });
    assert_eq!(verify_transaction(&without).unwrap(), verify_transaction(&raw("tx_eip4844.json")).unwrap());
}
