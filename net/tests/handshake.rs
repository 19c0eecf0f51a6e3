//! Handshakes over in-memory pipes and loopback TCP: pinned and first-use
//! trust, deadlines, early EOF, garbage, and the CPU-permit semaphore.

mod fixtures;

use std::sync::Arc;
use std::time::Duration;

use fixtures::*;
use net::{ClientHandshake, HandshakeOptions, LinkEvent, NetError};
use proto_core::message::{ClientMessage, ServerMessage};
use proto_core::{ClientConfig, Error, PeerMisbehaved, ServerIdentity, ServerTrust};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

#[tokio::test]
async fn pinned_client_and_server_exchange_ping_and_goodbye_both_ways() {
    let (mut client, mut server) = duplex_pair(64 * 1024).await;
    assert_eq!(client.server_key(), identity().public_key());

    client
        .send(&ClientMessage::Ping { nonce: 1 })
        .await
        .unwrap();
    assert_eq!(
        server.next_event().await.unwrap(),
        LinkEvent::Message(ClientMessage::Ping { nonce: 1 })
    );
    server
        .send(&ServerMessage::Ping { nonce: 2 })
        .await
        .unwrap();
    assert_eq!(
        client.next_event().await.unwrap(),
        LinkEvent::Message(ServerMessage::Ping { nonce: 2 })
    );

    server
        .close(Some(&ServerMessage::Goodbye {
            reason: proto_core::message::GoodbyeReason::ClientRequest,
        }))
        .await
        .unwrap();
    assert_eq!(
        client.next_event().await.unwrap(),
        LinkEvent::Message(ServerMessage::Goodbye {
            reason: proto_core::message::GoodbyeReason::ClientRequest
        })
    );
    assert_eq!(
        client.next_event().await.unwrap(),
        LinkEvent::Closed { clean: true }
    );
    assert!(matches!(client.next_event().await, Err(NetError::Closed)));
}

#[tokio::test]
async fn client_goodbye_and_close_reach_the_server_as_a_clean_close() {
    let (client, mut server) = duplex_pair(64 * 1024).await;
    client.close(Some(&ClientMessage::Goodbye)).await.unwrap();
    assert_eq!(
        server.next_event().await.unwrap(),
        LinkEvent::Message(ClientMessage::Goodbye)
    );
    assert_eq!(
        server.next_event().await.unwrap(),
        LinkEvent::Closed { clean: true }
    );
    assert!(matches!(server.next_event().await, Err(NetError::Closed)));
}

#[tokio::test]
async fn eof_without_close_notify_is_reported_as_an_unclean_close() {
    let (client, mut server) = duplex_pair(64 * 1024).await;
    drop(client);
    assert_eq!(
        server.next_event().await.unwrap(),
        LinkEvent::Closed { clean: false }
    );
    assert!(matches!(server.next_event().await, Err(NetError::Closed)));
}

#[tokio::test]
async fn first_use_asks_for_trust_then_connects_after_accept() {
    let (c, s) = tokio::io::duplex(64 * 1024);
    let opts = options();
    let server = tokio::spawn(async move {
        let mut session = net::accept(s, server_config(), &opts).await.unwrap();
        let ev = session.next_event().await.unwrap();
        session
            .send(&ServerMessage::Ping { nonce: 9 })
            .await
            .unwrap();
        ev
    });
    let handshake = net::connect(c, ClientConfig::new(ServerTrust::FirstUse), DEADLINE)
        .await
        .unwrap();
    let ClientHandshake::NeedsTrust(pending) = handshake else {
        panic!("first use must ask for trust");
    };
    assert_eq!(pending.server_key(), identity().public_key());
    assert_eq!(pending.fingerprint(), identity().public_key().fingerprint());
    let mut client = pending.accept().await.unwrap();
    assert_eq!(client.server_key(), identity().public_key());
    client
        .send(&ClientMessage::Ping { nonce: 8 })
        .await
        .unwrap();
    assert_eq!(
        server.await.unwrap(),
        LinkEvent::Message(ClientMessage::Ping { nonce: 8 })
    );
    assert_eq!(
        client.next_event().await.unwrap(),
        LinkEvent::Message(ServerMessage::Ping { nonce: 9 })
    );
}

#[tokio::test]
async fn rejecting_a_first_use_key_fails_the_server_handshake() {
    let (c, s) = tokio::io::duplex(64 * 1024);
    let opts = options();
    let server = tokio::spawn(async move { net::accept(s, server_config(), &opts).await });
    let ClientHandshake::NeedsTrust(pending) =
        net::connect(c, ClientConfig::new(ServerTrust::FirstUse), DEADLINE)
            .await
            .unwrap()
    else {
        panic!("first use must ask for trust");
    };
    pending.reject().await;
    let err = server.await.unwrap().err().expect("server must fail");
    assert!(
        matches!(err, NetError::Protocol(Error::AlertReceived(_))),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_key_other_than_the_pinned_one_is_refused() {
    let (c, s) = tokio::io::duplex(64 * 1024);
    let opts = options();
    let other = ServerIdentity::from_seed(&[8u8; 32]).public_key();
    let server = tokio::spawn(async move { net::accept(s, server_config(), &opts).await });
    let res = net::connect(c, ClientConfig::new(ServerTrust::Pinned(other)), DEADLINE).await;
    let Err(NetError::Protocol(Error::ServerKeyChanged {
        expected,
        presented,
    })) = res
    else {
        panic!("expected ServerKeyChanged");
    };
    assert_eq!(expected, other.fingerprint());
    assert_eq!(presented, identity().public_key().fingerprint());
    assert!(server.await.unwrap().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_and_messages_work_over_loopback_tcp() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut session = net::accept(tcp, server_config(), &options()).await.unwrap();
        while let LinkEvent::Message(ClientMessage::Ping { nonce }) =
            session.next_event().await.unwrap()
        {
            session.send(&ServerMessage::Ping { nonce }).await.unwrap();
        }
        session.next_event().await.unwrap()
    });
    let tcp = TcpStream::connect(addr).await.unwrap();
    let ClientHandshake::Connected(mut client) =
        net::connect(tcp, pinned_config(), DEADLINE).await.unwrap()
    else {
        panic!("pinned");
    };
    for nonce in 0..10 {
        client.send(&ClientMessage::Ping { nonce }).await.unwrap();
        assert_eq!(
            client.next_event().await.unwrap(),
            LinkEvent::Message(ServerMessage::Ping { nonce })
        );
    }
    client.close(Some(&ClientMessage::Goodbye)).await.unwrap();
    assert_eq!(server.await.unwrap(), LinkEvent::Closed { clean: true });
}

#[tokio::test(start_paused = true)]
async fn a_silent_client_hits_the_server_handshake_deadline() {
    let (_client_io, s) = tokio::io::duplex(64 * 1024);
    let opts = HandshakeOptions::new(Duration::from_secs(5), 1);
    let start = tokio::time::Instant::now();
    let res = net::accept(s, server_config(), &opts).await;
    assert!(matches!(res, Err(NetError::HandshakeTimeout)));
    assert_eq!(start.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn a_client_trickling_its_hello_hits_the_deadline() {
    let (mut c, s) = tokio::io::duplex(64 * 1024);
    let opts = HandshakeOptions::new(Duration::from_secs(5), 1);
    let trickle = tokio::spawn(async move {
        // A ClientHello header of the right length (1,634), then one byte a second.
        c.write_all(&[0x01, 0, 0, 0x06, 0x62, 0, 1]).await.unwrap();
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if c.write_all(&[0]).await.is_err() {
                return;
            }
        }
    });
    let res = net::accept(s, server_config(), &opts).await;
    assert!(matches!(res, Err(NetError::HandshakeTimeout)));
    trickle.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_silent_server_hits_the_client_handshake_deadline() {
    let (c, _server_io) = tokio::io::duplex(64 * 1024);
    let res = net::connect(c, pinned_config(), Duration::from_secs(5)).await;
    assert!(matches!(res, Err(NetError::HandshakeTimeout)));
}

#[tokio::test]
async fn a_stream_closed_mid_hello_fails_the_server_handshake() {
    let (mut c, s) = tokio::io::duplex(64 * 1024);
    c.write_all(&[0x01, 0, 0, 0x06, 0x62, 0, 1, 2])
        .await
        .unwrap();
    drop(c);
    let res = net::accept(s, server_config(), &options()).await;
    assert!(
        matches!(res, Err(NetError::Protocol(Error::UnexpectedEof))),
        "{:?}",
        res.err()
    );
}

#[tokio::test]
async fn a_server_closing_after_the_hello_fails_the_client_handshake() {
    let (c, mut s) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(async move {
        let mut hello = [0u8; 64];
        s.read_exact(&mut hello).await.unwrap();
        drop(s);
    });
    let res = net::connect(c, pinned_config(), DEADLINE).await;
    assert!(
        matches!(res, Err(NetError::Protocol(Error::UnexpectedEof))),
        "{:?}",
        res.err().map(|e| e.to_string())
    );
    server.await.unwrap();
}

#[tokio::test]
async fn an_oversized_length_prefix_fails_the_handshake_with_an_alert() {
    let (mut c, s) = tokio::io::duplex(64 * 1024);
    c.write_all(&[0x01, 0xff, 0xff, 0xff, 0xff]).await.unwrap();
    let res = tokio::time::timeout(
        Duration::from_secs(5),
        net::accept(s, server_config(), &options()),
    )
    .await
    .expect("must fail promptly, not wait for a body");
    assert!(
        matches!(
            res,
            Err(NetError::Protocol(Error::PeerMisbehaved(
                PeerMisbehaved::FrameTooLarge { .. }
            )))
        ),
        "{:?}",
        res.err()
    );
    // The plaintext alert frame went out before the stream was shut down.
    let mut reply = Vec::new();
    c.read_to_end(&mut reply).await.unwrap();
    assert_eq!(reply.first(), Some(&0x15), "alert frame expected");
}

/// A hello whose header announces the wrong length is refused as soon as its
/// version bytes arrive, not when the handshake deadline ends the wait for a
/// body that will never be valid (the slot would be held all that time).
#[tokio::test]
async fn a_client_hello_of_the_wrong_length_is_refused_without_waiting_for_the_deadline() {
    let (mut c, s) = tokio::io::duplex(64 * 1024);
    c.write_all(&[0x01, 0, 0, 0x03, 0xe8, 0, 2]).await.unwrap();
    // The deadline is long: reaching it would be the old behaviour.
    let opts = HandshakeOptions::new(Duration::from_secs(600), 1);
    let res = net::accept(s, server_config(), &opts).await;
    assert!(
        matches!(
            res,
            Err(NetError::Protocol(Error::Handshake(
                proto_core::HandshakeError::MalformedHello
            )))
        ),
        "{:?}",
        res.err()
    );
    // The client learns why: a plaintext handshake_failure alert.
    let mut reply = Vec::new();
    c.read_to_end(&mut reply).await.unwrap();
    assert_eq!(reply, [0x15, 0, 0, 0, 3, 2, 0, 2]);
}

#[tokio::test]
async fn garbage_bytes_fail_the_handshake_promptly() {
    let (mut c, s) = tokio::io::duplex(64 * 1024);
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let res = tokio::time::timeout(
        Duration::from_secs(5),
        net::accept(s, server_config(), &options()),
    )
    .await
    .unwrap();
    assert!(
        matches!(
            res,
            Err(NetError::Protocol(Error::PeerMisbehaved(
                PeerMisbehaved::UnknownFrameType(b'G')
            )))
        ),
        "{:?}",
        res.err()
    );
}

#[tokio::test]
async fn one_cpu_permit_still_lets_concurrent_handshakes_complete() {
    let opts = Arc::new(HandshakeOptions::new(DEADLINE, 1));
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let opts = opts.clone();
        let (c, s) = tokio::io::duplex(64 * 1024);
        tasks.push(tokio::spawn(async move {
            let (client, server) = tokio::join!(
                net::connect(c, pinned_config(), DEADLINE),
                net::accept(s, server_config(), &opts),
            );
            let (Ok(ClientHandshake::Connected(mut client)), Ok(mut server)) = (client, server)
            else {
                panic!("handshake failed");
            };
            client
                .send(&ClientMessage::Ping { nonce: 5 })
                .await
                .unwrap();
            server.next_event().await.unwrap()
        }));
    }
    for t in tasks {
        assert_eq!(
            t.await.unwrap(),
            LinkEvent::Message(ClientMessage::Ping { nonce: 5 })
        );
    }
    assert_eq!(opts.cpu_permits.available_permits(), 1);
}

#[tokio::test]
async fn hello_processing_waits_for_a_cpu_permit() {
    let permits = Arc::new(Semaphore::new(0));
    let opts = HandshakeOptions {
        cpu_permits: permits.clone(),
        ..HandshakeOptions::new(DEADLINE, 1)
    };
    let (c, s) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(async move { net::accept(s, server_config(), &opts).await });
    let client = tokio::spawn(net::connect(c, pinned_config(), DEADLINE));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!server.is_finished() && !client.is_finished());
    permits.add_permits(1);
    assert!(server.await.unwrap().is_ok());
    assert!(matches!(
        client.await.unwrap(),
        Ok(ClientHandshake::Connected(_))
    ));
}

#[tokio::test]
async fn a_closed_permit_semaphore_refuses_new_handshakes() {
    let opts = options();
    opts.cpu_permits.close();
    let (c, s) = tokio::io::duplex(64 * 1024);
    let _client = tokio::spawn(net::connect(c, pinned_config(), DEADLINE));
    let res = net::accept(s, server_config(), &opts).await;
    assert!(matches!(res, Err(NetError::ShuttingDown)));
}

/// An offload on the blocking pool that counts the jobs it runs.
fn counting_offload() -> (net::Offload, Arc<std::sync::atomic::AtomicUsize>) {
    let jobs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = jobs.clone();
    let offload = net::Offload::new(move |job| {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tokio::task::spawn_blocking(job)
    });
    (offload, jobs)
}

#[tokio::test]
async fn the_expensive_steps_run_on_the_injected_offload() {
    let (server_offload, server_jobs) = counting_offload();
    let (client_offload, client_jobs) = counting_offload();
    let opts = HandshakeOptions {
        offload: server_offload,
        ..options()
    };
    let (c, s) = tokio::io::duplex(64 * 1024);
    let (client, server) = tokio::join!(
        net::connect_with_offload(c, pinned_config(), DEADLINE, &client_offload),
        net::accept(s, server_config(), &opts),
    );
    assert!(matches!(client.unwrap(), ClientHandshake::Connected(_)));
    server.unwrap();
    let jobs =
        |n: &Arc<std::sync::atomic::AtomicUsize>| n.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(jobs(&server_jobs), 1, "the ClientHello");
    assert_eq!(
        jobs(&client_jobs),
        2,
        "key generation, then the ServerHello"
    );
}

/// Hands the server one byte per `read`.
struct OneByteReads(tokio::io::DuplexStream);

impl tokio::io::AsyncRead for OneByteReads {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let mut one = [0u8; 1];
        let mut small = tokio::io::ReadBuf::new(&mut one);
        let res = std::pin::Pin::new(&mut self.0).poll_read(cx, &mut small);
        buf.put_slice(small.filled());
        res
    }
}

impl tokio::io::AsyncWrite for OneByteReads {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, data)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[tokio::test]
async fn a_hello_read_one_byte_at_a_time_takes_one_cpu_permit_once_whole() {
    let (server_offload, server_jobs) = counting_offload();
    let opts = HandshakeOptions {
        offload: server_offload,
        ..HandshakeOptions::new(DEADLINE, 1)
    };
    let (c, s) = tokio::io::duplex(64 * 1024);
    let (client, server) = tokio::join!(
        net::connect(c, pinned_config(), DEADLINE),
        net::accept(OneByteReads(s), server_config(), &opts),
    );
    assert!(matches!(client.unwrap(), ClientHandshake::Connected(_)));
    server.unwrap();
    assert_eq!(server_jobs.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(opts.cpu_permits.available_permits(), 1, "permit returned");
}
