//! A scripted [`Forward`] for tests of the layers above it: each target answers from a script
//! (a result, an error, after a delay, never), and every call is logged with its start time.
//! Under a paused tokio clock, delays are exact.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::classify::judge_body;
use super::forward::{Call, Forward, Target};
use super::outcome::{Answer, AttemptError};
use crate::jsonrpc::{Call as RpcCall, Item, Request, parse};

/// A result every target returns for `Step::Ok`.
pub const RESULT: &[u8] = br#"{"jsonrpc":"2.0","id":1,"result":"0x64"}"#;

/// How a target answers one attempt.
#[derive(Debug, Clone)]
pub enum Step {
    /// [`RESULT`] at once.
    Ok,
    /// [`RESULT`] after this long.
    Slow(Duration),
    /// This error at once.
    Fail(AttemptError),
    /// This error after this long.
    FailAfter(Duration, AttemptError),
    /// `Busy` at once.
    Busy,
    /// Never.
    Hang,
    /// This body (judged as a real reply would be) at once.
    Body(&'static [u8]),
}

#[derive(Debug)]
struct Script {
    steps: VecDeque<Step>,
    then: Step,
}

/// The scripted targets; clone the handle into the stack under test.
#[derive(Debug, Clone, Default)]
pub struct Scripted {
    scripts: Arc<Mutex<HashMap<Target, Script>>>,
    log: Arc<Mutex<Vec<(Target, Instant)>>>,
}

impl Scripted {
    /// `target` answers `steps` in order, then `then` forever.
    pub fn script(&self, target: Target, steps: Vec<Step>, then: Step) -> &Self {
        self.scripts.lock().unwrap().insert(target, Script { steps: steps.into(), then });
        self
    }

    /// Every call so far: who, and when it started.
    pub fn calls(&self) -> Vec<(Target, Instant)> {
        self.log.lock().unwrap().clone()
    }

    /// Calls made to `target`.
    pub fn calls_to(&self, target: Target) -> usize {
        self.log.lock().unwrap().iter().filter(|(t, _)| *t == target).count()
    }

    fn next(&self, target: Target) -> Step {
        self.log.lock().unwrap().push((target, Instant::now()));
        let mut scripts = self.scripts.lock().unwrap();
        match scripts.get_mut(&target) {
            Some(s) => s.steps.pop_front().unwrap_or_else(|| s.then.clone()),
            None => Step::Fail(AttemptError::Unavailable("no script")),
        }
    }
}

impl Forward for Scripted {
    async fn forward<'a>(&'a self, call: &'a Call<'a>, target: Target, _: Duration) -> Result<Answer, AttemptError> {
        let reply = |body: &'static [u8]| judge_body(call.req, Bytes::from_static(body));
        match self.next(target) {
            Step::Ok => reply(RESULT),
            Step::Slow(d) => {
                tokio::time::sleep(d).await;
                reply(RESULT)
            }
            Step::Fail(e) => Err(e),
            Step::FailAfter(d, e) => {
                tokio::time::sleep(d).await;
                Err(e)
            }
            Step::Busy => Err(AttemptError::Busy),
            Step::Hang => std::future::pending().await,
            Step::Body(b) => reply(b),
        }
    }
}

/// A request of `method` with id 1.
pub fn request(method: &str) -> Request {
    let raw = Bytes::from(format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":[]}}"#));
    match parse(&raw) {
        RpcCall::Single(Item::Request(r)) => r,
        other => panic!("{other:?}"),
    }
}
