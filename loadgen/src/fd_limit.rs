//! Open-file limit: every connection is a descriptor, and the default soft
//! limit (often 1024) is far below a load run's needs.

use serde::Serialize;

/// Descriptors used besides the connections (stdio, epoll, runtime, /proc
/// reads, ...).
pub const SPARE_FDS: u64 = 64;

/// The limit after trying to raise it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct FdLimit {
    pub soft: u64,
    pub hard: u64,
    /// Connections the run opens at most, plus [`SPARE_FDS`].
    pub needed: u64,
    pub sufficient: bool,
}

/// Raises the soft RLIMIT_NOFILE to the hard limit (and the hard limit to
/// what is needed, where permitted) and says whether it is enough for
/// `connections` sockets.
pub fn raise(connections: u64) -> std::io::Result<FdLimit> {
    let needed = connections.saturating_add(SPARE_FDS);
    let (_, mut hard) = rlimit::Resource::NOFILE.get()?;
    // A privileged process may raise the hard limit itself (up to
    // fs.nr_open); anyone else has to live with it.
    if hard < needed && rlimit::Resource::NOFILE.set(needed, needed).is_ok() {
        hard = needed;
    }
    let soft = rlimit::increase_nofile_limit(hard)?;
    Ok(FdLimit {
        soft,
        hard,
        needed,
        sufficient: soft >= needed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_reaches_the_hard_limit_and_judges_the_need() {
        let small = raise(10).unwrap();
        assert!(small.soft >= small.needed.min(small.hard));
        assert!(small.sufficient || small.hard < 74);
        let huge = raise(u64::MAX / 2).unwrap();
        assert!(!huge.sufficient);
    }
}
