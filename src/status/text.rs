//! Small text helpers of the status page: every string from the API goes through
//! [`truncate`] when it is stored and through [`escape`] when it is rendered.

/// Longest task or source name kept (characters).
pub const MAX_NAME_CHARS: usize = 200;
/// Longest task id kept (SailPoint ids are 32 hex characters).
pub const MAX_ID_CHARS: usize = 64;
/// Longest message text kept (characters); the rest is cut and marked with `…`.
pub const MAX_MESSAGE_CHARS: usize = 500;

/// Cuts `s` to at most `max` characters (on a character boundary); a cut string ends
/// with `…` so a reader knows there was more.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Escapes text for HTML element content and double-quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Quotes a word for a POSIX shell: left as is when it only holds characters no shell
/// interprets, else single-quoted. A task id comes from the API, and an operator pastes
/// the command into a terminal: a hostile id must stay one inert argument.
pub fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/'));
    if plain && !word.starts_with('-') {
        return word.to_string();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// A duration for people: the two largest non-zero units, e.g. `3h 1m`, `2d 4h`, `45s`.
pub fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    let parts = [
        (s / 86_400, "d"),
        (s % 86_400 / 3600, "h"),
        (s % 3600 / 60, "m"),
        (s % 60, "s"),
    ];
    let shown: Vec<String> = parts
        .iter()
        .skip_while(|(n, _)| *n == 0)
        .take(2)
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if shown.is_empty() {
        "0s".to_string()
    } else {
        shown.join(" ")
    }
}

/// A configured threshold for people: whole hours as `26h`, else like [`age`].
pub fn threshold(seconds: u64) -> String {
    if seconds > 0 && seconds.is_multiple_of(3600) {
        format!("{}h", seconds / 3600)
    } else {
        age(i64::try_from(seconds).unwrap_or(i64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_makes_markup_inert() {
        assert_eq!(
            escape(r#"<img src=x onerror=alert(1)> & "q" 'a'"#),
            "&lt;img src=x onerror=alert(1)&gt; &amp; &quot;q&quot; &#39;a&#39;"
        );
    }

    #[test]
    fn truncate_cuts_on_characters_and_marks_the_cut() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("ééééé", 3), "éé…");
        assert_eq!(truncate("abc", 0), "…");
    }

    #[test]
    fn shell_word_quotes_anything_a_shell_would_interpret() {
        assert_eq!(
            shell_word("2c9180835d2e5168015d32f890ca1581"),
            "2c9180835d2e5168015d32f890ca1581"
        );
        assert_eq!(shell_word("$(rm -rf ~)"), "'$(rm -rf ~)'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word("--yes"), "'--yes'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn age_shows_two_units() {
        assert_eq!(age(0), "0s");
        assert_eq!(age(-5), "0s");
        assert_eq!(age(45), "45s");
        assert_eq!(age(3 * 3600 + 60 + 7), "3h 1m");
        assert_eq!(age(3 * 3600 + 7), "3h");
        assert_eq!(age(2 * 86_400 + 4 * 3600 + 59), "2d 4h");
        assert_eq!(threshold(26 * 3600), "26h");
        assert_eq!(threshold(90 * 60), "1h 30m");
    }
}
