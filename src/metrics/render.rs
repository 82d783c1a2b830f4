//! Exposition: each tenant's series are written as text one family at a time, from one
//! consistent snapshot under the tenant's lock, and only for the families that changed
//! since (kube-state-metrics' approach: a series is rendered when it changes, not at every
//! scrape). Each family's text is kept compressed as a [`Piece`]; an exposition is the
//! pieces of every family in catalogue order (HELP and TYPE once, then every tenant's
//! series, tenants in name order), plus the process-wide registry encoded by the
//! `prometheus` crate, joined into one gzip stream. A scrape copies that stream; a small
//! exposition's text is kept decoded too, a large one is decoded while it is sent.

use std::io::Read as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use std::fmt::Write as _;

use bytes::Bytes;
use prometheus::{Encoder, TextEncoder};

use super::catalogue::{Family, POLLED};
use super::deflate::{self, Compressor, Piece};
use super::state::{TenantState, Value};
use super::{Metrics, Rules, TenantMetrics};

/// How old the process metrics of the pre-rendered exposition may get: the background
/// renderer renders at least this often.
pub const PROCESS_REFRESH: Duration = Duration::from_secs(5);

/// A pre-rendered exposition is served at most this old (twice the refresh, so a
/// renderer that is a little late does not push the rendering onto a scrape).
const MAX_AGE: Duration = Duration::from_secs(10);

/// Up to this size the text is also kept decoded (so small expositions are served
/// plain without decoding); a larger one is decoded while it is sent, never held whole.
pub const KEEP_TEXT_UP_TO: u64 = 1024 * 1024;

/// One rendering of the whole exposition, cheap to clone.
#[derive(Debug, Clone)]
pub struct Exposition {
    /// The text exposition format 0.0.4, gzip-compressed.
    pub gzip: Bytes,
    /// The same text uncompressed, when it is at most [`KEEP_TEXT_UP_TO`] bytes.
    pub text: Option<Bytes>,
}

impl Exposition {
    /// The text, decoded from the gzip stream unless it is kept already.
    pub fn decoded(&self) -> std::io::Result<Bytes> {
        if let Some(text) = &self.text {
            return Ok(text.clone());
        }
        decode(&self.gzip, 0)
    }
}

/// The text `gzip` encodes; `size` (its length, when known) sizes the buffer at once.
fn decode(gzip: &[u8], size: usize) -> std::io::Result<Bytes> {
    let mut text = Vec::with_capacity(size);
    flate2::read::GzDecoder::new(gzip).read_to_end(&mut text)?;
    Ok(Bytes::from(text))
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

/// What one tenant's exposition currently is: a piece per tenant family (in catalogue
/// order; None when the tenant has no series in it). Empty until first rendered.
#[derive(Debug, Default)]
pub(super) struct TenantText {
    pieces: Vec<Option<Piece>>,
}

/// Renders now: the changed families of every tenant, then the gzip stream.
pub(super) fn build(metrics: &Metrics) -> Exposition {
    let families: Vec<&Family> = metrics.rules.tenant_families().collect();
    let mut compressor = Compressor::default();
    let tenants: Vec<Vec<Option<Piece>>> = metrics
        .handles()
        .iter()
        .map(|handle| refresh(handle, &families, &mut compressor))
        .collect();
    let mut pieces: Vec<Piece> = Vec::new();
    for index in 0..families.len() {
        let mut body = tenants
            .iter()
            .filter_map(|t| t.get(index).cloned().flatten())
            .peekable();
        if body.peek().is_none() {
            continue;
        }
        pieces.extend(metrics.headers.get(index).cloned());
        pieces.extend(body);
    }
    pieces.push(compressor.piece(&process_text(metrics)));
    let gzip = Bytes::from(deflate::gzip(pieces.iter()));
    let size: u64 = pieces.iter().map(Piece::text_len).sum();
    let text = (size <= KEEP_TEXT_UP_TO)
        .then(|| decode(&gzip, usize::try_from(size).unwrap_or(0)))
        .and_then(|decoded| {
            decoded
                .inspect_err(|error| tracing::error!(%error, "cannot decode the exposition"))
                .ok()
        });
    Exposition { gzip, text }
}

/// Brings one tenant's pieces up to date: its changed families (every family the first
/// time) are written from one snapshot under its lock, then compressed outside it.
fn refresh(
    handle: &TenantMetrics,
    families: &[&Family],
    compressor: &mut Compressor,
) -> Vec<Option<Piece>> {
    let mut kept = handle.text.lock().unwrap_or_else(|p| p.into_inner());
    let fresh = kept.pieces.len() != families.len();
    let texts: Vec<(usize, String)> = handle.with_state(|state, rules| {
        let changed = state.values.take_changed();
        families
            .iter()
            .enumerate()
            .filter(|(_, family)| fresh || changed.contains(family))
            .map(|(index, family)| {
                let mut text = String::new();
                append(family, handle.tenant(), state, rules, &mut text);
                (index, text)
            })
            .collect()
    });
    if fresh {
        kept.pieces = vec![None; families.len()];
    }
    for (index, text) in texts {
        if let Some(slot) = kept.pieces.get_mut(index) {
            *slot = (!text.is_empty()).then(|| compressor.piece(text.as_bytes()));
        }
    }
    kept.pieces.clone()
}

/// The HELP and TYPE lines of every tenant family, compressed, in catalogue order.
pub(super) fn headers(rules: &Rules) -> Vec<Piece> {
    let mut compressor = Compressor::default();
    rules
        .tenant_families()
        .map(|family| compressor.piece(header(family).as_bytes()))
        .collect()
}

/// A tenant family's HELP and TYPE lines.
fn header(family: &Family) -> String {
    format!(
        "# HELP {} {}\n# TYPE {} {}\n",
        family.name,
        escape(&format!("{} {POLLED}", family.help), false),
        family.name,
        family.kind.as_str()
    )
}

/// The process-wide families, encoded by the `prometheus` crate.
fn process_text(metrics: &Metrics) -> Vec<u8> {
    let mut text = Vec::new();
    let mut families = metrics.registry.gather();
    families.sort_by(|a, b| a.name().cmp(b.name()));
    // Encoding into a Vec cannot fail on I/O; a family the encoder rejects would be a
    // programming error, and the partial output is still better than none.
    if let Err(e) = TextEncoder::new().encode(&families, &mut text) {
        tracing::error!(error = %e, "cannot encode metrics");
    }
    text
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
