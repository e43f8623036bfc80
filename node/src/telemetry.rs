//! OpenTelemetry export of the daemon's tracing spans (`[telemetry]`, off by default).
//!
//! - [`otlp_layer`] builds a `tracing` layer that turns the `request` span (one per client
//!   request, `gateway`) and the `relay` span (one per relay served for a peer, `relay::server`)
//!   into OpenTelemetry spans, exported in batches over OTLP/HTTP (protobuf) to
//!   `telemetry.otlp_endpoint`. Export runs on the SDK's own batch thread, which hands each POST
//!   to the daemon's tokio runtime ([`RuntimeHttpClient`]): a slow or absent collector never
//!   blocks a request, and spans beyond the batch queue are dropped, not buffered without bound.
//! - [`current_trace_context`] and [`join_remote_trace`] carry a trace across a relay: the
//!   requester puts its `request` span's context in `RelayRequest::trace`, the server makes its
//!   `relay` span a child of it. Both are no-ops (`None`, nothing) when export is off, so the
//!   wire carries no trace context then.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState};
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use rpcmesh_protocol::messages::TraceContext;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

use crate::config::TelemetryConfig;

/// Longest one export POST may take (connect, send, answer) before the batch is given up.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest collector answer read, bytes (a collector answers with a small status message).
const MAX_COLLECTOR_ANSWER_BYTES: usize = 64 * 1024;
/// Longest [`OtlpExport::shutdown`] waits for the last batch.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Names of the spans exported (others stay in the logs only).
pub const EXPORTED_SPANS: [&str; 3] = ["request", "relay", "tx_broadcast"];
/// The OTLP/HTTP path of traces, added to an endpoint given without a path.
const TRACES_PATH: &str = "/v1/traces";

/// The running exporter: flush it with [`OtlpExport::shutdown`] before the runtime stops.
pub struct OtlpExport {
    provider: SdkTracerProvider,
}

impl OtlpExport {
    /// Exports what is queued and stops the batch thread (at most [`SHUTDOWN_TIMEOUT`]). Call
    /// it while the runtime given to [`otlp_layer`] still runs: the last POST runs there.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
            tracing::warn!(error = %e, "exporting the last spans to the OpenTelemetry collector failed");
        }
    }
}

/// The collector URL of `endpoint`: as given, or with `/v1/traces` when it has no path.
pub fn traces_url(endpoint: &str) -> String {
    let rest = endpoint.split_once("://").map_or(endpoint, |(_, r)| r);
    match rest.find('/') {
        Some(i) if rest.len() > i + 1 => endpoint.to_string(),
        _ => format!("{}{TRACES_PATH}", endpoint.trim_end_matches('/')),
    }
}

/// The export layer for `cfg`, or `None` when `otlp_endpoint` is empty. POSTs run on
/// `runtime`. Only the spans of [`EXPORTED_SPANS`] are exported, whatever the log filter.
pub fn otlp_layer<S>(
    cfg: &TelemetryConfig,
    runtime: tokio::runtime::Handle,
) -> Result<Option<(impl Layer<S> + use<S>, OtlpExport)>, String>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    if cfg.otlp_endpoint.is_empty() {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(RuntimeHttpClient::new(runtime))
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(traces_url(&cfg.otlp_endpoint))
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| format!("telemetry.otlp_endpoint {:?}: {e}", cfg.otlp_endpoint))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        // A relay follows its requester's decision; a root span is kept at the configured ratio.
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(cfg.sample_ratio))))
        .with_resource(Resource::builder().with_service_name(cfg.service_name.clone()).build())
        .build();
    let tracer = provider.tracer("rpcmesh");
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(tracing_subscriber::filter::filter_fn(|m| m.is_span() && EXPORTED_SPANS.contains(&m.name())));
    Ok(Some((layer, OtlpExport { provider })))
}

/// The trace context of the current span, to send with a relay; `None` when no span is being
/// exported (export off, or outside a `request` span).
pub fn current_trace_context() -> Option<TraceContext> {
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| TraceContext {
        trace_id: sc.trace_id().to_bytes(),
        parent_span_id: sc.span_id().to_bytes(),
        flags: sc.trace_flags().to_u8(),
    })
}

/// Puts `span` (not yet entered) in the current span's trace without making it the current
/// span's child in `tracing`: work that outlives its request (a transaction's broadcast and
/// later confirmation) is exported in the request's trace, while the request span still ends
/// when the client has its answer. Does nothing when no span is being exported.
pub fn continue_current_trace(span: &tracing::Span) {
    let cx = tracing::Span::current().context();
    if cx.span().span_context().is_valid() {
        // An error only means no export layer is installed.
        let _ = span.set_parent(cx);
    }
}

/// Makes `span` (not yet entered) a child of the requester's span `trace`, so that both
/// daemons' spans form one trace. Does nothing when export is off or `trace` is not valid.
pub fn join_remote_trace(span: &tracing::Span, trace: &TraceContext) {
    let sc = SpanContext::new(
        TraceId::from_bytes(trace.trace_id),
        SpanId::from_bytes(trace.parent_span_id),
        TraceFlags::new(trace.flags),
        true,
        TraceState::default(),
    );
    if sc.is_valid() {
        // An error only means no export layer is installed: nothing to join.
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(sc));
    }
}

/// The exporter's HTTP client: each POST is spawned on the daemon's tokio runtime and awaited
/// from the SDK's batch thread, so export needs neither its own runtime nor a blocking client.
pub struct RuntimeHttpClient {
    runtime: tokio::runtime::Handle,
    client: hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

impl RuntimeHttpClient {
    /// A client spawning on `runtime`.
    pub fn new(runtime: tokio::runtime::Handle) -> Self {
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
        Self { runtime, client }
    }
}

impl fmt::Debug for RuntimeHttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RuntimeHttpClient")
    }
}

impl HttpClient for RuntimeHttpClient {
    fn send_bytes<'a, 'b>(
        &'a self,
        request: Request<Bytes>,
    ) -> Pin<Box<dyn Future<Output = Result<Response<Bytes>, HttpError>> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        let client = self.client.clone();
        let task = self.runtime.spawn(async move {
            let (parts, body) = request.into_parts();
            let exchange = async move {
                let answer = client.request(Request::from_parts(parts, Full::new(body))).await?;
                let (parts, body) = answer.into_parts();
                let body = Limited::new(body, MAX_COLLECTOR_ANSWER_BYTES).collect().await?.to_bytes();
                Ok::<_, HttpError>(Response::from_parts(parts, body))
            };
            match tokio::time::timeout(EXPORT_TIMEOUT, exchange).await {
                Ok(r) => r,
                Err(_) => Err(HttpError::from(format!("no answer from the collector within {EXPORT_TIMEOUT:?}"))),
            }
        });
        Box::pin(async move { task.await.map_err(|e| HttpError::from(format!("export task: {e}")))? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_without_a_path_get_the_traces_path() {
        assert_eq!(traces_url("http://127.0.0.1:4318"), "http://127.0.0.1:4318/v1/traces");
        assert_eq!(traces_url("http://127.0.0.1:4318/"), "http://127.0.0.1:4318/v1/traces");
        assert_eq!(traces_url("http://c:4318/v1/traces"), "http://c:4318/v1/traces");
        assert_eq!(traces_url("https://c/otlp/v1/traces"), "https://c/otlp/v1/traces");
    }

    #[test]
    fn without_export_nothing_is_carried() {
        let span = tracing::info_span!("request");
        let _entered = span.enter();
        assert_eq!(current_trace_context(), None);
        join_remote_trace(&span, &TraceContext { trace_id: [1; 16], parent_span_id: [2; 8], flags: 1 });
    }
}
