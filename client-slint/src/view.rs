//! Copies the models' state into the window's globals. The message rows
//! are updated in place when only the end changed, so a new message does
//! not rebuild (and re-lay out) the whole list.

use std::rc::Rc;

use proto_core::message::escape_for_display;
use slint::{ComponentHandle, Model, ModelRc, SharedString, VecModel};

use crate::model::{ChatModel, NoticeStyle, SidePanel};
use crate::password_dialog::PasswordDialog;
use crate::screens::{Page as ScreensPage, Screens};
use crate::timeline::{self, Row, RowKind as TimelineKind};
use crate::ui::{
    AppState, ChatAdapter, ConversationItem, DeviceItem, DialogAdapter, InvitationItem,
    LoginAdapter, MainWindow, Page, RoomItem, RowKind, TimelineRow, UserItem,
};
use client_core::RoomRole;

pub struct ChatView {
    rows: Rc<VecModel<TimelineRow>>,
    shown_rows: Vec<Row>,
    conversations: Rc<VecModel<ConversationItem>>,
    users: Rc<VecModel<UserItem>>,
    shown_panel: Option<SidePanel>,
    rooms: Rc<VecModel<RoomItem>>,
    devices: Rc<VecModel<DeviceItem>>,
    invitations: Rc<VecModel<InvitationItem>>,
    /// Index of the conversation on screen; a change jumps to its end.
    shown_conversation: Option<usize>,
    conversation_switches: i32,
}

impl ChatView {
    /// Installs the list models into `window`.
    pub fn new(window: &MainWindow) -> Self {
        let view = Self {
            rows: Rc::new(VecModel::default()),
            shown_rows: Vec::new(),
            conversations: Rc::new(VecModel::default()),
            users: Rc::new(VecModel::default()),
            shown_panel: None,
            rooms: Rc::new(VecModel::default()),
            devices: Rc::new(VecModel::default()),
            invitations: Rc::new(VecModel::default()),
            shown_conversation: None,
            conversation_switches: 0,
        };
        let chat = window.global::<ChatAdapter>();
        chat.set_rows(ModelRc::from(view.rows.clone()));
        chat.set_conversations(ModelRc::from(view.conversations.clone()));
        chat.set_users(ModelRc::from(view.users.clone()));
        chat.set_rooms(ModelRc::from(view.rooms.clone()));
        chat.set_devices(ModelRc::from(view.devices.clone()));
        chat.set_invitations(ModelRc::from(view.invitations.clone()));
        view
    }

    /// Shows `screens` (page, login form, dialogs), `model` (the chat) and
    /// the password dialog.
    pub fn update(
        &mut self,
        window: &MainWindow,
        screens: &Screens,
        model: &ChatModel,
        password: &PasswordDialog,
    ) {
        self.update_screens(window, screens);
        self.update_chat(window, model);
        update_password_dialog(window, password);
    }

    fn update_screens(&self, window: &MainWindow, screens: &Screens) {
        window.global::<AppState>().set_page(match screens.page() {
            ScreensPage::Login => Page::Login,
            ScreensPage::Chat => Page::Chat,
        });
        let login = window.global::<LoginAdapter>();
        login.set_error(screens.error().into());
        login.set_progress(screens.progress().into());
        login.set_working(screens.logging_in());
        let was_busy = login.get_busy();
        login.set_busy(screens.busy());
        if was_busy && !screens.busy() {
            // Back to the form after a failure: ready to retype.
            login.set_focus_request(login.get_focus_request().wrapping_add(1));
        }
        let dialogs = window.global::<DialogAdapter>();
        match screens.trust_prompt() {
            Some(prompt) => {
                dialogs.set_trust_server(prompt.server.as_str().into());
                dialogs.set_trust_fingerprint(prompt.fingerprint.as_str().into());
                dialogs.set_trust_visible(true);
            }
            None => dialogs.set_trust_visible(false),
        }
        dialogs.set_key_changed_warning(screens.key_warning().unwrap_or_default().into());
    }

    fn update_chat(&mut self, window: &MainWindow, model: &ChatModel) {
        let chat = window.global::<ChatAdapter>();
        let me = model.me();
        chat.set_me(escape_for_display(me).into());
        window.set_window_title(if me.is_empty() {
            "SecureChat".into()
        } else {
            format!("SecureChat — {me}").into()
        });
        chat.set_status(model.status().text().into());
        chat.set_connected(*model.status() == crate::model::Status::Connected);

        let selected = model.selected_index();
        chat.set_title(escape_for_display(shown_title(model.selected())).into());
        chat.set_room_open(model.selected().id.room().is_some());
        chat.set_topic(escape_for_display(&model.selected().topic).into());
        let items: Vec<ConversationItem> = model
            .conversations()
            .iter()
            .enumerate()
            .map(|(i, c)| ConversationItem {
                title: escape_for_display(shown_title(c)).into(),
                unread: i32::try_from(c.unread()).unwrap_or(i32::MAX),
                is_room: c.id.room().is_some(),
                selected: i == selected,
            })
            .collect();
        if !same_items(&self.conversations, &items) {
            self.conversations.set_vec(items);
        }

        chat.set_browsing(model.browsing());
        chat.set_devices_open(model.devices_open());
        if model.devices_open() {
            let devices: Vec<DeviceItem> = model
                .devices()
                .iter()
                .map(|d| DeviceItem {
                    id: format!("{:016x}", d.id).into(),
                    name: escape_for_display(&d.name).into(),
                    detail: escape_for_display(&device_detail(d)).into(),
                    current: d.current,
                })
                .collect();
            self.devices.set_vec(devices);
        }
        if model.browsing() {
            let rooms: Vec<RoomItem> = model
                .room_list()
                .into_iter()
                .map(|(r, joined)| RoomItem {
                    name: escape_for_display(&r.name).into(),
                    topic: escape_for_display(&r.topic).into(),
                    members: i32::try_from(r.members).unwrap_or(i32::MAX),
                    joined,
                })
                .collect();
            self.rooms.set_vec(rooms);
        }
        let invitations: Vec<InvitationItem> = model
            .invitations()
            .iter()
            .map(|(room, by, _)| InvitationItem {
                room: escape_for_display(room).into(),
                by: escape_for_display(by).into(),
            })
            .collect();
        if self.invitations.row_count() != invitations.len()
            || self
                .invitations
                .iter()
                .zip(&invitations)
                .any(|(a, b)| a != *b)
        {
            self.invitations.set_vec(invitations);
        }
        let panel = model.side_panel();
        if self.shown_panel.as_ref() != Some(&panel) {
            let (heading, people) = match &panel {
                SidePanel::Members { total, people } => (format!("MEMBERS — {total}"), people),
                SidePanel::Online(people) => (format!("ONLINE — {}", people.len()), people),
            };
            chat.set_users_heading(heading.into());
            self.users.set_vec(
                people
                    .iter()
                    .map(|p| UserItem {
                        name: escape_for_display(&p.name).into(),
                        is_me: p.name == me,
                        role: match p.role {
                            RoomRole::Owner => "owner".into(),
                            RoomRole::Moderator => "moderator".into(),
                            RoomRole::Member => "".into(),
                        },
                        online: p.online,
                        can_moderate: p.can_moderate,
                        can_appoint: p.can_appoint,
                    })
                    .collect::<Vec<_>>(),
            );
            self.shown_panel = Some(panel);
        }

        let today = chrono::Local::now().date_naive();
        let rows = timeline::rows(model.selected(), &chrono::Local, today);
        if self.shown_conversation != Some(selected) {
            self.shown_conversation = Some(selected);
            self.conversation_switches = self.conversation_switches.wrapping_add(1);
            self.rows
                .set_vec(rows.iter().map(to_slint_row).collect::<Vec<_>>());
            chat.set_shown_conversation(self.conversation_switches);
        } else {
            self.replace_changed_tail(&rows);
        }
        self.shown_rows = rows;
    }

    /// Rows usually change only at the end (a new message, a notice).
    fn replace_changed_tail(&self, rows: &[Row]) {
        let common = self
            .shown_rows
            .iter()
            .zip(rows)
            .take_while(|(a, b)| a == b)
            .count();
        if common == 0 && !self.shown_rows.is_empty() {
            self.rows
                .set_vec(rows.iter().map(to_slint_row).collect::<Vec<_>>());
            return;
        }
        for index in (common..self.rows.row_count()).rev() {
            self.rows.remove(index);
        }
        for row in &rows[common..] {
            self.rows.push(to_slint_row(row));
        }
    }
}

fn update_password_dialog(window: &MainWindow, password: &PasswordDialog) {
    let dialogs = window.global::<DialogAdapter>();
    if !password.is_open() {
        // Cancelled, changed, or the session ended: nothing typed stays.
        clear_password_fields(&dialogs, true);
    }
    dialogs.set_password_visible(password.is_open());
    dialogs.set_password_busy(password.busy());
    dialogs.set_password_error(password.error().into());
}

/// Empties the password dialog's new-password fields, and with `current`
/// the current-password field too.
pub(crate) fn clear_password_fields(dialogs: &DialogAdapter, current: bool) {
    if current && !dialogs.get_current_password().is_empty() {
        dialogs.set_current_password(SharedString::new());
    }
    if !dialogs.get_new_password().is_empty() {
        dialogs.set_new_password(SharedString::new());
    }
    if !dialogs.get_new_password_again().is_empty() {
        dialogs.set_new_password_again(SharedString::new());
    }
}

fn same_items(model: &VecModel<ConversationItem>, items: &[ConversationItem]) -> bool {
    model.row_count() == items.len() && model.iter().zip(items).all(|(a, b)| &a == b)
}

fn to_slint_row(row: &Row) -> TimelineRow {
    TimelineRow {
        kind: match row.kind {
            TimelineKind::Message => RowKind::Message,
            TimelineKind::Notice(NoticeStyle::Info) => RowKind::Info,
            TimelineKind::Notice(NoticeStyle::Join) => RowKind::Join,
            TimelineKind::Notice(NoticeStyle::Leave) => RowKind::Leave,
            TimelineKind::Notice(NoticeStyle::Error) => RowKind::Error,
            TimelineKind::Day => RowKind::Day,
            TimelineKind::Earlier => RowKind::Earlier,
            TimelineKind::ReadMarker => RowKind::Marker,
        },
        sender: SharedString::from(row.sender.as_str()),
        time: row.time.as_str().into(),
        text: row.text.as_str().into(),
        own: row.own,
        history: row.history,
        continued: row.continued,
        status: row.status.as_str().into(),
    }
}

/// A conversation's name beside its sigil: a room's without its `#` (the
/// sigil shows it), a partner's as is.
fn shown_title(conversation: &crate::model::Conversation) -> &str {
    match conversation.id.room() {
        Some(room) => room.strip_prefix('#').unwrap_or(room),
        None => conversation.title(),
    }
}

/// What the devices page says under a device's name.
fn device_detail(d: &client_core::DeviceView) -> String {
    let when = if d.current {
        "this device".to_owned()
    } else if d.online {
        "online".to_owned()
    } else {
        match chrono::DateTime::from_timestamp_millis(i64::try_from(d.last_seen_ms).unwrap_or(0)) {
            Some(t) => format!(
                "last seen {}",
                t.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M")
            ),
            None => "offline".to_owned(),
        }
    };
    if d.address.is_empty() {
        when
    } else {
        format!("{when} · {}", d.address)
    }
}
