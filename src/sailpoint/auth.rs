//! Access tokens: OAuth2 client credentials, refreshed ahead of expiry, or a static token.
//!
//! All requests of a tenant share one [`TokenSource`]. A refresh holds the source's lock,
//! so callers that need a token while one is being fetched wait for that fetch instead of
//! starting their own. A 401 invalidates only the token generation the caller used, so a
//! burst of 401s from concurrent requests still causes a single refresh.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::sailpoint::error::ApiError;
use crate::sailpoint::model::TokenResponse;

/// Lifetime assumed when the token endpoint does not say (`expires_in` missing).
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(300);

/// Longest lifetime believed: SailPoint issues tokens for about 12 minutes, so a larger
/// `expires_in` is a misbehaving endpoint, and refreshing daily costs one request.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// A bearer token and the generation it belongs to.
#[derive(Clone)]
pub struct AccessToken {
    secret: SecretString,
    generation: u64,
}

impl AccessToken {
    /// The token text, for the `Authorization` header only.
    pub fn expose(&self) -> &str {
        self.secret.expose_secret()
    }

    /// Which refresh produced this token.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AccessToken(generation {}, [redacted])", self.generation)
    }
}

/// Boxed future returned by a [`TokenFetcher`].
pub type FetchFuture<'a> =
    Pin<Box<dyn Future<Output = Result<TokenResponse, ApiError>> + Send + 'a>>;

/// Something that obtains a fresh token (the HTTP token endpoint, or a test fake).
pub trait TokenFetcher: Send + Sync {
    /// Fetches a new token.
    fn fetch(&self) -> FetchFuture<'_>;
}

/// Hands out valid access tokens.
pub struct TokenSource {
    kind: Kind,
}

enum Kind {
    Static(SecretString),
    Refreshing {
        fetcher: Arc<dyn TokenFetcher>,
        cached: Mutex<Cached>,
        on_refresh: Box<dyn Fn() + Send + Sync>,
    },
}

#[derive(Default)]
struct Cached {
    token: Option<(SecretString, Instant)>,
    generation: u64,
}

impl TokenSource {
    /// A fixed token: never refreshed; a 401 is final.
    pub fn fixed(token: SecretString) -> TokenSource {
        TokenSource {
            kind: Kind::Static(token),
        }
    }

    /// Tokens from `fetcher`, refreshed ahead of expiry; `on_refresh` is called after
    /// every successful fetch (for the refresh counter).
    pub fn refreshing(
        fetcher: Arc<dyn TokenFetcher>,
        on_refresh: Box<dyn Fn() + Send + Sync>,
    ) -> TokenSource {
        TokenSource {
            kind: Kind::Refreshing {
                fetcher,
                cached: Mutex::new(Cached::default()),
                on_refresh,
            },
        }
    }

    /// Whether a 401 can be cured by fetching another token.
    pub fn can_refresh(&self) -> bool {
        matches!(self.kind, Kind::Refreshing { .. })
    }

    /// A token that is valid for a while yet, fetching one when needed.
    pub async fn token(&self) -> Result<AccessToken, ApiError> {
        match &self.kind {
            Kind::Static(secret) => Ok(AccessToken {
                secret: secret.clone(),
                generation: 0,
            }),
            Kind::Refreshing {
                fetcher,
                cached,
                on_refresh,
            } => {
                let mut cached = cached.lock().await;
                if let Some((secret, refresh_at)) = &cached.token
                    && Instant::now() < *refresh_at
                {
                    return Ok(AccessToken {
                        secret: secret.clone(),
                        generation: cached.generation,
                    });
                }
                let response = fetcher.fetch().await?;
                if response.access_token.trim().is_empty() {
                    return Err(ApiError::Auth {
                        status: None,
                        message: "token endpoint returned an empty access_token".into(),
                    });
                }
                let lifetime = response
                    .expires_in
                    .map(Duration::from_secs)
                    .unwrap_or(DEFAULT_TOKEN_LIFETIME)
                    .min(MAX_TOKEN_LIFETIME);
                let secret = SecretString::from(response.access_token);
                cached.generation += 1;
                cached.token = Some((secret.clone(), Instant::now() + refresh_margin(lifetime)));
                on_refresh();
                Ok(AccessToken {
                    secret,
                    generation: cached.generation,
                })
            }
        }
    }

    /// Forgets the token of `generation` after the API rejected it; a newer token fetched
    /// meanwhile by another caller is kept.
    pub async fn invalidate(&self, generation: u64) {
        if let Kind::Refreshing { cached, .. } = &self.kind {
            let mut cached = cached.lock().await;
            if cached.generation == generation {
                cached.token = None;
            }
        }
    }
}

/// When to refresh a token of the given lifetime: a minute early, or a fifth of the
/// lifetime early for short-lived tokens.
fn refresh_margin(lifetime: Duration) -> Duration {
    let early = (lifetime / 5).min(Duration::from_secs(60));
    lifetime.saturating_sub(early)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    struct Fake {
        calls: AtomicU32,
        expires_in: Option<u64>,
        delay: Duration,
    }

    impl TokenFetcher for Fake {
        fn fetch(&self) -> FetchFuture<'_> {
            Box::pin(async move {
                tokio::time::sleep(self.delay).await;
                let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
                Ok(TokenResponse {
                    access_token: format!("token-{n}"),
                    token_type: Some("bearer".into()),
                    expires_in: self.expires_in,
                })
            })
        }
    }

    fn source(
        expires_in: Option<u64>,
        delay: Duration,
    ) -> (Arc<Fake>, Arc<TokenSource>, Arc<AtomicU32>) {
        let fake = Arc::new(Fake {
            calls: AtomicU32::new(0),
            expires_in,
            delay,
        });
        let refreshes = Arc::new(AtomicU32::new(0));
        let counter = refreshes.clone();
        let src = TokenSource::refreshing(
            fake.clone(),
            Box::new(move || {
                counter.fetch_add(1, Ordering::SeqCst);
            }),
        );
        (fake, Arc::new(src), refreshes)
    }

    #[tokio::test(start_paused = true)]
    async fn refreshes_ahead_of_expiry() {
        let (fake, src, refreshes) = source(Some(749), Duration::ZERO);
        assert_eq!(src.token().await.unwrap().expose(), "token-1");
        // 749 s lifetime → refreshed 60 s early, at 689 s.
        tokio::time::sleep(Duration::from_secs(688)).await;
        assert_eq!(src.token().await.unwrap().expose(), "token-1");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(src.token().await.unwrap().expose(), "token-2");
        assert_eq!(fake.calls.load(Ordering::SeqCst), 2);
        assert_eq!(refreshes.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn short_tokens_and_missing_expiry() {
        assert_eq!(
            refresh_margin(Duration::from_secs(10)),
            Duration::from_secs(8)
        );
        let (_, src, _) = source(None, Duration::ZERO);
        src.token().await.unwrap();
        tokio::time::sleep(DEFAULT_TOKEN_LIFETIME - Duration::from_secs(61)).await;
        assert_eq!(src.token().await.unwrap().expose(), "token-1");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(src.token().await.unwrap().expose(), "token-2");
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_refresh() {
        let (fake, src, _) = source(Some(749), Duration::from_millis(500));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let src = src.clone();
                tokio::spawn(async move { src.token().await.map(|t| t.expose().to_string()) })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), "token-1");
        }
        assert_eq!(fake.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_absurd_expires_in_is_capped_not_a_panic() {
        let (fake, src, _) = source(Some(u64::MAX), Duration::ZERO);
        assert_eq!(src.token().await.unwrap().expose(), "token-1");
        // Capped to MAX_TOKEN_LIFETIME: refreshed a minute before it ends.
        tokio::time::sleep(MAX_TOKEN_LIFETIME - Duration::from_secs(61)).await;
        assert_eq!(src.token().await.unwrap().expose(), "token-1");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(src.token().await.unwrap().expose(), "token-2");
        assert_eq!(fake.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn invalidate_only_the_rejected_generation() {
        let (fake, src, _) = source(Some(749), Duration::ZERO);
        let first = src.token().await.unwrap();
        src.invalidate(first.generation()).await;
        let second = src.token().await.unwrap();
        assert_eq!(second.expose(), "token-2");
        // A late 401 for the first token must not throw away the second.
        src.invalidate(first.generation()).await;
        assert_eq!(src.token().await.unwrap().expose(), "token-2");
        assert_eq!(fake.calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn debug_is_redacted() {
        let t = AccessToken {
            secret: SecretString::from("abc.def".to_string()),
            generation: 3,
        };
        assert_eq!(format!("{t:?}"), "AccessToken(generation 3, [redacted])");
    }
}
