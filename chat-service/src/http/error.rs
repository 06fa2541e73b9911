//! The one place that turns every refusal and failure into an HTTP status and a JSON error body.
//!
//! Why one place: clients program against stable `code`s, and must never see internals (a store
//! path, a SQL message). Business refusals (chat-core's rejections, the engine's refusals, form
//! errors) keep their human message, which names the field or rule; internal failures are logged
//! with their detail and answered with `internal` and no detail.
//!
//! The body is always `{"error": {"code": "...", "message": "...", "field": "...", "fields":
//! [...]}}` (`field` when one field is at fault, `fields` for a refused form). docs/HTTP.md lists
//! the codes.

use crate::engine::{EngineError, Refusal};
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chat_core::agent::AgentRejection;
use chat_core::config::{ConfigRejection, FormErrors};
use chat_core::conversation::Rejection;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One refused form field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldProblem {
    /// The field's name.
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

/// The body of every error response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable code (snake_case), e.g. `invalid_field`, `not_found`,
    /// `origin_not_allowed`, or the business rule's name such as `already_assigned`.
    pub code: String,
    /// A human message naming the field or rule.
    pub message: String,
    /// The field at fault, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Every refused field of a form submission.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldProblem>,
}

/// An error response: a status and a body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body.
    pub detail: ErrorDetail,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            detail: ErrorDetail {
                code: code.into(),
                message: message.into(),
                field: None,
                fields: Vec::new(),
            },
        }
    }

    /// The same error, naming `field`.
    #[must_use]
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.detail.field = Some(field.into());
        self
    }

    /// 400 `invalid_field`: a request field is unusable.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_field",
            format!("{field}: {}", message.into()),
        )
        .with_field(field)
    }

    /// 400 `limit_exceeded`: `field` is over its limit `max`.
    pub fn too_large(field: impl Into<String>, max: impl std::fmt::Display) -> Self {
        let field = field.into();
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "limit_exceeded",
            format!("{field} is over its limit of {max}"),
        )
        .with_field(field)
    }

    /// 401 `unauthorized`: no credentials, or wrong ones.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403 `forbidden`: authenticated, but not allowed.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404 `not_found`.
    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} does not exist"),
        )
    }

    /// 500 `internal`: logged with its detail, answered without it.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "internal error answered with 500");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the service log has the detail",
        )
    }

    /// 409 with the rule's name as code (a business refusal: nothing was recorded).
    fn rule(rule: &impl std::fmt::Debug, message: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::CONFLICT, rule_code(rule), message.to_string())
    }
}

/// The snake_case name of an enum variant, from its `Debug` form: `AlreadyAssigned { .. }` →
/// `already_assigned`. Variant names are part of the API (docs/HTTP.md).
pub fn rule_code(value: &impl std::fmt::Debug) -> String {
    let debug = format!("{value:?}");
    let name: String = debug
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect();
    let mut code = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                code.push('_');
            }
            code.push(c.to_ascii_lowercase());
        } else {
            code.push(c);
        }
    }
    code
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(ErrorBody { error: self.detail })).into_response()
    }
}

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> Self {
        match &rejection {
            Rejection::InvalidField { field, .. } => Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_field",
                rejection.to_string(),
            )
            .with_field(*field),
            Rejection::LimitExceeded { limit, .. } => Self::new(
                StatusCode::BAD_REQUEST,
                "limit_exceeded",
                rejection.to_string(),
            )
            .with_field(*limit),
            Rejection::RatingOutOfRange { .. } => Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_field",
                rejection.to_string(),
            )
            .with_field("score"),
            Rejection::EmptyMessage => Self::new(
                StatusCode::BAD_REQUEST,
                "empty_message",
                rejection.to_string(),
            ),
            _ => Self::rule(&rejection, &rejection),
        }
    }
}

impl From<AgentRejection> for ApiError {
    fn from(rejection: AgentRejection) -> Self {
        Self::rule(&rejection, &rejection)
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Chat(rejection) => rejection.into(),
            Refusal::Agent(rejection) => rejection.into(),
            stale @ Refusal::Stale { .. } => {
                Self::new(StatusCode::CONFLICT, "stale", stale.to_string())
            }
        }
    }
}

impl From<ConfigRejection> for ApiError {
    fn from(rejection: ConfigRejection) -> Self {
        let message = rejection.to_string();
        match &rejection {
            ConfigRejection::NotFound { .. } => {
                Self::new(StatusCode::NOT_FOUND, "not_found", message)
            }
            ConfigRejection::Empty { field }
            | ConfigRejection::TooLong { field, .. }
            | ConfigRejection::TooManyBytes { field, .. }
            | ConfigRejection::TooMany { field, .. }
            | ConfigRejection::OutOfRange { field, .. }
            | ConfigRejection::InvalidKey { field, .. }
            | ConfigRejection::InvalidColour { field, .. }
            | ConfigRejection::Invalid { field, .. } => {
                Self::new(StatusCode::BAD_REQUEST, rule_code(&rejection), message)
                    .with_field(field.clone())
            }
            ConfigRejection::InvalidReference { .. } => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_reference", message)
                    .with_field("reference")
            }
            ConfigRejection::UnknownTimeZone { .. } => {
                Self::new(StatusCode::BAD_REQUEST, "unknown_time_zone", message)
                    .with_field("time_zone")
            }
            ConfigRejection::InvalidLanguage { .. } => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_language", message)
                    .with_field("language")
            }
            _ => Self::rule(&rejection, message),
        }
    }
}

impl From<FormErrors> for ApiError {
    fn from(errors: FormErrors) -> Self {
        let mut error = Self::new(StatusCode::BAD_REQUEST, "invalid_form", errors.to_string());
        if let [only] = errors.errors.as_slice() {
            error.detail.field = Some(only.field.clone());
        }
        error.detail.fields = errors
            .errors
            .iter()
            .map(|e| FieldProblem {
                field: e.field.clone(),
                problem: e.problem.to_string(),
            })
            .collect();
        error
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        match &error {
            EngineError::UnknownModule(module) => Self::not_found(format!("module {module}")),
            EngineError::ModuleCannotTakeChats(_) => Self::new(
                StatusCode::CONFLICT,
                "module_cannot_take_chats",
                error.to_string(),
            ),
            EngineError::LimitExceeded { .. } => {
                Self::new(StatusCode::BAD_REQUEST, "limit_exceeded", error.to_string())
            }
            EngineError::ConflictRetriesExhausted { .. } => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "the chat is changing too fast; retry with the same command id",
            ),
            EngineError::ShutDown => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the service is shutting down",
            ),
            _ => Self::internal(&error),
        }
    }
}

impl From<chat_store::StoreError> for ApiError {
    fn from(error: chat_store::StoreError) -> Self {
        EngineError::from(error).into()
    }
}

/// The result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_codes_are_the_snake_case_variant_names() {
        assert_eq!(rule_code(&Rejection::AlreadyRated), "already_rated");
        assert_eq!(rule_code(&Rejection::NotStarted), "not_started");
        let error: ApiError = Rejection::ContactBlocked.into();
        assert_eq!(error.status, StatusCode::CONFLICT);
        assert_eq!(error.detail.code, "contact_blocked");
    }
}
