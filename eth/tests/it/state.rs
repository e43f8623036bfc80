use rpcmesh_eth::{
    Address, B256, KECCAK_EMPTY, U256, VerifiedAccount, check_balance, check_code, check_storage_at,
    check_transaction_count, verify_account_proof,
};
use serde_json::{Value, json};

use crate::{edited, flip_digit, json, kind, plus_one, raw};

fn addr(name: &str) -> Address {
    json("addresses.json")[name].as_str().unwrap().parse().unwrap()
}

fn state_root() -> B256 {
    crate::block(4).header().state_root()
}

fn slot(n: u64) -> B256 {
    B256::from(U256::from(n))
}

fn contract() -> VerifiedAccount {
    verify_account_proof(&raw("proof_contract.json"), state_root(), addr("contract"), &[slot(0), slot(1), slot(2)])
        .unwrap()
}

#[test]
fn recorded_proofs_verify() {
    let eoa = verify_account_proof(&raw("proof_eoa.json"), state_root(), addr("eoa"), &[]).unwrap();
    assert!(eoa.exists() && eoa.nonce() > 0 && eoa.code_hash() == KECCAK_EMPTY);

    let c = contract();
    assert!(c.exists());
    assert_eq!(c.storage_value(slot(0)), Some(U256::from(3)), "three calls to the contract");
    assert_eq!(c.storage_value(slot(2)), Some(U256::ZERO), "absent slot proven zero");

    let absent = verify_account_proof(&raw("proof_absent.json"), state_root(), addr("never_used"), &[slot(0)]).unwrap();
    assert!(!absent.exists());
    assert_eq!(absent.balance(), U256::ZERO);
    assert_eq!(absent.storage_value(slot(0)), Some(U256::ZERO));

    let delegated =
        verify_account_proof(&raw("proof_delegated_eoa.json"), state_root(), addr("delegated_eoa"), &[slot(0)])
            .unwrap();
    assert_eq!(delegated.storage_value(slot(0)), Some(U256::from(2)), "the 7702 call and the delegated call");
}

#[test]
fn plain_answers_against_proofs() {
    let eoa = verify_account_proof(&raw("proof_eoa.json"), state_root(), addr("eoa"), &[]).unwrap();
    assert_eq!(check_balance(&raw("balance_eoa.json"), &eoa).unwrap(), eoa.balance());
    assert_eq!(check_transaction_count(&raw("nonce_eoa.json"), &eoa).unwrap(), eoa.nonce());
    assert!(check_code(&raw("code_eoa.json"), &eoa).unwrap().is_empty());

    let c = contract();
    assert_eq!(check_transaction_count(&raw("nonce_contract.json"), &c).unwrap(), 1);
    assert_eq!(check_code(&raw("code_contract.json"), &c).unwrap().len(), 98);
    for n in 0..3 {
        check_storage_at(&raw(&format!("storage_contract_{n}.json")), &c, slot(n)).unwrap();
    }
    let absent = verify_account_proof(&raw("proof_absent.json"), state_root(), addr("never_used"), &[]).unwrap();
    check_balance(&raw("balance_absent.json"), &absent).unwrap();
    let delegated =
        verify_account_proof(&raw("proof_delegated_eoa.json"), state_root(), addr("delegated_eoa"), &[]).unwrap();
    assert_eq!(check_code(&raw("code_delegated_eoa.json"), &delegated).unwrap().len(), 23, "0xef0100 || address");
}

#[test]
fn altered_plain_answers() {
    let eoa = verify_account_proof(&raw("proof_eoa.json"), state_root(), addr("eoa"), &[]).unwrap();
    let c = contract();
    let bump = |name: &str| serde_json::to_vec(&plus_one(&json(name))).unwrap();
    assert_eq!(kind(check_balance(&bump("balance_eoa.json"), &eoa)), "balance");
    assert_eq!(kind(check_transaction_count(&bump("nonce_eoa.json"), &eoa)), "nonce");
    assert_eq!(kind(check_code(b"\"0x\"", &c)), "code");
    assert_eq!(kind(check_code(&raw("code_contract.json"), &eoa)), "code");
    let code = json("code_contract.json");
    let changed = serde_json::to_vec(&Value::String(flip_digit(code.as_str().unwrap(), 40))).unwrap();
    assert_eq!(kind(check_code(&changed, &c)), "code");
    let word = json("storage_contract_0.json");
    let changed = serde_json::to_vec(&Value::String(flip_digit(word.as_str().unwrap(), 63))).unwrap();
    assert_eq!(kind(check_storage_at(&changed, &c, slot(0))), "storage");
    assert_eq!(kind(check_storage_at(&raw("storage_contract_1.json"), &c, slot(0))), "storage");
    assert_eq!(kind(check_storage_at(&raw("storage_contract_0.json"), &c, slot(9))), "storage_missing");
    assert_eq!(kind(check_balance(b"\"100\"", &eoa)), "malformed");
    assert_eq!(kind(check_storage_at(b"\"0x3\"", &c, slot(0))), "malformed", "a storage word is 32 bytes");
}

#[test]
fn altered_account_values() {
    let root = state_root();
    let eoa = addr("eoa");
    for member in ["balance", "nonce", "codeHash", "storageHash"] {
        let bytes = edited("proof_eoa.json", |p| {
            p[member] = match member {
                "balance" | "nonce" => plus_one(&p[member]),
                _ => json!(flip_digit(p[member].as_str().unwrap(), 7)),
            }
        });
        let err = verify_account_proof(&bytes, root, eoa, &[]).unwrap_err();
        assert_eq!(err.kind(), "account_value", "{member}: {err}");
        assert!(err.to_string().contains(member), "{member}: {err}");
    }
}

#[test]
fn claiming_absence_for_an_existing_account() {
    let root = state_root();
    // The empty account, with the real (presence) proof.
    let empty = |p: &mut Value| {
        p["balance"] = json!("0x0");
        p["nonce"] = json!("0x0");
        p["codeHash"] = json!(KECCAK_EMPTY.to_string());
        p["storageHash"] = json!(rpcmesh_eth::EMPTY_ROOT_HASH.to_string());
    };
    assert_eq!(kind(verify_account_proof(&edited("proof_eoa.json", empty), root, addr("eoa"), &[])), "account_value");
    // The empty account with the proof cut short (the leaf dropped).
    let cut = edited("proof_eoa.json", |p| {
        empty(p);
        p["accountProof"].as_array_mut().unwrap().pop();
    });
    assert_eq!(kind(verify_account_proof(&cut, root, addr("eoa"), &[])), "proof_invalid");
    // The never-used address's absence proof, presented for an existing account.
    let borrowed = edited("proof_absent.json", |p| p["address"] = json!(addr("eoa").to_string()));
    assert_eq!(kind(verify_account_proof(&borrowed, root, addr("eoa"), &[])), "proof_invalid");
    // Claiming presence for the never-used address.
    let present = edited("proof_absent.json", |p| p["balance"] = json!("0x1"));
    assert_eq!(kind(verify_account_proof(&present, root, addr("never_used"), &[])), "account_value");
}

#[test]
fn tampered_proofs() {
    let root = state_root();
    let original = json("proof_contract.json");
    let account_nodes = original["accountProof"].as_array().unwrap().len();
    for i in 0..account_nodes {
        for at in [3, 40, 101] {
            let bytes = edited("proof_contract.json", |p| {
                let node = p["accountProof"][i].as_str().unwrap().to_string();
                p["accountProof"][i] = json!(flip_digit(&node, at));
            });
            let k = kind(verify_account_proof(&bytes, root, addr("contract"), &[]));
            assert_eq!(k, "proof_invalid", "account node {i} digit {at}");
        }
    }
    let storage_nodes = original["storageProof"][0]["proof"].as_array().unwrap().len();
    for i in 0..storage_nodes {
        let bytes = edited("proof_contract.json", |p| {
            let node = p["storageProof"][0]["proof"][i].as_str().unwrap().to_string();
            p["storageProof"][0]["proof"][i] = json!(flip_digit(&node, 20));
        });
        assert_eq!(
            kind(verify_account_proof(&bytes, root, addr("contract"), &[])),
            "proof_invalid",
            "storage node {i}"
        );
    }
    // Nodes of another account's proof.
    let swapped = edited("proof_contract.json", |p| p["accountProof"] = json("proof_eoa.json")["accountProof"].clone());
    assert_eq!(kind(verify_account_proof(&swapped, root, addr("contract"), &[])), "proof_invalid");
    // Another state root (block 3's).
    let older = crate::block(3).header().state_root();
    assert_eq!(kind(verify_account_proof(&raw("proof_contract.json"), older, addr("contract"), &[])), "proof_invalid");
    // A proof for another address than asked.
    assert_eq!(kind(verify_account_proof(&raw("proof_eoa.json"), root, addr("contract"), &[])), "proof_address");
    let relabelled = edited("proof_eoa.json", |p| p["address"] = json!(addr("delegated_eoa").to_string()));
    assert_eq!(kind(verify_account_proof(&relabelled, root, addr("delegated_eoa"), &[])), "proof_invalid");
}

#[test]
fn altered_storage_values() {
    let root = state_root();
    let slots = [slot(0), slot(1), slot(2)];
    let verify = |bytes: Vec<u8>| kind(verify_account_proof(&bytes, root, addr("contract"), &slots));
    assert_eq!(
        verify(edited("proof_contract.json", |p| p["storageProof"][0]["value"] = json!("0x4"))),
        "storage_value"
    );
    assert_eq!(
        verify(edited("proof_contract.json", |p| p["storageProof"][1]["value"] = json!("0x0"))),
        "storage_value"
    );
    assert_eq!(
        verify(edited("proof_contract.json", |p| p["storageProof"][2]["value"] = json!("0x1"))),
        "storage_value"
    );
    // a slot's proof presented for another slot
    let moved = edited("proof_contract.json", |p| p["storageProof"][0]["key"] = p["storageProof"][2]["key"].clone());
    assert_ne!(verify(moved), "storage_missing");
    assert_eq!(
        verify(edited("proof_contract.json", |p| {
            p["storageProof"].as_array_mut().unwrap().pop();
        })),
        "storage_missing"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// Changing any byte of any node of the account or storage proof never verifies.
    #[test]
    fn any_changed_proof_byte_is_caught(storage in proptest::bool::ANY, node in 0usize..16, at in 0usize..600, xor in 1u8..=255) {
        let original = json("proof_contract.json");
        let nodes = if storage { &original["storageProof"][0]["proof"] } else { &original["accountProof"] };
        let nodes = nodes.as_array().unwrap();
        let i = node % nodes.len();
        let mut bytes: Vec<u8> = rpcmesh_eth::json::parse_data(nodes[i].as_str().unwrap()).unwrap().to_vec();
        let at = at % bytes.len();
        bytes[at] ^= xor;
        let changed = format!("0x{}", alloy_primitives::hex::encode(&bytes));
        let answer = edited("proof_contract.json", |p| {
            if storage { p["storageProof"][0]["proof"][i] = json!(changed) } else { p["accountProof"][i] = json!(changed) }
        });
        let result = verify_account_proof(&answer, state_root(), addr("contract"), &[slot(0)]);
        proptest::prop_assert!(result.is_err(), "node {} byte {} ^ {:#x} verified", i, at, xor);
    }
}
