//! The approvals engine: gated writes ask the host for permission and wait
//! (reference §A9).
//!
//! A handler calls [`Approvals::request_approval`] and awaits the returned
//! [`Decision`]. In `auto` mode the answer is immediate; in `manual` mode the
//! request is listed by `GET /approvals` until the host replies through
//! `POST /approvals/:id`, the timeout passes, or the server shuts down.
//!
//! Improvements over the original: a waiting request that is dropped (the
//! client hung up and axum dropped the handler future) removes itself from the
//! pending list instead of lingering until the timeout (weakness W14), and
//! shutdown answers every pending request with `cancelled` so connections close
//! promptly. Listings leave out the requester's token hash (weakness W4).
//! Left open: pending requests are memory only and vanish on restart.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::auth::{Actor, now_ms};
use crate::config::{ApprovalConfig, ApprovalMode};

/// What a gated handler wants to do.
#[derive(Debug, Clone)]
pub struct ApprovalInput {
    /// Workspace the write touches.
    pub workspace_id: String,
    /// Action name, e.g. `workspace.files.session.write`.
    pub action: String,
    /// One-line human summary.
    pub summary: String,
    /// Absolute paths that would be touched.
    pub paths: Vec<String>,
    /// Who asked.
    pub actor: Actor,
}

/// A pending request as listed by `GET /approvals`.
#[derive(Debug, Clone)]
pub struct ApprovalRequest {
    /// Request id (a UUID).
    pub id: String,
    /// When it was created, ms since the Unix epoch.
    pub created_at: u64,
    /// What was asked.
    pub input: ApprovalInput,
}

impl ApprovalRequest {
    /// The wire shape `{id, workspaceId, action, summary, paths, createdAt, actor}`.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "workspaceId": self.input.workspace_id,
            "action": self.input.action,
            "summary": self.input.summary,
            "paths": self.input.paths,
            "createdAt": self.created_at,
            "actor": self.input.actor.to_json(false),
        })
    }
}

/// Why a request was not approved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DenyReason {
    /// The host answered deny.
    Denied,
    /// Nobody answered within the timeout.
    Timeout,
    /// The server is shutting down.
    Cancelled,
}

/// The outcome of [`Approvals::request_approval`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead. `request_id` is `"auto"` in auto mode.
    Allowed {
        /// Id of the request that was allowed.
        request_id: String,
    },
    /// Do not write.
    Denied {
        /// Id of the request that was denied.
        request_id: String,
        /// Why.
        reason: DenyReason,
    },
}

impl Decision {
    /// Whether the write may proceed.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allowed { .. })
    }

    /// The 403 `write_denied` error for a denial; `None` when allowed.
    pub fn into_error(self) -> Option<crate::error::ApiError> {
        match self {
            Self::Allowed { .. } => None,
            Self::Denied { request_id, reason } => Some(
                crate::error::ApiError::new(
                    axum::http::StatusCode::FORBIDDEN,
                    "write_denied",
                    "Write request denied",
                )
                .with_details(json!({"requestId": request_id, "reason": reason})),
            ),
        }
    }
}

/// The host's answer to `POST /approvals/:id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Allow the write.
    Allow,
    /// Deny the write.
    Deny,
}

/// `reply` was given an id that is not pending (unknown, answered or timed out).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("approval request {0} not found")]
pub struct ApprovalNotFound(pub String);

struct Pending {
    request: ApprovalRequest,
    answer: oneshot::Sender<Result<Reply, DenyReason>>,
}

#[derive(Default)]
struct Inner {
    /// Pending requests in insertion order.
    pending: Vec<Pending>,
    /// Set at shutdown: new requests are cancelled at once.
    closed: bool,
}

/// The approval registry. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct Approvals {
    mode: ApprovalMode,
    timeout: Duration,
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for Approvals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Approvals")
            .field("mode", &self.mode)
            .field("timeout", &self.timeout)
            .field("pending", &self.lock().pending.len())
            .finish()
    }
}

/// Removes a request from the pending list when the waiting future ends or
/// is dropped, whichever comes first.
struct PendingGuard<'a> {
    approvals: &'a Approvals,
    id: String,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.approvals
            .lock()
            .pending
            .retain(|p| p.request.id != self.id);
    }
}

impl Approvals {
    /// An engine with this mode and timeout.
    pub fn new(config: ApprovalConfig) -> Self {
        Self {
            mode: config.mode,
            timeout: config.timeout,
            inner: Arc::new(Mutex::new(Inner::default())),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The mode.
    pub fn mode(&self) -> ApprovalMode {
        self.mode
    }

    /// The timeout of a manual request.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Asks for approval and waits for the decision. Dropping the future
    /// withdraws the request.
    pub async fn request_approval(&self, input: ApprovalInput) -> Decision {
        if self.mode == ApprovalMode::Auto {
            return Decision::Allowed {
                request_id: "auto".to_owned(),
            };
        }
        let id = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = oneshot::channel();
        {
            let mut inner = self.lock();
            if inner.closed {
                return Decision::Denied {
                    request_id: id,
                    reason: DenyReason::Cancelled,
                };
            }
            inner.pending.push(Pending {
                request: ApprovalRequest {
                    id: id.clone(),
                    created_at: now_ms(),
                    input,
                },
                answer: tx,
            });
        }
        let _guard = PendingGuard {
            approvals: self,
            id: id.clone(),
        };
        let outcome = match tokio::time::timeout(self.timeout, rx).await {
            Err(_elapsed) => Err(DenyReason::Timeout),
            Ok(Err(_sender_dropped)) => Err(DenyReason::Cancelled),
            Ok(Ok(answer)) => answer,
        };
        match outcome {
            Ok(Reply::Allow) => Decision::Allowed { request_id: id },
            Ok(Reply::Deny) => Decision::Denied {
                request_id: id,
                reason: DenyReason::Denied,
            },
            Err(reason) => Decision::Denied {
                request_id: id,
                reason,
            },
        }
    }

    /// Pending requests in insertion order.
    pub fn list(&self) -> Vec<ApprovalRequest> {
        self.lock()
            .pending
            .iter()
            .map(|p| p.request.clone())
            .collect()
    }

    /// Answers a pending request. Returns whether the write was allowed.
    pub fn reply(&self, id: &str, reply: Reply) -> Result<bool, ApprovalNotFound> {
        let pending = {
            let mut inner = self.lock();
            let index = inner
                .pending
                .iter()
                .position(|p| p.request.id == id)
                .ok_or_else(|| ApprovalNotFound(id.to_owned()))?;
            inner.pending.remove(index)
        };
        // The waiter may have just timed out or hung up; then nothing is
        // waiting for this answer any more, which is the same as not found.
        pending
            .answer
            .send(Ok(reply))
            .map_err(|_| ApprovalNotFound(id.to_owned()))?;
        Ok(reply == Reply::Allow)
    }

    /// Answers every pending request with `cancelled` and cancels every later
    /// one at once (used at shutdown).
    pub fn close(&self) {
        let drained: Vec<Pending> = {
            let mut inner = self.lock();
            inner.closed = true;
            std::mem::take(&mut inner.pending)
        };
        for pending in drained {
            // A waiter that is already gone needs no answer.
            let _ = pending.answer.send(Err(DenyReason::Cancelled));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Scope;

    fn input() -> ApprovalInput {
        ApprovalInput {
            workspace_id: "ws_000000000000".into(),
            action: "workspace.file.write".into(),
            summary: "Write 1 file(s)".into(),
            paths: vec!["/abs/a.md".into()],
            actor: Actor::Remote {
                client_id: None,
                token_hash: "abc".into(),
                scope: Scope::Collaborator,
            },
        }
    }

    fn manual(timeout_ms: u64) -> Approvals {
        Approvals::new(ApprovalConfig {
            mode: ApprovalMode::Manual,
            timeout: Duration::from_millis(timeout_ms),
        })
    }

    async fn wait_for_pending(a: &Approvals) -> String {
        loop {
            if let Some(r) = a.list().first() {
                return r.id.clone();
            }
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn auto_mode_allows_without_queueing() {
        let a = Approvals::new(ApprovalConfig {
            mode: ApprovalMode::Auto,
            timeout: Duration::from_secs(1),
        });
        let d = a.request_approval(input()).await;
        assert_eq!(
            d,
            Decision::Allowed {
                request_id: "auto".into()
            }
        );
        assert!(a.list().is_empty());
    }

    #[tokio::test]
    async fn manual_allow_and_deny() {
        let a = manual(60_000);
        for (reply, allowed) in [(Reply::Allow, true), (Reply::Deny, false)] {
            let waiter = tokio::spawn({
                let a = a.clone();
                async move { a.request_approval(input()).await }
            });
            let id = wait_for_pending(&a).await;
            assert_eq!(a.list()[0].to_json()["actor"].get("tokenHash"), None);
            assert_eq!(a.reply(&id, reply), Ok(allowed));
            let decision = waiter.await.unwrap();
            assert_eq!(decision.is_allowed(), allowed);
            assert!(a.list().is_empty());
            assert_eq!(a.reply(&id, reply), Err(ApprovalNotFound(id.clone())));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn manual_times_out() {
        let a = manual(30_000);
        let decision = a.request_approval(input()).await;
        let Decision::Denied { reason, request_id } = decision.clone() else {
            panic!("expected a denial, got {decision:?}");
        };
        assert_eq!(reason, DenyReason::Timeout);
        assert!(a.list().is_empty());
        let err = decision.into_error().unwrap();
        assert_eq!(err.code, "write_denied");
        assert_eq!(err.details.unwrap()["requestId"], request_id);
    }

    #[tokio::test]
    async fn dropping_the_waiter_withdraws_the_request() {
        let a = manual(60_000);
        let waiter = tokio::spawn({
            let a = a.clone();
            async move { a.request_approval(input()).await }
        });
        let id = wait_for_pending(&a).await;
        waiter.abort();
        let _ = waiter.await;
        assert!(a.list().is_empty());
        assert!(a.reply(&id, Reply::Allow).is_err());
    }

    #[tokio::test]
    async fn close_answers_cancelled() {
        let a = manual(60_000);
        let waiter = tokio::spawn({
            let a = a.clone();
            async move { a.request_approval(input()).await }
        });
        wait_for_pending(&a).await;
        a.close();
        assert!(matches!(
            a.request_approval(input()).await,
            Decision::Denied {
                reason: DenyReason::Cancelled,
                ..
            }
        ));
        let decision = waiter.await.unwrap();
        assert!(matches!(
            decision,
            Decision::Denied {
                reason: DenyReason::Cancelled,
                ..
            }
        ));
    }
}
