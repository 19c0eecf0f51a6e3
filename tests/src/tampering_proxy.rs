//! An attacker on the path: forwards TCP between one client and a server,
//! flipping one bit of the server→client stream where told to.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A proxy for one connection to `server`.
pub struct TamperingProxy {
    /// Where the client connects.
    pub addr: SocketAddr,
    /// Set it to flip the last byte of the next server→client chunk.
    pub flip_next: Arc<AtomicBool>,
}

impl TamperingProxy {
    /// Forwards unchanged, except: the byte at `flip_at` (an offset in the
    /// server→client stream) if given, and whatever `flip_next` asks for.
    pub async fn start(server: SocketAddr, flip_at: Option<u64>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let flip_next = Arc::new(AtomicBool::new(false));
        let flip = Arc::clone(&flip_next);
        tokio::spawn(async move {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let Ok(upstream) = TcpStream::connect(server).await else {
                return;
            };
            let (mut client_rx, mut client_tx) = client.into_split();
            let (mut server_rx, mut server_tx) = upstream.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut client_rx, &mut server_tx).await;
                let _ = server_tx.shutdown().await;
            });
            let mut buf = vec![0u8; 64 * 1024];
            let mut offset: u64 = 0;
            loop {
                let n = match server_rx.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if let Some(at) = flip_at {
                    if (offset..offset + n as u64).contains(&at) {
                        buf[(at - offset) as usize] ^= 0x01;
                    }
                }
                if flip.swap(false, Ordering::Relaxed) {
                    buf[n - 1] ^= 0x01;
                }
                offset += n as u64;
                if client_tx.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            let _ = client_tx.shutdown().await;
        });
        Self { addr, flip_next }
    }
}
