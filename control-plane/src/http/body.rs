//! Request-body parsing with Amazon MQ errors instead of axum's default rejections.
//! Bodies may be empty or `{}`, may lack `Content-Type`, and may carry unknown keys.

use axum::body::Bytes;
use serde::de::DeserializeOwned;

use crate::error::Error;

pub fn parse_json<T: DeserializeOwned + Default>(body: &Bytes) -> Result<T, Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| Error::bad_request("body", format!("The request body is not valid: {e}.")))
}
