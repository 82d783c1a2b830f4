//! A reader of the text exposition format, so tests can check rendered values exactly
//! rather than by substring. Plain text in, plain data out: the library's unit tests and
//! the integration tests both use it.

use std::collections::BTreeMap;

/// One sample line: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name (with `_bucket`/`_sum`/`_count` suffixes as rendered).
    pub name: String,
    /// Label pairs.
    pub labels: BTreeMap<String, String>,
    /// Sample value.
    pub value: f64,
}

/// Parses every sample line; comment and malformed lines are skipped.
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let (series, value) = line.rsplit_once(' ')?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    let Some((name, rest)) = series.split_once('{') else {
        return Some(Sample {
            name: series.to_string(),
            labels: BTreeMap::new(),
            value,
        });
    };
    let labels = parse_labels(rest.strip_suffix('}')?)?;
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

fn parse_labels(mut s: &str) -> Option<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    while !s.is_empty() {
        let (key, rest) = s.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (_, c) => value.push(c),
            }
        };
        labels.insert(key.trim_start_matches(',').to_string(), value);
        s = rest.get(end + 1..)?.trim_start_matches(',');
    }
    Some(labels)
}

/// The value of the one sample of `name` whose labels include all of `labels`
/// (None when absent; the first match when several).
pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.name == name && matches(s, labels))
        .map(|s| s.value)
}

/// Sum over every sample of `name` whose labels include all of `labels`.
pub fn sum(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && matches(s, labels))
        .map(|s| s.value)
        .sum()
}

/// Number of series of `name` whose labels include all of `labels`.
pub fn count(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> usize {
    samples
        .iter()
        .filter(|s| s.name == name && matches(s, labels))
        .count()
}

fn matches(s: &Sample, labels: &[(&str, &str)]) -> bool {
    labels
        .iter()
        .all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v))
}

/// Cumulative bucket counts `(le, count)` of `values` for `bounds` plus `+Inf`: the
/// number of values `<= le`, as the text format defines a histogram bucket (what a
/// rendered `_bucket` series must say for these observations).
pub fn expected_buckets(values: &[f64], bounds: &[f64]) -> Vec<(f64, u64)> {
    bounds
        .iter()
        .copied()
        .chain([f64::INFINITY])
        .map(|le| (le, values.iter().filter(|v| **v <= le).count() as u64))
        .collect()
}
