//! Conformance of errors and ids to JSON-RPC 2.0, as clients rely on them:
//!
//! | check | request | expected |
//! |---|---|---|
//! | `method_not_found` | an unknown method, string id | error `-32601`, the id echoed |
//! | `invalid_params` | `eth_getBalance` with a malformed address | error `-32602` |
//! | `parse_error` | truncated JSON | error `-32700` and `id: null` (lenient: `-32600` too) |
//! | `id_echo` | `eth_chainId` with a string and a numeric id | each id echoed with its type, `"jsonrpc": "2.0"` |
//! | `empty_batch` | `[]` | one error object `-32600` (not an array) |
//! | `batch_ids` | a batch of a good and an unknown call | two answers, matched by id: a result and a `-32601` |
//!
//! Error answers may come with an HTTP error status; the body is judged all the same.
//!
//! The unknown method is in the `eth` namespace: gateways and relay policies commonly let `eth_*`
//! through (rpcmesh's default relay policy does), so the node itself answers. Through the mesh,
//! a request the candidate's relay refuses before its node sees it (the malformed JSON and the
//! empty batch always are: the relay only carries valid requests) is "not tested through the
//! mesh", neither passed nor failed.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::progress::{Phase, Tracker};
use super::target::{RpcTarget, TargetError, short};

/// One check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// Stable name (see the module table).
    pub name: String,
    /// The request body sent.
    pub request: String,
    /// What was expected, in words.
    pub expected: String,
    /// The answer (body, or why there was none), shortened.
    pub answer: String,
    /// Whether it met the expectation.
    pub passed: bool,
    /// Why not, or what leniency was used.
    pub note: Option<String>,
    /// Set when the check could not be made (the candidate's relay refused the request before its
    /// node saw it): why. Such a check counts neither as passed nor as failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_tested: Option<String>,
}

impl Check {
    /// Failed, as opposed to passed or not tested.
    pub fn failed(&self) -> bool {
        !self.passed && self.not_tested.is_none()
    }
}

/// The method no node serves.
const UNKNOWN_METHOD: &str = "eth_rpcmeshNoSuchMethod";

/// The conformance section of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conformance {
    /// Whether `-32700` was required exactly.
    pub strict: bool,
    /// Every check.
    pub checks: Vec<Check>,
}

const CHECKS: usize = 6;

/// Runs the checks against the candidate.
pub async fn run<C: RpcTarget>(candidate: &C, strict: bool, tracker: &Tracker<'_>) -> Conformance {
    tracker.plan(CHECKS);
    let mut checks = Vec::new();
    let mut check = async |name: &str,
                           request: String,
                           expected: &str,
                           judge: &dyn Fn(&Value) -> Result<Option<String>, String>| {
        let answer = candidate.call(Bytes::from(request.clone())).await;
        let body = match &answer {
            Ok(b) | Err(TargetError::Http { body: b, .. }) => Some(b.clone()),
            Err(_) => None,
        };
        let not_tested = answer.as_ref().err().and_then(|e| {
            let by = if e.refused_by_policy() { "its relay policy" } else { "its relay's request checks" };
            e.not_relayed().map(|why| {
                format!("the candidate's relay refused it by {by} before its node saw it ({})", short(why, 200))
            })
        });
        let parsed = body.as_ref().and_then(|b| serde_json::from_slice::<Value>(b).ok());
        let (passed, note) = match (&answer, parsed) {
            (_, Some(v)) => match judge(&v) {
                Ok(note) => (true, note),
                Err(why) => (false, Some(why)),
            },
            (Err(e), None) => (false, Some(format!("no JSON answer: {e}"))),
            (Ok(_), None) => (false, Some("the answer is not JSON".into())),
        };
        let answer_text = match (&answer, &body) {
            (Err(TargetError::Http { status, .. }), Some(b)) => {
                format!("HTTP {status}: {}", short(&String::from_utf8_lossy(b), 300))
            }
            (_, Some(b)) => short(&String::from_utf8_lossy(b), 300),
            (Err(e), None) => e.to_string(),
            (Ok(_), None) => String::new(),
        };
        tracker.check_done(Phase::Conformance, name);
        let note = if not_tested.is_some() { None } else { note };
        checks.push(Check {
            name: name.into(),
            request,
            expected: expected.into(),
            answer: answer_text,
            passed,
            note,
            not_tested,
        });
    };

    check(
        "method_not_found",
        format!(r#"{{"jsonrpc":"2.0","id":"vet-unknown","method":"{UNKNOWN_METHOD}","params":[]}}"#),
        "error -32601 with id \"vet-unknown\"",
        &|v| {
            expect_code(v, &[-32601])?;
            expect_id(v, &json!("vet-unknown"))
        },
    )
    .await;
    check(
        "invalid_params",
        r#"{"jsonrpc":"2.0","id":2,"method":"eth_getBalance","params":["not-an-address","latest"]}"#.into(),
        "error -32602 with id 2",
        &|v| {
            expect_code(v, &[-32602])?;
            expect_id(v, &json!(2))
        },
    )
    .await;
    check(
        "parse_error",
        r#"{"jsonrpc":"2.0","id":3,"method":"eth_chainId""#.into(),
        if strict { "error -32700 with id null" } else { "error -32700 (or -32600) with id null" },
        &|v| {
            let codes: &[i64] = if strict { &[-32700] } else { &[-32700, -32600] };
            let code = expect_code(v, codes)?;
            expect_id(v, &Value::Null)?;
            Ok((code != -32700).then(|| format!("answered {code}, accepted as the policy is not strict")))
        },
    )
    .await;
    check(
        "id_echo",
        r#"[{"jsonrpc":"2.0","id":"vet-7","method":"eth_chainId","params":[]},{"jsonrpc":"2.0","id":9007199254740993,"method":"eth_chainId","params":[]}]"#.into(),
        "both ids echoed with their type, jsonrpc \"2.0\", results",
        &|v| {
            let list = v.as_array().ok_or("not an array")?;
            for id in [json!("vet-7"), json!(9_007_199_254_740_993u64)] {
                let a = list.iter().find(|a| a.get("id") == Some(&id)).ok_or(format!("no answer with id {id}"))?;
                if a.get("jsonrpc") != Some(&json!("2.0")) {
                    return Err(format!("answer to id {id} lacks \"jsonrpc\": \"2.0\""));
                }
                if a.get("result").is_none() {
                    return Err(format!("answer to id {id} has no result"));
                }
            }
            Ok(None)
        },
    )
    .await;
    check("empty_batch", "[]".into(), "one error object -32600 (not an array)", &|v| {
        if v.is_array() {
            return Err("answered an array".into());
        }
        expect_code(v, &[-32600]).map(|_| None)
    })
    .await;
    check(
        "batch_ids",
        format!(
            r#"[{{"jsonrpc":"2.0","id":"vet-a","method":"eth_chainId","params":[]}},{{"jsonrpc":"2.0","id":"vet-b","method":"{UNKNOWN_METHOD}","params":[]}}]"#
        ),
        "two answers: vet-a with a result, vet-b with error -32601",
        &|v| {
            let list = v.as_array().ok_or("not an array")?;
            if list.len() != 2 {
                return Err(format!("{} answers", list.len()));
            }
            let by_id = |id: &str| list.iter().find(|a| a.get("id") == Some(&json!(id))).ok_or(format!("no answer to {id}"));
            if by_id("vet-a")?.get("result").is_none() {
                return Err("vet-a has no result".into());
            }
            expect_code(by_id("vet-b")?, &[-32601]).map(|_| None)
        },
    )
    .await;
    Conformance { strict, checks }
}

/// The error code of a JSON-RPC error answer, if it is one of `codes`.
fn expect_code(v: &Value, codes: &[i64]) -> Result<i64, String> {
    let err = v.get("error").ok_or_else(|| format!("not an error: {}", short(&v.to_string(), 120)))?;
    let code = err.get("code").and_then(Value::as_i64).ok_or("the error has no integer code")?;
    if err.get("message").and_then(Value::as_str).is_none() {
        return Err("the error has no message".into());
    }
    if codes.contains(&code) { Ok(code) } else { Err(format!("code {code}")) }
}

fn expect_id(v: &Value, id: &Value) -> Result<Option<String>, String> {
    match v.get("id") {
        Some(got) if got == id => Ok(None),
        Some(got) => Err(format!("id {got}, expected {id}")),
        None => Err("no id".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_ids() {
        let v = json!({"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid request"}});
        assert_eq!(expect_code(&v, &[-32700, -32600]), Ok(-32600));
        assert!(expect_code(&v, &[-32700]).is_err());
        assert!(expect_id(&v, &Value::Null).is_ok());
        assert!(expect_id(&v, &json!(1)).is_err());
        assert!(expect_code(&json!({"error":{"code":-32600}}), &[-32600]).is_err());
    }
}
