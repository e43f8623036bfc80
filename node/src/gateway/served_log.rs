//! Who served what on one WebSocket session, asked for with the `rpcmesh_servedBy` method: a
//! WebSocket message has no headers for `x-rpcmesh-served-by`, and an extra member in a JSON-RPC
//! answer or notification breaks strict clients, so the session answers on demand instead (a
//! client that never asks sees nothing new).
//!
//! Bounded: the last [`ANSWERS_KEPT`] answers, and one provider per live subscription.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

/// Answers remembered per session.
pub const ANSWERS_KEPT: usize = 64;
/// Bytes of a request id remembered (longer ids are not looked up).
const MAX_ID_BYTES: usize = 128;

/// The method a client calls over WebSocket to read the log: params `[]` (everything kept) or
/// `[id]` (the newest answer to the request with that id).
pub const METHOD: &str = "rpcmesh_servedBy";

/// One answer's origin.
#[derive(Debug, Clone)]
struct Answer {
    /// The request's id as the client sent it (raw JSON).
    id: Box<[u8]>,
    served_by: Vec<Arc<str>>,
    attempts: u32,
    verified: &'static str,
}

/// A session's log of answers and of the provider behind each subscription's latest data.
#[derive(Debug, Default)]
pub struct ServedLog {
    answers: VecDeque<Answer>,
    subscriptions: Arc<SubscriptionSources>,
}

/// The provider that served each subscription's latest poll; written by the pollers.
#[derive(Debug, Default)]
pub struct SubscriptionSources(Mutex<HashMap<String, Arc<str>>>);

impl SubscriptionSources {
    /// `sub`'s latest data came from `served_by`.
    pub fn record(&self, sub: &str, served_by: Arc<str>) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match m.get_mut(sub) {
            Some(v) => *v = served_by,
            None => {
                m.insert(sub.to_owned(), served_by);
            }
        }
    }

    /// `sub` ended.
    pub fn forget(&self, sub: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(sub);
    }

    fn snapshot(&self) -> Value {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        Value::Object(m.iter().map(|(k, v)| (k.clone(), Value::String(v.to_string()))).collect())
    }
}

impl ServedLog {
    /// Where the session's pollers record their sources.
    pub fn subscriptions(&self) -> Arc<SubscriptionSources> {
        self.subscriptions.clone()
    }

    /// The answer to the request with raw JSON id `id` was served by `served_by`.
    pub fn record(&mut self, id: Option<&[u8]>, served_by: Vec<Arc<str>>, attempts: u32, verified: &'static str) {
        let id = id.unwrap_or(b"null");
        if id.len() > MAX_ID_BYTES {
            return;
        }
        if self.answers.len() == ANSWERS_KEPT {
            self.answers.pop_front();
        }
        self.answers.push_back(Answer { id: id.into(), served_by, attempts, verified });
    }

    /// The `result` of `rpcmesh_servedBy` with `params`: `{"answers": [...], "subscriptions":
    /// {id: PeerId}}`, answers oldest first; with `[id]`, only the newest answer to that id.
    pub fn result(&self, params: &[Value]) -> Value {
        let wanted = params.first().map(|v| v.to_string());
        let answers: Vec<Value> = match &wanted {
            Some(w) => {
                self.answers.iter().rev().find(|a| a.id.as_ref() == w.as_bytes()).map(to_json).into_iter().collect()
            }
            None => self.answers.iter().map(to_json).collect(),
        };
        json!({ "answers": answers, "subscriptions": self.subscriptions.snapshot() })
    }
}

fn to_json(a: &Answer) -> Value {
    let id = serde_json::from_slice::<Value>(&a.id).unwrap_or(Value::Null);
    let served_by: Vec<&str> = a.served_by.iter().map(|s| s.as_ref()).collect();
    json!({ "id": id, "servedBy": served_by, "attempts": a.attempts, "verified": a.verified })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_answers_and_finds_one_by_id() {
        let mut log = ServedLog::default();
        for i in 0..(ANSWERS_KEPT + 5) {
            log.record(Some(i.to_string().as_bytes()), vec![Arc::from(format!("peer{i}"))], 1, "none");
        }
        let all = log.result(&[]);
        let answers = all["answers"].as_array().unwrap();
        assert_eq!(answers.len(), ANSWERS_KEPT);
        assert_eq!(answers[0]["id"], json!(5), "the oldest were dropped");
        let one = log.result(&[json!(7)]);
        assert_eq!(one["answers"], json!([{ "id": 7, "servedBy": ["peer7"], "attempts": 1, "verified": "none" }]));
        log.record(Some(b"\"a\""), vec![Arc::from("p1")], 2, "proof");
        log.record(Some(b"\"a\""), vec![Arc::from("p2")], 1, "header");
        assert_eq!(log.result(&[json!("a")])["answers"][0]["servedBy"], json!(["p2"]), "the newest");
        assert_eq!(log.result(&[json!("nope")])["answers"], json!([]));
    }

    #[test]
    fn subscription_sources_follow_the_latest_poll() {
        let log = ServedLog::default();
        let subs = log.subscriptions();
        subs.record("0x1", Arc::from("a"));
        subs.record("0x1", Arc::from("b"));
        subs.record("0x2", Arc::from("c"));
        subs.forget("0x2");
        assert_eq!(log.result(&[])["subscriptions"], json!({ "0x1": "b" }));
    }
}
