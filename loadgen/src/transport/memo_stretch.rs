//! The client's Argon2id, memoised per input: the load generator's
//! accounts log in again and again with the same password, and the OPRF
//! output that OPAQUE stretches is the same at every login of an account
//! (RFC 9807: it depends only on the password and the server's per-user
//! OPRF key). Stretching it once per account keeps the client's 19 MiB,
//! ~20 ms Argon2id out of the measurement: the server's cost is what the
//! login figures measure (BENCHMARKS.md says so). The wire is unchanged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use proto_core::opaque::{Argon2id, Ksf, Stretch};

/// Argon2id with [`Stretch::RECOMMENDED`], remembering every output.
/// Clones share the memo.
#[derive(Clone)]
pub struct MemoStretch {
    argon2: Argon2id,
    memo: Arc<Mutex<HashMap<Vec<u8>, Vec<u8>>>>,
}

impl Default for MemoStretch {
    fn default() -> Self {
        Self {
            argon2: Stretch::RECOMMENDED
                .argon2id()
                .expect("the recommended costs are valid"),
            memo: Arc::default(),
        }
    }
}

impl MemoStretch {
    /// Inputs stretched so far (one per account that logged in).
    pub fn len(&self) -> usize {
        self.memo
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Ksf for MemoStretch {
    fn hash<L: proto_core::opaque::ArrayLength<u8>>(
        &self,
        input: proto_core::opaque::GenericArray<u8, L>,
    ) -> Result<proto_core::opaque::GenericArray<u8, L>, proto_core::opaque::KsfError> {
        let key = input.to_vec();
        if let Some(out) = self
            .memo
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return Ok(proto_core::opaque::GenericArray::clone_from_slice(out));
        }
        let out = self.argon2.hash(input)?;
        self.memo
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, out.to_vec());
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memo_gives_argon2ids_output_and_stretches_each_input_once() {
        let memo = MemoStretch::default();
        let input = proto_core::opaque::GenericArray::<u8, proto_core::opaque::U64>::default();
        let first = memo.hash(input).unwrap();
        let direct = Stretch::RECOMMENDED
            .argon2id()
            .unwrap()
            .hash(input)
            .unwrap();
        assert_eq!(first, direct);
        assert_eq!(memo.hash(input).unwrap(), first);
        assert_eq!(memo.len(), 1);
    }
}
