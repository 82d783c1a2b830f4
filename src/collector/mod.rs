//! The collector: one independent poller per tenant that keeps the metric state current
//! with exactly-once accounting of completed tasks (DESIGN §3).
//!
//! - [`tracker`]: the pure exactly-once state (pending set, watermark, dedupe set);
//! - [`read`]: a poll's reads from the API, kept apart so a poll applies whole or not at all;
//! - [`source`]: the [`TaskSource`] trait the reads go through (the SailPoint client, or
//!   a fake in tests);
//! - [`poller`]: schedules, deadlines and metric updates of one tenant.

pub mod poller;
pub mod read;
pub mod source;
pub mod tracker;

pub use poller::{Clock, PollOutcome, PollSettings, TenantPoller, system_clock};
pub use source::TaskSource;

#[cfg(test)]
mod tests;
