//! The load generator against a minimal in-process chat server built on
//! `net::accept`: real handshakes and records, a toy account table and room.
//! It checks the generator's own bookkeeping (registration then login,
//! expected vs received deliveries, storms), not the real server.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use loadgen::cli::Cli;
use loadgen::report::Report;
use net::{HandshakeOptions, LinkEvent};
use proto_core::message::{
    AuthFailure, BoundedList, ClientMessage, GoodbyeReason, ResumeToken, RoomName, ServerMessage,
    Username,
};
use proto_core::opaque::{PasswordRecord, ServerKeys, ServerLoginState};
use proto_core::{Fingerprint, PskStore, ResumptionPsk, ServerConfig, ServerIdentity};
use rand_core::OsRng;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

struct Room {
    /// OPAQUE, as the real server runs it (proto-core's server half).
    keys: ServerKeys,
    accounts: Mutex<HashMap<String, PasswordRecord>>,
    /// Connection id → (user, outbox, the room it joined besides #general).
    #[allow(clippy::type_complexity)]
    online: Mutex<
        HashMap<
            u64,
            (
                Username,
                mpsc::UnboundedSender<ServerMessage>,
                Option<RoomName>,
            ),
        >,
    >,
    next: AtomicU64,
    registrations: AtomicU64,
    /// Resume tokens issued, and to whom.
    tokens: Mutex<HashMap<[u8; 32], Username>>,
    resumes: AtomicU64,
    /// Resumed handshakes answered.
    resumed_handshakes: AtomicU64,
    /// Refuse every resumed handshake (`unknown_psk`), as a server that
    /// lost its keys would; the tokens still log in.
    refuse_resumed_handshakes: AtomicBool,
    /// The next session of this user is cut off right after its login.
    kick: Mutex<Option<String>>,
}

/// Resumed handshakes keyed by the tokens issued, as the real server does.
struct TokenKeys(Arc<Room>);

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys")
    }
}

impl PskStore for TokenKeys {
    fn find(&self, id: &[u8; 32]) -> Option<ResumptionPsk> {
        if self.0.refuse_resumed_handshakes.load(Ordering::Relaxed) {
            return None;
        }
        let tokens = self.0.tokens.lock().unwrap();
        let key = tokens
            .keys()
            .map(|t| ResumptionPsk::from_token(&ResumeToken::from_bytes(*t)))
            .find(|k| k.id() == *id)?;
        self.0.resumed_handshakes.fetch_add(1, Ordering::Relaxed);
        Some(key)
    }
}

struct FakeServer {
    addr: SocketAddr,
    fingerprint: Fingerprint,
    room: Arc<Room>,
}

async fn start() -> FakeServer {
    let identity = Arc::new(ServerIdentity::from_seed(&[7u8; 32]));
    let fingerprint = identity.public_key().fingerprint();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let room = Arc::new(Room {
        keys: ServerKeys::generate(&mut OsRng),
        accounts: Mutex::default(),
        online: Mutex::default(),
        next: AtomicU64::default(),
        registrations: AtomicU64::default(),
        tokens: Mutex::default(),
        resumes: AtomicU64::default(),
        resumed_handshakes: AtomicU64::default(),
        refuse_resumed_handshakes: AtomicBool::default(),
        kick: Mutex::default(),
    });
    let opts = HandshakeOptions::new(Duration::from_secs(10), 2);
    let shared = room.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let config = ServerConfig {
                psks: Some(Arc::new(TokenKeys(shared.clone()))),
                ..ServerConfig::new(identity.clone())
            };
            tokio::spawn(serve(tcp, config, opts.clone(), shared.clone()));
        }
    });
    FakeServer {
        addr,
        fingerprint,
        room,
    }
}

async fn serve(tcp: TcpStream, config: ServerConfig, opts: HandshakeOptions, room: Arc<Room>) {
    let Ok(mut session) = net::accept(tcp, config, &opts).await else {
        return;
    };
    let id = room.next.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut me: Option<Username> = None;
    let mut kick = false;
    let binding = session.channel_binding().clone();
    let mut registering: Option<Username> = None;
    let mut joined_room: Option<RoomName> = None;
    let mut logging_in: Option<(Username, Option<ServerLoginState>)> = None;
    loop {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(20)), if kick => {
                let _ = session
                    .close(Some(&ServerMessage::Goodbye { reason: GoodbyeReason::SlowConsumer }))
                    .await;
                break;
            }
            ev = session.next_event() => {
                let msg = match ev {
                    Ok(LinkEvent::Message(msg)) => msg,
                    _ => break,
                };
                let mut replies = Vec::new();
                match msg {
                    ClientMessage::RegisterStart { username, request } => {
                        if room.accounts.lock().unwrap().contains_key(&username.canonical()) {
                            replies.push(ServerMessage::AuthFailed { reason: AuthFailure::NameTaken });
                        } else {
                            let response = room
                                .keys
                                .registration_response(&request, &username.canonical())
                                .unwrap();
                            registering = Some(username);
                            replies.push(ServerMessage::RegisterResponse { response: Box::new(response) });
                        }
                    }
                    ClientMessage::RegisterFinish { upload } => {
                        let username = registering.take().expect("RegisterStart first");
                        let record = PasswordRecord::from_upload(&upload).unwrap();
                        let mut accounts = room.accounts.lock().unwrap();
                        if accounts.insert(username.canonical(), record).is_some() {
                            replies.push(ServerMessage::AuthFailed { reason: AuthFailure::NameTaken });
                        } else {
                            room.registrations.fetch_add(1, Ordering::Relaxed);
                            me = Some(username.clone());
                            replies.extend(login_burst(&room, &username));
                        }
                    }
                    ClientMessage::LoginStart { username, request } => {
                        let record = room.accounts.lock().unwrap().get(&username.canonical()).cloned();
                        let (state, response) = room
                            .keys
                            .login_start(&mut OsRng, record.as_ref(), &request, &username.canonical(), &binding)
                            .unwrap();
                        logging_in = Some((username, record.is_some().then_some(state)));
                        replies.push(ServerMessage::LoginResponse { response: Box::new(response) });
                    }
                    ClientMessage::LoginFinish { finalization } => {
                        let (username, state) = logging_in.take().expect("LoginStart first");
                        let ok = state.is_some_and(|state| {
                            state.finish(&finalization, &username.canonical(), &binding).is_ok()
                        });
                        if ok {
                            me = Some(username.clone());
                            replies.extend(login_burst(&room, &username));
                        } else {
                            replies.push(ServerMessage::AuthFailed { reason: AuthFailure::LoginFailed });
                        }
                    }
                    ClientMessage::Resume { token } => {
                        let known = room.tokens.lock().unwrap().remove(token.expose());
                        match known {
                            Some(username) => {
                                room.resumes.fetch_add(1, Ordering::Relaxed);
                                me = Some(username.clone());
                                replies.extend(login_burst(&room, &username));
                            }
                            None => replies.push(ServerMessage::AuthFailed {
                                reason: AuthFailure::ResumeFailed,
                            }),
                        }
                    }
                    // Every room exists and anyone may join it.
                    ClientMessage::JoinRoom { room: name } => {
                        joined_room = Some(name.clone());
                        if let Some(entry) = room.online.lock().unwrap().get_mut(&id) {
                            entry.2 = Some(name.clone());
                        }
                        replies.push(ServerMessage::RoomJoined {
                            info: proto_core::message::RoomInfo {
                                room: name,
                                topic: proto_core::message::Topic::empty(),
                                invite_only: false,
                                role: proto_core::message::RoomRole::Member,
                                members: 1,
                            },
                        });
                    }
                    ClientMessage::RoomMessage { room: in_room, text } => {
                        let from = me.clone().expect("logged in");
                        let general = in_room.canonical() == RoomName::general().canonical();
                        for (other, (_, out, theirs)) in room.online.lock().unwrap().iter() {
                            let member = general
                                || theirs.as_ref().is_some_and(|r| r.canonical() == in_room.canonical());
                            if *other != id && member {
                                let _ = out.send(ServerMessage::RoomMessage {
                                    id: 1,
                                    timestamp_ms: 0,
                                    room: in_room.clone(),
                                    from: from.clone(),
                                    text: text.clone(),
                                });
                            }
                        }
                    }
                    ClientMessage::Goodbye => {
                        let _ = session
                            .close(Some(&ServerMessage::Goodbye { reason: GoodbyeReason::ClientRequest }))
                            .await;
                        break;
                    }
                    _ => {}
                }
                let joined = !replies.is_empty() && me.is_some();
                for r in &replies {
                    session.queue(r).unwrap();
                }
                if session.flush().await.is_err() {
                    break;
                }
                if joined {
                    let name = me.as_ref().unwrap().as_str();
                    let mut target = room.kick.lock().unwrap();
                    if target.as_deref() == Some(name) {
                        *target = None;
                        kick = true;
                    }
                    drop(target);
                    room.online
                        .lock()
                        .unwrap()
                        .insert(id, (me.clone().unwrap(), tx.clone(), joined_room.clone()));
                }
            }
            Some(msg) = rx.recv() => {
                session.queue(&msg).unwrap();
                while let Ok(msg) = rx.try_recv() {
                    session.queue(&msg).unwrap();
                }
                if session.flush().await.is_err() {
                    break;
                }
            }
        }
    }
    room.online.lock().unwrap().remove(&id);
}

fn login_burst(room: &Room, name: &Username) -> Vec<ServerMessage> {
    let mut token = [0u8; 32];
    token[..8].copy_from_slice(&room.next.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    room.tokens.lock().unwrap().insert(token, name.clone());
    vec![
        ServerMessage::AuthOk {
            username: name.clone(),
            resume_token: ResumeToken::from_bytes(token),
            token_lifetime_secs: 60,
        },
        ServerMessage::OnlineUsers {
            more: false,
            users: BoundedList::new(vec![name.clone()]).unwrap(),
        },
        ServerMessage::HistoryBatch {
            more: false,
            entries: BoundedList::empty(),
        },
    ]
}

async fn run(server: &FakeServer, args: &[&str]) -> Report {
    let addr = server.addr.to_string();
    let fp = server.fingerprint.to_string();
    let mut argv = vec![
        "securechat-load",
        "--quiet",
        "--addr",
        &addr,
        "--fingerprint",
        &fp,
    ];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).unwrap();
    cli.validate().unwrap();
    loadgen::modes::run(&cli, 2).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_run_registers_then_reuses_accounts_and_counts_every_delivery() {
    let server = start().await;
    let args = [
        "room",
        "-n",
        "6",
        "-s",
        "3",
        "-r",
        "20",
        "-t",
        "0.5",
        "--drain",
        "3",
        "--sources",
        "2",
    ];
    let first = run(&server, &args).await;
    assert_eq!(first.error, None, "{}", first.to_table());
    let join = first.join.as_ref().unwrap();
    assert_eq!((join.joined, join.registered), (6, 6));
    assert!(join.registrations_per_sec.is_some());
    let room = first.room.as_ref().unwrap();
    // 3 senders × 20/s × 0.5 s, each to the 5 others.
    assert_eq!(room.sent, 30, "{}", first.to_table());
    assert_eq!(room.expected, 30 * 5);
    assert_eq!(room.received, room.expected, "{}", first.to_table());
    assert_eq!(room.lost, 0);
    assert_eq!(room.latency.count, room.received);
    assert_eq!(room.reporting, 6);
    assert_eq!(
        first.target.fingerprint.as_deref(),
        Some(server.fingerprint.to_string().as_str())
    );
    assert_eq!(server.room.registrations.load(Ordering::Relaxed), 6);

    // The same seed logs the same accounts in without registering.
    let second = run(&server, &args).await;
    assert_eq!(second.error, None);
    let join = second.join.as_ref().unwrap();
    assert_eq!((join.joined, join.registered), (6, 0));
    assert_eq!(server.room.registrations.load(Ordering::Relaxed), 6);

    // Another seed meets accounts with other passwords: a clear failure.
    let mut other = args.to_vec();
    other.extend(["--seed", "another"]);
    let third = run(&server, &other).await;
    let err = third.error.as_deref().unwrap();
    assert!(err.contains("another password"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storms_count_handshakes_and_logins_over_a_background_room() {
    let server = start().await;
    let hs = run(&server, &["handshakes", "-c", "2", "-t", "0.3"]).await;
    assert_eq!(hs.error, None);
    let storm = hs.storm.as_ref().unwrap();
    assert!(
        storm.completed > 0 && storm.failed == 0,
        "{}",
        hs.to_table()
    );
    assert_eq!(storm.handshake.count, storm.completed);

    let logins = run(
        &server,
        &[
            "logins",
            "-c",
            "2",
            "-t",
            "0.5",
            "--room-clients",
            "3",
            "--room-senders",
            "1",
            "--room-rate",
            "10",
            "--room-drain",
            "3",
            "--accounts",
            "register-first",
        ],
    )
    .await;
    assert_eq!(logins.error, None, "{}", logins.to_table());
    let prepared = logins.accounts_prepared.as_ref().unwrap();
    assert_eq!(prepared.joined, 2);
    let storm = logins.storm.as_ref().unwrap();
    assert!(
        storm.completed > 0 && storm.failed == 0,
        "{}",
        logins.to_table()
    );
    assert_eq!(storm.login.unwrap().count, storm.completed);
    let room = logins.room.as_ref().unwrap();
    assert_eq!(room.lost, 0, "{}", logins.to_table());
    assert!(room.received > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_reads_the_server_memory_and_a_wrong_key_fails_cleanly() {
    let server = start().await;
    let pid = std::process::id().to_string();
    let idle = run(
        &server,
        &["idle", "-n", "3", "-t", "0.2", "--server-pid", &pid],
    )
    .await;
    assert_eq!(idle.error, None);
    let outcome = idle.idle.as_ref().unwrap();
    assert_eq!(outcome.clients, 3);
    assert!(outcome.rss_before_kib.is_some() && outcome.rss_after_kib.is_some());
    assert!(outcome.rss_per_connection_kib.is_some());
    assert!(idle.cpu_run.server_cpu_secs.is_some());
    let json = serde_json::to_value(&idle).unwrap();
    assert_eq!(json["mode"], "idle");
    assert!(json["idle"]["rss_per_connection_kib"].is_number());

    let wrong = Fingerprint([9u8; 32]).to_string();
    let addr = server.addr.to_string();
    let cli = Cli::try_parse_from([
        "securechat-load",
        "--quiet",
        "--addr",
        &addr,
        "--fingerprint",
        &wrong,
        "idle",
        "-n",
        "2",
        "-t",
        "0.1",
    ])
    .unwrap();
    let report = loadgen::modes::run(&cli, 2).await.unwrap();
    assert!(report.error.is_some());
    assert_eq!(report.join.as_ref().unwrap().failed, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cut_off_by_the_server_comes_back_with_its_resume_token() {
    let server = start().await;
    // Register everyone first, then cut one off on the next run.
    let args = [
        "room", "-n", "4", "-s", "2", "-r", "10", "-t", "0.5", "--drain", "3",
    ];
    assert_eq!(run(&server, &args).await.error, None);
    *server.room.kick.lock().unwrap() = Some("load00001".to_owned());
    let report = run(&server, &args).await;
    assert_eq!(report.error, None, "{}", report.to_table());
    assert_eq!(report.connection_drops.total(), 1, "{}", report.to_table());
    let (reason, _) = report.connection_drops.iter().next().unwrap();
    assert!(reason.contains("SlowConsumer"), "{reason}");
    assert_eq!(server.room.resumes.load(Ordering::Relaxed), 1);
    assert_eq!(report.room.as_ref().unwrap().reporting, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mass_reconnect_brings_everyone_back_with_resume_tokens() {
    let server = start().await;
    let report = run(&server, &["reconnect", "-n", "5", "--within", "20"]).await;
    assert_eq!(report.error, None, "{}", report.to_table());
    let r = report.reconnect.as_ref().unwrap();
    assert_eq!((r.clients, r.back, r.resumed, r.gone), (5, 5, 5, 0));
    assert_eq!(r.resumed_handshakes, 5, "no ffdhe on the way back");
    assert_eq!(server.room.resumed_handshakes.load(Ordering::Relaxed), 5);
    assert!(r.all_back_secs.is_some_and(|s| s < 20.0));
    assert_eq!(server.room.resumes.load(Ordering::Relaxed), 5);
    assert!(
        report.connection_drops.is_empty(),
        "a reconnect asked for is not a drop: {}",
        report.to_table()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_spread_over_rooms_hear_their_own_room_only() {
    let server = start().await;
    let args = [
        "room", "-n", "6", "-s", "2", "-r", "20", "-t", "1", "--drain", "3", "--rooms", "2",
    ];
    let report = run(&server, &args).await;
    assert_eq!(report.error, None, "{}", report.to_table());
    let room = report.room.as_ref().unwrap();
    assert!(room.sent > 0);
    // Three in each room: every message reaches the other two of its room.
    assert_eq!(room.expected, room.sent * 2, "{}", report.to_table());
    assert_eq!((room.received, room.lost), (room.expected, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_refuses_the_keys_gets_full_handshakes_and_passwords() {
    // The real server's keys are its live tokens: a refused key means the
    // token is gone too, so the clients go straight to the password.
    let server = start().await;
    server
        .room
        .refuse_resumed_handshakes
        .store(true, Ordering::Relaxed);
    let report = run(&server, &["reconnect", "-n", "3", "--within", "20"]).await;
    assert_eq!(report.error, None, "{}", report.to_table());
    let r = report.reconnect.as_ref().unwrap();
    assert_eq!((r.clients, r.back, r.resumed, r.gone), (3, 3, 0, 0));
    assert_eq!(r.resumed_handshakes, 0);
    assert_eq!(server.room.resumes.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mass_reconnect_is_measured_from_a_room_chatting_on_its_own_runtime() {
    let server = start().await;
    let args = [
        "reconnect",
        "-n",
        "4",
        "--within",
        "5",
        "--room-clients",
        "3",
        "--room-senders",
        "1",
        "--room-rate",
        "10",
        "--room-drain",
        "2",
    ];
    let report = run(&server, &args).await;
    assert_eq!(report.error, None, "{}", report.to_table());
    let r = report.reconnect.as_ref().unwrap();
    assert_eq!((r.clients, r.back, r.gone), (4, 4, 0));
    assert_eq!(report.accounts_prepared.as_ref().unwrap().joined, 3);
    let room = report.room.as_ref().unwrap();
    assert_eq!((room.lost, room.reporting), (0, 3), "{}", report.to_table());
    // One sender at 10/s for the lead (2–3 s: the cut falls on a whole
    // second) and the 5 s window (at least 70 messages), heard by the two
    // others.
    assert!(room.received >= 2 * 60, "{}", report.to_table());
}
