//! Native (sparse, exponential) histogram buckets for the task duration and queue-wait
//! histograms, served in the protobuf format next to the classic buckets (as
//! client_golang does), so a Prometheus with `--enable-feature=native-histograms` keeps a
//! whole histogram in one series.
//!
//! Schema [`SCHEMA`] divides each power of two into 2^3 = 8 buckets, each 9.05 % wider
//! than the one before: task durations range from a second to a day (2^0 .. 2^16.4), so
//! at most about 131 buckets are populated, and a quantile is known within 9 % (see
//! docs/decisions.md). Observations of at most [`ZERO_THRESHOLD`] (the API's
//! millisecond precision) go to the zero bucket.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::catalogue::{Buckets, Family};

/// The bucket schema: bucket `i` is (2^((i-1)/8), 2^(i/8)].
pub const SCHEMA: i32 = 3;

/// The breadth of the zero bucket, in seconds: the API's timestamps have millisecond
/// precision, so a shorter duration is indistinguishable from 0.
pub const ZERO_THRESHOLD: f64 = 0.001;

/// Whether `family` carries native buckets: the task duration and queue-wait
/// histograms (the API-request histogram is the exporter's own and stays classic).
pub fn applies(family: &Family) -> bool {
    matches!(family.buckets, Buckets::TaskDuration | Buckets::QueueWait)
}

/// The native buckets of one histogram series: the zero bucket's count and the count of
/// every populated positive bucket by index (durations are never negative).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sparse {
    /// Observations of at most [`ZERO_THRESHOLD`].
    pub zero_count: u64,
    /// Count per bucket index (not cumulative); only populated buckets.
    pub buckets: BTreeMap<i32, u64>,
}

impl Sparse {
    /// Counts one observation.
    pub fn observe(&mut self, value: f64) {
        match index(value) {
            Some(i) => *self.buckets.entry(i).or_default() += 1,
            None => self.zero_count += 1,
        }
    }

    /// Observations counted in every bucket together.
    pub fn total(&self) -> u64 {
        self.buckets
            .values()
            .fold(self.zero_count, |a, c| a.saturating_add(*c))
    }

    /// An approximation from classic buckets (a state file written before native
    /// buckets existed): each classic bucket's count goes to the native bucket holding
    /// its upper bound, the overflow bucket's to the bucket holding the highest bound.
    /// Keeps the total equal to the classic count, so the series stays consistent.
    pub fn from_classic(bounds: &[f64], counts: &[u64]) -> Sparse {
        let mut sparse = Sparse::default();
        let last = bounds.last().copied().unwrap_or(1.0);
        for (i, count) in counts.iter().enumerate() {
            let at = bounds.get(i).copied().unwrap_or(last);
            if *count == 0 {
                continue;
            }
            match index(at) {
                Some(i) => *sparse.buckets.entry(i).or_default() += count,
                None => sparse.zero_count += count,
            }
        }
        sparse
    }

    /// The populated buckets as protobuf spans (offset from the previous span's end,
    /// length) and count deltas (each bucket's count minus the previous one's).
    pub fn spans_and_deltas(&self) -> (Vec<(i32, u32)>, Vec<i64>) {
        let mut spans: Vec<(i32, u32)> = Vec::new();
        let mut deltas = Vec::with_capacity(self.buckets.len());
        let (mut next, mut previous) = (None::<i32>, 0i64);
        for (index, count) in &self.buckets {
            match (next, spans.last_mut()) {
                (Some(n), Some(span)) if n == *index => span.1 += 1,
                _ => spans.push((index - next.unwrap_or(0), 1)),
            }
            next = Some(index + 1);
            let count = i64::try_from(*count).unwrap_or(i64::MAX);
            deltas.push(count.saturating_sub(previous));
            previous = count;
        }
        (spans, deltas)
    }
}

/// The index of the bucket holding `value`, None for the zero bucket (and for values
/// that are not numbers).
pub fn index(value: f64) -> Option<i32> {
    if value.is_nan() || value <= ZERO_THRESHOLD {
        return None;
    }
    let per_octave = f64::from(1u32 << SCHEMA);
    let guess = (value.log2() * per_octave).ceil();
    // log2 may round across a boundary: step to the bucket whose bounds hold the value.
    let mut i = guess.clamp(-1e6, 1e6) as i32;
    if value <= upper_bound(i - 1) {
        i -= 1;
    } else if value > upper_bound(i) {
        i += 1;
    }
    Some(i)
}

/// The inclusive upper bound of bucket `index`.
pub fn upper_bound(index: i32) -> f64 {
    (f64::from(index) / f64::from(1u32 << SCHEMA)).exp2()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_hold_their_upper_bound_and_not_their_lower_one() {
        assert_eq!(index(1.0), Some(0));
        assert_eq!(index(2.0), Some(8));
        assert_eq!(index(1.0001), Some(1));
        assert_eq!(index(0.5), Some(-8));
        assert_eq!(index(86_400.0), Some(132));
        assert_eq!(index(0.001), None);
        assert_eq!(index(0.0), None);
        assert_eq!(index(f64::NAN), None);
        for i in -79..140 {
            assert_eq!(index(upper_bound(i)), Some(i), "bound of {i}");
            assert_eq!(index(upper_bound(i) * 1.000_001), Some(i + 1), "above {i}");
        }
    }

    #[test]
    fn spans_cover_runs_and_deltas_are_relative() {
        let mut s = Sparse::default();
        for v in [1.0, 1.0, 1.05, 2.0, 0.0] {
            s.observe(v);
        }
        // Buckets 0 (2), 1 (1), 8 (1); zero bucket 1.
        assert_eq!(s.zero_count, 1);
        assert_eq!(s.total(), 5);
        assert_eq!(s.spans_and_deltas(), (vec![(0, 2), (6, 1)], vec![2, -1, 0]));
        let mut negative_start = Sparse::default();
        negative_start.observe(0.5);
        assert_eq!(negative_start.spans_and_deltas(), (vec![(-8, 1)], vec![1]));
    }

    #[test]
    fn classic_counts_convert_with_the_same_total() {
        let s = Sparse::from_classic(&[1.0, 60.0], &[2, 0, 3]);
        assert_eq!(s.total(), 5);
        assert_eq!(s.buckets.get(&0), Some(&2));
        assert_eq!(s.buckets.get(&index(60.0).unwrap()), Some(&3));
    }
}
