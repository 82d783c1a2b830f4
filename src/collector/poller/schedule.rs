//! When a tenant's polls run, and when they stop: the two schedules of one poller and
//! its shutdown, kept apart from what a poll does (the rest of the `poller` module), so
//! the rules of a stop — abandon a read, finish an apply, write the state last — stand
//! in one place.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{PollOutcome, TaskSource, TenantPoller};
use crate::collector::read::ReadError;
use crate::collector::tracker::Tracker;
use crate::config::MAX_DURATION;
use crate::metrics::PollList;

impl<S: TaskSource> TenantPoller<S> {
    /// Polls on both schedules until `shutdown` is cancelled, then writes the state once
    /// more (with `storage.path`). The first poll runs at once; a poll still reading at
    /// shutdown is abandoned, which is safe because nothing of an unfinished read is
    /// applied; a poll already applying finishes first.
    pub async fn run(mut self, shutdown: CancellationToken) -> Tracker {
        let start = Instant::now();
        let mut due = [(PollList::Pending, start), (PollList::Completed, start)];
        while !shutdown.is_cancelled() {
            due.sort_by_key(|(_, at)| *at);
            let [(list, at), _] = due;
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep_until(at) => {}
            }
            let Some(outcome) = self.poll_until_stopped(list, &shutdown).await else {
                break;
            };
            let now = Instant::now();
            if let Ok(PollOutcome::Primed { .. }) = outcome {
                due = [
                    (PollList::Pending, now + self.interval(PollList::Pending)),
                    (
                        PollList::Completed,
                        now + self.interval(PollList::Completed),
                    ),
                ];
            } else {
                due[0].1 = (at + self.interval(list)).max(now);
            }
        }
        if self.store.is_some() {
            self.persist().await;
        }
        tracing::debug!(tenant = self.metrics.tenant(), "poller stopped");
        self.tracker
    }

    /// One poll of `list`, abandoned (`None`) if `shutdown` is cancelled while it is
    /// still reading; once it applies, it finishes (and the poller then stops).
    async fn poll_until_stopped(
        &mut self,
        list: PollList,
        shutdown: &CancellationToken,
    ) -> Option<Result<PollOutcome, ReadError<S::Error>>> {
        let committing = Arc::clone(&self.committing);
        committing.store(false, Ordering::Release);
        let poll = self.poll(list);
        tokio::pin!(poll);
        tokio::select! {
            outcome = &mut poll => return Some(outcome),
            _ = shutdown.cancelled() => {}
        }
        if committing.load(Ordering::Acquire) {
            // Applying: let it finish, then stop.
            let _ = poll.await;
        }
        None
    }

    /// The interval of `list` plus a small random jitter (up to 5 %, at most 2 s), so
    /// tenants configured alike do not hit the API in lock-step. Capped at
    /// [`MAX_DURATION`] so that adding it to an `Instant` cannot overflow.
    fn interval(&self, list: PollList) -> Duration {
        let base = match list {
            PollList::Pending => self.settings.pending_interval,
            PollList::Completed => self.settings.completed_interval,
        }
        .min(MAX_DURATION);
        let max_jitter = (base / 20).min(Duration::from_secs(2));
        let jitter_ms = u64::try_from(max_jitter.as_millis()).unwrap_or(0);
        let jitter = if jitter_ms == 0 {
            0
        } else {
            rand::thread_rng().gen_range(0..=jitter_ms)
        };
        base + Duration::from_millis(jitter)
    }
}
