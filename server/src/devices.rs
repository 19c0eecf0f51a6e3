//! Each user's devices: the cap on how many one user may log in from, what the device
//! list shows (name, last seen, address), and logging one out. The table lives in
//! memory; its journal is a [`DeviceJournal`] (the file backend's is
//! `storage::devices_log`).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

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
///
/// A login and a session's end only move a device's "last seen" (and, for
/// a new device, add it): those change the table at once and are written
/// to the journal in batches, by [`flush`](Self::flush) (the server calls
/// it every second, off the runtime, and at shutdown) or ahead of the next
/// durable change. So 19,000 sessions ending at once cost no `write(2)` on
/// the runtime's threads, and a crash loses at most the last second's
/// "last seen" times. Renames and logouts are written (fsynced) before
/// they answer.
pub struct Devices {
    state: Mutex<State>,
    /// The journal. Lock order: `log`, then `state`. What only changes the
    /// table takes `state` alone, so it never waits for a write.
    log: Mutex<Box<dyn DeviceJournal>>,
    max_per_user: usize,
}

struct State {
    table: DeviceTable,
    /// The devices whose record in `table` the journal does not have yet.
    unwritten: HashMap<String, BTreeSet<u64>>,
}

impl State {
    fn mark(&mut self, user: &str, id: u64) {
        match self.unwritten.get_mut(user) {
            Some(ids) => {
                ids.insert(id);
            }
            None => {
                self.unwritten.insert(user.to_owned(), BTreeSet::from([id]));
            }
        }
    }

    /// The unwritten records, as events, and forgets they were unwritten.
    fn take_unwritten(&mut self) -> Vec<DeviceEvent> {
        let unwritten = std::mem::take(&mut self.unwritten);
        let mut events = Vec::new();
        for (user, ids) in unwritten {
            let Some(devices) = self.table.get(&user) else {
                continue;
            };
            for id in ids {
                if let Some(record) = devices.get(&id) {
                    events.push(DeviceEvent::Seen {
                        user: user.clone(),
                        id,
                        name: record.name.clone(),
                        at_ms: record.last_seen_ms,
                        address: record.address.clone(),
                    });
                }
            }
        }
        events
    }

    /// After a failed write: `events` are unwritten again.
    fn remark(&mut self, events: &[DeviceEvent]) {
        for event in events {
            if let DeviceEvent::Seen { user, id, .. } = event {
                self.mark(user, *id);
            }
        }
    }
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
            state: Mutex::new(State {
                table,
                unwritten: HashMap::new(),
            }),
            log: Mutex::new(Box::new(log)),
            max_per_user,
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn log(&self) -> MutexGuard<'_, Box<dyn DeviceJournal>> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A login of `user` from device `id` at `now_ms`: refused if it is a new
    /// device and the user has `max_per_user` already; else recorded as seen
    /// (with `name`, or the name it had, from `address`; written with the
    /// next batch).
    pub fn admit(
        &self,
        user: &str,
        id: u64,
        name: Option<&DeviceName>,
        address: &str,
        now_ms: u64,
    ) -> Result<(), DeviceError> {
        let mut state = self.state();
        let devices = state.table.get(user);
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
        devices_log::apply(&mut state.table, &event);
        state.mark(user, id);
        Ok(())
    }

    /// The session of `user`'s device `id` ended at `now_ms` (its last seen;
    /// written with the next batch).
    pub fn seen(&self, user: &str, id: u64, now_ms: u64) {
        let mut state = self.state();
        let Some(record) = state.table.get_mut(user).and_then(|d| d.get_mut(&id)) else {
            return;
        };
        record.last_seen_ms = now_ms;
        state.mark(user, id);
    }

    /// Writes the records changed since the last write, in one batch (one
    /// `write(2)`, no fsync). Blocking: call it off the runtime.
    pub fn flush(&self) -> Result<(), DeviceError> {
        let mut log = self.log();
        let events = self.state().take_unwritten();
        if events.is_empty() {
            return Ok(());
        }
        log.append_batch(&events, false).map_err(|e| {
            tracing::error!(error = %e, "device journal append failed");
            self.state().remark(&events);
            DeviceError::Storage
        })
    }

    /// Renames a device (the client sent `SetDevice` again).
    pub fn rename(&self, user: &str, id: u64, name: &DeviceName) -> Result<(), DeviceError> {
        self.change_durably(|table| {
            let known = table.get(user).and_then(|d| d.get(&id))?;
            Some(DeviceEvent::Seen {
                user: user.to_owned(),
                id,
                name: name.as_str().to_owned(),
                at_ms: known.last_seen_ms,
                address: known.address.clone(),
            })
        })
        .map(|_| ())
    }

    /// `user`'s devices for `DeviceList`, `online` and `current` as given.
    pub fn list(&self, user: &str, online: &[u64], current: u64) -> Vec<DeviceInfo> {
        let state = self.state();
        let Some(devices) = state.table.get(user) else {
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
        self.change_durably(|table| {
            table
                .get(user)
                .is_some_and(|d| d.contains_key(&id))
                .then(|| DeviceEvent::Forgotten {
                    user: user.to_owned(),
                    id,
                })
        })
    }

    /// Forgets every device of `user` (an administrator ended its sessions).
    pub fn forget_all(&self, user: &str) -> Result<(), DeviceError> {
        self.change_durably(|table| {
            table.contains_key(user).then(|| DeviceEvent::ForgottenAll {
                user: user.to_owned(),
            })
        })
        .map(|_| ())
    }

    /// The change `event_for` makes of the table (none: `Ok(false)`),
    /// fsynced behind the records not yet written, then applied. Both locks
    /// are held throughout, so the journal's order is the table's.
    fn change_durably(
        &self,
        event_for: impl FnOnce(&DeviceTable) -> Option<DeviceEvent>,
    ) -> Result<bool, DeviceError> {
        let mut log = self.log();
        let mut state = self.state();
        let Some(event) = event_for(&state.table) else {
            return Ok(false);
        };
        let mut events = state.take_unwritten();
        events.push(event);
        if let Err(e) = log.append_batch(&events, true) {
            tracing::error!(error = %e, "device journal append failed");
            state.remark(&events);
            return Err(DeviceError::Storage);
        }
        let event = events.last().expect("just pushed");
        devices_log::apply(&mut state.table, event);
        Ok(true)
    }
}

impl Drop for Devices {
    /// What the last second changed is written when the server stops.
    fn drop(&mut self) {
        let _ = self.flush();
    }
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

    /// A batch written, and whether durably.
    type Write = (Vec<DeviceEvent>, bool);

    /// A journal that records what reaches it.
    #[derive(Clone, Default)]
    struct Recorded(std::sync::Arc<Mutex<Vec<Write>>>);

    impl DeviceJournal for Recorded {
        fn table(&mut self) -> Result<DeviceTable, HistoryError> {
            Ok(DeviceTable::new())
        }
        fn append(&mut self, event: &DeviceEvent, durable: bool) -> Result<(), HistoryError> {
            self.append_batch(std::slice::from_ref(event), durable)
        }
        fn append_batch(
            &mut self,
            events: &[DeviceEvent],
            durable: bool,
        ) -> Result<(), HistoryError> {
            self.0.lock().unwrap().push((events.to_vec(), durable));
            Ok(())
        }
    }

    fn seen_at(event: &DeviceEvent) -> (&str, u64, u64) {
        match event {
            DeviceEvent::Seen {
                user, id, at_ms, ..
            } => (user, *id, *at_ms),
            other => panic!("expected Seen, got {other:?}"),
        }
    }

    #[test]
    fn logins_and_session_ends_are_written_in_one_batch_and_shown_at_once() {
        let journal = Recorded::default();
        let devices = Devices::with_journal(journal.clone(), 10).unwrap();
        devices.admit("alice", 1, None, "192.0.2.1", 10).unwrap();
        devices.admit("bob", 2, None, "192.0.2.2", 11).unwrap();
        devices.seen("alice", 1, 20);
        devices.seen("alice", 1, 30);
        devices.seen("carol", 3, 30); // unknown: nothing
        assert!(journal.0.lock().unwrap().is_empty(), "nothing written yet");
        assert_eq!(devices.list("alice", &[], 1)[0].last_seen_ms, 30);

        devices.flush().unwrap();
        let mut written = journal.0.lock().unwrap().clone();
        assert_eq!(written.len(), 1, "one batch");
        let (batch, durable) = written.remove(0);
        assert!(!durable);
        let mut seen: Vec<_> = batch.iter().map(seen_at).collect();
        seen.sort_unstable();
        assert_eq!(
            seen,
            [("alice", 1, 30), ("bob", 2, 11)],
            "the latest, once each"
        );
        devices.flush().unwrap();
        assert_eq!(journal.0.lock().unwrap().len(), 1, "nothing more to write");
    }

    #[test]
    fn a_durable_change_is_written_behind_what_was_unwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("devices.log");
        let devices = Devices::open(&path, &[1; 32], 10).unwrap();
        devices.admit("alice", 1, None, "::1", 5).unwrap();
        devices.admit("alice", 2, None, "::1", 6).unwrap();
        devices.seen("alice", 2, 7);
        // Logging device 1 out writes both logins first, then the logout:
        // read back without any flush, the journal has them in that order.
        assert_eq!(devices.forget("alice", 1), Ok(true));
        let (_, table) = DevicesLog::open(&path, &[1; 32]).unwrap();
        let alice = &table["alice"];
        assert_eq!(alice.keys().copied().collect::<Vec<_>>(), [2]);
        assert_eq!(alice[&2].last_seen_ms, 7);
        drop(devices);
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
