//! The one JSON error shape of the admin API:
//! `{"error": {"code": "<stable_snake_case>", "message": "<human text>"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use hypha_store::StoreError;
use hypha_supervisors::SupervisorError;
use serde::Serialize;

use crate::auth::AuthError;

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    /// An error with an explicit status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 503.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Missing | AuthError::Invalid => {
                Self::new(StatusCode::UNAUTHORIZED, "unauthorized", err.to_string())
            }
            AuthError::Expired => {
                Self::new(StatusCode::UNAUTHORIZED, "token_expired", err.to_string())
            }
            AuthError::Forbidden(_) => {
                Self::new(StatusCode::FORBIDDEN, "forbidden", err.to_string())
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        let (status, code) = match &err {
            StoreError::DiskFull => (StatusCode::INSUFFICIENT_STORAGE, "disk_full"),
            StoreError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            StoreError::ConditionFailed(_) => (StatusCode::CONFLICT, "precondition_failed"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "storage_error"),
        };
        Self::new(status, code, err.to_string())
    }
}

impl From<SupervisorError> for ApiError {
    fn from(err: SupervisorError) -> Self {
        let (status, code) = match &err {
            SupervisorError::NoSuchChild(_) | SupervisorError::NotASupervisor(_) => {
                (StatusCode::NOT_FOUND, "no_such_actor")
            }
            SupervisorError::ChildNotRunning(_) | SupervisorError::ChildRunning(_) => {
                (StatusCode::CONFLICT, "actor_state")
            }
            SupervisorError::CrashUnsupported(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "panic_unsupported")
            }
            SupervisorError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "supervisor_error"),
        };
        Self::new(status, code, err.to_string())
    }
}
