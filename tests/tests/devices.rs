//! Several devices per user end to end: each gets everything the user's
//! conversations carry (the user's own messages from the other devices
//! too), presence is per user, the device list, logging one device out,
//! and the cap on devices.

use std::time::Duration;

use proto_core::message::{AuthFailure, ClientMessage, GoodbyeReason, LeaveReason, ServerMessage};
use tests::{test_limits, ServerOptions, TestClient, TestServer, Transport, PASSWORD};

async fn device(
    server: &TestServer,
    user: &str,
    id: u64,
    name: &str,
) -> (TestClient, proto_core::message::ResumeToken) {
    let mut c = server.connect(&format!("{user}/{name}")).await;
    c.set_device(id, name).await;
    let token = c.login(user, PASSWORD).await.token;
    (c, token)
}

/// Registers `user` from device `id` and leaves.
async fn register_on(server: &TestServer, user: &str, id: u64, name: &str) {
    let mut c = server.connect(user).await;
    c.set_device(id, name).await;
    c.register(user, PASSWORD).await;
    c.goodbye().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_device_of_a_user_gets_the_whole_conversation_and_presence_is_per_user() {
    let server = TestServer::start(Transport::Plain).await;
    let mut bob = server.user("Bob").await;
    {
        let mut alice = server.connect("alice").await;
        alice.register("Alice", PASSWORD).await;
        alice.goodbye().await;
    }
    bob.expect_user_joined("Alice").await;
    bob.expect_user_left("Alice", LeaveReason::Exit).await;
    let (mut laptop, _) = device(&server, "Alice", 1, "laptop").await;
    bob.expect_user_joined("Alice").await;
    let (mut phone, _) = device(&server, "Alice", 2, "phone").await;
    bob.sync().await;
    assert_eq!(
        bob.presence_of("Alice"),
        [],
        "no second join: Alice was online already"
    );
    laptop.sync().await;

    // Someone else's room message reaches both devices.
    bob.say("morning").await;
    laptop.expect_room_message("Bob", "morning").await;
    phone.expect_room_message("Bob", "morning").await;
    // What Alice says on one device shows on the other.
    laptop.say("from the laptop").await;
    phone.expect_room_message("Alice", "from the laptop").await;
    bob.expect_room_message("Alice", "from the laptop").await;
    laptop.sync().await;
    // Direct messages: to her on both; hers on her other device too.
    bob.dm("Alice", "psst").await;
    laptop.expect_direct_message("Bob", "Alice", "psst").await;
    phone.expect_direct_message("Bob", "Alice", "psst").await;
    phone.dm("Bob", "on my phone").await;
    bob.expect_direct_message("Alice", "Bob", "on my phone")
        .await;
    laptop
        .expect_direct_message("Alice", "Bob", "on my phone")
        .await;
    phone.sync().await;
    // Joining a room on one device puts every device in it.
    laptop.create_room("#ops", false, "").await.unwrap();
    match phone.recv().await {
        ServerMessage::RoomJoined { info } => assert_eq!(info.room.as_str(), "#ops"),
        other => panic!("expected RoomJoined on the other device, got {other:?}"),
    }
    bob.join_room("#ops").await.unwrap();
    laptop.expect_member_joined("#ops", "Bob").await;
    phone.expect_member_joined("#ops", "Bob").await;
    bob.say_in("#ops", "ops here").await;
    laptop
        .expect_room_message_in("#ops", "Bob", "ops here")
        .await;
    phone
        .expect_room_message_in("#ops", "Bob", "ops here")
        .await;

    // Leaving from one device says nothing; the last one says left.
    laptop.goodbye().await;
    bob.sync().await;
    phone.goodbye().await;
    bob.expect_user_left("Alice", LeaveReason::Exit).await;
}

/// The device list is written in batches (a session's end costs no write
/// of its own); a graceful restart writes the last batch, so every device
/// and its last session come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_list_and_last_seen_survive_a_graceful_restart() {
    let mut server = TestServer::start(Transport::Plain).await;
    let mut bob = server.user("Bob").await;
    register_on(&server, "Alice", 0x11, "laptop").await;
    bob.expect_user_joined("Alice").await;
    bob.expect_user_left("Alice", LeaveReason::Exit).await;
    let (phone, _) = device(&server, "Alice", 0x22, "phone").await;
    bob.expect_user_joined("Alice").await;
    phone.drop_connection();
    // Told after the session's end was recorded (its last seen).
    bob.expect_user_left("Alice", LeaveReason::Dropped).await;
    let (mut laptop, _) = device(&server, "Alice", 0x11, "laptop").await;
    laptop.send(&ClientMessage::ListDevices).await;
    let ServerMessage::DeviceList { devices: before } = laptop.recv().await else {
        panic!("expected DeviceList");
    };
    laptop.goodbye().await;
    server.restart().await;

    let (mut laptop, _) = device(&server, "Alice", 0x11, "laptop").await;
    laptop.send(&ClientMessage::ListDevices).await;
    let ServerMessage::DeviceList { devices: after } = laptop.recv().await else {
        panic!("expected DeviceList");
    };
    let phone = |list: &[proto_core::message::DeviceInfo]| {
        list.iter().find(|d| d.id == 0x22).map(|d| {
            (
                d.name.as_str().to_owned(),
                d.last_seen_ms,
                d.address.clone(),
            )
        })
    };
    assert!(phone(&before).is_some(), "{before:?}");
    assert_eq!(
        phone(&after),
        phone(&before),
        "the phone, as it was last seen"
    );
    assert!(after.iter().any(|d| d.id == 0x11 && d.current), "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_lists_devices_and_logs_one_out() {
    let server = TestServer::start(Transport::Plain).await;
    register_on(&server, "Alice", 0x11, "laptop").await;
    let (mut laptop, _) = device(&server, "Alice", 0x11, "laptop").await;
    let (mut phone, phone_token) = device(&server, "Alice", 0x22, "phone").await;
    let (tablet, _) = device(&server, "Alice", 0x33, "tablet").await;
    tablet.goodbye().await;

    laptop.send(&ClientMessage::ListDevices).await;
    let ServerMessage::DeviceList { devices } = laptop.recv().await else {
        panic!("expected DeviceList");
    };
    let seen: Vec<(u64, &str, bool, bool, &str)> = devices
        .iter()
        .map(|d| {
            (
                d.id,
                d.name.as_str(),
                d.online,
                d.current,
                d.address.as_str(),
            )
        })
        .collect();
    assert!(
        seen.contains(&(0x11, "laptop", true, true, "127.0.0.1")),
        "{seen:?}"
    );
    assert!(
        seen.contains(&(0x22, "phone", true, false, "127.0.0.1")),
        "{seen:?}"
    );
    assert!(
        seen.contains(&(0x33, "tablet", false, false, "127.0.0.1")),
        "{seen:?}"
    );

    // Logging out the phone: its session ends, its token is dead, it is gone.
    laptop.send(&ClientMessage::LogoutDevice { id: 0x22 }).await;
    assert_eq!(laptop.recv().await, ServerMessage::Done);
    phone.expect_cut_off(GoodbyeReason::SessionEnded).await;
    let mut again = server.connect("phone again").await;
    assert_eq!(
        again.try_resume(&phone_token).await.err(),
        Some(AuthFailure::ResumeFailed)
    );
    laptop.send(&ClientMessage::LogoutDevice { id: 0x22 }).await;
    assert!(
        matches!(laptop.recv().await, ServerMessage::Error { .. }),
        "no such device any more"
    );
    laptop.send(&ClientMessage::ListDevices).await;
    let ServerMessage::DeviceList { devices } = laptop.recv().await else {
        panic!("expected DeviceList");
    };
    assert_eq!(devices.len(), 2);
    // Another user's device cannot be touched: ids are per user.
    let mut bob = server.user("Bob").await;
    bob.send(&ClientMessage::LogoutDevice { id: 0x11 }).await;
    assert!(matches!(bob.recv().await, ServerMessage::Error { .. }));
    laptop.sync().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_beyond_the_cap_are_refused_and_known_ones_come_back() {
    let mut limits = test_limits();
    limits.max_devices_per_user = 2;
    let server = TestServer::start_with(ServerOptions::new(Transport::Plain).limits(limits)).await;
    register_on(&server, "Alice", 1, "laptop").await;
    let (_laptop, _) = device(&server, "Alice", 1, "laptop").await;
    let (phone, _) = device(&server, "Alice", 2, "phone").await;
    let mut tablet = server.connect("tablet").await;
    tablet.set_device(3, "tablet").await;
    assert_eq!(
        tablet.try_login("Alice", PASSWORD).await.err(),
        Some(AuthFailure::TooManyDevices)
    );
    // The phone logs in again (same device): fine, and the old session
    // of that device is replaced.
    let (_phone2, _) = device(&server, "Alice", 2, "phone").await;
    let mut phone = phone;
    phone.expect_goodbye(GoodbyeReason::Replaced).await;
}

/// Presence under a burst of logins: the first change after a quiet
/// interval is told at once, the rest of the interval's in one batch, and
/// someone who came and went within it is not told at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_comes_in_batches_and_a_quick_in_and_out_is_not_told() {
    let mut options = ServerOptions::new(Transport::Plain);
    options.limits.presence_interval = Duration::from_secs(6);
    let server = TestServer::start_with(options).await;
    let mut watcher = server.user("Watcher").await;
    // Its own coming online: the first change, told at once.
    watcher.expect_user_joined("Watcher").await;
    let before = watcher.presence_messages();

    // Within the next interval: one user in and out, four who stay.
    {
        let flap = server.user("Flap").await;
        flap.goodbye().await;
    }
    let mut stay = Vec::new();
    for name in ["Ann", "Ben", "Cat", "Dan"] {
        stay.push(server.user(name).await);
    }
    for name in ["Ann", "Ben", "Cat", "Dan"] {
        watcher.expect_user_joined(name).await;
    }
    assert_eq!(
        watcher.presence_messages() - before,
        1,
        "five logins and a logout in one interval: one message"
    );
    watcher.sync().await;
    assert_eq!(watcher.presence_of("Flap"), [], "in and out: nothing told");
}
