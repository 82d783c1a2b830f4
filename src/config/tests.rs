//! Unit tests of the configuration: keys, defaults, and the exact error texts.

use super::*;
use config::FileFormat::{Toml, Yaml};
use secrecy::ExposeSecret;

const MINIMAL: &str = "tenants:\n  - name: acme\n    base_url: https://acme.api.identitynow.com\n    client_id: id\n    client_secret: s3cret\n";

/// `MINIMAL` with `from` replaced by `to`, loaded without flags.
fn edited(from: &str, to: &str) -> Result<Settings, ConfigError> {
    Settings::from_text(&MINIMAL.replace(from, to), Yaml, &Overrides::default())
}

/// `MINIMAL` with `extra` keys added to its tenant, loaded without flags.
fn with_tenant_keys(extra: &str) -> Result<Settings, ConfigError> {
    let secret = "client_secret: s3cret";
    edited(secret, &format!("{secret}\n    {extra}"))
}

/// The text of the error a configuration must be refused with.
fn refusal(loaded: Result<Settings, ConfigError>) -> String {
    loaded.unwrap_err().to_string()
}

#[test]
fn minimal_yaml_gets_defaults() {
    let s = Settings::from_text(MINIMAL, Yaml, &Overrides::default()).unwrap();
    let t = &s.tenants[0];
    assert_eq!(s.web.listen_address, DEFAULT_LISTEN_ADDRESS);
    assert_eq!(t.api_root(), "https://acme.api.identitynow.com/v2024");
    assert_eq!(
        t.token_endpoint(),
        "https://acme.api.identitynow.com/oauth/token"
    );
    assert_eq!(t.pending_interval, Duration::from_secs(30));
    assert_eq!(t.effective_overlap(), Duration::from_secs(120));
    assert_eq!(t.rate_limit.requests, 90);
    assert_eq!(s.status, StatusSettings::default());
    assert_eq!(s.status.stuck_after, Duration::from_secs(10800));
}

#[test]
fn status_settings_are_read_and_checked() {
    let text = format!("{MINIMAL}status:\n  stuck_after: 90m\n  failed_tasks: 7\n");
    let s = Settings::from_text(&text, Yaml, &Overrides::default()).unwrap();
    assert_eq!(s.status.stuck_after, Duration::from_secs(5400));
    assert_eq!(s.status.failed_tasks, 7);
    assert_eq!(s.status.no_success_after, Duration::from_secs(26 * 3600));
    for (bad, key) in [
        ("failed_tasks: 0", "status.failed_tasks"),
        ("failed_tasks: 1001", "status.failed_tasks"),
        ("stuck_after: 0s", "status.stuck_after"),
    ] {
        let text = format!("{MINIMAL}status:\n  {bad}\n");
        let err = Settings::from_text(&text, Yaml, &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains(key), "{bad}: {err}");
    }
}

#[test]
fn toml_works_too() {
    let text = "[[tenants]]\nname = \"acme\"\nbase_url = \"http://127.0.0.1:1\"\nclient_id = \"id\"\nclient_secret = \"x\"\npending_interval = \"5s\"\n";
    let s = Settings::from_text(text, Toml, &Overrides::default()).unwrap();
    assert_eq!(s.tenants[0].pending_interval, Duration::from_secs(5));
}

#[test]
fn errors_name_the_key() {
    assert_eq!(
        refusal(with_tenant_keys("page_size: 500")),
        "configuration key `tenants[0].page_size`: must be between 1 and 250"
    );
    let err = refusal(with_tenant_keys("pending_interval: soon"));
    assert!(err.contains("pending_interval"), "{err}");
    let err = refusal(edited("client_id: id", "clientid: id"));
    assert!(err.contains("clientid"), "{err}");
}

#[test]
fn lookback_shorter_than_the_steady_read_is_refused_naming_the_keys() {
    assert_eq!(
        refusal(with_tenant_keys("lookback: 3m\n    overlap: 2m")),
        "configuration key `tenants[0].lookback`: must be at least overlap + pending_interval + completed_interval (3m 30s): the completed poll reads that far back in steady state, and lookback caps how far back it may read"
    );
    assert!(with_tenant_keys("lookback: 210s\n    overlap: 2m").is_ok());
}

#[test]
fn absurd_durations_are_refused_not_a_panic() {
    for (key, value) in [
        ("pending_interval", "500000000000y"),
        ("completed_interval", "400y"),
        ("lookback", "1000000000y"),
        ("overlap", "1000000000y"),
        ("poll_timeout", "400y"),
        ("request_timeout", "400y"),
    ] {
        assert_eq!(
            refusal(with_tenant_keys(&format!("{key}: {value}"))),
            format!("configuration key `tenants[0].{key}`: must be at most 366 days"),
            "{key}"
        );
    }
    assert_eq!(
        refusal(with_tenant_keys("rate_limit: { requests: 1, per: 400y }")),
        "configuration key `tenants[0].rate_limit.per`: must be at most 366 days"
    );
}

#[test]
fn urls_with_credentials_are_refused_without_echoing_them() {
    for (key, from, to) in [
        (
            "base_url",
            "base_url: https://acme",
            "base_url: https://svc:pa55@acme",
        ),
        (
            "token_url",
            "client_id: id",
            "client_id: id\n    token_url: https://svc:pa55@acme/oauth/token",
        ),
    ] {
        assert_eq!(
            refusal(edited(from, to)),
            format!(
                "configuration key `tenants[0].{key}`: must not carry a user name or password (they would show in logs); use client_id and client_secret"
            )
        );
    }
}

#[test]
fn debug_never_shows_secrets() {
    let s = Settings::from_text(MINIMAL, Yaml, &Overrides::default()).unwrap();
    let dbg = format!("{s:?}");
    assert!(!dbg.contains("s3cret"), "{dbg}");
    assert!(dbg.contains("[redacted]"));
}

#[test]
fn secret_from_file_and_missing_env() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret");
    std::fs::write(&file, "from-file\n").unwrap();
    let s = edited(
        "client_secret: s3cret",
        &format!("client_secret_file: {}", file.display()),
    )
    .unwrap();
    match s.tenants[0].credentials() {
        Credentials::ClientCredentials { client_secret, .. } => {
            assert_eq!(client_secret.expose_secret(), "from-file")
        }
        other => panic!("unexpected {other:?}"),
    }
    let err = refusal(edited(
        "client_secret: s3cret",
        "client_secret_env: SAILPOINT_TEST_SURELY_UNSET_VAR",
    ));
    assert!(err.contains("client_secret_env"), "{err}");
}

#[test]
fn flags_override_the_file() {
    let o = Overrides {
        listen_address: Some("127.0.0.1:1234".into()),
        telemetry_path: Some("/m".into()),
        storage_path: Some("/var/lib/sailpoint-task-exporter".into()),
        ..Overrides::default()
    };
    let s = Settings::from_text(MINIMAL, Yaml, &o).unwrap();
    assert_eq!(s.web.listen_address, "127.0.0.1:1234");
    assert_eq!(s.web.telemetry_path, "/m");
    assert_eq!(
        s.storage.path.as_deref(),
        Some(std::path::Path::new("/var/lib/sailpoint-task-exporter"))
    );
    let without = Settings::from_text(MINIMAL, Yaml, &Overrides::default()).unwrap();
    assert_eq!(without.storage.path, None, "off unless configured");
}

fn tenants(n: usize) -> String {
    let mut text = String::from("tenants:\n");
    for k in 1..=n {
        text.push_str(&format!(
            "  - {{ name: t{k}, base_url: http://127.0.0.1:1/t{k}, client_id: id, client_secret: s }}\n"
        ));
    }
    text
}

#[test]
fn two_shards_split_two_hundred_tenants_exactly_once() {
    let text = tenants(200);
    let mut seen = std::collections::HashMap::new();
    for index in 0..2 {
        let o = Overrides {
            shard_count: Some(2),
            shard_index: Some(index),
            ..Overrides::default()
        };
        let s = Settings::from_text(&text, Yaml, &o).unwrap().own_shard();
        assert!(!s.tenants.is_empty() && s.tenants.len() < 200, "{index}");
        for t in s.tenants {
            assert_eq!(seen.insert(t.name.clone(), index), None, "{} twice", t.name);
        }
    }
    assert_eq!(seen.len(), 200);
    let whole = Settings::from_text(&text, Yaml, &Overrides::default()).unwrap();
    assert_eq!(
        whole.own_shard().tenants.len(),
        200,
        "no sharding keeps all"
    );
}

#[test]
fn sharding_keys_and_their_errors() {
    let with = |extra: &str| {
        Settings::from_text(
            &format!("{extra}{}", tenants(3)),
            Yaml,
            &Overrides::default(),
        )
    };
    let s = with("sharding: { count: 3, index: 2 }\n").unwrap();
    assert_eq!((s.sharding.count, s.sharding.index()), (3, 2));
    for (extra, problem) in [
        (
            "sharding: { count: 0 }\n",
            "configuration key `sharding.count`: must be between 1 and 1024",
        ),
        (
            "sharding: { count: 2 }\n",
            "configuration key `sharding.index`: is required when sharding.count is above 1 (or set index_from_hostname)",
        ),
        (
            "sharding: { count: 2, index: 2 }\n",
            "configuration key `sharding.index`: 2 is not a shard of 2 (0 to 1)",
        ),
        (
            "sharding: { count: 2, index: 1, index_from_hostname: true }\n",
            "configuration key `sharding.index`: set index or index_from_hostname, not both",
        ),
    ] {
        assert_eq!(with(extra).unwrap_err().to_string(), problem, "{extra}");
    }
    let o = Overrides {
        shard_count: Some(4),
        shard_index: Some(3),
        ..Overrides::default()
    };
    let s = Settings::from_text(
        &format!(
            "sharding: {{ count: 2, index_from_hostname: true }}\n{}",
            tenants(3)
        ),
        Yaml,
        &o,
    )
    .unwrap();
    assert_eq!((s.sharding.count, s.sharding.index()), (4, 3), "flags win");
}

#[test]
fn parse_errors_write_key_paths_one_way_and_say_how_to_fix() {
    let cases = [
        (
            "base_url: https://acme.api.identitynow.com",
            "base_url: acme.api.identitynow.com",
            "configuration: relative URL without a base: \"acme.api.identitynow.com\" for key \
             `tenants[0].base_url`; a URL needs its scheme, e.g. `https://acme.api.identitynow.com`",
        ),
        (
            "client_id: id",
            "client_id: id\n    pending_interval: five",
            "configuration: invalid value: string \"five\", expected a duration for key \
             `tenants[0].pending_interval`; write a number with its unit, e.g. `30s`, `5m` or `1h 30m`",
        ),
        (
            "client_id: id",
            "client_id: id\n    page_size: many",
            "configuration: invalid type: string \"many\", expected an integer for key \
             `tenants[0].page_size`",
        ),
    ];
    for (from, to, expected) in cases {
        assert_eq!(refusal(edited(from, to)), expected);
    }
}
