//! Password checks on one account run one at a time, in arrival order, so
//! the throttle's delay of each attempt is computed after every earlier
//! attempt has been counted: N guesses sent in parallel take as long as N
//! sent one after another (SECURITY.md B1).
//!
//! Each source address holds at most one place in an account's queue (its
//! further attempts wait behind their own), so an honest login waits behind
//! at most one attempt per attacking address, never behind a whole flood.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::OwnedMutexGuard;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// Every attempt on the account.
    Account(String),
    /// Attempts on the account from one address.
    AccountFrom(String, IpAddr),
}

type Slot = Arc<tokio::sync::Mutex<()>>;

/// The queues; entries exist only while an attempt holds or waits for them.
#[derive(Debug, Default)]
pub struct AttemptQueues {
    slots: Arc<Mutex<HashMap<Key, Slot>>>,
}

/// An attempt's turn on an account: held while it waits out its delay and
/// its password is checked.
#[derive(Debug)]
pub struct Turn {
    _account: Held,
    _from: Held,
}

impl AttemptQueues {
    /// Waits until it is this attempt's turn on `account` (canonical name).
    pub async fn turn(&self, account: &str, from: IpAddr) -> Turn {
        // Address first: its later attempts queue here, not in the account's queue.
        let from = self.enter(Key::AccountFrom(account.to_owned(), from)).await;
        let account = self.enter(Key::Account(account.to_owned())).await;
        Turn {
            _account: account,
            _from: from,
        }
    }

    /// Attempts holding or waiting for a turn, for tests and metrics.
    pub fn queued_keys(&self) -> usize {
        lock(&self.slots).len()
    }

    async fn enter(&self, key: Key) -> Held {
        let slot = Arc::clone(lock(&self.slots).entry(key.clone()).or_default());
        let guard = slot.lock_owned().await;
        Held {
            guard: Some(guard),
            key,
            slots: Arc::clone(&self.slots),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug)]
struct Held {
    guard: Option<OwnedMutexGuard<()>>,
    key: Key,
    slots: Arc<Mutex<HashMap<Key, Slot>>>,
}

impl Drop for Held {
    fn drop(&mut self) {
        // Under the map's lock, so nobody clones the slot meanwhile: once
        // our guard is gone, a slot only the map holds has no waiter left.
        let mut slots = lock(&self.slots);
        self.guard = None;
        if slots
            .get(&self.key)
            .is_some_and(|s| Arc::strong_count(s) == 1)
        {
            slots.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn turns_on_one_account_are_taken_one_at_a_time_in_arrival_order() {
        let queues = Arc::new(AttemptQueues::default());
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..6u8 {
            let (queues, order) = (Arc::clone(&queues), Arc::clone(&order));
            tasks.push(tokio::spawn(async move {
                let _turn = queues.turn("alice", ip(&format!("10.0.0.{i}"))).await;
                lock(&order).push(i);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }));
            tokio::task::yield_now().await;
        }
        let start = tokio::time::Instant::now();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*lock(&order), [0, 1, 2, 3, 4, 5]);
        assert_eq!(start.elapsed(), Duration::from_secs(6), "never two at once");
        assert_eq!(queues.queued_keys(), 0, "idle queues are forgotten");
    }

    #[tokio::test(start_paused = true)]
    async fn other_accounts_do_not_wait() {
        let queues = AttemptQueues::default();
        let _alice = queues.turn("alice", ip("10.0.0.1")).await;
        let bob = tokio::time::timeout(Duration::from_secs(1), queues.turn("bob", ip("10.0.0.1")));
        assert!(bob.await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_from_one_address_holds_one_place_ahead_of_another_address() {
        let queues = Arc::new(AttemptQueues::default());
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..10 {
            let (queues, order) = (Arc::clone(&queues), Arc::clone(&order));
            tasks.push(tokio::spawn(async move {
                let _turn = queues.turn("alice", ip("10.6.6.6")).await;
                lock(&order).push(format!("attacker {i}"));
                tokio::time::sleep(Duration::from_secs(30)).await;
            }));
            tokio::task::yield_now().await;
        }
        let (q, o) = (Arc::clone(&queues), Arc::clone(&order));
        let victim = tokio::spawn(async move {
            let _turn = q.turn("alice", ip("192.0.2.1")).await;
            lock(&o).push("victim".to_owned());
        });
        victim.await.unwrap();
        // The attempt in progress, then the victim: not the other nine.
        assert_eq!(lock(&order)[..2], ["attacker 0", "victim"]);
        for t in tasks {
            t.await.unwrap();
        }
    }
}
