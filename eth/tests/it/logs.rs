use rpcmesh_eth::{
    EthError, LogFilter, VerifiedLog, bloom_may_match, group_logs_by_block, parse_log_filter, parse_logs,
    verify_block_logs,
};
use serde_json::{Value, json};

use crate::{edited, json, kind, raw};

const CASES: [(&str, &str); 5] = [
    ("filter_all.json", "logs_all.json"),
    ("filter_contract.json", "logs_contract.json"),
    ("filter_ping_from_acc3.json", "logs_ping_from_acc3.json"),
    ("filter_block2_by_hash.json", "logs_block2_by_hash.json"),
    ("filter_delegated.json", "logs_delegated.json"),
];

/// Checks a whole `eth_getLogs` answer over blocks 0..=4 the way a caller would: per block,
/// receipts when the bloom may match or the answer has logs there.
fn check_answer(filter: &LogFilter, answer: &[u8]) -> Result<Vec<VerifiedLog>, EthError> {
    let logs = parse_logs(answer)?;
    let groups = group_logs_by_block(&logs);
    let mut verified = Vec::new();
    for n in 0..=4 {
        let block = crate::block(n);
        if filter.covers_block(n, block.hash()) != Some(true) {
            continue;
        }
        let mine: Vec<_> = groups.iter().filter(|(h, _)| *h == block.hash()).flat_map(|(_, l)| l.clone()).collect();
        if mine.is_empty() && !bloom_may_match(block.header().logs_bloom(), filter) {
            continue;
        }
        verified.extend(verify_block_logs(&mine, filter, &crate::receipts(n))?);
    }
    let claimed_blocks: usize = groups.iter().map(|(_, l)| l.len()).sum();
    assert_eq!(claimed_blocks, logs.len());
    Ok(verified)
}

#[test]
fn every_recorded_answer_verifies() {
    for (filter, answer) in CASES {
        let f = parse_log_filter(&raw(filter)).unwrap();
        let verified = check_answer(&f, &raw(answer)).unwrap_or_else(|e| panic!("{answer}: {e}"));
        assert_eq!(verified.len(), json(answer).as_array().unwrap().len(), "{answer}");
    }
    // anvil returns the one-topic Pong log for `topics: [null, null]` (the lenient rule).
    assert_eq!(json("logs_delegated.json").as_array().unwrap().len(), 2);
}

#[test]
fn blooms_skip_blocks_without_matches() {
    let contract = parse_log_filter(&raw("filter_contract.json")).unwrap();
    assert!(!bloom_may_match(crate::block(1).header().logs_bloom(), &contract), "the deploy block has no logs");
    assert!(bloom_may_match(crate::block(2).header().logs_bloom(), &contract));
    assert!(
        !bloom_may_match(crate::block(4).header().logs_bloom(), &contract),
        "block 4's logs come from the delegated EOA"
    );
}

/// Edits one log of an answer and checks the whole answer.
fn altered(filter: &str, answer: &str, edit: impl FnOnce(&mut Vec<Value>)) -> &'static str {
    let f = parse_log_filter(&raw(filter)).unwrap();
    let bytes = edited(answer, |a| edit(a.as_array_mut().unwrap()));
    kind(check_answer(&f, &bytes))
}

#[test]
fn altered_logs() {
    let (f, a) = CASES[0];
    assert_eq!(altered(f, a, |l| l[1]["data"] = json!("0x01")), "log_altered");
    assert_eq!(altered(f, a, |l| l[0]["data"] = json!("0x")), "log_altered");
    assert_eq!(altered(f, a, |l| l[2]["topics"][1] = l[4]["topics"][1].clone()), "log_altered");
    assert_eq!(altered(f, a, |l| l[3]["address"] = json!("0x0000000000000000000000000000000000000001")), "log_altered");
    assert_eq!(altered(f, a, |l| l[3]["transactionHash"] = l[0]["transactionHash"].clone()), "log_altered");
    assert_eq!(altered(f, a, |l| l[3]["transactionIndex"] = json!("0x0")), "log_altered");
    assert_eq!(altered(f, a, |l| l[3]["blockNumber"] = json!("0x3")), "log_altered");
    assert_eq!(altered(f, a, |l| l[3]["removed"] = json!(true)), "log_altered");
    assert_eq!(altered(f, a, |l| l[3]["blockTimestamp"] = json!("0x1")), "log_altered");
    // two logs swapped (indices out of order)
    assert_eq!(altered(f, a, |l| l.swap(0, 1)), "log_altered");
    // a log index that does not exist in the block
    assert_eq!(altered(f, a, |l| l[5]["logIndex"] = json!("0x9")), "log_fabricated");
    // an extra, made-up log
    assert_eq!(
        altered(f, a, |l| {
            let mut extra = l[5].clone();
            extra["logIndex"] = json!("0x6");
            l.insert(6, extra);
        }),
        "log_fabricated"
    );
}

#[test]
fn omitted_logs() {
    for (f, a) in CASES {
        let answer = json(a);
        for (drop, log) in answer.as_array().unwrap().iter().enumerate() {
            let filter = parse_log_filter(&raw(f)).unwrap();
            let bytes = edited(a, |l| {
                l.as_array_mut().unwrap().remove(drop);
            });
            let result = check_answer(&filter, &bytes);
            // `topics: [null, null]` and a one-topic log: geth would not return it, so leaving it
            // out is no omission (see the logs module docs).
            if filter.topics.len() > log["topics"].as_array().unwrap().len() {
                assert!(result.is_ok(), "{a} without log {drop}");
            } else {
                assert_eq!(kind(result), "log_omitted", "{a} without log {drop}");
            }
        }
    }
    // everything dropped
    assert_eq!(altered(CASES[1].0, CASES[1].1, Vec::clear), "log_omitted");
    // a block the filter does not cover: nothing can be omitted there, and nothing returned
    let f = parse_log_filter(&raw("filter_block2_by_hash.json")).unwrap();
    assert_eq!(verify_block_logs(&[], &f, &crate::receipts(3)), Ok(vec![]));
    let block_3_logs: Vec<_> =
        parse_logs(&raw("logs_all.json")).unwrap().into_iter().filter(|l| l.block_number == 3).collect();
    assert_eq!(kind(verify_block_logs(&block_3_logs, &f, &crate::receipts(3))), "log_unrequested");
    let range = parse_log_filter(&raw("filter_ping_from_acc3.json")).unwrap(); // block 2 only
    assert_eq!(kind(verify_block_logs(&block_3_logs, &range, &crate::receipts(3))), "log_unrequested");
}

#[test]
fn unrequested_logs() {
    // The Pong log (logIndex 1) is real but not a Ping from account 3.
    let (f, a) = CASES[2];
    let pong = json("logs_all.json")[3].clone(); // block 2, logIndex 3 = Pong of account 3's call
    assert_eq!(pong["topics"].as_array().unwrap().len(), 1);
    assert_eq!(altered(f, a, |l| l.insert(0, pong.clone())), "log_unrequested");
    // A contract-address filter answered with a log of another emitter in the range.
    let (f, a) = CASES[1];
    let delegated = json("logs_delegated.json")[0].clone();
    assert_eq!(altered(f, a, |l| l.push(delegated.clone())), "log_unrequested");
}

#[test]
fn logs_must_carry_their_placement() {
    let missing = edited("logs_all.json", |a| {
        a[0].as_object_mut().unwrap().remove("logIndex");
    });
    assert_eq!(kind(parse_logs(&missing)), "malformed");
    assert_eq!(kind(parse_logs(b"null")), "not_found");
}
