//! Who may call what (V3): operators (agents, supervisors, admins) sign in with a password and
//! carry a bearer token; visitors carry their chat's resume token.
//!
//! Operators are an aggregate of this crate (`user-<uuid>` streams), not of chat-core: a
//! password hash is the shell's concern. The user id *is* the agent id, so an operator's
//! presence and capacity live on the `agent-<same uuid>` stream. The id is derived from the
//! lower-cased login name, so a login name is unique by construction: two racing creations
//! target the same stream and the second is refused as `AlreadyExists`.
//!
//! Tokens are stateless and signed (HMAC-SHA256 over user id, password generation and expiry
//! with the service's secret key), so several processes sharing the key accept each other's
//! tokens; every request still loads the user (cached), so a disabled user or a changed
//! password takes effect at once.

use crate::engine::{Aggregate, derived_command_id};
use crate::http::App;
use crate::http::error::{ApiError, ApiResult};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chat_core::{AgentId, CommandId, Decider, EventKind};
use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::ToSchema;

/// Longest login name, in bytes.
pub const LOGIN_BYTES_MAX: usize = 64;
/// Longest display name, in bytes.
pub const DISPLAY_NAME_BYTES_MAX: usize = 128;
/// Shortest password, in characters.
pub const PASSWORD_CHARS_MIN: usize = 8;
/// Longest password, in bytes (argon2 takes any length; a bound keeps hashing cheap to refuse).
pub const PASSWORD_BYTES_MAX: usize = 256;
/// How long a signed token is valid.
pub const TOKEN_TTL_S: i64 = 12 * 3600;
/// Length of the service's secret key, in bytes.
pub const SECRET_KEY_BYTES: usize = 32;

/// An operator's role; each includes the ones before it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Answers chats.
    Agent,
    /// Also sees the board, statistics and every agent's chats.
    Supervisor,
    /// Also configures modules, queues, strategies, operators and the account.
    Admin,
}

/// An operator as the log keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The id (also the agent id).
    pub id: AgentId,
    /// The login name as typed at creation.
    pub login: String,
    /// Shown to visitors and colleagues.
    pub display_name: String,
    /// What the user may do.
    pub role: Role,
    /// The argon2 PHC string.
    pub password_hash: String,
    /// Bumped by every password change: older tokens stop working.
    pub password_generation: u32,
    /// A disabled user can neither sign in nor use a token.
    pub disabled: bool,
}

/// The state of a `user-` stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserState {
    /// `None` until created.
    pub user: Option<User>,
}

/// What can be asked of a user stream. Password hashes arrive hashed: hashing needs a random
/// salt, which the decision must not draw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserCommand {
    /// Create the user.
    Create {
        /// Login name.
        login: String,
        /// Display name.
        display_name: String,
        /// Role.
        role: Role,
        /// argon2 PHC string.
        password_hash: String,
    },
    /// Replace the password.
    SetPassword {
        /// argon2 PHC string.
        password_hash: String,
    },
    /// Change the role.
    SetRole {
        /// The new role.
        role: Role,
    },
    /// Disable or re-enable.
    SetDisabled {
        /// Whether disabled.
        disabled: bool,
    },
}

/// What happened to a user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserEvent {
    /// Created.
    UserCreated {
        /// The user.
        user: User,
        /// When.
        at: DateTime<Utc>,
    },
    /// Password replaced.
    PasswordChanged {
        /// The new hash.
        password_hash: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Role changed.
    RoleChanged {
        /// The new role.
        role: Role,
        /// When.
        at: DateTime<Utc>,
    },
    /// Disabled or re-enabled.
    DisabledChanged {
        /// Whether disabled.
        disabled: bool,
        /// When.
        at: DateTime<Utc>,
    },
}

impl EventKind for UserEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::UserCreated { .. } => "UserCreated",
            Self::PasswordChanged { .. } => "PasswordChanged",
            Self::RoleChanged { .. } => "RoleChanged",
            Self::DisabledChanged { .. } => "DisabledChanged",
        }
    }

    fn schema_version(&self) -> u16 {
        1
    }
}

/// Why a user command was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UserRejection {
    /// The login name is taken.
    #[error("login {0:?} is already used")]
    AlreadyExists(String),
    /// No such user.
    #[error("user does not exist")]
    NotFound,
    /// A field is unusable.
    #[error("invalid {field}: {reason}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

/// The user aggregate.
#[derive(Debug)]
pub struct UserDecider;

impl Decider for UserDecider {
    type State = UserState;
    type Command = UserCommand;
    type Event = UserEvent;
    type Rejection = UserRejection;

    fn decide(
        state: &UserState,
        command: &UserCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<UserEvent>, UserRejection> {
        let existing = || state.user.as_ref().ok_or(UserRejection::NotFound);
        match command {
            UserCommand::Create {
                login,
                display_name,
                role,
                password_hash,
            } => {
                if state.user.is_some() {
                    return Err(UserRejection::AlreadyExists(login.clone()));
                }
                check_login(login)?;
                check_display_name(display_name)?;
                Ok(vec![UserEvent::UserCreated {
                    user: User {
                        id: user_id(login),
                        login: login.clone(),
                        display_name: display_name.clone(),
                        role: *role,
                        password_hash: password_hash.clone(),
                        password_generation: 0,
                        disabled: false,
                    },
                    at: now,
                }])
            }
            UserCommand::SetPassword { password_hash } => {
                existing()?;
                Ok(vec![UserEvent::PasswordChanged {
                    password_hash: password_hash.clone(),
                    at: now,
                }])
            }
            UserCommand::SetRole { role } => Ok(if existing()?.role == *role {
                Vec::new()
            } else {
                vec![UserEvent::RoleChanged {
                    role: *role,
                    at: now,
                }]
            }),
            UserCommand::SetDisabled { disabled } => Ok(if existing()?.disabled == *disabled {
                Vec::new()
            } else {
                vec![UserEvent::DisabledChanged {
                    disabled: *disabled,
                    at: now,
                }]
            }),
        }
    }

    fn evolve(state: &mut UserState, event: &UserEvent) {
        match (event, state.user.as_mut()) {
            (UserEvent::UserCreated { user, .. }, _) => state.user = Some(user.clone()),
            (UserEvent::PasswordChanged { password_hash, .. }, Some(user)) => {
                user.password_hash.clone_from(password_hash);
                user.password_generation += 1;
            }
            (UserEvent::RoleChanged { role, .. }, Some(user)) => user.role = *role,
            (UserEvent::DisabledChanged { disabled, .. }, Some(user)) => user.disabled = *disabled,
            _ => {}
        }
    }
}

impl Aggregate for UserDecider {
    fn command_id(_: &UserCommand) -> Option<CommandId> {
        None
    }
}

/// The id of the user with `login` (case-insensitive): derived, so a login is unique.
pub fn user_id(login: &str) -> AgentId {
    let id = derived_command_id("user-login", &[login.to_lowercase().as_bytes()]);
    AgentId::from_uuid(id.as_uuid())
}

/// The stream of the user with `login`.
pub fn user_stream(id: AgentId) -> String {
    format!("user-{}", id.as_uuid())
}

fn check_login(login: &str) -> Result<(), UserRejection> {
    let invalid = |reason: &str| UserRejection::InvalidField {
        field: "login",
        reason: reason.to_owned(),
    };
    if login.is_empty() || login.len() > LOGIN_BYTES_MAX {
        return Err(invalid(&format!("1 to {LOGIN_BYTES_MAX} bytes")));
    }
    if !login
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_.@+-".contains(c))
    {
        return Err(invalid("letters, digits and _.@+- only"));
    }
    Ok(())
}

fn check_display_name(name: &str) -> Result<(), UserRejection> {
    if name.trim().is_empty() || name.len() > DISPLAY_NAME_BYTES_MAX {
        return Err(UserRejection::InvalidField {
            field: "display_name",
            reason: format!("1 to {DISPLAY_NAME_BYTES_MAX} bytes, not blank"),
        });
    }
    Ok(())
}

/// Hashes a password with argon2id and a fresh random salt; refuses passwords out of bounds.
pub fn hash_password(password: &str) -> ApiResult<String> {
    if password.chars().count() < PASSWORD_CHARS_MIN {
        return Err(ApiError::invalid(
            "password",
            format!("at least {PASSWORD_CHARS_MIN} characters"),
        ));
    }
    if password.len() > PASSWORD_BYTES_MAX {
        return Err(ApiError::too_large("password", PASSWORD_BYTES_MAX));
    }
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(ApiError::internal)?;
    let salt = SaltString::encode_b64(&salt).map_err(ApiError::internal)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(ApiError::internal)
}

fn password_matches(hash: &str, password: &str) -> bool {
    password.len() <= PASSWORD_BYTES_MAX
        && PasswordHash::new(hash).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
}

/// The service's signing key for operator tokens.
#[derive(Clone)]
pub struct SecretKey([u8; SECRET_KEY_BYTES]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    /// A fresh random key.
    pub fn generate() -> std::io::Result<Self> {
        let mut key = [0u8; SECRET_KEY_BYTES];
        getrandom::fill(&mut key).map_err(std::io::Error::other)?;
        Ok(Self(key))
    }

    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.len() != SECRET_KEY_BYTES * 2 {
            return Err(format!(
                "secret key must be {} hex digits",
                SECRET_KEY_BYTES * 2
            ));
        }
        let mut key = [0u8; SECRET_KEY_BYTES];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
                .map_err(|_| "secret key must be hex digits".to_owned())?;
        }
        Ok(Self(key))
    }

    /// The key as 64 hex digits (to store it).
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    fn mac(&self, message: &str) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .expect("HMAC takes keys of any length");
        mac.update(message.as_bytes());
        hex(&mac.finalize().into_bytes())
    }

    /// A token for `user` valid until `expires`.
    pub fn issue(&self, user: &User, expires: DateTime<Utc>) -> String {
        let body = format!(
            "{}.{}.{}",
            user.id.as_uuid().simple(),
            user.password_generation,
            expires.timestamp()
        );
        let mac = self.mac(&body);
        format!("{body}.{mac}")
    }

    /// The user id, password generation and expiry of a token whose signature is valid.
    fn open(&self, token: &str) -> Option<(AgentId, u32, i64)> {
        let (body, mac) = token.rsplit_once('.')?;
        if !constant_time_eq(self.mac(body).as_bytes(), mac.as_bytes()) {
            return None;
        }
        let mut parts = body.split('.');
        let id = uuid::Uuid::parse_str(parts.next()?).ok()?;
        let generation = parts.next()?.parse().ok()?;
        let expires = parts.next()?.parse().ok()?;
        parts
            .next()
            .is_none()
            .then_some((AgentId::from_uuid(id), generation, expires))
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Compares secrets without an early exit on the first differing byte.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A signed-in operator, extracted from `Authorization: Bearer <token>` (or `?token=` on
/// WebSocket upgrades, where browsers cannot set headers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operator {
    /// The user (and agent) id.
    pub id: AgentId,
    /// The login name.
    pub login: String,
    /// The display name.
    pub display_name: String,
    /// The role, as it is now.
    pub role: Role,
}

impl Operator {
    /// Refuses with 403 `forbidden` unless the operator has at least `role`.
    pub fn require(&self, role: Role) -> ApiResult<()> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this needs the {role:?} role; {} is {:?}",
                self.login, self.role
            )))
        }
    }
}

/// Signs an operator in: checks the password, returns the user and a token.
pub async fn sign_in(app: &App, login: &str, password: &str) -> ApiResult<(User, String)> {
    let wrong = || ApiError::unauthorized("wrong login or password");
    if login.is_empty() || login.len() > LOGIN_BYTES_MAX {
        return Err(wrong());
    }
    let state = app
        .engine()
        .state::<UserDecider>(&user_stream(user_id(login)))
        .await?;
    let user = state.user.filter(|u| !u.disabled).ok_or_else(wrong)?;
    let hash = user.password_hash.clone();
    let candidate = password.to_owned();
    // argon2 is deliberately slow: keep it off the async workers.
    let ok = tokio::task::spawn_blocking(move || password_matches(&hash, &candidate))
        .await
        .map_err(ApiError::internal)?;
    if !ok {
        return Err(wrong());
    }
    let expires = app.engine().clock().now() + TimeDelta::seconds(TOKEN_TTL_S);
    let token = app.secret().issue(&user, expires);
    Ok((user, token))
}

/// Checks a bearer token and loads its operator.
pub async fn authenticate(app: &App, token: &str) -> ApiResult<Operator> {
    let invalid = || ApiError::unauthorized("the token is invalid or expired; sign in again");
    let (id, generation, expires) = app.secret().open(token).ok_or_else(invalid)?;
    if expires < app.engine().clock().now().timestamp() {
        return Err(invalid());
    }
    let state = app.engine().state::<UserDecider>(&user_stream(id)).await?;
    let user = state
        .user
        .filter(|u| !u.disabled && u.password_generation == generation)
        .ok_or_else(invalid)?;
    Ok(Operator {
        id: user.id,
        login: user.login,
        display_name: user.display_name,
        role: user.role,
    })
}

/// The bearer token of a request: the `Authorization` header, else a `token` query parameter.
pub fn bearer(parts: &Parts) -> Option<String> {
    if let Some(value) = parts.headers.get(axum::http::header::AUTHORIZATION) {
        return value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| t.trim().to_owned());
    }
    query_param(parts, "token")
}

/// One query parameter, percent-decoding not needed for our tokens (hex, dots, uuids).
pub fn query_param(parts: &Parts, name: &str) -> Option<String> {
    parts.uri.query()?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| value.to_owned())
    })
}

impl FromRequestParts<App> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or_else(|| {
            ApiError::unauthorized("sign in first: send Authorization: Bearer <token>")
        })?;
        authenticate(app, &token).await
    }
}

/// Creates an operator (admin API and the demo): hashes the password, records the user and
/// brings the agent's capacity to `capacity`.
pub async fn create_user(
    app: &App,
    login: &str,
    display_name: &str,
    role: Role,
    password: &str,
) -> ApiResult<User> {
    let password = password.to_owned();
    let password_hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(ApiError::internal)??;
    let id = user_id(login);
    let command = UserCommand::Create {
        login: login.to_owned(),
        display_name: display_name.to_owned(),
        role,
        password_hash,
    };
    match app
        .engine()
        .handle::<UserDecider>(&user_stream(id), &command)
        .await?
    {
        Ok(handled) => handled
            .state
            .user
            .ok_or_else(|| ApiError::internal("created user missing from its state")),
        Err(rejection) => Err(rejection.into()),
    }
}

impl From<UserRejection> for ApiError {
    fn from(rejection: UserRejection) -> Self {
        match &rejection {
            UserRejection::AlreadyExists(_) => ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "already_exists",
                rejection.to_string(),
            )
            .with_field("login"),
            UserRejection::NotFound => ApiError::not_found("user"),
            UserRejection::InvalidField { field, .. } => {
                ApiError::invalid(*field, rejection.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> User {
        User {
            id: user_id("Ada"),
            login: "Ada".into(),
            display_name: "Ada".into(),
            role: Role::Agent,
            password_hash: String::new(),
            password_generation: 0,
            disabled: false,
        }
    }

    #[test]
    fn a_token_opens_only_with_its_key_and_unchanged() {
        let key = SecretKey::generate().unwrap();
        let token = key.issue(&user(), DateTime::<Utc>::MAX_UTC);
        assert_eq!(key.open(&token).map(|t| t.0), Some(user_id("ada")));
        let other = SecretKey::generate().unwrap();
        assert!(other.open(&token).is_none());
        let mut tampered = token.clone();
        tampered.replace_range(0..1, if token.starts_with('0') { "1" } else { "0" });
        assert!(key.open(&tampered).is_none());
    }

    #[test]
    fn secret_keys_round_trip_through_hex_and_refuse_bad_text() {
        let key = SecretKey::generate().unwrap();
        assert_eq!(SecretKey::from_hex(&key.to_hex()).unwrap().0, key.0);
        assert!(SecretKey::from_hex("abc").is_err());
        assert!(SecretKey::from_hex(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn passwords_hash_and_verify_and_bounds_are_enforced() {
        let hash = hash_password("correct horse").unwrap();
        assert!(password_matches(&hash, "correct horse"));
        assert!(!password_matches(&hash, "correct horsE"));
        assert_eq!(
            hash_password("short").unwrap_err().detail.field.as_deref(),
            Some("password")
        );
        let long = "x".repeat(PASSWORD_BYTES_MAX + 1);
        assert_eq!(
            hash_password(&long).unwrap_err().detail.code,
            "limit_exceeded"
        );
        assert!(hash_password(&"x".repeat(PASSWORD_BYTES_MAX)).is_ok());
    }
}
