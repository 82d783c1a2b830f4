//! Builder for SailPoint's standard collection `filters` and `sorters` parameters.
//!
//! Values are always written as double-quoted strings with `\` and `"` escaped, as the
//! standard collection parameters require, so an id or a status can never change the
//! meaning of an expression. Operators are written lower-case (the only case the API
//! accepts).

use std::fmt;

/// A filter expression for `GET /task-status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// `field eq "value"`
    Eq(&'static str, String),
    /// `field in ("a","b")`
    In(&'static str, Vec<String>),
    /// `field isnull`
    IsNull(&'static str),
    /// `a and b and …`
    And(Vec<Filter>),
}

impl Filter {
    /// `id eq "…"`.
    pub fn id_eq(id: impl Into<String>) -> Filter {
        Filter::Eq("id", id.into())
    }

    /// `id in (…)`.
    pub fn id_in<I: IntoIterator<Item = S>, S: Into<String>>(ids: I) -> Filter {
        Filter::In("id", ids.into_iter().map(Into::into).collect())
    }

    /// `completionStatus eq "…"`; the API's enum is upper-case, so the value is upper-cased.
    pub fn completion_status_eq(status: &str) -> Filter {
        Filter::Eq("completionStatus", status.to_ascii_uppercase())
    }

    /// `completionStatus isnull`: pending tasks on API versions that support it.
    pub fn pending() -> Filter {
        Filter::IsNull("completionStatus")
    }

    /// Combines two filters with `and`, flattening nested `and`s.
    pub fn and(self, other: Filter) -> Filter {
        let mut parts = match self {
            Filter::And(v) => v,
            f => vec![f],
        };
        match other {
            Filter::And(v) => parts.extend(v),
            f => parts.push(f),
        }
        Filter::And(parts)
    }
}

/// Quotes a filter value: `a"b\c` → `"a\"b\\c"`.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::Eq(field, v) => write!(f, "{field} eq {}", quote(v)),
            Filter::In(field, values) => {
                let list: Vec<String> = values.iter().map(|v| quote(v)).collect();
                write!(f, "{field} in ({})", list.join(","))
            }
            Filter::IsNull(field) => write!(f, "{field} isnull"),
            Filter::And(parts) => {
                let parts: Vec<String> = parts.iter().map(|p| p.to_string()).collect();
                f.write_str(&parts.join(" and "))
            }
        }
    }
}

/// Sort order of `GET /task-status`; `created` is the only sortable field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sorter {
    /// Oldest first (`created`).
    CreatedAscending,
    /// Newest first (`-created`), as the completed poll reads.
    CreatedDescending,
}

impl Sorter {
    /// The `sorters` parameter value.
    pub fn as_str(self) -> &'static str {
        match self {
            Sorter::CreatedAscending => "created",
            Sorter::CreatedDescending => "-created",
        }
    }
}

/// Percent-encodes a query parameter value with `%20` for spaces (the form `+` is not
/// what SailPoint's documentation shows).
pub fn encode_query_value(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_documented_forms() {
        assert_eq!(Filter::id_in(["a", "b"]).to_string(), r#"id in ("a","b")"#);
        assert_eq!(
            Filter::completion_status_eq("Error").to_string(),
            r#"completionStatus eq "ERROR""#
        );
        assert_eq!(
            Filter::Eq("sourceId", "x".into())
                .and(Filter::completion_status_eq("error"))
                .to_string(),
            r#"sourceId eq "x" and completionStatus eq "ERROR""#
        );
        assert_eq!(
            Filter::pending().and(Filter::id_eq("1").and(Filter::id_eq("2"))),
            Filter::And(vec![
                Filter::pending(),
                Filter::id_eq("1"),
                Filter::id_eq("2")
            ])
        );
    }

    #[test]
    fn quoting_escapes_quotes_and_backslashes() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(
            Filter::id_eq(r#"x" or id eq "y"#).to_string(),
            r#"id eq "x\" or id eq \"y""#
        );
    }

    #[test]
    fn query_values_use_percent_20() {
        assert_eq!(
            encode_query_value(r#"id eq "a+b&c""#),
            "id%20eq%20%22a%2Bb%26c%22"
        );
    }
}
