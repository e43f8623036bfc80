//! What evidence counts as censorship (a label) rather than a lie (a cordon).

use rpcmesh_protocol::messages::{BlockRef, Evidence, LieKind, MessageHeader, Receipt};
use rpcmesh_protocol::{Identity, Signed};

use super::*;

const WATCHED: &str = "0xa0ee7a142d267c1f36714e4a8f75612f20a79720";

fn bundle(kind: LieKind, request: &str, response: &str) -> Evidence {
    let accused = Identity::from_secret_bytes([9; 32]);
    let receipt = Receipt {
        header: MessageHeader::new(String::from("t"), 1, 1, 1),
        requester: accused.public_key(),
        chain_id: 1,
        request_digest: [0; 32],
        response_digest: [0; 32],
        head: None,
    };
    Evidence {
        header: MessageHeader::new(String::from("t"), 1, 1, 1),
        accused: accused.public_key(),
        chain_id: 1,
        kind,
        request: request.as_bytes().to_vec(),
        response: response.as_bytes().to_vec(),
        receipt: Signed::sign(receipt, &accused),
        anchor: BlockRef { number: 1, hash: [0; 32] },
        material: Vec::new(),
    }
}

fn read(method: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":["{WATCHED}","0x1"]}}"#)
}

#[test]
fn an_empty_state_answer_proven_wrong_is_a_filter_of_its_account() {
    for (method, empty) in
        [("eth_getBalance", "\"0x0\""), ("eth_getTransactionCount", "\"0x0\""), ("eth_getCode", "\"0x\"")]
    {
        let ev = bundle(LieKind::State, &read(method), &format!(r#"{{"jsonrpc":"2.0","id":1,"result":{empty}}}"#));
        assert_eq!(filtered_subjects(&ev), Some(vec![WATCHED.to_string()]), "{method}");
    }
    let lie = bundle(LieKind::State, &read("eth_getBalance"), r#"{"jsonrpc":"2.0","id":1,"result":"0x5"}"#);
    assert_eq!(filtered_subjects(&lie), None, "a wrong non-empty answer is a lie, not a filter");
    let header = bundle(LieKind::Header, &read("eth_getBalance"), r#"{"jsonrpc":"2.0","id":1,"result":"0x0"}"#);
    assert_eq!(filtered_subjects(&header), None);
}

#[test]
fn omitted_logs_and_refused_transactions_are_filters() {
    let logs = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"eth_getLogs","params":[{{"address":"{WATCHED}"}}]}}"#);
    let ev = bundle(LieKind::LogOmitted, &logs, r#"{"jsonrpc":"2.0","id":1,"result":[]}"#);
    assert_eq!(filtered_subjects(&ev), Some(vec![WATCHED.to_string()]));
    let topic_only = r#"{"jsonrpc":"2.0","id":1,"method":"eth_getLogs","params":[{"topics":["0x01"]}]}"#;
    let ev = bundle(LieKind::LogOmitted, topic_only, r#"{"jsonrpc":"2.0","id":1,"result":[]}"#);
    assert_eq!(filtered_subjects(&ev), Some(vec!["eth_getLogs".to_string()]), "no account: the method");

    let to = parse_address(WATCHED).unwrap();
    let raw = rpcmesh_eth::dry_transfer(1, rpcmesh_eth::B256::repeat_byte(5), to, 1).unwrap();
    let send =
        format!(r#"{{"jsonrpc":"2.0","id":1,"method":"eth_sendRawTransaction","params":["0x{}"]}}"#, hex::encode(&raw));
    let refused = r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32003,"message":"transaction rejected"}}"#;
    let ev = bundle(LieKind::Refusal, &send, refused);
    assert_eq!(filtered_subjects(&ev), Some(vec![WATCHED.to_string()]), "the recipient, not the random sender");
    assert!(refusal::recheck(&ev).is_ok());
    let honest =
        r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32003,"message":"insufficient funds for gas * price + value"}}"#;
    assert!(refusal::recheck(&bundle(LieKind::Refusal, &send, honest)).is_err(), "a node-level refusal proves nothing");
    let other_chain = bundle(LieKind::Refusal, &send, refused);
    let other_chain = Evidence { chain_id: 5, ..other_chain };
    assert!(refusal::recheck(&other_chain).is_err(), "signed for another chain");
    assert!(refusal::recheck(&bundle(LieKind::Refusal, &read("eth_getBalance"), refused)).is_err());
}

#[test]
fn addresses_parse_strictly() {
    assert!(parse_address(WATCHED).is_some());
    assert!(parse_address(&WATCHED.to_uppercase().replace("0X", "0x")).is_some());
    assert!(parse_address(&WATCHED[2..]).is_none(), "0x required");
    assert!(parse_address("0x1234").is_none());
    assert!(parse_address("0xzz0e7a142d267c1f36714e4a8f75612f20a79720").is_none());
    assert_eq!(subject_of(&parse_address(&WATCHED.to_uppercase().replace("0X", "0x")).unwrap()), WATCHED);
}
