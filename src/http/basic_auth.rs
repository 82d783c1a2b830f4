//! HTTP basic authentication against bcrypt hashes, as in the exporter-toolkit
//! `basic_auth_users` block.
//!
//! bcrypt is deliberately slow, and Prometheus sends the same credentials every scrape, so
//! the last password that verified for each user is remembered (one entry per configured
//! user, compared in constant time). Verifications run one at a time, so a flood of wrong
//! passwords costs one core at most. Unknown users are checked against a real hash too,
//! so response time does not reveal which user names exist.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper::HeaderMap;
use hyper::header::AUTHORIZATION;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use super::access::{AccessPolicy, Denied};
use super::web_config_error::WebConfigError;

const CHALLENGE: &str = "Basic realm=\"sailpoint-task-exporter\"";

/// The users allowed in, by name, with their bcrypt password hashes.
pub struct BasicAuthUsers {
    hashes: HashMap<String, String>,
    decoy_hash: String,
    verified: Mutex<HashMap<String, SecretString>>,
    bcrypt_turn: Mutex<()>,
}

impl BasicAuthUsers {
    /// Checks that every hash is a bcrypt hash; at least one user is required.
    pub fn new(hashes: HashMap<String, String>) -> Result<Self, WebConfigError> {
        for (user, hash) in &hashes {
            if bcrypt::HashParts::from_str(hash).is_err() {
                return Err(WebConfigError::BadHash { user: user.clone() });
            }
        }
        let decoy_hash = hashes
            .values()
            .next()
            .cloned()
            .ok_or(WebConfigError::NoUsers)?;
        Ok(BasicAuthUsers {
            hashes,
            decoy_hash,
            verified: Mutex::new(HashMap::new()),
            bcrypt_turn: Mutex::new(()),
        })
    }

    fn verify(&self, user: &str, password: &SecretString) -> bool {
        let hash = self.hashes.get(user);
        if hash.is_some() && self.remembered(user, password) {
            return true;
        }
        let matches = {
            let _turn = self
                .bcrypt_turn
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let checked = hash.unwrap_or(&self.decoy_hash);
            bcrypt::verify(password.expose_secret(), checked).unwrap_or(false)
        };
        let accepted = matches && hash.is_some();
        if accepted {
            self.verified
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(user.to_string(), password.clone());
        }
        accepted
    }

    fn remembered(&self, user: &str, password: &SecretString) -> bool {
        let verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        verified.get(user).is_some_and(|known| {
            // `subtle` compares without an early exit (lengths are not secret here).
            bool::from(
                known
                    .expose_secret()
                    .as_bytes()
                    .ct_eq(password.expose_secret().as_bytes()),
            )
        })
    }
}

impl AccessPolicy for BasicAuthUsers {
    fn check(&self, _path: &str, headers: &HeaderMap) -> Result<(), Denied> {
        let denied = || Denied {
            challenge: CHALLENGE.to_string(),
        };
        let (user, password) = credentials(headers).ok_or_else(denied)?;
        if self.verify(&user, &password) {
            Ok(())
        } else {
            tracing::debug!(user, "basic authentication failed");
            Err(denied())
        }
    }
}

impl std::fmt::Debug for BasicAuthUsers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut users: Vec<&String> = self.hashes.keys().collect();
        users.sort();
        f.debug_struct("BasicAuthUsers")
            .field("users", &users)
            .finish_non_exhaustive()
    }
}

/// `Authorization: Basic base64(user:password)`; `None` when absent or malformed.
fn credentials(headers: &HeaderMap) -> Option<(String, SecretString)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), SecretString::from(password.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn users() -> BasicAuthUsers {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        BasicAuthUsers::new(HashMap::from([("prometheus".to_string(), hash)])).unwrap()
    }

    fn basic(user_password: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = format!("Basic {}", STANDARD.encode(user_password));
        headers.insert(AUTHORIZATION, HeaderValue::from_str(&value).unwrap());
        headers
    }

    #[test]
    fn right_password_is_accepted_twice() {
        let users = users();
        assert_eq!(users.check("/metrics", &basic("prometheus:s3cret")), Ok(()));
        assert_eq!(users.check("/metrics", &basic("prometheus:s3cret")), Ok(()));
    }

    #[test]
    fn wrong_password_unknown_user_and_garbage_are_denied() {
        let users = users();
        let denied = Err(Denied {
            challenge: CHALLENGE.to_string(),
        });
        assert_eq!(users.check("/", &basic("prometheus:wrong")), denied);
        assert_eq!(users.check("/", &basic("nobody:s3cret")), denied);
        assert_eq!(users.check("/", &basic("no-colon")), denied);
        assert_eq!(users.check("/", &HeaderMap::new()), denied);
        let mut bearer = HeaderMap::new();
        bearer.insert(AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert_eq!(users.check("/", &bearer), denied);
        let mut not_base64 = HeaderMap::new();
        not_base64.insert(AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        assert_eq!(users.check("/", &not_base64), denied);
    }

    #[test]
    fn remembered_password_does_not_admit_a_different_one() {
        let users = users();
        assert_eq!(users.check("/", &basic("prometheus:s3cret")), Ok(()));
        assert!(users.check("/", &basic("prometheus:s3cre")).is_err());
        assert!(users.check("/", &basic("prometheus:s3cret2")).is_err());
    }

    #[test]
    fn a_password_containing_colons_is_kept_whole() {
        let hash = bcrypt::hash("a:b:c", 4).unwrap();
        let users = BasicAuthUsers::new(HashMap::from([("u".to_string(), hash)])).unwrap();
        assert_eq!(users.check("/", &basic("u:a:b:c")), Ok(()));
    }

    #[test]
    fn non_bcrypt_hash_and_empty_user_list_are_rejected() {
        let plain = HashMap::from([("u".to_string(), "plaintext".to_string())]);
        assert!(matches!(
            BasicAuthUsers::new(plain),
            Err(WebConfigError::BadHash { user }) if user == "u"
        ));
        assert!(matches!(
            BasicAuthUsers::new(HashMap::new()),
            Err(WebConfigError::NoUsers)
        ));
    }

    #[test]
    fn debug_output_lists_users_but_no_hashes() {
        let text = format!("{:?}", users());
        assert!(text.contains("prometheus"));
        assert!(!text.contains("$2"));
    }
}
