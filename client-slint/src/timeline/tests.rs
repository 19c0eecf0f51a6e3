use chrono::{FixedOffset, NaiveDate, TimeZone, Utc};
use client_core::{ChatLine, ClientEvent, ConnectionState};

use super::*;
use crate::model::ChatModel;

/// 2025-03-03 09:00 UTC, a Monday.
fn at(day: u32, hour: u32, minute: u32) -> u64 {
    Utc.with_ymd_and_hms(2025, 3, day, hour, minute, 0)
        .unwrap()
        .timestamp_millis() as u64
}

fn line(id: u64, timestamp_ms: u64, from: &str, text: &str, history: bool) -> ClientEvent {
    ClientEvent::Room(ChatLine {
        id,
        timestamp_ms,
        from: from.into(),
        room: Some("#general".into()),
        to: None,
        text: text.into(),
        history,
        own: from == "me",
        client_id: None,
    })
}

fn model_with(events: Vec<ClientEvent>) -> ChatModel {
    let mut model = ChatModel::new();
    model.handle_event(&ClientEvent::State(ConnectionState::Connected), 0);
    model.handle_event(
        &ClientEvent::LoggedIn {
            username: "me".into(),
        },
        0,
    );
    for event in events {
        model.handle_event(&event, at(5, 12, 0));
    }
    model
}

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 3, 5).unwrap()
}

fn summary(rows: &[Row]) -> Vec<String> {
    rows.iter()
        .map(|r| match r.kind {
            RowKind::Message => format!(
                "{}{} {} {}: {}",
                if r.history { "(earlier) " } else { "" },
                if r.own { "own" } else { "msg" },
                r.time,
                r.sender,
                r.text
            ),
            RowKind::Notice(_) => format!("notice {} {}", r.sender, r.text),
            RowKind::Day => format!("-- {} --", r.text),
            RowKind::Earlier => "== earlier ==".into(),
            RowKind::ReadMarker => "== new ==".into(),
        })
        .collect()
}

#[test]
fn day_separators_split_the_timeline_by_local_date() {
    let model = model_with(vec![
        line(1, at(3, 9, 0), "ana", "monday", true),
        ClientEvent::HistoryDone,
        line(2, at(4, 23, 30), "ana", "late tuesday", false),
        line(3, at(5, 8, 0), "me", "wednesday", false),
    ]);
    let rows = rows(model.selected(), &Utc, today());
    assert_eq!(
        summary(&rows),
        [
            "== earlier ==",
            "-- Monday 3 March --",
            "(earlier) msg 09:00 ana: monday",
            "-- Yesterday --",
            "msg 23:30 ana: late tuesday",
            "-- Today --",
            "own 08:00 me: wednesday",
        ]
    );
    // Two hours east, Tuesday 23:30 is already Wednesday.
    let east = FixedOffset::east_opt(2 * 3600).unwrap();
    let rows = rows_in(&model, &east);
    assert_eq!(rows[3], "-- Today --");
    assert_eq!(rows[4], "msg 01:30 ana: late tuesday");
}

fn rows_in(model: &ChatModel, zone: &FixedOffset) -> Vec<String> {
    summary(&rows(model.selected(), zone, today()))
}

#[test]
fn the_read_marker_row_stands_before_the_first_unread_message() {
    let mut model = model_with(vec![line(1, at(5, 9, 0), "ana", "read", false)]);
    model.open_direct("ana");
    model.handle_event(&line(2, at(5, 9, 1), "ana", "unread", false), 0);
    model.select(0);
    let rows = summary(&rows(model.selected(), &Utc, today()));
    assert_eq!(
        rows,
        [
            "-- Today --",
            "msg 09:00 ana: read",
            "== new ==",
            "msg 09:01 ana: unread"
        ]
    );
}

#[test]
fn consecutive_messages_from_one_sender_are_grouped() {
    let model = model_with(vec![
        line(1, at(5, 9, 0), "ana", "a", false),
        line(2, at(5, 9, 2), "ana", "b", false),
        line(3, at(5, 9, 30), "ana", "c", false),
        line(4, at(5, 9, 31), "bo", "d", false),
    ]);
    let continued: Vec<bool> = rows(model.selected(), &Utc, today())
        .iter()
        .skip(1)
        .map(|r| r.continued)
        .collect();
    assert_eq!(continued, [false, true, false, false]);
}

#[test]
fn controls_and_bidi_overrides_are_shown_escaped_but_line_breaks_stay() {
    assert_eq!(
        display_text("a\u{202E}b\nc\u{1b}[2J"),
        "a\\u{202e}b\nc\\u{1b}[2J"
    );
    assert_eq!(display_text("مرحبا\r\n你好 👋"), "مرحبا\n你好 👋");
}

#[test]
fn older_days_name_the_year_when_it_differs() {
    let today = today();
    let d = NaiveDate::from_ymd_opt(2024, 12, 31).unwrap();
    assert_eq!(day_label(d, today), "Tuesday 31 December 2024");
}

#[test]
fn own_messages_say_whether_they_are_sending_or_were_not_delivered() {
    let typed = |client_id, text: &str| {
        ClientEvent::Room(ChatLine {
            id: 0,
            timestamp_ms: at(5, 11, 0),
            from: "me".into(),
            room: Some("#general".into()),
            to: None,
            text: text.into(),
            history: false,
            own: true,
            client_id: Some(client_id),
        })
    };
    let model = model_with(vec![
        typed(1, "on its way"),
        typed(2, "stored"),
        typed(3, "refused"),
        ClientEvent::Delivery {
            client_id: 2,
            delivery: client_core::Delivery::Stored {
                id: 9,
                timestamp_ms: at(5, 11, 1),
                already_shown: false,
            },
        },
        ClientEvent::Delivery {
            client_id: 3,
            delivery: client_core::Delivery::Failed(client_core::ServerRefusal {
                code: proto_core::message::ErrorCode::RateLimited,
                detail: "too many messages".into(),
            }),
        },
    ]);
    let rows = rows(model.selected(), &Utc, today());
    let status: Vec<(&str, &str)> = rows
        .iter()
        .filter(|r| r.kind == RowKind::Message)
        .map(|r| (r.text.as_str(), r.status.as_str()))
        .collect();
    assert_eq!(
        status,
        [
            ("on its way", "Sending…"),
            ("stored", ""),
            ("refused", "Not delivered: slow down: too many messages"),
        ]
    );
}
