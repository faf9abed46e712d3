//! The file-session store (reference §A11.2).
//!
//! Threats: one client using another's session (a session is bound to the SHA-256 of the token
//! that created it; other tokens get 403), and one client evicting everyone else's sessions.
//! The original evicted the globally soonest-expiring session at capacity (weakness W7); here a
//! token may hold at most [`PER_TOKEN`] sessions, the store at most [`CAPACITY`], and a create
//! beyond either limit is refused with 429 instead of evicting anything.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::catalog::Listing;
use crate::auth::now_ms;
use crate::error::ApiError;

/// Sessions kept in total.
pub const CAPACITY: usize = 256;
/// Sessions one token may hold.
pub const PER_TOKEN: usize = 32;
/// Default TTL, ms.
pub const DEFAULT_TTL_MS: u64 = 15 * 60 * 1000;
/// Shortest TTL, ms.
pub const MIN_TTL_MS: u64 = 30 * 1000;
/// Longest TTL, ms.
pub const MAX_TTL_MS: u64 = 24 * 60 * 60 * 1000;
/// How long a cached catalog listing may be reused for later pages, ms.
pub const LISTING_TTL_MS: u64 = 60 * 1000;

/// `ttlSeconds` → ms: a JSON number ×1000, floored and clamped; anything else the default.
pub fn ttl_ms(value: Option<f64>) -> u64 {
    match value {
        Some(secs) if secs.is_finite() => {
            let ms = (secs * 1000.0).floor();
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let ms = if ms <= 0.0 { 0 } else { ms as u64 };
            ms.clamp(MIN_TTL_MS, MAX_TTL_MS)
        }
        _ => DEFAULT_TTL_MS,
    }
}

/// A catalog listing kept for paging.
#[derive(Debug, Clone)]
pub struct CachedListing {
    /// The walk parameters it was made with.
    pub key: (Option<String>, bool),
    /// When it was made, ms.
    pub generated_at: u64,
    /// The workspace event cursor when it was made.
    pub cursor: u64,
    /// The listing.
    pub listing: Arc<Listing>,
}

/// One session.
#[derive(Debug, Clone)]
pub struct Session {
    /// Session id (UUID).
    pub id: String,
    /// Its workspace.
    pub workspace_id: String,
    /// SHA-256 hex of the token that created it.
    pub token_hash: String,
    /// Creation time, ms.
    pub created_at: u64,
    /// Expiry, ms.
    pub expires_at: u64,
    /// Whether writes are allowed.
    pub can_write: bool,
    /// The last catalog walk.
    pub listing: Option<CachedListing>,
}

impl Session {
    /// `{"id","workspaceId","createdAt","expiresAt","ttlMs","canWrite"}`.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "workspaceId": self.workspace_id,
            "createdAt": self.created_at,
            "expiresAt": self.expires_at,
            "ttlMs": self.expires_at.saturating_sub(now_ms()),
            "canWrite": self.can_write,
        })
    }
}

/// All sessions.
#[derive(Debug, Default)]
pub struct FileSessions {
    inner: Mutex<HashMap<String, Session>>,
}

fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "file_session_not_found",
        "File session not found",
    )
}

impl FileSessions {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Session>> {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let now = now_ms();
        map.retain(|_, s| s.expires_at > now);
        map
    }

    /// Creates a session, or 429 when the token or the store is full.
    pub fn create(
        &self,
        workspace_id: &str,
        token_hash: &str,
        ttl_ms: u64,
        can_write: bool,
    ) -> Result<Session, ApiError> {
        let mut map = self.lock();
        let mine = map.values().filter(|s| s.token_hash == token_hash).count();
        if mine >= PER_TOKEN || map.len() >= CAPACITY {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_file_sessions",
                format!(
                    "Too many open file sessions (at most {PER_TOKEN} per token, {CAPACITY} in total); close one or wait for one to expire"
                ),
            ));
        }
        let now = now_ms();
        let session = Session {
            id: uuid::Uuid::new_v4().to_string(),
            workspace_id: workspace_id.to_owned(),
            token_hash: token_hash.to_owned(),
            created_at: now,
            expires_at: now + ttl_ms,
            can_write,
            listing: None,
        };
        map.insert(session.id.clone(), session.clone());
        Ok(session)
    }

    /// The session `id` if it exists and belongs to `token_hash`.
    pub fn get(&self, id: &str, token_hash: &str) -> Result<Session, ApiError> {
        let map = self.lock();
        let session = map.get(id).ok_or_else(not_found)?;
        if session.token_hash != token_hash {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "File session does not belong to this token",
            ));
        }
        Ok(session.clone())
    }

    /// Sets a new expiry.
    pub fn renew(&self, id: &str, token_hash: &str, ttl_ms: u64) -> Result<Session, ApiError> {
        self.get(id, token_hash)?;
        let mut map = self.lock();
        let session = map.get_mut(id).ok_or_else(not_found)?;
        session.expires_at = now_ms() + ttl_ms;
        Ok(session.clone())
    }

    /// Removes a session.
    pub fn close(&self, id: &str, token_hash: &str) -> Result<(), ApiError> {
        self.get(id, token_hash)?;
        self.lock().remove(id);
        Ok(())
    }

    /// Remembers a catalog listing for later pages.
    pub fn store_listing(&self, id: &str, cached: CachedListing) {
        if let Some(session) = self.lock().get_mut(id) {
            session.listing = Some(cached);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_is_clamped_and_defaults() {
        assert_eq!(ttl_ms(None), DEFAULT_TTL_MS);
        assert_eq!(ttl_ms(Some(f64::NAN)), DEFAULT_TTL_MS);
        assert_eq!(ttl_ms(Some(1.0)), MIN_TTL_MS);
        assert_eq!(ttl_ms(Some(-5.0)), MIN_TTL_MS);
        assert_eq!(ttl_ms(Some(90.5)), 90_500);
        assert_eq!(ttl_ms(Some(1e12)), MAX_TTL_MS);
    }

    #[test]
    fn per_token_cap_does_not_evict_others() {
        let store = FileSessions::default();
        let other = store.create("w", "b", 60_000, true).unwrap();
        for _ in 0..PER_TOKEN {
            store.create("w", "a", 60_000, true).unwrap();
        }
        let err = store.create("w", "a", 60_000, true).unwrap_err();
        assert_eq!(err.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(store.get(&other.id, "b").is_ok());
        assert_eq!(store.get(&other.id, "a").unwrap_err().status, 403);
        store.close(&other.id, "b").unwrap();
        assert_eq!(store.get(&other.id, "b").unwrap_err().status, 404);
    }
}
