//! The known-servers file: which key each server proved at first contact,
//! like OpenSSH's known_hosts. One line per server, `host:port SHA256:…`;
//! `#` starts a comment. Written atomically (temp file, fsync, rename), in
//! a directory only the user can read.
//!
//! Beside it, `<file>.opaque`: the accounts seen logging in with OPAQUE on
//! each server, one `host:port canonical-username` per line. A server that
//! later asks such an account for its password in the version-1 form is
//! refused (PROTOCOL.md §7b, SECURITY.md "Passwords and OPAQUE").

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use proto_core::Fingerprint;

use crate::address::ServerAddress;

/// Where pins are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownServers {
    path: PathBuf,
}

impl KnownServers {
    /// `<config dir>/securechat/known_servers` (XDG on Linux:
    /// `~/.config/securechat/known_servers`); `./known_servers` if no home.
    pub fn default_location() -> Self {
        let path = directories::ProjectDirs::from("", "", "securechat")
            .map(|d| d.config_dir().join("known_servers"))
            .unwrap_or_else(|| PathBuf::from("known_servers"));
        Self { path }
    }

    /// A file of one's choosing (tests, `--known-servers`).
    pub fn at(path: PathBuf) -> Self {
        Self { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> io::Result<String> {
        match fs::read_to_string(&self.path) {
            Ok(s) => Ok(s),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(e),
        }
    }

    /// The pinned fingerprint of `server`, if any.
    pub fn get(&self, server: &ServerAddress) -> io::Result<Option<Fingerprint>> {
        let key = server.to_string();
        for line in self.read()?.lines() {
            let line = line.trim();
            if line.starts_with('#') {
                continue;
            }
            let mut parts = line.split_whitespace();
            if parts.next() == Some(key.as_str()) {
                let fp = parts.next().and_then(|f| f.parse().ok()).ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: bad line for {key}", self.path.display()),
                    )
                })?;
                return Ok(Some(fp));
            }
        }
        Ok(None)
    }

    /// Pins `fingerprint` for `server`. Only called after the user said yes
    /// (or gave the fingerprint); an existing pin is never replaced here:
    /// changing one is the user's deliberate edit.
    pub fn pin(&self, server: &ServerAddress, fingerprint: &Fingerprint) -> io::Result<()> {
        if self.get(server)?.is_some() {
            return Ok(());
        }
        let mut text = self.read()?;
        if text.is_empty() {
            text.push_str("# SecureChat known servers: host:port fingerprint\n");
        } else if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!("{server} {fingerprint}\n"));
        self.write_atomically(text.as_bytes())
    }

    fn opaque_path(&self) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_owned();
        name.push(".opaque");
        self.path.with_file_name(name)
    }

    /// Whether `canonical` has logged in with OPAQUE on `server` from here.
    pub fn is_opaque_account(&self, server: &ServerAddress, canonical: &str) -> io::Result<bool> {
        let text = match fs::read_to_string(self.opaque_path()) {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let key = server.to_string();
        Ok(text.lines().any(|line| {
            let mut parts = line.split_whitespace();
            parts.next() == Some(key.as_str()) && parts.next() == Some(canonical)
        }))
    }

    /// Remembers that `canonical` logged in with OPAQUE on `server`.
    pub fn remember_opaque_account(
        &self,
        server: &ServerAddress,
        canonical: &str,
    ) -> io::Result<()> {
        if self.is_opaque_account(server, canonical)? {
            return Ok(());
        }
        let path = self.opaque_path();
        let mut text = match fs::read_to_string(&path) {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                "# SecureChat: accounts seen logging in with OPAQUE: host:port username\n"
                    .to_owned()
            }
            Err(e) => return Err(e),
        };
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!("{server} {canonical}\n"));
        write_atomically(&path, text.as_bytes())
    }

    fn write_atomically(&self, bytes: &[u8]) -> io::Result<()> {
        write_atomically(&self.path, bytes)
    }
}

/// Writes `path` atomically (temp file, fsync, rename, fsync of the
/// directory, which is created 0700 if missing; the file is 0600).
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto_core::ServerIdentity;

    fn fp(seed: u8) -> Fingerprint {
        ServerIdentity::from_seed(&[seed; 32])
            .public_key()
            .fingerprint()
    }

    #[test]
    fn pins_are_per_host_and_port_and_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let ks = KnownServers::at(dir.path().join("sub/known_servers"));
        let a: ServerAddress = "example.org:1".parse().unwrap();
        let b: ServerAddress = "example.org:2".parse().unwrap();
        assert_eq!(ks.get(&a).unwrap(), None);
        ks.pin(&a, &fp(1)).unwrap();
        ks.pin(&b, &fp(2)).unwrap();
        ks.pin(&a, &fp(3)).unwrap();
        assert_eq!(ks.get(&a).unwrap(), Some(fp(1)));
        assert_eq!(ks.get(&b).unwrap(), Some(fp(2)));
        let text = fs::read_to_string(ks.path()).unwrap();
        assert!(text.contains(&format!("example.org:1 {}", fp(1))));
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(ks.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0);
    }

    #[test]
    fn opaque_accounts_are_remembered_per_server_and_name() {
        let dir = tempfile::tempdir().unwrap();
        let ks = KnownServers::at(dir.path().join("known_servers"));
        let a: ServerAddress = "example.org:1".parse().unwrap();
        let b: ServerAddress = "example.org:2".parse().unwrap();
        assert!(!ks.is_opaque_account(&a, "alice").unwrap());
        ks.remember_opaque_account(&a, "alice").unwrap();
        ks.remember_opaque_account(&a, "alice").unwrap();
        assert!(ks.is_opaque_account(&a, "alice").unwrap());
        assert!(!ks.is_opaque_account(&b, "alice").unwrap());
        assert!(!ks.is_opaque_account(&a, "bob").unwrap());
        let text = fs::read_to_string(dir.path().join("known_servers.opaque")).unwrap();
        assert_eq!(text.matches("example.org:1 alice").count(), 1);
        // The pins are untouched.
        assert_eq!(ks.get(&a).unwrap(), None);
    }

    #[test]
    fn a_damaged_line_is_an_error_not_a_silent_first_use() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_servers");
        fs::write(&path, "example.org:1 garbage\n").unwrap();
        let ks = KnownServers::at(path);
        assert!(ks.get(&"example.org:1".parse().unwrap()).is_err());
    }
}
