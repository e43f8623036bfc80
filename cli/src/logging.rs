//! Logging to stderr with `tracing`; stdout is kept for command output. With
//! `telemetry.otlp_endpoint` set, the `request` and `relay` spans are also exported to an
//! OpenTelemetry collector (`rpcmesh_node::telemetry`).

use rpcmesh_node::config::{LogConfig, LogFormat, TelemetryConfig};
use rpcmesh_node::telemetry::{OtlpExport, otlp_layer};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Installs the global subscriber. `RUST_LOG` wins over the configured level (of the logs; the
/// exported spans do not depend on it).
pub fn init(cfg: &LogConfig) {
    let _ = tracing_subscriber::registry().with(fmt_layer(cfg)).try_init();
}

/// [`init`] plus span export when `telemetry` says so, its POSTs running on `runtime`. The
/// returned exporter must be shut down while `runtime` still runs, to send the last spans.
pub fn init_with_telemetry(
    cfg: &LogConfig,
    telemetry: &TelemetryConfig,
    runtime: tokio::runtime::Handle,
) -> Result<Option<OtlpExport>, String> {
    match otlp_layer(telemetry, runtime)? {
        None => {
            init(cfg);
            Ok(None)
        }
        Some((otlp, export)) => {
            let _ = tracing_subscriber::registry().with(fmt_layer(cfg)).with(otlp).try_init();
            tracing::info!(endpoint = %telemetry.otlp_endpoint, "exporting spans to an OpenTelemetry collector");
            Ok(Some(export))
        }
    }
}

/// The stderr log, filtered by `RUST_LOG` or the configured level.
fn fmt_layer<S>(cfg: &LogConfig) -> Box<dyn tracing_subscriber::Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi);
    match cfg.format {
        LogFormat::Text => layer.with_filter(filter).boxed(),
        LogFormat::Json => layer.json().with_filter(filter).boxed(),
    }
}
