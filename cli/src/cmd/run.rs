//! `rpcmesh run`: the daemon in the foreground until SIGINT or SIGTERM.

use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use crate::Failure;
use crate::flags::ConfigFlags;
use crate::home::{HomeArgs, load_config};

/// How long in-flight work may take after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Arguments of `rpcmesh run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    home: HomeArgs,
    #[command(flatten)]
    flags: ConfigFlags,
}

/// Runs the daemon.
pub fn run(args: RunArgs) -> Result<(), Failure> {
    let home = args.home.resolve()?;
    let mut config = load_config(&home, &args.flags.overrides()?)?;
    args.flags.apply_upstreams(&mut config);
    config.check()?;
    crate::memory::tune();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    match config.runtime.worker_threads {
        // TOKIO_WORKER_THREADS, if set, is read by the builder itself.
        0 if std::env::var_os("TOKIO_WORKER_THREADS").is_some() => {}
        0 => {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            builder.worker_threads((cores / 2).max(1));
        }
        n => {
            builder.worker_threads(n);
        }
    }
    let runtime = builder.enable_all().build().context("starting the async runtime")?;
    let export = crate::logging::init_with_telemetry(&config.log, &config.telemetry, runtime.handle().clone())
        .map_err(|e| Failure::Usage(anyhow::anyhow!(e)))?;
    let result = runtime.block_on(async move {
        let mut node = rpcmesh_node::launch::launch(config, &home)
            .await
            .with_context(|| format!("starting the daemon of {}", home.display()))?;
        let trim_stop = tokio_util::sync::CancellationToken::new();
        tokio::spawn(crate::memory::trim_periodically(trim_stop.clone()));
        let outcome = tokio::select! {
            s = shutdown_signal() => { tracing::info!(signal = s, "shutting down"); Ok(()) }
            (task, result) = node.wait() => match result {
                Ok(()) => Err(anyhow::anyhow!("the {task} task stopped unexpectedly")),
                Err(e) => Err(anyhow::anyhow!("the {task} task failed: {e}")),
            },
        };
        trim_stop.cancel();
        node.shutdown(SHUTDOWN_GRACE).await;
        tracing::info!("stopped");
        outcome.map_err(Failure::Runtime)
    });
    // The last spans go out while the runtime still runs (their POST is spawned on it).
    if let Some(export) = export {
        export.shutdown();
    }
    result
}

async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "ctrl-c"
    }
}
