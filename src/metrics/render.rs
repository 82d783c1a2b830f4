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
//! formats by [`text`], [`protobuf`] for protobuf.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prometheus::{Encoder, TextEncoder};

use super::catalogue::Family;
use super::deflate::{self, Compressor, Piece};
use super::format::Format;
use super::source::{Exposition, KEEP_TEXT_UP_TO, decode};
use super::state::TenantState;
use super::values::Changed;
use super::{Metrics, Rules, TenantMetrics, openmetrics, protobuf, text};

/// How old the process metrics of the pre-rendered exposition may get: the background
/// renderer renders at least this often.
pub const PROCESS_REFRESH: Duration = Duration::from_secs(5);

/// A pre-rendered exposition is served at most this old (twice the refresh, so a
/// renderer that is a little late does not push the rendering onto a scrape).
const MAX_AGE: Duration = Duration::from_secs(10);

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
    let written: Vec<(usize, Vec<u8>)> = handle.with_changes(|state, changed, rules| {
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
    let samples = if format == Format::OpenMetrics {
        &openmetrics::SAMPLES
    } else {
        &text::PLAIN
    };
    text::append(family, tenant, state, rules, samples, &mut text);
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
    let text = pieces(text::header);
    let openmetrics = pieces(openmetrics::header);
    [text, openmetrics, Vec::new()]
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
