//! The progress line of `tasks list --all` on stderr.
//!
//! Reading 90 days of history can take many pages; a person at a terminal wants to see
//! that it moves. The line is drawn only when stderr is a terminal and the total is known
//! (`X-Total-Count`), so scripts and logs never see carriage returns.

use std::io::Write;

/// A redrawn `reading tasks: 500/1234 (40%)` line.
pub struct ProgressLine {
    enabled: bool,
    drawn: bool,
}

impl ProgressLine {
    /// A progress line that draws only when `enabled` (stderr is a terminal).
    pub fn new(enabled: bool) -> ProgressLine {
        ProgressLine {
            enabled,
            drawn: false,
        }
    }

    /// Redraws the line after a page; does nothing while the total is unknown.
    pub fn update(&mut self, read: u64, total: Option<u64>) {
        if let (true, Some(total)) = (self.enabled, total) {
            let mut err = std::io::stderr().lock();
            // A lost progress line is harmless; errors are ignored on purpose.
            let _ = write!(err, "\r\x1b[K{}", text(read, total));
            let _ = err.flush();
            self.drawn = true;
        }
    }

    /// Erases the line so the table starts on a clean terminal.
    pub fn finish(&mut self) {
        if self.drawn {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[K");
            self.drawn = false;
        }
    }
}

impl Drop for ProgressLine {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The text of the line.
pub fn text(read: u64, total: u64) -> String {
    let percent = (read.saturating_mul(100))
        .checked_div(total)
        .unwrap_or(100)
        .min(100);
    format!("reading tasks: {read}/{total} ({percent}%)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_shows_count_and_percentage() {
        assert_eq!(text(500, 1234), "reading tasks: 500/1234 (40%)");
        assert_eq!(text(0, 0), "reading tasks: 0/0 (100%)");
        assert_eq!(text(300, 250), "reading tasks: 300/250 (100%)");
    }
}
