//! The accept loop: admission (global and per-address connection caps,
//! per-address handshake rate), the optional TLS layer and the protocol
//! handshake under one deadline, then the session.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use net::tls::ReloadableTlsAcceptor;
use net::{HandshakeOptions, MaybeTlsStream, ServerStream};
use proto_core::AlertCode;
use proto_core::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{timeout, Instant};

use crate::rate_limit::{AddressGate, AddressPermit};
use crate::reaper::Reaper;
use crate::session::{self, Shared};
use crate::unauthenticated_pool::{PoolSlot, UnauthenticatedPool};

/// How long shutdown waits for sessions to say goodbye before dropping them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What the accept loop needs.
pub struct Listener {
    pub tcp: TcpListener,
    pub tls: Option<Arc<ReloadableTlsAcceptor>>,
    pub protocol: ServerConfig,
    pub shared: Arc<Shared>,
    pub cpu_permits: Arc<Semaphore>,
}

/// The slots a connection holds: in total and per address until it is
/// closed, among the not-yet-logged-in until it logs in (or is evicted);
/// and the reaper that closes it if the client drops.
struct Admitted {
    _global: OwnedSemaphorePermit,
    _address: AddressPermit,
    pending: PoolSlot,
    reaper: Reaper<Gone>,
}

/// A dropped client's connection on its way to the reaper, with its slots:
/// it counts against the connection limits until it is closed.
struct Gone {
    _link: net::ServerLink<ServerStream>,
    _global: OwnedSemaphorePermit,
    _address: AddressPermit,
}

impl Listener {
    /// Accepts until shutdown, then waits (bounded) for every session.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let limits = self.shared.limits.clone();
        let connections = Arc::new(Semaphore::new(limits.max_connections));
        let unauthenticated = UnauthenticatedPool::new(
            limits.max_unauthenticated,
            limits.max_unauthenticated_per_ip,
        );
        let gate = AddressGate::new(
            limits.max_connections_per_ip,
            limits.handshakes_per_ip_per_second,
            limits.handshake_burst_per_ip,
        );
        let reaper = Reaper::start();
        let mut tasks = JoinSet::new();
        let mut refused: u64 = 0;
        let lingering = Arc::new(Semaphore::new(MAX_LINGERING_REFUSALS));
        loop {
            let accepted = tokio::select! {
                a = self.tcp.accept() => a,
                _ = shutdown.changed() => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(global) = Arc::clone(&connections).try_acquire_owned() else {
                refused += 1;
                log_refusal(refused, peer, "server full (max_connections)");
                refuse(stream, AlertCode::ServerFull, &lingering);
                continue;
            };
            let address = match gate.admit(peer.ip(), std::time::Instant::now()) {
                Ok(p) => p,
                Err(why) => {
                    refused += 1;
                    log_refusal(refused, peer, &format!("{why:?}"));
                    refuse(stream, AlertCode::RateLimited, &lingering);
                    continue;
                }
            };
            let evicted_before = unauthenticated.evicted_total();
            let pending = match unauthenticated.admit(peer.ip()) {
                Ok(slot) => slot,
                Err(why) => {
                    refused += 1;
                    log_refusal(refused, peer, &format!("{why:?}"));
                    refuse(stream, AlertCode::RateLimited, &lingering);
                    continue;
                }
            };
            let evicted = unauthenticated.evicted_total();
            if evicted > evicted_before && (evicted <= 10 || evicted % 1000 == 0) {
                tracing::warn!(
                    %peer,
                    evicted_total = evicted,
                    "not-logged-in connections at their cap: evicted the oldest"
                );
            }
            let _ = stream.set_nodelay(true);
            let admitted = Admitted {
                _global: global,
                _address: address,
                pending,
                reaper: reaper.clone(),
            };
            tasks.spawn(handle(
                stream,
                peer,
                admitted,
                self.tls.clone(),
                self.protocol.clone(),
                Arc::clone(&self.shared),
                Arc::clone(&self.cpu_permits),
            ));
        }
        drop(self.tcp);
        // No new handshakes; sessions see the shutdown signal themselves.
        self.cpu_permits.close();
        let drained = timeout(SHUTDOWN_GRACE, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                remaining = tasks.len(),
                "sessions still open after the grace period; dropping them"
            );
            tasks.shutdown().await;
        }
    }
}

/// Refused connections kept open at once to deliver their alert.
const MAX_LINGERING_REFUSALS: usize = 64;
/// How long a refused connection is kept to deliver its alert.
const REFUSAL_LINGER: Duration = Duration::from_millis(500);

/// Tells a refused client why (a plaintext alert: `server_full` or
/// `rate_limited`), then closes. The client's hello is read and dropped
/// first, for a moment, so that closing with unread input does not reset
/// the connection before the alert is read; under a flood (no lingering
/// slot left) the connection is closed at once, without the alert.
fn refuse(stream: TcpStream, why: AlertCode, lingering: &Arc<Semaphore>) {
    let Ok(permit) = Arc::clone(lingering).try_acquire_owned() else {
        return;
    };
    let _ = stream.try_write(&proto_core::plaintext_alert_frame(why));
    tokio::spawn(async move {
        let _permit = permit;
        let mut stream = stream;
        let _ = timeout(REFUSAL_LINGER, async {
            let _ = stream.shutdown().await;
            let mut sink = [0u8; 2048];
            while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
        })
        .await;
    });
}

fn log_refusal(count: u64, peer: SocketAddr, why: &str) {
    // A flood must not flood the log: the first few, then every 1000th.
    if count <= 10 || count % 1000 == 0 {
        tracing::warn!(%peer, refused_total = count, why, "connection refused");
    }
}

async fn handle(
    tcp: TcpStream,
    peer: SocketAddr,
    admitted: Admitted,
    tls: Option<Arc<ReloadableTlsAcceptor>>,
    protocol: ServerConfig,
    shared: Arc<Shared>,
    cpu_permits: Arc<Semaphore>,
) {
    let Admitted {
        _global,
        _address,
        mut pending,
        reaper,
    } = admitted;
    let deadline = Instant::now() + shared.limits.handshake_timeout;
    // On the heap while it runs: the session that follows needs none of
    // its memory, and the task is sized for its largest state.
    let handshake = Box::pin(handshake(
        tcp,
        peer,
        tls,
        protocol,
        &shared,
        cpu_permits,
        deadline,
    ));
    let session = tokio::select! {
        s = handshake => s,
        () = pending.evicted() => {
            tracing::debug!(%peer, "evicted during the handshake: not-logged-in connections at their cap");
            return;
        }
    };
    let Some(session) = session else { return };
    if let Some(link) = session::run(session, peer, shared, pending).await {
        reaper.reap(Gone {
            _link: link,
            _global,
            _address,
        });
    }
}

/// TLS (if configured) and the protocol handshake, within `deadline`.
async fn handshake(
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<Arc<ReloadableTlsAcceptor>>,
    protocol: ServerConfig,
    shared: &Shared,
    cpu_permits: Arc<Semaphore>,
    deadline: Instant,
) -> Option<net::ServerLink<ServerStream>> {
    let stream: ServerStream = match tls {
        None => MaybeTlsStream::Plain(tcp),
        Some(tls) => {
            match timeout(shared.limits.handshake_timeout, tls.acceptor().accept(tcp)).await {
                Ok(Ok(s)) => s.into(),
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return None;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return None;
                }
            }
        }
    };
    let opts = HandshakeOptions {
        deadline: deadline.saturating_duration_since(Instant::now()),
        cpu_permits,
        // The ClientHello's cryptography at background priority, like hashing.
        offload: net::Offload::new(background_cpu::spawn),
    };
    match net::accept(stream, protocol, &opts).await {
        Ok(session) => Some(session),
        Err(e) => {
            tracing::debug!(%peer, error = %e, "handshake failed");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future `f` returns, without calling it.
    fn future_size<F, A, B, C, D, E, G, H, Fut>(_f: F) -> usize
    where
        F: FnOnce(A, B, C, D, E, G, H) -> Fut,
    {
        std::mem::size_of::<Fut>()
    }

    /// Every connection is one task holding this future for its whole
    /// life, so its size is most of an idle connection's memory. It was
    /// 33 KiB while the protocol state (2.7 KiB) sat inline and each
    /// `async fn` layer between accept and close kept its own copy; an
    /// idle server then needed twice the 16 KiB per connection it aims at.
    /// With rooms it had grown to 5 KiB again, sized by states an idle
    /// session never is in (the handshake, a login, a room request, the
    /// close); those are boxed now, and the task is ~3.4 KiB.
    #[test]
    fn a_connection_task_stays_small() {
        let bytes = future_size(handle);
        assert!(
            bytes <= 4 * 1024,
            "a connection's task future is {bytes} bytes; box what grew it"
        );
    }
}
