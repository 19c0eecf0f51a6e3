//! Where the resume-token snapshot is kept: the file backend of
//! [`TokenSnapshot`](super::TokenSnapshot), `resume_tokens.enc` (see `token_file`).

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::backend::TokenSnapshot;
use super::error::StoreError;
use super::token_file::{self, StoredToken};

/// The snapshot file at a path, sealed under the storage key.
pub struct TokenFile {
    path: PathBuf,
    storage_key: Zeroizing<[u8; 32]>,
}

impl TokenFile {
    pub fn new(path: &Path, storage_key: &[u8; 32]) -> Self {
        Self {
            path: path.to_path_buf(),
            storage_key: Zeroizing::new(*storage_key),
        }
    }
}

impl TokenSnapshot for TokenFile {
    fn take(&mut self) -> Result<Vec<StoredToken>, StoreError> {
        token_file::take(&self.path, &self.storage_key)
    }

    fn save(&mut self, tokens: Vec<StoredToken>) -> Result<(), StoreError> {
        token_file::save(&self.path, &self.storage_key, tokens)
    }
}
