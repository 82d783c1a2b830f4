//! What the counted-once memory costs (docs/scale.md, "Memory per remembered
//! completion"): the heap a tracker keeps for each completion it remembers for
//! `lookback`, measured with a counting allocator, for 10 000 completions (a busy tenant's
//! day at the default lookback of 24 h).
//!
//! Run: `cargo test --test it remembered_memory -- --nocapture` prints the figures.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use chrono::{DateTime, Duration, Utc};
use sailpoint_task_exporter::collector::tracker::{
    CompletedRead, PendingRead, PrimeRead, Tracker, TrackerConfig,
};
use sailpoint_task_exporter::sailpoint::model::TaskStatus;

/// The system allocator, keeping the number of live heap bytes allocated and freed by a
/// thread while that thread measures. The integration tests share one process and run
/// concurrently, so a process-wide count would include other tests' allocations; counting
/// per thread keeps the figure exact.
struct Counting;

thread_local! {
    /// Whether this thread's allocations are counted.
    static MEASURING: Cell<bool> = const { Cell::new(false) };
    /// Live bytes allocated minus freed by this thread while measuring.
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

/// Adds `delta` to this thread's count when it measures. Const-initialised cells without
/// destructors: reading them never allocates, so the allocator may use them.
fn record(delta: isize) {
    let _ = MEASURING.try_with(|on| {
        if on.get() {
            let _ = LIVE.try_with(|live| live.set(live.get() + delta));
        }
    });
}

/// Runs `f` with this thread's allocations counted; returns the heap bytes it left live.
fn measure(f: impl FnOnce()) -> isize {
    LIVE.with(|live| live.set(0));
    MEASURING.with(|on| on.set(true));
    f();
    MEASURING.with(|on| on.set(false));
    LIVE.with(Cell::get)
}

// SAFETY: every call is forwarded to the system allocator with the same arguments; the
// counter is only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size() as isize);
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        record(-(layout.size() as isize));
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size as isize - layout.size() as isize);
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const COMPLETIONS: usize = 10_000;

fn completed(i: usize, created: DateTime<Utc>) -> TaskStatus {
    serde_json::from_value(serde_json::json!({
        "id": format!("{:032x}", (0x2c91_8083_5d2e_5168_u128 << 64) | i as u128),
        "created": created,
        "completed": created + Duration::seconds(30),
        "completionStatus": "SUCCESS",
    }))
    .unwrap()
}

/// A day of 10 000 completions, read by completed polls of 100 tasks each, stays in the
/// tracker at a small, fixed cost per completion (SailPoint ids kept as 16 bytes).
#[test]
fn a_remembered_completion_costs_a_few_dozen_bytes() {
    let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .unwrap()
        .to_utc();
    let mut tracker = Tracker::new(TrackerConfig {
        overlap: Duration::seconds(120),
        lookback: Duration::days(1),
    });
    let empty = PendingRead {
        started: start,
        listed: Vec::new(),
        lookups: Vec::new(),
    };
    tracker.apply_prime(
        PrimeRead {
            pending: empty,
            history: CompletedRead {
                lower_bound: start - Duration::days(1),
                tasks: Vec::new(),
                unsorted: false,
            },
        },
        start,
    );
    let step = 86_400 / COMPLETIONS as i64;
    let bytes = measure(|| {
        for batch in 0..COMPLETIONS / 100 {
            let first = batch * 100;
            let tasks: Vec<TaskStatus> = (first..first + 100)
                .rev()
                .map(|i| completed(i, start + Duration::seconds(step * i as i64)))
                .collect();
            let now = start + Duration::seconds(step * (first as i64 + 100));
            let read = CompletedRead {
                lower_bound: start,
                tasks,
                unsorted: false,
            };
            let counted = tracker.apply_completed(read, now);
            assert_eq!(counted.len(), 100);
        }
    });
    let per_completion = bytes as f64 / COMPLETIONS as f64;
    println!(
        "{COMPLETIONS} remembered completions: {bytes} bytes of heap, {per_completion:.1} bytes each"
    );
    assert_eq!(tracker.recent().len(), COMPLETIONS);
    assert!(
        (25.0..=64.0).contains(&per_completion),
        "{per_completion} bytes per remembered completion"
    );
}
