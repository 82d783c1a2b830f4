//! Usage and configuration errors of `tasks`: exit code 2, a clear message, and no
//! request sent (nothing listens at the URLs used here).

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_sailpoint-task-exporter");

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
