//! The connections not yet logged in (handshaking or authenticating): a
//! bounded pool with a per-address share. When it is full, a newcomer
//! evicts the oldest member instead of being refused, so an attacker who
//! fills the pool with silent connections from many addresses cannot keep
//! honest users out (SECURITY.md M2): every slot they hold is taken back as
//! soon as someone needs it, and an honest login needs its slot only for the
//! handshake and one password check.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

/// Why a connection got no place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolRefusal {
    /// Its address already holds its whole share of the pool.
    AddressShareUsed,
}

struct Member {
    ip: IpAddr,
    evict: oneshot::Sender<()>,
}

#[derive(Default)]
struct State {
    next_seq: u64,
    /// By admission order: the first is the oldest.
    members: BTreeMap<u64, Member>,
    per_ip: HashMap<IpAddr, usize>,
    evicted: u64,
}

impl State {
    fn forget(&mut self, ip: IpAddr) {
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }
}

/// The pool; cheap to clone.
#[derive(Clone)]
pub struct UnauthenticatedPool {
    state: Arc<Mutex<State>>,
    capacity: usize,
    per_address: usize,
}

/// A place in the pool, given back on drop (at login or close).
/// [`PoolSlot::evicted`] completes when a newcomer took it.
pub struct PoolSlot {
    seq: u64,
    state: Arc<Mutex<State>>,
    evicted: Option<oneshot::Receiver<()>>,
}

impl UnauthenticatedPool {
    pub fn new(capacity: usize, per_address: usize) -> Self {
        Self {
            state: Arc::default(),
            capacity: capacity.max(1),
            per_address: per_address.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A place for a connection from `ip`; when the pool is full, the
    /// oldest member is told to leave.
    pub fn admit(&self, ip: IpAddr) -> Result<PoolSlot, PoolRefusal> {
        let mut state = self.lock();
        if state.per_ip.get(&ip).copied().unwrap_or(0) >= self.per_address {
            return Err(PoolRefusal::AddressShareUsed);
        }
        if state.members.len() >= self.capacity {
            if let Some((_, oldest)) = state.members.pop_first() {
                state.forget(oldest.ip);
                state.evicted += 1;
                let _ = oldest.evict.send(());
            }
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        let (evict, evicted) = oneshot::channel();
        state.members.insert(seq, Member { ip, evict });
        *state.per_ip.entry(ip).or_default() += 1;
        Ok(PoolSlot {
            seq,
            state: Arc::clone(&self.state),
            evicted: Some(evicted),
        })
    }

    /// Members now.
    pub fn len(&self) -> usize {
        self.lock().members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Members evicted since start (for the log).
    pub fn evicted_total(&self) -> u64 {
        self.lock().evicted
    }
}

impl PoolSlot {
    /// Completes when a newcomer evicted this connection; never, once the
    /// slot has been given back.
    pub async fn evicted(&mut self) {
        match self.evicted.as_mut() {
            Some(rx) => {
                if rx.await.is_err() {
                    // The pool forgot us without evicting (cannot happen
                    // while we hold the slot): never complete.
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending::<()>().await,
        }
    }
}

impl Drop for PoolSlot {
    fn drop(&mut self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(member) = state.members.remove(&self.seq) {
            state.forget(member.ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    fn ip(i: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, i])
    }

    fn is_evicted(slot: &mut PoolSlot) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        matches!(pin!(slot.evicted()).poll(&mut cx), Poll::Ready(()))
    }

    #[test]
    fn a_newcomer_to_a_full_pool_evicts_the_oldest_member() {
        let pool = UnauthenticatedPool::new(3, 2);
        let mut slots: Vec<PoolSlot> = [1, 2, 3]
            .iter()
            .map(|&i| pool.admit(ip(i)).unwrap())
            .collect();
        let newcomer = pool.admit(ip(9)).expect("a full pool still admits");
        assert!(is_evicted(&mut slots[0]), "the oldest is told to leave");
        assert!(!is_evicted(&mut slots[1]));
        assert!(!is_evicted(&mut slots[2]));
        assert_eq!(pool.len(), 3);
        assert_eq!(pool.evicted_total(), 1);
        drop(slots);
        assert_eq!(
            pool.len(),
            1,
            "dropping an evicted slot frees nothing twice"
        );
        drop(newcomer);
        assert!(pool.is_empty());
    }

    #[test]
    fn an_address_cannot_take_more_than_its_share() {
        let pool = UnauthenticatedPool::new(100, 2);
        let a = pool.admit(ip(1)).unwrap();
        let _b = pool.admit(ip(1)).unwrap();
        assert_eq!(pool.admit(ip(1)).err(), Some(PoolRefusal::AddressShareUsed));
        assert!(
            pool.admit(ip(2)).is_ok(),
            "other addresses are not affected"
        );
        drop(a);
        assert!(
            pool.admit(ip(1)).is_ok(),
            "a place given back is free again"
        );
    }

    #[test]
    fn an_attacker_refilling_the_pool_never_keeps_a_newcomer_out() {
        // 17 addresses fill a pool of 64 and keep reopening what is evicted.
        let pool = UnauthenticatedPool::new(64, 4);
        let mut attackers: Vec<PoolSlot> = Vec::new();
        let mut next = 0u8;
        while attackers.len() < 64 {
            if let Ok(s) = pool.admit(ip(next % 17)) {
                attackers.push(s);
            }
            next = next.wrapping_add(1);
        }
        for round in 0..50 {
            let honest = pool.admit(IpAddr::from([192, 0, 2, 1]));
            assert!(honest.is_ok(), "round {round}: honest newcomer refused");
            // Evicted attackers go away and immediately reconnect.
            attackers.retain_mut(|s| !is_evicted(s));
            while let Ok(s) = pool.admit(ip(next % 17)) {
                attackers.push(s);
                next = next.wrapping_add(1);
                if pool.len() >= 64 {
                    break;
                }
            }
        }
    }
}
