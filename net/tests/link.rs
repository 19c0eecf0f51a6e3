//! Established sessions: write coalescing, cancel-safe reads, slow-consumer
//! accounting, and a peer that turns hostile after the handshake.

mod fixtures;

use std::sync::atomic::Ordering;
use std::time::Duration;

use fixtures::*;
use net::{LinkEvent, NetError};
use proto_core::message::{ClientMessage, ServerMessage};
use proto_core::{EncodedServerMessage, Error, PeerMisbehaved};
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn a_thousand_queued_messages_go_out_in_one_write() {
    let (c, s) = tokio::io::duplex(1 << 20);
    let (s, writes) = CountingStream::new(s);
    let (mut client, mut server) = connect_pair(c, s).await;

    let before = writes.load(Ordering::SeqCst);
    for nonce in 0..1000 {
        server.queue(&ServerMessage::Ping { nonce }).unwrap();
    }
    assert_eq!(
        writes.load(Ordering::SeqCst),
        before,
        "queue must not write"
    );
    server.flush().await.unwrap();
    let used = writes.load(Ordering::SeqCst) - before;
    assert!(used <= 2, "{used} writes for 1000 messages");

    for nonce in 0..1000 {
        assert_eq!(
            client.next_event().await.unwrap(),
            LinkEvent::Message(ServerMessage::Ping { nonce })
        );
    }
}

#[tokio::test]
async fn a_pre_encoded_broadcast_message_reaches_every_session() {
    let msg = EncodedServerMessage::new(&ServerMessage::Ping { nonce: 77 });
    let mut pairs = Vec::new();
    for _ in 0..3 {
        pairs.push(duplex_pair(64 * 1024).await);
    }
    for (_, server) in &mut pairs {
        server.queue_encoded(&msg).unwrap();
        server.flush().await.unwrap();
    }
    for (client, _) in &mut pairs {
        assert_eq!(
            client.next_event().await.unwrap(),
            LinkEvent::Message(ServerMessage::Ping { nonce: 77 })
        );
    }
}

#[tokio::test]
async fn flushing_with_nothing_queued_writes_nothing() {
    let (c, s) = tokio::io::duplex(64 * 1024);
    let (s, writes) = CountingStream::new(s);
    let (_client, mut server) = connect_pair(c, s).await;
    let before = writes.load(Ordering::SeqCst);
    server.flush().await.unwrap();
    server.flush().await.unwrap();
    assert_eq!(writes.load(Ordering::SeqCst), before);
}

#[tokio::test]
async fn pending_bytes_counts_what_the_peer_has_not_taken() {
    // A 4 KiB pipe that the client never reads: a slow consumer.
    let (_client, mut server) = duplex_pair(4 * 1024).await;
    assert_eq!(server.pending_bytes(), 0);
    server.queue(&ServerMessage::Ping { nonce: 0 }).unwrap();
    let one = server.pending_bytes();
    assert!(one > 9, "a sealed record is larger than its payload");
    for nonce in 1..1000 {
        server.queue(&ServerMessage::Ping { nonce }).unwrap();
    }
    assert_eq!(server.pending_bytes(), 1000 * one);

    // The flush stalls on the full pipe; cut off, it keeps its place.
    let stalled = tokio::time::timeout(Duration::from_millis(50), server.flush()).await;
    assert!(stalled.is_err(), "the pipe cannot take it all");
    let left = server.pending_bytes();
    assert!(left > 0 && left < 1000 * one, "{left} pending");
}

#[tokio::test]
async fn an_interrupted_flush_resumes_without_losing_or_repeating_bytes() {
    let (mut client, mut server) = duplex_pair(1024).await;
    for nonce in 0..200 {
        server.queue(&ServerMessage::Ping { nonce }).unwrap();
    }
    // Cancel the flush repeatedly while the client drains the pipe.
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while got.len() < 200 {
            match client.next_event().await.unwrap() {
                LinkEvent::Message(ServerMessage::Ping { nonce }) => got.push(nonce),
                other => panic!("unexpected {other:?}"),
            }
        }
        got
    });
    while server.pending_bytes() > 0 {
        let _ = tokio::time::timeout(Duration::from_micros(50), server.flush()).await;
        tokio::task::yield_now().await;
    }
    server.flush().await.unwrap();
    assert_eq!(reader.await.unwrap(), (0..200).collect::<Vec<_>>());
}

#[tokio::test]
async fn next_event_is_cancel_safe_when_raced_against_a_timer() {
    // A tiny pipe so records arrive split across many reads.
    let (mut client, mut server) = duplex_pair(61).await;
    let sender = tokio::spawn(async move {
        for nonce in 0..300u64 {
            server.queue(&ServerMessage::Ping { nonce }).unwrap();
            if nonce % 7 == 0 {
                server.flush().await.unwrap();
                tokio::task::yield_now().await;
            }
        }
        server.close(None).await.unwrap();
    });
    let mut got = Vec::new();
    let mut cancelled = 0u32;
    loop {
        tokio::select! {
            ev = client.next_event() => match ev.unwrap() {
                LinkEvent::Message(ServerMessage::Ping { nonce }) => got.push(nonce),
                LinkEvent::Closed { clean } => { assert!(clean); break; }
                other => panic!("unexpected {other:?}"),
            },
            _ = tokio::time::sleep(Duration::from_micros(10)) => cancelled += 1,
            _ = tokio::task::yield_now() => cancelled += 1,
        }
    }
    sender.await.unwrap();
    assert_eq!(got, (0..300).collect::<Vec<_>>());
    assert!(cancelled > 0, "the race never cancelled a read");
}

#[tokio::test]
async fn a_server_loop_can_select_reads_against_an_outbox() {
    let (mut client, mut server) = duplex_pair(64 * 1024).await;
    let (tx, mut outbox) = tokio::sync::mpsc::channel::<ServerMessage>(16);
    let server_task = tokio::spawn(async move {
        let mut received = 0;
        loop {
            tokio::select! {
                ev = server.next_event() => match ev.unwrap() {
                    LinkEvent::Message(ClientMessage::Ping { .. }) => received += 1,
                    LinkEvent::Message(_) => {}
                    LinkEvent::Closed { clean } => return (received, clean),
                },
                Some(msg) = outbox.recv() => {
                    server.queue(&msg).unwrap();
                    while let Ok(more) = outbox.try_recv() {
                        server.queue(&more).unwrap();
                    }
                    server.flush().await.unwrap();
                }
            }
        }
    });
    for nonce in 0..50 {
        tx.send(ServerMessage::Ping { nonce }).await.unwrap();
        client.send(&ClientMessage::Ping { nonce }).await.unwrap();
    }
    for nonce in 0..50 {
        assert_eq!(
            client.next_event().await.unwrap(),
            LinkEvent::Message(ServerMessage::Ping { nonce })
        );
    }
    client.close(Some(&ClientMessage::Goodbye)).await.unwrap();
    assert_eq!(server_task.await.unwrap(), (50, true));
}

#[tokio::test]
async fn an_oversized_length_prefix_after_the_handshake_fails_promptly_with_an_alert() {
    let (c, s) = tokio::io::duplex(64 * 1024);
    let opts = options();
    let server = tokio::spawn(async move {
        let mut session = net::accept(s, server_config(), &opts).await.unwrap();
        session
            .send(&ServerMessage::Ping { nonce: 0 })
            .await
            .unwrap();
        session.next_event().await
    });
    let mut raw = RawClient::handshake(c).await;
    raw.wait_for_ping().await;
    raw.io
        .write_all(&[0x17, 0xff, 0xff, 0xff, 0xff])
        .await
        .unwrap();
    let res = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("must fail without waiting for 4 GiB")
        .unwrap();
    assert!(
        matches!(
            res,
            Err(NetError::Protocol(Error::PeerMisbehaved(
                PeerMisbehaved::FrameTooLarge { len: u32::MAX, .. }
            )))
        ),
        "{res:?}"
    );
    // The alert was sealed under the session keys and sent before closing.
    let reply = raw.read_to_end().await;
    assert!(!reply.is_empty());
    assert_eq!(
        raw.conn.handle_input(&reply),
        Err(Error::AlertReceived(proto_core::AlertCode::RecordOverflow))
    );
}

#[tokio::test]
async fn a_tampered_record_is_a_protocol_error_and_later_calls_repeat_it() {
    let (c, s) = tokio::io::duplex(64 * 1024);
    let opts = options();
    let server = tokio::spawn(async move {
        let mut session = net::accept(s, server_config(), &opts).await.unwrap();
        session
            .send(&ServerMessage::Ping { nonce: 0 })
            .await
            .unwrap();
        let first = session.next_event().await;
        let second = session.next_event().await;
        (first, second)
    });
    let mut raw = RawClient::handshake(c).await;
    raw.wait_for_ping().await;
    raw.conn.send(&ClientMessage::Ping { nonce: 1 }).unwrap();
    let mut record = Vec::new();
    raw.conn.drain_transmit(&mut record);
    let last = record.len() - 1;
    record[last] ^= 1; // flip a tag bit (threat N1)
    raw.io.write_all(&record).await.unwrap();
    let (first, second) = server.await.unwrap();
    for res in [first, second] {
        assert!(
            matches!(
                res,
                Err(NetError::Protocol(Error::PeerMisbehaved(
                    PeerMisbehaved::BadRecordMac
                )))
            ),
            "{res:?}"
        );
    }
}

#[tokio::test]
async fn a_goodbye_answered_with_close_ends_the_client_session_cleanly_over_tcp() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tcp = tokio::net::TcpStream::connect(listener.local_addr().unwrap());
    let (tcp, accepted) = tokio::join!(tcp, listener.accept());
    let (mut client, mut server) = connect_pair(tcp.unwrap(), accepted.unwrap().0).await;
    // The client says goodbye; the server answers and closes.
    client.queue(&ClientMessage::Goodbye).unwrap();
    client.flush().await.unwrap();
    let client_reader = tokio::spawn(async move {
        let mut events = Vec::new();
        loop {
            match client.next_event().await {
                Ok(ev) => events.push(ev),
                Err(NetError::Closed) => return events,
                Err(e) => panic!("{e}"),
            }
        }
    });
    assert_eq!(
        server.next_event().await.unwrap(),
        LinkEvent::Message(ClientMessage::Goodbye)
    );
    server
        .close(Some(&ServerMessage::Goodbye {
            reason: proto_core::message::GoodbyeReason::ClientRequest,
        }))
        .await
        .unwrap();
    assert_eq!(
        client_reader.await.unwrap(),
        vec![
            LinkEvent::Message(ServerMessage::Goodbye {
                reason: proto_core::message::GoodbyeReason::ClientRequest
            }),
            LinkEvent::Closed { clean: true }
        ]
    );
}
