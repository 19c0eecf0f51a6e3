//! This client's device: an id chosen at random once and kept in a file
//! beside the known-servers file (one per kind of client, so the desktop
//! client and the terminal client on one computer are two devices), and the
//! name the user sees in their device list.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use proto_core::message::DeviceName;
use rand_core::{OsRng, RngCore};

use crate::known_servers::KnownServers;

/// Which device this client is to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceIdentity {
    pub id: u64,
    pub name: DeviceName,
}

impl DeviceIdentity {
    /// The identity kept in `<known servers file>.device-<kind>` (the id in
    /// hex on the first line, the name given on the second), made (mode
    /// 0600) at first use. `name` renames the device and is remembered;
    /// without one, the remembered name, or "`kind` on `<host name>`".
    pub fn load_or_create(
        known: &KnownServers,
        kind: &str,
        name: Option<&str>,
    ) -> io::Result<Self> {
        let path = id_path(known.path(), kind);
        let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
        let (id, saved) = match fs::read_to_string(&path) {
            Ok(text) => {
                let mut lines = text.lines();
                let id = lines
                    .next()
                    .and_then(|l| u64::from_str_radix(l.trim(), 16).ok())
                    .ok_or_else(|| invalid("not a device id"))?;
                let saved = lines.next().and_then(|l| DeviceName::new(l).ok());
                (id, saved)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => (OsRng.next_u64().max(1), None),
            Err(e) => return Err(e),
        };
        let given = name
            .map(DeviceName::new)
            .transpose()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        if given.is_some() && given != saved || !path.exists() {
            save(&path, id, given.as_ref().or(saved.as_ref()))?;
        }
        let name = given.or(saved).unwrap_or_else(|| default_name(kind));
        Ok(Self { id, name })
    }
}

fn id_path(known: &Path, kind: &str) -> PathBuf {
    let mut name = known.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".device-{kind}"));
    known.with_file_name(name)
}

/// Writes the file whole: a temporary file, then a rename.
fn save(path: &Path, id: u64, name: Option<&DeviceName>) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    writeln!(file, "{id:016x}")?;
    if let Some(name) = name {
        writeln!(file, "{}", name.as_str())?;
    }
    file.sync_all()?;
    fs::rename(&tmp, path)
}

/// "`kind` on `<host name>`", cut to the name limit.
fn default_name(kind: &str) -> DeviceName {
    let host = fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_graphic()))
        .unwrap_or_else(|| "this computer".to_owned());
    let mut name = format!("{kind} on {host}");
    name.truncate(proto_core::message::MAX_DEVICE_NAME_BYTES);
    DeviceName::new(&name).unwrap_or_else(|_| DeviceName::new(kind).expect("a plain word"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_is_made_once_and_kept_per_kind_of_client() {
        let dir = tempfile::tempdir().unwrap();
        let known = KnownServers::at(dir.path().join("known_servers"));
        let a = DeviceIdentity::load_or_create(&known, "cli", Some("laptop")).unwrap();
        let b = DeviceIdentity::load_or_create(&known, "cli", None).unwrap();
        let gui = DeviceIdentity::load_or_create(&known, "desktop", None).unwrap();
        assert_eq!(a.id, b.id);
        assert_ne!(a.id, gui.id);
        assert_eq!(a.name.as_str(), "laptop");
        assert_eq!(b.name.as_str(), "laptop", "the name given once is kept");
        assert!(gui.name.as_str().starts_with("desktop on "));
        let renamed = DeviceIdentity::load_or_create(&known, "cli", Some("work laptop")).unwrap();
        assert_eq!((renamed.id, renamed.name.as_str()), (a.id, "work laptop"));
        let path = dir.path().join("known_servers.device-cli");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(DeviceIdentity::load_or_create(&known, "cli", Some("a\nb")).is_err());
    }
}
