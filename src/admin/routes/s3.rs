//! `/v1/s3/keys`: the S3 endpoint's access keys (docs/s3.md). Admin only:
//! a key's secret is shown once, in the answer that makes it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use hypha_s3::keys::{KeyRecord, KeyRole};
use serde::{Deserialize, Serialize};

use crate::admin::error::ApiError;
use crate::admin::AppState;

impl From<hypha_s3::store::StoreError> for ApiError {
    fn from(e: hypha_s3::store::StoreError) -> Self {
        ApiError::unavailable(e.to_string())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateBody {
    role: String,
    #[serde(default)]
    description: String,
}

/// A key as listed: never its secret.
#[derive(Serialize)]
pub(super) struct KeyView {
    access_key: String,
    role: &'static str,
    description: String,
    created_ms: u64,
}

impl From<KeyRecord> for KeyView {
    fn from(r: KeyRecord) -> Self {
        Self {
            access_key: r.access_key,
            role: r.role.as_str(),
            description: r.description,
            created_ms: r.created_ms,
        }
    }
}

#[derive(Serialize)]
pub(super) struct Created {
    #[serde(flatten)]
    key: KeyView,
    /// Shown only here.
    secret_key: String,
}

/// `POST /v1/s3/keys` [admin]: a new key with `role`; 201 with its secret.
pub(super) async fn create(
    State(state): State<AppState>,
    body: Result<Json<CreateBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let role = KeyRole::parse(&body.role)
        .ok_or_else(|| ApiError::bad_request("role is read, write or admin"))?;
    let (record, secret_key) = state
        .s3_keys
        .create(role, &body.description, state.clock.wall_ms())
        .await?;
    let created = Created {
        key: record.into(),
        secret_key,
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

#[derive(Serialize)]
pub(super) struct KeyList {
    keys: Vec<KeyView>,
}

/// `GET /v1/s3/keys` [admin]: every key, without secrets.
pub(super) async fn list(State(state): State<AppState>) -> Result<Json<KeyList>, ApiError> {
    let keys = state.s3_keys.list().await?;
    Ok(Json(KeyList {
        keys: keys.into_iter().map(KeyView::from).collect(),
    }))
}

/// `DELETE /v1/s3/keys/{access_key}` [admin]: 204; 404 when unknown.
pub(super) async fn delete(
    State(state): State<AppState>,
    Path(access_key): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.s3_keys.delete(&access_key).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "no S3 access key {access_key}"
        )))
    }
}
