//! The load ramp: an open-loop request schedule rising in equal steps up to the rate under test,
//! on a mix of common read methods, with the candidate's head compared to the references' once a
//! second.
//!
//! - **Ramp**: `steps = clamp(duration in seconds, 1, 10)` steps of equal length; step `i` (from
//!   0) sends at `rate × (i + 1) / steps` requests/s, evenly spaced. Sends follow the schedule
//!   whatever the answers (open loop): a slow endpoint gets the offered rate, not a politely
//!   reduced one. A send that finds [`LoadSettings::max_in_flight`] requests unanswered is not made
//!   and counts as an error ("dropped").
//! - **A step is held** when all its requests were sent and at most `max_error_rate` of them
//!   failed; the rate held is the top rate of the unbroken run of held steps from the first.
//!   Latency is judged over the whole ramp by its own criterion.
//! - **Errors**: transport failures, timeouts, HTTP statuses other than 200, JSON-RPC errors.
//!   Through the mesh, `busy` answers (the candidate at its announced relay capacity) are
//!   counted apart as well: they are not served requests, so they count as errors too, but the
//!   report shows the candidate shedding load rather than failing.
//! - **Head lag**: once a second, `eth_blockNumber` of the candidate and of every reference at
//!   once; lag = median reference head − candidate head (negative when ahead).
//!
//! Everything runs in one task (no spawned tasks, nothing outlives the call); cancelling stops
//! the sends at once and drops what is in flight.

use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::correctness::{Pinned, ZERO_ADDRESS};
use super::progress::Tracker;
use super::target::{Rpc, RpcTarget, outcome_of, quantity, short};
use crate::report::stats::percentile;
use crate::sim::SplitMix64;

/// The method mix and weights of the ramp: mostly head and state reads, as wallets and dapps
/// send them.
pub const MIX: &[(&str, u32)] = &[
    ("eth_blockNumber", 20),
    ("eth_getBalance", 15),
    ("eth_getBlockByNumber", 15),
    ("eth_call", 10),
    ("eth_getTransactionReceipt", 10),
    ("eth_getTransactionCount", 10),
    ("eth_getLogs", 10),
    ("eth_chainId", 5),
    ("eth_gasPrice", 5),
];

/// Most steps of a ramp.
pub const MAX_STEPS: u32 = 10;
/// How often the head lag is sampled.
pub const LAG_INTERVAL: Duration = Duration::from_secs(1);
/// Error messages kept for the report.
const MAX_FIRST_ERRORS: usize = 10;

/// How to ramp.
#[derive(Debug, Clone, Copy)]
pub struct LoadSettings {
    /// Top rate, requests/s.
    pub rate_per_sec: u32,
    /// Length of the whole ramp.
    pub duration: Duration,
    /// Most requests unanswered at once; beyond it sends are dropped (a stalled endpoint must not
    /// make the vetting host open thousands of connections).
    pub max_in_flight: usize,
    /// Highest failed share of a step that still counts as held.
    pub max_error_rate: f64,
}

/// One step of the ramp.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Offered rate, requests/s.
    pub target_rps: u32,
    /// Start, ms since the ramp started.
    pub start_ms: u64,
    /// End, ms since the ramp started.
    pub end_ms: u64,
    /// Requests scheduled in the step.
    pub scheduled: u64,
    /// Requests sent (scheduled minus those not reached before an interruption).
    pub sent: u64,
    /// Answered with a result.
    pub ok: u64,
    /// Failed (dropped included).
    pub errors: u64,
    /// Not sent because too many were in flight.
    pub dropped: u64,
    /// Answered busy by the candidate's relay (through the mesh; counted in `errors` too).
    #[serde(default)]
    pub busy: u64,
    /// Latency percentiles of sent requests, µs.
    pub p50_us: Option<u64>,
    /// 95th percentile, µs.
    pub p95_us: Option<u64>,
    /// 99th percentile, µs.
    pub p99_us: Option<u64>,
    /// Whether the step was held.
    pub held: bool,
}

/// One second of the ramp, for the plots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Second {
    /// Second since the ramp started.
    pub t_s: u64,
    /// Offered rate in that second.
    pub target_rps: u32,
    /// Requests sent.
    pub sent: u64,
    /// Failed.
    pub errors: u64,
    /// Median latency, µs.
    pub p50_us: Option<u64>,
    /// 95th percentile, µs.
    pub p95_us: Option<u64>,
    /// 99th percentile, µs.
    pub p99_us: Option<u64>,
}

/// Totals over the ramp.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Requests sent.
    pub requests: u64,
    /// Failed.
    pub errors: u64,
    /// Answered busy by the candidate's relay (counted in `errors` too).
    #[serde(default)]
    pub busy: u64,
    /// Median latency, µs.
    pub p50_us: Option<u64>,
    /// 95th percentile, µs.
    pub p95_us: Option<u64>,
    /// 99th percentile, µs.
    pub p99_us: Option<u64>,
}

impl Totals {
    /// Failed share, 0 without requests.
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 { 0.0 } else { self.errors as f64 / self.requests as f64 }
    }
}

/// A head-lag sample.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LagSample {
    /// When it was taken, ms since the ramp started.
    pub t_ms: u64,
    /// The candidate's head.
    pub candidate: Option<u64>,
    /// The references' median head.
    pub reference: Option<u64>,
    /// `reference - candidate`.
    pub lag: Option<i64>,
}

/// The load section of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Load {
    /// Top rate.
    pub rate_per_sec: u32,
    /// Planned length, ms.
    pub duration_ms: u64,
    /// The method mix.
    pub mix: Vec<(String, u32)>,
    /// Whether the whole ramp ran (not interrupted).
    pub completed: bool,
    /// The steps.
    pub steps: Vec<Step>,
    /// Per second.
    pub seconds: Vec<Second>,
    /// Over the ramp.
    pub total: Totals,
    /// Top rate of the unbroken run of held steps from the first (0: not even the first).
    pub held_rate_per_sec: u32,
    /// Offered rate of the first step with any error.
    pub errors_start_at_rps: Option<u32>,
    /// Head-lag samples.
    pub head_lag: Vec<LagSample>,
    /// The first few error messages, with the method.
    pub first_errors: Vec<String>,
}

impl Load {
    /// The largest lag sampled.
    pub fn max_head_lag_blocks(&self) -> Option<i64> {
        self.head_lag.iter().filter_map(|s| s.lag).max()
    }
}

/// One request as the client saw it.
struct Sample {
    step: usize,
    sent_ms: u64,
    latency_us: u64,
    ok: bool,
    dropped: bool,
    busy: bool,
}

/// The request body of `method` with parameters drawn from what the battery knows of the chain.
fn request(method: &str, id: u64, rng: &mut SplitMix64, pinned: Option<&Pinned>) -> (String, Bytes) {
    let pick = |rng: &mut SplitMix64, list: &[String]| -> Option<String> {
        (!list.is_empty()).then(|| list[(rng.next_u64() % list.len() as u64) as usize].clone())
    };
    let address = pinned.and_then(|p| pick(rng, &p.addresses)).unwrap_or_else(|| ZERO_ADDRESS.into());
    let tx = pinned.and_then(|p| pick(rng, &p.txs));
    let (method, params) = match (method, tx) {
        ("eth_getBalance" | "eth_getTransactionCount", _) => (method, json!([address, "latest"])),
        ("eth_getBlockByNumber", _) => match pinned {
            Some(p) if rng.next_u64().is_multiple_of(2) => (method, json!([format!("{:#x}", p.number), false])),
            _ => (method, json!(["latest", false])),
        },
        ("eth_call", _) => {
            let to = pinned.and_then(|p| p.contract.clone()).unwrap_or_else(|| ZERO_ADDRESS.into());
            (method, json!([{ "to": to, "data": "0x" }, "latest"]))
        }
        ("eth_getTransactionReceipt", Some(tx)) => (method, json!([tx])),
        ("eth_getLogs", _) => match pinned {
            Some(p) => {
                let b = format!("{:#x}", p.number);
                let mut filter = json!({ "fromBlock": b, "toBlock": b });
                if let Some(a) = &p.log_address {
                    filter["address"] = json!(a);
                }
                (method, json!([filter]))
            }
            None => (method, json!([{ "fromBlock": "latest", "toBlock": "latest" }])),
        },
        ("eth_chainId" | "eth_gasPrice", _) => (method, json!([])),
        // Receipts without a known transaction: a head read instead.
        _ => ("eth_blockNumber", json!([])),
    };
    let body = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }).to_string();
    (method.to_string(), Bytes::from(body))
}

fn pick_method(rng: &mut SplitMix64) -> &'static str {
    let total: u64 = MIX.iter().map(|(_, w)| u64::from(*w)).sum();
    let mut x = rng.next_u64() % total;
    for (m, w) in MIX {
        if x < u64::from(*w) {
            return m;
        }
        x -= u64::from(*w);
    }
    "eth_blockNumber"
}

/// The ramp's steps: `(offered rate, start, end)`, ms since the start.
pub fn plan(settings: &LoadSettings) -> Vec<(u32, u64, u64)> {
    let total_ms = settings.duration.as_millis().max(1) as u64;
    let steps = ((total_ms / 1000) as u32).clamp(1, MAX_STEPS);
    (0..steps)
        .map(|i| {
            let rate = (u64::from(settings.rate_per_sec) * u64::from(i + 1)).div_ceil(u64::from(steps)) as u32;
            let start = total_ms * u64::from(i) / u64::from(steps);
            let end = total_ms * u64::from(i + 1) / u64::from(steps);
            (rate.max(1), start, end)
        })
        .collect()
}

type Pending<'a> = Pin<Box<dyn std::future::Future<Output = (Sample, Option<String>)> + Send + 'a>>;
type LagPending<'a> = Pin<Box<dyn std::future::Future<Output = LagSample> + Send + 'a>>;

/// Runs the ramp against `candidate`, sampling head lag against `references`.
pub async fn run<C: RpcTarget, R: RpcTarget>(
    candidate: &C,
    references: &[R],
    pinned: Option<&Pinned>,
    settings: LoadSettings,
    tracker: &Tracker<'_>,
    cancel: &CancellationToken,
) -> Load {
    let steps = plan(&settings);
    let schedule: Vec<(usize, u64)> = steps
        .iter()
        .enumerate()
        .flat_map(|(i, &(rate, start, end))| {
            let n = (u64::from(rate) * (end - start)).div_ceil(1000).max(1);
            (0..n).map(move |k| (i, start + (end - start) * k / n))
        })
        .collect();
    let ids = AtomicU64::new(1_000_000);
    let lag_rpc: Vec<Rpc<'_, R>> = references.iter().map(|r| Rpc::new(r, &ids)).collect();
    let cand_rpc = Rpc::new(candidate, &ids);
    let mut rng = SplitMix64::new(0x7e77_0000_0000_0001);
    let started = Instant::now();
    tracker.load_starts();
    let mut in_flight: FuturesUnordered<Pending<'_>> = FuturesUnordered::new();
    let mut lag_in_flight: FuturesUnordered<LagPending<'_>> = FuturesUnordered::new();
    let mut samples: Vec<Sample> = Vec::with_capacity(schedule.len());
    let mut first_errors = Vec::new();
    let mut head_lag = Vec::new();
    let mut next = 0usize;
    let mut next_lag_ms = 0u64;
    let mut next_tick_ms = 1000u64;
    let mut completed = true;
    let end_ms = steps.last().map_or(0, |s| s.2);
    loop {
        let now_ms = started.elapsed().as_millis() as u64;
        // Everything due now: sends (catching up after a stall, so each step sends its count),
        // lag samples, progress.
        while next < schedule.len() && schedule[next].1 <= now_ms {
            let (step, at_ms) = schedule[next];
            next += 1;
            if in_flight.len() >= settings.max_in_flight {
                samples.push(Sample { step, sent_ms: at_ms, latency_us: 0, ok: false, dropped: true, busy: false });
                continue;
            }
            let (method, body) = request(pick_method(&mut rng), next as u64, &mut rng, pinned);
            in_flight.push(Box::pin(async move {
                let sent = Instant::now();
                let answer = candidate.call(body).await;
                let latency_us = sent.elapsed().as_micros() as u64;
                let busy = matches!(&answer, Err(e) if e.is_busy());
                let error = match answer {
                    Ok(b) => match serde_json::from_slice::<Value>(&b) {
                        Ok(mut v) => outcome_of(&mut v).err().map(|e| e.to_string()),
                        Err(e) => Some(format!("not JSON: {e}")),
                    },
                    Err(e) => Some(e.to_string()),
                };
                let sample = Sample { step, sent_ms: at_ms, latency_us, ok: error.is_none(), dropped: false, busy };
                (sample, error.map(|e| format!("{method}: {}", short(&e, 200))))
            }));
        }
        if next_lag_ms <= now_ms && now_ms < end_ms {
            next_lag_ms += LAG_INTERVAL.as_millis() as u64;
            let refs = &lag_rpc;
            lag_in_flight.push(Box::pin(async move { lag_sample(cand_rpc, refs, now_ms).await }));
        }
        if next_tick_ms <= now_ms {
            next_tick_ms += 1000;
            let rate = schedule.get(next).map_or(0, |(s, _)| steps[*s].0);
            tracker.load_tick(&format!("{rate} req/s, {} in flight", in_flight.len()));
        }
        if next >= schedule.len() && in_flight.is_empty() && lag_in_flight.is_empty() {
            break;
        }
        let wake_ms = [schedule.get(next).map(|s| s.1), (now_ms < end_ms).then_some(next_lag_ms), Some(next_tick_ms)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now_ms + 1000);
        let wake = tokio::time::Instant::from_std(started + Duration::from_millis(wake_ms));
        tokio::select! {
            () = cancel.cancelled() => {
                completed = false;
                break;
            }
            () = tokio::time::sleep_until(wake), if next < schedule.len() || !in_flight.is_empty() || !lag_in_flight.is_empty() => {}
            Some((sample, error)) = in_flight.next() => {
                if let Some(e) = error
                    && first_errors.len() < MAX_FIRST_ERRORS
                {
                    first_errors.push(e);
                }
                samples.push(sample);
            }
            Some(lag) = lag_in_flight.next() => head_lag.push(lag),
        }
    }
    head_lag.sort_by_key(|s| s.t_ms);
    summarize(&settings, &steps, next, &schedule, samples, head_lag, first_errors, completed)
}

async fn lag_sample<C: RpcTarget, R: RpcTarget>(candidate: Rpc<'_, C>, refs: &[Rpc<'_, R>], t_ms: u64) -> LagSample {
    let params = json!([]);
    let (mine, theirs) = tokio::join!(
        candidate.call("eth_blockNumber", &params),
        futures::future::join_all(refs.iter().map(|r| r.call("eth_blockNumber", &params)))
    );
    let candidate = mine.ok().as_ref().and_then(quantity);
    let mut heads: Vec<u64> = theirs.iter().filter_map(|r| r.as_ref().ok().and_then(quantity)).collect();
    heads.sort_unstable();
    // The median of the references, never the maximum: one reference ahead must not set the tip.
    let reference = (!heads.is_empty()).then(|| heads[(heads.len() - 1) / 2]);
    let lag = match (candidate, reference) {
        (Some(c), Some(r)) => Some(r as i64 - c as i64),
        _ => None,
    };
    LagSample { t_ms, candidate, reference, lag }
}

#[allow(clippy::too_many_arguments)]
fn summarize(
    settings: &LoadSettings,
    steps: &[(u32, u64, u64)],
    reached: usize,
    schedule: &[(usize, u64)],
    samples: Vec<Sample>,
    head_lag: Vec<LagSample>,
    first_errors: Vec<String>,
    completed: bool,
) -> Load {
    let latency_stats = |mut v: Vec<u64>| {
        v.sort_unstable();
        (percentile(&v, 50.0), percentile(&v, 95.0), percentile(&v, 99.0))
    };
    let mut out_steps = Vec::new();
    for (i, &(rate, start, end)) in steps.iter().enumerate() {
        let scheduled = schedule.iter().filter(|(s, _)| *s == i).count() as u64;
        let reached_here = schedule[..reached].iter().filter(|(s, _)| *s == i).count() as u64;
        let mine: Vec<&Sample> = samples.iter().filter(|s| s.step == i).collect();
        let ok = mine.iter().filter(|s| s.ok).count() as u64;
        let dropped = mine.iter().filter(|s| s.dropped).count() as u64;
        let busy = mine.iter().filter(|s| s.busy).count() as u64;
        let sent = mine.len() as u64;
        let errors = sent - ok;
        let (p50_us, p95_us, p99_us) =
            latency_stats(mine.iter().filter(|s| !s.dropped).map(|s| s.latency_us).collect());
        let all_sent = completed && reached_here == scheduled && sent == scheduled;
        let held = all_sent && sent > 0 && errors as f64 <= settings.max_error_rate * sent as f64;
        out_steps.push(Step {
            target_rps: rate,
            start_ms: start,
            end_ms: end,
            scheduled,
            sent,
            ok,
            errors,
            dropped,
            busy,
            p50_us,
            p95_us,
            p99_us,
            held,
        });
    }
    let held_rate_per_sec = out_steps.iter().take_while(|s| s.held).last().map_or(0, |s| s.target_rps);
    let errors_start_at_rps = out_steps.iter().find(|s| s.errors > 0).map(|s| s.target_rps);
    let seconds_n = steps.last().map_or(0, |s| s.2.div_ceil(1000));
    let seconds = (0..seconds_n)
        .map(|t| {
            let mine: Vec<&Sample> = samples.iter().filter(|s| s.sent_ms / 1000 == t).collect();
            let (p50_us, p95_us, p99_us) =
                latency_stats(mine.iter().filter(|s| !s.dropped).map(|s| s.latency_us).collect());
            let target_rps = steps.iter().find(|s| s.1 <= t * 1000 && t * 1000 < s.2).map_or(0, |s| s.0);
            Second {
                t_s: t,
                target_rps,
                sent: mine.len() as u64,
                errors: mine.iter().filter(|s| !s.ok).count() as u64,
                p50_us,
                p95_us,
                p99_us,
            }
        })
        .collect();
    let (p50_us, p95_us, p99_us) = latency_stats(samples.iter().filter(|s| !s.dropped).map(|s| s.latency_us).collect());
    let total = Totals {
        requests: samples.len() as u64,
        errors: samples.iter().filter(|s| !s.ok).count() as u64,
        busy: samples.iter().filter(|s| s.busy).count() as u64,
        p50_us,
        p95_us,
        p99_us,
    };
    Load {
        rate_per_sec: settings.rate_per_sec,
        duration_ms: settings.duration.as_millis() as u64,
        mix: MIX.iter().map(|(m, w)| (m.to_string(), *w)).collect(),
        completed,
        steps: out_steps,
        seconds,
        total,
        held_rate_per_sec,
        errors_start_at_rps,
        head_lag,
        first_errors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ramps_in_equal_steps_up_to_the_rate() {
        let s = |rate, secs| LoadSettings {
            rate_per_sec: rate,
            duration: Duration::from_secs(secs),
            max_in_flight: 10,
            max_error_rate: 0.0,
        };
        assert_eq!(plan(&s(40, 4)), vec![(10, 0, 1000), (20, 1000, 2000), (30, 2000, 3000), (40, 3000, 4000)]);
        let long = plan(&s(100, 60));
        assert_eq!(long.len(), 10);
        assert_eq!(long[0], (10, 0, 6000));
        assert_eq!(long[9], (100, 54_000, 60_000));
        assert_eq!(plan(&s(1, 1)), vec![(1, 0, 1000)]);
    }

    /// Answers the ramp's requests with even ids busy, as a candidate at its relay capacity
    /// does (the head-lag samples, ids from 1 000 000, are answered).
    struct HalfBusy;

    impl RpcTarget for HalfBusy {
        async fn call(&self, body: Bytes) -> Result<Bytes, super::super::TargetError> {
            let id = serde_json::from_slice::<Value>(&body).ok().and_then(|v| v["id"].as_u64()).unwrap_or(0);
            if id >= 1_000_000 || id % 2 == 1 {
                Ok(Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"result":"0x1"}"#))
            } else {
                let status = "busy".to_string();
                Err(super::super::TargetError::Relay { status, reason: "at capacity".into(), method_refused: false })
            }
        }

        fn describe(&self) -> String {
            "half busy".into()
        }
    }

    #[tokio::test]
    async fn busy_answers_are_counted_as_such_and_as_failed() {
        let settings =
            LoadSettings { rate_per_sec: 20, duration: Duration::from_secs(1), max_in_flight: 4, max_error_rate: 0.0 };
        let tracker = super::super::Tracker::new(&super::super::NoProgress, settings.duration);
        let load = run(&HalfBusy, &[] as &[HalfBusy], None, settings, &tracker, &CancellationToken::new()).await;
        assert!(load.completed);
        assert_eq!(load.total.requests, 20);
        assert_eq!(load.total.busy, 10, "{:?}", load.total);
        assert_eq!(load.total.errors, 10, "busy answers are not served requests");
        assert_eq!(load.steps[0].busy, 10);
        assert!(load.first_errors[0].contains("busy"), "{:?}", load.first_errors);
        assert_eq!(load.held_rate_per_sec, 0);
    }

    #[test]
    fn the_mix_draws_every_method() {
        let mut rng = SplitMix64::new(1);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..2000 {
            seen.insert(pick_method(&mut rng));
        }
        assert_eq!(seen.len(), MIX.len());
    }
}
