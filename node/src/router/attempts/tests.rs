//! The attempt machinery against scripted targets under a paused clock: one behaviour per test,
//! with exact times.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::jsonrpc::Malformed;
use crate::router::VerifyMode;
use crate::router::breaker::Admission;
use crate::router::check::{AnswerCheck, Checked};
use crate::router::outcome::CheckFailure;
use crate::router::testkit::{Scripted, Step, request};

const A: Target = Target::Own(0);
const B: Target = Target::Own(1);
const C: Target = Target::Own(2);
const EJECT_FOR: Duration = Duration::from_secs(5);

fn settings(hedge: bool) -> AttemptSettings {
    AttemptSettings { max_attempts: 4, hedge, eject_after_failures: 3, eject_for: EJECT_FOR }
}

fn planned(target: Target, hedge_ms: u64) -> Planned {
    Planned { target, hedge_delay: Duration::from_millis(hedge_ms), breaker: Arc::default() }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

async fn run<F: Forward>(a: &Attempts<F>, plan: &[Planned], method: &str, budget: Duration) -> Outcome {
    let req = request(method);
    let call = Call { chain_id: 1, req: &req, mode: VerifyMode::Off };
    a.run(&call, plan, Instant::now() + budget, budget.as_millis() as u64).await
}

fn winner(o: &Outcome) -> Target {
    match &o.result {
        Ok((t, _)) => *t,
        Err(f) => panic!("no answer: {f}"),
    }
}

#[tokio::test(start_paused = true)]
async fn the_first_answer_wins_in_one_attempt() {
    let s = Scripted::default();
    s.script(A, vec![], Step::Ok).script(B, vec![], Step::Ok);
    let a = Attempts::new(s.clone(), settings(true));
    let o = run(&a, &[planned(A, 40), planned(B, 40)], "eth_blockNumber", ms(1000)).await;
    assert_eq!((winner(&o), o.attempts), (A, 1));
    assert_eq!(s.calls_to(B), 0);
}

#[tokio::test(start_paused = true)]
async fn a_retryable_error_fails_over_at_once_and_counts_against_the_breaker() {
    let s = Scripted::default();
    s.script(A, vec![], Step::FailAfter(ms(7), AttemptError::Http(503))).script(B, vec![], Step::Ok);
    let a = Attempts::new(s.clone(), settings(false));
    let plan = [planned(A, 40), planned(B, 40)];
    let o = run(&a, &plan, "eth_blockNumber", ms(1000)).await;
    assert_eq!((winner(&o), o.attempts), (B, 2));
    let calls = s.calls();
    assert_eq!(calls[1].1 - calls[0].1, ms(7), "B started the moment A failed");
    assert_eq!((o.tally.failovers, o.tally.hedges), (1, 0), "B was a failover");
    assert_eq!(o.tally.finished, vec![(A, ms(7)), (B, ms(0))]);
    assert!(plan[0].breaker.get().recent_err > 0.0);
    assert_eq!(plan[1].breaker.get().recent_err, 0.0);
}

#[tokio::test(start_paused = true)]
async fn a_hedge_fires_exactly_at_its_delay() {
    let s = Scripted::default();
    s.script(A, vec![], Step::Hang).script(B, vec![], Step::Slow(ms(5)));
    let a = Attempts::new(s.clone(), settings(true));
    let started = Instant::now();
    let o = run(&a, &[planned(A, 40), planned(B, 40)], "eth_blockNumber", ms(1000)).await;
    assert_eq!((winner(&o), o.attempts), (B, 2));
    let calls = s.calls();
    assert_eq!(calls[1], (B, started + ms(40)), "hedged at A's hedge delay");
    assert_eq!((o.tally.failovers, o.tally.hedges), (0, 1), "B was a hedge");
    assert_eq!(o.tally.finished, vec![(B, ms(5))], "A, cancelled, never finished");
    assert_eq!(started.elapsed(), ms(45));
}

#[tokio::test(start_paused = true)]
async fn no_hedge_before_the_delay_and_none_for_transactions() {
    let s = Scripted::default();
    s.script(A, vec![], Step::Slow(ms(39))).script(B, vec![], Step::Ok);
    let a = Attempts::new(s.clone(), settings(true));
    let plan = [planned(A, 40), planned(B, 40)];
    assert_eq!(winner(&run(&a, &plan, "eth_blockNumber", ms(1000)).await), A);
    assert_eq!(s.calls_to(B), 0, "answered just before the hedge delay");
    s.script(A, vec![], Step::Slow(ms(300)));
    let o = run(&a, &plan, "eth_sendRawTransaction", ms(1000)).await;
    assert_eq!((winner(&o), o.attempts), (A, 1), "a transaction is never hedged");
    assert_eq!(s.calls_to(B), 0);
}

#[tokio::test(start_paused = true)]
async fn a_busy_target_is_asked_again_after_a_growing_backoff_and_never_counted() {
    let s = Scripted::default();
    s.script(A, vec![Step::Busy, Step::Busy, Step::Busy], Step::Ok);
    let a = Attempts::new(s.clone(), settings(true));
    let plan = [planned(A, 40)];
    let o = run(&a, &plan, "eth_blockNumber", ms(1000)).await;
    assert_eq!((winner(&o), o.attempts), (A, 4), "three busy answers, then served");
    let t: Vec<Instant> = s.calls().into_iter().map(|(_, at)| at).collect();
    // Waits drawn from the upper half of 1, 2, 4 ms.
    for (i, full) in [1u64, 2, 4].into_iter().enumerate() {
        let gap = t[i + 1] - t[i];
        assert!(gap >= Duration::from_micros(full * 500) && gap <= ms(full), "wait {i}: {gap:?}");
    }
    let b = plan[0].breaker.get();
    assert_eq!(b.recent_err, 0.0, "busy is not a failure: {b:?}");
    assert!(b.ewma_us.is_some(), "the success was recorded");
}

#[tokio::test(start_paused = true)]
async fn a_busy_target_is_left_at_once_for_another() {
    let s = Scripted::default();
    s.script(A, vec![], Step::Busy).script(B, vec![], Step::Ok);
    let a = Attempts::new(s.clone(), settings(true));
    let plan = [planned(A, 40), planned(B, 40)];
    let started = Instant::now();
    let o = run(&a, &plan, "eth_blockNumber", ms(1000)).await;
    assert_eq!((winner(&o), o.attempts), (B, 2));
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(plan[0].breaker.get().recent_err, 0.0);
}

#[tokio::test(start_paused = true)]
async fn busy_until_the_deadline_fails_at_the_deadline_without_ejecting() {
    let s = Scripted::default();
    s.script(A, vec![], Step::Busy);
    let a = Attempts::new(s.clone(), settings(true));
    let plan = [planned(A, 40)];
    let started = Instant::now();
    let o = run(&a, &plan, "eth_blockNumber", ms(300)).await;
    assert!(
        matches!(o.result, Err(Failure::Deadline { budget_ms: 300 }))
            || matches!(o.result, Err(Failure::Exhausted(AttemptError::Busy))),
        "{:?}",
        o.result
    );
    assert!(started.elapsed() <= ms(300));
    assert!(started.elapsed() >= ms(280), "kept asking until the deadline: {:?}", started.elapsed());
    let calls = s.calls_to(A);
    assert!((10..=40).contains(&calls), "asked again with a growing backoff capped at 20 ms: {calls}");
    assert_eq!(o.attempts as usize, calls);
    assert_eq!(plan[0].breaker.get().admission(Instant::now()), Admission::Open);
}

#[tokio::test(start_paused = true)]
async fn the_breaker_ejects_then_admits_exactly_one_probation_request() {
    let s = Scripted::default();
    s.script(A, vec![], Step::Fail(AttemptError::Http(500))).script(B, vec![], Step::Ok);
    let a = Attempts::new(s.clone(), settings(false));
    let plan = [planned(A, 40), planned(B, 40)];
    for _ in 0..3 {
        assert_eq!(winner(&run(&a, &plan, "eth_blockNumber", ms(1000)).await), B);
    }
    assert_eq!(plan[0].breaker.get().admission(Instant::now()), Admission::Ejected);
    let o = run(&a, &plan, "eth_blockNumber", ms(1000)).await;
    assert_eq!((winner(&o), o.attempts), (B, 1), "an ejected target is skipped");
    assert_eq!(s.calls_to(A), 3);

    tokio::time::advance(EJECT_FOR).await;
    assert_eq!(plan[0].breaker.get().admission(Instant::now()), Admission::Probation);
    s.script(A, vec![], Step::Ok);
    let o = run(&a, &plan, "eth_blockNumber", ms(1000)).await;
    assert_eq!(winner(&o), A, "the probation request");
    assert_eq!(plan[0].breaker.get().admission(Instant::now()), Admission::Open, "closed again");
}

#[tokio::test(start_paused = true)]
async fn a_probation_slot_is_freed_when_its_attempt_is_cancelled() {
    let s = Scripted::default();
    s.script(A, vec![], Step::Fail(AttemptError::Http(500))).script(B, vec![], Step::Slow(ms(1)));
    let a = Attempts::new(s.clone(), settings(true));
    let plan = [planned(A, 40), planned(B, 40)];
    for _ in 0..3 {
        run(&a, &plan, "eth_blockNumber", ms(1000)).await;
    }
    tokio::time::advance(EJECT_FOR).await;
    // The probation attempt hangs and loses to a hedge (slow too, so it is not blamed).
    s.script(A, vec![], Step::Hang).script(B, vec![], Step::Slow(ms(30)));
    let o = run(&a, &plan, "eth_blockNumber", ms(1000)).await;
    assert_eq!(winner(&o), B);
    assert_eq!(plan[0].breaker.get().admission(Instant::now()), Admission::Probation, "slot free again");
}

#[tokio::test(start_paused = true)]
async fn the_deadline_caps_everything() {
    let s = Scripted::default();
    s.script(A, vec![], Step::Hang).script(B, vec![], Step::Hang).script(C, vec![], Step::Hang);
    let a = Attempts::new(s.clone(), settings(true));
    let started = Instant::now();
    let o = run(&a, &[planned(A, 40), planned(B, 40), planned(C, 40)], "eth_blockNumber", ms(300)).await;
    assert_eq!(o.result.unwrap_err(), Failure::Deadline { budget_ms: 300 });
    assert_eq!(started.elapsed(), ms(300));
}

#[tokio::test(start_paused = true)]
async fn without_hedge_budget_a_silent_target_is_left_at_its_hard_timeout() {
    let s = Scripted::default();
    s.script(A, vec![], Step::Hang).script(B, vec![], Step::Ok);
    let a = Attempts::new(s.clone(), settings(true));
    while a.hedges.try_spend() {}
    let plan = [planned(A, 40), planned(B, 40)];
    let started = Instant::now();
    let o = run(&a, &plan, "eth_blockNumber", ms(5000)).await;
    assert_eq!((winner(&o), o.attempts), (B, 2));
    // Hard timeout: max(4 × 40 ms, 500 ms).
    assert_eq!(started.elapsed(), HARD_TIMEOUT_MIN);
    assert!(plan[0].breaker.get().recent_err > 0.0, "no answer within the hard timeout is a failure");
}

#[tokio::test(start_paused = true)]
async fn a_loser_outrun_by_a_fast_hedge_is_blamed_one_outrun_by_a_slow_one_is_not() {
    let s = Scripted::default();
    let a = Attempts::new(s.clone(), settings(true));
    // Fast hedge: answered in 5 ms < 40/2 after A was waited on for its whole 40 ms.
    s.script(A, vec![], Step::Hang).script(B, vec![], Step::Slow(ms(5)));
    let plan = [planned(A, 40), planned(B, 40)];
    assert_eq!(winner(&run(&a, &plan, "eth_blockNumber", ms(1000)).await), B);
    assert!(plan[0].breaker.get().recent_err > 0.0, "the frozen one is blamed");
    // Slow hedge (a CPU burst slows everyone): nobody is blamed, nothing recorded for A.
    let plan = [planned(A, 40), planned(B, 40)];
    s.script(A, vec![], Step::Slow(ms(300))).script(B, vec![], Step::Slow(ms(30)));
    assert_eq!(winner(&run(&a, &plan, "eth_blockNumber", ms(1000)).await), B);
    let b = plan[0].breaker.get();
    assert_eq!((b.recent_err, b.recent_ok), (0.0, 0.0), "a cancelled loser is neither: {b:?}");
}

#[tokio::test(start_paused = true)]
async fn hedges_are_a_burst_then_one_request_in_ten() {
    let s = Scripted::default();
    s.script(A, vec![], Step::Hang).script(B, vec![], Step::Hang);
    let a = Attempts::new(s.clone(), settings(true));
    let plan = [planned(A, 25), planned(B, 25)];
    let mut hedged = 0;
    for _ in 0..30 {
        if run(&a, &plan, "eth_blockNumber", ms(100)).await.attempts == 2 {
            hedged += 1;
        }
    }
    // 10 saved up, then one per 10 requests: the 10th and 20th after the burst.
    assert_eq!(hedged, 12);
    assert_eq!(s.calls_to(B), 12);
}

#[tokio::test(start_paused = true)]
async fn a_caller_error_is_the_answer_and_is_not_retried() {
    let s = Scripted::default();
    s.script(A, vec![], Step::Body(br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"nonce too low"}}"#))
        .script(B, vec![], Step::Ok);
    let a = Attempts::new(s.clone(), settings(true));
    let plan = [planned(A, 40), planned(B, 40)];
    let o = run(&a, &plan, "eth_sendRawTransaction", ms(1000)).await;
    let (t, answer) = o.result.unwrap();
    assert_eq!(t, A);
    assert_eq!(answer.error().map(|e| e.code), Some(-32000));
    assert_eq!(s.calls_to(B), 0);
    assert_eq!(plan[0].breaker.get().recent_err, 0.0, "the provider is fine");
}

#[tokio::test(start_paused = true)]
async fn a_malformed_answer_fails_over() {
    let s = Scripted::default();
    s.script(A, vec![], Step::Body(br#"{"jsonrpc":"2.0","id":1,"result":"0x6"#)).script(B, vec![], Step::Ok);
    let a = Attempts::new(s.clone(), settings(false));
    let plan = [planned(A, 40), planned(B, 40)];
    assert_eq!(winner(&run(&a, &plan, "eth_blockNumber", ms(1000)).await), B);
    s.script(A, vec![], Step::Body(br#"{"jsonrpc":"2.0","id":2,"result":"0x6"}"#));
    assert_eq!(winner(&run(&a, &plan, "eth_blockNumber", ms(1000)).await), B, "another request's id");
    assert!(plan[0].breaker.get().recent_err > 0.0);
}

#[tokio::test(start_paused = true)]
async fn a_fatal_error_stops_the_request() {
    let s = Scripted::default();
    s.script(A, vec![], Step::Fail(AttemptError::TooLarge { limit: 10 })).script(B, vec![], Step::Ok);
    let a = Attempts::new(s.clone(), settings(true));
    let o = run(&a, &[planned(A, 40), planned(B, 40)], "eth_getLogs", ms(1000)).await;
    assert_eq!(o.result.unwrap_err(), Failure::Stopped(AttemptError::TooLarge { limit: 10 }));
    assert_eq!(s.calls_to(B), 0);
}

#[tokio::test(start_paused = true)]
async fn max_attempts_bounds_failing_over() {
    let s = Scripted::default();
    let targets: Vec<Target> = (0..6).map(Target::Own).collect();
    for t in &targets {
        s.script(*t, vec![], Step::Fail(AttemptError::Malformed(Malformed::NotJson)));
    }
    let a = Attempts::new(s.clone(), settings(false));
    let plan: Vec<Planned> = targets.iter().map(|t| planned(*t, 40)).collect();
    let o = run(&a, &plan, "eth_blockNumber", ms(1000)).await;
    assert_eq!(o.result.unwrap_err(), Failure::Exhausted(AttemptError::Malformed(Malformed::NotJson)));
    assert_eq!((o.attempts, s.calls().len()), (4, 4));
    assert_eq!((o.tally.failovers, o.tally.finished.len()), (3, 4), "every failure but the last failed over");
}

/// Rejects every answer of one target, as a failed integrity check would.
struct RejectFrom(Target);

impl AnswerCheck for RejectFrom {
    type Ticket = ();

    fn check<'a>(
        &'a self,
        _: &'a Call<'a>,
        target: Target,
        answer: Answer,
        _: (),
        _: Instant,
    ) -> impl std::future::Future<Output = Result<Answer, AttemptError>> + Send + 'a {
        let bad = target == self.0;
        async move {
            if bad {
                Err(AttemptError::Unverified(CheckFailure { kind: "test", detail: "lie".into() }))
            } else {
                Ok(answer)
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn an_answer_failing_its_check_goes_to_the_next_target() {
    let s = Scripted::default();
    s.script(A, vec![], Step::Ok).script(B, vec![], Step::Ok);
    let a = Attempts::new(Checked { inner: s.clone(), check: RejectFrom(A) }, settings(true));
    let plan = [planned(A, 40), planned(B, 40)];
    let o = run(&a, &plan, "eth_getBalance", ms(1000)).await;
    assert_eq!((winner(&o), o.attempts), (B, 2));
    assert!(plan[0].breaker.get().recent_err > 0.0, "counted like any failure");
}

fn peer(n: u8) -> Target {
    Target::Peer(rpcmesh_protocol::Identity::from_secret_bytes([n; 32]).public_key())
}

#[tokio::test(start_paused = true)]
async fn a_broadcast_goes_to_n_operators_at_once_and_the_first_result_wins() {
    let (pa, pb, pc) = (peer(1), peer(2), peer(3));
    let s = Scripted::default();
    let err: &'static [u8] = br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"nonce too low"}}"#;
    s.script(pa, vec![], Step::Body(err)).script(pb, vec![], Step::Slow(ms(10))).script(pc, vec![], Step::Ok);
    let a = Attempts::new(s.clone(), settings(true));
    let plan = [planned(pa, 40), planned(pb, 40), planned(pc, 40)];
    let req = request("eth_sendRawTransaction");
    let call = Call { chain_id: 1, req: &req, mode: VerifyMode::Off };
    let o = a.broadcast(&call, &plan, 2, Instant::now() + ms(1000), 1000, None).await;
    assert_eq!((winner(&o), o.attempts), (pb, 2), "a result beats an earlier caller error");
    assert_eq!(s.calls_to(pc), 0, "only the first two: both answered");
    s.script(pb, vec![], Step::Fail(AttemptError::Http(502)));
    let o = a.broadcast(&call, &plan, 2, Instant::now() + ms(1000), 1000, None).await;
    assert_eq!((winner(&o), o.attempts), (pc, 3), "a failed operator is replaced by the next one");
}

#[tokio::test(start_paused = true)]
async fn a_broadcast_counts_own_upstreams_as_one_operator_and_answers_at_the_first_acceptance() {
    let pa = peer(1);
    let s = Scripted::default();
    s.script(A, vec![], Step::Ok).script(B, vec![], Step::Ok).script(pa, vec![], Step::Slow(ms(500)));
    let a = Attempts::new(s.clone(), settings(true));
    let plan = [planned(A, 40), planned(B, 40), planned(pa, 40)];
    let req = request("eth_sendRawTransaction");
    let call = Call { chain_id: 1, req: &req, mode: VerifyMode::Off };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let started = Instant::now();
    let run = a.broadcast(&call, &plan, 2, started + ms(1000), 1000, Some(tx));
    let (first, o) = tokio::join!(async { (rx.await.unwrap(), Instant::now()) }, run);
    assert_eq!((first.0.0, first.0.2), (A, 2), "answered by the own upstream, two operators asked");
    assert_eq!(first.1, started, "the first acceptance is passed on before the slow operator answers");
    assert_eq!(s.calls_to(B), 0, "a second own upstream is not a second operator");
    assert_eq!((s.calls_to(pa), o.attempts), (1, 2));
}
