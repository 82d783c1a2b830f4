//! The simulated tenant's notion of "now": the wall clock or a frozen start, plus an
//! offset that tests move forward. Task life cycles and token expiry are evaluated
//! against it, so a test can make an hour pass without sleeping.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};

use super::config::ClockMode;

/// "Now" for the simulated tenant.
#[derive(Debug)]
pub(crate) struct SimClock {
    mode: ClockMode,
    offset: Mutex<chrono::Duration>,
}

impl SimClock {
    pub(crate) fn new(mode: ClockMode) -> SimClock {
        SimClock {
            mode,
            offset: Mutex::new(chrono::Duration::zero()),
        }
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        let base = match self.mode {
            ClockMode::Real => Utc::now(),
            ClockMode::Manual { start } => start,
        };
        // SailPoint's timestamps have millisecond precision; so has the simulated tenant,
        // or its ground truth would differ from what it serves.
        (base + *lock(&self.offset)).trunc_subsecs(3)
    }

    /// Moves the clock forward (in real mode: jumps ahead of the wall clock).
    pub(crate) fn advance(&self, d: Duration) {
        let step = chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        let mut offset = lock(&self.offset);
        *offset = offset.checked_add(&step).unwrap_or(*offset);
    }
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it (the simulator's
/// state stays consistent because every update completes before unlocking).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let start = DateTime::parse_from_rfc3339("2026-01-15T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = SimClock::new(ClockMode::Manual { start });
        assert_eq!(clock.now(), start);
        clock.advance(Duration::from_secs(90));
        assert_eq!(clock.now(), start + chrono::Duration::seconds(90));
    }
}
