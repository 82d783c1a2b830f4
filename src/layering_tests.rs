//! The layering check: only the command line and the tests use the simulator crate.
//!
//! The simulated tenant is a crate of its own (`crates/simulator`), so it cannot reach
//! into the exporter; this test keeps the other direction: the collector, metrics,
//! storage, status and HTTP modules never name it, so nothing of the fake tenant can
//! creep into what the daemon runs. It reads every `.rs` file under `src/` and fails
//! naming each file and line outside `src/cli/` and `src/main.rs` that mentions the
//! crate in code that is not test code (test code: files named `tests.rs` or
//! `*_tests.rs`, and every line after a `#[cfg(test)]`). Comments do not count.

use std::path::{Path, PathBuf};

/// The crate name that only the command line and the tests may use.
const SIMULATOR: &str = "sailpoint_simulator";

#[test]
fn only_the_command_line_and_tests_use_the_simulator() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 50, "src/ read: {} files", files.len());
    let offending: Vec<String> = files
        .iter()
        .filter(|file| may_not_use_simulator(file.strip_prefix(&src).unwrap()))
        .flat_map(|file| mentions(file, &src))
        .collect();
    assert!(
        offending.is_empty(),
        "only src/cli/, src/main.rs and tests may use {SIMULATOR}:\n{}",
        offending.join("\n")
    );
}

/// Every `.rs` file below `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Whether `relative` (a path below `src/`) is production code outside the command line.
fn may_not_use_simulator(relative: &Path) -> bool {
    let name = relative.file_name().unwrap().to_string_lossy();
    let test_file = name == "tests.rs" || name.ends_with("_tests.rs");
    !(test_file || relative.starts_with("cli") || relative == Path::new("main.rs"))
}

/// `file:line: text` for each code line of `file` naming the simulator before the file's
/// first `#[cfg(test)]`.
fn mentions(file: &Path, src: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let shown = Path::new("src").join(file.strip_prefix(src).unwrap());
    text.lines()
        .enumerate()
        .take_while(|(_, line)| line.trim() != "#[cfg(test)]")
        .filter(|(_, line)| !line.trim_start().starts_with("//") && line.contains(SIMULATOR))
        .map(|(i, line)| format!("{}:{}: {}", shown.display(), i + 1, line.trim()))
        .collect()
}

#[test]
fn test_code_and_the_command_line_may_use_the_simulator() {
    for allowed in [
        "cli/mod.rs",
        "main.rs",
        "collector/tests.rs",
        "metrics/format_tests.rs",
    ] {
        assert!(!may_not_use_simulator(Path::new(allowed)), "{allowed}");
    }
    for checked in [
        "collector/mod.rs",
        "daemon.rs",
        "http/routes.rs",
        "sailpoint/client.rs",
    ] {
        assert!(may_not_use_simulator(Path::new(checked)), "{checked}");
    }
}
