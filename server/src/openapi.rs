//! `GET /openapi.json`: the OpenAPI 3 description of every endpoint, kept next to the code
//! (`server/openapi.json`); a test checks that every route is documented and vice versa.

use axum::http::header;
use axum::response::IntoResponse;

pub const DOCUMENT: &str = include_str!("../openapi.json");

pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}
