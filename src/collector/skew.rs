//! The tenant's clock as the poller follows it. Every bound of the exactly-once argument
//! lives in tenant time, taken from the answers' `Date` header; one answer's `Date` is not
//! trusted to move those bounds *later*. A bound that is too early only makes a read
//! longer (the counted-once memory absorbs the re-read), a bound that is too late skips
//! completions for good, so a `Date` ahead of the exporter's clock is followed only once
//! [`CONFIRMING_ANSWERS`] answers in a row have shown it, while one behind is followed at
//! once (docs/decisions.md, "A clock off by more than a day").

use std::collections::VecDeque;

use chrono::Duration;

/// How many answers in a row must show the tenant's clock ahead before it is followed.
pub const CONFIRMING_ANSWERS: usize = 3;

/// The skews (tenant clock minus exporter clock) of the last answers, and the one
/// followed: the smallest of them, and never ahead of the exporter's clock until
/// [`CONFIRMING_ANSWERS`] answers have been seen.
#[derive(Debug, Clone, Default)]
pub struct Skew {
    recent: VecDeque<Duration>,
}

impl Skew {
    /// Records the skew one answer's `Date` showed.
    pub fn observe(&mut self, measured: Duration) {
        if self.recent.len() == CONFIRMING_ANSWERS {
            self.recent.pop_front();
        }
        self.recent.push_back(measured);
    }

    /// The skew the bounds follow (zero before any answer).
    pub fn followed(&self) -> Duration {
        let smallest = self
            .recent
            .iter()
            .min()
            .copied()
            .unwrap_or_else(Duration::zero);
        if self.recent.len() < CONFIRMING_ANSWERS {
            smallest.min(Duration::zero())
        } else {
            smallest
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skew_behind_is_followed_at_once_one_ahead_after_three_answers() {
        let mut s = Skew::default();
        assert_eq!(s.followed(), Duration::zero());
        s.observe(Duration::seconds(-600));
        assert_eq!(s.followed(), Duration::seconds(-600));
        let mut s = Skew::default();
        s.observe(Duration::days(2));
        s.observe(Duration::days(2));
        assert_eq!(s.followed(), Duration::zero(), "two answers do not confirm");
        s.observe(Duration::days(2) + Duration::seconds(1));
        assert_eq!(s.followed(), Duration::days(2));
        // One answer a year ahead among normal ones never moves the bounds later.
        s.observe(Duration::days(365));
        assert_eq!(s.followed(), Duration::days(2));
        s.observe(Duration::zero());
        assert_eq!(s.followed(), Duration::zero());
    }
}
