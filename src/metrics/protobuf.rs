//! The protobuf exposition format (`application/vnd.google.protobuf;
//! proto=io.prometheus.client.MetricFamily; encoding=delimited`): the messages of
//! `io/prometheus/client/metrics.proto` (prometheus/client_model), written by hand with
//! `prost`'s derive, field numbers as upstream, and the writers of one tenant's series
//! and of the process families.
//!
//! A stream is length-delimited `MetricFamily` messages. Protobuf concatenates a
//! message's repeated fields, so a family's message is its header (the varint length of
//! the whole message, then name, help and type) followed by every tenant's piece of
//! encoded `metric` fields: each tenant's piece is kept compressed like the text formats'
//! and only the small header is written per scrape, from the pieces' lengths.

use prost::Message;

use super::Rules;
use super::catalogue::{Family, Kind, POLLED};
use super::native::{self, Sparse};
use super::state::{Exemplar as Sample, TenantState, Value};
use super::values::Histogram as Observed;

/// `LabelPair`.
#[derive(Clone, PartialEq, Message)]
pub struct LabelPair {
    /// Label name.
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    /// Label value.
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
}

/// `MetricType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MetricType {
    /// Uses `Metric.counter`.
    Counter = 0,
    /// Uses `Metric.gauge`.
    Gauge = 1,
    /// Uses `Metric.summary`.
    Summary = 2,
    /// Uses `Metric.untyped`.
    Untyped = 3,
    /// Uses `Metric.histogram`.
    Histogram = 4,
    /// Uses `Metric.histogram`.
    GaugeHistogram = 5,
}

/// `Gauge`.
#[derive(Clone, PartialEq, Message)]
pub struct Gauge {
    /// The value.
    #[prost(double, optional, tag = "1")]
    pub value: Option<f64>,
}

/// `Counter`.
#[derive(Clone, PartialEq, Message)]
pub struct Counter {
    /// The count.
    #[prost(double, optional, tag = "1")]
    pub value: Option<f64>,
    /// The last counted task.
    #[prost(message, optional, tag = "2")]
    pub exemplar: Option<Exemplar>,
}

/// `Untyped`.
#[derive(Clone, PartialEq, Message)]
pub struct Untyped {
    /// The value.
    #[prost(double, optional, tag = "1")]
    pub value: Option<f64>,
}

/// `Histogram`: classic buckets, and the native ones next to them.
#[derive(Clone, PartialEq, Message)]
pub struct Histogram {
    /// Observations.
    #[prost(uint64, optional, tag = "1")]
    pub sample_count: Option<u64>,
    /// Sum of observations.
    #[prost(double, optional, tag = "2")]
    pub sample_sum: Option<f64>,
    /// Classic buckets, cumulative, in increasing order of bound.
    #[prost(message, repeated, tag = "3")]
    pub bucket: Vec<Bucket>,
    /// Native bucket schema.
    #[prost(sint32, optional, tag = "5")]
    pub schema: Option<i32>,
    /// Breadth of the zero bucket.
    #[prost(double, optional, tag = "6")]
    pub zero_threshold: Option<f64>,
    /// Count in the zero bucket.
    #[prost(uint64, optional, tag = "7")]
    pub zero_count: Option<u64>,
    /// Spans of populated positive buckets.
    #[prost(message, repeated, tag = "12")]
    pub positive_span: Vec<BucketSpan>,
    /// Count of each positive bucket minus the previous one's.
    #[prost(sint64, repeated, packed = "true", tag = "13")]
    pub positive_delta: Vec<i64>,
}

/// `Bucket`.
#[derive(Clone, PartialEq, Message)]
pub struct Bucket {
    /// Observations up to the bound.
    #[prost(uint64, optional, tag = "1")]
    pub cumulative_count: Option<u64>,
    /// Inclusive upper bound.
    #[prost(double, optional, tag = "2")]
    pub upper_bound: Option<f64>,
    /// The last task observed in this bucket.
    #[prost(message, optional, tag = "3")]
    pub exemplar: Option<Exemplar>,
}

/// `BucketSpan`.
#[derive(Clone, PartialEq, Message)]
pub struct BucketSpan {
    /// Gap to the previous span (the first span's starting index).
    #[prost(sint32, optional, tag = "1")]
    pub offset: Option<i32>,
    /// Consecutive buckets.
    #[prost(uint32, optional, tag = "2")]
    pub length: Option<u32>,
}

/// `Exemplar`.
#[derive(Clone, PartialEq, Message)]
pub struct Exemplar {
    /// `task_id`.
    #[prost(message, repeated, tag = "1")]
    pub label: Vec<LabelPair>,
    /// The observed value.
    #[prost(double, optional, tag = "2")]
    pub value: Option<f64>,
    /// When the task completed.
    #[prost(message, optional, tag = "3")]
    pub timestamp: Option<prost_types::Timestamp>,
}

/// `Metric`.
#[derive(Clone, PartialEq, Message)]
pub struct Metric {
    /// Labels.
    #[prost(message, repeated, tag = "1")]
    pub label: Vec<LabelPair>,
    /// For gauges.
    #[prost(message, optional, tag = "2")]
    pub gauge: Option<Gauge>,
    /// For counters.
    #[prost(message, optional, tag = "3")]
    pub counter: Option<Counter>,
    /// For untyped samples.
    #[prost(message, optional, tag = "5")]
    pub untyped: Option<Untyped>,
    /// For histograms.
    #[prost(message, optional, tag = "7")]
    pub histogram: Option<Histogram>,
}

/// `MetricFamily`.
#[derive(Clone, PartialEq, Message)]
pub struct MetricFamily {
    /// Name (counters with `_total`).
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    /// HELP.
    #[prost(string, optional, tag = "2")]
    pub help: Option<String>,
    /// Type.
    #[prost(enumeration = "MetricType", optional, tag = "3")]
    pub r#type: Option<i32>,
    /// Series.
    #[prost(message, repeated, tag = "4")]
    pub metric: Vec<Metric>,
}

/// The field number of `MetricFamily.metric`.
const METRIC_FIELD: u32 = 4;

/// A tenant family's header: the varint length of the whole message (header fields
/// plus `body_len` bytes of encoded `metric` fields), then its name, HELP and type.
pub fn family_header(family: &Family, body_len: u64) -> Vec<u8> {
    let fields = MetricFamily {
        name: Some(family.name.to_string()),
        help: Some(format!("{} {POLLED}", family.help)),
        r#type: Some(metric_type(family.kind) as i32),
        metric: Vec::new(),
    }
    .encode_to_vec();
    let mut out = Vec::with_capacity(fields.len() + 10);
    prost::encoding::encode_varint(fields.len() as u64 + body_len, &mut out);
    out.extend_from_slice(&fields);
    out
}

fn metric_type(kind: Kind) -> MetricType {
    match kind {
        Kind::Counter => MetricType::Counter,
        Kind::Gauge => MetricType::Gauge,
        Kind::Histogram => MetricType::Histogram,
    }
}

/// Writes one tenant's series of `family` as encoded `metric` fields.
pub fn append(
    family: &Family,
    tenant: &str,
    state: &TenantState,
    rules: &Rules,
    out: &mut Vec<u8>,
) {
    let Some(series) = state.values.series(family) else {
        return;
    };
    let bounds = rules.bounds(family.buckets);
    for (labels, value) in &series.0 {
        if labels.len() + 1 != family.labels.len() {
            continue;
        }
        let label = family
            .labels
            .iter()
            .zip(std::iter::once(tenant).chain(labels.iter().map(String::as_str)))
            .map(|(name, value)| pair(name, value))
            .collect();
        let mut metric = Metric {
            label,
            ..Metric::default()
        };
        match value {
            Value::Counter(c) => {
                let exemplar = state.values.exemplar(family, labels).map(exemplar);
                metric.counter = Some(Counter {
                    value: Some(*c as f64),
                    exemplar,
                });
            }
            Value::Sum(v) => {
                metric.counter = Some(Counter {
                    value: Some(*v),
                    exemplar: None,
                })
            }
            Value::Gauge(v) => metric.gauge = Some(Gauge { value: Some(*v) }),
            Value::Histogram(h) => {
                metric.histogram = Some(histogram(bounds, h, native::applies(family)))
            }
        }
        prost::encoding::message::encode(METRIC_FIELD, &metric, out);
    }
}

fn pair(name: &str, value: &str) -> LabelPair {
    LabelPair {
        name: Some(name.to_string()),
        value: Some(value.to_string()),
    }
}

fn exemplar(sample: &Sample) -> Exemplar {
    Exemplar {
        label: vec![pair("task_id", &sample.task_id)],
        value: Some(sample.value),
        timestamp: sample.at_ms.map(|ms| prost_types::Timestamp {
            seconds: ms.div_euclid(1000),
            nanos: i32::try_from(ms.rem_euclid(1000) * 1_000_000).unwrap_or(0),
        }),
    }
}

/// A histogram series: classic buckets with their exemplars, and the native buckets
/// when the family has them.
fn histogram(bounds: &[f64], h: &Observed, with_native: bool) -> Histogram {
    let mut cumulative = 0u64;
    let mut bucket: Vec<Bucket> = bounds
        .iter()
        .zip(&h.counts)
        .enumerate()
        .map(|(index, (bound, count))| {
            cumulative = cumulative.saturating_add(*count);
            Bucket {
                cumulative_count: Some(cumulative),
                upper_bound: Some(*bound),
                exemplar: h.exemplar(index).map(exemplar),
            }
        })
        .collect();
    // The `+Inf` bucket is implied by the count; it is written only to carry its
    // exemplar (as client_golang does).
    if let Some(e) = h.exemplar(bounds.len()) {
        bucket.push(Bucket {
            cumulative_count: Some(h.count),
            upper_bound: Some(f64::INFINITY),
            exemplar: Some(exemplar(e)),
        });
    }
    let mut out = Histogram {
        sample_count: Some(h.count),
        sample_sum: Some(h.sum),
        bucket,
        ..Histogram::default()
    };
    if with_native {
        let empty = Sparse::default();
        let sparse = h.native.as_ref().unwrap_or(&empty);
        let (spans, deltas) = sparse.spans_and_deltas();
        out.schema = Some(native::SCHEMA);
        out.zero_threshold = Some(native::ZERO_THRESHOLD);
        out.zero_count = Some(sparse.zero_count);
        out.positive_span = spans
            .into_iter()
            .map(|(offset, length)| BucketSpan {
                offset: Some(offset),
                length: Some(length),
            })
            .collect();
        out.positive_delta = deltas;
    }
    out
}

/// The process-wide families gathered from the `prometheus` registry, each a
/// length-delimited message (counters and gauges are all the registry holds; another
/// type is sent untyped).
pub fn process(families: &[prometheus::proto::MetricFamily]) -> Vec<u8> {
    use prometheus::proto::MetricType as Source;
    let mut out = Vec::new();
    for family in families {
        let kind = family.get_field_type();
        let metric = family
            .get_metric()
            .iter()
            .map(|m| {
                let label = m
                    .get_label()
                    .iter()
                    .map(|l| pair(l.name(), l.value()))
                    .collect();
                let mut metric = Metric {
                    label,
                    ..Metric::default()
                };
                match kind {
                    Source::COUNTER => {
                        metric.counter = Some(Counter {
                            value: Some(m.counter.value()),
                            exemplar: None,
                        })
                    }
                    Source::GAUGE => {
                        metric.gauge = Some(Gauge {
                            value: Some(m.gauge.value()),
                        })
                    }
                    _ => {
                        metric.untyped = Some(Untyped {
                            value: Some(m.untyped.value()),
                        })
                    }
                }
                metric
            })
            .collect();
        let r#type = match kind {
            Source::COUNTER => MetricType::Counter,
            Source::GAUGE => MetricType::Gauge,
            _ => MetricType::Untyped,
        };
        let message = MetricFamily {
            name: Some(family.name().to_string()),
            help: Some(family.help().to_string()),
            r#type: Some(r#type as i32),
            metric,
        };
        if let Err(error) = message.encode_length_delimited(&mut out) {
            tracing::error!(%error, "cannot encode a process family");
        }
    }
    out
}
