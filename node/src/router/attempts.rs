//! The attempt machinery: runs a [`Plan`] of targets against one deadline, with retries, an
//! optional hedge, a backoff for targets that answered `Busy`, and the breakers.
//!
//! Rules, in the order they apply:
//! - Targets are tried in plan order, each only if its breaker admits it, at most
//!   `max_attempts` of them (asking a `Busy` target again is bounded by the deadline instead).
//! - An error of class [`Class::Retryable`] counts against the target's breaker and the next
//!   target is tried at once; [`Class::Busy`] is never counted: another target is tried at once,
//!   and when nobody else is left the busy ones are asked again after a short jittered backoff;
//!   [`Class::Fatal`] and [`Class::Caller`] stop the request.
//! - With hedging on, a second target is started when the first has not answered within its
//!   hedge delay (about 3× its latency), if the [`HedgeBudget`] allows (about one request in ten);
//!   an attempt unanswered after its hard timeout has failed (counted, and the next target
//!   started) but is not cancelled: it may still answer first.
//! - The first answer wins; the others are cancelled. A loser is blamed only if it was past its
//!   hard timeout, or waited on for its whole hedge delay while the winner took less than half of
//!   that (a slow loser under a CPU burst, when every answer is slow, is not blamed).
//!
//! Time is `tokio::time`, so the tests run under a paused clock against a scripted [`Forward`].

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt as _};
use tokio::time::Instant;

use super::breaker::BreakerCell;
use super::budget::{HedgeBudget, busy_backoff};
use super::forward::{Call, Forward, Target};
use super::outcome::{Answer, AttemptError, Class};

/// With hedging on, an attempt unanswered after this many hedge delays has failed: the breaker
/// counts it and the next target is launched. Slow answers below that are not failures.
const HARD_TIMEOUT_FACTOR: u32 = 4;
/// Floor of that hard timeout. Well above the 100–200 ms stalls of a CPU burst, so a burst does
/// not eject healthy providers; low enough that a frozen provider is left within ~0.5 s when the
/// hedge budget is spent.
const HARD_TIMEOUT_MIN: Duration = Duration::from_millis(500);
/// Bounds of the hedge delay.
pub const HEDGE_MIN: Duration = Duration::from_millis(25);
/// See [`HEDGE_MIN`].
pub const HEDGE_MAX: Duration = Duration::from_millis(1000);
/// An attempt always gets at least this much time, even with the deadline about to pass.
const MIN_ATTEMPT_BUDGET: Duration = Duration::from_millis(1);

/// When to hedge an attempt on a target with this latency estimate.
pub fn hedge_delay(latency_us: f64) -> Duration {
    Duration::from_micros((latency_us * 3.0) as u64).clamp(HEDGE_MIN, HEDGE_MAX)
}

/// When an attempt with this hedge delay has failed for want of an answer.
fn hard_timeout(hedge_delay: Duration) -> Duration {
    (hedge_delay * HARD_TIMEOUT_FACTOR).max(HARD_TIMEOUT_MIN)
}

/// How attempts are made.
#[derive(Debug, Clone)]
pub struct AttemptSettings {
    /// Most targets tried per request.
    pub max_attempts: u32,
    /// Hedge reads.
    pub hedge: bool,
    /// Consecutive failures before a target is ejected.
    pub eject_after_failures: u32,
    /// First ejection length (doubled on each re-ejection).
    pub eject_for: Duration,
}

/// One target of a plan.
#[derive(Debug, Clone)]
pub struct Planned {
    /// Who.
    pub target: Target,
    /// When to hedge an attempt on it.
    pub hedge_delay: Duration,
    /// Its breaker.
    pub breaker: Arc<BreakerCell>,
}

/// Targets in the order they are tried.
pub type Plan = Vec<Planned>;

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No target could be tried (none eligible, or every breaker open).
    NoTarget,
    /// Every target tried failed; the last error.
    Exhausted(AttemptError),
    /// The deadline passed first.
    Deadline {
        /// The request's budget, ms.
        budget_ms: u64,
    },
    /// An error no other target could do better on, or the caller's fault.
    Stopped(AttemptError),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoTarget => f.write_str("no eligible provider (see /explain)"),
            Self::Exhausted(e) | Self::Stopped(e) => e.fmt(f),
            Self::Deadline { budget_ms } => write!(f, "deadline of {budget_ms} ms exceeded"),
        }
    }
}

/// Why each attempt of a run was started, and how long the finished ones took: what the
/// gateway turns into metrics, so this layer stays free of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Attempts started because the one before was slow (hedges), not because it failed.
    pub hedges: u32,
    /// Attempts started because one before failed (an error, or past its hard timeout).
    pub failovers: u32,
    /// Targets that answered busy, asked again after a backoff.
    pub busy_retries: u32,
    /// Every attempt that finished (answered or failed; cancelled losers are not here): its
    /// target and how long it took.
    pub finished: Vec<(Target, Duration)>,
}

/// The result of running a plan.
#[derive(Debug)]
pub struct Outcome {
    /// The winning target and its answer, or why there is none.
    pub result: Result<(Target, Answer), Failure>,
    /// Attempts started (hedges and repeated asks of a busy target included).
    pub attempts: u32,
    /// What the attempts were and took.
    pub tally: Tally,
}

/// Runs plans over a [`Forward`]; one per router (it holds the hedge budget).
pub struct Attempts<F> {
    forward: F,
    settings: AttemptSettings,
    hedges: HedgeBudget,
}

/// What a finished attempt reports.
struct Attempted {
    idx: usize,
    started: Instant,
    result: Result<Answer, AttemptError>,
}

/// Frees a reserved probation slot when an attempt ends without an outcome for its breaker
/// (cancelled, or `Busy`).
struct Probation<'a> {
    cell: &'a BreakerCell,
    armed: bool,
}

impl Drop for Probation<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.cell.release_probation();
        }
    }
}

/// What every attempt of one request shares (all references: `Copy`, so attempt futures
/// borrow it without borrowing the run's bookkeeping).
struct Ctx<'r, F> {
    forward: &'r F,
    call: &'r Call<'r>,
    plan: &'r [Planned],
    deadline: Instant,
}

impl<F> Clone for Ctx<'_, F> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<F> Copy for Ctx<'_, F> {}

impl<'r, F: Forward> Ctx<'r, F> {
    async fn attempt(self, idx: usize) -> Attempted {
        let p = &self.plan[idx];
        let started = Instant::now();
        let mut probation = Probation { cell: &p.breaker, armed: true };
        let budget = self.deadline.saturating_duration_since(started).max(MIN_ATTEMPT_BUDGET);
        let result = self.forward.forward(self.call, p.target, budget).await;
        // Busy is no outcome: its probation slot is freed as for a cancelled attempt.
        probation.armed = matches!(result, Err(AttemptError::Busy));
        Attempted { idx, started, result }
    }
}

/// An attempt in flight.
struct Pending {
    idx: usize,
    started: Instant,
    /// `None` with hedging off: the attempt may use the whole deadline.
    hard_timeout: Option<Duration>,
    /// Already counted as a failure (hard timeout), so its outcome is not counted twice.
    failed: bool,
}

impl Pending {
    fn overdue_at(&self) -> Option<Instant> {
        if self.failed { None } else { self.hard_timeout.map(|h| self.started + h) }
    }
}

/// The bookkeeping of one request.
struct Run<'r, F> {
    attempts: &'r Attempts<F>,
    plan: &'r [Planned],
    hedging: bool,
    next: usize,
    count: u32,
    pending: Vec<Pending>,
    /// Targets that answered Busy: asked again, in turn, once nobody else is left to try.
    busy: VecDeque<usize>,
    busy_rounds: u32,
    last_error: Option<AttemptError>,
    hedge_at: Option<Instant>,
    retry_at: Option<Instant>,
    tally: Tally,
}

impl<F> Run<'_, F> {
    /// The next target in plan order that its breaker admits, within `max_attempts`.
    fn pick(&mut self, now: Instant) -> Option<usize> {
        while self.next < self.plan.len() && self.count < self.attempts.settings.max_attempts {
            let i = self.next;
            self.next += 1;
            if self.plan[i].breaker.admit(now) {
                return Some(i);
            }
        }
        None
    }

    /// Books an attempt on `idx` started at `now`.
    fn launched(&mut self, idx: usize, now: Instant) {
        self.count += 1;
        let delay = self.plan[idx].hedge_delay;
        self.pending.push(Pending {
            idx,
            started: now,
            hard_timeout: self.hedging.then(|| hard_timeout(delay)),
            failed: false,
        });
        if self.hedging {
            self.hedge_at = Some(now + delay);
        }
    }

    fn record(&self, idx: usize, now: Instant, latency: Duration, ok: bool) {
        let s = &self.attempts.settings;
        let p = &self.plan[idx];
        if p.breaker.record(now, latency, ok, s.eject_after_failures, s.eject_for) {
            tracing::info!(target_kind = p.target.kind(), target = ?p.target, "provider ejected after consecutive failures");
        }
    }

    /// The earliest timer: a hedge, an overdue attempt, or a busy retry.
    fn wake_at(&self) -> Option<Instant> {
        let overdue = self.pending.iter().filter_map(Pending::overdue_at).min();
        [self.hedge_at, overdue, self.retry_at].into_iter().flatten().min()
    }

    /// Arms the busy retry when only busy targets are left.
    fn arm_busy_retry(&mut self, now: Instant, deadline: Instant) {
        if self.retry_at.is_none() && !self.busy.is_empty() && self.pending.iter().all(|p| p.failed) {
            let at = now + busy_backoff(self.busy_rounds);
            self.busy_rounds += 1;
            if at < deadline {
                self.retry_at = Some(at);
            } else {
                self.busy.clear();
            }
        }
    }

    /// Handles timers due at `now`; returns the targets to launch.
    fn on_timer(&mut self, now: Instant) -> Vec<usize> {
        let mut launch = Vec::new();
        if self.retry_at.is_some_and(|t| t <= now) {
            self.retry_at = None;
            while let Some(idx) = self.busy.pop_front() {
                if self.plan[idx].breaker.admit(now) {
                    launch.push(idx);
                    self.tally.busy_retries += 1;
                    break;
                }
            }
        }
        let mut overdue = 0;
        for i in 0..self.pending.len() {
            let p = &self.pending[i];
            if p.overdue_at().is_some_and(|t| t <= now) {
                let (idx, waited) = (p.idx, now - p.started);
                self.pending[i].failed = true;
                self.record(idx, now, waited, false);
                self.last_error =
                    Some(AttemptError::Timeout { after_ms: waited.as_millis().try_into().unwrap_or(u64::MAX) });
                overdue += 1;
            }
        }
        // An overdue attempt has failed: fail over as for an error, without cancelling it.
        for _ in 0..overdue {
            if let Some(i) = self.pick(now) {
                launch.push(i);
                self.tally.failovers += 1;
            }
        }
        if self.hedge_at.is_some_and(|t| t <= now) {
            self.hedge_at = None;
            // Without budget the hedge is skipped; the hard timeout still fails over from a
            // target that does not answer at all.
            if self.attempts.hedges.try_spend() {
                match self.pick(now) {
                    Some(i) => {
                        launch.push(i);
                        self.tally.hedges += 1;
                    }
                    None => self.attempts.hedges.refund(),
                }
            }
        }
        launch
    }

    /// Blames the losers of a race won after `won_in` (see the module docs).
    fn blame_losers(&self, now: Instant, won_in: Duration) {
        for p in &self.pending {
            let waited = now - p.started;
            let delay = self.plan[p.idx].hedge_delay;
            let outrun = self.hedging && !p.failed && waited >= delay && won_in < delay / 2;
            if p.overdue_at().is_some_and(|t| t <= now) || outrun {
                self.record(p.idx, now, waited, false);
            }
        }
    }
}

impl<F: Forward> Attempts<F> {
    /// Attempts over `forward`.
    pub fn new(forward: F, settings: AttemptSettings) -> Self {
        Self { forward, settings, hedges: HedgeBudget::default() }
    }

    /// The layer below.
    pub fn forward(&self) -> &F {
        &self.forward
    }

    /// The settings.
    pub fn settings(&self) -> &AttemptSettings {
        &self.settings
    }

    /// Records an outcome of an attempt made outside a plan run (e.g. [`Attempts::call_one`]).
    fn record_one(&self, p: &Planned, latency: Duration, ok: bool) {
        let s = &self.settings;
        if p.breaker.record(Instant::now(), latency, ok, s.eject_after_failures, s.eject_for) {
            tracing::info!(target = ?p.target, "provider ejected after consecutive failures");
        }
    }

    /// Runs `plan` for `call` until an answer or `deadline`.
    pub async fn run(&self, call: &Call<'_>, plan: &[Planned], deadline: Instant, budget_ms: u64) -> Outcome {
        let hedging = self.settings.hedge && !call.is_send();
        if hedging {
            self.hedges.earn();
        }
        let ctx = Ctx { forward: &self.forward, call, plan, deadline };
        let mut run = Run {
            attempts: self,
            plan,
            hedging,
            next: 0,
            count: 0,
            pending: Vec::with_capacity(2),
            busy: VecDeque::new(),
            busy_rounds: 0,
            last_error: None,
            hedge_at: None,
            retry_at: None,
            tally: Tally::default(),
        };
        let mut inflight = FuturesUnordered::new();
        let now = Instant::now();
        if let Some(i) = run.pick(now) {
            run.launched(i, now);
            inflight.push(ctx.attempt(i));
        }
        let mut deadline_hit = false;
        loop {
            run.arm_busy_retry(Instant::now(), deadline);
            if inflight.is_empty() && run.retry_at.is_none() {
                break;
            }
            let wake = run.wake_at();
            let timer = async {
                match wake {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            // Biased: an answer already in hand beats a timer, and an attempt just launched is
            // polled (so it reaches its target) before the deadline is looked at; random order
            // made the count of attempts differ from the attempts made.
            tokio::select! {
                biased;
                Some(a) = inflight.next() => {
                    let now = Instant::now();
                    run.tally.finished.push((plan[a.idx].target, now - a.started));
                    let already_failed = match run.pending.iter().position(|p| p.idx == a.idx) {
                        Some(i) => run.pending.swap_remove(i).failed,
                        None => false,
                    };
                    match a.result {
                        Ok(answer) => {
                            let won_in = now - a.started;
                            run.record(a.idx, now, won_in, true);
                            // The others lost to this answer and are cancelled (their probation
                            // slots freed by their guards) before the losers are judged.
                            drop(inflight);
                            run.blame_losers(now, won_in);
                            return Outcome {
                                result: Ok((plan[a.idx].target, answer)),
                                attempts: run.count,
                                tally: run.tally,
                            };
                        }
                        Err(e) => {
                            tracing::debug!(chain = call.chain_id, target = ?plan[a.idx].target, error = %e, "attempt failed");
                            match e.class() {
                                Class::Busy => {
                                    if !run.busy.contains(&a.idx) {
                                        run.busy.push_back(a.idx);
                                    }
                                }
                                Class::Retryable => {
                                    if !already_failed {
                                        run.record(a.idx, now, now - a.started, e.target_worked());
                                    }
                                }
                                Class::Fatal | Class::Caller => {
                                    return Outcome {
                                        result: Err(Failure::Stopped(e)),
                                        attempts: run.count,
                                        tally: run.tally,
                                    };
                                }
                            }
                            run.last_error = Some(e);
                            if now < deadline && let Some(i) = run.pick(now) {
                                run.tally.failovers += 1;
                                run.launched(i, now);
                                inflight.push(ctx.attempt(i));
                            }
                        }
                    }
                }
                _ = timer => {
                    let now = Instant::now();
                    // Timers are rounded up to the clock's millisecond tick, so one armed just
                    // before the deadline can fire at it: start nothing then.
                    if now >= deadline {
                        deadline_hit = true;
                        break;
                    }
                    for i in run.on_timer(now) {
                        run.launched(i, now);
                        inflight.push(ctx.attempt(i));
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    deadline_hit = true;
                    break;
                }
            }
        }
        let failure = match (deadline_hit, run.last_error.take(), run.count) {
            (true, _, _) => Failure::Deadline { budget_ms },
            (false, Some(e), _) => Failure::Exhausted(e),
            (false, None, _) => Failure::NoTarget,
        };
        Outcome { result: Err(failure), attempts: run.count, tally: run.tally }
    }

    /// Sends `call` to exactly `p` (no failover): a `Busy` target is asked again after a short
    /// backoff while the deadline allows. Outcomes feed its breaker like a plan run's.
    pub async fn call_one(&self, call: &Call<'_>, p: &Planned, deadline: Instant) -> Result<Answer, AttemptError> {
        let plan = std::slice::from_ref(p);
        let ctx = Ctx { forward: &self.forward, call, plan, deadline };
        let mut round = 0u32;
        loop {
            let a = ctx.attempt(0).await;
            match a.result {
                Ok(answer) => {
                    self.record_one(p, a.started.elapsed(), true);
                    return Ok(answer);
                }
                Err(e) if e.class() == Class::Busy => {
                    let wait = busy_backoff(round);
                    round += 1;
                    if Instant::now() + wait >= deadline {
                        return Err(e);
                    }
                    tokio::time::sleep(wait).await;
                }
                Err(e) => {
                    self.record_one(p, a.started.elapsed(), e.target_worked());
                    return Err(e);
                }
            }
        }
    }

    /// Sends a transaction to `n` distinct operators (own upstreams are one operator), in plan
    /// order (the router puts distinct jurisdictions first). An operator that fails or refuses
    /// it without a node-level reason is replaced by the next one at once. The first acceptance
    /// goes to `first` as soon as it arrives, so the client is answered without waiting for the
    /// slowest (with the attempts started so far); the run goes on until `n` operators answered, the plan ran out or the deadline
    /// passed, and returns the first acceptance (else a caller error, else the last failure).
    pub async fn broadcast(
        &self,
        call: &Call<'_>,
        plan: &[Planned],
        n: usize,
        deadline: Instant,
        budget_ms: u64,
        mut first: Option<tokio::sync::oneshot::Sender<(Target, Answer, u32)>>,
    ) -> Outcome {
        let ctx = Ctx { forward: &self.forward, call, plan, deadline };
        let n = n.max(1);
        let operator = |t: Target| match t {
            Target::Own(_) => None,
            Target::Peer(k) => Some(k),
        };
        let mut inflight = FuturesUnordered::new();
        let mut used: Vec<Option<rpcmesh_protocol::PublicKey>> = Vec::with_capacity(n);
        let mut next = 0usize;
        let mut attempts = 0u32;
        // Starts the next operator of the plan not asked yet; false when there is none.
        let mut start_next = |inflight: &mut FuturesUnordered<_>, used: &mut Vec<_>, attempts: &mut u32| {
            let now = Instant::now();
            while next < plan.len() {
                let i = next;
                next += 1;
                let op = operator(plan[i].target);
                if used.contains(&op) || !plan[i].breaker.admit(now) {
                    continue;
                }
                used.push(op);
                *attempts += 1;
                inflight.push(ctx.attempt(i));
                return true;
            }
            false
        };
        for _ in 0..n {
            if !start_next(&mut inflight, &mut used, &mut attempts) {
                break;
            }
        }
        let mut accepted: Option<(Target, Answer)> = None;
        let mut caller_error: Option<(Target, Answer)> = None;
        let mut last_error = None;
        let mut answered = 0usize;
        let mut tally = Tally::default();
        let deadline_sleep = tokio::time::sleep_until(deadline);
        tokio::pin!(deadline_sleep);
        loop {
            tokio::select! {
                biased;
                next_done = inflight.next() => {
                    let Some(a) = next_done else { break };
                    let p = &plan[a.idx];
                    tally.finished.push((p.target, a.started.elapsed()));
                    match a.result {
                        Ok(answer) => {
                            self.record_one(p, a.started.elapsed(), true);
                            answered += 1;
                            if answer.error().is_none() {
                                if let Some(tx) = first.take() {
                                    let _ = tx.send((p.target, answer.clone(), attempts));
                                }
                                accepted.get_or_insert((p.target, answer));
                            } else {
                                caller_error.get_or_insert((p.target, answer));
                            }
                            if answered >= n {
                                break;
                            }
                        }
                        Err(e) => {
                            if e.class() != Class::Busy {
                                self.record_one(p, a.started.elapsed(), e.target_worked());
                            }
                            if e.class() != Class::Caller {
                                tally.failovers += u32::from(start_next(&mut inflight, &mut used, &mut attempts));
                            }
                            last_error = Some(e);
                        }
                    }
                }
                _ = &mut deadline_sleep => break,
            }
        }
        let result = match (accepted, caller_error, last_error) {
            (Some(a), _, _) => Ok(a),
            (None, Some(c), _) => Ok(c),
            (None, None, _) if Instant::now() >= deadline && !inflight.is_empty() => {
                Err(Failure::Deadline { budget_ms })
            }
            (None, None, Some(e)) => Err(Failure::Exhausted(e)),
            (None, None, None) => Err(Failure::NoTarget),
        };
        Outcome { result, attempts, tally }
    }
}

#[cfg(test)]
mod tests;
