//! The visitor API (being written).

use crate::http::App;
use utoipa_axum::router::OpenApiRouter;

/// The visitor routes.
pub(crate) fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
}
