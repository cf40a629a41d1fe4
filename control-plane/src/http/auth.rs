//! Who is calling. Until SigV4 access keys land, the server listens on loopback only and
//! every request acts for the configured default account.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::ApiState;
use crate::app::Caller;
use crate::error::Error;

impl FromRequestParts<ApiState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(
        _parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Caller {
            account: state.default_account.clone(),
            region: state.app.region.clone(),
        })
    }
}
