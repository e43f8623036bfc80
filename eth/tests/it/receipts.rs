use rpcmesh_eth::{verify_block, verify_block_receipts, verify_block_receipts_with_transactions, verify_receipt};
use serde_json::json;

use crate::{edited, json, kind, plus_one, raw};

#[test]
fn every_recorded_receipt_set_verifies() {
    for n in 0..=4u64 {
        let block = crate::block(n);
        let name = format!("block_{n}_receipts.json");
        let plain = verify_block_receipts(&raw(&name), block.header()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let bound = verify_block_receipts_with_transactions(&raw(&name), &block).unwrap();
        assert!(bound.bound_to_transactions() && !plain.bound_to_transactions());
        assert_eq!(plain.receipts(), bound.receipts());
        assert_eq!(plain.receipts().len(), block.full_transactions().unwrap().len());
    }
    for hf in ["berlin", "london", "shanghai", "cancun", "prague"] {
        let block = verify_block(&raw(&format!("hf_{hf}_block_1_full.json"))).unwrap();
        verify_block_receipts_with_transactions(&raw(&format!("hf_{hf}_block_1_receipts.json")), &block)
            .unwrap_or_else(|e| panic!("{hf}: {e}"));
    }
    let r = crate::receipts(2);
    assert_eq!(r.receipts().iter().map(|r| r.logs.len()).collect::<Vec<_>>(), vec![0, 2, 2, 2, 0, 0]);
    assert_eq!(r.receipts()[5].status, Some(false), "the reverting creation");
    assert_eq!(r.logs().map(|l| l.log_index).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4, 5]);
    let block_1 = crate::receipts(1);
    let created = &block_1.receipts()[0];
    assert_eq!(created.contract_address, Some(json("addresses.json")["contract"].as_str().unwrap().parse().unwrap()));
}

#[test]
fn every_single_receipt_is_found_in_its_block() {
    for name in [
        "receipt_legacy.json",
        "receipt_legacy_call.json",
        "receipt_legacy_create.json",
        "receipt_eip2930.json",
        "receipt_eip1559.json",
        "receipt_eip1559_revert.json",
        "receipt_deploy.json",
        "receipt_eip4844.json",
        "receipt_eip7702.json",
        "receipt_delegated_call.json",
    ] {
        let n = u64::from_str_radix(&json(name)["blockNumber"].as_str().unwrap()[2..], 16).unwrap();
        let block = crate::block(n);
        let set = verify_block_receipts_with_transactions(&raw(&format!("block_{n}_receipts.json")), &block).unwrap();
        let r = verify_receipt(&raw(name), &set).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(r.transaction_hash.to_string(), json(name)["transactionHash"].as_str().unwrap());
        // ... and not in another block
        let other = if n == 2 { 3 } else { 2 };
        assert_eq!(kind(verify_receipt(&raw(name), &crate::receipts(other))), "receipt_not_in_block", "{name}");
    }
}

#[test]
fn block_receipts_alterations() {
    let f = "block_2_receipts.json";
    let header = crate::block(2);
    let check = |bytes: Vec<u8>| kind(verify_block_receipts(&bytes, header.header()));
    // consensus members: the root
    assert_eq!(check(edited(f, |r| r[0]["status"] = json!("0x0"))), "receipts_root");
    assert_eq!(check(edited(f, |r| r[1]["type"] = json!("0x2"))), "receipts_root");
    assert_eq!(check(edited(f, |r| r[1]["logs"][0]["data"] = json!("0x00"))), "receipts_root");
    let last = 5;
    assert_eq!(
        check(edited(f, |r| {
            r[last]["cumulativeGasUsed"] = plus_one(&r[last]["cumulativeGasUsed"]);
            r[last]["gasUsed"] = plus_one(&r[last]["gasUsed"]);
        })),
        "receipts_root"
    );
    // a receipt dropped or duplicated
    assert_eq!(
        check(edited(f, |r| {
            r.as_array_mut().unwrap().pop();
        })),
        "receipts_root"
    );
    // a log's address or topic: the receipt's own bloom
    assert_eq!(
        check(edited(f, |r| r[1]["logs"][0]["address"] = json!("0x0000000000000000000000000000000000000001"))),
        "receipt_bloom"
    );
    assert_eq!(
        check(edited(f, |r| r[2]["logs"][1]["topics"][0] = r[2]["logs"][0]["topics"][1].clone())),
        "receipt_bloom"
    );
    assert_eq!(check(edited(f, |r| r[3]["logsBloom"] = r[1]["logsBloom"].clone())), "receipt_bloom");
    // a log dropped: bloom (the Pong topic goes), or added: log indices shift
    assert_eq!(
        check(edited(f, |r| {
            r[1]["logs"].as_array_mut().unwrap().pop();
        })),
        "receipt_bloom"
    );
    assert_eq!(
        check(edited(f, |r| {
            let extra = r[1]["logs"][1].clone();
            r[1]["logs"].as_array_mut().unwrap().push(extra);
        })),
        "receipt_field"
    );
    // derived members
    assert_eq!(check(edited(f, |r| r[2]["gasUsed"] = plus_one(&r[2]["gasUsed"]))), "receipt_field");
    assert_eq!(check(edited(f, |r| r[2]["transactionIndex"] = json!("0x3"))), "receipt_field");
    assert_eq!(check(edited(f, |r| r[2]["blockNumber"] = json!("0x3"))), "receipt_field");
    assert_eq!(check(edited(f, |r| r[2]["logs"][0]["logIndex"] = json!("0x7"))), "receipt_field");
    assert_eq!(check(edited(f, |r| r[2]["logs"][0]["removed"] = json!(true))), "receipt_field");
    assert_eq!(check(edited(f, |r| r[2]["logs"][0]["blockTimestamp"] = json!("0x1"))), "receipt_field");
    // the receipts of another block
    assert_eq!(kind(verify_block_receipts(&raw("block_3_receipts.json"), header.header())), "receipt_field");
    assert_eq!(kind(verify_block_receipts(b"null", header.header())), "not_found");
}

#[test]
fn receipts_bound_to_transactions() {
    let f = "block_2_receipts.json";
    let block = crate::block(2);
    let check = |bytes: Vec<u8>| kind(verify_block_receipts_with_transactions(&bytes, &block));
    // receipt 0 has no logs, so its transactionHash is only tied to the transaction
    let other_tx = json("block_3_full.json")["transactions"][0]["hash"].clone();
    assert_eq!(check(edited(f, |r| r[0]["transactionHash"] = other_tx.clone())), "receipt_field");
    assert_eq!(
        check(edited(f, |r| r[0]["from"] = json!("0x0000000000000000000000000000000000000001"))),
        "receipt_field"
    );
    assert_eq!(check(edited(f, |r| r[0]["to"] = json!(null))), "receipt_field");
    assert_eq!(
        check(edited(f, |r| r[4]["contractAddress"] = json!("0x0000000000000000000000000000000000000001"))),
        "receipt_field"
    );
    assert_eq!(check(edited(f, |r| r[2]["effectiveGasPrice"] = plus_one(&r[2]["effectiveGasPrice"]))), "receipt_field");
    assert_eq!(
        check(edited(f, |r| {
            r.as_array_mut().unwrap().pop();
        })),
        "receipt_count"
    );
    // a hashes-only block cannot bind
    let hashes = verify_block(&raw("block_2_hashes.json")).unwrap();
    assert_eq!(kind(verify_block_receipts_with_transactions(&raw(f), &hashes)), "malformed");
}

#[test]
fn single_receipt_alterations() {
    let set = verify_block_receipts_with_transactions(&raw("block_2_receipts.json"), &crate::block(2)).unwrap();
    let f = "receipt_eip1559.json";
    verify_receipt(&raw(f), &set).unwrap();
    for (what, bytes) in [
        ("status", edited(f, |r| r["status"] = json!("0x0"))),
        ("gasUsed", edited(f, |r| r["gasUsed"] = plus_one(&r["gasUsed"]))),
        ("cumulativeGasUsed", edited(f, |r| r["cumulativeGasUsed"] = plus_one(&r["cumulativeGasUsed"]))),
        ("logs[0].data", edited(f, |r| r["logs"][0]["data"] = json!("0x"))),
        ("logs[1].topics", edited(f, |r| r["logs"][1]["topics"] = json!([]))),
        (
            "logs",
            edited(f, |r| {
                r["logs"].as_array_mut().unwrap().pop();
            }),
        ),
        (
            "logs",
            edited(f, |r| {
                let extra = r["logs"][0].clone();
                r["logs"].as_array_mut().unwrap().push(extra);
            }),
        ),
        ("type", edited(f, |r| r["type"] = json!("0x1"))),
        ("from", edited(f, |r| r["from"] = json!("0x0000000000000000000000000000000000000001"))),
        ("contractAddress", edited(f, |r| r["contractAddress"] = json!("0x0000000000000000000000000000000000000001"))),
        ("transactionIndex", edited(f, |r| r["transactionIndex"] = json!("0x0"))),
        ("blockTimestamp", edited(f, |r| r["blockTimestamp"] = json!(1))),
    ] {
        let err = verify_receipt(&bytes, &set).unwrap_err();
        assert_eq!(err.kind(), "receipt_mismatch", "{what}: {err}");
        assert!(err.to_string().contains(what), "{what}: {err}");
    }
    let unknown = edited(f, |r| r["transactionHash"] = json!(format!("0x{}", "11".repeat(32))));
    assert_eq!(kind(verify_receipt(&unknown, &set)), "receipt_not_in_block");
}
