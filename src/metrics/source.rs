//! What the HTTP server reads from the metric state: one [`Exposition`] type, produced by
//! [`render`](super::render) and served as it is, and the [`MetricsSource`] trait with
//! the three questions the server asks.
//!
//! Both live here, on the producer's side, so the arrow runs one way: `http` uses
//! `metrics`, never the other way round (the daemon implements the trait for the state it
//! shares with the server).

use std::io::Read as _;

use bytes::Bytes;

use super::format::Format;

/// Up to this size the body is also kept decoded (so small expositions are served
/// plain without decoding); a larger one is decoded while it is sent, never held whole.
pub const KEEP_TEXT_UP_TO: u64 = 1024 * 1024;

/// One rendering of the whole exposition in one format: always its gzip stream (what a
/// gzip client gets, copied), and the body itself when it is small (what any other client
/// gets; a larger body is decoded while it is sent). Cloning copies reference-counted
/// handles, not the bytes.
#[derive(Debug, Clone)]
pub struct Exposition {
    /// The format of the body (its `Content-Type`).
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
pub(super) fn decode(gzip: &[u8], size: usize) -> std::io::Result<Bytes> {
    let mut text = Vec::with_capacity(size);
    flate2::read::GzDecoder::new(gzip).read_to_end(&mut text)?;
    Ok(Bytes::from(text))
}

/// Where the HTTP server gets `/metrics` and `/-/ready`.
///
/// A trait so the daemon can answer readiness (which the collectors know) with the same
/// shared object that hands out the metric state's expositions. Every method answers
/// from memory and never calls SailPoint.
pub trait MetricsSource: Send + Sync + 'static {
    /// The exposition in `format` kept pre-rendered, when it is current. Called on the
    /// async worker, so it must only copy (no rendering, no waiting); None sends the
    /// scrape to [`MetricsSource::exposition`].
    fn prerendered(&self, format: Format) -> Option<Exposition>;
    /// Renders (and keeps) the exposition in `format`. Runs on a blocking thread, so
    /// taking a lock is acceptable; taking seconds is not (the request deadline answers
    /// `503`).
    fn exposition(&self, format: Format) -> Exposition;
    /// Whether the exporter has data worth scraping (every tenant polled once);
    /// `/-/ready` answers `200` when true, `503` otherwise.
    fn is_ready(&self) -> bool;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exposition_without_its_body_is_decoded_from_its_gzip() {
        let body = b"sailpoint_up{tenant=\"acme\"} 1\n";
        let gzip = super::super::deflate::gzip(
            [super::super::deflate::Compressor::default().piece(body)].iter(),
        );
        let kept = Exposition {
            format: Format::Text,
            gzip: Bytes::from(gzip),
            text: None,
        };
        assert_eq!(kept.decoded().unwrap(), Bytes::from_static(body));
    }
}
