//! Brute-force throttling of password logins (threat: online guessing).
//!
//! Failures are counted per account and per source address. After
//! [`FREE_FAILURES`] failures on an account (or [`FREE_ADDRESS_FAILURES`]
//! from an address), each further attempt waits an exponentially growing
//! delay, capped at [`MAX_DELAY`], before the password is even
//! checked; the answer is the same generic `LoginFailed` either way. The cap
//! is what keeps the throttle from becoming a lockout: someone hammering a
//! victim's name can make the victim's login slow (at most 30 s), never
//! impossible. A success clears the account's count; counts decay after
//! [`FORGET_AFTER`] without failures.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Failures on an account allowed before any delay.
pub const FREE_FAILURES: u32 = 3;
/// Failures from one address allowed before any delay: higher, because an
/// address can be a NAT shared by many honest users who mistype.
pub const FREE_ADDRESS_FAILURES: u32 = 10;
/// The first delay; it doubles with each further failure.
pub const BASE_DELAY: Duration = Duration::from_millis(500);
/// No attempt waits longer than this.
pub const MAX_DELAY: Duration = Duration::from_secs(30);
/// A count with no new failure for this long is forgotten.
pub const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Entries kept per map before stale ones are swept.
const SWEEP_AT: usize = 16_384;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// The delay owed after `count` failures when `free` of them cost nothing.
pub fn delay_after(count: u32, free: u32) -> Duration {
    if count < free {
        return Duration::ZERO;
    }
    let doublings = (count - free).min(16);
    BASE_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY)
}

/// Failure counts per account (canonical name) and per address.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    accounts: HashMap<String, Failures>,
    addresses: HashMap<IpAddr, Failures>,
    total_failures: u64,
}

impl LoginThrottle {
    /// How long an attempt on `account` from `ip` must wait before the
    /// password is checked: the larger of the two delays.
    pub fn delay_for(&mut self, account: &str, ip: IpAddr, now: Instant) -> Duration {
        let a = Self::pending(self.accounts.get(account), now, FREE_FAILURES);
        let b = Self::pending(self.addresses.get(&ip), now, FREE_ADDRESS_FAILURES);
        a.max(b)
    }

    fn pending(f: Option<&Failures>, now: Instant, free: u32) -> Duration {
        match f {
            Some(f) if now.saturating_duration_since(f.last) < FORGET_AFTER => {
                delay_after(f.count, free)
            }
            _ => Duration::ZERO,
        }
    }

    /// Records a failed attempt.
    pub fn record_failure(&mut self, account: &str, ip: IpAddr, now: Instant) {
        self.total_failures += 1;
        if self.accounts.len() >= SWEEP_AT || self.addresses.len() >= SWEEP_AT {
            self.accounts
                .retain(|_, f| now.saturating_duration_since(f.last) < FORGET_AFTER);
            self.addresses
                .retain(|_, f| now.saturating_duration_since(f.last) < FORGET_AFTER);
        }
        bump(
            self.accounts.entry(account.to_owned()).or_insert(Failures {
                count: 0,
                last: now,
            }),
            now,
        );
        bump(
            self.addresses.entry(ip).or_insert(Failures {
                count: 0,
                last: now,
            }),
            now,
        );
    }

    /// Records a successful login: the account's count is cleared (the
    /// address keeps its count: one right password does not excuse a spray).
    pub fn record_success(&mut self, account: &str) {
        self.accounts.remove(account);
    }

    /// An OPAQUE login was counted as a failure when the server answered
    /// (the answer lets the client test one guess offline) and then
    /// finished correctly: the account's count is cleared, and the address
    /// gets back the one failure this attempt was charged.
    pub fn record_finished_login(&mut self, account: &str, ip: IpAddr) {
        self.accounts.remove(account);
        if let Some(f) = self.addresses.get_mut(&ip) {
            f.count = f.count.saturating_sub(1);
        }
        self.total_failures = self.total_failures.saturating_sub(1);
    }

    /// Failed logins since start (for the log).
    pub fn total_failures(&self) -> u64 {
        self.total_failures
    }
}

fn bump(f: &mut Failures, now: Instant) {
    if now.saturating_duration_since(f.last) >= FORGET_AFTER {
        f.count = 0;
    }
    f.count = f.count.saturating_add(1);
    f.last = now;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn delays_grow_after_the_free_failures_and_are_capped() {
        assert_eq!(delay_after(0, FREE_FAILURES), Duration::ZERO);
        assert_eq!(
            delay_after(FREE_FAILURES - 1, FREE_FAILURES),
            Duration::ZERO
        );
        assert_eq!(delay_after(FREE_FAILURES, FREE_FAILURES), BASE_DELAY);
        assert_eq!(
            delay_after(FREE_FAILURES + 1, FREE_FAILURES),
            BASE_DELAY * 2
        );
        assert_eq!(delay_after(1000, FREE_FAILURES), MAX_DELAY);
    }

    #[test]
    fn failures_on_an_account_slow_every_address_but_never_beyond_the_cap() {
        let mut t = LoginThrottle::default();
        let now = Instant::now();
        for _ in 0..50 {
            t.record_failure("alice", ip("10.0.0.1"), now);
        }
        // A different address trying alice waits (the guesses are spread
        // over addresses in a real attack) but at most MAX_DELAY.
        assert_eq!(t.delay_for("alice", ip("10.0.0.2"), now), MAX_DELAY);
        // Another account from another address is untouched.
        assert_eq!(t.delay_for("bob", ip("10.0.0.2"), now), Duration::ZERO);
        // The attacking address is slowed for every account it tries.
        assert_eq!(t.delay_for("bob", ip("10.0.0.1"), now), MAX_DELAY);
        assert_eq!(t.total_failures(), 50);
    }

    #[test]
    fn an_address_gets_more_free_failures_than_an_account() {
        let mut t = LoginThrottle::default();
        let now = Instant::now();
        for i in 0..FREE_ADDRESS_FAILURES - 1 {
            t.record_failure(&format!("user{i}"), ip("10.0.0.1"), now);
        }
        // Nine different mistyped accounts behind one NAT: nobody waits.
        assert_eq!(t.delay_for("carol", ip("10.0.0.1"), now), Duration::ZERO);
        t.record_failure("user9", ip("10.0.0.1"), now);
        assert_eq!(t.delay_for("carol", ip("10.0.0.1"), now), BASE_DELAY);
    }

    #[test]
    fn success_clears_the_account_and_counts_decay() {
        let mut t = LoginThrottle::default();
        let now = Instant::now();
        for _ in 0..5 {
            t.record_failure("alice", ip("10.0.0.1"), now);
        }
        t.record_success("alice");
        assert_eq!(t.delay_for("alice", ip("10.0.0.2"), now), Duration::ZERO);
        let later = now + FORGET_AFTER;
        assert_eq!(t.delay_for("x", ip("10.0.0.1"), later), Duration::ZERO);
    }
}
