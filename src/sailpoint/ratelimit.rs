//! The per-tenant request budget and the retry policy.
//!
//! SailPoint allows 100 requests per 10 s per client id; the exporter stays below that
//! with a sliding-window [`RateLimiter`] (default 90 per 10 s) shared by every request of
//! a tenant, and pauses the whole tenant when a 429's `Retry-After` says so. Failed
//! requests are retried a bounded number of times with exponential backoff and jitter
//! ([`RetryPolicy`]). Both use tokio's clock, so tests run them with paused time.

use std::collections::VecDeque;
use std::time::Duration;

use rand::Rng;
use tokio::sync::Mutex;
use tokio::time::{Instant, sleep_until};

use crate::config::MAX_DURATION;

/// Longest `Retry-After` honoured as given; longer values are capped to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// At most `requests` starts within any window of `per`, plus pauses ordered by 429s.
#[derive(Debug)]
pub struct RateLimiter {
    requests: usize,
    per: Duration,
    state: Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    starts: VecDeque<Instant>,
    paused_until: Option<Instant>,
}

impl RateLimiter {
    /// A limiter admitting `requests` (at least 1) per `per` (at most
    /// [`MAX_DURATION`], so that window arithmetic on `Instant`s cannot overflow).
    pub fn new(requests: u32, per: Duration) -> RateLimiter {
        RateLimiter {
            requests: usize::try_from(requests.max(1)).unwrap_or(usize::MAX),
            per: per.min(MAX_DURATION),
            state: Mutex::new(Window::default()),
        }
    }

    /// Waits until a request may start, then counts it.
    pub async fn acquire(&self) {
        loop {
            let wake = {
                let mut w = self.state.lock().await;
                let now = Instant::now();
                match w.paused_until {
                    Some(until) if until > now => Some(until),
                    _ => {
                        while w.starts.front().is_some_and(|t| *t + self.per <= now) {
                            w.starts.pop_front();
                        }
                        if w.starts.len() < self.requests {
                            w.starts.push_back(now);
                            None
                        } else {
                            w.starts.front().map(|t| *t + self.per)
                        }
                    }
                }
            };
            match wake {
                None => return,
                Some(at) => sleep_until(at).await,
            }
        }
    }

    /// Holds every request of the tenant for `delay` (from a 429's `Retry-After`).
    pub async fn pause_for(&self, delay: Duration) {
        let until = Instant::now() + delay.min(MAX_RETRY_AFTER);
        let mut w = self.state.lock().await;
        if w.paused_until.is_none_or(|p| p < until) {
            w.paused_until = Some(until);
        }
    }
}

/// How often and how patiently failed requests are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Delay before the first retry; doubled each time.
    pub base_delay: Duration,
    /// Upper bound of one delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `retry` (0-based): exponential, capped, with jitter
    /// in `[d/2, d]` so that many clients do not retry in lockstep.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(retry.min(20)));
        let full = exp.min(self.max_delay);
        let half = full / 2;
        let jitter_ms =
            rand::thread_rng().gen_range(0..=half.as_millis().min(u64::MAX as u128) as u64);
        half + Duration::from_millis(jitter_ms)
    }
}

/// Parses a `Retry-After` value: delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = value.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Some(Duration::from_secs_f64(
            secs.min(MAX_RETRY_AFTER.as_secs_f64()),
        ));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let delta = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn admits_the_budget_then_waits_for_the_window() {
        let limiter = RateLimiter::new(3, Duration::from_secs(10));
        let start = Instant::now();
        for _ in 0..3 {
            limiter.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        limiter.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn sliding_window_frees_slots_as_they_age() {
        let limiter = RateLimiter::new(2, Duration::from_secs(10));
        let start = Instant::now();
        limiter.acquire().await;
        tokio::time::sleep(Duration::from_secs(4)).await;
        limiter.acquire().await;
        limiter.acquire().await; // waits for the first slot: t = 10
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        limiter.acquire().await; // second slot ages out at t = 14
        assert_eq!(start.elapsed(), Duration::from_secs(14));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_pauses_every_caller() {
        let limiter = RateLimiter::new(100, Duration::from_secs(10));
        let start = Instant::now();
        limiter.pause_for(Duration::from_secs(7)).await;
        limiter.pause_for(Duration::from_secs(2)).await; // shorter pause does not shorten
        limiter.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_secs(7));
        limiter.pause_for(Duration::from_secs(3600)).await;
        limiter.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_secs(7) + MAX_RETRY_AFTER);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::default();
        for (retry, full) in [(0, 500), (1, 1000), (3, 4000), (10, 30_000), (40, 30_000)] {
            let d = p.backoff(retry).as_millis() as u64;
            assert!((full / 2..=full).contains(&d), "retry {retry}: {d} ms");
        }
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after(" 1.5 "),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
