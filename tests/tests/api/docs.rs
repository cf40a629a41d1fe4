//! API documentation served by the binary: Swagger UI at /docs and the generated OpenAPI
//! document at /openapi.json, both without a signature.

use berth_tests::spawn_app;

#[tokio::test]
async fn swagger_ui_and_openapi_json_are_served() {
    let app = spawn_app().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let resp = http
        .get(format!("{}/docs", app.address))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_redirection(), "/docs: {}", resp.status());
    assert_eq!(resp.headers()["location"], "/docs/");

    let resp = http
        .get(format!("{}/docs/", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = resp.text().await.unwrap();
    assert!(
        html.contains("swagger-ui"),
        "not the Swagger UI page: {html}"
    );

    // The UI's assets come from the binary, and its initializer points at our document.
    let resp = http
        .get(format!("{}/docs/swagger-initializer.js", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("/openapi.json"));
    let resp = http
        .get(format!("{}/docs/swagger-ui-bundle.js", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.bytes().await.unwrap().len() > 100_000);

    let resp = http
        .get(format!("{}/openapi.json", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let spec: serde_json::Value = resp.json().await.unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    let operations: Vec<&str> = spec["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|op| op["operationId"].as_str())
        .collect();
    assert!(operations.contains(&"CreateBroker"), "{operations:?}");
    assert_eq!(
        spec,
        serde_json::to_value(berth::http::openapi()).unwrap(),
        "/openapi.json is the generated document"
    );
    app.stop().await;
}
