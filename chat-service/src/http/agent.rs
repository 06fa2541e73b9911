//! The agent API (being written).

use crate::http::App;
use utoipa_axum::router::OpenApiRouter;

/// The agent routes.
pub(crate) fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
}
