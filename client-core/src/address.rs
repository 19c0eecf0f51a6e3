//! `host:port` of a server, as typed by a user and as keyed in the
//! known-servers file.

use std::fmt;
use std::str::FromStr;

/// The port used when an address names none (the server's default).
pub const DEFAULT_PORT: u16 = 7878;

/// A server's host name (or IP literal) and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerAddress {
    pub host: String,
    pub port: u16,
}

/// An address that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid server address {0:?}: expected host, host:port or [ipv6]:port")]
pub struct InvalidAddress(pub String);

impl FromStr for ServerAddress {
    type Err = InvalidAddress;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidAddress(s.to_owned());
        let s = s.trim();
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            // [v6] or [v6]:port
            let (host, after) = rest.split_once(']').ok_or_else(bad)?;
            match after.strip_prefix(':') {
                Some(p) => (host, Some(p)),
                None if after.is_empty() => (host, None),
                None => return Err(bad()),
            }
        } else {
            match s.rsplit_once(':') {
                // A bare IPv6 literal has several colons: no port.
                Some((h, _)) if h.contains(':') => (s, None),
                Some((h, p)) => (h, Some(p)),
                None => (s, None),
            }
        };
        let port = match port {
            Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad)?,
            None => DEFAULT_PORT,
        };
        let valid_host = !host.is_empty()
            && host.len() <= 253
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'));
        if !valid_host {
            return Err(bad());
        }
        Ok(Self {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

impl fmt::Display for ServerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_people_type() {
        let a: ServerAddress = "chat.example.org".parse().unwrap();
        assert_eq!(
            (a.host.as_str(), a.port),
            ("chat.example.org", DEFAULT_PORT)
        );
        let a: ServerAddress = "Chat.Example.org:9000".parse().unwrap();
        assert_eq!(a.to_string(), "chat.example.org:9000");
        let a: ServerAddress = "[::1]:7000".parse().unwrap();
        assert_eq!((a.host.as_str(), a.port), ("::1", 7000));
        assert_eq!(a.to_string(), "[::1]:7000");
        let a: ServerAddress = "::1".parse().unwrap();
        assert_eq!(a.port, DEFAULT_PORT);
    }

    #[test]
    fn refuses_nonsense() {
        for s in [
            "",
            ":80",
            "host:0",
            "host:99999",
            "ho st",
            "host:port",
            "[::1",
            "a\nb:1",
        ] {
            assert!(s.parse::<ServerAddress>().is_err(), "{s:?}");
        }
    }
}
