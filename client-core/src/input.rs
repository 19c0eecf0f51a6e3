//! What a user types in the message box: a room message or a command.

/// One line (or multi-line message) from the input box, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Text for the room.
    Room(String),
    /// `/msg NAME TEXT`.
    Direct { to: String, text: String },
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
  /msg NAME TEXT   send a direct message to NAME
  /who             list who is online
  /help            this list
  #exit or /quit   leave (everyone sees you go)
  //TEXT           send TEXT starting with a slash to the room
Anything else is sent to the room.";

/// Parses a line typed in the message box.
pub fn parse_input(line: &str) -> Input {
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return Input::Empty;
    }
    if trimmed == "#exit" {
        return Input::Quit;
    }
    if let Some(rest) = trimmed.strip_prefix("//") {
        return Input::Room(format!("/{rest}"));
    }
    let Some(command_line) = trimmed.strip_prefix('/') else {
        // Leading/trailing blank lines go; inner formatting stays.
        return Input::Room(line.trim_matches(|c| c == '\n' || c == '\r').to_owned());
    };
    let (command, args) = match command_line.split_once(char::is_whitespace) {
        Some((c, a)) => (c, a.trim_start()),
        None => (command_line, ""),
    };
    match command.to_ascii_lowercase().as_str() {
        "quit" | "exit" => Input::Quit,
        "who" => Input::Who,
        "help" | "?" => Input::Help,
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
        assert_eq!(parse_input("#exit"), Input::Quit);
        assert_eq!(parse_input("  /quit "), Input::Quit);
        assert_eq!(parse_input("/who"), Input::Who);
        assert_eq!(parse_input("/HELP"), Input::Help);
        assert_eq!(
            parse_input("/msg bob  hello there "),
            Input::Direct {
                to: "bob".into(),
                text: "hello there".into()
            }
        );
    }

    #[test]
    fn unknown_and_incomplete_commands_are_never_sent() {
        assert_eq!(parse_input("/shrug"), Input::Unknown("/shrug".into()));
        assert!(matches!(parse_input("/msg bob"), Input::Usage(_)));
        assert!(matches!(parse_input("/msg"), Input::Usage(_)));
        assert_eq!(parse_input("   "), Input::Empty);
    }

    #[test]
    fn everything_else_goes_to_the_room() {
        assert_eq!(parse_input("hello"), Input::Room("hello".into()));
        assert_eq!(
            parse_input("line one\nline two\n"),
            Input::Room("line one\nline two".into())
        );
        assert_eq!(
            parse_input("//not a command"),
            Input::Room("/not a command".into())
        );
        assert_eq!(parse_input("#exit now"), Input::Room("#exit now".into()));
    }
}
