//! The exposition formats `/metrics` serves, and the choice among them from a scrape's
//! `Accept` header as the Prometheus clients make it (client_golang's
//! `expfmt.NegotiateIncludingOpenMetrics`): the entries in order of preference, the
//! first one naming a format we serve wins, and the Prometheus text format is the
//! fallback. Prometheus asks for OpenMetrics by default (exemplars need it) and for
//! protobuf first when its native histograms are enabled.

/// One exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// The Prometheus text format 0.0.4 (no exemplars; served to anything that does not
    /// ask for another format).
    Text,
    /// OpenMetrics text 1.0.0: exemplars on the completion counter and task buckets.
    OpenMetrics,
    /// Length-delimited `io.prometheus.client.MetricFamily` messages: exemplars, and
    /// native buckets next to the classic ones on the task histograms.
    Protobuf,
}

impl Format {
    /// Every format, in [`Format::index`] order.
    pub const ALL: [Format; 3] = [Format::Text, Format::OpenMetrics, Format::Protobuf];

    /// The position of the format in [`Format::ALL`] (for per-format slots).
    pub fn index(self) -> usize {
        match self {
            Format::Text => 0,
            Format::OpenMetrics => 1,
            Format::Protobuf => 2,
        }
    }

    /// The `Content-Type` of the format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Protobuf => {
                "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
            }
        }
    }

    /// The format to serve for these `Accept` header values. Malformed entries are
    /// skipped, never an error: a scrape must not fail over a header typo.
    pub fn negotiate<'a>(accept: impl IntoIterator<Item = &'a str>) -> Format {
        let mut entries: Vec<(f32, usize, Format)> = Vec::new();
        let mut seen = 0;
        for entry in accept.into_iter().flat_map(|value| value.split(',')) {
            seen += 1;
            if let Some((weight, format)) = parse(entry) {
                entries.push((weight, seen, format));
            }
        }
        entries
            .iter()
            .filter(|(weight, _, _)| *weight > 0.0)
            .max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)))
            .map_or(Format::Text, |(_, _, format)| *format)
    }
}

/// The weight and format of one `Accept` entry, None when it names no format we serve.
fn parse(entry: &str) -> Option<(f32, Format)> {
    let mut parts = entry.split(';');
    let media = parts.next()?.trim().to_ascii_lowercase();
    let mut weight = 1.0;
    let (mut version, mut proto, mut encoding) = (None, None, None);
    for param in parts {
        let (name, value) = param.split_once('=')?;
        let value = value.trim().trim_matches('"');
        match name.trim().to_ascii_lowercase().as_str() {
            "q" => {
                weight = value
                    .parse::<f32>()
                    .ok()
                    .filter(|q| (0.0..=1.0).contains(q))?
            }
            "version" => version = Some(value.to_string()),
            "proto" => proto = Some(value.to_string()),
            "encoding" => encoding = Some(value.to_string()),
            _ => {}
        }
    }
    let format = match media.as_str() {
        "application/vnd.google.protobuf"
            if proto.as_deref() == Some("io.prometheus.client.MetricFamily")
                && encoding.as_deref() == Some("delimited") =>
        {
            Format::Protobuf
        }
        "text/plain" if version.as_deref().is_none_or(|v| v == "0.0.4") => Format::Text,
        "application/openmetrics-text"
            if version
                .as_deref()
                .is_none_or(|v| v == "1.0.0" || v == "0.0.1") =>
        {
            Format::OpenMetrics
        }
        _ => return None,
    };
    Some((weight, format))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Prometheus 2.42 sends by default, and with native histograms enabled.
    const PROMETHEUS: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    const PROMETHEUS_NATIVE: &str = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

    /// Asserts the format each list of `Accept` values negotiates.
    fn negotiates(cases: &[(&[&str], Format)]) {
        for (accept, expected) in cases {
            let got = Format::negotiate(accept.iter().copied());
            assert_eq!(got, *expected, "Accept: {accept:?}");
        }
    }

    #[test]
    fn prometheus_gets_openmetrics_by_default_and_protobuf_with_native_histograms() {
        negotiates(&[
            (&[PROMETHEUS], Format::OpenMetrics),
            (&[PROMETHEUS_NATIVE], Format::Protobuf),
        ]);
    }

    #[test]
    fn anything_else_gets_the_text_format() {
        negotiates(&[
            (&[], Format::Text),
            (&["*/*"], Format::Text),
            (&["text/html, application/json"], Format::Text),
            (&["text/plain"], Format::Text),
            (&["text/plain;version=0.0.4"], Format::Text),
            (
                &["application/openmetrics-text;version=2.0.0"],
                Format::Text,
            ),
            (
                &[
                    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text",
                ],
                Format::Text,
            ),
            (&["application/vnd.google.protobuf"], Format::Text),
        ]);
    }

    #[test]
    fn weights_order_the_entries_and_zero_refuses() {
        negotiates(&[
            (
                &["text/plain;q=0.9, application/openmetrics-text"],
                Format::OpenMetrics,
            ),
            (
                &[
                    "application/openmetrics-text;q=0.4",
                    "text/plain;version=0.0.4;q=0.5",
                ],
                Format::Text,
            ),
            (&["application/openmetrics-text;q=0"], Format::Text),
            // Equal weights: the first entry wins.
            (&["text/plain, application/openmetrics-text"], Format::Text),
        ]);
    }

    #[test]
    fn malformed_entries_are_skipped() {
        negotiates(&[
            (
                &["application/openmetrics-text;q=abc, ;;, text/plain;q=2"],
                Format::Text,
            ),
            (
                &["garbage;=, application/openmetrics-text ; version = 1.0.0"],
                Format::OpenMetrics,
            ),
        ]);
    }
}
