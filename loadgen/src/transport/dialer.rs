//! Opening the byte stream under any protocol: TCP from one of several
//! loopback source addresses, then TLS if asked for.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use net::tls::rustls::pki_types::ServerName;
use net::tls::TlsConnector;
use net::ClientStream;
use tokio::net::{TcpSocket, TcpStream};

use crate::transport::TransportError;

#[derive(Debug, Clone)]
pub struct TlsOptions {
    /// CA or self-signed certificate to trust (else the Mozilla roots).
    pub ca: Option<PathBuf>,
    /// Name checked against the certificate; defaults to the address's IP.
    pub server_name: Option<String>,
}

/// Where to connect, from where, and whether to wrap the stream in TLS.
pub struct Dialer {
    addr: SocketAddr,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    sources: Vec<IpAddr>,
}

impl Dialer {
    /// `sources` loopback source addresses (ignored for other targets);
    /// TLS through `net::tls` (TLS 1.3, certificate verified) if `tls`.
    pub fn new(
        addr: SocketAddr,
        tls: Option<&TlsOptions>,
        sources: u8,
    ) -> Result<Self, TransportError> {
        let tls = match tls {
            None => None,
            Some(t) => {
                let config = net::tls::client_config(t.ca.as_deref())
                    .map_err(|e| TransportError::Tls(e.to_string()))?;
                let host = t
                    .server_name
                    .clone()
                    .unwrap_or_else(|| addr.ip().to_string());
                let name =
                    net::tls::server_name(&host).map_err(|e| TransportError::Tls(e.to_string()))?;
                Some((TlsConnector::from(config), name))
            }
        };
        Ok(Self {
            addr,
            tls,
            sources: source_addresses(addr, sources),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many source addresses connections are spread over (0: the
    /// system picks).
    pub fn source_count(&self) -> usize {
        self.sources.len()
    }

    /// TCP connect from client `index`'s source address, with Nagle off.
    pub async fn tcp(&self, index: usize) -> Result<TcpStream, TransportError> {
        let socket = match self.addr {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
        .map_err(TransportError::Connect)?;
        if !self.sources.is_empty() {
            // Each source address has its own ~28k ephemeral ports.
            let source = self.sources[index % self.sources.len()];
            socket
                .bind(SocketAddr::new(source, 0))
                .map_err(TransportError::Connect)?;
        }
        let stream = socket
            .connect(self.addr)
            .await
            .map_err(TransportError::Connect)?;
        // Chat is interactive: one message per write, never held back.
        stream.set_nodelay(true).map_err(TransportError::Connect)?;
        Ok(stream)
    }

    /// [`Self::tcp`], then the TLS handshake if configured.
    pub async fn connect(&self, index: usize) -> Result<ClientStream, TransportError> {
        let tcp = self.tcp(index).await?;
        Ok(match &self.tls {
            None => tcp.into(),
            Some((connector, name)) => connector
                .connect(name.clone(), tcp)
                .await
                .map_err(|e| TransportError::Tls(e.to_string()))?
                .into(),
        })
    }
}

/// 127.0.0.1 ..= 127.0.0.N for an IPv4 loopback target; none otherwise.
pub fn source_addresses(target: SocketAddr, count: u8) -> Vec<IpAddr> {
    match target.ip() {
        IpAddr::V4(ip) if ip.is_loopback() => (1..=count)
            .map(|last| IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_targets_get_numbered_source_addresses() {
        let target: SocketAddr = "127.0.0.1:7878".parse().unwrap();
        let sources = source_addresses(target, 3);
        let expected: Vec<IpAddr> = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(sources, expected);
    }

    #[test]
    fn other_targets_let_the_system_choose() {
        assert!(source_addresses("[::1]:7878".parse().unwrap(), 4).is_empty());
        assert!(source_addresses("192.0.2.1:7878".parse().unwrap(), 4).is_empty());
    }
}
