//! Progress of a vetting run, for a progress bar with an ETA: the battery reports each finished
//! check and each second of the load ramp to a [`ProgressSink`]; the ETA extrapolates the checks
//! still planned from the mean time of those done, plus what is left of the (fixed-length) ramp.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The parts of a run, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Chain id, head, pinned blocks.
    Preflight,
    /// Pinned reads against the references.
    Correctness,
    /// Method groups, archive depth, limits.
    Coverage,
    /// Error shapes.
    Conformance,
    /// The load ramp (and the WebSocket check beside it).
    Load,
    /// Waiting for the last newHeads after the ramp.
    WebSocket,
}

impl Phase {
    /// Lower-case name.
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Preflight => "preflight",
            Phase::Correctness => "correctness",
            Phase::Coverage => "coverage",
            Phase::Conformance => "conformance",
            Phase::Load => "load",
            Phase::WebSocket => "websocket",
        }
    }
}

/// One progress report.
#[derive(Debug, Clone)]
pub struct Progress {
    /// The part running.
    pub phase: Phase,
    /// What just finished or is running, in words.
    pub detail: String,
    /// Share of the whole run done, 0..=1 (an estimate before the ramp).
    pub fraction: f64,
    /// Estimated time left.
    pub eta: Option<Duration>,
}

/// Receives progress reports; called from the battery's tasks, so it must not block for long.
pub trait ProgressSink: Send + Sync {
    /// A new report.
    fn update(&self, progress: &Progress);
}

/// Discards progress.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl ProgressSink for NoProgress {
    fn update(&self, _: &Progress) {}
}

/// Used before any check finished: a guess of one check's time, ms.
const FIRST_CHECK_GUESS_MS: u64 = 100;

/// Turns battery events into [`Progress`] reports (shared by the sections of one run).
pub struct Tracker<'a> {
    sink: &'a dyn ProgressSink,
    started: Instant,
    planned: AtomicU64,
    done: AtomicU64,
    load_ms: u64,
    /// When the checks ended and the ramp started.
    load_started: Mutex<Option<Instant>>,
}

impl<'a> Tracker<'a> {
    /// A tracker for a run whose ramp lasts `load`.
    pub fn new(sink: &'a dyn ProgressSink, load: Duration) -> Self {
        Self {
            sink,
            started: Instant::now(),
            planned: AtomicU64::new(0),
            done: AtomicU64::new(0),
            load_ms: load.as_millis() as u64,
            load_started: Mutex::new(None),
        }
    }

    /// `n` more checks are coming.
    pub fn plan(&self, n: usize) {
        self.planned.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// One check finished.
    pub fn check_done(&self, phase: Phase, detail: &str) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        let planned = self.planned.load(Ordering::Relaxed).max(done);
        let elapsed = self.started.elapsed().as_millis() as u64;
        let per_check = elapsed / done.max(1);
        let left = (planned - done) * per_check.max(1) + self.load_ms;
        self.report(phase, detail, elapsed, left);
    }

    /// The ramp starts now.
    pub fn load_starts(&self) {
        *self.load_started.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
    }

    /// A second of the ramp passed.
    pub fn load_tick(&self, detail: &str) {
        let since = self.load_started.lock().unwrap_or_else(std::sync::PoisonError::into_inner).map(|t| t.elapsed());
        let in_load = since.map_or(0, |d| d.as_millis() as u64);
        let elapsed = self.started.elapsed().as_millis() as u64;
        self.report(Phase::Load, detail, elapsed, self.load_ms.saturating_sub(in_load));
    }

    /// Something outside the counted checks (waiting for newHeads, writing the report).
    /// Before the checks this reads 0 %, after the ramp 100 %, without an ETA.
    pub fn note(&self, phase: Phase, detail: &str) {
        let fraction = if matches!(phase, Phase::Preflight) { 0.0 } else { 1.0 };
        self.sink.update(&Progress { phase, detail: detail.to_string(), fraction, eta: None });
    }

    fn report(&self, phase: Phase, detail: &str, elapsed_ms: u64, left_ms: u64) {
        let guess_left = if self.done.load(Ordering::Relaxed) == 0 { FIRST_CHECK_GUESS_MS } else { 0 };
        let left = left_ms + guess_left;
        let fraction = elapsed_ms as f64 / (elapsed_ms + left).max(1) as f64;
        self.sink.update(&Progress {
            phase,
            detail: detail.to_string(),
            fraction: fraction.clamp(0.0, 1.0),
            eta: Some(Duration::from_millis(left)),
        });
    }
}
