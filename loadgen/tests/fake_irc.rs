//! The load generator's IRC mode against a toy IRC daemon: registration
//! (one nick already taken), a PING after joining, PRIVMSG relayed to the
//! rest of the channel, QUIT at the end. It checks the IRC transport and the
//! room bookkeeping over it, not any real daemon.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use clap::Parser;
use loadgen::cli::Cli;
use loadgen::report::Report;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

#[derive(Default)]
struct Ircd {
    /// Nicks in use (some taken before any client comes).
    nicks: Mutex<HashSet<String>>,
    /// Channel members: id → (nick, outgoing lines).
    channel: Mutex<HashMap<u64, (String, mpsc::UnboundedSender<String>)>>,
    next: AtomicU64,
    pongs: AtomicU64,
    quits: AtomicU64,
}

async fn start(taken: &[&str]) -> (SocketAddr, Arc<Ircd>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let ircd = Arc::new(Ircd::default());
    ircd.nicks
        .lock()
        .unwrap()
        .extend(taken.iter().map(|n| n.to_string()));
    let shared = ircd.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(serve(tcp, shared.clone()));
        }
    });
    (addr, ircd)
}

async fn serve(tcp: TcpStream, ircd: Arc<Ircd>) {
    let (read, mut write) = tcp.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Some(line) = rx.recv().await {
            if write.write_all(line.as_bytes()).await.is_err() {
                return;
            }
        }
    });
    let id = ircd.next.fetch_add(1, Ordering::Relaxed);
    let send = |s: String| {
        let _ = tx.send(s);
    };
    send(":fake NOTICE * :*** Looking up your hostname...\r\n".into());
    let mut lines = BufReader::new(read).lines();
    let (mut nick, mut user, mut registered) = (None::<String>, false, false);
    while let Ok(Some(line)) = lines.next_line().await {
        let (command, rest) = line.split_once(' ').unwrap_or((&line, ""));
        match command {
            "NICK" => {
                let wanted = rest.trim().to_owned();
                if ircd.nicks.lock().unwrap().insert(wanted.clone()) {
                    nick = Some(wanted);
                } else {
                    send(format!(
                        ":fake 433 * {wanted} :Nickname is already in use.\r\n"
                    ));
                }
            }
            "USER" => user = true,
            "JOIN" if registered => {
                let n = nick.clone().unwrap();
                send(format!(":{n}!{n}@127.0.0.1 JOIN :#bench\r\n"));
                send(format!(":fake 353 {n} = #bench :{n}\r\n"));
                send(format!(":fake 366 {n} #bench :End of /NAMES list.\r\n"));
                ircd.channel
                    .lock()
                    .unwrap()
                    .insert(id, (n.clone(), tx.clone()));
                send(format!("PING :token-{id}\r\n"));
            }
            "PRIVMSG" if registered => {
                let n = nick.clone().unwrap();
                let text = rest.split_once(" :").map_or("", |(_, t)| t);
                let relayed = format!(":{n}!{n}@127.0.0.1 PRIVMSG #bench :{text}\r\n");
                for (other, (_, out)) in ircd.channel.lock().unwrap().iter() {
                    if *other != id {
                        let _ = out.send(relayed.clone());
                    }
                }
            }
            "PONG" => {
                assert_eq!(rest, format!(":token-{id}"));
                ircd.pongs.fetch_add(1, Ordering::Relaxed);
            }
            "QUIT" => {
                ircd.quits.fetch_add(1, Ordering::Relaxed);
                send("ERROR :Closing link: (quit)\r\n".into());
                break;
            }
            _ => {}
        }
        if !registered && user {
            if let Some(n) = &nick {
                registered = true;
                send(format!(
                    ":fake 001 {n} :Welcome to the fake network {n}\r\n"
                ));
                send(format!(":fake 005 {n} CHANTYPES=# :are supported\r\n"));
                send(format!(":fake 422 {n} :MOTD File is missing\r\n"));
            }
        }
    }
    ircd.channel.lock().unwrap().remove(&id);
    if let Some(n) = nick {
        ircd.nicks.lock().unwrap().remove(&n);
    }
}

async fn run(addr: SocketAddr, args: &[&str]) -> Report {
    let addr = addr.to_string();
    let mut argv = vec![
        "securechat-load",
        "--quiet",
        "--protocol",
        "irc",
        "--addr",
        &addr,
    ];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).unwrap();
    cli.validate().unwrap();
    loadgen::modes::run(&cli, 2).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn irc_room_counts_every_relayed_privmsg_and_answers_pings() {
    let (addr, ircd) = start(&["load00001"]).await;
    let args = [
        "room", "-n", "4", "-s", "2", "-r", "20", "-t", "0.5", "--drain", "3",
    ];
    let report = run(addr, &args).await;
    assert_eq!(report.error, None, "{}", report.to_table());
    assert_eq!(report.target.protocol, "irc");
    let join = report.join.as_ref().unwrap();
    assert_eq!((join.joined, join.registered), (4, 0));
    let room = report.room.as_ref().unwrap();
    // 2 senders × 20/s × 0.5 s, each relayed to the 3 others.
    assert_eq!(room.sent, 20, "{}", report.to_table());
    assert_eq!(room.expected, 20 * 3);
    assert_eq!(room.received, room.expected, "{}", report.to_table());
    assert_eq!((room.lost, room.errors, room.drops), (0, 0, 0));
    assert_eq!(room.latency.count, room.received);
    assert_eq!(ircd.pongs.load(Ordering::Relaxed), 4, "every PING answered");
    // Everyone said QUIT; the pre-taken nick is the only one left.
    assert_eq!(ircd.quits.load(Ordering::Relaxed), 4);
    let left: Vec<String> = ircd.nicks.lock().unwrap().iter().cloned().collect();
    assert_eq!(left, ["load00001"]);
    assert!(report.to_table().contains("irc 127.0.0.1:"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn irc_join_failure_is_reported_not_hung() {
    // Every nick variant of client 0 is taken: it cannot register.
    let mut taken = vec!["load00000".to_owned()];
    taken.extend((1..=5).map(|n| format!("load00000_{n}")));
    let taken: Vec<&str> = taken.iter().map(String::as_str).collect();
    let (addr, _ircd) = start(&taken).await;
    let report = run(addr, &["room", "-n", "2", "-s", "1", "-t", "0.2"]).await;
    let err = report.error.as_deref().unwrap();
    assert!(err.contains("too few clients joined"), "{err}");
    let join = report.join.as_ref().unwrap();
    assert_eq!((join.joined, join.failed), (1, 1));
    let (msg, _) = join.errors.iter().next().unwrap();
    assert!(msg.contains("433"), "{msg}");
}
