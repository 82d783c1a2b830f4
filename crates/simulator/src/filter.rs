//! The `filters` query parameter of `GET /task-status`, as the simulated tenant
//! understands it.
//!
//! Grammar (SailPoint's standard collection parameters, restricted to what the
//! task-status list documents):
//!
//! ```text
//! expr   := term ( "and" term )*
//! term   := "(" expr ")" | field "eq" string | field "in" "(" string ( "," string )* ")"
//!         | field "isnull"
//! field  := id | sourceId | completionStatus | type
//! string := '"' ( any char except '"' and '\' | '\"' | '\\' )* '"'
//! ```
//!
//! Operators are lower-case only; field names are case-sensitive. `isnull` is accepted
//! on `completionStatus` only (as v2025 documents it). String comparisons ignore ASCII
//! case. Every other operator SailPoint knows (`ne`, `co`, `sw`, `gt`, ..., `or`, `not`)
//! is refused with a [`FilterError`] that names it, because the task-status list does
//! not support it.

use thiserror::Error;

use sailpoint_model::CompletionStatus;

/// Why a `filters` value was refused; the text goes into the 400 body.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FilterError {
    /// The text does not follow the grammar.
    #[error("Invalid filter syntax at position {position}: {reason}")]
    Syntax {
        /// Byte offset of the problem.
        position: usize,
        /// What was expected or found.
        reason: String,
    },
    /// A field the task-status list cannot be filtered on.
    #[error("Filtering is not supported for field '{0}'")]
    UnknownField(String),
    /// A known operator the field does not support.
    #[error("Filtering is not supported for operator '{operator}' on field '{field}'")]
    UnsupportedOperator {
        /// The field.
        field: String,
        /// The operator.
        operator: String,
    },
    /// `or` or `not`.
    #[error("Composite operator '{0}' is not supported")]
    UnsupportedComposite(String),
    /// A `type` value that is not a task kind (SailPoint's own wording).
    #[error("Error converting Enumerated string (type) value ({0})")]
    UnknownTaskType(String),
}

/// The four fields the task-status list can be filtered on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `id`: eq, in.
    Id,
    /// `sourceId`: eq, in; matches `target.id` / `attributes.appId`.
    SourceId,
    /// `completionStatus`: eq, in, isnull.
    CompletionStatus,
    /// `type`: eq, in; task kinds such as `CLOUD_ACCOUNT_AGGREGATION`.
    Type,
}

impl Field {
    fn parse(name: &str) -> Option<Field> {
        match name {
            "id" => Some(Field::Id),
            "sourceId" => Some(Field::SourceId),
            "completionStatus" => Some(Field::CompletionStatus),
            "type" => Some(Field::Type),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Field::Id => "id",
            Field::SourceId => "sourceId",
            Field::CompletionStatus => "completionStatus",
            Field::Type => "type",
        }
    }
}

/// The task kinds the `type` filter accepts (SailPoint rejects the scheduler kinds
/// `QUARTZ`/`QPOC`/`QUEUED_TASK` there; see docs/sailpoint-api.md, "Paging, filters and sorters").
pub const TASK_KINDS: [&str; 15] = [
    "CLOUD_ACCOUNT_AGGREGATION",
    "CLOUD_GROUP_AGGREGATION",
    "CLOUD_PROCESS_UNCORRELATED_ACCOUNTS",
    "CLOUD_REFRESH_ROLE",
    "SOURCE_APPLICATION_DISCOVERY",
    "AI_AGENT_AGGREGATION",
    "APPLICATION_DISCOVERY",
    "MACHINE_IDENTITY_AGGREGATION",
    "MACHINE_IDENTITY_DELETION",
    "ACCOUNT_DELETION",
    "CLOUD_ENTITLEMENT_IMPORT",
    "CLOUD_UNCORRELATED_REFRESH",
    "CLOUD_IDENTITY_AGGREGATION",
    "CLOUD_ATTRIBUTE_SYNCHRONIZATION",
    "IDENTITY_REFRESH",
];

/// A parsed filter: a conjunction of comparisons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterExpr {
    terms: Vec<Comparison>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Comparison {
    Eq(Field, String),
    In(Field, Vec<String>),
    IsNull(Field),
}

/// What a task offers to the filter; implemented by the tenant's task records.
pub trait Filterable {
    /// The task id (32 hex).
    fn id(&self) -> String;
    /// The ids of the source the task works on (`target.id`, `attributes.appId`).
    fn source_ids(&self) -> Vec<&str>;
    /// The completion status, `None` while pending.
    fn completion_status(&self) -> Option<CompletionStatus>;
    /// The task kind as the `type` filter names it (e.g. `CLOUD_ACCOUNT_AGGREGATION`).
    fn kind(&self) -> Option<&'static str>;
}

impl FilterExpr {
    /// Parses a `filters` value.
    pub fn parse(text: &str) -> Result<FilterExpr, FilterError> {
        let tokens = tokenize(text)?;
        let mut parser = Parser {
            tokens: &tokens,
            pos: 0,
            end: text.len(),
        };
        let mut terms = Vec::new();
        parser.expr(&mut terms, 0)?;
        if let Some(tok) = parser.peek() {
            return Err(syntax(tok.position, "unexpected trailing input"));
        }
        Ok(FilterExpr { terms })
    }

    /// True when the filter asks for pending tasks (`completionStatus isnull`), which
    /// makes the list answer with pending instead of completed tasks.
    pub fn wants_pending(&self) -> bool {
        self.terms
            .iter()
            .any(|t| matches!(t, Comparison::IsNull(Field::CompletionStatus)))
    }

    /// Evaluates the filter against one task.
    pub fn matches<T: Filterable>(&self, task: &T) -> bool {
        self.terms.iter().all(|t| t.matches(task))
    }
}

impl Comparison {
    fn matches<T: Filterable>(&self, task: &T) -> bool {
        match self {
            Comparison::Eq(field, value) => field_matches(*field, task, value),
            Comparison::In(field, values) => values.iter().any(|v| field_matches(*field, task, v)),
            Comparison::IsNull(_) => task.completion_status().is_none(),
        }
    }
}

fn field_matches<T: Filterable>(field: Field, task: &T, value: &str) -> bool {
    match field {
        Field::Id => task.id().eq_ignore_ascii_case(value),
        Field::SourceId => task
            .source_ids()
            .iter()
            .any(|s| s.eq_ignore_ascii_case(value)),
        Field::CompletionStatus => task
            .completion_status()
            .is_some_and(|s| s == CompletionStatus::from(value)),
        Field::Type => task.kind().is_some_and(|k| k.eq_ignore_ascii_case(value)),
    }
}

fn syntax(position: usize, reason: &str) -> FilterError {
    FilterError::Syntax {
        position,
        reason: reason.to_string(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TokenKind {
    Word(String),
    Str(String),
    Open,
    Close,
    Comma,
}

#[derive(Debug, Clone)]
struct Token {
    kind: TokenKind,
    position: usize,
}

fn tokenize(text: &str) -> Result<Vec<Token>, FilterError> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((position, c)) = chars.next() {
        let kind = match c {
            c if c.is_whitespace() => continue,
            '(' => TokenKind::Open,
            ')' => TokenKind::Close,
            ',' => TokenKind::Comma,
            '"' => TokenKind::Str(read_string(&mut chars, position)?),
            c if c.is_ascii_alphabetic() => {
                let mut word = String::from(c);
                while let Some(&(_, n)) = chars.peek() {
                    if n.is_ascii_alphanumeric() || n == '_' || n == '.' {
                        word.push(n);
                        chars.next();
                    } else {
                        break;
                    }
                }
                TokenKind::Word(word)
            }
            other => return Err(syntax(position, &format!("unexpected character '{other}'"))),
        };
        tokens.push(Token { kind, position });
    }
    Ok(tokens)
}

fn read_string(
    chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
    start: usize,
) -> Result<String, FilterError> {
    let mut value = String::new();
    while let Some((position, c)) = chars.next() {
        match c {
            '"' => return Ok(value),
            '\\' => match chars.next() {
                Some((_, e @ ('"' | '\\'))) => value.push(e),
                Some((_, e)) => {
                    return Err(syntax(position, &format!("invalid escape '\\{e}'")));
                }
                None => break,
            },
            c => value.push(c),
        }
    }
    Err(syntax(start, "unterminated string"))
}

struct Parser<'a> {
    tokens: &'a [Token],
    pos: usize,
    end: usize,
}

/// Nesting deeper than this is refused, so hostile input cannot exhaust the stack.
const MAX_DEPTH: usize = 32;

const KNOWN_OPERATORS: [&str; 12] = [
    "eq", "ne", "in", "co", "sw", "gt", "ge", "lt", "le", "pr", "isnull", "ca",
];

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self, expected: &str) -> Result<&Token, FilterError> {
        let tok = self.tokens.get(self.pos).ok_or_else(|| {
            syntax(
                self.end,
                &format!("expected {expected}, found end of input"),
            )
        })?;
        self.pos += 1;
        Ok(tok)
    }

    fn expr(&mut self, out: &mut Vec<Comparison>, depth: usize) -> Result<(), FilterError> {
        if depth > MAX_DEPTH {
            return Err(syntax(self.end, "parentheses nested too deeply"));
        }
        self.term(out, depth)?;
        while let Some(tok) = self.peek() {
            match &tok.kind {
                TokenKind::Word(w) if w == "and" => {
                    self.pos += 1;
                    self.term(out, depth)?;
                }
                TokenKind::Word(w) if w == "or" || w == "not" => {
                    return Err(FilterError::UnsupportedComposite(w.clone()));
                }
                TokenKind::Word(w) if w.eq_ignore_ascii_case("and") => {
                    return Err(syntax(tok.position, "operators must be lower-case"));
                }
                _ => break,
            }
        }
        Ok(())
    }

    fn term(&mut self, out: &mut Vec<Comparison>, depth: usize) -> Result<(), FilterError> {
        let tok = self.next("a field name or '('")?;
        let position = tok.position;
        match &tok.kind {
            TokenKind::Open => {
                self.expr(out, depth + 1)?;
                match self.next("')'")? {
                    Token {
                        kind: TokenKind::Close,
                        ..
                    } => Ok(()),
                    other => Err(syntax(other.position, "expected ')'")),
                }
            }
            TokenKind::Word(w) if w == "not" => Err(FilterError::UnsupportedComposite(w.clone())),
            TokenKind::Word(name) => {
                let name = name.clone();
                let field =
                    Field::parse(&name).ok_or_else(|| FilterError::UnknownField(name.clone()))?;
                out.push(self.comparison(field)?);
                Ok(())
            }
            _ => Err(syntax(position, "expected a field name")),
        }
    }

    fn comparison(&mut self, field: Field) -> Result<Comparison, FilterError> {
        let tok = self.next("an operator")?;
        let position = tok.position;
        let op = match &tok.kind {
            TokenKind::Word(op) => op.clone(),
            _ => return Err(syntax(position, "expected an operator")),
        };
        let unsupported = || FilterError::UnsupportedOperator {
            field: field.name().to_string(),
            operator: op.clone(),
        };
        let comparison = match op.as_str() {
            "eq" => Comparison::Eq(field, self.string()?),
            "in" => Comparison::In(field, self.list()?),
            "isnull" if field == Field::CompletionStatus => Comparison::IsNull(field),
            known if KNOWN_OPERATORS.contains(&known) => return Err(unsupported()),
            other if KNOWN_OPERATORS.contains(&other.to_ascii_lowercase().as_str()) => {
                return Err(syntax(position, "operators must be lower-case"));
            }
            _ => return Err(syntax(position, &format!("unknown operator '{op}'"))),
        };
        validate_values(&comparison)?;
        Ok(comparison)
    }

    fn string(&mut self) -> Result<String, FilterError> {
        let tok = self.next("a quoted string")?;
        match &tok.kind {
            TokenKind::Str(s) => Ok(s.clone()),
            _ => Err(syntax(tok.position, "expected a quoted string")),
        }
    }

    fn list(&mut self) -> Result<Vec<String>, FilterError> {
        let tok = self.next("'('")?;
        if tok.kind != TokenKind::Open {
            return Err(syntax(tok.position, "expected '(' after 'in'"));
        }
        let mut values = vec![self.string()?];
        loop {
            let tok = self.next("',' or ')'")?;
            match tok.kind {
                TokenKind::Comma => values.push(self.string()?),
                TokenKind::Close => return Ok(values),
                _ => return Err(syntax(tok.position, "expected ',' or ')'")),
            }
        }
    }
}

/// `type` only accepts the documented task kinds, like the real service.
fn validate_values(c: &Comparison) -> Result<(), FilterError> {
    let values: &[String] = match c {
        Comparison::Eq(Field::Type, v) => std::slice::from_ref(v),
        Comparison::In(Field::Type, v) => v,
        _ => return Ok(()),
    };
    for v in values {
        if !TASK_KINDS.iter().any(|k| k.eq_ignore_ascii_case(v)) {
            return Err(FilterError::UnknownTaskType(v.clone()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct T {
        id: &'static str,
        source: Option<&'static str>,
        status: Option<CompletionStatus>,
        kind: Option<&'static str>,
    }

    impl Filterable for T {
        fn id(&self) -> String {
            self.id.to_string()
        }
        fn source_ids(&self) -> Vec<&str> {
            self.source.into_iter().collect()
        }
        fn completion_status(&self) -> Option<CompletionStatus> {
            self.status.clone()
        }
        fn kind(&self) -> Option<&'static str> {
            self.kind
        }
    }

    fn task(id: &'static str, status: Option<CompletionStatus>) -> T {
        T {
            id,
            source: Some("src1"),
            status,
            kind: Some("CLOUD_ACCOUNT_AGGREGATION"),
        }
    }

    #[test]
    fn eq_on_completion_status_ignores_case() {
        let f = FilterExpr::parse(r#"completionStatus eq "Success""#).unwrap();
        assert!(f.matches(&task("a", Some(CompletionStatus::Success))));
        assert!(!f.matches(&task("a", Some(CompletionStatus::Error))));
        assert!(!f.matches(&task("a", None)));
        assert!(!f.wants_pending());
    }

    #[test]
    fn in_list_and_composite_with_parentheses() {
        let f = FilterExpr::parse(r#"(id in ("a", "B")) and (sourceId eq "SRC1")"#).unwrap();
        assert!(f.matches(&task("a", None)));
        assert!(f.matches(&task("b", None)));
        assert!(!f.matches(&task("c", None)));
        let mut other_source = task("a", None);
        other_source.source = Some("src2");
        assert!(!f.matches(&other_source));
    }

    #[test]
    fn isnull_selects_pending_and_is_flagged() {
        let f = FilterExpr::parse("completionStatus isnull and sourceId eq \"src1\"").unwrap();
        assert!(f.wants_pending());
        assert!(f.matches(&task("a", None)));
        assert!(!f.matches(&task("a", Some(CompletionStatus::Warning))));
    }

    #[test]
    fn escapes_in_quoted_strings() {
        let f = FilterExpr::parse(r#"id eq "a\"b\\c""#).unwrap();
        assert_eq!(
            f.terms,
            vec![Comparison::Eq(Field::Id, r#"a"b\c"#.to_string())]
        );
        assert!(matches!(
            FilterExpr::parse(r#"id eq "a\nb""#),
            Err(FilterError::Syntax { .. })
        ));
    }

    #[test]
    fn type_accepts_task_kinds_only() {
        let f = FilterExpr::parse(r#"type in ("cloud_account_aggregation", "IDENTITY_REFRESH")"#)
            .unwrap();
        assert!(f.matches(&task("a", None)));
        assert_eq!(
            FilterExpr::parse(r#"type eq "QUARTZ""#),
            Err(FilterError::UnknownTaskType("QUARTZ".into()))
        );
    }

    #[test]
    fn refusals_name_the_problem() {
        assert_eq!(
            FilterExpr::parse(r#"name eq "x""#),
            Err(FilterError::UnknownField("name".into()))
        );
        assert_eq!(
            FilterExpr::parse(r#"id sw "x""#),
            Err(FilterError::UnsupportedOperator {
                field: "id".into(),
                operator: "sw".into()
            })
        );
        assert_eq!(
            FilterExpr::parse("id isnull"),
            Err(FilterError::UnsupportedOperator {
                field: "id".into(),
                operator: "isnull".into()
            })
        );
        assert_eq!(
            FilterExpr::parse(r#"id eq "a" or id eq "b""#),
            Err(FilterError::UnsupportedComposite("or".into()))
        );
        for bad in [
            r#"id EQ "a""#,
            r#"id eq a"#,
            r#"id eq "a"#,
            r#"id in "a""#,
            r#"id in ("a" "b")"#,
            r#"(id eq "a""#,
            r#"id eq "a")"#,
            r#"id eq "a" AND id eq "b""#,
            "",
            "id",
            r#"id eq "a" and"#,
            "id eq 'a'",
        ] {
            assert!(
                matches!(FilterExpr::parse(bad), Err(FilterError::Syntax { .. })),
                "{bad:?} gave {:?}",
                FilterExpr::parse(bad)
            );
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let text = format!("{}id eq \"a\"{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(matches!(
            FilterExpr::parse(&text),
            Err(FilterError::Syntax { .. })
        ));
    }
}
