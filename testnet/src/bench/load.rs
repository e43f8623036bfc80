//! The bench's workloads over the testnet's load engine ([`crate::load`]): fixed concurrency, one
//! keep-alive HTTP/1.1 connection per worker (reconnected after an error), one request in flight
//! per connection, every latency kept (exact nearest-rank percentiles from the sorted samples, no
//! histogram buckets).
//!
//! Two shapes:
//! - [`closed_loop`]: `concurrency` workers send back to back for a warm-up, then for the measured
//!   window; only requests *sent* inside the window count. Gives req/s and latency percentiles.
//! - [`paced`]: `loops` workers each send at a fixed rate until stopped, recording every request
//!   with its send time, loop and server, for the failover analysis.
//!
//! Every answer is checked: HTTP 200, a JSON-RPC `"result"` near the start of the body (not an
//! `"error"`), and `x-rpcmesh-served-by` matched against the expected servers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::load::{Client, Pace, Schedule, Transport, on_client_threads};

/// Where to send, and what.
#[derive(Clone, Debug)]
pub struct Target {
    /// `host:port` of the HTTP server (a daemon's gateway or a backend).
    pub addr: SocketAddr,
    /// Extra request headers, e.g. `x-rpcmesh-failover: off`.
    pub headers: Vec<(&'static str, &'static str)>,
    /// The JSON-RPC request body, sent unchanged every time.
    pub body: Bytes,
    /// Client timeout per request.
    pub timeout: Duration,
    /// PeerIds to recognise in `x-rpcmesh-served-by` (index = the `served` value of a sample).
    pub known_servers: Arc<Vec<String>>,
    /// When not empty, a worker's `k`-th request sends `mix[k % mix.len()]` instead of `body`
    /// (a workload of several methods; each worker starts at its own offset).
    pub mix: Arc<[Bytes]>,
    /// Give every request its own JSON-RPC id: the body's `"id":1` becomes a per-request number.
    /// A daemon samples requests by a keyed hash of their bytes, so one fixed body is sampled
    /// always or never; distinct ids make the sampled share what real clients get.
    pub fresh_ids: bool,
}

impl Target {
    /// A target sending `body` unchanged every time.
    pub fn fixed(addr: SocketAddr, body: Bytes, timeout: Duration, known_servers: Arc<Vec<String>>) -> Self {
        Target { addr, headers: Vec::new(), body, timeout, known_servers, mix: Arc::from([]), fresh_ids: false }
    }

    /// Whether requests differ from one another (the wire is then built per request).
    fn varies(&self) -> bool {
        self.fresh_ids || !self.mix.is_empty()
    }

    /// The body of a worker's `k`-th request.
    fn body_of(&self, worker: usize, k: u64) -> Bytes {
        let body = if self.mix.is_empty() {
            &self.body
        } else {
            &self.mix[(worker as u64).wrapping_add(k) as usize % self.mix.len()]
        };
        if self.fresh_ids { with_id(body, ((worker as u64) << 32) | (k & 0xffff_ffff)) } else { body.clone() }
    }
}

/// `body` with its first `"id":1` (followed by `,` or `}`) replaced by `"id":id`; unchanged if
/// it has none.
fn with_id(body: &Bytes, id: u64) -> Bytes {
    const NEEDLE: &[u8] = b"\"id\":1";
    let at = body
        .windows(NEEDLE.len())
        .position(|w| w == NEEDLE)
        .filter(|p| matches!(body.get(p + NEEDLE.len()), Some(b',' | b'}')));
    let Some(p) = at else { return body.clone() };
    let mut out = Vec::with_capacity(body.len() + 20);
    out.extend_from_slice(&body[..p]);
    out.extend_from_slice(format!("\"id\":{id}").as_bytes());
    out.extend_from_slice(&body[p + NEEDLE.len()..]);
    Bytes::from(out)
}

/// Who served one answer.
pub const SERVED_NONE: i16 = -1;
/// `x-rpcmesh-served-by` named a server not in [`Target::known_servers`].
pub const SERVED_OTHER: i16 = -2;

/// One request as the client saw it.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Worker (client loop) that sent it.
    pub worker: u16,
    /// Send time, µs since the run's start instant.
    pub sent_us: u64,
    /// Send to last body byte, µs.
    pub latency_us: u64,
    /// A JSON-RPC result came back with HTTP 200.
    pub ok: bool,
    /// Index into [`Target::known_servers`], [`SERVED_NONE`] or [`SERVED_OTHER`].
    pub served: i16,
    /// Response body bytes.
    pub bytes: u32,
}

/// Outcome of one request, before it becomes a [`Sample`].
struct Answer {
    ok: bool,
    served: i16,
    bytes: u32,
    error: Option<String>,
}

fn has_result(body: &[u8]) -> bool {
    // Backends and the gateway write `{"jsonrpc":"2.0","id":1,"result":...}`: the key is near the
    // start. An error answer has `"error"` there instead.
    let head = &body[..body.len().min(96)];
    head.windows(8).any(|w| w == b"\"result\"")
}

impl Target {
    /// A client of this target: its headers, its timeout.
    fn client(&self) -> Client {
        self.headers.iter().fold(Client::new(self.addr, Transport::Http, self.timeout), |c, (k, v)| c.header(*k, *v))
    }
}

/// Sends one request (`wire`, from [`Client::wire`]) and judges its answer.
async fn call(client: &mut Client, target: &Target, wire: &[u8]) -> Answer {
    match client.send(wire).await {
        Ok(resp) => {
            let served = match resp.served_by {
                None => SERVED_NONE,
                Some(v) => {
                    target.known_servers.iter().position(|s| s.as_bytes() == v).map_or(SERVED_OTHER, |i| i as i16)
                }
            };
            let body = &resp.body;
            let ok = resp.status == 200 && has_result(body);
            let error = (!ok).then(|| {
                format!("HTTP {}: {}", resp.status, String::from_utf8_lossy(&body[..body.len().min(200)]).trim())
            });
            Answer { ok, served, bytes: body.len().min(u32::MAX as usize) as u32, error }
        }
        Err(e) => Answer { ok: false, served: SERVED_NONE, bytes: 0, error: Some(e) },
    }
}

/// Sends one request on a fresh connection: `Ok(served)` (see [`Sample::served`]) for a
/// JSON-RPC result, else why not.
pub async fn once(target: &Target) -> Result<i16, String> {
    let mut client = target.client();
    let wire = client.wire(&target.body);
    let a = call(&mut client, target, &wire).await;
    if a.ok { Ok(a.served) } else { Err(a.error.unwrap_or_else(|| "no result".into())) }
}

/// What a worker hands back.
#[derive(Default)]
struct WorkerOut {
    samples: Vec<Sample>,
    first_errors: Vec<String>,
}

fn keep_error(out: &mut WorkerOut, e: Option<String>) {
    if let Some(e) = e
        && out.first_errors.len() < 3
    {
        out.first_errors.push(e);
    }
}

/// Result of a [`closed_loop`] run.
#[derive(Debug, Default)]
pub struct ClosedLoopResult {
    /// Every request sent in the measured window.
    pub samples: Vec<Sample>,
    /// Length of the measured window.
    pub window: Duration,
    /// A few error messages (at most 3 per worker).
    pub first_errors: Vec<String>,
}

/// Instants of a closed-loop run: warm-up starts at `start`, measuring at `measure_from`,
/// workers stop sending at `measure_until`.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    /// When the workers start (warm-up).
    pub start: Instant,
    /// Start of the measured window.
    pub measure_from: Instant,
    /// End of the measured window.
    pub measure_until: Instant,
}

impl Window {
    /// A window starting now.
    pub fn from_now(warmup: Duration, measure: Duration) -> Self {
        let start = Instant::now();
        Window { start, measure_from: start + warmup, measure_until: start + warmup + measure }
    }
}

/// Runs `concurrency` back-to-back workers against `target` over `window`; returns the requests
/// sent inside the measured part. Awaits in-flight requests at the end (their latency counts).
pub async fn closed_loop(target: &Target, concurrency: usize, window: Window) -> ClosedLoopResult {
    let target = target.clone();
    let (outs, errors) = on_client_threads(concurrency, move |w| {
        let target = target.clone();
        async move {
            let mut out = WorkerOut { samples: Vec::with_capacity(4096), first_errors: Vec::new() };
            let mut client = target.client();
            let fixed = client.wire(&target.body);
            let mut k: u64 = 0;
            loop {
                let sent = Instant::now();
                if sent >= window.measure_until {
                    break;
                }
                let a = if target.varies() {
                    let wire = client.wire(&target.body_of(w, k));
                    call(&mut client, &target, &wire).await
                } else {
                    call(&mut client, &target, &fixed).await
                };
                k = k.wrapping_add(1);
                let latency = sent.elapsed();
                if sent >= window.measure_from {
                    keep_error(&mut out, a.error);
                    out.samples.push(Sample {
                        worker: w as u16,
                        sent_us: sent.duration_since(window.start).as_micros() as u64,
                        latency_us: latency.as_micros() as u64,
                        ok: a.ok,
                        served: a.served,
                        bytes: a.bytes,
                    });
                }
            }
            out
        }
    })
    .await;
    let mut result = ClosedLoopResult {
        window: window.measure_until - window.measure_from,
        first_errors: errors,
        ..Default::default()
    };
    for out in outs {
        result.samples.extend(out.samples);
        result.first_errors.extend(out.first_errors);
    }
    result
}

/// Runs `loops` workers each sending `rate` requests/s (a worker waits for its answer before the
/// next send, like a real client) until `stop`. Send times are relative to `start`.
pub async fn paced(
    target: &Target,
    loops: usize,
    rate: f64,
    start: Instant,
    stop: CancellationToken,
) -> (Vec<Sample>, Vec<String>) {
    let target = target.clone();
    let (outs, mut errors) = on_client_threads(loops, move |w| {
        let target = target.clone();
        let stop = stop.clone();
        async move {
            let mut out = WorkerOut::default();
            let mut client = target.client();
            let wire = client.wire(&target.body);
            // Spread the loops over one interval.
            let mut schedule = Schedule::new(Pace::Rate(rate), w as f64 / loops.max(1) as f64);
            while schedule.wait(&stop).await {
                let sent = Instant::now();
                let a = call(&mut client, &target, &wire).await;
                keep_error(&mut out, a.error);
                out.samples.push(Sample {
                    worker: w as u16,
                    sent_us: sent.duration_since(start).as_micros() as u64,
                    latency_us: sent.elapsed().as_micros() as u64,
                    ok: a.ok,
                    served: a.served,
                    bytes: a.bytes,
                });
            }
            out
        }
    })
    .await;
    let mut samples = Vec::new();
    for out in outs {
        samples.extend(out.samples);
        errors.extend(out.first_errors);
    }
    samples.sort_by_key(|s| s.sent_us);
    (samples, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_detection() {
        assert!(has_result(br#"{"jsonrpc":"2.0","id":1,"result":"0x10"}"#));
        assert!(!has_result(br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32005,"message":"x"}}"#));
        assert!(!has_result(b""));
    }

    #[test]
    fn fresh_ids_and_mixes() {
        let body = Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}"#);
        assert_eq!(&with_id(&body, 77)[..], br#"{"jsonrpc":"2.0","id":77,"method":"eth_blockNumber","params":[]}"#);
        let other = Bytes::from_static(br#"{"id":12,"method":"x"}"#);
        assert_eq!(with_id(&other, 5), other, "an id that only starts with 1 is left alone");
        let addr = "127.0.0.1:1".parse().unwrap();
        let mut t = Target::fixed(addr, body.clone(), Duration::from_secs(1), Arc::new(vec![]));
        assert_eq!(t.body_of(3, 9), body);
        t.mix = Arc::from([body.clone(), other.clone()]);
        t.fresh_ids = true;
        assert_eq!(&t.body_of(0, 1)[..], br#"{"id":12,"method":"x"}"#);
        assert!(t.body_of(1, 1).starts_with(br#"{"jsonrpc":"2.0","id":4294967297,"#));
    }
}
