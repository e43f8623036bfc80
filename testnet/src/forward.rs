//! A TCP forwarder: one provider's private path to a shared backend, so that provider's
//! "node" can be killed (`kill -9`) or frozen (`kill -STOP`) on its own while the chain lives on.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};

/// Accepts on `listen` and pipes every connection to `target` until the process ends.
pub async fn run(listen: SocketAddr, target: SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    serve(listener, target).await
}

/// Pipes every connection accepted by `listener` to `target`.
pub async fn serve(listener: TcpListener, target: SocketAddr) -> std::io::Result<()> {
    loop {
        let (mut inbound, _) = listener.accept().await?;
        tokio::spawn(async move {
            let _ = inbound.set_nodelay(true);
            match TcpStream::connect(target).await {
                Ok(mut outbound) => {
                    let _ = outbound.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
                Err(e) => tracing::debug!(%target, error = %e, "forwarder cannot reach its target"),
            }
        });
    }
}
