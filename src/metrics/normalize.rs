//! Task-name normalisation and the other label derivations, shared by every update path
//! (pending snapshot, completion, priming), so all derive the same `task_name`/`source`
//! labels and pass the same cardinality guard.

use std::sync::LazyLock;

use regex::Regex;

use crate::config::Rewrite;
use crate::sailpoint::model::TaskStatus;

/// Longest label value kept; longer names are cut (on a character boundary) so a
/// hostile payload cannot blow up the exposition.
pub const MAX_LABEL_CHARS: usize = 128;

/// Label used when a task has no usable name or status.
pub const UNKNOWN: &str = "unknown";

const ID: &str = r"(?:[0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})";

/// A trailing 32-hex id or dashed uuid, either after a separator (space, `-`, `_`,
/// `:`, `#`, `/`) or wrapped in `[...]`/`(...)`. Brackets that do not hold an id
/// (e.g. "Active Directory [source]") are part of the name and kept.
static ID_SUFFIX: LazyLock<Regex> = LazyLock::new(|| {
    let pattern = format!(
        r"^(?P<name>.*?)(?:[\s\-_:#/]*(?:\[\s*{ID}\s*\]|\(\s*{ID}\s*\))|(?:^|[\s\-_:#/]+){ID})\s*$"
    );
    // The pattern is a constant; failing to compile it is a programming error that
    // every test run would show, so falling back to "never matches" is only defensive.
    Regex::new(&pattern)
        .unwrap_or_else(|_| Regex::new(r"[^\s\S]").unwrap_or_else(|_| unreachable!()))
});

fn is_separator(c: char) -> bool {
    c.is_whitespace() || matches!(c, '-' | '_' | ':' | '#' | '/')
}

/// Strips one trailing id/uuid suffix and the separators before it.
pub fn strip_id_suffix(name: &str) -> &str {
    let stripped = ID_SUFFIX
        .captures(name)
        .and_then(|c| c.name("name"))
        .map_or(name, |m| m.as_str());
    stripped.trim().trim_end_matches(is_separator).trim()
}

/// The `task_name` label: `uniqueName` without its id suffix, then the configured
/// rewrites in order; "unknown" when nothing is left.
pub fn task_name(unique_name: &str, rewrites: &[Rewrite]) -> String {
    let mut name = strip_id_suffix(unique_name).to_string();
    for rewrite in rewrites {
        name = rewrite
            .pattern
            .replace_all(&name, rewrite.replacement.as_str())
            .into_owned();
    }
    let name = name.trim();
    if name.is_empty() {
        UNKNOWN.to_string()
    } else {
        truncate(name)
    }
}

/// The `source` label: `target.name` for `APPLICATION` targets, else empty.
pub fn source(task: &TaskStatus) -> String {
    task.source_name().map(truncate).unwrap_or_default()
}

/// The `status` label: the completion status lower-cased, "unknown" when a completed
/// task carries none.
pub fn status(task: &TaskStatus) -> String {
    match &task.completion_status {
        Some(s) => {
            let label = truncate(&s.label());
            if label.trim().is_empty() {
                UNKNOWN.to_string()
            } else {
                label
            }
        }
        None => UNKNOWN.to_string(),
    }
}

/// The `level` label of a message that is counted (`warn`, `error`); other levels
/// (`INFO`, unknown) are not counted.
pub fn message_level(level: &str) -> Option<&'static str> {
    if level.eq_ignore_ascii_case("warn") {
        Some("warn")
    } else if level.eq_ignore_ascii_case("error") {
        Some("error")
    } else {
        None
    }
}

/// Longest `attribute` label value.
pub const MAX_ATTRIBUTE_CHARS: usize = 64;

/// The `attribute` label of a task result: ASCII letters, digits and `_` kept, anything
/// else replaced by `_`, cut at [`MAX_ATTRIBUTE_CHARS`]; None when nothing is left.
pub fn attribute(name: &str) -> Option<String> {
    let label: String = name
        .trim()
        .chars()
        .take(MAX_ATTRIBUTE_CHARS)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    (!label.is_empty() && label.chars().any(|c| c != '_')).then_some(label)
}

fn truncate(s: &str) -> String {
    s.chars().take(MAX_LABEL_CHARS).collect()
}
