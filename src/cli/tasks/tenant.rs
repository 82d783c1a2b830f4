//! Which tenant a `tasks` command talks to.
//!
//! Either a tenant of the daemon's configuration file (same credentials, rate limit and
//! retries as the daemon), or — when an operator has no file at hand — a tenant given by
//! `--base-url` and `--client-id` with the secret taken from [`CLIENT_SECRET_ENV`].

use secrecy::SecretString;
use url::Url;

use super::args::{CLIENT_SECRET_ENV, TenantArgs};
use super::error::TasksError;
use crate::config::{Credentials, Overrides, Settings, TenantSettings};

/// Tenant name used in messages when the tenant comes from flags.
const FLAG_TENANT_NAME: &str = "command-line";

/// Resolves the tenant from the flags, or else from the configuration file.
pub fn select(
    args: &TenantArgs,
    config_file: &std::path::Path,
) -> Result<TenantSettings, TasksError> {
    let mut tenant = match &args.base_url {
        Some(base_url) => {
            let secret = std::env::var(CLIENT_SECRET_ENV).ok();
            from_flags(base_url, args, secret)?
        }
        None => {
            let settings = Settings::load(config_file, &Overrides::default())?;
            from_settings(settings, args.tenant.as_deref())?
        }
    };
    if let Some(version) = &args.api_version {
        tenant.api_version = checked_api_version(version)?;
    }
    Ok(tenant)
}

/// A tenant given entirely by flags; `secret` is the value of [`CLIENT_SECRET_ENV`].
pub fn from_flags(
    base_url: &Url,
    args: &TenantArgs,
    secret: Option<String>,
) -> Result<TenantSettings, TasksError> {
    for (flag, url) in [
        ("--base-url", Some(base_url)),
        ("--token-url", args.token_url.as_ref()),
    ] {
        if let Some(url) = url
            && !matches!(url.scheme(), "http" | "https")
        {
            return Err(TasksError::Usage(format!("{flag} must be an http(s) URL")));
        }
        if url.is_some_and(|u| !u.username().is_empty() || u.password().is_some()) {
            return Err(TasksError::Usage(format!(
                "{flag} must not carry a user name or password; use --client-id and {CLIENT_SECRET_ENV}"
            )));
        }
    }
    let client_id = match args.client_id.as_deref().map(str::trim) {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => return Err(TasksError::Usage("--base-url needs --client-id".into())),
    };
    let secret = match secret.as_deref().map(str::trim) {
        Some(s) if !s.is_empty() => SecretString::from(s.to_string()),
        _ => {
            return Err(TasksError::Usage(format!(
                "--base-url needs the client secret in the environment variable {CLIENT_SECRET_ENV}"
            )));
        }
    };
    let credentials = Credentials::ClientCredentials {
        client_id,
        client_secret: secret,
    };
    let mut tenant = TenantSettings::with_defaults(FLAG_TENANT_NAME, base_url.clone(), credentials);
    tenant.token_url = args.token_url.clone();
    Ok(tenant)
}

/// The tenant called `name`, or the only one when no name is given.
pub fn from_settings(settings: Settings, name: Option<&str>) -> Result<TenantSettings, TasksError> {
    let names = || {
        settings
            .tenants
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match name {
        Some(name) => match settings.tenants.iter().find(|t| t.name == name) {
            Some(t) => Ok(t.clone()),
            None => Err(TasksError::Usage(format!(
                "no tenant named {name:?} in the configuration; configured tenants: {}",
                names()
            ))),
        },
        None => match settings.tenants.as_slice() {
            [only] => Ok(only.clone()),
            _ => Err(TasksError::Usage(format!(
                "the configuration has several tenants; choose one with --tenant NAME: {}",
                names()
            ))),
        },
    }
}

/// Accepts a version path segment (`v2024`, `beta`), nothing that could change the path.
fn checked_api_version(version: &str) -> Result<String, TasksError> {
    if !version.is_empty() && version.chars().all(|c| c.is_ascii_alphanumeric()) {
        Ok(version.to_string())
    } else {
        Err(TasksError::Usage(format!(
            "--api-version {version:?} is not a version segment such as v2024, v2025 or beta"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Overrides;
    use config::FileFormat::Yaml;
    use secrecy::ExposeSecret;

    fn settings(names: &[&str]) -> Settings {
        let mut text = String::from("tenants:\n");
        for (i, n) in names.iter().enumerate() {
            text.push_str(&format!(
                "  - name: {n}\n    base_url: http://127.0.0.1:{}\n    client_id: id-{n}\n    client_secret: s\n",
                1000 + i
            ));
        }
        Settings::from_text(&text, Yaml, &Overrides::default()).unwrap()
    }

    fn usage(err: TasksError) -> String {
        match err {
            TasksError::Usage(m) => m,
            other => panic!("not a usage error: {other:?}"),
        }
    }

    #[test]
    fn the_only_tenant_is_the_default() {
        let t = from_settings(settings(&["acme"]), None).unwrap();
        assert_eq!(t.name, "acme");
    }

    #[test]
    fn several_tenants_need_a_name_and_the_message_lists_them() {
        let err = from_settings(settings(&["acme", "globex"]), None).unwrap_err();
        assert_eq!(
            usage(err),
            "the configuration has several tenants; choose one with --tenant NAME: acme, globex"
        );
        let t = from_settings(settings(&["acme", "globex"]), Some("globex")).unwrap();
        assert_eq!(t.api_root(), "http://127.0.0.1:1001/v2024");
        let err = from_settings(settings(&["acme", "globex"]), Some("initech")).unwrap_err();
        assert_eq!(
            usage(err),
            "no tenant named \"initech\" in the configuration; configured tenants: acme, globex"
        );
    }

    fn flag_args(client_id: Option<&str>) -> TenantArgs {
        TenantArgs {
            client_id: client_id.map(str::to_string),
            ..TenantArgs::default()
        }
    }

    #[test]
    fn flags_take_the_secret_from_the_environment_value() {
        let url = Url::parse("http://127.0.0.1:8080").unwrap();
        let t = from_flags(&url, &flag_args(Some("cid")), Some(" s3cret\n".into())).unwrap();
        assert_eq!(t.api_root(), "http://127.0.0.1:8080/v2024");
        assert_eq!(t.token_endpoint(), "http://127.0.0.1:8080/oauth/token");
        match t.credentials() {
            Credentials::ClientCredentials {
                client_id,
                client_secret,
            } => {
                assert_eq!(client_id, "cid");
                assert_eq!(client_secret.expose_secret(), "s3cret");
            }
            other => panic!("unexpected credentials {other:?}"),
        }
        assert!(!format!("{t:?}").contains("s3cret"));
    }

    #[test]
    fn flags_without_id_or_secret_are_usage_errors() {
        let url = Url::parse("http://127.0.0.1:8080").unwrap();
        let err = from_flags(&url, &flag_args(None), Some("s".into())).unwrap_err();
        assert_eq!(usage(err), "--base-url needs --client-id");
        let err = from_flags(&url, &flag_args(Some("cid")), Some("  ".into())).unwrap_err();
        assert_eq!(
            usage(err),
            "--base-url needs the client secret in the environment variable SAILPOINT_CLIENT_SECRET"
        );
        let ftp = Url::parse("ftp://127.0.0.1").unwrap();
        let err = from_flags(&ftp, &flag_args(Some("cid")), Some("s".into())).unwrap_err();
        assert_eq!(usage(err), "--base-url must be an http(s) URL");
        let with_password = Url::parse("http://svc:pa55@127.0.0.1").unwrap();
        let err =
            from_flags(&with_password, &flag_args(Some("cid")), Some("s".into())).unwrap_err();
        assert_eq!(
            usage(err),
            "--base-url must not carry a user name or password; use --client-id and SAILPOINT_CLIENT_SECRET"
        );
    }

    #[test]
    fn api_version_must_be_one_path_segment() {
        assert_eq!(checked_api_version("beta").unwrap(), "beta");
        assert!(checked_api_version("v2024/../x").is_err());
        assert!(checked_api_version("").is_err());
    }
}
