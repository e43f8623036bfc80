//! The load's own threads (like `wrk -t2`): each runs a single-threaded tokio runtime and a share
//! of the loops, apart from the runtime that serves simulated backends. Client and server then
//! meet only through sockets and thread wake-ups, as a real client and node in separate processes
//! do (sharing one runtime lets a worker thread answer its own request without ever sleeping,
//! which makes the direct path unrealistically cheap).

use std::future::Future;
use std::sync::Arc;

/// Client threads of the load generator.
pub const CLIENT_THREADS: usize = 2;

/// Runs `loops` futures made by `make(loop index)` on [`CLIENT_THREADS`] (at most `loops`)
/// dedicated threads; returns their outputs, and why a thread could not run its share.
pub async fn on_client_threads<T, F, Fut>(loops: usize, make: F) -> (Vec<T>, Vec<String>)
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = T> + 'static,
{
    let threads = CLIENT_THREADS.min(loops).max(1);
    let make = Arc::new(make);
    let mut handles = Vec::with_capacity(threads);
    let mut errors = Vec::new();
    for t in 0..threads {
        let make = make.clone();
        let spawned = std::thread::Builder::new().name(format!("load-client-{t}")).spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("client runtime: {e}"))?;
            let mine = (0..loops).filter(|w| w % threads == t).map(|w| make(w));
            Ok::<_, String>(rt.block_on(futures::future::join_all(mine)))
        });
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => errors.push(format!("could not start a load client thread: {e}")),
        }
    }
    let joined = tokio::task::spawn_blocking(move || {
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("a load client thread panicked".into()))).collect()
    })
    .await
    .unwrap_or_else(|e| vec![Err(format!("joining the load client threads: {e}"))]);
    let mut outs = Vec::new();
    for r in joined {
        match r {
            Ok(o) => outs.extend(o),
            Err(e) => errors.push(e),
        }
    }
    (outs, errors)
}
