//! A conversation as the rows the message list shows: day separators,
//! the "earlier messages" heading over history, the read marker, and the
//! messages and notices themselves with local times.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use proto_core::message::escape_for_display;

use crate::model::{Conversation, EntryKind, NoticeStyle, SendState};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    Message,
    Notice(NoticeStyle),
    /// "Today", "Yesterday", "Monday 3 March 2025".
    Day,
    /// Heading over messages replayed at login.
    Earlier,
    /// "New messages": the first unread message follows.
    ReadMarker,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub kind: RowKind,
    /// A message's sender, or whom a join/leave notice is about.
    pub sender: String,
    /// Local "HH:MM" (empty for separators).
    pub time: String,
    pub text: String,
    pub own: bool,
    pub history: bool,
    /// Same sender as the message just above, within a few minutes: the
    /// sender line can be left out.
    pub continued: bool,
    /// An own message's delivery: "" once stored, "Sending…" until the
    /// server acknowledges it, "Not delivered: …" if it was refused.
    pub status: String,
}

impl Row {
    fn separator(kind: RowKind, text: String) -> Self {
        Self {
            kind,
            sender: String::new(),
            time: String::new(),
            text,
            own: false,
            history: false,
            continued: false,
            status: String::new(),
        }
    }
}

/// Messages closer than this to the previous one from the same sender are
/// grouped under one sender line.
const GROUP_WINDOW_MS: u64 = 5 * 60 * 1000;

/// The rows for `conversation`, with times in `zone` and day names
/// relative to `today` (a date in `zone`).
pub fn rows<Tz: TimeZone>(conversation: &Conversation, zone: &Tz, today: NaiveDate) -> Vec<Row> {
    let mut rows = Vec::with_capacity(conversation.entries().len() + 8);
    let mut last_day: Option<NaiveDate> = None;
    let mut in_history = false;
    // (sender, time) of the previous message row, for grouping.
    let mut previous_sender: Option<(&str, u64)> = None;
    for (index, entry) in conversation.entries().iter().enumerate() {
        let local = local_time(entry.timestamp_ms, zone);
        let history = matches!(entry.kind, EntryKind::Message { history: true, .. });
        if history && !in_history {
            rows.push(Row::separator(RowKind::Earlier, "Earlier messages".into()));
            previous_sender = None;
        }
        in_history = history;
        if conversation.read_marker() == Some(index) {
            rows.push(Row::separator(RowKind::ReadMarker, "New messages".into()));
            previous_sender = None;
        }
        let day = local.date_naive();
        if last_day != Some(day) {
            rows.push(Row::separator(RowKind::Day, day_label(day, today)));
            last_day = Some(day);
            previous_sender = None;
        }
        let time = local.naive_local().format("%H:%M").to_string();
        let text = display_text(&entry.text);
        match &entry.kind {
            EntryKind::Message {
                from, own, state, ..
            } => {
                let continued = previous_sender.is_some_and(|(sender, at)| {
                    sender == from && entry.timestamp_ms.saturating_sub(at) < GROUP_WINDOW_MS
                });
                previous_sender = Some((from, entry.timestamp_ms));
                rows.push(Row {
                    kind: RowKind::Message,
                    sender: escape_for_display(from),
                    time,
                    text,
                    own: *own,
                    history,
                    continued,
                    status: match state {
                        SendState::Stored => String::new(),
                        SendState::Pending { .. } => "Sending…".into(),
                        SendState::Failed { reason } => {
                            format!("Not delivered: {}", escape_for_display(reason))
                        }
                        SendState::Unconfirmed => "Not confirmed".into(),
                    },
                });
            }
            EntryKind::Notice(style) => {
                previous_sender = None;
                rows.push(Row {
                    kind: RowKind::Notice(*style),
                    sender: entry
                        .subject
                        .as_deref()
                        .map(escape_for_display)
                        .unwrap_or_default(),
                    time,
                    text,
                    own: false,
                    history: false,
                    continued: false,
                    status: String::new(),
                });
            }
        }
    }
    rows
}

/// "Today", "Yesterday", or the weekday and date (with the year when it is
/// not this year's).
pub fn day_label(day: NaiveDate, today: NaiveDate) -> String {
    if day == today {
        "Today".into()
    } else if today.pred_opt() == Some(day) {
        "Yesterday".into()
    } else if day.year() == today.year() {
        day.format("%A %-d %B").to_string()
    } else {
        day.format("%A %-d %B %Y").to_string()
    }
}

fn local_time<Tz: TimeZone>(timestamp_ms: u64, zone: &Tz) -> DateTime<Tz> {
    let ms = i64::try_from(timestamp_ms).unwrap_or(i64::MAX);
    let utc = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
    utc.with_timezone(zone)
}

/// Chat text is raw: control and bidi-override characters are shown
/// escaped, so a message cannot reorder or hide what is around it. Line
/// breaks stay.
pub fn display_text(text: &str) -> String {
    text.split('\n')
        .map(|line| escape_for_display(line.strip_suffix('\r').unwrap_or(line)))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests;
