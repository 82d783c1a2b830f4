//! Exposition: each tenant's series are written one family at a time, from one
//! consistent snapshot under the tenant's lock, and only for the families that changed
//! since (kube-state-metrics' approach: a series is rendered when it changes, not at every
//! scrape). Each family's rendering is kept compressed as a [`Piece`], per [`Format`]; an
//! exposition is the pieces of every family in catalogue order (a header once, then every
//! tenant's series, tenants in name order), plus the process-wide registry, joined into
//! one gzip stream. A scrape copies that stream; a small exposition's body is kept
//! decoded too, a large one is decoded while it is sent.
//!
//! A format is rendered only once some scrape asked for it: until then no tenant keeps
//! pieces of it and the background renderer leaves it alone (the text format is always
//! kept). The formats differ only in how one family of one tenant is written: the text
//! formats here, [`protobuf`] for protobuf.

use std::io::Read as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use std::fmt::Write as _;

use bytes::Bytes;
use prometheus::{Encoder, TextEncoder};

use super::catalogue::{Family, POLLED};
use super::deflate::{self, Compressor, Piece};
use super::format::Format;
use super::state::{Exemplar, TenantState, Value};
use super::values::Changed;
use super::{Metrics, Rules, TenantMetrics, openmetrics, protobuf};

/// How old the process metrics of the pre-rendered exposition may get: the background
/// renderer renders at least this often.
pub const PROCESS_REFRESH: Duration = Duration::from_secs(5);

/// A pre-rendered exposition is served at most this old (twice the refresh, so a
/// renderer that is a little late does not push the rendering onto a scrape).
const MAX_AGE: Duration = Duration::from_secs(10);

/// Up to this size the body is also kept decoded (so small expositions are served
/// plain without decoding); a larger one is decoded while it is sent, never held whole.
pub const KEEP_TEXT_UP_TO: u64 = 1024 * 1024;

/// One rendering of the whole exposition in one format, cheap to clone.
#[derive(Debug, Clone)]
pub struct Exposition {
    /// The format of the body.
    pub format: Format,
    /// The body, gzip-compressed.
    pub gzip: Bytes,
    /// The same body uncompressed (text, or protobuf bytes), when it is at most
    /// [`KEEP_TEXT_UP_TO`] bytes.
    pub text: Option<Bytes>,
}

impl Exposition {
    /// The body, decoded from the gzip stream unless it is kept already.
    pub fn decoded(&self) -> std::io::Result<Bytes> {
        if let Some(text) = &self.text {
            return Ok(text.clone());
        }
        decode(&self.gzip, 0)
    }
}

/// The body `gzip` encodes; `size` (its length, when known) sizes the buffer at once.
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

/// The kept rendering of each format, keyed by the change counter it was rendered at,
/// and which formats some scrape has asked for.
pub(super) struct Cache {
    slots: [Mutex<Option<Rendered>>; 3],
    asked: [AtomicBool; 3],
}

impl Default for Cache {
    fn default() -> Self {
        Cache {
            slots: Default::default(),
            // The text format is kept from the start, as before there were others.
            asked: [
                AtomicBool::new(true),
                AtomicBool::new(false),
                AtomicBool::new(false),
            ],
        }
    }
}

impl Cache {
    /// The kept rendering of `format` if nothing was applied since and it is recent
    /// enough. Marks the format as asked for, so the background renderer keeps it.
    pub(super) fn current(&self, format: Format, applied: u64) -> Option<Exposition> {
        self.ask(format);
        let slot = self.slot(format);
        slot.as_ref()
            .filter(|r| r.applied == applied && r.at.elapsed() < MAX_AGE)
            .map(|r| r.exposition.clone())
    }

    /// The formats some scrape has asked for.
    pub(super) fn asked(&self) -> Vec<Format> {
        Format::ALL
            .into_iter()
            .filter(|f| {
                self.asked
                    .get(f.index())
                    .is_some_and(|a| a.load(Ordering::Acquire))
            })
            .collect()
    }

    fn ask(&self, format: Format) {
        if let Some(asked) = self.asked.get(format.index()) {
            asked.store(true, Ordering::Release);
        }
    }

    fn slot(&self, format: Format) -> std::sync::MutexGuard<'_, Option<Rendered>> {
        let [text, ..] = &self.slots;
        self.slots
            .get(format.index())
            .unwrap_or(text)
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The kept rendering of `format`, rendered with `build` first unless it is
    /// current. Concurrent callers wait for one rendering instead of each rendering.
    pub(super) fn refresh(
        &self,
        format: Format,
        applied: u64,
        build: impl FnOnce() -> Exposition,
    ) -> Exposition {
        self.ask(format);
        let mut slot = self.slot(format);
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

/// What one tenant's exposition currently is, per format: a piece per tenant family (in
/// catalogue order; None when the tenant has no series in it), and the families changed
/// since that format was last written. Empty until the format is first rendered.
#[derive(Debug, Default)]
pub(super) struct TenantText {
    formats: [Kept; 3],
}

#[derive(Debug, Default)]
struct Kept {
    pieces: Vec<Option<Piece>>,
    /// Changed since this format was written (everything until it first is).
    stale: Changed,
}

impl TenantText {
    fn kept(&mut self, format: Format) -> Option<&mut Kept> {
        self.formats.get_mut(format.index())
    }
}

/// The header pieces of every tenant family, per format, compressed once (protobuf's
/// depend on the series' length and are written per rendering).
pub(super) type Headers = [Vec<Piece>; 3];

/// Renders `format` now: the changed families of every tenant, then the gzip stream.
pub(super) fn build(metrics: &Metrics, format: Format) -> Exposition {
    let families: Vec<&Family> = metrics.rules.tenant_families().collect();
    let mut compressor = Compressor::default();
    let tenants: Vec<Vec<Option<Piece>>> = metrics
        .handles()
        .iter()
        .map(|handle| refresh(handle, &families, format, &mut compressor))
        .collect();
    let headers = metrics.headers.get(format.index());
    let mut pieces: Vec<Piece> = Vec::new();
    for (index, family) in families.iter().enumerate() {
        let body: Vec<Piece> = tenants
            .iter()
            .filter_map(|t| t.get(index).cloned().flatten())
            .collect();
        if body.is_empty() {
            continue;
        }
        if format == Format::Protobuf {
            let length = body.iter().map(Piece::text_len).sum();
            pieces.push(compressor.piece(&protobuf::family_header(family, length)));
        } else {
            pieces.extend(headers.and_then(|h| h.get(index)).cloned());
        }
        pieces.extend(body);
    }
    pieces.push(compressor.piece(&process(metrics, format)));
    let gzip = Bytes::from(deflate::gzip(pieces.iter()));
    let size: u64 = pieces.iter().map(Piece::text_len).sum();
    let text = (size <= KEEP_TEXT_UP_TO)
        .then(|| decode(&gzip, usize::try_from(size).unwrap_or(0)))
        .and_then(|decoded| {
            decoded
                .inspect_err(|error| tracing::error!(%error, "cannot decode the exposition"))
                .ok()
        });
    Exposition { format, gzip, text }
}

/// Brings one tenant's pieces of `format` up to date: its families changed since the
/// format was last written (every family the first time) are written from one snapshot
/// under its lock, then compressed outside it. What changed is noted for the other
/// formats too, which catch up when they are next rendered.
fn refresh(
    handle: &TenantMetrics,
    families: &[&Family],
    format: Format,
    compressor: &mut Compressor,
) -> Vec<Option<Piece>> {
    let mut text = handle.text.lock().unwrap_or_else(|p| p.into_inner());
    let written: Vec<(usize, Vec<u8>)> = handle.with_state(|state, rules| {
        let changed = state.values.take_changed();
        for kept in &mut text.formats {
            kept.stale.merge(&changed);
        }
        let Some(kept) = text.kept(format) else {
            return Vec::new();
        };
        let fresh = kept.pieces.len() != families.len();
        let stale = std::mem::replace(&mut kept.stale, Changed::none());
        families
            .iter()
            .enumerate()
            .filter(|(_, family)| fresh || stale.contains(family))
            .map(|(index, family)| (index, write(format, family, handle.tenant(), state, rules)))
            .collect()
    });
    let Some(kept) = text.kept(format) else {
        return Vec::new();
    };
    if kept.pieces.len() != families.len() {
        kept.pieces = vec![None; families.len()];
    }
    for (index, bytes) in written {
        if let Some(slot) = kept.pieces.get_mut(index) {
            *slot = (!bytes.is_empty()).then(|| compressor.piece(&bytes));
        }
    }
    kept.pieces.clone()
}

/// One tenant's series of `family` in `format`.
fn write(
    format: Format,
    family: &Family,
    tenant: &str,
    state: &TenantState,
    rules: &Rules,
) -> Vec<u8> {
    if format == Format::Protobuf {
        let mut out = Vec::new();
        protobuf::append(family, tenant, state, rules, &mut out);
        return out;
    }
    let mut text = String::new();
    append(
        family,
        tenant,
        state,
        rules,
        format == Format::OpenMetrics,
        &mut text,
    );
    text.into_bytes()
}

/// The header lines of every tenant family, compressed, in catalogue order, for the
/// text formats.
pub(super) fn headers(rules: &Rules) -> Headers {
    let mut compressor = Compressor::default();
    let mut pieces = |header: fn(&Family) -> String| -> Vec<Piece> {
        rules
            .tenant_families()
            .map(|family| compressor.piece(header(family).as_bytes()))
            .collect()
    };
    let text = pieces(header);
    let openmetrics = pieces(openmetrics::header);
    [text, openmetrics, Vec::new()]
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

/// The process-wide families, encoded from the `prometheus` registry: by the crate
/// for the text format, by [`openmetrics`] and [`protobuf`] for the others (the
/// OpenMetrics text ends with `# EOF`).
fn process(metrics: &Metrics, format: Format) -> Vec<u8> {
    let mut families = metrics.registry.gather();
    families.sort_by(|a, b| a.name().cmp(b.name()));
    match format {
        Format::Text => {
            let mut text = Vec::new();
            // Encoding into a Vec cannot fail on I/O; a family the encoder rejects would
            // be a programming error, and the partial output is still better than none.
            if let Err(e) = TextEncoder::new().encode(&families, &mut text) {
                tracing::error!(error = %e, "cannot encode metrics");
            }
            text
        }
        Format::OpenMetrics => openmetrics::process(&families).into_bytes(),
        Format::Protobuf => protobuf::process(&families),
    }
}

/// Writes one tenant's series of `family` in the text format, or in OpenMetrics (bucket
/// bounds as OpenMetrics floats, exemplars after the samples that have one).
fn append(
    family: &Family,
    tenant: &str,
    state: &TenantState,
    rules: &Rules,
    openmetrics: bool,
    out: &mut String,
) {
    let Some(series) = state.values.series(family) else {
        return;
    };
    let bounds = rules.bounds(family.buckets);
    let bound = if openmetrics {
        openmetrics::float
    } else {
        number
    };
    let exemplar = |e: Option<&Exemplar>| match e {
        Some(e) if openmetrics => openmetrics::exemplar(e),
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
