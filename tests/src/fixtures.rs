//! Committed data directories (`tests/fixtures/`), copied privately for a
//! test to start a server on.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// `tests/fixtures/legacy-argon2-data-dir`: made by the release before
/// OPAQUE (commit 0a0e685's `securechat-server` and `securechat-cli`,
/// default Argon2id costs m=19456 KiB, t=2, p=1): these three accounts, and
/// one room message from each ("hello from NAME before OPAQUE").
pub const LEGACY_ACCOUNTS: [(&str, &str); 3] = [
    ("alice", "correct-horse-battery"),
    ("Bob", "tr0ub4dor-and-3"),
    ("carol", "carol-password-1"),
];

/// Where the pre-OPAQUE data directory is committed.
pub fn legacy_data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/legacy-argon2-data-dir")
}

/// Copies `from` to `to` with the modes the server insists on (directories
/// 0700, files 0600; git keeps neither).
pub fn copy_private(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create the data directory");
    fs::set_permissions(to, fs::Permissions::from_mode(0o700)).expect("chmod 0700");
    for entry in fs::read_dir(from).expect("read the fixture") {
        let entry = entry.expect("fixture entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_private(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy a fixture file");
            fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).expect("chmod 0600");
        }
    }
}
