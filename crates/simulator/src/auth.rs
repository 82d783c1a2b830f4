//! Client-credentials tokens of the simulated tenant: issued by `POST /oauth/token`,
//! opaque random strings that expire against the simulated clock and can be revoked.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::RngCore;
use rand::rngs::OsRng;

/// Why a bearer token was refused; the text goes into the 401 `{error}` body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenRejection {
    Missing,
    Unknown,
    Expired,
}

impl TokenRejection {
    pub(crate) fn text(self) -> &'static str {
        match self {
            TokenRejection::Missing => "JWT validation failed: no bearer token in Authorization",
            TokenRejection::Unknown => "JWT validation failed: JWT is invalid",
            TokenRejection::Expired => "JWT validation failed: JWT is expired",
        }
    }
}

/// One issued token.
pub(crate) struct Grant {
    pub token: String,
    pub jti: String,
    pub expires_in: u64,
}

/// The tokens the tenant has issued.
#[derive(Default)]
pub(crate) struct TokenBook {
    /// token → (client id, expiry). Revoked tokens are kept as expired so the tenant can
    /// say "expired" (as SailPoint does for a token it no longer honours).
    live: HashMap<String, (String, DateTime<Utc>)>,
}

impl TokenBook {
    pub(crate) fn issue(&mut self, client_id: &str, ttl: Duration, now: DateTime<Utc>) -> Grant {
        self.live
            .retain(|_, (_, expiry)| *expiry > now - chrono::Duration::hours(24));
        let token = random_hex(32);
        // A `--token-ttl` of centuries must not overflow the date: it is capped at a year.
        let year = chrono::Duration::days(365);
        let lifetime = chrono::Duration::from_std(ttl).map_or(year, |d| d.min(year));
        let expiry = now + lifetime;
        self.live
            .insert(token.clone(), (client_id.to_string(), expiry));
        Grant {
            token,
            jti: random_hex(16),
            expires_in: u64::try_from(lifetime.num_seconds()).unwrap_or(0),
        }
    }

    /// The client id of a valid token.
    pub(crate) fn check(&self, token: &str, now: DateTime<Utc>) -> Result<&str, TokenRejection> {
        match self.live.get(token) {
            None => Err(TokenRejection::Unknown),
            Some((_, expiry)) if *expiry <= now => Err(TokenRejection::Expired),
            Some((client, _)) => Ok(client),
        }
    }

    /// Makes every issued token invalid at once.
    pub(crate) fn revoke_all(&mut self) {
        for (_, expiry) in self.live.values_mut() {
            *expiry = DateTime::<Utc>::MIN_UTC;
        }
    }
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_expire_and_revoke() {
        let now = Utc::now();
        let mut book = TokenBook::default();
        let g = book.issue("c", Duration::from_secs(60), now);
        assert_eq!(g.token.len(), 64);
        assert_eq!(book.check(&g.token, now), Ok("c"));
        assert_eq!(
            book.check(&g.token, now + chrono::Duration::seconds(60)),
            Err(TokenRejection::Expired)
        );
        assert_eq!(book.check("nope", now), Err(TokenRejection::Unknown));
        book.revoke_all();
        assert_eq!(book.check(&g.token, now), Err(TokenRejection::Expired));
    }

    #[test]
    fn a_ttl_of_centuries_is_capped_at_a_year() {
        let now = Utc::now();
        let mut book = TokenBook::default();
        let g = book.issue("c", Duration::from_secs(1_000_000 * 365 * 86_400), now);
        assert_eq!(g.expires_in, 365 * 86_400);
        let year = chrono::Duration::days(365);
        assert_eq!(
            book.check(&g.token, now + year - chrono::Duration::seconds(1)),
            Ok("c")
        );
        assert_eq!(
            book.check(&g.token, now + year),
            Err(TokenRejection::Expired)
        );
    }
}
