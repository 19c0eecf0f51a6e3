//! Each user's devices: the cap on how many one user may log in from, what the device
//! list shows (name, last seen, address), and logging one out. The table lives in
//! memory; its journal is a [`DeviceJournal`] (the file backend's is
//! `storage::devices_log`).

use std::sync::{Mutex, PoisonError};

use proto_core::message::{DeviceInfo, DeviceName};

use crate::storage::devices_log::{self, DeviceEvent, DeviceTable, DevicesLog};
use crate::storage::{DeviceJournal, HistoryError};

/// The name a device gets when its client gave none.
pub const UNNAMED_DEVICE: &str = "unnamed device";

/// Why a device may not log in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    #[error("logged in on {0} devices already: log one out first")]
    TooMany(usize),
    #[error("the device list could not be saved")]
    Storage,
}

/// The devices of every user.
pub struct Devices {
    inner: Mutex<Inner>,
    max_per_user: usize,
}

struct Inner {
    table: DeviceTable,
    /// Boxed once at start.
    log: Box<dyn DeviceJournal>,
}

impl Devices {
    /// Opens the file backend's journal at `path`.
    pub fn open(
        path: &std::path::Path,
        storage_key: &[u8; 32],
        max_per_user: usize,
    ) -> Result<Self, HistoryError> {
        Self::with_journal(
            DevicesLog::open_keeping_table(path, storage_key)?,
            max_per_user,
        )
    }

    /// The devices `log` holds (read once, now).
    pub fn with_journal(
        mut log: impl DeviceJournal + 'static,
        max_per_user: usize,
    ) -> Result<Self, HistoryError> {
        let table = log.table()?;
        Ok(Self {
            inner: Mutex::new(Inner {
                table,
                log: Box::new(log),
            }),
            max_per_user,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A login of `user` from device `id` at `now_ms`: refused if it is a new
    /// device and the user has `max_per_user` already; else recorded as seen
    /// (with `name`, or the name it had, from `address`).
    pub fn admit(
        &self,
        user: &str,
        id: u64,
        name: Option<&DeviceName>,
        address: &str,
        now_ms: u64,
    ) -> Result<(), DeviceError> {
        let mut inner = self.lock();
        let devices = inner.table.get(user);
        let known = devices.and_then(|d| d.get(&id));
        if known.is_none() && devices.map_or(0, |d| d.len()) >= self.max_per_user {
            return Err(DeviceError::TooMany(self.max_per_user));
        }
        let name = match (name, known) {
            (Some(name), _) => name.as_str().to_owned(),
            (None, Some(known)) => known.name.clone(),
            (None, None) => UNNAMED_DEVICE.to_owned(),
        };
        let event = DeviceEvent::Seen {
            user: user.to_owned(),
            id,
            name,
            at_ms: now_ms,
            address: address.to_owned(),
        };
        record(&mut inner, &event, false)
    }

    /// The session of `user`'s device `id` ended at `now_ms` (its last seen).
    pub fn seen(&self, user: &str, id: u64, now_ms: u64) {
        let mut inner = self.lock();
        let Some(known) = inner.table.get(user).and_then(|d| d.get(&id)).cloned() else {
            return;
        };
        let event = DeviceEvent::Seen {
            user: user.to_owned(),
            id,
            name: known.name,
            at_ms: now_ms,
            address: known.address,
        };
        let _ = record(&mut inner, &event, false);
    }

    /// Renames a device (the client sent `SetDevice` again).
    pub fn rename(&self, user: &str, id: u64, name: &DeviceName) -> Result<(), DeviceError> {
        let mut inner = self.lock();
        let Some(known) = inner.table.get(user).and_then(|d| d.get(&id)).cloned() else {
            return Ok(());
        };
        let event = DeviceEvent::Seen {
            user: user.to_owned(),
            id,
            name: name.as_str().to_owned(),
            at_ms: known.last_seen_ms,
            address: known.address,
        };
        record(&mut inner, &event, true)
    }

    /// `user`'s devices for `DeviceList`, `online` and `current` as given.
    pub fn list(&self, user: &str, online: &[u64], current: u64) -> Vec<DeviceInfo> {
        let inner = self.lock();
        let Some(devices) = inner.table.get(user) else {
            return Vec::new();
        };
        devices
            .iter()
            .map(|(id, record)| DeviceInfo {
                id: *id,
                name: DeviceName::new(&record.name)
                    .unwrap_or_else(|_| DeviceName::new(UNNAMED_DEVICE).expect("a valid name")),
                last_seen_ms: record.last_seen_ms,
                address: record.address.clone(),
                online: online.contains(id),
                current: *id == current,
            })
            .collect()
    }

    /// Forgets device `id` of `user` (logged out), durably; false if unknown.
    pub fn forget(&self, user: &str, id: u64) -> Result<bool, DeviceError> {
        let mut inner = self.lock();
        if !inner.table.get(user).is_some_and(|d| d.contains_key(&id)) {
            return Ok(false);
        }
        let event = DeviceEvent::Forgotten {
            user: user.to_owned(),
            id,
        };
        record(&mut inner, &event, true).map(|()| true)
    }

    /// Forgets every device of `user` (an administrator ended its sessions).
    pub fn forget_all(&self, user: &str) -> Result<(), DeviceError> {
        let mut inner = self.lock();
        if !inner.table.contains_key(user) {
            return Ok(());
        }
        let event = DeviceEvent::ForgottenAll {
            user: user.to_owned(),
        };
        record(&mut inner, &event, true)
    }
}

fn record(inner: &mut Inner, event: &DeviceEvent, durable: bool) -> Result<(), DeviceError> {
    inner.log.append(event, durable).map_err(|e| {
        tracing::error!(error = %e, "device journal append failed");
        DeviceError::Storage
    })?;
    devices_log::apply(&mut inner.table, event);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> DeviceName {
        DeviceName::new(s).unwrap()
    }

    #[test]
    fn a_new_device_over_the_cap_is_refused_and_a_known_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let devices = Devices::open(&dir.path().join("devices.log"), &[1; 32], 2).unwrap();
        devices
            .admit("alice", 1, Some(&name("laptop")), "192.0.2.1", 10)
            .unwrap();
        devices.admit("alice", 2, None, "192.0.2.2", 20).unwrap();
        assert_eq!(
            devices.admit("alice", 3, Some(&name("tablet")), "192.0.2.3", 30),
            Err(DeviceError::TooMany(2))
        );
        devices.admit("alice", 1, None, "192.0.2.9", 40).unwrap();
        devices.admit("bob", 3, None, "192.0.2.3", 30).unwrap();
        let list = devices.list("alice", &[2], 1);
        assert_eq!(list.len(), 2);
        assert_eq!(
            (
                list[0].name.as_str(),
                list[0].address.as_str(),
                list[0].last_seen_ms
            ),
            ("laptop", "192.0.2.9", 40),
            "the name is kept, the address and time follow the login"
        );
        assert!(list[0].current && !list[0].online);
        assert_eq!(list[1].name.as_str(), UNNAMED_DEVICE);
        assert!(list[1].online && !list[1].current);
        // Logging one out makes room.
        assert_eq!(devices.forget("alice", 2), Ok(true));
        assert_eq!(devices.forget("alice", 2), Ok(false));
        devices.admit("alice", 3, None, "192.0.2.3", 50).unwrap();
    }

    #[test]
    fn the_device_list_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("devices.log");
        let devices = Devices::open(&path, &[1; 32], 10).unwrap();
        devices
            .admit("alice", 7, Some(&name("phone")), "::1", 5)
            .unwrap();
        devices.rename("alice", 7, &name("old phone")).unwrap();
        devices.seen("alice", 7, 9);
        drop(devices);
        let devices = Devices::open(&path, &[1; 32], 10).unwrap();
        let list = devices.list("alice", &[], 0);
        assert_eq!(
            (list[0].name.as_str(), list[0].last_seen_ms),
            ("old phone", 9)
        );
        devices.forget_all("alice").unwrap();
        assert!(devices.list("alice", &[], 0).is_empty());
    }
}
