//! Exposition: the tenants' owned states, each read as one consistent snapshot under its
//! lock, plus the process-wide registry, encoded by the `prometheus` crate's text
//! encoder — and kept pre-rendered (text and gzip) until something changes, so a scrape
//! copies bytes.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};
use prometheus::{Encoder, TextEncoder};

use super::catalogue::{self as cat, Family, Kind, POLLED};
use super::state::{TenantState, Value};
use super::{Metrics, Rules};

/// How old the process metrics of the pre-rendered exposition may get: the background
/// renderer renders at least this often.
pub const PROCESS_REFRESH: Duration = Duration::from_secs(5);

/// A pre-rendered exposition is served at most this old (twice the refresh, so a
/// renderer that is a little late does not push the rendering onto a scrape).
const MAX_AGE: Duration = Duration::from_secs(10);

/// One rendering of the whole exposition, cheap to clone.
#[derive(Debug, Clone)]
pub struct Exposition {
    /// Text exposition format 0.0.4.
    pub text: Bytes,
    /// The same, gzip-compressed (None if compression failed).
    pub gzip: Option<Bytes>,
}

struct Rendered {
    applied: u64,
    at: Instant,
    exposition: Exposition,
}

/// The kept rendering, keyed by the change counter it was rendered at.
#[derive(Default)]
pub(super) struct Cache {
    slot: Mutex<Option<Rendered>>,
}

impl Cache {
    /// The kept rendering if nothing was applied since and it is recent enough.
    pub(super) fn current(&self, applied: u64) -> Option<Exposition> {
        let slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        slot.as_ref()
            .filter(|r| r.applied == applied && r.at.elapsed() < MAX_AGE)
            .map(|r| r.exposition.clone())
    }

    /// The kept rendering, rendered with `build` first unless it is current. Concurrent
    /// callers wait for one rendering instead of each rendering.
    pub(super) fn refresh(&self, applied: u64, build: impl FnOnce() -> Exposition) -> Exposition {
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = slot
            .as_ref()
            .filter(|r| r.applied == applied && r.at.elapsed() < PROCESS_REFRESH.min(MAX_AGE))
        {
            return r.exposition.clone();
        }
        let exposition = build();
        *slot = Some(Rendered {
            applied,
            at: Instant::now(),
            exposition: exposition.clone(),
        });
        exposition
    }
}

/// Renders everything now: text, then gzip.
pub(super) fn build(metrics: &Metrics) -> Exposition {
    let mut families = tenant_families(metrics);
    families.extend(metrics.registry.gather());
    families.sort_by(|a, b| a.name().cmp(b.name()));
    let mut text = Vec::with_capacity(64 * 1024);
    // Encoding into a Vec cannot fail on I/O; a family the encoder rejects would be a
    // programming error, and the partial output is still better than none.
    if let Err(e) = TextEncoder::new().encode(&families, &mut text) {
        tracing::error!(error = %e, "cannot encode metrics");
    }
    let gzip = match gzip(&text) {
        Ok(g) => Some(Bytes::from(g)),
        Err(error) => {
            tracing::warn!(%error, "gzip failed; serving uncompressed");
            None
        }
    };
    Exposition {
        text: Bytes::from(text),
        gzip,
    }
}

/// gzip at the fastest level: about 7x smaller than the text for a fraction of the CPU.
fn gzip(text: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(text.len() / 4),
        flate2::Compression::fast(),
    );
    encoder.write_all(text)?;
    encoder.finish()
}

/// One `MetricFamily` per tenant family that has series, each tenant's series taken
/// from one snapshot under its lock.
fn tenant_families(metrics: &Metrics) -> Vec<MetricFamily> {
    let families: Vec<&Family> = cat::tenant_families().collect();
    let mut collected: Vec<Vec<Metric>> = families.iter().map(|_| Vec::new()).collect();
    for handle in metrics.handles() {
        handle.read(|state, rules| {
            for (family, out) in families.iter().zip(collected.iter_mut()) {
                append(family, handle.tenant(), state, rules, out);
            }
        });
    }
    families
        .into_iter()
        .zip(collected)
        .filter(|(_, m)| !m.is_empty())
        .map(|(family, mut metrics)| {
            metrics.sort_by(|a, b| {
                let values = |m: &Metric| -> Vec<String> {
                    m.get_label()
                        .iter()
                        .map(|l| l.value().to_string())
                        .collect()
                };
                values(a).cmp(&values(b))
            });
            let mut mf = MetricFamily::default();
            mf.set_name(family.name.to_string());
            mf.set_help(format!("{} {POLLED}", family.help));
            mf.set_field_type(match family.kind {
                Kind::Counter => MetricType::COUNTER,
                Kind::Gauge => MetricType::GAUGE,
                Kind::Histogram => MetricType::HISTOGRAM,
            });
            mf.set_metric(metrics);
            mf
        })
        .collect()
}

fn append(
    family: &Family,
    tenant: &str,
    state: &TenantState,
    rules: &Rules,
    out: &mut Vec<Metric>,
) {
    let Some(series) = state.values.series(family) else {
        return;
    };
    let bounds = rules.bounds(family.buckets);
    for (labels, value) in &series.0 {
        if labels.len() + 1 != family.labels.len() {
            continue;
        }
        let mut pairs: Vec<LabelPair> = std::iter::once(tenant)
            .chain(labels.iter().map(String::as_str))
            .zip(family.labels)
            .map(|(value, name)| {
                let mut pair = LabelPair::default();
                pair.set_name((*name).to_string());
                pair.set_value(value.to_string());
                pair
            })
            .collect();
        pairs.sort_by(|a, b| a.name().cmp(b.name()));
        let mut metric = Metric::default();
        metric.set_label(pairs);
        match value {
            Value::Counter(c) => {
                let mut counter = Counter::default();
                counter.set_value(*c as f64);
                metric.set_counter(counter);
            }
            Value::Sum(v) => {
                let mut counter = Counter::default();
                counter.set_value(*v);
                metric.set_counter(counter);
            }
            Value::Gauge(g) => {
                let mut gauge = Gauge::default();
                gauge.set_value(*g);
                metric.set_gauge(gauge);
            }
            Value::Histogram(h) => {
                let mut cumulative = 0u64;
                let buckets = bounds
                    .iter()
                    .zip(&h.counts)
                    .map(|(bound, count)| {
                        cumulative = cumulative.saturating_add(*count);
                        let mut bucket = Bucket::default();
                        bucket.set_upper_bound(*bound);
                        bucket.set_cumulative_count(cumulative);
                        bucket
                    })
                    .collect();
                let mut histogram = Histogram::default();
                histogram.set_bucket(buckets);
                histogram.set_sample_count(h.count);
                histogram.set_sample_sum(h.sum);
                metric.set_histogram(histogram);
            }
        }
        out.push(metric);
    }
}
