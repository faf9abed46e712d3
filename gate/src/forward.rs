//! The way in: plain TCP forwards from a gate port (published on the host's 127.0.0.1) to
//! opencode's port in the agent's container.
//!
//! Threat: none new: the forward carries what the host's own clients send to opencode, which
//! enforces its own basic auth. The forward exists because the agent's container is on an
//! internal network the host cannot publish ports from.
//!
//! Left open: connections are not policy-checked or audited (they are ingress from the host),
//! and the target name is resolved on every connection (the engine's DNS names the agent).

use std::io;

use tokio::net::{TcpListener, TcpStream};

/// Forwards every connection accepted on `listener` to `target` (`host:port`).
pub async fn serve(listener: TcpListener, target: String) -> io::Result<()> {
    loop {
        let (mut inbound, peer) = match listener.accept().await {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "forward accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let target = target.clone();
        tokio::spawn(async move {
            match TcpStream::connect(target.as_str()).await {
                Ok(mut outbound) => {
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    if let Err(e) = tokio::io::copy_bidirectional_with_sizes(
                        &mut inbound,
                        &mut outbound,
                        crate::proxy::BUF,
                        crate::proxy::BUF,
                    )
                    .await
                    {
                        tracing::debug!(%peer, %target, error = %e, "forward ended");
                    }
                }
                Err(e) => tracing::warn!(%peer, %target, error = %e, "forward target unreachable"),
            }
        });
    }
}
