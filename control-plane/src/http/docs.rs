//! API documentation: Swagger UI at `/docs` over the OpenAPI document generated from the
//! code ([`super::openapi`]), and that document itself at `/openapi.json`.
//!
//! The UI's HTML/JS/CSS are compiled into the binary from the `utoipa-swagger-ui-vendored`
//! crate (feature `vendored`): nothing is fetched at build or run time. Like the console,
//! these pages need no signature; "Try it out" calls to `/v1/` do (SigV4), so they answer
//! 403 from the browser.

use axum::Router;
use utoipa_swagger_ui::SwaggerUi;

use super::ApiState;

pub fn routes() -> Router<ApiState> {
    SwaggerUi::new("/docs")
        .url("/openapi.json", super::openapi())
        .into()
}
