//! What a user types in the message box: a message for the room being
//! shown, or a command.

/// One line (or multi-line message) from the input box, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Text for `room` (the one the user is looking at).
    Room { room: String, text: String },
    /// `/msg NAME TEXT`.
    Direct { to: String, text: String },
    /// `/join #ROOM`: join it, creating it (public, owned by the user) if
    /// there is no such room.
    Join(String),
    /// `/part [#ROOM]`: leave it (the room being shown without a name).
    Part(String),
    /// `/list [FILTER]`: public rooms (and the user's own).
    List(String),
    /// `/names [#ROOM]`: the members of a room (the room being shown
    /// without a name).
    Names(String),
    /// A moderator's command about `room` (the room being shown).
    Moderate { room: String, action: Moderation },
    /// A server administrator's command.
    Admin(AdminCommand),
    /// `/devices`: the user's devices.
    Devices,
    /// `/logout-device ID` (the hex id `/devices` shows).
    LogoutDevice(u64),
    /// `/history [#ROOM | NAME] [N]`: the N (default 50) messages of a
    /// conversation before the oldest this client has: the room being
    /// shown, the room named, or the direct conversation with NAME.
    History {
        conversation: crate::ConversationRef,
        count: u16,
    },
    /// The user has seen a conversation (the UI says when): up to
    /// `up_to_id`, or with `None` up to the newest message this client has
    /// of it. Moves the read marker every device of the user shares.
    MarkRead {
        conversation: crate::ConversationRef,
        up_to_id: Option<u64>,
    },
    /// `/who`.
    Who,
    /// `/help`.
    Help,
    /// `#exit` or `/quit`.
    Quit,
    /// A `/command` we do not know (never sent to the room).
    Unknown(String),
    /// `/msg` without a name or text.
    Usage(&'static str),
    /// Nothing but whitespace.
    Empty,
}

/// What a moderator asks (users and texts as typed; checked before sending).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Moderation {
    /// `/invite NAME`
    Invite(String),
    /// `/kick NAME [REASON]`
    Kick { user: String, reason: String },
    /// `/ban NAME [REASON]` (minutes 0: until unbanned), `/tempban NAME MINUTES [REASON]`
    Ban {
        user: String,
        minutes: u32,
        reason: String,
    },
    /// `/unban NAME`
    Unban(String),
    /// `/topic TEXT`
    Topic(String),
    /// `/mode +i` (true) or `/mode -i`
    InviteOnly(bool),
    /// `/op NAME` (true), `/deop NAME`
    Moderator { user: String, moderator: bool },
    /// `/mute NAME` (true), `/unmute NAME`
    Mute { user: String, muted: bool },
    /// `/deleteroom #ROOM` (the room must be named, so a slip cannot delete)
    Delete,
}

/// What a server administrator asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminCommand {
    /// `/disable NAME` (true), `/enable NAME`
    Disable { user: String, disabled: bool },
    /// `/endsessions NAME`
    EndSessions(String),
}

/// The commands, for `/help` and for "unknown command" answers.
pub const HELP_TEXT: &str = "\
Commands:
  /join #ROOM      join ROOM (created, with you as owner, if it does not exist)
  /part [#ROOM]    leave ROOM (this room without a name)
  /list [FILTER]   list the public rooms whose name or topic contains FILTER
  /names [#ROOM]   who is in ROOM (this room without a name), and who is online
  /msg NAME TEXT   send a direct message to NAME
  /history [#ROOM | NAME] [N]
                   the N (default 50) messages before the oldest you have of
                   this room, of ROOM, or of your direct conversation with NAME
Moderators of this room (the owner too):
  /topic TEXT      set the topic          /mode +i | -i    invite-only, or public
  /invite NAME     let NAME join          /kick NAME [REASON]
  /ban NAME [REASON]   /tempban NAME MINUTES [REASON]   /unban NAME
  /mute NAME  /unmute NAME
The owner:  /op NAME  /deop NAME (moderators)   /deleteroom #ROOM
Your devices:  /devices   /logout-device ID
Server administrators:  /disable NAME  /enable NAME  /endsessions NAME
  /who             list who is online
  /help            this list
  #exit or /quit   leave (everyone sees you go)
  //TEXT           send TEXT starting with a slash to the room
Anything else is sent to the room you are in.";

/// Parses a line typed in the message box while `room` is shown (plain
/// text and a bare `/part` are for it).
pub fn parse_input(line: &str, room: &str) -> Input {
    let say = |text: String| Input::Room {
        room: room.to_owned(),
        text,
    };
    let moderate = |action: Moderation| Input::Moderate {
        room: room.to_owned(),
        action,
    };
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return Input::Empty;
    }
    if trimmed == "#exit" {
        return Input::Quit;
    }
    if let Some(rest) = trimmed.strip_prefix("//") {
        return say(format!("/{rest}"));
    }
    let Some(command_line) = trimmed.strip_prefix('/') else {
        // Leading/trailing blank lines go; inner formatting stays.
        return say(line.trim_matches(|c| c == '\n' || c == '\r').to_owned());
    };
    let (command, args) = match command_line.split_once(char::is_whitespace) {
        Some((c, a)) => (c, a.trim_start()),
        None => (command_line, ""),
    };
    match command.to_ascii_lowercase().as_str() {
        "quit" | "exit" => Input::Quit,
        "who" => Input::Who,
        "help" | "?" => Input::Help,
        "join" | "j" => match args.split_whitespace().next() {
            Some(name) => Input::Join(name.to_owned()),
            None => Input::Usage("usage: /join #ROOM"),
        },
        "part" | "leave" => Input::Part(args.split_whitespace().next().unwrap_or(room).to_owned()),
        "list" => Input::List(args.trim().to_owned()),
        "names" | "members" => {
            Input::Names(args.split_whitespace().next().unwrap_or(room).to_owned())
        }
        "topic" if !args.trim().is_empty() => moderate(Moderation::Topic(args.trim().to_owned())),
        "topic" => Input::Usage("usage: /topic TEXT"),
        "mode" => match args.trim() {
            "+i" => moderate(Moderation::InviteOnly(true)),
            "-i" => moderate(Moderation::InviteOnly(false)),
            _ => Input::Usage("usage: /mode +i (invite-only) or /mode -i (public)"),
        },
        "invite" => one_name(args, "usage: /invite NAME", |u| {
            moderate(Moderation::Invite(u))
        }),
        "unban" => one_name(args, "usage: /unban NAME", |u| {
            moderate(Moderation::Unban(u))
        }),
        "op" | "deop" => {
            let moderator = command.eq_ignore_ascii_case("op");
            one_name(args, "usage: /op NAME or /deop NAME", |user| {
                moderate(Moderation::Moderator { user, moderator })
            })
        }
        "mute" | "unmute" => {
            let muted = command.eq_ignore_ascii_case("mute");
            one_name(args, "usage: /mute NAME or /unmute NAME", |user| {
                moderate(Moderation::Mute { user, muted })
            })
        }
        "kick" => match name_and_rest(args) {
            Some((user, reason)) => moderate(Moderation::Kick { user, reason }),
            None => Input::Usage("usage: /kick NAME [REASON]"),
        },
        "ban" => match name_and_rest(args) {
            Some((user, reason)) => moderate(Moderation::Ban {
                user,
                minutes: 0,
                reason,
            }),
            None => Input::Usage("usage: /ban NAME [REASON]"),
        },
        "tempban" => match name_and_rest(args).and_then(|(user, rest)| {
            let (minutes, reason) = rest.split_once(char::is_whitespace).unwrap_or((&rest, ""));
            let minutes: u32 = minutes.parse().ok().filter(|&m| m > 0)?;
            Some((user, minutes, reason.trim().to_owned()))
        }) {
            Some((user, minutes, reason)) => moderate(Moderation::Ban {
                user,
                minutes,
                reason,
            }),
            None => Input::Usage("usage: /tempban NAME MINUTES [REASON]"),
        },
        "deleteroom" => match args.split_whitespace().next() {
            Some(named) => Input::Moderate {
                room: named.to_owned(),
                action: Moderation::Delete,
            },
            None => Input::Usage("usage: /deleteroom #ROOM (the room's name, to be sure)"),
        },
        "disable" | "enable" => {
            let disabled = command.eq_ignore_ascii_case("disable");
            one_name(args, "usage: /disable NAME or /enable NAME", |user| {
                Input::Admin(AdminCommand::Disable { user, disabled })
            })
        }
        "endsessions" => one_name(args, "usage: /endsessions NAME", |user| {
            Input::Admin(AdminCommand::EndSessions(user))
        }),
        "devices" => Input::Devices,
        "history" => history(args, room),
        "logout-device" | "logoutdevice" => {
            match u64::from_str_radix(args.trim().trim_start_matches("0x"), 16) {
                Ok(id) if !args.trim().is_empty() => Input::LogoutDevice(id),
                _ => Input::Usage("usage: /logout-device ID (the id /devices shows)"),
            }
        }
        "msg" => match args.split_once(char::is_whitespace) {
            Some((to, text)) if !text.trim().is_empty() => Input::Direct {
                to: to.to_owned(),
                text: text.trim().to_owned(),
            },
            _ => Input::Usage("usage: /msg NAME TEXT"),
        },
        _ => Input::Unknown(format!("/{command}")),
    }
}

/// `/history [#ROOM | NAME] [N]`: a lone number is the count (a user
/// named with digits only is named with a count after it); a name without
/// `#` is a person.
fn history(args: &str, shown_room: &str) -> Input {
    const USAGE: &str = "usage: /history [#ROOM | NAME] [N], N from 1 to 200";
    let words: Vec<&str> = args.split_whitespace().collect();
    let (named, count) = match words[..] {
        [] => (None, None),
        [one] if one.bytes().all(|b| b.is_ascii_digit()) => (None, Some(one)),
        [one] => (Some(one), None),
        [named, count] => (Some(named), Some(count)),
        _ => return Input::Usage(USAGE),
    };
    let count = match count.map(str::parse::<u16>) {
        None => 50,
        Some(Ok(n)) if (1..=proto_core::message::MAX_HISTORY_PAGE).contains(&n) => n,
        Some(_) => return Input::Usage(USAGE),
    };
    let conversation = match named {
        None => crate::ConversationRef::Room(shown_room.to_owned()),
        Some(room) if room.starts_with('#') => crate::ConversationRef::Room(room.to_owned()),
        Some(partner) => crate::ConversationRef::Direct(partner.to_owned()),
    };
    Input::History {
        conversation,
        count,
    }
}

/// `NAME` alone.
fn one_name(args: &str, usage: &'static str, make: impl FnOnce(String) -> Input) -> Input {
    let mut words = args.split_whitespace();
    match (words.next(), words.next()) {
        (Some(name), None) => make(name.to_owned()),
        _ => Input::Usage(usage),
    }
}

/// `NAME [REST...]`.
fn name_and_rest(args: &str) -> Option<(String, String)> {
    let args = args.trim();
    if args.is_empty() {
        return None;
    }
    let (name, rest) = args.split_once(char::is_whitespace).unwrap_or((args, ""));
    Some((name.to_owned(), rest.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_recognised() {
        assert_eq!(parse_input("#exit", "#general"), Input::Quit);
        assert_eq!(parse_input("  /quit ", "#general"), Input::Quit);
        assert_eq!(parse_input("/who", "#general"), Input::Who);
        assert_eq!(parse_input("/HELP", "#general"), Input::Help);
        assert_eq!(
            parse_input("/join #rust", "#general"),
            Input::Join("#rust".into())
        );
        assert_eq!(parse_input("/part", "#rust"), Input::Part("#rust".into()));
        assert_eq!(
            parse_input("/part #general", "#rust"),
            Input::Part("#general".into())
        );
        assert_eq!(parse_input("/list ru", "#x"), Input::List("ru".into()));
        assert_eq!(parse_input("/list", "#x"), Input::List(String::new()));
        assert_eq!(
            parse_input("/msg bob  hello there ", "#general"),
            Input::Direct {
                to: "bob".into(),
                text: "hello there".into()
            }
        );
    }

    #[test]
    fn moderation_commands_name_the_room_being_shown() {
        let m = |action| Input::Moderate {
            room: "#den".into(),
            action,
        };
        assert_eq!(
            parse_input("/kick bob  spamming links", "#den"),
            m(Moderation::Kick {
                user: "bob".into(),
                reason: "spamming links".into()
            })
        );
        assert_eq!(
            parse_input("/ban bob", "#den"),
            m(Moderation::Ban {
                user: "bob".into(),
                minutes: 0,
                reason: String::new()
            })
        );
        assert_eq!(
            parse_input("/tempban bob 30 cool off", "#den"),
            m(Moderation::Ban {
                user: "bob".into(),
                minutes: 30,
                reason: "cool off".into()
            })
        );
        assert!(matches!(
            parse_input("/tempban bob soon", "#den"),
            Input::Usage(_)
        ));
        assert_eq!(
            parse_input("/topic Rust and crabs", "#den"),
            m(Moderation::Topic("Rust and crabs".into()))
        );
        assert_eq!(
            parse_input("/mode +i", "#den"),
            m(Moderation::InviteOnly(true))
        );
        assert!(matches!(parse_input("/mode +x", "#den"), Input::Usage(_)));
        assert_eq!(
            parse_input("/deop ann", "#den"),
            m(Moderation::Moderator {
                user: "ann".into(),
                moderator: false
            })
        );
        assert_eq!(
            parse_input("/unmute ann", "#den"),
            m(Moderation::Mute {
                user: "ann".into(),
                muted: false
            })
        );
        assert!(matches!(
            parse_input("/deleteroom", "#den"),
            Input::Usage(_)
        ));
        assert_eq!(
            parse_input("/deleteroom #other", "#den"),
            Input::Moderate {
                room: "#other".into(),
                action: Moderation::Delete
            }
        );
        assert_eq!(
            parse_input("/disable mallory", "#den"),
            Input::Admin(AdminCommand::Disable {
                user: "mallory".into(),
                disabled: true
            })
        );
        assert!(matches!(
            parse_input("/invite a b", "#den"),
            Input::Usage(_)
        ));
    }

    #[test]
    fn history_asks_for_older_messages_of_the_room_shown_or_the_one_named() {
        use crate::ConversationRef::{Direct, Room};
        let history = |conversation, count| Input::History {
            conversation,
            count,
        };
        assert_eq!(
            parse_input("/history", "#rust"),
            history(Room("#rust".into()), 50)
        );
        assert_eq!(
            parse_input("/history 200", "#rust"),
            history(Room("#rust".into()), 200)
        );
        assert!(matches!(
            parse_input("/history 201", "#rust"),
            Input::Usage(_)
        ));
        assert_eq!(
            parse_input("/history #general 10", "#rust"),
            history(Room("#general".into()), 10)
        );
        assert_eq!(
            parse_input("/history bob", "#rust"),
            history(Direct("bob".into()), 50),
            "a name without # is a person"
        );
        assert_eq!(
            parse_input("/history 42 5", "#rust"),
            history(Direct("42".into()), 5),
            "a user named with digits, then the count"
        );
        assert!(matches!(
            parse_input("/history bob 0", "#rust"),
            Input::Usage(_)
        ));
        assert!(matches!(
            parse_input("/history bob 5 more", "#rust"),
            Input::Usage(_)
        ));
    }

    #[test]
    fn names_asks_about_the_room_shown_or_the_one_named() {
        assert_eq!(parse_input("/names", "#den"), Input::Names("#den".into()));
        assert_eq!(
            parse_input("/names #rust", "#den"),
            Input::Names("#rust".into())
        );
    }

    #[test]
    fn device_commands_are_recognised() {
        assert_eq!(parse_input("/devices", "#den"), Input::Devices);
        assert_eq!(
            parse_input("/logout-device 00ff", "#den"),
            Input::LogoutDevice(255)
        );
        assert!(matches!(
            parse_input("/logout-device", "#den"),
            Input::Usage(_)
        ));
        assert!(matches!(
            parse_input("/logout-device xyz", "#den"),
            Input::Usage(_)
        ));
    }

    #[test]
    fn unknown_and_incomplete_commands_are_never_sent() {
        assert_eq!(
            parse_input("/shrug", "#general"),
            Input::Unknown("/shrug".into())
        );
        assert!(matches!(parse_input("/msg bob", "#g"), Input::Usage(_)));
        assert!(matches!(parse_input("/msg", "#g"), Input::Usage(_)));
        assert!(matches!(parse_input("/join", "#g"), Input::Usage(_)));
        assert_eq!(parse_input("   ", "#g"), Input::Empty);
    }

    #[test]
    fn everything_else_goes_to_the_room_being_shown() {
        let room = |text: &str| Input::Room {
            room: "#rust".into(),
            text: text.into(),
        };
        assert_eq!(parse_input("hello", "#rust"), room("hello"));
        assert_eq!(
            parse_input("line one\nline two\n", "#rust"),
            room("line one\nline two")
        );
        assert_eq!(
            parse_input("//not a command", "#rust"),
            room("/not a command")
        );
        assert_eq!(parse_input("#exit now", "#rust"), room("#exit now"));
    }
}
