//! The console's stylesheet and script, compiled into the binary and served with a
//! day of caching (their URLs carry the crate version, so an upgrade fetches anew).

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

const CSS: &str = include_str!("../../../../web/static/console.css");
const JS: &str = include_str!("../../../../web/static/console.js");

/// `GET /console/static/{file}`.
pub async fn serve(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        _ => {
            return (
                StatusCode::NOT_FOUND,
                [(super::ERROR_TYPE_HEADER, "NotFoundException")],
                "No such file.",
            )
                .into_response()
        }
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=86400"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}
