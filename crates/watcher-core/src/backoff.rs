//! How background loops meet repeated errors: they wait longer after each
//! failure, and say the same thing at most once a minute.
//!
//! A database that refuses writes, a broker that is down: every loop that
//! touches them fails on each round. Retrying at the loop's own pace would
//! spin and fill the log (ten thousand lines a second, once). Each loop
//! keeps a [`Backoff`]: it tells when to try again (doubling from `first`
//! up to `max`) and whether this failure is worth a log line ([`LogGate`]).
//! The clock is passed in, so the rules are tested without waiting and the
//! callers can use tokio's pausable clock.

use std::time::{Duration, Instant};

/// The same message is logged at most this often; the line says how many
/// were held back meanwhile.
pub const LOG_EVERY: Duration = Duration::from_secs(60);

/// Decides whether an error message is logged now.
#[derive(Debug, Default)]
pub struct LogGate {
    last: Option<(String, Instant)>,
    held_back: u64,
}

impl LogGate {
    /// `Some(n)` when `message` should be logged now, `n` being how many
    /// occurrences were held back since the last line; `None` to stay quiet.
    /// A message other than the last one is always logged.
    pub fn admit(&mut self, message: &str, now: Instant) -> Option<u64> {
        let repeat = self
            .last
            .as_ref()
            .is_some_and(|(m, at)| m == message && now.saturating_duration_since(*at) < LOG_EVERY);
        if repeat {
            self.held_back += 1;
            return None;
        }
        self.last = Some((message.to_string(), now));
        Some(std::mem::take(&mut self.held_back))
    }

    /// Forgets the last message: after a recovery, the next failure is news.
    pub fn reset(&mut self) {
        self.last = None;
        self.held_back = 0;
    }
}

/// Retries of one loop (or of one piece of work, like a plan's run).
#[derive(Debug)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    failures: u32,
    retry_at: Option<Instant>,
    gate: LogGate,
}

/// What to do after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// How long to wait before the next try.
    pub wait: Duration,
    /// Failures in a row, this one included.
    pub failures: u32,
    /// `Some(held_back)` when this failure should be logged.
    pub log: Option<u64>,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            first,
            max: max.max(first),
            failures: 0,
            retry_at: None,
            gate: LogGate::default(),
        }
    }

    /// Records a failure with its message.
    pub fn failed(&mut self, message: &str, now: Instant) -> Retry {
        self.failures = self.failures.saturating_add(1);
        let wait = self
            .first
            .saturating_mul(1u32 << (self.failures - 1).min(16))
            .min(self.max);
        self.retry_at = Some(now + wait);
        Retry {
            wait,
            failures: self.failures,
            log: self.gate.admit(message, now),
        }
    }

    /// Records a success; the number of failures it ends, if any (worth a
    /// line saying the loop recovered).
    pub fn succeeded(&mut self) -> Option<u32> {
        self.retry_at = None;
        self.gate.reset();
        match std::mem::take(&mut self.failures) {
            0 => None,
            n => Some(n),
        }
    }

    /// Whether the next try may run now (always, unless the last one failed).
    pub fn ready(&self, now: Instant) -> bool {
        self.retry_at.is_none_or(|t| now >= t)
    }

    /// How long until the next try may run (zero when it may run now).
    pub fn remaining(&self, now: Instant) -> Duration {
        self.retry_at
            .map_or(Duration::ZERO, |t| t.saturating_duration_since(now))
    }

    /// Failures in a row so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_maximum_and_a_success_starts_over() {
        let t0 = Instant::now();
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(5));
        let waits: Vec<u64> = (0..6)
            .map(|_| b.failed("db down", t0).wait.as_millis() as u64)
            .collect();
        assert_eq!(waits, [500, 1000, 2000, 4000, 5000, 5000]);
        assert!(!b.ready(t0 + Duration::from_millis(4999)));
        assert!(b.ready(t0 + Duration::from_secs(5)));
        assert_eq!(b.succeeded(), Some(6));
        assert_eq!(b.succeeded(), None);
        assert!(b.ready(t0));
        assert_eq!(b.failed("db down", t0).wait, Duration::from_millis(500));
    }

    #[test]
    fn the_same_error_is_logged_once_a_minute_with_the_count_held_back() {
        let t0 = Instant::now();
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        assert_eq!(b.failed("db down", t0).log, Some(0));
        for s in 1..60 {
            assert_eq!(b.failed("db down", t0 + Duration::from_secs(s)).log, None);
        }
        assert_eq!(
            b.failed("db down", t0 + Duration::from_secs(60)).log,
            Some(59)
        );
        // Another error is news at once.
        assert_eq!(
            b.failed("disk full", t0 + Duration::from_secs(61)).log,
            Some(0)
        );
        // After a recovery, the first failure is logged again.
        b.succeeded();
        assert_eq!(
            b.failed("disk full", t0 + Duration::from_secs(62)).log,
            Some(0)
        );
    }

    #[test]
    fn huge_failure_counts_neither_overflow_nor_exceed_the_maximum() {
        let t0 = Instant::now();
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        for _ in 0..100 {
            b.failed("x", t0);
        }
        assert_eq!(b.failed("x", t0).wait, Duration::from_secs(30));
        assert_eq!(b.remaining(t0), Duration::from_secs(30));
    }
}
