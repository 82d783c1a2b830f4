//! Content-coding negotiation for `/metrics`: gzip when the client's `Accept-Encoding`
//! allows it (RFC 9110 §12.5.3, including `q=0` refusals), identity otherwise; and a body
//! decoding a kept gzip while it is sent (the exposition is always kept compressed, so
//! the server never compresses).

use std::io::Read;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use flate2::bufread::GzDecoder;
use hyper::HeaderMap;
use hyper::body::{Body, Frame};
use hyper::header::ACCEPT_ENCODING;

/// How the client accepts a coding, from the most specific `Accept-Encoding` entry.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Preferences {
    gzip: Option<f32>,
    identity: Option<f32>,
    any: Option<f32>,
}

/// True when the response should be gzip-compressed.
///
/// gzip is chosen when an explicit `gzip`/`x-gzip` entry (or, failing that, `*`) has a
/// non-zero weight and the client does not explicitly prefer `identity`. Malformed
/// entries are ignored, never an error: a scrape must not fail over a header typo.
pub fn wants_gzip(headers: &HeaderMap) -> bool {
    let prefs = preferences(headers);
    let gzip = prefs.gzip.or(prefs.any).unwrap_or(0.0);
    gzip > 0.0 && prefs.identity.is_none_or(|identity| gzip >= identity)
}

fn preferences(headers: &HeaderMap) -> Preferences {
    let mut prefs = Preferences::default();
    let values = headers.get_all(ACCEPT_ENCODING).iter();
    let entries = values
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','));
    for (coding, weight) in entries.filter_map(parse_entry) {
        let slot = match coding.as_str() {
            "gzip" | "x-gzip" => &mut prefs.gzip,
            "identity" => &mut prefs.identity,
            "*" => &mut prefs.any,
            _ => continue,
        };
        *slot = Some(slot.map_or(weight, |seen| seen.max(weight)));
    }
    prefs
}

/// Parses `coding[;q=weight]`; `None` for an empty or malformed entry.
fn parse_entry(entry: &str) -> Option<(String, f32)> {
    let mut parts = entry.split(';');
    let coding = parts.next()?.trim().to_ascii_lowercase();
    if coding.is_empty() {
        return None;
    }
    let mut weight = 1.0;
    for param in parts {
        let (name, value) = param.split_once('=')?;
        if name.trim().eq_ignore_ascii_case("q") {
            weight = parse_qvalue(value.trim())?;
        }
    }
    Some((coding, weight))
}

/// A qvalue is 0..=1 with at most three decimals; anything else is malformed.
fn parse_qvalue(text: &str) -> Option<f32> {
    let valid_shape = text.len() <= 5 && text.chars().all(|c| c.is_ascii_digit() || c == '.');
    let weight: f32 = text.parse().ok().filter(|_| valid_shape)?;
    (0.0..=1.0).contains(&weight).then_some(weight)
}

/// How much decoded text one frame of a [`Gunzip`] body carries.
const GUNZIP_FRAME: usize = 64 * 1024;

/// A response body that decodes a gzip-compressed exposition while it is sent, a frame
/// at a time, for a client that does not accept gzip: a large exposition is never held
/// decoded in memory. A decoding error ends the response with an error (the client sees
/// a cut-off body, not a wrong one).
pub struct Gunzip {
    decoder: Option<GzDecoder<bytes::buf::Reader<Bytes>>>,
}

impl Gunzip {
    /// A body of the text `gzip` encodes.
    pub fn new(gzip: Bytes) -> Gunzip {
        Gunzip {
            decoder: Some(GzDecoder::new(gzip.reader())),
        }
    }
}

impl Body for Gunzip {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let Some(decoder) = self.decoder.as_mut() else {
            return Poll::Ready(None);
        };
        let mut frame = vec![0; GUNZIP_FRAME];
        let mut filled = 0;
        while filled < frame.len() {
            match decoder.read(frame.get_mut(filled..).unwrap_or_default()) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.decoder = None;
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
        if filled == 0 {
            self.decoder = None;
            return Poll::Ready(None);
        }
        frame.truncate(filled);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(frame)))))
    }

    fn is_end_stream(&self) -> bool {
        self.decoder.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    /// Asserts that each request, given as its `Accept-Encoding` values, asks for gzip
    /// (`expected`) or not.
    fn wants(expected: bool, requests: &[&[&str]]) {
        for values in requests {
            let mut headers = HeaderMap::new();
            for value in values.iter() {
                headers.append(ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
            }
            assert_eq!(
                wants_gzip(&headers),
                expected,
                "Accept-Encoding: {values:?}"
            );
        }
    }

    #[test]
    fn no_header_means_identity() {
        wants(false, &[&[]]);
    }

    #[test]
    fn plain_and_weighted_gzip_is_accepted() {
        wants(true, &[&["gzip"], &["GZIP"], &["x-gzip"], &["br", "gzip"]]);
        wants(true, &[&["deflate, gzip;q=0.5"], &["gzip ; q=1.000"]]);
    }

    #[test]
    fn q_zero_refuses_gzip_even_with_star() {
        wants(false, &[&["gzip;q=0"], &["gzip;q=0.000"], &["*, gzip;q=0"]]);
    }

    #[test]
    fn star_stands_for_gzip_when_gzip_is_not_named() {
        wants(true, &[&["*"]]);
        wants(false, &[&["*;q=0"], &["deflate, br"]]);
    }

    #[test]
    fn explicit_identity_preference_wins() {
        wants(false, &[&["gzip;q=0.5, identity"]]);
        wants(true, &[&["gzip, identity;q=0.5"]]);
    }

    #[test]
    fn malformed_weights_are_ignored() {
        wants(
            false,
            &[&["gzip;q=2"], &["gzip;q=abc"], &["gzip;q"], &["gzip;q=-1"]],
        );
        wants(true, &[&[",,gzip,,"]]);
    }

    /// `body` gzip-compressed, as the metric state keeps an exposition.
    fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(body)?;
        encoder.finish()
    }

    #[tokio::test]
    async fn a_gunzip_body_decodes_in_frames_of_bounded_size() {
        use http_body_util::BodyExt;
        let text: Vec<u8> = (0..40_000)
            .flat_map(|i| format!("m{{i=\"{i}\"}} {i}\n").into_bytes())
            .collect();
        assert!(text.len() > 3 * GUNZIP_FRAME);
        let mut body = Gunzip::new(Bytes::from(gzip(&text).unwrap()));
        let mut decoded = Vec::new();
        let mut frames = 0;
        while let Some(frame) = body.frame().await {
            let data = frame.unwrap().into_data().unwrap();
            assert!(data.len() <= GUNZIP_FRAME);
            decoded.extend_from_slice(&data);
            frames += 1;
        }
        assert_eq!(decoded, text);
        assert_eq!(frames, text.len().div_ceil(GUNZIP_FRAME));
        assert!(body.is_end_stream());
    }

    #[tokio::test]
    async fn a_gunzip_body_of_a_corrupt_stream_ends_with_an_error() {
        use http_body_util::BodyExt;
        let mut compressed = gzip(b"up 1\n").unwrap();
        let last = compressed.len() - 1;
        compressed[last] ^= 0xff; // the length in the trailer
        let mut body = Gunzip::new(Bytes::from(compressed));
        let mut failed = false;
        while let Some(frame) = body.frame().await {
            failed |= frame.is_err();
        }
        assert!(failed);
    }
}
