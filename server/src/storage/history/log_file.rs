//! One append-only log file of sealed records (see `record_codec`): scanned once when
//! its conversation is loaded, appended to after that.
//!
//! A torn last record (cut short, or the last record failing authentication) is what a
//! crash mid-append leaves: it is skipped with a warning and truncated away by the next
//! append. Any other record that fails authentication or does not parse is
//! [`HistoryError::Corrupt`]. Before dropping a torn tail the reader checks that it is
//! not an earlier record whose length had one bit flipped (that would hide real
//! records): that is `Corrupt` too. Dropping whole records from the end cannot be
//! detected (like rollback). A wrong storage key makes a one-record log look torn, so
//! the server must open the credential store (which fails with `Corrupt` under a wrong
//! key) before this.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use ring::aead::LessSafeKey;
use ring::rand::SystemRandom;
use zeroize::Zeroizing;

use super::record_codec::{self, LEN_PREFIX, MAX_RECORD_LEN};
use crate::storage::atomic_file::{self, PRIVATE_FILE_MODE};
use crate::storage::error::HistoryError;

/// How far an append goes before it returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Durability {
    /// One `write(2)` per append: survives a crash of the server process; a power loss
    /// loses the appends since the last fsync (`HistoryStore::flush`, or the server's
    /// periodic one through `HistoryStore::take_unsynced`).
    #[default]
    WriteThrough,
    /// Also fdatasync per append: survives power loss, at a few ms per append.
    SyncEachAppend,
    /// Appends are buffered in memory until `HistoryStore::flush`: even a crash of
    /// the process loses the unflushed interval.
    Buffered,
}

/// Capacity of the write buffer an open log keeps between appends; a larger one (a long
/// message) is released after the write.
pub(super) const WRITE_BUFFER_KEPT: usize = 4 * 1024;

/// A record whose plaintext the caller could not parse: the log is corrupt there.
pub(in crate::storage) struct Unparsable;

/// One log file: its key, write position and (when open) handle.
pub(in crate::storage) struct LogFile {
    path: PathBuf,
    id: String,
    key: LessSafeKey,
    file: Option<File>,
    next_index: u64,
    valid_len: u64,
    /// Bytes past `valid_len` (a torn tail) to truncate before the next write.
    torn: bool,
    /// Sealed records not yet written (Buffered durability).
    pending: Vec<u8>,
    /// Written since the last fsync.
    dirty: bool,
}

impl LogFile {
    pub(in crate::storage) fn new(path: PathBuf, id: String, key: LessSafeKey) -> Self {
        Self {
            path,
            id,
            key,
            file: None,
            next_index: 0,
            valid_len: 0,
            torn: false,
            pending: Vec::new(),
            dirty: false,
        }
    }

    pub(super) fn path(&self) -> &PathBuf {
        &self.path
    }

    pub(super) fn is_open(&self) -> bool {
        self.file.is_some()
    }

    pub(in crate::storage) fn corrupt(&self, index: u64) -> HistoryError {
        HistoryError::Corrupt {
            path: self.path.clone(),
            index,
        }
    }

    fn io_err(&self) -> impl Fn(io::Error) -> HistoryError + '_ {
        |source| HistoryError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Authenticates every record, calling `on_record(index, plaintext)` for each, and
    /// sets the write position. A missing file is an empty log.
    pub(in crate::storage) fn scan(
        &mut self,
        mut on_record: impl FnMut(u64, &[u8]) -> Result<(), Unparsable>,
    ) -> Result<(), HistoryError> {
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(self.io_err()(e)),
        };
        let file_len = file.metadata().map_err(self.io_err())?.len();
        let mut reader = BufReader::with_capacity(64 * 1024, file);
        let mut buf = Zeroizing::new(Vec::new());
        let (mut pos, mut index) = (0u64, 0u64);
        loop {
            let remaining = file_len - pos;
            if remaining == 0 {
                break;
            }
            let mut len_bytes = [0u8; LEN_PREFIX];
            if remaining < LEN_PREFIX as u64 {
                self.note_torn(index, pos, file_len);
                break;
            }
            reader.read_exact(&mut len_bytes).map_err(self.io_err())?;
            let Some(len) = record_codec::body_len(len_bytes) else {
                return Err(self.corrupt(index));
            };
            let end = pos + LEN_PREFIX as u64 + len;
            if end > file_len {
                self.check_torn_is_not_a_flipped_length(index, pos, file_len, len)?;
                self.note_torn(index, pos, file_len);
                break;
            }
            let is_last = end == file_len;
            buf.resize(len as usize, 0);
            reader.read_exact(&mut buf[..]).map_err(self.io_err())?;
            match record_codec::decode(&self.key, &self.id, index, &mut buf[..]) {
                Some(plaintext) => on_record(index, plaintext).map_err(|_| self.corrupt(index))?,
                None if is_last => {
                    self.check_torn_is_not_a_flipped_length(index, pos, file_len, len)?;
                    self.note_torn(index, pos, file_len);
                    break;
                }
                None => return Err(self.corrupt(index)),
            }
            pos = end;
            index += 1;
        }
        self.next_index = index;
        self.valid_len = pos;
        Ok(())
    }

    /// A torn tail is dropped at the next append, so make sure it is one (see
    /// [`record_codec::is_flipped_length`]). Runs only on the rare torn path and reads at
    /// most one record's worth of bytes.
    fn check_torn_is_not_a_flipped_length(
        &self,
        index: u64,
        pos: u64,
        file_len: u64,
        len: u64,
    ) -> Result<(), HistoryError> {
        let body_start = pos + LEN_PREFIX as u64;
        let available = file_len - body_start;
        let mut file = File::open(&self.path).map_err(self.io_err())?;
        io::Seek::seek(&mut file, io::SeekFrom::Start(body_start)).map_err(self.io_err())?;
        let mut rest = Zeroizing::new(Vec::new());
        file.take(available.min(MAX_RECORD_LEN as u64))
            .read_to_end(&mut rest)
            .map_err(self.io_err())?;
        if record_codec::is_flipped_length(&self.key, &self.id, index, len, &rest) {
            return Err(self.corrupt(index));
        }
        Ok(())
    }

    fn note_torn(&mut self, index: u64, pos: u64, file_len: u64) {
        tracing::warn!(
            path = %self.path.display(),
            index,
            torn_bytes = file_len - pos,
            "skipping torn last record of a history log (crash during an append?); \
             it will be truncated at the next append"
        );
        self.torn = true;
    }

    fn open_for_append(&mut self) -> Result<(), HistoryError> {
        if self.file.is_some() {
            return Ok(());
        }
        let existed = self.path.exists();
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(PRIVATE_FILE_MODE)
            .open(&self.path)
            .map_err(self.io_err())?;
        if self.torn {
            file.set_len(self.valid_len).map_err(self.io_err())?;
            file.sync_data().map_err(self.io_err())?;
            self.torn = false;
        }
        if !existed {
            // Make the new directory entry durable once, not per append.
            if let Some(dir) = self.path.parent() {
                atomic_file::sync_dir(dir).map_err(self.io_err())?;
            }
        }
        self.file = Some(file);
        Ok(())
    }

    /// Seals `plaintext` as the next record and writes it as `durability` says; opens
    /// the file (truncating a torn tail) if it is closed.
    pub(in crate::storage) fn append(
        &mut self,
        rng: &SystemRandom,
        plaintext: &[u8],
        durability: Durability,
    ) -> Result<(), HistoryError> {
        // Sealed before the file is opened, so an oversized record leaves the log as it was.
        let start = self.pending.len();
        let len = record_codec::encode(
            &self.key,
            rng,
            &self.id,
            self.next_index,
            plaintext,
            &mut self.pending,
        )?;
        if let Err(e) = self.open_for_append() {
            self.pending.truncate(start);
            return Err(e);
        }
        self.next_index += 1;
        self.valid_len += len as u64;
        match durability {
            Durability::Buffered => Ok(()),
            Durability::WriteThrough => self.flush(false),
            Durability::SyncEachAppend => self.flush(true),
        }
    }

    /// Writes pending records; with `sync`, also fdatasyncs if anything was written.
    pub(in crate::storage) fn flush(&mut self, sync: bool) -> Result<(), HistoryError> {
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        if !self.pending.is_empty() {
            let result = file.write_all(&self.pending);
            self.pending.clear();
            if self.pending.capacity() > WRITE_BUFFER_KEPT {
                // One long message must not pin its buffer for the log's lifetime.
                self.pending = Vec::new();
            }
            result.map_err(|source| HistoryError::Io {
                path: self.path.clone(),
                source,
            })?;
            self.dirty = true;
        }
        if sync && self.dirty {
            file.sync_data().map_err(|source| HistoryError::Io {
                path: self.path.clone(),
                source,
            })?;
            self.dirty = false;
        }
        Ok(())
    }

    /// Writes pending records and, if anything was written since the last fsync, returns
    /// a duplicate of the handle to fsync elsewhere (an fsync through a duplicate
    /// descriptor covers every write made before it); the log then counts as synced.
    pub(super) fn take_unsynced(&mut self) -> Result<Option<(PathBuf, File)>, HistoryError> {
        self.flush(false)?;
        if !self.dirty {
            return Ok(None);
        }
        let copy = match &self.file {
            Some(file) => Some((self.path.clone(), file.try_clone().map_err(self.io_err())?)),
            None => None,
        };
        self.dirty = false;
        Ok(copy)
    }

    /// Closes the log's handle. If something was written since the last fsync, the
    /// handle is returned instead of closed, for the caller to fsync (then drop) off
    /// the writer's path; `None` when there is nothing to sync.
    #[must_use = "a returned handle still needs its fsync"]
    pub(super) fn close(&mut self) -> Option<(PathBuf, File)> {
        if self.pending.is_empty() {
            self.pending = Vec::new();
        }
        let file = self.file.take();
        let dirty = std::mem::take(&mut self.dirty);
        file.filter(|_| dirty).map(|file| (self.path.clone(), file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::sealing::derive_aead_key;
    use std::fs;
    use std::path::Path;

    const KEY: [u8; 32] = [5; 32];

    fn key(storage_key: &[u8; 32]) -> LessSafeKey {
        derive_aead_key(storage_key, &[b"test log"]).unwrap()
    }

    fn log(path: &Path, id: &str, storage_key: &[u8; 32]) -> LogFile {
        LogFile::new(path.to_owned(), id.to_owned(), key(storage_key))
    }

    /// Every record's plaintext as text, as a fresh reader sees the file.
    fn read(path: &Path, id: &str, storage_key: &[u8; 32]) -> Result<Vec<String>, HistoryError> {
        let mut texts = Vec::new();
        log(path, id, storage_key).scan(|_, plaintext| {
            texts.push(String::from_utf8(plaintext.to_vec()).map_err(|_| Unparsable)?);
            Ok(())
        })?;
        Ok(texts)
    }

    fn room(path: &Path) -> Result<Vec<String>, HistoryError> {
        read(path, "room", &KEY)
    }

    /// A scanned log ready to append to, as the store holds it.
    fn loaded(path: &Path) -> LogFile {
        let mut log = log(path, "room", &KEY);
        log.scan(|_, _| Ok(())).unwrap();
        log
    }

    fn write(path: &Path, id: &str, n: u64) {
        let mut log = log(path, id, &KEY);
        log.scan(|_, _| Ok(())).unwrap();
        for i in 0..n {
            log.append(
                &SystemRandom::new(),
                format!("m{i}").as_bytes(),
                Durability::WriteThrough,
            )
            .unwrap();
        }
        if let Some((_, file)) = log.close() {
            file.sync_data().unwrap();
        }
    }

    fn write_room(dir: &Path, n: u64) -> PathBuf {
        let path = dir.join("room.log");
        write(&path, "room", n);
        path
    }

    /// (offset, total length) of each record in a log file.
    fn record_spans(bytes: &[u8]) -> Vec<(usize, usize)> {
        let mut spans = Vec::new();
        let mut pos = 0;
        while pos < bytes.len() {
            let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
            spans.push((pos, 4 + len));
            pos += 4 + len;
        }
        spans
    }

    #[test]
    fn appended_records_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_room(dir.path(), 3);
        assert_eq!(room(&path).unwrap(), ["m0", "m1", "m2"]);
        assert_eq!(
            room(&dir.path().join("missing.log")).unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn swapped_history_records_are_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_room(dir.path(), 3);
        let bytes = fs::read(&path).unwrap();
        let spans = record_spans(&bytes);
        let (r0, r1) = (spans[0], spans[1]);
        let mut swapped = bytes[r1.0..r1.0 + r1.1].to_vec();
        swapped.extend_from_slice(&bytes[r0.0..r0.0 + r0.1]);
        swapped.extend_from_slice(&bytes[spans[2].0..]);
        fs::write(&path, &swapped).unwrap();
        let err = room(&path).unwrap_err();
        assert!(
            matches!(err, HistoryError::Corrupt { index: 0, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("room.log"));
    }

    #[test]
    fn record_dropped_from_the_middle_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_room(dir.path(), 4);
        let bytes = fs::read(&path).unwrap();
        let spans = record_spans(&bytes);
        let mut dropped = bytes[..spans[1].0].to_vec();
        dropped.extend_from_slice(&bytes[spans[2].0..]);
        fs::write(&path, &dropped).unwrap();
        assert!(matches!(
            room(&path),
            Err(HistoryError::Corrupt { index: 1, .. })
        ));
    }

    #[test]
    fn records_copied_from_another_log_are_corrupt_even_under_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let dm = dir.path().join("dm-x.log");
        write(&dm, "dm-x", 2);
        let path = dir.path().join("room.log");
        fs::copy(&dm, &path).unwrap();
        assert!(matches!(
            room(&path),
            Err(HistoryError::Corrupt { index: 0, .. })
        ));
    }

    #[test]
    fn flipped_byte_in_any_record_but_the_last_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_room(dir.path(), 3);
        let original = fs::read(&path).unwrap();
        let spans = record_spans(&original);
        // Every bit of the length prefixes (a flipped length must not pass as a torn
        // tail), and one flip per byte elsewhere, in the first two records.
        let mut flips: Vec<(usize, u8)> = Vec::new();
        for &(start, len) in &spans[..2] {
            flips.extend((start..start + 4).flat_map(|i| (0..8).map(move |b| (i, 1u8 << b))));
            flips.extend((start + 4..start + len).map(|i| (i, 0x80)));
        }
        for (i, mask) in flips {
            let mut bytes = original.clone();
            bytes[i] ^= mask;
            fs::write(&path, &bytes).unwrap();
            let err = room(&path).unwrap_err();
            assert!(
                matches!(err, HistoryError::Corrupt { .. }),
                "byte {i} mask {mask:#x}: {err}"
            );
        }
    }

    #[test]
    fn wrong_key_makes_the_log_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_room(dir.path(), 2);
        assert!(matches!(
            read(&path, "room", &[6; 32]),
            Err(HistoryError::Corrupt { index: 0, .. })
        ));
    }

    #[test]
    fn oversized_length_prefix_is_corrupt_not_torn() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_room(dir.path(), 2);
        let mut bytes = fs::read(&path).unwrap();
        bytes[0] = 0xFF;
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            room(&path),
            Err(HistoryError::Corrupt { index: 0, .. })
        ));
    }

    #[test]
    fn a_record_the_caller_cannot_parse_is_corrupt_at_its_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_room(dir.path(), 3);
        let result =
            log(&path, "room", &KEY)
                .scan(|index, _| if index == 1 { Err(Unparsable) } else { Ok(()) });
        assert!(matches!(
            result,
            Err(HistoryError::Corrupt { index: 1, .. })
        ));
    }

    #[test]
    fn torn_tail_is_skipped_and_earlier_records_survive() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_room(dir.path(), 3);
        let bytes = fs::read(&path).unwrap();
        let last = record_spans(&bytes)[2];
        for cut in [last.0 + 2, last.0 + 4, last.0 + 20, bytes.len() - 1] {
            fs::write(&path, &bytes[..cut]).unwrap();
            assert_eq!(room(&path).unwrap(), ["m0", "m1"], "cut {cut}");
            assert_eq!(
                fs::read(&path).unwrap().len(),
                cut,
                "reading truncates nothing"
            );
        }
        // The next append truncates the torn bytes away and continues the index sequence.
        let mut log = loaded(&path);
        log.append(
            &SystemRandom::new(),
            b"after crash",
            Durability::WriteThrough,
        )
        .unwrap();
        drop(log);
        assert_eq!(room(&path).unwrap(), ["m0", "m1", "after crash"]);
        let healed = fs::read(&path).unwrap();
        assert_eq!(record_spans(&healed).len(), 3);
        assert_eq!(&healed[..last.0], &bytes[..last.0]);
    }

    #[test]
    fn last_record_failing_authentication_is_skipped_as_torn() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_room(dir.path(), 3);
        let mut bytes = fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert_eq!(room(&path).unwrap(), ["m0", "m1"]);
    }

    #[test]
    fn buffered_appends_reach_the_file_only_at_flush() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("room.log");
        let mut log = loaded(&path);
        let rng = SystemRandom::new();
        log.append(&rng, b"one", Durability::Buffered).unwrap();
        log.append(&rng, b"two", Durability::Buffered).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), 0);
        log.flush(true).unwrap();
        assert_eq!(room(&path).unwrap(), ["one", "two"]);
    }

    #[test]
    fn write_through_appends_are_on_disk_before_any_flush() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("room.log");
        let mut log = loaded(&path);
        log.append(&SystemRandom::new(), b"one", Durability::WriteThrough)
            .unwrap();
        // Another reader sees it without a flush (as after kill -9 of the writer).
        assert_eq!(room(&path).unwrap(), ["one"]);
    }

    #[test]
    fn written_logs_hand_out_a_handle_to_fsync_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("room.log");
        let mut log = loaded(&path);
        assert!(log.take_unsynced().unwrap().is_none(), "nothing written");
        log.append(&SystemRandom::new(), b"one", Durability::Buffered)
            .unwrap();
        let (synced_path, file) = log.take_unsynced().unwrap().expect("written");
        assert_eq!(synced_path, path);
        file.sync_data().unwrap();
        assert_eq!(
            room(&path).unwrap(),
            ["one"],
            "pending records were written"
        );
        assert!(log.take_unsynced().unwrap().is_none(), "already handed out");
    }

    #[test]
    fn a_long_record_does_not_keep_its_write_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = loaded(&dir.path().join("room.log"));
        let rng = SystemRandom::new();
        log.append(&rng, b"short", Durability::WriteThrough)
            .unwrap();
        let short = log.pending.capacity();
        assert!(short <= WRITE_BUFFER_KEPT);
        log.append(&rng, &[b'x'; 65_000], Durability::WriteThrough)
            .unwrap();
        assert!(log.pending.capacity() <= WRITE_BUFFER_KEPT);
        let _ = log.close();
        assert_eq!(log.pending.capacity(), 0, "a closed log keeps no buffer");
    }

    #[test]
    fn closing_hands_out_the_handle_only_when_a_write_awaits_its_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("room.log");
        let mut log = loaded(&path);
        assert!(log.close().is_none(), "nothing written: nothing to sync");
        let mut log = loaded(&path);
        log.append(&SystemRandom::new(), b"m", Durability::WriteThrough)
            .unwrap();
        let (synced_path, file) = log.close().expect("written since the last fsync");
        assert_eq!(synced_path, path);
        file.sync_data().unwrap();
        assert!(log.close().is_none(), "handed out once");
    }

    #[test]
    fn oversized_record_is_refused_and_the_log_stays_usable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("room.log");
        let mut log = loaded(&path);
        let rng = SystemRandom::new();
        let huge = vec![b'x'; MAX_RECORD_LEN];
        assert!(matches!(
            log.append(&rng, &huge, Durability::WriteThrough),
            Err(HistoryError::RecordTooLarge { .. })
        ));
        log.append(&rng, b"ok", Durability::WriteThrough).unwrap();
        assert_eq!(room(&path).unwrap(), ["ok"]);
    }
}
