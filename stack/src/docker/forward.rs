//! Forwarders from a stack network's gateway address to the provider stand-ins.
//!
//! wiremock listens on the host's loopback, which containers cannot reach. The
//! gateway address of a stack's bridge is the host's own address on that network,
//! so a listener there is reachable from the containers and from nothing outside the
//! host. Each accepted connection is spliced to the wiremock server.
//!
//! Linux accepts a packet for any of the host's addresses on any interface (the weak
//! host model): a container that is *not* on a network could still reach that
//! network's gateway address through its own network's default route. A forwarder
//! that must be reachable only from one network (the providers' network, which only
//! api-gateway-internal joins, so that disconnecting the gateway from it cuts the
//! link for real) is therefore [`Isolation`]-bound to the network's bridge
//! (`SO_BINDTODEVICE`: connections arriving over another interface are refused by the
//! kernel), and also drops connections from outside the network's subnet, in case
//! the socket option is refused.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;

use crate::StackError;

/// The one network a forwarder serves.
#[derive(Clone, Debug)]
pub(crate) struct Isolation {
    /// The network's bridge interface on the host.
    pub device: String,
    /// The network's IPv4 subnet.
    pub subnet: Subnet,
}

/// An IPv4 subnet, `172.18.0.0/16`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Subnet {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    pub fn parse(text: &str) -> Option<Subnet> {
        let (network, prefix) = text.split_once('/')?;
        let prefix: u8 = prefix.parse().ok()?;
        (prefix <= 32).then_some(())?;
        Some(Subnet {
            network: network.parse().ok()?,
            prefix,
        })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V4(ip) => ip,
            IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
                Some(ip) => ip,
                None => return false,
            },
        };
        let mask = u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0);
        u32::from(ip) & mask == u32::from(self.network) & mask
    }
}

/// A listening forwarder; dropping it stops accepting and ends its connections.
pub(crate) struct Forwarder {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Forwarder {
    /// Listens on `listen` (a free port) and splices every connection to `target`;
    /// with `isolation`, only connections from that network are served.
    pub async fn start(
        listen: IpAddr,
        target: SocketAddr,
        isolation: Option<Isolation>,
    ) -> Result<Self, StackError> {
        let socket = match listen {
            IpAddr::V4(_) => TcpSocket::new_v4(),
            IpAddr::V6(_) => TcpSocket::new_v6(),
        }
        .map_err(StackError::io(format!("opening a socket for {target}")))?;
        if let Some(isolation) = &isolation
            && let Err(error) = socket.bind_device(Some(isolation.device.as_bytes()))
        {
            tracing::warn!(
                device = isolation.device,
                %error,
                "cannot bind a forwarder to its bridge; filtering by subnet only"
            );
        }
        socket
            .bind(SocketAddr::new(listen, 0))
            .map_err(StackError::io(format!(
                "listening on {listen} for {target}"
            )))?;
        let listener = socket.listen(1024).map_err(StackError::io(format!(
            "listening on {listen} for {target}"
        )))?;
        let addr = listener
            .local_addr()
            .map_err(StackError::io("reading a forwarder's address"))?;
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut inbound, peer)) = listener.accept().await {
                if let Some(isolation) = &isolation
                    && !isolation.subnet.contains(peer.ip())
                {
                    // Dropped at once: the peer sees its connection reset.
                    continue;
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subnet_contains_its_addresses_only() {
        let subnet = Subnet::parse("172.18.0.0/16").unwrap();
        assert!(subnet.contains("172.18.3.4".parse().unwrap()));
        assert!(!subnet.contains("172.19.0.2".parse().unwrap()));
        assert!(subnet.contains("::ffff:172.18.0.9".parse().unwrap()));
        assert!(
            Subnet::parse("0.0.0.0/0")
                .unwrap()
                .contains("10.1.2.3".parse().unwrap())
        );
        assert_eq!(Subnet::parse("172.18.0.0/33"), None);
        assert_eq!(Subnet::parse("172.18.0.0"), None);
    }
}
