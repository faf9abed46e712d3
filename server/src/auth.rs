//! Who is calling: bearer and host-token checks, token scopes, and the
//! in-memory store of scoped tokens issued by `POST /tokens` (reference §A8).
//!
//! Threats handled: timing attacks on secret comparison (every comparison is
//! of SHA-256 digests with `subtle`, so neither content nor length leaks), and
//! theft of the token store (only digests are kept, also in `tokens.json`, see
//! [`crate::token_store`]). Left open: an owner token passes host auth as in
//! the original (weakness W4), because the desktop app relies on it.

use std::path::PathBuf;
use std::sync::RwLock;

use axum::http::{HeaderMap, StatusCode};
use rand::RngCore;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::Secret;
use crate::error::ApiError;
use crate::token_store::{self, StoredToken, TokenStoreError};

/// Header carrying the host token.
pub const HOST_TOKEN_HEADER: &str = "x-openwork-host-token";
/// Header carrying an optional client id.
pub const CLIENT_ID_HEADER: &str = "x-openwork-client-id";

/// What a token may do; ordered `Viewer < Collaborator < Owner`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Reads only.
    Viewer,
    /// Reads and gated writes.
    Collaborator,
    /// Everything, including host routes.
    Owner,
}

impl Scope {
    /// Parses the wire spelling.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "viewer" => Some(Self::Viewer),
            "collaborator" => Some(Self::Collaborator),
            "owner" => Some(Self::Owner),
            _ => None,
        }
    }

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Collaborator => "collaborator",
            Self::Owner => "owner",
        }
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// Authenticated with `X-OpenWork-Host-Token`; scope owner.
    Host,
    /// Authenticated with a bearer token.
    Remote {
        /// `X-OpenWork-Client-Id`, if sent.
        client_id: Option<String>,
        /// SHA-256 hex of the bearer token.
        token_hash: String,
        /// Scope of the token.
        scope: Scope,
    },
}

impl Actor {
    /// The actor's scope.
    pub fn scope(&self) -> Scope {
        match self {
            Self::Host => Scope::Owner,
            Self::Remote { scope, .. } => *scope,
        }
    }

    /// The actor as JSON; `with_token_hash` false drops `tokenHash` (used in
    /// approval listings, weakness W4).
    pub fn to_json(&self, with_token_hash: bool) -> Value {
        match self {
            Self::Host => json!({"type": "host", "scope": "owner"}),
            Self::Remote {
                client_id,
                token_hash,
                scope,
            } => {
                let mut v = json!({"type": "remote", "scope": scope});
                if let Some(map) = v.as_object_mut() {
                    if let Some(id) = client_id {
                        map.insert("clientId".into(), json!(id));
                    }
                    if with_token_hash {
                        map.insert("tokenHash".into(), json!(token_hash));
                    }
                }
                v
            }
        }
    }

    /// 403 `forbidden` unless the actor has at least `required`.
    pub fn require_scope(&self, required: Scope) -> Result<(), ApiError> {
        let scope = self.scope();
        if scope >= required {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Insufficient token scope",
            )
            .with_details(json!({"required": required, "scope": scope})))
        }
    }
}

/// SHA-256 of a secret as raw bytes.
fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// One issued token; the token itself is never kept.
#[derive(Debug, Clone)]
struct ScopedToken {
    id: String,
    hash: [u8; 32],
    scope: Scope,
    created_at: u64,
    label: Option<String>,
}

impl ScopedToken {
    fn to_json(&self) -> Value {
        let mut v = json!({"id": self.id, "scope": self.scope, "createdAt": self.created_at});
        if let (Some(label), Some(map)) = (&self.label, v.as_object_mut()) {
            map.insert("label".into(), json!(label));
        }
        v
    }
}

/// A freshly issued token: the only time the secret is visible.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// Public id (for listing and revoking).
    pub id: String,
    /// The secret, `owt_` + 32 hex characters.
    pub token: Secret,
    /// Its scope.
    pub scope: Scope,
    /// Creation time, ms since the Unix epoch.
    pub created_at: u64,
    /// Optional label.
    pub label: Option<String>,
}

/// Verifies credentials against the configured tokens and the issued ones.
#[derive(Debug)]
pub struct Authenticator {
    client_hash: [u8; 32],
    host_hash: [u8; 32],
    issued: RwLock<Vec<ScopedToken>>,
    /// `tokens.json`, when issued tokens persist.
    store: RwLock<Option<PathBuf>>,
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The bearer token of an `Authorization` header (scheme case-insensitive).
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let value = value.trim_start();
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case("bearer") || !rest.starts_with(char::is_whitespace) {
        return None;
    }
    let token = rest.trim();
    (!token.is_empty()).then_some(token)
}

impl Authenticator {
    /// An authenticator for these two configured tokens and no issued tokens.
    pub fn new(client_token: &Secret, host_token: &Secret) -> Self {
        Self {
            client_hash: digest(client_token.expose()),
            host_hash: digest(host_token.expose()),
            issued: RwLock::new(Vec::new()),
            store: RwLock::new(None),
        }
    }

    /// Loads the issued tokens from `path` and persists every later change there.
    pub fn attach_store(&self, path: PathBuf) -> Result<(), TokenStoreError> {
        let loaded = token_store::load(&path)?;
        let mut issued = self.issued.write().unwrap_or_else(|e| e.into_inner());
        *issued = loaded
            .into_iter()
            .filter_map(|t| {
                let mut hash = [0u8; 32];
                hex::decode_to_slice(&t.hash, &mut hash).ok()?;
                Some(ScopedToken {
                    id: t.id,
                    hash,
                    scope: Scope::parse(&t.scope)?,
                    created_at: t.created_at,
                    label: t.label,
                })
            })
            .collect();
        *self.store.write().unwrap_or_else(|e| e.into_inner()) = Some(path);
        Ok(())
    }

    /// Writes `tokens` to the store, if there is one.
    fn persist(&self, tokens: &[ScopedToken]) -> Result<(), ApiError> {
        let store = self.store.read().unwrap_or_else(|e| e.into_inner());
        let Some(path) = store.as_ref() else {
            return Ok(());
        };
        let stored: Vec<StoredToken> = tokens
            .iter()
            .map(|t| StoredToken {
                id: t.id.clone(),
                hash: hex::encode(t.hash),
                scope: t.scope.as_str().to_owned(),
                created_at: t.created_at,
                label: t.label.clone(),
            })
            .collect();
        token_store::save(path, &stored, now_ms()).map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "token_store_failed",
                e.to_string(),
            )
        })
    }

    /// Scope of a bearer token, if it is the client token or an issued one.
    fn scope_of(&self, token: &str) -> Option<Scope> {
        let hash = digest(token);
        if bool::from(hash.ct_eq(&self.client_hash)) {
            return Some(Scope::Collaborator);
        }
        let issued = self.issued.read().unwrap_or_else(|e| e.into_inner());
        // Compare against every entry so the time taken does not depend on
        // which entry (if any) matches.
        let mut found = None;
        for entry in issued.iter() {
            if bool::from(hash.ct_eq(&entry.hash)) {
                found = Some(entry.scope);
            }
        }
        found
    }

    /// `client` auth: a bearer token that maps to a scope, else 401.
    pub fn client(&self, headers: &HeaderMap) -> Result<Actor, ApiError> {
        let token = bearer_token(headers).ok_or_else(invalid_bearer)?;
        let scope = self.scope_of(token).ok_or_else(invalid_bearer)?;
        let client_id = headers
            .get(CLIENT_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned);
        Ok(Actor::Remote {
            client_id,
            token_hash: hex::encode(digest(token)),
            scope,
        })
    }

    /// `host` auth: the host-token header, or a bearer token of scope owner; else 401.
    pub fn host(&self, headers: &HeaderMap) -> Result<Actor, ApiError> {
        if let Some(value) = headers.get(HOST_TOKEN_HEADER)
            && bool::from(digest_bytes(value.as_bytes()).ct_eq(&self.host_hash))
        {
            return Ok(Actor::Host);
        }
        match self.client(headers) {
            Ok(actor) if actor.scope() == Scope::Owner => Ok(actor),
            _ => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Invalid host token",
            )),
        }
    }

    /// Issues a new scoped token and remembers (and persists) only its hash.
    pub fn issue(&self, scope: Scope, label: Option<String>) -> Result<IssuedToken, ApiError> {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        let token = format!("owt_{}", hex::encode(bytes));
        let issued = IssuedToken {
            id: uuid::Uuid::new_v4().to_string(),
            token: Secret::new(token.clone()),
            scope,
            created_at: now_ms(),
            label,
        };
        let entry = ScopedToken {
            id: issued.id.clone(),
            hash: digest(&token),
            scope,
            created_at: issued.created_at,
            label: issued.label.clone(),
        };
        let mut store = self.issued.write().unwrap_or_else(|e| e.into_inner());
        let mut next = store.clone();
        next.insert(0, entry);
        self.persist(&next)?;
        *store = next;
        Ok(issued)
    }

    /// Issued tokens, newest first, without hashes.
    pub fn list(&self) -> Vec<Value> {
        let store = self.issued.read().unwrap_or_else(|e| e.into_inner());
        store.iter().map(ScopedToken::to_json).collect()
    }

    /// Revokes an issued token; false if the id is unknown.
    pub fn revoke(&self, id: &str) -> Result<bool, ApiError> {
        let mut store = self.issued.write().unwrap_or_else(|e| e.into_inner());
        let next: Vec<ScopedToken> = store.iter().filter(|t| t.id != id).cloned().collect();
        if next.len() == store.len() {
            return Ok(false);
        }
        self.persist(&next)?;
        *store = next;
        Ok(true)
    }
}

fn digest_bytes(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn invalid_bearer() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "Invalid bearer token",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn auth() -> Authenticator {
        Authenticator::new(&Secret::new("client"), &Secret::new("host"))
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        let h = headers(&[("authorization", "bEaReR   client ")]);
        assert_eq!(bearer_token(&h), Some("client"));
        assert_eq!(
            bearer_token(&headers(&[("authorization", "Basic x")])),
            None
        );
        assert_eq!(
            bearer_token(&headers(&[("authorization", "Bearerx")])),
            None
        );
    }

    #[test]
    fn client_token_is_collaborator() {
        let actor = auth()
            .client(&headers(&[("authorization", "Bearer client")]))
            .unwrap();
        assert_eq!(actor.scope(), Scope::Collaborator);
        assert!(
            auth()
                .client(&headers(&[("authorization", "Bearer nope")]))
                .is_err()
        );
    }

    #[test]
    fn host_header_alone_does_not_pass_client_auth() {
        assert!(
            auth()
                .client(&headers(&[(HOST_TOKEN_HEADER, "host")]))
                .is_err()
        );
        assert_eq!(
            auth()
                .host(&headers(&[(HOST_TOKEN_HEADER, "host")]))
                .unwrap(),
            Actor::Host
        );
    }

    #[test]
    fn issued_owner_token_passes_host_auth_and_can_be_revoked() {
        let a = auth();
        let issued = a.issue(Scope::Owner, Some("x".into())).unwrap();
        assert!(issued.token.expose().starts_with("owt_"));
        assert_eq!(issued.token.expose().len(), 36);
        let bearer = format!("Bearer {}", issued.token.expose());
        let h = headers(&[("authorization", &bearer)]);
        assert_eq!(a.host(&h).unwrap().scope(), Scope::Owner);
        assert!(a.revoke(&issued.id).unwrap());
        assert!(a.host(&h).is_err());
        assert!(!a.revoke(&issued.id).unwrap());
    }

    #[test]
    fn viewer_fails_collaborator_check_with_details() {
        let a = auth();
        let t = a.issue(Scope::Viewer, None).unwrap();
        let bearer = format!("Bearer {}", t.token.expose());
        let actor = a.client(&headers(&[("authorization", &bearer)])).unwrap();
        let err = actor.require_scope(Scope::Collaborator).unwrap_err();
        assert_eq!(err.status, StatusCode::FORBIDDEN);
        assert_eq!(
            err.details,
            Some(json!({"required": "collaborator", "scope": "viewer"}))
        );
    }
}
