//! Fault injection and the tenant's own rate limit, decided once per API request.
//!
//! Decisions draw from a seeded random stream in request order, so a test that sends
//! the same requests sees the same faults. Faults only change answers; the ground
//! truth is never touched here.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use rand::Rng;
use rand::rngs::StdRng;
use tokio::time::Instant;

use super::config::Faults;
use super::generator::{self, stream};

/// What to do with one API request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Answer normally (after `latency`), possibly spoiling a 200 JSON body.
    Serve { latency: Duration, body: BodyFault },
    /// 429 with this many seconds in `Retry-After`.
    RateLimited { retry_after: u64, latency: Duration },
    /// 500 ErrorResponseDto.
    ServerError { latency: Duration },
    /// Close the connection without answering.
    Reset,
}

/// How a 200 JSON body is spoiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFault {
    None,
    Malformed,
    Truncated,
}

impl BodyFault {
    /// Applies the fault to a serialised JSON body. The results are never valid JSON:
    /// a proper prefix of an array or object lacks its closing bracket, and a doubled
    /// comma after the opening bracket is a syntax error.
    pub(crate) fn apply(self, body: Vec<u8>) -> Vec<u8> {
        match self {
            BodyFault::None => body,
            BodyFault::Truncated => {
                let keep = (body.len() / 2).max(1).min(body.len());
                body.into_iter().take(keep).collect()
            }
            BodyFault::Malformed => {
                let mut out = Vec::with_capacity(body.len() + 2);
                let mut iter = body.into_iter();
                out.extend(iter.next());
                out.extend_from_slice(b",,");
                out.extend(iter);
                out
            }
        }
    }
}

/// The fault state of a running tenant.
pub(crate) struct FaultState {
    faults: Faults,
    rng: StdRng,
    requests: u64,
    burst_left: u32,
    windows: HashMap<String, VecDeque<Instant>>,
}

impl FaultState {
    pub(crate) fn new(seed: u64, faults: Faults) -> FaultState {
        FaultState {
            faults,
            rng: generator::rng(seed, stream::FAULTS, 0, 0),
            requests: 0,
            burst_left: 0,
            windows: HashMap::new(),
        }
    }

    pub(crate) fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Replaces the faults; an ongoing 429 burst ends.
    pub(crate) fn set(&mut self, faults: Faults) {
        self.faults = faults;
        self.burst_left = 0;
    }

    /// Decides the fate of one API request by `client`.
    pub(crate) fn decide(&mut self, client: &str, now: Instant) -> Verdict {
        self.requests += 1;
        let latency = self.faults.latency;
        if let Some(wait) = self.own_limit(client, now) {
            return Verdict::RateLimited {
                retry_after: wait,
                latency,
            };
        }
        if self.in_burst() {
            return Verdict::RateLimited {
                retry_after: self.faults.retry_after.as_secs(),
                latency,
            };
        }
        if self.chance(self.faults.reset_rate) {
            return Verdict::Reset;
        }
        if self.chance(self.faults.server_error_rate) {
            return Verdict::ServerError { latency };
        }
        let body = if self.chance(self.faults.malformed_rate) {
            BodyFault::Malformed
        } else if self.chance(self.faults.truncated_rate) {
            BodyFault::Truncated
        } else {
            BodyFault::None
        };
        Verdict::Serve { latency, body }
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.r#gen::<f64>() < p
    }

    /// True when this request is a 429 of a burst (an ongoing one or one it starts).
    fn in_burst(&mut self) -> bool {
        if self.burst_left > 0 {
            self.burst_left -= 1;
            return true;
        }
        let every = self
            .faults
            .rate_limit_every
            .is_some_and(|n| n > 0 && self.requests.is_multiple_of(n));
        if every || self.chance(self.faults.rate_limit_probability) {
            self.burst_left = self.faults.rate_limit_burst.max(1) - 1;
            return true;
        }
        false
    }

    /// The tenant's own sliding-window limit; `Some(seconds to wait)` when exceeded.
    fn own_limit(&mut self, client: &str, now: Instant) -> Option<u64> {
        let limit = self.faults.rate_limit?;
        let window = self.windows.entry(client.to_string()).or_default();
        while window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= limit.per)
        {
            window.pop_front();
        }
        if window.len() >= limit.requests as usize {
            let oldest = window.front().copied().unwrap_or(now);
            let wait = limit.per.saturating_sub(now.duration_since(oldest));
            return Some(wait.as_secs_f64().ceil().max(1.0) as u64);
        }
        window.push_back(now);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RateLimit;

    #[test]
    fn every_nth_request_starts_a_burst() {
        let faults = Faults {
            rate_limit_every: Some(3),
            rate_limit_burst: 2,
            ..Faults::default()
        };
        let mut state = FaultState::new(1, faults);
        let now = Instant::now();
        let limited: Vec<bool> = (0..8)
            .map(|_| matches!(state.decide("c", now), Verdict::RateLimited { .. }))
            .collect();
        assert_eq!(
            limited,
            [false, false, true, true, false, true, true, false]
        );
    }

    #[test]
    fn own_rate_limit_counts_per_client() {
        let faults = Faults {
            rate_limit: Some(RateLimit {
                requests: 2,
                per: Duration::from_secs(10),
            }),
            ..Faults::default()
        };
        let mut state = FaultState::new(1, faults);
        let now = Instant::now();
        assert!(matches!(state.decide("a", now), Verdict::Serve { .. }));
        assert!(matches!(state.decide("a", now), Verdict::Serve { .. }));
        assert_eq!(
            state.decide("a", now + Duration::from_secs(4)),
            Verdict::RateLimited {
                retry_after: 6,
                latency: Duration::ZERO
            }
        );
        assert!(matches!(state.decide("b", now), Verdict::Serve { .. }));
        assert!(matches!(
            state.decide("a", now + Duration::from_secs(10)),
            Verdict::Serve { .. }
        ));
    }

    #[test]
    fn spoiled_bodies_are_invalid_json() {
        let body = br#"[{"id":"a"}]"#.to_vec();
        for fault in [BodyFault::Malformed, BodyFault::Truncated] {
            let spoiled = fault.apply(body.clone());
            assert!(serde_json::from_slice::<serde_json::Value>(&spoiled).is_err());
        }
    }
}
