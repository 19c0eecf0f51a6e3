//! How events look in a terminal (escaped: nothing another user typed can
//! reach the terminal as a control sequence) and as JSON lines.

use chrono::{Local, TimeZone};
use client_core::cause::auth_failure_text;
use client_core::events::{
    key_changed_warning, leave_reason_text, room_change_text, room_leave_text, room_left_text,
};
use client_core::{ChatLine, ClientEvent, ConnectionState, Delivery, NoticeKind};
use proto_core::message::escape_for_display as esc;
use serde_json::json;

fn clock(timestamp_ms: u64) -> String {
    match Local.timestamp_millis_opt(timestamp_ms as i64).single() {
        Some(t) => t.format("%H:%M").to_string(),
        None => "--:--".into(),
    }
}

/// Escapes each line on its own and indents the continuation lines, so a
/// multi-line message cannot pass a line off as a notice.
fn esc_lines(s: &str, indent: &str) -> String {
    s.split('\n')
        .map(esc)
        .collect::<Vec<_>>()
        .join(&format!("\n{indent}"))
}

fn chat_line(line: &ChatLine) -> String {
    let when = if line.history {
        format!("[{} earlier]", clock(line.timestamp_ms))
    } else {
        format!("[{}]", clock(line.timestamp_ms))
    };
    let text = esc_lines(&line.text, "        ");
    match (&line.to, &line.room) {
        (Some(to), _) => format!("{when} *{} -> {}* {text}", esc(&line.from), esc(to)),
        (None, Some(room)) => format!("{when} {} <{}> {text}", esc(room), esc(&line.from)),
        (None, None) => format!("{when} <{}> {text}", esc(&line.from)),
    }
}

/// The terminal rendering of an event, or `None` for events with nothing to show.
pub fn human(event: &ClientEvent) -> Option<String> {
    Some(match event {
        ClientEvent::State(ConnectionState::Connecting) => "-- connecting...".into(),
        ClientEvent::State(ConnectionState::Connected) => "-- connected".into(),
        ClientEvent::State(ConnectionState::Reconnecting { in_secs, attempt }) => {
            format!("-- reconnecting in {in_secs} s (attempt {attempt})")
        }
        ClientEvent::State(ConnectionState::Offline) => return None,
        ClientEvent::TrustQuestion { .. } => return None,
        ClientEvent::KeyChanged {
            server,
            pinned,
            presented,
            known_servers,
        } => key_changed_warning(server, pinned, presented, known_servers),
        ClientEvent::LoggedIn { username } => format!("-- logged in as {}", esc(username)),
        ClientEvent::AuthFailed { reason } => format!("!! {}", auth_failure_text(*reason)),
        ClientEvent::PasswordChanged => {
            "-- password changed; other devices must log in again with the new one".into()
        }
        ClientEvent::PasswordChangeFailed { reason } => {
            format!("!! password not changed: {}", esc(&reason.to_string()))
        }
        ClientEvent::Online { users } => {
            let names: Vec<String> = users.iter().map(|u| esc(u)).collect();
            format!("-- online ({}): {}", names.len(), names.join(", "))
        }
        ClientEvent::Joined { username } => format!("-- {} joined", esc(username)),
        ClientEvent::Left { username, reason } => {
            format!("-- {} {}", esc(username), leave_reason_text(*reason))
        }
        ClientEvent::RoomJoined(room) => {
            let mut text = format!(
                "-- in {} ({} member{}{}{})",
                esc(&room.name),
                room.members,
                if room.members == 1 { "" } else { "s" },
                if room.invite_only {
                    ", invite-only"
                } else {
                    ""
                },
                match room.role {
                    client_core::RoomRole::Owner => ", you own it",
                    client_core::RoomRole::Moderator => ", you moderate it",
                    client_core::RoomRole::Member => "",
                }
            );
            if !room.topic.is_empty() {
                text.push_str(&format!(": {}", esc(&room.topic)));
            }
            text
        }
        ClientEvent::RoomLeft { room, reason } => format!("-- {}", room_left_text(room, *reason)),
        ClientEvent::RoomChanged {
            room,
            actor,
            change,
        } => format!("-- {}: {}", esc(room), room_change_text(actor, change)),
        ClientEvent::HistoryPage {
            conversation,
            lines,
            complete,
        } => {
            let name = match conversation {
                client_core::ConversationRef::Room(r) => esc(r),
                client_core::ConversationRef::Direct(r) => {
                    format!("your conversation with {}", esc(r))
                }
            };
            let mut text = format!("-- {} earlier message(s) of {name}:", lines.len());
            for line in lines {
                text.push('\n');
                text.push_str(&chat_line(line));
            }
            if *complete {
                text.push_str(&format!("\n-- the beginning of {name}"));
            }
            text
        }
        ClientEvent::ReadMarker { .. } => return None,
        ClientEvent::Devices { devices } => {
            let lines: Vec<String> = devices
                .iter()
                .map(|d| {
                    let state = match (d.current, d.online) {
                        (true, _) => "this device".to_owned(),
                        (false, true) => "online".to_owned(),
                        (false, false) => format!("last seen {}", clock(d.last_seen_ms)),
                    };
                    format!(
                        "   {:016x}  {}  ({state}, from {})",
                        d.id,
                        esc(&d.name),
                        esc(&d.address)
                    )
                })
                .collect();
            format!(
                "-- your devices ({}); /logout-device ID logs one out:\n{}",
                devices.len(),
                lines.join("\n")
            )
        }
        ClientEvent::Invited { room, by, topic } => {
            let topic = if topic.is_empty() {
                String::new()
            } else {
                format!(" ({})", esc(topic))
            };
            format!(
                "-- {} invited you to {}{topic}; /join {} to accept",
                esc(by),
                esc(room),
                esc(room)
            )
        }
        ClientEvent::Members {
            room,
            members,
            total,
        } => {
            let online = members.iter().filter(|m| m.online).count();
            let mut text = format!(
                "-- {} has {total} member{} ({online} shown online):",
                esc(room),
                if *total == 1 { "" } else { "s" }
            );
            for m in members {
                let role = match m.role {
                    client_core::RoomRole::Owner => "owner",
                    client_core::RoomRole::Moderator => "moderator",
                    client_core::RoomRole::Member => "",
                };
                let state = match (role, m.online) {
                    ("", false) => String::new(),
                    ("", true) => " (online)".into(),
                    (role, false) => format!(" ({role})"),
                    (role, true) => format!(" ({role}, online)"),
                };
                text.push_str(&format!("\n   {}{state}", esc(&m.name)));
            }
            if members.len() < usize::try_from(*total).unwrap_or(usize::MAX) {
                text.push_str(&format!(
                    "\n   … and {} more",
                    *total as usize - members.len()
                ));
            }
            text
        }
        ClientEvent::RoomList { rooms } => {
            if rooms.is_empty() {
                "-- no rooms match".into()
            } else {
                let lines: Vec<String> = rooms
                    .iter()
                    .map(|r| {
                        let topic = if r.topic.is_empty() {
                            String::new()
                        } else {
                            format!(" — {}", esc(&r.topic))
                        };
                        format!("   {} ({}){topic}", esc(&r.name), r.members)
                    })
                    .collect();
                format!("-- rooms ({}):\n{}", rooms.len(), lines.join("\n"))
            }
        }
        ClientEvent::MemberJoined { room, user } => {
            format!("-- {} joined {}", esc(user), esc(room))
        }
        ClientEvent::MemberLeft { room, user, reason } => {
            format!(
                "-- {} {} {}",
                esc(user),
                room_leave_text(*reason),
                esc(room)
            )
        }
        ClientEvent::Room(line) | ClientEvent::Direct(line) => {
            if line.own && !line.history {
                return None; // the user just typed it
            }
            chat_line(line)
        }
        ClientEvent::HistoryDone => "-- end of history".into(),
        ClientEvent::ConnectionLost { cause, unconfirmed } => {
            let mut text = format!("!! {}", esc(&cause.to_string()));
            if *unconfirmed > 0 {
                text.push_str(&format!(
                    "\n{unconfirmed} message(s) not yet confirmed by the server; \
                     they will be sent again after reconnecting (never twice)"
                ));
            }
            text
        }
        ClientEvent::Delivery {
            delivery: Delivery::Unconfirmed,
            ..
        } => "!! a message was not confirmed by the server before you left; \
              it may not have been delivered"
            .into(),
        // Stored: what the user typed stands; a refusal comes as a notice.
        ClientEvent::Delivery { .. } => return None,
        ClientEvent::Notice { text, kind } => match kind {
            NoticeKind::Info => esc_lines(text, ""),
            NoticeKind::Error => format!("!! {}", esc_lines(text, "   ")),
        },
        ClientEvent::Closed { cause } => format!("-- closed: {}", esc(&cause.to_string())),
    })
}

fn line_json(kind: &str, line: &ChatLine) -> serde_json::Value {
    json!({
        "type": kind,
        "id": line.id,
        "timestamp_ms": line.timestamp_ms,
        "from": line.from,
        "room": line.room,
        "to": line.to,
        "text": line.text,
        "history": line.history,
        "own": line.own,
        "client_id": line.client_id,
    })
}

/// The JSON-lines rendering (one object per event; JSON escapes every
/// control character, so this is terminal-safe too).
pub fn json(event: &ClientEvent) -> Option<String> {
    let value = match event {
        ClientEvent::State(state) => json!({ "type": "state", "state": format!("{state:?}") }),
        ClientEvent::TrustQuestion {
            server,
            fingerprint,
            ..
        } => json!({
            "type": "trust_question", "server": server.to_string(), "fingerprint": fingerprint.to_string()
        }),
        ClientEvent::KeyChanged {
            server,
            pinned,
            presented,
            ..
        } => json!({
            "type": "key_changed", "server": server.to_string(),
            "pinned": pinned.to_string(), "presented": presented.to_string()
        }),
        ClientEvent::LoggedIn { username } => json!({ "type": "logged_in", "username": username }),
        ClientEvent::AuthFailed { reason } => json!({
            "type": "auth_failed", "reason": format!("{reason:?}"),
            "message": auth_failure_text(*reason)
        }),
        ClientEvent::PasswordChanged => json!({ "type": "password_changed" }),
        ClientEvent::PasswordChangeFailed { reason } => json!({
            "type": "password_change_failed", "reason": format!("{reason:?}"),
            "message": reason.to_string()
        }),
        ClientEvent::Online { users } => json!({ "type": "online", "users": users }),
        ClientEvent::Joined { username } => json!({ "type": "joined", "username": username }),
        ClientEvent::Left { username, reason } => json!({
            "type": "left", "username": username, "reason": format!("{reason:?}")
        }),
        ClientEvent::RoomJoined(room) => json!({
            "type": "room_joined", "room": room.name, "topic": room.topic,
            "invite_only": room.invite_only, "role": format!("{:?}", room.role).to_lowercase(),
            "members": room.members
        }),
        ClientEvent::RoomLeft { room, reason } => json!({
            "type": "room_left", "room": room, "reason": format!("{reason:?}").to_lowercase()
        }),
        ClientEvent::Members {
            room,
            members,
            total,
        } => json!({
            "type": "members", "room": room, "total": total,
            "members": members.iter().map(|m| json!({
                "user": m.name, "role": format!("{:?}", m.role).to_lowercase(), "online": m.online
            })).collect::<Vec<_>>()
        }),
        ClientEvent::RoomList { rooms } => json!({
            "type": "room_list",
            "rooms": rooms.iter().map(|r| json!({
                "room": r.name, "topic": r.topic, "members": r.members
            })).collect::<Vec<_>>()
        }),
        ClientEvent::MemberJoined { room, user } => json!({
            "type": "member_joined", "room": room, "user": user
        }),
        ClientEvent::RoomChanged {
            room,
            actor,
            change,
        } => json!({
            "type": "room_changed", "room": room, "actor": actor,
            "change": change_json(change),
            "text": room_change_text(actor, change)
        }),
        ClientEvent::HistoryPage {
            conversation,
            lines,
            complete,
        } => json!({
            "type": "history_page", "conversation": conversation_json(conversation),
            "complete": complete,
            "messages": lines.iter().map(|l| line_json(if l.room.is_some() { "room" } else { "direct" }, l)).collect::<Vec<_>>()
        }),
        ClientEvent::ReadMarker {
            conversation,
            up_to_id,
            unread,
        } => json!({
            "type": "read_marker", "conversation": conversation_json(conversation),
            "up_to_id": up_to_id, "unread": unread
        }),
        ClientEvent::Devices { devices } => json!({
            "type": "devices",
            "devices": devices.iter().map(|d| json!({
                "id": format!("{:016x}", d.id), "name": d.name, "last_seen_ms": d.last_seen_ms,
                "address": d.address, "online": d.online, "current": d.current
            })).collect::<Vec<_>>()
        }),
        ClientEvent::Invited { room, by, topic } => json!({
            "type": "invited", "room": room, "by": by, "topic": topic
        }),
        ClientEvent::MemberLeft { room, user, reason } => json!({
            "type": "member_left", "room": room, "user": user,
            "reason": format!("{reason:?}").to_lowercase()
        }),
        ClientEvent::Room(line) => line_json("room", line),
        ClientEvent::Direct(line) => line_json("direct", line),
        ClientEvent::HistoryDone => json!({ "type": "history_done" }),
        ClientEvent::ConnectionLost { cause, unconfirmed } => json!({
            "type": "connection_lost", "reason": cause.to_string(), "unconfirmed": unconfirmed
        }),
        ClientEvent::Delivery {
            client_id,
            delivery: Delivery::Unconfirmed,
        } => json!({ "type": "unconfirmed", "client_id": client_id }),
        ClientEvent::Delivery {
            client_id,
            delivery: Delivery::Stored {
                id, timestamp_ms, ..
            },
        } => json!({
            "type": "stored", "client_id": client_id, "id": id, "timestamp_ms": timestamp_ms
        }),
        ClientEvent::Delivery {
            client_id,
            delivery: Delivery::Failed(refusal),
        } => json!({
            "type": "not_delivered", "client_id": client_id,
            "code": format!("{:?}", refusal.code), "reason": refusal.to_string()
        }),
        ClientEvent::Notice { text, kind } => json!({
            "type": "notice", "kind": format!("{kind:?}").to_lowercase(), "text": text
        }),
        ClientEvent::Closed { cause } => json!({ "type": "closed", "reason": cause.to_string() }),
    };
    Some(terminal_safe_json(&value.to_string()))
}

fn conversation_json(conversation: &client_core::ConversationRef) -> serde_json::Value {
    match conversation {
        client_core::ConversationRef::Room(room) => json!({ "room": room }),
        client_core::ConversationRef::Direct(peer) => json!({ "direct": peer }),
    }
}

/// A room change's fields, for scripts.
fn change_json(change: &client_core::RoomChange) -> serde_json::Value {
    use client_core::RoomChange as C;
    match change {
        C::Topic { topic } => json!({ "kind": "topic", "topic": topic.as_str() }),
        C::InviteOnly { invite_only } => json!({ "kind": "mode", "invite_only": invite_only }),
        C::Kicked { user, reason } => {
            json!({ "kind": "kicked", "user": user.as_str(), "reason": reason.as_str() })
        }
        C::Banned {
            user,
            reason,
            until_ms,
        } => json!({
            "kind": "banned", "user": user.as_str(), "reason": reason.as_str(), "until_ms": until_ms
        }),
        C::Unbanned { user } => json!({ "kind": "unbanned", "user": user.as_str() }),
        C::Role { user, role } => json!({
            "kind": "role", "user": user.as_str(), "role": format!("{role:?}").to_lowercase()
        }),
        C::Muted { user, muted } => {
            json!({ "kind": "muted", "user": user.as_str(), "muted": muted })
        }
        C::Invited { user } => json!({ "kind": "invited", "user": user.as_str() }),
    }
}

/// serde_json escapes C0 controls but copies C1 controls (U+0080–U+009F,
/// e.g. U+009B, an 8-bit CSI), bidi controls and line separators as they
/// are. They can only occur inside JSON strings, where `\uXXXX` means the
/// same character, so escaping them keeps the JSON identical in meaning.
fn terminal_safe_json(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let risky = matches!(c,
            '\u{80}'..='\u{9f}'
            | '\u{200e}' | '\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
            | '\u{2028}' | '\u{2029}');
        if risky {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str, from: &str) -> ChatLine {
        ChatLine {
            id: 1,
            timestamp_ms: 0,
            from: from.into(),
            room: Some("#general".into()),
            to: None,
            text: text.into(),
            history: false,
            own: false,
            client_id: None,
        }
    }

    #[test]
    fn nothing_received_reaches_the_terminal_as_an_escape_sequence() {
        let evil = "hi\u{1b}[2J\u{1b}]0;pwned\u{7}\u{9b}31m\r-- admin joined";
        let out = human(&ClientEvent::Room(line(evil, "mallory"))).unwrap();
        assert!(!out.chars().any(|c| c.is_control()), "{out:?}");
        let multi = human(&ClientEvent::Room(line("a\n-- admin joined", "m"))).unwrap();
        assert!(
            multi.lines().skip(1).all(|l| l.starts_with("        ")),
            "{multi:?}"
        );
        let out = json(&ClientEvent::Room(line(evil, "mallory"))).unwrap();
        assert!(!out.chars().any(|c| c.is_control()), "{out:?}");
        let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed["text"], evil);
    }

    #[test]
    fn history_is_marked_and_own_live_lines_are_not_echoed() {
        let mut l = line("old news", "bob");
        l.history = true;
        assert!(human(&ClientEvent::Room(l)).unwrap().contains("earlier"));
        let mut own = line("mine", "me");
        own.own = true;
        assert_eq!(human(&ClientEvent::Room(own)), None);
    }
}
