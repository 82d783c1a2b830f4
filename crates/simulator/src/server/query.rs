//! Query parameters of an API request and their validation (paging, sorting).

use std::collections::HashMap;

/// Largest page SailPoint serves.
const MAX_LIMIT: i64 = 250;

/// Query parameters (last value wins).
pub(super) struct Query(pub(super) HashMap<String, String>);

impl Query {
    pub(super) fn parse(query: Option<&str>) -> Query {
        Query(
            url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .into_owned()
                .collect(),
        )
    }

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// offset, limit, count as SailPoint's standard collection parameters define them.
    pub(super) fn paging(&self) -> Result<(usize, usize, bool), String> {
        let offset = match self.get("offset") {
            None => 0,
            Some(v) => v
                .trim()
                .parse::<i64>()
                .ok()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| format!("offset must be a non-negative integer, got '{v}'"))?,
        };
        let limit = match self.get("limit") {
            None => MAX_LIMIT,
            Some(v) => v
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|n| (0..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    format!("limit must be an integer between 0 and {MAX_LIMIT}, got '{v}'")
                })?,
        };
        let count = match self.get("count").map(str::to_ascii_lowercase).as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => return Err("count must be true or false".to_string()),
        };
        Ok((offset, usize::try_from(limit).unwrap_or(0), count))
    }

    /// `sorters`: `created` (default) or `-created`; true = descending.
    pub(super) fn descending(&self) -> Result<bool, String> {
        let Some(sorters) = self.get("sorters") else {
            return Ok(false);
        };
        let mut descending = None;
        for part in sorters.split(',').map(str::trim) {
            descending = Some(match part {
                "created" => false,
                "-created" => true,
                other => {
                    let field = other.trim_start_matches('-');
                    return Err(format!(
                        "Sorting is not supported for field '{field}'; supported: created"
                    ));
                }
            });
        }
        descending.ok_or_else(|| "sorters is empty".to_string())
    }
}
