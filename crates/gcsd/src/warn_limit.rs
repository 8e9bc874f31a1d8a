//! Warnings about what a peer does wrong, at most one line per interval for each kind, with
//! the count since the last line: a flood of bad input must not become a flood of log lines.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// At most one log line per interval for one kind of event, with the count since the last.
#[derive(Default)]
pub struct WarnLimiter {
    last: Mutex<Option<Instant>>,
    since: AtomicU64,
}

impl WarnLimiter {
    const INTERVAL: Duration = Duration::from_secs(10);

    pub fn warn(&self, log: impl FnOnce(u64)) {
        let n = self.since.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = self.last.lock();
        if last.is_some_and(|t| t.elapsed() < Self::INTERVAL) {
            return;
        }
        *last = Some(Instant::now());
        self.since.store(0, Ordering::Relaxed);
        log(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_limited_and_counted() {
        let limiter = WarnLimiter::default();
        let mut logged = Vec::new();
        for _ in 0..5 {
            limiter.warn(|n| logged.push(n));
        }
        assert_eq!(logged, [1], "one line per interval");
        *limiter.last.lock() = Some(Instant::now() - WarnLimiter::INTERVAL);
        limiter.warn(|n| logged.push(n));
        assert_eq!(logged, [1, 5], "the next line counts what was not logged");
    }
}
