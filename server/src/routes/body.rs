//! Typed request bodies: [`Body<T>`] reads a JSON body straight into a `serde` struct.
//!
//! Threat: a malformed or hostile body reaching a handler half-parsed. Nothing is picked out of
//! a `serde_json::Value` by hand; a body either becomes the route's struct or the request
//! stops with a 400 that names the bad field (`writes[2].contentBase64: missing field …`), so a
//! client can fix it without guessing. A body over the configured limit is 413
//! `payload_too_large`; an empty or syntactically broken body is 400 `invalid_json` (§A7).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::json;

use crate::error::ApiError;
use crate::files::MAX_BATCH;

/// A JSON request body deserialized into `T`; an empty body is 400 `invalid_json`.
#[derive(Debug)]
pub(crate) struct Body<T>(pub T);

/// Like [`Body`] but an empty (or all-whitespace) body counts as `T::default()`, for routes
/// whose fields are all optional (file-session create and renew).
#[derive(Debug)]
pub(crate) struct OptionalBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = read_bytes(req, state).await?;
        parse(&bytes).map(Self)
    }
}

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = read_bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(T::default()));
        }
        parse(&bytes).map(Self)
    }
}

async fn read_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            payload_too_large()
        } else {
            ApiError::invalid_json()
        }
    })
}

/// 413 `payload_too_large`.
pub(crate) fn payload_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "Request body is larger than the server accepts",
    )
}

/// Deserializes `bytes` into `T`, turning a type error into 400 `invalid_payload` naming the
/// field path and a syntax error into 400 `invalid_json`.
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(field_error)?;
    de.end().map_err(|_| ApiError::invalid_json())?;
    Ok(value)
}

fn field_error(err: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let inner = err.inner();
    if !inner.is_data() {
        return ApiError::invalid_json();
    }
    let text = inner.to_string();
    let suffix = format!(" at line {} column {}", inner.line(), inner.column());
    let reason = text.strip_suffix(&suffix).unwrap_or(&text);
    let path = err.path().to_string();
    let message = if path == "." {
        format!("Body: {reason}")
    } else if reason.starts_with("must ") {
        // The reference's batch messages: "paths must not be empty".
        format!("{path} {reason}")
    } else {
        format!("{path}: {reason}")
    };
    ApiError::invalid_payload(message).with_details(json!({ "field": path }))
}

/// A field the reference reads leniently: a value of the wrong type counts as absent
/// (`"ttlSeconds":"60"` gives the default TTL, `"reply":7` denies), as in the original.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Loose<T> {
    /// The value had the expected type.
    Is(T),
    /// Anything else, ignored.
    Other(serde::de::IgnoredAny),
}

impl<T> Loose<T> {
    /// The value when it had the expected type.
    pub(crate) fn get(self) -> Option<T> {
        match self {
            Self::Is(v) => Some(v),
            Self::Other(_) => None,
        }
    }
}

/// A `paths`/`writes`/`operations` array: non-empty and at most [`MAX_BATCH`] entries
/// (checked while deserializing, so a 10 000-entry array is refused before it is built).
#[derive(Debug)]
pub(crate) struct Batch<T>(pub Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Batch<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Visit<T> {
            type Value = Vec<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Vec<T>, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    if items.len() == MAX_BATCH {
                        return Err(serde::de::Error::custom(format!(
                            "must include <= {MAX_BATCH} items"
                        )));
                    }
                    items.push(item);
                }
                if items.is_empty() {
                    return Err(serde::de::Error::custom("must not be empty"));
                }
                Ok(items)
            }
        }
        d.deserialize_seq(Visit(std::marker::PhantomData)).map(Self)
    }
}

/// A required batch field; its absence is the reference's "`<field>` must be an array".
pub(crate) fn required_batch<T>(batch: Option<Batch<T>>, field: &str) -> Result<Vec<T>, ApiError> {
    batch.map(|b| b.0).ok_or_else(|| {
        ApiError::invalid_payload(format!("{field} must be an array"))
            .with_details(json!({"field": field}))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Entry {
        #[allow(dead_code)]
        content_base64: String,
    }

    #[derive(Debug, Deserialize)]
    struct Writes {
        writes: Option<Batch<Entry>>,
    }

    #[test]
    fn errors_name_the_field() {
        let err = parse::<Writes>(br#"{"writes":[{"contentBase64":"x"},{}]}"#).unwrap_err();
        assert_eq!(err.code, "invalid_payload");
        assert!(
            err.message
                .starts_with("writes[1]: missing field `contentBase64`"),
            "{}",
            err.message
        );
        let err = parse::<Writes>(br#"{"writes":[]}"#).unwrap_err();
        assert_eq!(err.message, "writes must not be empty");
        let err = parse::<Writes>(br#"{"writes":5}"#).unwrap_err();
        assert!(
            err.message.starts_with("writes: invalid type"),
            "{}",
            err.message
        );
        assert_eq!(parse::<Writes>(b"{nope").unwrap_err().code, "invalid_json");
        assert_eq!(parse::<Writes>(b"{} x").unwrap_err().code, "invalid_json");
        assert!(parse::<Writes>(b"{}").unwrap().writes.is_none());
    }
}
