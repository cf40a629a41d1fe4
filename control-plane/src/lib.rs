//! Berth control plane: an Amazon MQ-compatible API whose desired state lives in
//! Postgres and whose reconciler drives Docker until brokers match it.

pub mod agent_client;
pub mod app;
pub mod config;
pub mod crypto;
pub mod db;
pub mod domain;
pub mod embedded_pg;
pub mod error;
pub mod http;
pub mod images;
pub mod instruments;
pub mod observe;
pub mod reconcile;
pub mod runtime;
pub mod startup;
pub mod telemetry;
pub mod tls;
pub mod wire;

#[cfg(test)]
mod openapi_drift {
    //! The committed spec must match the code. `BERTH_UPDATE_OPENAPI=1 cargo test`
    //! rewrites `openapi/control-plane.json`.

    #[test]
    fn committed_openapi_spec_matches_the_code() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi/control-plane.json");
        let generated = crate::http::openapi()
            .to_pretty_json()
            .expect("serialize OpenAPI")
            + "\n";
        if std::env::var_os("BERTH_UPDATE_OPENAPI").is_some() {
            std::fs::write(&path, &generated).expect("write spec");
            return;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "openapi/control-plane.json is out of date: run `BERTH_UPDATE_OPENAPI=1 cargo test -p berth-control-plane openapi`"
        );
    }
}
