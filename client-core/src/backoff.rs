//! Reconnect delays: capped exponential backoff with jitter, so a server
//! restart does not bring every client back in the same second.

use std::time::Duration;

use rand_core::RngCore;

/// The first delay.
pub const INITIAL: Duration = Duration::from_secs(1);
/// No delay is longer.
pub const CAP: Duration = Duration::from_secs(60);

/// The backoff state of one client.
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    /// Attempts since the last success.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The delay before the next attempt: `min(CAP, INITIAL * 2^n)`, scaled
    /// by a random factor in [0.5, 1.0] drawn from `rng`.
    pub fn next_delay(&mut self, rng: &mut dyn RngCore) -> Duration {
        let jitter = 0.5 + 0.5 * (f64::from(rng.next_u32()) / f64::from(u32::MAX));
        let d = Self::ceiling(self.attempt).mul_f64(jitter);
        self.attempt = self.attempt.saturating_add(1);
        d
    }

    /// The delay before jitter for attempt `n`.
    pub fn ceiling(n: u32) -> Duration {
        INITIAL.saturating_mul(1u32 << n.min(16)).min(CAP)
    }

    /// After a successful connection.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use rand_core::OsRng;

    use super::*;

    #[test]
    fn delays_double_to_the_cap_with_jitter_in_range() {
        let mut b = Backoff::default();
        let mut ceilings = Vec::new();
        for n in 0..10 {
            let ceiling = Backoff::ceiling(n);
            let d = b.next_delay(&mut OsRng);
            assert!(d <= ceiling && d >= ceiling / 2, "{d:?} vs {ceiling:?}");
            ceilings.push(ceiling.as_secs());
        }
        assert_eq!(ceilings, [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]);
        b.reset();
        assert_eq!(b.attempt(), 0);
    }

    #[test]
    fn jitter_spreads_clients() {
        let delays: std::collections::HashSet<u128> = (0..20)
            .map(|_| Backoff { attempt: 5 }.next_delay(&mut OsRng).as_millis())
            .collect();
        assert!(delays.len() > 10);
    }
}
