//! Latency histograms: one small recorder per task (no locks, no sharing on
//! the receive path), merged by the coordinator at the end of a phase.
//!
//! Values are microseconds. Two significant digits (≤1% error) keep a
//! task's histogram near 10 KiB, which matters with thousands of
//! connections; it is only allocated once the task records something.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Largest latency told apart (60 s); longer ones are counted as 60 s.
pub const HIGHEST_MICROS: u64 = 60_000_000;
const SIGNIFICANT_DIGITS: u8 = 2;

/// A task's own histogram, allocated on first use.
#[derive(Debug, Default)]
pub struct Recorder {
    hist: Option<Box<Histogram<u32>>>,
}

impl Recorder {
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.hist
            .get_or_insert_with(|| Box::new(new_histogram()))
            .saturating_record(micros.min(HIGHEST_MICROS));
    }

    pub fn count(&self) -> u64 {
        self.hist.as_ref().map_or(0, |h| h.len())
    }

    /// Hands over what was recorded and starts afresh.
    pub fn take(&mut self) -> Option<Box<Histogram<u32>>> {
        self.hist.take()
    }
}

fn new_histogram<T: hdrhistogram::Counter>() -> Histogram<T> {
    Histogram::new_with_bounds(1, HIGHEST_MICROS, SIGNIFICANT_DIGITS)
        .expect("constant histogram bounds are valid")
}

/// A delivery slower than this is counted in [`SlowSeconds`].
pub const SLOW: Duration = Duration::from_millis(50);

/// Deliveries slower than [`SLOW`], by the second (since the run's epoch)
/// their message was sent in: when a tail happened, not only how long it
/// was. Empty, and allocation-free, while everything is fast.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlowSeconds {
    /// Second → (slow deliveries, the slowest in µs).
    by_second: std::collections::BTreeMap<u64, (u64, u64)>,
}

impl SlowSeconds {
    /// A message sent at `sent_ns` (since the epoch) took `latency`.
    pub fn record(&mut self, sent_ns: u64, latency: Duration) {
        if latency <= SLOW {
            return;
        }
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let entry = self
            .by_second
            .entry(sent_ns / 1_000_000_000)
            .or_insert((0, 0));
        entry.0 += 1;
        entry.1 = entry.1.max(micros);
    }

    pub fn merge(&mut self, other: &SlowSeconds) {
        for (&second, &(count, max)) in &other.by_second {
            let entry = self.by_second.entry(second).or_insert((0, 0));
            entry.0 += count;
            entry.1 = entry.1.max(max);
        }
    }

    /// Each second (since the epoch) with a slow delivery, oldest first.
    pub fn seconds(&self) -> Vec<SlowSecond> {
        self.by_second
            .iter()
            .map(|(&second, &(count, max))| SlowSecond {
                second: i64::try_from(second).unwrap_or(i64::MAX),
                deliveries: count,
                max_ms: max as f64 / 1000.0,
            })
            .collect()
    }
}

/// One second's slow deliveries, for the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlowSecond {
    /// Seconds since the epoch, or from the origin a mode moves it to
    /// (the reconnect's cut).
    pub second: i64,
    pub deliveries: u64,
    pub max_ms: f64,
}

/// Many recorders merged.
#[derive(Debug, Clone)]
pub struct Merged {
    hist: Histogram<u64>,
}

impl Default for Merged {
    fn default() -> Self {
        Self {
            hist: new_histogram(),
        }
    }
}

impl Merged {
    /// Adds a task's histogram (whose counters are narrower).
    pub fn add_task(&mut self, task: &Histogram<u32>) {
        for v in task.iter_recorded() {
            self.hist
                .saturating_record_n(v.value_iterated_to(), u64::from(v.count_at_value()));
        }
    }

    pub fn add(&mut self, other: &Merged) {
        // Both come from `new_histogram`, so the bounds always match.
        self.hist
            .add(&other.hist)
            .expect("histograms with equal bounds add");
    }

    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.hist.saturating_record(micros.min(HIGHEST_MICROS));
    }

    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    pub fn summary(&self) -> Summary {
        let h = &self.hist;
        let ms = |us: u64| us as f64 / 1000.0;
        if h.is_empty() {
            return Summary::default();
        }
        Summary {
            count: h.len(),
            mean_ms: h.mean() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

/// Percentiles in milliseconds (each the upper end of its ≤1% bucket).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Summary {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_deliveries_are_counted_by_the_second_they_were_sent_in() {
        let ms = Duration::from_millis;
        let mut a = SlowSeconds::default();
        a.record(10_500_000_000, ms(50)); // not slow: at the limit
        a.record(10_500_000_000, ms(80));
        a.record(10_900_000_000, ms(300));
        a.record(12_000_000_000, ms(51));
        let mut b = SlowSeconds::default();
        b.record(10_100_000_000, ms(400));
        b.record(8_000_000_000, ms(60));
        a.merge(&b);
        assert_eq!(
            a.seconds(),
            [
                SlowSecond {
                    second: 8,
                    deliveries: 1,
                    max_ms: 60.0
                },
                SlowSecond {
                    second: 10,
                    deliveries: 3,
                    max_ms: 400.0
                },
                SlowSecond {
                    second: 12,
                    deliveries: 1,
                    max_ms: 51.0
                },
            ]
        );
        assert_eq!(SlowSeconds::default().seconds(), []);
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= b * 0.01 + 0.001
    }

    #[test]
    fn recorder_allocates_only_when_used() {
        let mut r = Recorder::default();
        assert_eq!(r.count(), 0);
        assert!(r.take().is_none());
        r.record(Duration::from_micros(10));
        assert_eq!(r.count(), 1);
        assert!(r.take().is_some());
        assert!(r.take().is_none(), "take starts afresh");
    }

    #[test]
    fn merged_task_histograms_give_the_combined_percentiles() {
        // Task A saw 1..=900 µs, task B 901..=1000 µs: together 1..=1000.
        let mut a = Recorder::default();
        let mut b = Recorder::default();
        for us in 1..=900 {
            a.record(Duration::from_micros(us));
        }
        for us in 901..=1000 {
            b.record(Duration::from_micros(us));
        }
        let mut merged = Merged::default();
        merged.add_task(&a.take().unwrap());
        merged.add_task(&b.take().unwrap());
        let s = merged.summary();
        assert_eq!(s.count, 1000);
        assert!(close(s.p50_ms, 0.500), "{s:?}");
        assert!(close(s.p90_ms, 0.900), "{s:?}");
        assert!(close(s.p99_ms, 0.990), "{s:?}");
        assert!(close(s.max_ms, 1.000), "{s:?}");
        assert!(close(s.mean_ms, 0.5005), "{s:?}");
    }

    #[test]
    fn merging_merged_histograms_adds_counts() {
        let mut x = Merged::default();
        let mut y = Merged::default();
        x.record(Duration::from_millis(1));
        y.record(Duration::from_millis(3));
        y.record(Duration::from_millis(3));
        x.add(&y);
        assert_eq!(x.count(), 3);
        assert!(close(x.summary().max_ms, 3.0));
        assert!(close(x.summary().p50_ms, 3.0));
    }

    #[test]
    fn huge_latencies_saturate_instead_of_failing() {
        let mut r = Recorder::default();
        r.record(Duration::from_secs(3600));
        let mut m = Merged::default();
        m.add_task(&r.take().unwrap());
        assert_eq!(m.count(), 1);
        assert!(m.summary().max_ms >= 59_000.0);
    }

    #[test]
    fn empty_summary_is_zero() {
        assert_eq!(Merged::default().summary(), Summary::default());
    }
}
