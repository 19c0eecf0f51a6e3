//! The per-connection random number generator.

use rand_chacha::rand_core::{CryptoRngCore, OsRng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// A ChaCha20 generator seeded from the operating system, one per
/// connection. The core draws a fresh IV for every record, so asking the
/// OS each time would cost a syscall per message.
///
/// # Panics
/// If the operating system cannot supply randomness. Carrying on with a
/// weak seed would be worse than stopping.
pub fn session_rng() -> Box<dyn CryptoRngCore + Send> {
    let mut seed = <ChaCha20Rng as SeedableRng>::Seed::default();
    OsRng
        .try_fill_bytes(&mut seed)
        .expect("the operating system must provide randomness");
    Box::new(ChaCha20Rng::from_seed(seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_session_rng_is_seeded_independently() {
        let (mut a, mut b) = (session_rng(), session_rng());
        let (mut x, mut y) = ([0u8; 32], [0u8; 32]);
        a.fill_bytes(&mut x);
        b.fill_bytes(&mut y);
        assert_ne!(x, y);
        assert_ne!(x, [0u8; 32]);
    }
}
