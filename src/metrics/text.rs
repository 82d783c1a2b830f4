//! The Prometheus text format 0.0.4 and OpenMetrics text of one tenant family: HELP and
//! TYPE lines, and the series in label-name order with escaped values. Apart from the
//! rendering of pieces ([`render`](super::render)); [`openmetrics`](super::openmetrics)
//! adds what OpenMetrics writes differently, and the renderer plugs it in (`Samples`).

use std::fmt::Write as _;

use super::Rules;
use super::catalogue::{Family, POLLED};
use super::state::{Exemplar, TenantState, Value};

/// A tenant family's HELP and TYPE lines.
pub(super) fn header(family: &Family) -> String {
    format!(
        "# HELP {} {}\n# TYPE {} {}\n",
        family.name,
        escape(&format!("{} {POLLED}", family.help), false),
        family.name,
        family.kind.as_str()
    )
}

/// What the two text formats write differently in a series' samples: the bucket bounds,
/// and the exemplar after a sample (OpenMetrics only). The renderer passes OpenMetrics'
/// own ([`openmetrics`](super::openmetrics)) so neither module names the other.
pub(super) struct Samples {
    /// A bucket bound.
    pub(super) bound: fn(f64) -> String,
    /// The exemplar suffix of a sample, None when the format has no exemplars.
    pub(super) exemplar: Option<fn(&Exemplar) -> String>,
}

/// The Prometheus text format 0.0.4's samples: plain bounds, no exemplars.
pub(super) const PLAIN: Samples = Samples {
    bound: number,
    exemplar: None,
};

/// Writes one tenant's series of `family` in a text format whose samples are written as
/// `samples` says.
pub(super) fn append(
    family: &Family,
    tenant: &str,
    state: &TenantState,
    rules: &Rules,
    samples: &Samples,
    out: &mut String,
) {
    let Some(series) = state.values.series(family) else {
        return;
    };
    let bounds = rules.bounds(family.buckets);
    let bound = samples.bound;
    let exemplar = |e: Option<&Exemplar>| match (e, samples.exemplar) {
        (Some(e), Some(write)) => write(e),
        _ => String::new(),
    };
    for (labels, value) in &series.0 {
        if labels.len() + 1 != family.labels.len() {
            continue;
        }
        let pairs = label_pairs(family, tenant, labels);
        let name = family.name;
        match value {
            Value::Counter(c) => {
                let e = exemplar(state.values.exemplar(family, labels));
                let _ = writeln!(out, "{name}{{{pairs}}} {c}{e}");
            }
            Value::Sum(v) | Value::Gauge(v) => {
                let _ = writeln!(out, "{name}{{{pairs}}} {}", number(*v));
            }
            Value::Histogram(h) => {
                let sep = if pairs.is_empty() { "" } else { "," };
                let mut cumulative = 0u64;
                for (index, (upper, count)) in bounds.iter().zip(&h.counts).enumerate() {
                    cumulative = cumulative.saturating_add(*count);
                    let e = exemplar(h.exemplar(index));
                    let _ = writeln!(
                        out,
                        "{name}_bucket{{{pairs}{sep}le=\"{}\"}} {cumulative}{e}",
                        bound(*upper)
                    );
                }
                let e = exemplar(h.exemplar(bounds.len()));
                let _ = writeln!(
                    out,
                    "{name}_bucket{{{pairs}{sep}le=\"+Inf\"}} {}{e}",
                    h.count
                );
                let _ = writeln!(out, "{name}_sum{{{pairs}}} {}", number(h.sum));
                let _ = writeln!(out, "{name}_count{{{pairs}}} {}", h.count);
            }
        }
    }
}

/// The label pairs of a series, in name order like the `prometheus` crate writes them.
fn label_pairs(family: &Family, tenant: &str, labels: &[String]) -> String {
    let mut named: Vec<(&str, &str)> = family
        .labels
        .iter()
        .copied()
        .zip(std::iter::once(tenant).chain(labels.iter().map(String::as_str)))
        .collect();
    named.sort_unstable_by_key(|(name, _)| *name);
    let mut pairs = String::new();
    for (name, value) in named {
        if !pairs.is_empty() {
            pairs.push(',');
        }
        let _ = write!(pairs, "{name}=\"{}\"", escape(value, true));
    }
    pairs
}

/// A sample value or bucket bound as the text format writes it.
pub(super) fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        v.to_string()
    }
}

/// Escapes a label value (backslash, double quote, newline) or a HELP text (backslash,
/// newline).
pub(super) fn escape(s: &str, quote: bool) -> std::borrow::Cow<'_, str> {
    if !(s.contains(['\\', '\n']) || quote && s.contains('"')) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_and_help_are_escaped_as_the_text_format_requires() {
        assert_eq!(escape("plain", true), "plain");
        assert_eq!(escape("a\"b\\c\nd", true), "a\\\"b\\\\c\\nd");
        assert_eq!(escape("say \"hi\"\n", false), "say \"hi\"\\n");
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(f64::NEG_INFINITY), "-Inf");
        assert_eq!(number(0.1), "0.1");
        assert_eq!(number(86400.0), "86400");
    }
}
