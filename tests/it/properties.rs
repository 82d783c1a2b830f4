//! Property tests: the filter builder's quoting and the model parser on arbitrary input.
//! (The task-name normaliser has its own properties next to it.)

use proptest::prelude::*;
use sailpoint_task_exporter::sailpoint::filter::{Filter, encode_query_value, quote};
use sailpoint_task_exporter::sailpoint::model::{TaskStatus, parse_timestamp};
use serde_json::{Value, json};

/// Reads one quoted value back the way the API's grammar defines it; returns the value and
/// the rest of the input.
fn unquote(s: &str) -> Option<(String, &str)> {
    let mut chars = s.char_indices();
    if chars.next()?.1 != '"' {
        return None;
    }
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?.1),
            '"' => return Some((out, &s[i + 1..])),
            c => out.push(c),
        }
    }
    None
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".*".prop_map(Value::from),
        Just(Value::from("2024-04-22T09:30:25.012Z")),
        Just(Value::from("SUCCESS")),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::hash_map(
                prop_oneof![
                    Just("id".to_string()),
                    Just("created".to_string()),
                    Just("completed".to_string()),
                    Just("launched".to_string()),
                    Just("completionStatus".to_string()),
                    Just("target".to_string()),
                    Just("messages".to_string()),
                    Just("percentComplete".to_string()),
                    Just("type".to_string()),
                    "[a-zA-Z]{1,12}",
                ],
                inner,
                0..10
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn quoted_values_read_back_exactly(v in ".*") {
        let q = quote(&v);
        let (back, rest) = unquote(&q).expect("quoted value must be readable");
        prop_assert_eq!(back, v);
        prop_assert_eq!(rest, "");
    }

    #[test]
    fn an_in_list_keeps_every_value_separate(values in prop::collection::vec(".*", 1..6)) {
        let text = Filter::id_in(values.clone()).to_string();
        let mut rest = text.strip_prefix("id in (").expect("prefix");
        let mut back = Vec::new();
        loop {
            let (v, r) = unquote(rest).expect("value");
            back.push(v);
            match r.chars().next() {
                Some(',') => rest = &r[1..],
                Some(')') => { prop_assert_eq!(&r[1..], ""); break; }
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }
        prop_assert_eq!(back, values);
    }

    #[test]
    fn query_encoding_is_reversible(v in ".*") {
        let encoded = encode_query_value(&v);
        prop_assert!(!encoded.contains(' ') && !encoded.contains('&') && !encoded.contains('+'));
        let decoded: String = url::form_urlencoded::parse(format!("x={encoded}").as_bytes())
            .next().map(|(_, v)| v.into_owned()).unwrap_or_default();
        prop_assert_eq!(decoded, v);
    }

    #[test]
    fn the_model_parser_never_panics_on_any_json(v in arb_json()) {
        // Either a task or an error; both are fine, a panic is not.
        let _ = serde_json::from_value::<TaskStatus>(v.clone());
        let _ = serde_json::from_value::<Vec<TaskStatus>>(Value::Array(vec![v]));
    }

    #[test]
    fn the_model_parser_never_panics_on_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = serde_json::from_slice::<Vec<TaskStatus>>(&bytes);
    }

    #[test]
    fn any_field_of_a_valid_task_may_be_replaced(field in prop_oneof![
        Just("type"), Just("uniqueName"), Just("description"), Just("parentName"),
        Just("attributes"), Just("modified"), Just("launched"), Just("launcher"),
        Just("completed"), Just("completionStatus"), Just("messages"), Just("returns"),
        Just("progress"), Just("percentComplete"), Just("target"), Just("taskDefinitionSummary"),
    ], value in arb_json()) {
        let mut task = json!({"id": "a", "created": "2024-01-01T00:00:00Z"});
        task[field] = value;
        if let Ok(t) = serde_json::from_value::<TaskStatus>(task) {
            prop_assert_eq!(t.id, "a");
        }
    }

    #[test]
    fn timestamps_never_panic(s in ".*") {
        let _ = parse_timestamp(&s);
    }
}

mod task_name_normaliser {
    use proptest::prelude::*;
    use sailpoint_task_exporter::metrics::normalize::{MAX_LABEL_CHARS, task_name};

    fn hex(n: usize) -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(b"0123456789abcdefABCDEF".to_vec()), n)
            .prop_map(|v| String::from_utf8(v).unwrap_or_default())
    }

    fn id() -> impl Strategy<Value = String> {
        prop_oneof![
            hex(32),
            (hex(8), hex(4), hex(4), hex(4), hex(12))
                .prop_map(|(a, b, c, d, e)| format!("{a}-{b}-{c}-{d}-{e}")),
        ]
    }

    proptest! {
        #[test]
        fn an_id_suffix_never_splits_a_group(
            name in "[A-Za-z][A-Za-z ]{0,30}[A-Za-z]",
            id in id(),
            sep in prop::sample::select(vec![" - ", " ", "_", "-", ": ", " #"]),
            bracket in any::<bool>(),
        ) {
            let with_id = if bracket { format!("{name} [{id}]") } else { format!("{name}{sep}{id}") };
            prop_assert_eq!(task_name(&with_id, &[]), task_name(&name, &[]));
        }

        #[test]
        fn labels_are_bounded_trimmed_and_never_empty(raw in ".*") {
            let label = task_name(&raw, &[]);
            prop_assert!(!label.is_empty());
            prop_assert!(label.chars().count() <= MAX_LABEL_CHARS);
            prop_assert_eq!(label.trim(), label.as_str());
        }

        #[test]
        fn names_without_an_id_are_kept(name in "[A-Za-z][A-Za-z ]{0,30}[A-Za-z]( \\[source\\])?") {
            prop_assert_eq!(task_name(&name, &[]), name);
        }
    }
}

/// The exposition's gzip stream is joined from separately compressed pieces: whatever
/// the pieces and their order, it decodes to their concatenated text.
mod gzip_pieces {
    use std::io::Read;

    use proptest::prelude::*;
    use sailpoint_task_exporter::metrics::deflate::{Compressor, gzip};

    fn text() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            // Exposition-like lines: repetitive, what the pieces really hold.
            (0usize..2000).prop_map(|n| (0..n)
                .map(|i| format!("m_bucket{{tenant=\"t\",le=\"{}\"}} {}\n", i % 17, i * 7))
                .collect::<String>()
                .into_bytes()),
            // Arbitrary bytes, incompressible runs included.
            prop::collection::vec(any::<u8>(), 0..70_000),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn joined_pieces_decode_to_the_concatenated_text(
            texts in prop::collection::vec(text(), 0..6),
        ) {
            let mut compressor = Compressor::default();
            let pieces: Vec<_> = texts.iter().map(|t| compressor.piece(t)).collect();
            let stream = gzip(pieces.iter());
            let mut decoded = Vec::new();
            flate2::read::GzDecoder::new(&stream[..]).read_to_end(&mut decoded).unwrap();
            prop_assert_eq!(decoded, texts.concat());
        }
    }
}
