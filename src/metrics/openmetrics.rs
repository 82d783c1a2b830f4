//! What OpenMetrics text 1.0.0 writes differently from the Prometheus text format:
//! counter families are named without `_total` in HELP and TYPE (the samples keep it),
//! histogram bounds are floats (`1.0`), samples may carry an exemplar (` # {task_id="…"}
//! value timestamp`), and the exposition ends with `# EOF`. The series themselves are
//! written by [`text`](super::text), shared with the text format.

use std::fmt::Write as _;

use super::catalogue::{Family, Kind, POLLED};
use super::state::Exemplar;
use super::text::{Samples, escape, number};

/// The last line of an OpenMetrics exposition.
pub const EOF: &str = "# EOF\n";

/// A tenant family's HELP and TYPE lines.
pub fn header(family: &Family) -> String {
    let name = match family.kind {
        Kind::Counter => family.name.strip_suffix("_total").unwrap_or(family.name),
        Kind::Gauge | Kind::Histogram => family.name,
    };
    format!(
        "# HELP {name} {}\n# TYPE {name} {}\n",
        escape(&format!("{} {POLLED}", family.help), true),
        family.kind.as_str()
    )
}

/// How OpenMetrics writes a series' samples: bounds as floats, exemplars after the
/// samples that have one.
pub(super) const SAMPLES: Samples = Samples {
    bound: float,
    exemplar: Some(exemplar),
};

/// A number as OpenMetrics writes bucket bounds: integral values with `.0`.
pub fn float(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.1}")
    } else {
        number(v)
    }
}

/// The exemplar suffix of a sample: ` # {task_id="…"} value timestamp`.
pub fn exemplar(e: &Exemplar) -> String {
    let mut out = format!(
        " # {{task_id=\"{}\"}} {}",
        escape(&e.task_id, true),
        number(e.value)
    );
    if let Some(ms) = e.at_ms {
        let _ = write!(out, " {}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000));
    }
    out
}

/// The process-wide families gathered from the `prometheus` registry (counters and
/// gauges; any other type is written as `unknown`), then `# EOF`.
pub fn process(families: &[prometheus::proto::MetricFamily]) -> String {
    use prometheus::proto::MetricType;
    let mut out = String::new();
    for family in families {
        let kind = family.get_field_type();
        let (name, sample, kind_word) = match kind {
            MetricType::COUNTER => {
                let name = family
                    .name()
                    .strip_suffix("_total")
                    .unwrap_or(family.name());
                (name.to_string(), format!("{name}_total"), "counter")
            }
            MetricType::GAUGE => (
                family.name().to_string(),
                family.name().to_string(),
                "gauge",
            ),
            _ => (
                family.name().to_string(),
                family.name().to_string(),
                "unknown",
            ),
        };
        let _ = write!(
            out,
            "# HELP {name} {}\n# TYPE {name} {kind_word}\n",
            escape(family.help(), true)
        );
        for metric in family.get_metric() {
            let pairs: Vec<String> = metric
                .get_label()
                .iter()
                .map(|l| format!("{}=\"{}\"", l.name(), escape(l.value(), true)))
                .collect();
            let value = match kind {
                MetricType::COUNTER => metric.counter.value(),
                MetricType::GAUGE => metric.gauge.value(),
                _ => metric.untyped.value(),
            };
            let labels = if pairs.is_empty() {
                String::new()
            } else {
                format!("{{{}}}", pairs.join(","))
            };
            let _ = writeln!(out, "{sample}{labels} {}", number(value));
        }
    }
    out.push_str(EOF);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_floats_and_exemplars_carry_the_task_and_its_time() {
        assert_eq!(float(60.0), "60.0");
        assert_eq!(float(0.5), "0.5");
        assert_eq!(float(f64::INFINITY), "+Inf");
        let e = Exemplar {
            task_id: "a\"b".into(),
            value: 42.5,
            at_ms: Some(1_700_000_000_007),
        };
        assert_eq!(exemplar(&e), " # {task_id=\"a\\\"b\"} 42.5 1700000000.007");
        let untimed = Exemplar { at_ms: None, ..e };
        assert_eq!(exemplar(&untimed), " # {task_id=\"a\\\"b\"} 42.5");
    }
}
