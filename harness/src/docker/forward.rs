//! Forwarders from the stack network's gateway address to the provider stand-ins.
//!
//! wiremock listens on the host's loopback, which containers cannot reach. The
//! gateway address of the stack's bridge is the host's own address on that network,
//! so a listener there is reachable from the containers and from nothing outside the
//! host. Each accepted connection is spliced to the wiremock server.

use std::net::{IpAddr, SocketAddr};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::StackError;

/// A listening forwarder; dropping it stops accepting and ends its connections.
pub(crate) struct Forwarder {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Forwarder {
    pub async fn start(listen: IpAddr, target: SocketAddr) -> Result<Self, StackError> {
        let listener = TcpListener::bind((listen, 0))
            .await
            .map_err(StackError::io(format!(
                "listening on {listen} for {target}"
            )))?;
        let addr = listener
            .local_addr()
            .map_err(StackError::io("reading a forwarder's address"))?;
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                connections.spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
                // Finished connections are collected as we go.
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(Self { addr, task })
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection.
        self.task.abort();
    }
}
