//! Wiring: the window's callbacks go to a [`Controller`] on the UI thread,
//! which starts clients through a [`Connector`], feeds their events to the
//! models and copies the result into the window. Network work happens on
//! the connector's runtime, never here.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::{Rc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use client_core::{
    AuthRequest, ClientEvent, ClientOptions, Fingerprint, KnownServers, PasswordChangeError,
    ServerAddress, TlsOptions,
};
use slint::{CloseRequestResponse, ComponentHandle};
use tokio::sync::oneshot;
use zeroize::Zeroizing;

use crate::backend::{route_input, ChatBackend, Connector, Deliver, Outgoing};
use crate::model::{ChatModel, ConversationId};
use crate::password_dialog::{PasswordDialog, Submit};
use crate::screens::{capitalized, Effect, Screens};
use crate::ui::{ChatAdapter, DialogAdapter, LoginAdapter, MainWindow};
use crate::view::ChatView;

/// How long the goodbye may take when the window closes.
pub const GOODBYE_TIMEOUT: Duration = Duration::from_secs(3);

/// Start-up settings (command line, see `main.rs`). `Debug` hides the
/// passwords.
#[derive(Default, Clone)]
pub struct Settings {
    pub server: Option<String>,
    pub username: Option<String>,
    pub password: Option<Zeroizing<String>>,
    /// With `connect`: create the account instead of logging in.
    pub register: bool,
    /// Log in at start without waiting for a click.
    pub connect: bool,
    pub fingerprint: Option<Fingerprint>,
    pub known_servers: Option<PathBuf>,
    pub tls: Option<TlsOptions>,
    /// Room messages sent once the first login's history is shown (for
    /// scripted runs and the end-to-end test).
    pub send_after_login: Vec<String>,
    /// Once logged in, change the password from the first to the second
    /// through the Change password dialog, as if typed there (the
    /// end-to-end test).
    pub change_password_after_login: Option<(Zeroizing<String>, Zeroizing<String>)>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |present: bool| if present { "<redacted>" } else { "none" };
        f.debug_struct("Settings")
            .field("server", &self.server)
            .field("username", &self.username)
            .field("password", &redacted(self.password.is_some()))
            .field("register", &self.register)
            .field("connect", &self.connect)
            .field("fingerprint", &self.fingerprint)
            .field("known_servers", &self.known_servers)
            .field("tls", &self.tls)
            .field("send_after_login", &self.send_after_login)
            .field(
                "change_password_after_login",
                &redacted(self.change_password_after_login.is_some()),
            )
            .finish()
    }
}

/// The window and its controller.
pub struct App {
    window: MainWindow,
    controller: Rc<RefCell<Controller>>,
    _day_timer: slint::Timer,
}

impl App {
    pub fn new(
        connector: Box<dyn Connector>,
        settings: Settings,
    ) -> Result<Self, slint::PlatformError> {
        let window = MainWindow::new()?;
        prefill_login(&window, &settings);
        // The password is only needed to fill in the form; the controller
        // keeps no copy (that would go stale after a password change).
        let settings = Settings {
            password: None,
            ..settings
        };
        let controller = Rc::new_cyclic(|me| {
            RefCell::new(Controller {
                window: window.as_weak(),
                me: me.clone(),
                connector,
                screens: Screens::new(),
                model: ChatModel::new(),
                password_dialog: PasswordDialog::default(),
                view: ChatView::new(&window),
                client: None,
                generation: 0,
                trust_reply: None,
                pending_sends: Vec::new(),
                members_asked: None,
                online_asked: false,
                older_asked: None,
                settings: settings.clone(),
            })
        });
        wire_callbacks(&window, &controller);
        // "Today" becomes "Yesterday" at midnight.
        let day_timer = slint::Timer::default();
        let weak = Rc::downgrade(&controller);
        day_timer.start(
            slint::TimerMode::Repeated,
            Duration::from_secs(60),
            move || {
                if let Some(c) = weak.upgrade() {
                    c.borrow_mut().refresh();
                }
            },
        );
        controller.borrow_mut().refresh();
        if settings.connect {
            controller.borrow_mut().start(settings.register);
        }
        Ok(Self {
            window,
            controller,
            _day_timer: day_timer,
        })
    }

    pub fn window(&self) -> &MainWindow {
        &self.window
    }

    pub fn controller(&self) -> Rc<RefCell<Controller>> {
        self.controller.clone()
    }

    /// Shows the window and runs until the goodbye is done (or timed out).
    pub fn run(&self) -> Result<(), slint::PlatformError> {
        self.window.show()?;
        // The loop outlives the window: after a close the goodbye is still
        // being sent.
        slint::run_event_loop_until_quit()
    }
}

fn prefill_login(window: &MainWindow, settings: &Settings) {
    let login = window.global::<LoginAdapter>();
    if let Some(server) = &settings.server {
        login.set_server(server.as_str().into());
    }
    if let Some(user) = &settings.username {
        login.set_username(user.as_str().into());
    }
    if let Some(password) = &settings.password {
        login.set_password(password.as_str().into());
    }
    login.set_focus_request(login.get_focus_request().wrapping_add(1));
}

fn wire_callbacks(window: &MainWindow, controller: &Rc<RefCell<Controller>>) {
    // Every callback holds the controller weakly: the window must not keep
    // it alive, and it must not keep itself alive through the window.
    let with = |f: fn(&mut Controller)| {
        let weak = Rc::downgrade(controller);
        move || {
            if let Some(c) = weak.upgrade() {
                f(&mut c.borrow_mut());
            }
        }
    };
    let login = window.global::<LoginAdapter>();
    login.on_login(with(|c| c.start(false)));
    login.on_register(with(|c| c.start(true)));

    let chat = window.global::<ChatAdapter>();
    let weak = Rc::downgrade(controller);
    chat.on_send(move |text| {
        weak.upgrade()
            .is_some_and(|c| c.borrow_mut().send(text.as_str()))
    });
    let weak = Rc::downgrade(controller);
    chat.on_select_conversation(move |index| {
        if let (Some(c), Ok(index)) = (weak.upgrade(), usize::try_from(index)) {
            c.borrow_mut().select(index);
        }
    });
    let weak = Rc::downgrade(controller);
    chat.on_open_direct(move |name| {
        if let Some(c) = weak.upgrade() {
            c.borrow_mut().open_direct(name.as_str());
        }
    });
    let weak = Rc::downgrade(controller);
    chat.on_browse_rooms(move || {
        if let Some(c) = weak.upgrade() {
            c.borrow_mut().browse_rooms(true);
        }
    });
    let weak = Rc::downgrade(controller);
    chat.on_close_browser(move || {
        if let Some(c) = weak.upgrade() {
            c.borrow_mut().browse_rooms(false);
        }
    });
    let weak = Rc::downgrade(controller);
    chat.on_viewing_changed(move |focused, at_bottom| {
        if let Some(c) = weak.upgrade() {
            c.borrow_mut().set_viewing(focused, at_bottom);
        }
    });
    let weak = Rc::downgrade(controller);
    chat.on_load_older(move || {
        if let Some(c) = weak.upgrade() {
            c.borrow_mut().load_older();
        }
    });
    let weak = Rc::downgrade(controller);
    chat.on_open_devices(move || {
        if let Some(c) = weak.upgrade() {
            c.borrow_mut().show_devices(true);
        }
    });
    let weak = Rc::downgrade(controller);
    chat.on_close_devices(move || {
        if let Some(c) = weak.upgrade() {
            c.borrow_mut().show_devices(false);
        }
    });
    let weak = Rc::downgrade(controller);
    chat.on_logout_device(move |id| {
        if let Some(c) = weak.upgrade() {
            c.borrow_mut().logout_device(id.as_str());
        }
    });
    let weak = Rc::downgrade(controller);
    chat.on_join_room(move |name| {
        if let Some(c) = weak.upgrade() {
            c.borrow_mut().join_room(name.as_str());
        }
    });
    let weak = Rc::downgrade(controller);
    chat.on_moderate(move |command, name| {
        if let Some(c) = weak.upgrade() {
            c.borrow_mut().moderate(command.as_str(), name.as_str());
        }
    });

    let dialogs = window.global::<DialogAdapter>();
    let weak = Rc::downgrade(controller);
    dialogs.on_trust_answered(move |trusted| {
        if let Some(c) = weak.upgrade() {
            c.borrow_mut().answer_trust(trusted);
        }
    });
    dialogs.on_key_changed_dismissed(with(|c| {
        c.screens.key_warning_dismissed();
        c.refresh();
    }));
    dialogs.on_change_password_opened(with(Controller::open_password_dialog));
    dialogs.on_change_password(with(Controller::change_password));
    dialogs.on_change_password_cancelled(with(Controller::cancel_password_dialog));

    let weak = Rc::downgrade(controller);
    window.window().on_close_requested(move || {
        if let Some(c) = weak.upgrade() {
            c.borrow_mut().quit();
        }
        CloseRequestResponse::HideWindow
    });
}

/// The UI thread's state: screens, chat model, view, running client.
pub struct Controller {
    window: slint::Weak<MainWindow>,
    me: Weak<RefCell<Controller>>,
    connector: Box<dyn Connector>,
    screens: Screens,
    model: ChatModel,
    password_dialog: PasswordDialog,
    view: ChatView,
    client: Option<Box<dyn ChatBackend>>,
    /// Counts started clients; events of an older one are dropped.
    generation: u64,
    trust_reply: Option<oneshot::Sender<bool>>,
    pending_sends: Vec<String>,
    settings: Settings,
    /// The room whose members were asked for (the side panel), until the
    /// answer comes or the connection changes.
    members_asked: Option<String>,
    /// Who is online was asked for (a direct conversation's panel), until
    /// the answer comes or the connection changes.
    online_asked: bool,
    /// The conversation whose older page was asked for (scrolling up),
    /// until it comes.
    older_asked: Option<ConversationId>,
}

/// Messages fetched per scroll to the top.
const OLDER_PAGE: u16 = 50;

impl Controller {
    pub fn screens(&self) -> &Screens {
        &self.screens
    }

    pub fn model(&self) -> &ChatModel {
        &self.model
    }

    pub fn password_dialog(&self) -> &PasswordDialog {
        &self.password_dialog
    }

    /// The login screen's buttons: validate the form, start a client.
    pub fn start(&mut self, register: bool) {
        if self.screens.busy() {
            return;
        }
        let Some(window) = self.window.upgrade() else {
            return;
        };
        let login = window.global::<LoginAdapter>();
        let options = match self.options_from_form(&login, register) {
            Ok(options) => options,
            Err(message) => {
                self.screens.form_error(message);
                self.refresh();
                return;
            }
        };
        self.generation += 1;
        let generation = self.generation;
        let me = self.me.clone();
        let deliver: Deliver = Box::new(move |events| {
            let Some(c) = me.upgrade() else {
                return false;
            };
            let mut c = c.borrow_mut();
            if c.generation != generation {
                return false;
            }
            c.handle_events(events);
            true
        });
        self.screens.started(&options.server.to_string(), register);
        self.model = ChatModel::new();
        self.pending_sends = self.settings.send_after_login.clone();
        self.client = Some(self.connector.connect(options, deliver));
        self.refresh();
    }

    fn options_from_form(
        &self,
        login: &LoginAdapter,
        register: bool,
    ) -> Result<ClientOptions, String> {
        let server: ServerAddress = login
            .get_server()
            .parse()
            .map_err(|e: client_core::address::InvalidAddress| capitalized(&e.to_string()))?;
        let username = login.get_username().trim().to_owned();
        if username.is_empty() {
            return Err("Enter a user name".into());
        }
        let password = Zeroizing::new(login.get_password().to_string());
        if password.is_empty() {
            return Err("Enter a password".into());
        }
        let auth = if register {
            AuthRequest::Register { username, password }
        } else {
            AuthRequest::Login { username, password }
        };
        let mut options = ClientOptions::new(server, auth);
        options.fingerprint = self.settings.fingerprint;
        options.tls = self.settings.tls.clone();
        if let Some(path) = &self.settings.known_servers {
            options.known_servers = KnownServers::at(path.clone());
        }
        // A device the server can tell apart from this user's others; an
        // unwritable config directory leaves it unnamed (device 0).
        options.device =
            client_core::DeviceIdentity::load_or_create(&options.known_servers, "desktop", None)
                .ok();
        Ok(options)
    }

    /// Events from the running client, in order.
    pub fn handle_events(&mut self, events: Vec<ClientEvent>) {
        let now = now_ms();
        for event in events {
            self.model.handle_event(&event, now);
            self.password_dialog.handle_event(&event);
            match self.screens.handle_event(&event) {
                Effect::Nothing => {}
                Effect::Exit => {
                    self.client = None;
                    let _ = slint::quit_event_loop();
                }
            }
            match event {
                ClientEvent::TrustQuestion { reply, .. } => self.trust_reply = Some(reply),
                ClientEvent::LoggedIn { .. } => {
                    // The password is not kept on screen once it worked.
                    if let Some(window) = self.window.upgrade() {
                        window
                            .global::<LoginAdapter>()
                            .set_password(Default::default());
                    }
                }
                ClientEvent::HistoryDone => self.send_pending(),
                ClientEvent::Closed { .. } => {
                    self.client = None;
                    self.trust_reply = None;
                    self.members_asked = None;
                    self.online_asked = false;
                }
                ClientEvent::Members { .. } => self.members_asked = None,
                ClientEvent::State(_) => {
                    self.members_asked = None;
                    self.online_asked = false;
                }
                ClientEvent::Online { .. } => self.online_asked = false,
                ClientEvent::HistoryPage { .. } => self.older_asked = None,
                _ => {}
            }
        }
        self.ask_for_side_panel();
        self.mark_read();
        self.refresh();
    }

    /// Tells the server what the user has now seen, when the model says so
    /// (once per batch of events or user action: a burst makes one).
    fn mark_read(&mut self) {
        if let Some(client) = &self.client {
            if let Some((conversation, up_to_id)) = self.model.poll_mark_read() {
                client.mark_read(&conversation, up_to_id);
            }
        }
    }

    /// The window gained or lost the focus, or the open conversation was
    /// scrolled to or away from its end.
    pub fn set_viewing(&mut self, focused: bool, at_bottom: bool) {
        self.model.set_viewing(focused, at_bottom);
        self.mark_read();
    }

    /// What the side panel shows, if it has not been fetched: the open
    /// room's members (once per opening, until they come; kept current by
    /// presence and room events after that), or for a direct conversation
    /// who is online (once per login: the greeting does not list it, and
    /// asking at every login would cost a large server 39 pages per client
    /// in a mass reconnect).
    fn ask_for_side_panel(&mut self) {
        if *self.model.status() != crate::model::Status::Connected {
            return;
        }
        let Some(client) = &self.client else { return };
        if let Some(room) = self.model.members_wanted() {
            if self.members_asked.as_deref() != Some(room) {
                client.submit("/names", room);
                self.members_asked = Some(room.to_owned());
            }
        }
        if self.model.online_wanted() && !self.online_asked {
            client.submit("/who", self.model.command_room());
            self.online_asked = true;
        }
    }

    fn send_pending(&mut self) {
        if let Some(client) = &self.client {
            let room = self.model.command_room().to_owned();
            for text in self.pending_sends.drain(..) {
                client.submit(&text, &room);
            }
        }
        if let Some((current, new)) = self.settings.change_password_after_login.take() {
            self.type_password_change(current, new);
        }
    }

    /// Fills the Change password dialog with `current` and `new` (twice)
    /// and presses Change: the user's path, scripted.
    fn type_password_change(&mut self, current: Zeroizing<String>, new: Zeroizing<String>) {
        let Some(window) = self.window.upgrade() else {
            return;
        };
        self.open_password_dialog();
        let dialogs = window.global::<DialogAdapter>();
        dialogs.set_current_password(current.as_str().into());
        dialogs.set_new_password(new.as_str().into());
        dialogs.set_new_password_again(new.as_str().into());
        self.change_password();
    }

    /// The message box: returns whether the text was taken.
    pub fn send(&mut self, text: &str) -> bool {
        let Some(client) = &self.client else {
            return false;
        };
        match route_input(&self.model.selected().id, text) {
            Outgoing::Nothing => {}
            Outgoing::Submit(line) => client.submit(&line, self.model.command_room()),
            Outgoing::Direct { to, text } => client.send_direct(&to, &text),
            Outgoing::Quit => self.quit(),
        }
        true
    }

    pub fn select(&mut self, index: usize) {
        self.model.select(index);
        self.ask_for_side_panel();
        self.mark_read();
        self.refresh();
    }

    /// Opens the room browser (asking for the room list) or closes it.
    pub fn browse_rooms(&mut self, open: bool) {
        self.model.set_browsing(open);
        if let (true, Some(client)) = (open, &self.client) {
            client.submit("/list", self.model.command_room());
        }
        self.refresh();
    }

    /// Scrolled to the top of the open conversation (a room or a direct
    /// one): its next older page, unless one is on its way or the
    /// conversation's beginning is shown.
    pub fn load_older(&mut self) {
        let conversation = self.model.selected();
        if !conversation.has_older() || self.older_asked.as_ref() == Some(&conversation.id) {
            return;
        }
        let Some(client) = &self.client else {
            return;
        };
        match &conversation.id {
            ConversationId::Room(room) => client.submit(&format!("/history {OLDER_PAGE}"), room),
            ConversationId::Direct(partner) => client.submit(
                &format!("/history {partner} {OLDER_PAGE}"),
                self.model.command_room(),
            ),
        }
        self.older_asked = Some(conversation.id.clone());
    }

    /// Opens the devices page (asking for the list) or closes it.
    pub fn show_devices(&mut self, open: bool) {
        self.model.set_devices_open(open);
        if let (true, Some(client)) = (open, &self.client) {
            client.submit("/devices", self.model.command_room());
        }
        self.refresh();
    }

    /// Logs one of the user's other devices out (`id` in hex, as the page
    /// shows it), then lists them again.
    pub fn logout_device(&mut self, id: &str) {
        if let Some(client) = &self.client {
            let room = self.model.command_room().to_owned();
            client.submit(&format!("/logout-device {id}"), &room);
            client.submit("/devices", &room);
        }
    }

    /// Joins (or creates) a room from the browser or an invitation: the
    /// same as typing `/join #name`.
    pub fn join_room(&mut self, name: &str) {
        let name = name.trim();
        if name.is_empty() {
            return;
        }
        let room = if name.starts_with('#') {
            name.to_owned()
        } else {
            format!("#{name}")
        };
        if let Some(client) = &self.client {
            client.submit(&format!("/join {room}"), self.model.command_room());
        }
    }

    /// A member's action from the side panel: the same command typed in
    /// the open room (`/kick NAME`, …).
    pub fn moderate(&mut self, command: &str, name: &str) {
        const COMMANDS: [&str; 5] = ["kick", "ban", "mute", "op", "deop"];
        let Some(room) = self.model.selected().id.room() else {
            return;
        };
        if let (Some(client), true) = (&self.client, COMMANDS.contains(&command)) {
            client.submit(&format!("/{command} {name}"), room);
        }
    }

    pub fn open_direct(&mut self, name: &str) {
        self.model.open_direct(name);
        self.ask_for_side_panel();
        self.mark_read();
        self.refresh();
    }

    pub fn answer_trust(&mut self, trusted: bool) {
        if let Some(reply) = self.trust_reply.take() {
            let _ = reply.send(trusted);
        }
        self.screens.trust_answered(trusted);
        self.refresh();
    }

    /// The chat header's "Change password" button.
    pub fn open_password_dialog(&mut self) {
        self.password_dialog.open();
        self.refresh();
    }

    /// The dialog's Change button: check the form and send the change. The
    /// fields are emptied as soon as they are read, except the ones the
    /// user is asked to correct.
    pub fn change_password(&mut self) {
        let Some(window) = self.window.upgrade() else {
            return;
        };
        let dialogs = window.global::<DialogAdapter>();
        let current = Zeroizing::new(dialogs.get_current_password().to_string());
        let new = Zeroizing::new(dialogs.get_new_password().to_string());
        let again = Zeroizing::new(dialogs.get_new_password_again().to_string());
        match self.password_dialog.submit(current, new, again) {
            Submit::Send(change) => {
                crate::view::clear_password_fields(&dialogs, true);
                match &self.client {
                    Some(client) => client.change_password(change.current, change.new),
                    None => self
                        .password_dialog
                        .failed(&PasswordChangeError::NotConnected),
                }
            }
            Submit::Refused(problem) => {
                if problem.clears_new_passwords() {
                    crate::view::clear_password_fields(&dialogs, false);
                }
            }
            Submit::Ignored => {}
        }
        self.refresh();
    }

    /// The dialog's Cancel button (disabled while a change runs).
    /// The view empties the fields of a closed dialog.
    pub fn cancel_password_dialog(&mut self) {
        self.password_dialog.cancel();
        self.refresh();
    }

    /// Close button, `/quit`, SIGTERM: say goodbye, then end the program
    /// when `Closed` arrives or after [`GOODBYE_TIMEOUT`].
    pub fn quit(&mut self) {
        if self.screens.quit_requested() {
            if let Some(client) = &self.client {
                client.quit();
            }
            slint::Timer::single_shot(GOODBYE_TIMEOUT, || {
                let _ = slint::quit_event_loop();
            });
        } else {
            let _ = slint::quit_event_loop();
        }
        if let Some(window) = self.window.upgrade() {
            let _ = window.hide();
        }
    }

    pub fn refresh(&mut self) {
        if let Some(window) = self.window.upgrade() {
            self.view
                .update(&window, &self.screens, &self.model, &self.password_dialog);
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
