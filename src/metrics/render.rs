//! Exposition: the tenants' owned states, each read as one consistent snapshot under its
//! lock and written as text directly, plus the process-wide registry, encoded by the
//! `prometheus` crate's text encoder — and kept pre-rendered (text and gzip) until something changes, so a scrape
//! copies bytes.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use std::fmt::Write as _;

use bytes::Bytes;
use prometheus::{Encoder, TextEncoder};

use super::catalogue::{self as cat, Family, POLLED};
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
    let mut text = tenant_text(metrics);
    let mut families = metrics.registry.gather();
    families.sort_by(|a, b| a.name().cmp(b.name()));
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

/// The tenant families as text: each tenant's series are written into one fragment per
/// family from one snapshot under its lock, then every family is written once — its HELP
/// and TYPE, then the fragments of every tenant (in tenant-name order). Written directly
/// rather than through the `prometheus` crate's protobuf structures, which cost an
/// allocation per label at every render (hundreds of MiB with hundreds of tenants).
fn tenant_text(metrics: &Metrics) -> Vec<u8> {
    let families: Vec<&Family> = cat::tenant_families().collect();
    let mut fragments: Vec<String> = families.iter().map(|_| String::new()).collect();
    for handle in metrics.handles() {
        handle.read(|state, rules| {
            for (family, out) in families.iter().zip(fragments.iter_mut()) {
                append(family, handle.tenant(), state, rules, out);
            }
        });
    }
    let size = fragments.iter().map(String::len).sum::<usize>() + 64 * 1024;
    let mut text = String::with_capacity(size);
    for (family, body) in families.iter().zip(&fragments) {
        if body.is_empty() {
            continue;
        }
        let _ = writeln!(
            text,
            "# HELP {} {}",
            family.name,
            escape(&format!("{} {POLLED}", family.help), false)
        );
        let _ = writeln!(text, "# TYPE {} {}", family.name, family.kind.as_str());
        text.push_str(body);
    }
    text.into_bytes()
}

/// Writes one tenant's series of `family` in the text format.
fn append(family: &Family, tenant: &str, state: &TenantState, rules: &Rules, out: &mut String) {
    let Some(series) = state.values.series(family) else {
        return;
    };
    let bounds = rules.bounds(family.buckets);
    for (labels, value) in &series.0 {
        if labels.len() + 1 != family.labels.len() {
            continue;
        }
        // Labels in name order, like the `prometheus` crate writes them.
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
        let name = family.name;
        match value {
            Value::Counter(c) => {
                let _ = writeln!(out, "{name}{{{pairs}}} {c}");
            }
            Value::Sum(v) | Value::Gauge(v) => {
                let _ = writeln!(out, "{name}{{{pairs}}} {}", number(*v));
            }
            Value::Histogram(h) => {
                let sep = if pairs.is_empty() { "" } else { "," };
                let mut cumulative = 0u64;
                for (bound, count) in bounds.iter().zip(&h.counts) {
                    cumulative = cumulative.saturating_add(*count);
                    let _ = writeln!(
                        out,
                        "{name}_bucket{{{pairs}{sep}le=\"{}\"}} {cumulative}",
                        number(*bound)
                    );
                }
                let _ = writeln!(out, "{name}_bucket{{{pairs}{sep}le=\"+Inf\"}} {}", h.count);
                let _ = writeln!(out, "{name}_sum{{{pairs}}} {}", number(h.sum));
                let _ = writeln!(out, "{name}_count{{{pairs}}} {}", h.count);
            }
        }
    }
}

/// A sample value or bucket bound as the text format writes it.
fn number(v: f64) -> String {
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
fn escape(s: &str, quote: bool) -> std::borrow::Cow<'_, str> {
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
