//! Content-coding negotiation for `/metrics`: gzip when the client's `Accept-Encoding`
//! allows it (RFC 9110 §12.5.3, including `q=0` refusals), identity otherwise.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use hyper::HeaderMap;
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

/// gzip-compresses a rendered exposition.
pub fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
    encoder.write_all(body)?;
    encoder.finish()
}

/// Decodes a gzip-compressed exposition (for a client that does not accept gzip).
pub fn gunzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut text = Vec::with_capacity(body.len().saturating_mul(8));
    flate2::read::GzDecoder::new(body).read_to_end(&mut text)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn wants(values: &[&str]) -> bool {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
        }
        wants_gzip(&headers)
    }

    #[test]
    fn no_header_means_identity() {
        assert!(!wants(&[]));
    }

    #[test]
    fn plain_and_weighted_gzip_is_accepted() {
        assert!(wants(&["gzip"]));
        assert!(wants(&["GZIP"]));
        assert!(wants(&["x-gzip"]));
        assert!(wants(&["deflate, gzip;q=0.5"]));
        assert!(wants(&["br", "gzip"]));
        assert!(wants(&["gzip ; q=1.000"]));
    }

    #[test]
    fn q_zero_refuses_gzip_even_with_star() {
        assert!(!wants(&["gzip;q=0"]));
        assert!(!wants(&["gzip;q=0.000"]));
        assert!(!wants(&["*, gzip;q=0"]));
    }

    #[test]
    fn star_stands_for_gzip_when_gzip_is_not_named() {
        assert!(wants(&["*"]));
        assert!(!wants(&["*;q=0"]));
        assert!(!wants(&["deflate, br"]));
    }

    #[test]
    fn explicit_identity_preference_wins() {
        assert!(!wants(&["gzip;q=0.5, identity"]));
        assert!(wants(&["gzip, identity;q=0.5"]));
    }

    #[test]
    fn malformed_weights_are_ignored() {
        assert!(!wants(&["gzip;q=2"]));
        assert!(!wants(&["gzip;q=abc"]));
        assert!(!wants(&["gzip;q"]));
        assert!(!wants(&["gzip;q=-1"]));
        assert!(wants(&[",,gzip,,"]));
    }

    #[test]
    fn gzip_round_trips() {
        use std::io::Read;
        let compressed = gzip(b"up 1\n").unwrap();
        let mut text = String::new();
        flate2::read::GzDecoder::new(&compressed[..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "up 1\n");
        assert_eq!(gunzip(&compressed).unwrap(), b"up 1\n");
    }
}
