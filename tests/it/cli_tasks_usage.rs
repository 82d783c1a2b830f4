//! Usage and configuration errors of `tasks`: exit code 2, a clear message, and no
//! request sent (nothing listens at the URLs used here).

use std::process::{Command, Output};

use crate::BIN;

/// Runs the binary from an empty directory with a clean environment for its variables.
fn run(args: &[&str], secret: Option<&str>) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(dir.path())
        .env_remove("SAILPOINT_CLIENT_SECRET")
        .env_remove("SAILPOINT_EXPORTER_CONFIG");
    if let Some(s) = secret {
        cmd.env("SAILPOINT_CLIENT_SECRET", s);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().unwrap();
    (
        status.code().unwrap(),
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    )
}

#[test]
fn a_missing_configuration_file_is_a_usage_error() {
    let (code, stdout, stderr) = run(&["tasks", "pending"], None);
    assert_eq!(code, 2);
    assert_eq!(stdout, "");
    assert!(
        stderr.starts_with("error: cannot read configuration file sailpoint-task-exporter.yaml"),
        "{stderr}"
    );
    assert!(stderr.contains("hint: name the file with --config.file, or give --base-url"));
}

#[test]
fn base_url_needs_the_secret_in_the_environment() {
    let args = [
        "tasks",
        "pending",
        "--base-url",
        "http://127.0.0.1:9",
        "--client-id",
        "cid",
    ];
    let (code, _, stderr) = run(&args, None);
    assert_eq!(code, 2);
    assert_eq!(
        stderr,
        "error: --base-url needs the client secret in the environment variable SAILPOINT_CLIENT_SECRET\n"
    );
    let (code, _, stderr) = run(&args[..4], Some("s"));
    assert_eq!(code, 2);
    assert_eq!(stderr, "error: --base-url needs --client-id\n");
}

#[test]
fn bad_arguments_are_usage_errors() {
    for args in [
        vec!["tasks"],
        vec!["tasks", "frobnicate"],
        vec!["tasks", "get"],
        vec!["tasks", "complete", "abc"],
        vec!["tasks", "complete", "abc", "--status", "done"],
        vec!["tasks", "list", "--limit", "500"],
        vec!["tasks", "list", "--all", "--offset", "10"],
        vec!["tasks", "pending", "--client-secret", "x"],
        vec![
            "tasks",
            "pending",
            "--tenant",
            "a",
            "--base-url",
            "http://127.0.0.1:9",
        ],
        vec!["tasks", "pending", "--output", "yaml"],
    ] {
        let (code, stdout, stderr) = run(&args, Some("s"));
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert_eq!(stdout, "", "{args:?}");
        assert!(!stderr.is_empty(), "{args:?}");
    }
    let (code, _, stderr) = run(
        &[
            "tasks",
            "pending",
            "--base-url",
            "http://127.0.0.1:9",
            "--client-id",
            "c",
            "--api-version",
            "v2024/../x",
        ],
        Some("s"),
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("--api-version"), "{stderr}");
}

#[test]
fn help_explains_each_subcommand_with_an_example() {
    for (sub, needle) in [
        ("pending", "tasks pending --count"),
        ("list", "tasks list --all --filters"),
        ("get", "tasks get 2c9180835d2e5168015d32f890ca1581"),
        ("complete", "idn:task-management:write"),
    ] {
        let (code, stdout, _) = run(&["tasks", sub, "--help"], None);
        assert_eq!(code, 0, "{sub}");
        assert!(stdout.contains("Example"), "{sub}: {stdout}");
        assert!(stdout.contains(needle), "{sub}: {stdout}");
        assert!(stdout.contains("--base-url"), "{sub}: {stdout}");
    }
    let (code, stdout, _) = run(&["tasks", "--help"], None);
    assert_eq!(code, 0);
    assert!(stdout.contains("SAILPOINT_CLIENT_SECRET"));
}

/// The long flags a subcommand's `--help` lists, in order (lines such as
/// `      --tenant <NAME>` or `  -o, --output <OUTPUT>`).
fn flags_in_help(args: &[&str]) -> Vec<String> {
    let (code, stdout, stderr) = run(args, None);
    assert_eq!(code, 0, "{args:?}: {stderr}");
    let flag = regex::Regex::new(r"^\s+(?:-\w, )?--([\w.-]+)(?: <[A-Z_]+>)?$").unwrap();
    stdout
        .lines()
        .filter_map(|l| flag.captures(l).map(|c| c[1].to_string()))
        .collect()
}

#[test]
fn each_subcommand_lists_only_its_own_flags() {
    let serve = [
        "config.file",
        "log.level",
        "log.format",
        "web.listen-address",
        "web.telemetry-path",
        "web.config.file",
        "storage.path",
        "web.enable-lifecycle",
        "shard.count",
        "shard.index",
        "shard.index-from-hostname",
        "help",
    ];
    assert_eq!(flags_in_help(&["serve", "--help"]), serve);
    assert_eq!(flags_in_help(&["check", "--help"]), serve);
    let tasks = flags_in_help(&["tasks", "pending", "--help"]);
    assert_eq!(
        tasks,
        [
            "config.file",
            "count",
            "log.level",
            "log.format",
            "tenant",
            "base-url",
            "client-id",
            "token-url",
            "api-version",
            "output",
            "help"
        ]
    );
    let simulate = flags_in_help(&["simulate", "--help"]);
    assert!(simulate.contains(&"scenario".to_string()), "{simulate:?}");
    for (sub, flags) in [("simulate", &simulate), ("tasks", &tasks)] {
        for foreign in ["web.listen-address", "storage.path", "shard.count"] {
            assert!(
                !flags.iter().any(|f| f == foreign),
                "{sub} lists --{foreign}"
            );
        }
    }
    let demo = flags_in_help(&["demo", "--help"]);
    for own in ["scenario", "web.listen-address", "storage.path"] {
        assert!(
            demo.iter().any(|f| f == own),
            "demo lacks --{own}: {demo:?}"
        );
    }
    for foreign in ["config.file", "shard.count", "web.enable-lifecycle"] {
        assert!(!demo.iter().any(|f| f == foreign), "demo lists --{foreign}");
    }
}

#[test]
fn a_flag_before_its_subcommand_is_a_usage_error_naming_it() {
    let (code, stdout, stderr) = run(&["--config.file", "x.yaml", "check"], None);
    assert_eq!(code, 2);
    assert_eq!(stdout, "");
    assert!(
        stderr.contains("the subcommand 'check' cannot be used with")
            && stderr.contains("--config.file"),
        "{stderr}"
    );
}
