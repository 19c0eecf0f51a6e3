//! Token buckets, and the per-address gate that bounds connections and
//! handshake rate per source IP. Time is passed in, so the tests need no
//! clock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
#[cfg(test)]
use std::time::Duration;
use std::time::Instant;

/// A token bucket: `rate` tokens per second, holding at most `burst`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: u32, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate: f64::from(rate.max(1)),
            burst,
            tokens: burst,
            updated: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.updated = now;
    }

    /// Takes a token if one is there.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// True when the bucket would be full at `now`, i.e. it carries no
    /// state worth keeping.
    pub fn is_full(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens + elapsed * self.rate >= self.burst
    }
}

/// Why the gate turned a new connection away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// This address already has `max_connections_per_ip` open.
    TooManyFromAddress,
    /// This address opened connections faster than its handshake rate.
    HandshakeRate,
}

struct AddressState {
    open: usize,
    handshakes: TokenBucket,
}

struct GateInner {
    by_ip: HashMap<IpAddr, AddressState>,
    sweep_at: usize,
}

/// Counts open connections and handshake attempts per source address.
/// Admission returns a [`AddressPermit`] that gives the slot back on drop.
#[derive(Clone)]
pub struct AddressGate {
    inner: Arc<Mutex<GateInner>>,
    max_per_ip: usize,
    rate: u32,
    burst: u32,
}

/// Holds one connection slot of an address until dropped.
pub struct AddressPermit {
    gate: AddressGate,
    ip: IpAddr,
}

impl AddressGate {
    pub fn new(max_per_ip: usize, rate: u32, burst: u32) -> Self {
        Self {
            inner: Arc::new(Mutex::new(GateInner {
                by_ip: HashMap::new(),
                sweep_at: 1024,
            })),
            max_per_ip,
            rate,
            burst,
        }
    }

    /// Admits a new connection from `ip`, or says why not.
    pub fn admit(&self, ip: IpAddr, now: Instant) -> Result<AddressPermit, Refusal> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.by_ip.len() >= inner.sweep_at {
            // Forget addresses with nothing open and a refilled bucket, so
            // the map is bounded by addresses active in the last few seconds.
            inner
                .by_ip
                .retain(|_, s| s.open > 0 || !s.handshakes.is_full(now));
            inner.sweep_at = (inner.by_ip.len() * 2).max(1024);
        }
        let (rate, burst) = (self.rate, self.burst);
        let state = inner.by_ip.entry(ip).or_insert_with(|| AddressState {
            open: 0,
            handshakes: TokenBucket::new(rate, burst, now),
        });
        if state.open >= self.max_per_ip {
            return Err(Refusal::TooManyFromAddress);
        }
        if !state.handshakes.try_take(now) {
            return Err(Refusal::HandshakeRate);
        }
        state.open += 1;
        Ok(AddressPermit {
            gate: self.clone(),
            ip,
        })
    }

    /// Open connections from `ip` (for tests and stats).
    pub fn open_from(&self, ip: IpAddr) -> usize {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.by_ip.get(&ip).map_or(0, |s| s.open)
    }
}

impl Drop for AddressPermit {
    fn drop(&mut self) {
        let mut inner = self.gate.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(state) = inner.by_ip.get_mut(&self.ip) {
            state.open = state.open.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(2, 3, t0);
        assert!(b.try_take(t0) && b.try_take(t0) && b.try_take(t0));
        assert!(!b.try_take(t0));
        assert!(!b.try_take(t0 + Duration::from_millis(400)));
        assert!(b.try_take(t0 + Duration::from_millis(600)));
        assert!(!b.try_take(t0 + Duration::from_millis(700)));
        assert!(b.is_full(t0 + Duration::from_secs(10)));
    }

    #[test]
    fn gate_bounds_open_connections_per_address_and_frees_on_drop() {
        let gate = AddressGate::new(2, 100, 100);
        let now = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let p1 = gate.admit(a, now).unwrap();
        let _p2 = gate.admit(a, now).unwrap();
        assert_eq!(gate.admit(a, now).err(), Some(Refusal::TooManyFromAddress));
        // Another address is unaffected.
        let _p3 = gate.admit(b, now).unwrap();
        drop(p1);
        assert_eq!(gate.open_from(a), 1);
        gate.admit(a, now).unwrap();
    }

    #[test]
    fn gate_limits_handshake_rate_per_address() {
        let gate = AddressGate::new(100, 1, 2);
        let now = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        drop(gate.admit(a, now).unwrap());
        drop(gate.admit(a, now).unwrap());
        assert_eq!(gate.admit(a, now).err(), Some(Refusal::HandshakeRate));
        assert!(gate.admit("10.0.0.9".parse().unwrap(), now).is_ok());
        assert!(gate.admit(a, now + Duration::from_secs(1)).is_ok());
    }
}
