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

/// The commands, for `/help` and for "unknown command" answers.
pub const HELP_TEXT: &str = "\
Commands:
  /join #ROOM      join ROOM (created, with you as owner, if it does not exist)
  /part [#ROOM]    leave ROOM (this room without a name)
  /list [FILTER]   list the public rooms whose name or topic contains FILTER
  /msg NAME TEXT   send a direct message to NAME
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
