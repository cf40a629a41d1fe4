//! Console identity and the audit log: console logins and their session cookie (CSRF,
//! revocation, forged and expired tokens, failed-login limits), roles for access keys
//! and console users, access keys and console users managed by API, the audit log, and
//! accounts kept apart. The fake runtime: no Docker engines needed.

use std::sync::Arc;

use base64::Engine as _;
use berth::app::Role;
use reqwest::Method;
use serde_json::{json, Value};

use berth_tests::{
    rabbitmq_broker, session_cookie, spawn_app_on, ConsoleSession, Signer, TestApp, RABBITMQ_IMAGE,
};

const ACCOUNT: &str = "000000000000";
const OTHER: &str = "111122223333";
const ADMIN_PASSWORD: &str = "the-admin-Passw0rd";

async fn fake_app_with(tweak: impl FnOnce(&mut berth::config::Settings)) -> TestApp {
    let runtime = Arc::new(berth::runtime::fake::FakeRuntime::with_images(&[
        RABBITMQ_IMAGE,
    ]));
    spawn_app_on(runtime, Arc::new(crate::reconciler::ReadyAgent), tweak).await
}

async fn fake_app() -> TestApp {
    fake_app_with(|_| {}).await
}

/// An app with the console user `admin` of the default account.
async fn app_with_admin() -> TestApp {
    let app = fake_app().await;
    app.create_console_user(ACCOUNT, "admin", ADMIN_PASSWORD, Role::Admin)
        .await;
    app
}

fn url(app: &TestApp, path: &str) -> String {
    format!("{}{path}", app.address)
}

async fn expect_error(resp: reqwest::Response, status: u16, kind: &str) -> Value {
    let got = resp.status();
    let headers = resp.headers().clone();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(got, status, "{v}");
    assert_eq!(headers["x-amzn-errortype"], kind, "{v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    v
}

fn cookie_get(app: &TestApp, token: &str, path: &str) -> reqwest::RequestBuilder {
    app.http
        .get(url(app, path))
        .header("cookie", format!("berth_session={token}"))
}

#[tokio::test]
async fn a_login_sets_a_session_cookie_that_works_on_the_api() {
    let app = app_with_admin().await;
    let resp = app
        .console_login_response(None, "admin", ADMIN_PASSWORD)
        .await;
    assert_eq!(resp.status(), 200);
    let set_cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    for part in ["berth_session=", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(part), "{set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "plain http: {set_cookie}");
    let token = session_cookie(&resp).unwrap();
    let login: Value = resp.json().await.unwrap();
    assert_eq!(login["username"], "admin");
    assert_eq!(login["accountId"], ACCOUNT);
    assert_eq!(login["role"], "admin");
    assert!(login["csrfToken"].as_str().unwrap().len() >= 32);

    // The cookie alone authenticates /v1/ reads.
    let resp = cookie_get(&app, &token, "/v1/brokers")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let list: Value = resp.json().await.unwrap();
    assert!(list["brokerSummaries"].as_array().unwrap().is_empty());

    let who: Value = cookie_get(&app, &token, "/auth/session")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(who["username"], "admin");
    assert_eq!(who["role"], "admin");
    assert_eq!(who["csrfToken"], login["csrfToken"]);
    assert!(who["expiresAt"].as_str().is_some());

    // An HTML form signs in too, with the account given.
    let resp = app
        .http
        .post(url(&app, "/auth/login"))
        .form(&[
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
            ("account", ACCOUNT),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(session_cookie(&resp).is_some());

    // No cookie and no signature: AWS's answer, as before.
    expect_error(
        app.http.get(url(&app, "/v1/brokers")).send().await.unwrap(),
        403,
        "MissingAuthenticationTokenException",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn cookies_are_secure_behind_an_https_public_url_and_refreshed_past_half_life() {
    let app = fake_app_with(|s| {
        s.public_url = Some("https://berth.example.com".into());
        s.session_ttl_secs = 2;
    })
    .await;
    app.create_console_user(ACCOUNT, "admin", ADMIN_PASSWORD, Role::Admin)
        .await;
    let resp = app
        .console_login_response(None, "admin", ADMIN_PASSWORD)
        .await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Secure"));
    let token = session_cookie(&resp).unwrap();
    // Used past half of its 2 s life, the cookie is replaced by a fresh one.
    let fresh = berth_tests::wait_until(std::time::Duration::from_secs(10), || async {
        let resp = cookie_get(&app, &token, "/v1/brokers")
            .send()
            .await
            .unwrap();
        resp.status() == 200 && session_cookie(&resp).is_some_and(|t| t != token)
    })
    .await;
    assert!(fresh.is_some(), "no refreshed cookie");
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_get_the_same_answer() {
    let app = app_with_admin().await;
    let wrong = app
        .console_login_response(None, "admin", "not-the-Passw0rd")
        .await;
    assert!(session_cookie(&wrong).is_none());
    let wrong = expect_error(wrong, 401, "UnauthorizedException").await;
    let unknown = app
        .console_login_response(None, "nobody", "not-the-Passw0rd")
        .await;
    let unknown = expect_error(unknown, 401, "UnauthorizedException").await;
    assert_eq!(wrong, unknown);
    assert_eq!(wrong["message"], "Incorrect username or password.");
    // In another account the admin does not exist either.
    let elsewhere = app
        .console_login_response(Some(OTHER), "admin", ADMIN_PASSWORD)
        .await;
    assert_eq!(
        expect_error(elsewhere, 401, "UnauthorizedException").await,
        wrong
    );
    app.stop().await;
}

#[tokio::test]
async fn failed_logins_are_limited_even_for_the_right_password() {
    let app = app_with_admin().await;
    for _ in 0..5 {
        let resp = app
            .console_login_response(None, "admin", "guess-Passw0rd-x")
            .await;
        expect_error(resp, 401, "UnauthorizedException").await;
    }
    let resp = app
        .console_login_response(None, "admin", ADMIN_PASSWORD)
        .await;
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&retry), "{retry}");
    assert!(session_cookie(&resp).is_none());
    expect_error(resp, 429, "TooManyRequestsException").await;
    // The source address is limited too: another name from here is refused as well.
    let resp = app
        .console_login_response(None, "someone-else", "guess-Passw0rd-x")
        .await;
    expect_error(resp, 429, "TooManyRequestsException").await;
    app.stop().await;
}

/// A token's claims, decoded without verification.
fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn forged_expired_unsigned_and_revoked_cookies_are_refused() {
    let app = app_with_admin().await;
    let session = app.console_login(None, "admin", ADMIN_PASSWORD).await;
    let ok = cookie_get(&app, &session.token, "/v1/brokers")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);

    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts: Vec<String> = session.token.split('.').map(str::to_owned).collect();
    // A forged signature.
    let sig = b64.decode(&parts[2]).unwrap();
    let mut forged_sig = sig.clone();
    forged_sig[0] ^= 1;
    let forged = format!("{}.{}.{}", parts[0], parts[1], b64.encode(&forged_sig));
    // Claims changed under the old signature.
    let mut claims = claims_of(&session.token);
    claims["role"] = json!("superuser");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64.encode(serde_json::to_vec(&claims).unwrap()),
        parts[2]
    );
    // alg: none, no signature.
    let unsigned = format!(
        "{}.{}.",
        b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        parts[1]
    );
    // Signed with the right key, but expired.
    let mut old = claims_of(&session.token);
    let now = chrono::Utc::now().timestamp();
    old["iat"] = json!(now - 1000);
    old["exp"] = json!(now - 100);
    let expired = app.application().session_keys().sign(&old).unwrap();
    // Right key, unknown session.
    let mut ghost = claims_of(&session.token);
    ghost["sid"] = json!(uuid::Uuid::new_v4().to_string());
    let ghost = app.application().session_keys().sign(&ghost).unwrap();
    parts.clear();
    for (what, token) in [
        ("forged signature", forged),
        ("tampered claims", tampered),
        ("alg none", unsigned),
        ("expired", expired),
        ("unknown session", ghost),
        ("garbage", "not-a-jwt".to_owned()),
    ] {
        let resp = cookie_get(&app, &token, "/v1/brokers")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{what}");
        expect_error(resp, 401, "UnauthorizedException").await;
    }

    // Logout needs the CSRF token, then revokes: the same cookie replayed fails.
    let resp = session
        .request(&app.http, Method::POST, &url(&app, "/auth/logout"), false)
        .send()
        .await
        .unwrap();
    expect_error(resp, 403, "ForbiddenException").await;
    let resp = session
        .request(&app.http, Method::POST, &url(&app, "/auth/logout"), true)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert!(resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    for path in ["/v1/brokers", "/auth/session"] {
        let resp = cookie_get(&app, &session.token, path).send().await.unwrap();
        expect_error(resp, 401, "UnauthorizedException").await;
    }
    app.stop().await;
}

#[tokio::test]
async fn cookie_writes_need_the_csrf_token() {
    let app = app_with_admin().await;
    let session = app.console_login(None, "admin", ADMIN_PASSWORD).await;
    let brokers = url(&app, "/v1/brokers");
    let body = rabbitmq_broker("csrf", "admin-user", "s3cret-Passw0rd-x");
    let resp = session
        .request(&app.http, Method::POST, &brokers, false)
        .json(&body)
        .send()
        .await
        .unwrap();
    let v = expect_error(resp, 403, "ForbiddenException").await;
    assert!(v["message"].as_str().unwrap().contains("CSRF"), "{v}");
    let resp = session
        .request(&app.http, Method::POST, &brokers, false)
        .header("x-csrf-token", "not-the-token")
        .json(&body)
        .send()
        .await
        .unwrap();
    expect_error(resp, 403, "ForbiddenException").await;
    // Nothing was created.
    let list: Value = app.get("/v1/brokers").await.json().await.unwrap();
    assert!(list["brokerSummaries"].as_array().unwrap().is_empty());

    let resp = session
        .send(&app.http, Method::POST, &brokers, Some(&body))
        .await;
    assert_eq!(resp.status(), 200);
    // SigV4 requests need no CSRF token.
    let id = app
        .create_broker(&rabbitmq_broker(
            "signed",
            "admin-user",
            "s3cret-Passw0rd-x",
        ))
        .await;
    assert!(id.starts_with("b-"));
    // An HTML form carries it as `_csrf`.
    let resp = session
        .request(&app.http, Method::POST, &url(&app, "/auth/logout"), false)
        .form(&[("_csrf", session.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    app.stop().await;
}

/// Every write a role must not do, as (operation, method, path, body).
fn writes(broker: &str) -> Vec<(&'static str, Method, String, Value)> {
    vec![
        (
            "CreateBroker",
            Method::POST,
            "/v1/brokers".into(),
            rabbitmq_broker("viewer-made", "admin-user", "s3cret-Passw0rd-x"),
        ),
        (
            "CreateUser",
            Method::POST,
            format!("/v1/brokers/{broker}/users/another"),
            json!({"password": "an0ther-Passw0rd"}),
        ),
        (
            "RebootBroker",
            Method::POST,
            format!("/v1/brokers/{broker}/reboot"),
            json!({}),
        ),
        (
            "CreateConfiguration",
            Method::POST,
            "/v1/configurations".into(),
            json!({"name": "conf", "engineType": "RABBITMQ", "engineVersion": "4.0"}),
        ),
        (
            "DeleteBroker",
            Method::DELETE,
            format!("/v1/brokers/{broker}"),
            json!({}),
        ),
        (
            "CreateAccessKey",
            Method::POST,
            "/v1/berth/access-keys".into(),
            json!({}),
        ),
    ]
}

#[tokio::test]
async fn a_viewer_reads_but_every_write_is_denied() {
    let app = fake_app().await;
    let broker = app
        .create_broker(&rabbitmq_broker("seen", "admin-user", "s3cret-Passw0rd-x"))
        .await;
    let session = app
        .console_user_session(ACCOUNT, "watcher", Role::Viewer)
        .await;
    let key = app.signer_with_role(ACCOUNT, Role::Viewer).await;
    for path in ["/v1/brokers".to_owned(), format!("/v1/brokers/{broker}")] {
        let resp = session
            .send(&app.http, Method::GET, &url(&app, &path), None)
            .await;
        assert_eq!(resp.status(), 200, "{path}");
        let resp = key
            .send(&app.http, Method::GET, &url(&app, &path), None)
            .await;
        assert_eq!(resp.status(), 200, "{path}");
    }
    for (op, method, path, body) in writes(&broker) {
        let resp = session
            .send(&app.http, method.clone(), &url(&app, &path), Some(&body))
            .await;
        let v = expect_error(resp, 403, "AccessDeniedException").await;
        assert!(
            v["message"].as_str().unwrap().contains("viewer"),
            "{op}: {v}"
        );
        let resp = key
            .send(&app.http, method, &url(&app, &path), Some(&body))
            .await;
        expect_error(resp, 403, "AccessDeniedException").await;
    }
    for path in [
        "/v1/berth/audit-events",
        "/v1/berth/access-keys",
        "/v1/berth/console-users",
    ] {
        let resp = session
            .send(&app.http, Method::GET, &url(&app, path), None)
            .await;
        expect_error(resp, 403, "AccessDeniedException").await;
    }
    // Nothing changed.
    let (status, described) = app.describe(&broker).await;
    assert_eq!(status, 200);
    assert_ne!(described["brokerState"], "DELETION_IN_PROGRESS");
    assert_ne!(described["brokerState"], "REBOOT_IN_PROGRESS");
    let users: Value = app
        .get(&format!("/v1/brokers/{broker}/users"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(users["users"].as_array().unwrap().len(), 1, "{users}");
    let list: Value = app.get("/v1/brokers").await.json().await.unwrap();
    assert_eq!(list["brokerSummaries"].as_array().unwrap().len(), 1);
    let confs: Value = app.get("/v1/configurations").await.json().await.unwrap();
    assert!(
        confs["configurations"].as_array().unwrap().is_empty(),
        "{confs}"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_operator_runs_brokers_but_not_identities() {
    let app = fake_app().await;
    let session = app
        .console_user_session(ACCOUNT, "ops", Role::Operator)
        .await;
    let resp = session
        .send(
            &app.http,
            Method::POST,
            &url(&app, "/v1/brokers"),
            Some(&rabbitmq_broker(
                "ops-made",
                "admin-user",
                "s3cret-Passw0rd-x",
            )),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let v = expect_error(
        session
            .send(
                &app.http,
                Method::POST,
                &url(&app, "/v1/berth/access-keys"),
                Some(&json!({})),
            )
            .await,
        403,
        "AccessDeniedException",
    )
    .await;
    assert!(v["message"].as_str().unwrap().contains("operator"), "{v}");
    expect_error(
        session
            .send(
                &app.http,
                Method::POST,
                &url(&app, "/v1/berth/console-users"),
                Some(&json!({"username": "x", "password": "a-long-Passw0rd", "role": "admin"})),
            )
            .await,
        403,
        "AccessDeniedException",
    )
    .await;
    // Operators read the audit log.
    let resp = session
        .send(
            &app.http,
            Method::GET,
            &url(&app, "/v1/berth/audit-events"),
            None,
        )
        .await;
    assert_eq!(resp.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn an_access_key_shows_its_secret_once_and_deactivates_at_once() {
    let app = fake_app().await;
    let resp = app
        .post_json(
            "/v1/berth/access-keys",
            &json!({"description": "ci", "role": "operator"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let created: Value = resp.json().await.unwrap();
    let id = created["accessKeyId"].as_str().unwrap().to_owned();
    let secret = created["secretAccessKey"].as_str().unwrap().to_owned();
    assert_eq!(created["role"], "operator");
    assert_eq!(created["active"], true);
    let signer = Signer {
        access_key_id: id.clone(),
        secret_access_key: secret.clone(),
        region: app.settings.region.clone(),
    };
    let brokers = url(&app, "/v1/brokers");
    assert_eq!(
        signer
            .send(&app.http, Method::GET, &brokers, None)
            .await
            .status(),
        200
    );

    let listed = app.get("/v1/berth/access-keys").await.text().await.unwrap();
    assert!(!listed.contains(&secret), "{listed}");
    assert!(!listed.contains("secretAccessKey"), "{listed}");
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let mine = listed["accessKeys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["accessKeyId"] == id.as_str())
        .expect("the new key is listed")
        .clone();
    assert_eq!(mine["description"], "ci");
    assert_eq!(mine["role"], "operator");
    assert!(mine["lastUsed"].as_str().is_some(), "{mine}");

    let resp = app
        .post_json(
            &format!("/v1/berth/access-keys/{id}/deactivate"),
            &json!({}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["active"], false);
    expect_error(
        signer.send(&app.http, Method::GET, &brokers, None).await,
        403,
        "UnrecognizedClientException",
    )
    .await;
    let resp = app
        .post_json(&format!("/v1/berth/access-keys/{id}/activate"), &json!({}))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        signer
            .send(&app.http, Method::GET, &brokers, None)
            .await
            .status(),
        200
    );

    assert_eq!(
        app.delete(&format!("/v1/berth/access-keys/{id}"))
            .await
            .status(),
        200
    );
    expect_error(
        signer.send(&app.http, Method::GET, &brokers, None).await,
        403,
        "UnrecognizedClientException",
    )
    .await;
    expect_error(
        app.delete(&format!("/v1/berth/access-keys/{id}")).await,
        404,
        "NotFoundException",
    )
    .await;
    // Bad input is a 400 on the field.
    let v = expect_error(
        app.post_json("/v1/berth/access-keys", &json!({"role": "root"}))
            .await,
        400,
        "BadRequestException",
    )
    .await;
    assert_eq!(v["errorAttribute"], "role");
    app.stop().await;
}

#[tokio::test]
async fn console_users_are_managed_by_api_and_the_last_admin_stays() {
    let app = app_with_admin().await;
    let admin = app.console_login(None, "admin", ADMIN_PASSWORD).await;
    let users = url(&app, "/v1/berth/console-users");
    let weak = admin
        .send(
            &app.http,
            Method::POST,
            &users,
            Some(&json!({"username": "bob", "password": "short", "role": "viewer"})),
        )
        .await;
    assert_eq!(
        expect_error(weak, 400, "BadRequestException").await["errorAttribute"],
        "password"
    );
    let bad_role = admin
        .send(
            &app.http,
            Method::POST,
            &users,
            Some(&json!({"username": "bob", "password": "bobs-long-Passw0rd", "role": "root"})),
        )
        .await;
    assert_eq!(
        expect_error(bad_role, 400, "BadRequestException").await["errorAttribute"],
        "role"
    );
    let bob = json!({"username": "bob", "password": "bobs-long-Passw0rd", "role": "viewer"});
    let resp = admin
        .send(&app.http, Method::POST, &users, Some(&bob))
        .await;
    assert_eq!(resp.status(), 200);
    let created = resp.text().await.unwrap();
    assert!(
        !created.contains("bobs-long-Passw0rd") && !created.contains("argon2"),
        "{created}"
    );
    let dup = admin
        .send(&app.http, Method::POST, &users, Some(&bob))
        .await;
    expect_error(dup, 409, "ConflictException").await;

    let listed: Value = admin
        .send(&app.http, Method::GET, &users, None)
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = listed["consoleUsers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "bob"]);

    // Bob signs in; a new role applies to his session at once; a new password ends it.
    let bob_session = app.console_login(None, "bob", "bobs-long-Passw0rd").await;
    let bob_url = url(&app, "/v1/berth/console-users/bob");
    let resp = admin
        .send(
            &app.http,
            Method::PUT,
            &bob_url,
            Some(&json!({"role": "operator"})),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let who: Value = cookie_get(&app, &bob_session.token, "/auth/session")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(who["role"], "operator");
    let resp = admin
        .send(
            &app.http,
            Method::PUT,
            &bob_url,
            Some(&json!({"password": "bobs-newer-Passw0rd"})),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let resp = cookie_get(&app, &bob_session.token, "/v1/brokers")
        .send()
        .await
        .unwrap();
    expect_error(resp, 401, "UnauthorizedException").await;
    app.console_login(None, "bob", "bobs-newer-Passw0rd").await;

    // The last admin can be neither deleted nor demoted.
    let admin_url = url(&app, "/v1/berth/console-users/admin");
    expect_error(
        admin
            .send(&app.http, Method::DELETE, &admin_url, None)
            .await,
        409,
        "ConflictException",
    )
    .await;
    expect_error(
        admin
            .send(
                &app.http,
                Method::PUT,
                &admin_url,
                Some(&json!({"role": "viewer"})),
            )
            .await,
        409,
        "ConflictException",
    )
    .await;
    // Once bob is an admin too, the first one can go.
    let resp = admin
        .send(
            &app.http,
            Method::PUT,
            &bob_url,
            Some(&json!({"role": "admin"})),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        admin
            .send(&app.http, Method::DELETE, &admin_url, None)
            .await
            .status(),
        200
    );
    // Its session went with it.
    let resp = cookie_get(&app, &admin.token, "/v1/brokers")
        .send()
        .await
        .unwrap();
    expect_error(resp, 401, "UnauthorizedException").await;
    expect_error(
        app.delete("/v1/berth/console-users/admin").await,
        404,
        "NotFoundException",
    )
    .await;
    app.stop().await;
}

async fn audit_events(app: &TestApp, query: &str) -> Value {
    let resp = app.get(&format!("/v1/berth/audit-events{query}")).await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn the_audit_log_records_every_change_with_who_and_where_never_a_secret() {
    let app = app_with_admin().await;
    // A change signed with the access key, one made with the console cookie.
    let signed = app
        .create_broker(&rabbitmq_broker(
            "by-key",
            "admin-user",
            "s3cret-Passw0rd-x",
        ))
        .await;
    let _ = app
        .console_login_response(None, "admin", "a-wrong-Passw0rd")
        .await;
    let session = app.console_login(None, "admin", ADMIN_PASSWORD).await;
    let resp = session
        .send(
            &app.http,
            Method::POST,
            &url(&app, "/v1/brokers"),
            Some(&rabbitmq_broker(
                "by-cookie",
                "admin-user",
                "c00kie-Passw0rd-x",
            )),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let by_cookie: Value = resp.json().await.unwrap();
    let by_cookie = by_cookie["brokerId"].as_str().unwrap().to_owned();
    let resp = session
        .send(
            &app.http,
            Method::POST,
            &url(&app, "/v1/berth/console-users"),
            Some(&json!({"username": "carol", "password": "carols-secret-Passw0rd", "role": "viewer"})),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let resp = session
        .send(
            &app.http,
            Method::PUT,
            &url(&app, &format!("/v1/brokers/{signed}/users/admin-user")),
            Some(&json!({"password": "upd4ted-Passw0rd-x"})),
        )
        .await;
    let update_status = resp.status().as_u16();
    // A denied write is recorded too.
    let viewer = app.signer_with_role(ACCOUNT, Role::Viewer).await;
    let resp = viewer
        .send(
            &app.http,
            Method::DELETE,
            &url(&app, &format!("/v1/brokers/{signed}")),
            None,
        )
        .await;
    assert_eq!(resp.status(), 403);
    // Reads are not recorded.
    app.get("/v1/brokers").await;

    let all = audit_events(&app, "?maxResults=100").await;
    let events = all["auditEvents"].as_array().unwrap().clone();
    let find = |op: &str, pred: &dyn Fn(&Value) -> bool| {
        events
            .iter()
            .find(|e| e["operation"] == op && pred(e))
            .unwrap_or_else(|| panic!("no {op} in {events:#?}"))
            .clone()
    };
    let e = find("CreateBroker", &|e| e["resourceId"] == signed.as_str());
    assert_eq!(e["principalType"], "access_key");
    assert_eq!(e["principalId"], app.signer.access_key_id.as_str());
    assert_eq!(e["sourceAddress"], "127.0.0.1");
    assert_eq!(e["status"], 200);
    assert_eq!(e["resourceType"], "Broker");
    assert_eq!(e["accountId"], ACCOUNT);
    let e = find("CreateBroker", &|e| e["resourceId"] == by_cookie.as_str());
    assert_eq!(e["principalType"], "console_user");
    assert_eq!(e["principalName"], "admin");
    assert_eq!(e["sourceAddress"], "127.0.0.1");
    let e = find("CreateConsoleUser", &|_| true);
    assert_eq!(e["resourceId"], "carol");
    let e = find("UpdateUser", &|_| true);
    assert_eq!(e["resourceId"], format!("{signed}/admin-user"));
    assert_eq!(e["status"], update_status);
    let e = find("DeleteBroker", &|_| true);
    assert_eq!(e["status"], 403);
    assert_eq!(e["errorCode"], "AccessDeniedException");
    assert_eq!(e["principalId"], viewer.access_key_id.as_str());
    let e = find("Login", &|e| e["status"] == 401);
    assert_eq!(e["errorCode"], "UnauthorizedException");
    assert_eq!(e["principalName"], "admin");
    find("Login", &|e| e["status"] == 200);
    assert!(!events.iter().any(|e| e["operation"] == "ListBrokers"));

    // Newest first; the filters work.
    let ids: Vec<i64> = events
        .iter()
        .map(|e| e["eventId"].as_i64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
    let for_broker = audit_events(&app, &format!("?resourceId={signed}")).await;
    let ops: Vec<&str> = for_broker["auditEvents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["operation"].as_str().unwrap())
        .collect();
    assert_eq!(ops, ["DeleteBroker", "UpdateUser", "CreateBroker"]);
    let by_admin = audit_events(&app, "?principal=admin").await;
    assert!(by_admin["auditEvents"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["principalName"] == "admin"));

    // Paging walks every event once.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let q = match &token {
            Some(t) => format!("?maxResults=2&nextToken={t}"),
            None => "?maxResults=2".into(),
        };
        let page = audit_events(&app, &q).await;
        let page_events = page["auditEvents"].as_array().unwrap();
        assert!(page_events.len() <= 2);
        seen.extend(page_events.iter().map(|e| e["eventId"].as_i64().unwrap()));
        match page["nextToken"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let bad = app.get("/v1/berth/audit-events?nextToken=!!").await;
    assert_eq!(
        expect_error(bad, 400, "BadRequestException").await["errorAttribute"],
        "nextToken"
    );

    // No password or secret anywhere: not in the API, not in the table.
    let text = app
        .get("/v1/berth/audit-events?maxResults=100")
        .await
        .text()
        .await
        .unwrap();
    let pool = sqlx::PgPool::connect(app.settings.database_url.as_deref().unwrap())
        .await
        .unwrap();
    let table: Vec<String> = sqlx::query_scalar("SELECT row_to_json(a)::text FROM audit_events a")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    let table = table.join("\n");
    for secret in [
        ADMIN_PASSWORD,
        "a-wrong-Passw0rd",
        "carols-secret-Passw0rd",
        "s3cret-Passw0rd-x",
        "c00kie-Passw0rd-x",
        "upd4ted-Passw0rd-x",
        app.signer.secret_access_key.as_str(),
        session.token.as_str(),
        session.csrf.as_str(),
    ] {
        assert!(!text.contains(secret), "{secret} in the audit API");
        assert!(!table.contains(secret), "{secret} in the audit table");
    }
    app.stop().await;
}

#[tokio::test]
async fn accounts_see_only_their_own_keys_users_and_events() {
    let app = app_with_admin().await;
    let broker = app
        .create_broker(&rabbitmq_broker(
            "a-only",
            "admin-user",
            "s3cret-Passw0rd-x",
        ))
        .await;
    let other: ConsoleSession = app
        .console_user_session(OTHER, "b-admin", Role::Admin)
        .await;
    let other_key = app.signer_with_role(OTHER, Role::Admin).await;
    let get = |path: &str| {
        let u = url(&app, path);
        let other = other.clone();
        let http = app.http.clone();
        async move {
            other
                .send(&http, Method::GET, &u, None)
                .await
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let brokers = get("/v1/brokers").await;
    assert!(brokers["brokerSummaries"].as_array().unwrap().is_empty());
    let keys = get("/v1/berth/access-keys").await;
    let key_ids: Vec<&str> = keys["accessKeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["accessKeyId"].as_str().unwrap())
        .collect();
    assert_eq!(key_ids, [other_key.access_key_id.as_str()]);
    let users = get("/v1/berth/console-users").await;
    let names: Vec<&str> = users["consoleUsers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["b-admin"]);
    let events = get("/v1/berth/audit-events").await;
    assert!(
        events["auditEvents"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["accountId"] == OTHER),
        "{events}"
    );
    assert!(!events.to_string().contains(&broker));
    // Account A's key and user are out of reach.
    let a_key = &app.signer.access_key_id;
    let resp = other
        .send(
            &app.http,
            Method::POST,
            &url(&app, &format!("/v1/berth/access-keys/{a_key}/deactivate")),
            None,
        )
        .await;
    expect_error(resp, 404, "NotFoundException").await;
    let resp = other
        .send(
            &app.http,
            Method::DELETE,
            &url(&app, "/v1/berth/console-users/admin"),
            None,
        )
        .await;
    expect_error(resp, 404, "NotFoundException").await;
    let resp = other
        .send(
            &app.http,
            Method::GET,
            &url(&app, &format!("/v1/brokers/{broker}")),
            None,
        )
        .await;
    assert_eq!(resp.status(), 404);
    // A's key still works.
    assert_eq!(app.get("/v1/brokers").await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn the_first_start_creates_the_console_admin_with_a_private_password_file() {
    let app = fake_app().await;
    let path = app
        .application()
        .bootstrap_console_user(&app.settings)
        .await
        .unwrap()
        .expect("first start writes the password");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let password = std::fs::read_to_string(&path).unwrap().trim().to_owned();
    assert!(password.len() >= 12);
    let session = app.console_login(None, "admin", &password).await;
    let who: Value = cookie_get(&app, &session.token, "/auth/session")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(who["role"], "admin");
    // Later starts leave it alone.
    assert!(app
        .application()
        .bootstrap_console_user(&app.settings)
        .await
        .unwrap()
        .is_none());
    app.stop().await;
}

/// The server caches access keys for signing; a change made outside it (the `berth`
/// CLI, another process, a manual UPDATE) reaches it through the database's change
/// notifications: the key is refused within a moment, and accepted again likewise.
#[tokio::test]
async fn an_access_key_changed_outside_the_server_is_refused_at_once() {
    let app = fake_app().await;
    let created: Value = app
        .post_json("/v1/berth/access-keys", &json!({"description": "cli"}))
        .await
        .json()
        .await
        .unwrap();
    let id = created["accessKeyId"].as_str().unwrap().to_owned();
    let signer = Signer {
        access_key_id: id.clone(),
        secret_access_key: created["secretAccessKey"].as_str().unwrap().to_owned(),
        region: app.settings.region.clone(),
    };
    let brokers = url(&app, "/v1/brokers");
    let status = |signer: Signer, app_http: reqwest::Client, brokers: String| async move {
        signer
            .send(&app_http, Method::GET, &brokers, None)
            .await
            .status()
            .as_u16()
    };
    // Used twice: the second answer may come from the cache.
    for _ in 0..2 {
        assert_eq!(
            status(signer.clone(), app.http.clone(), brokers.clone()).await,
            200
        );
    }
    let db = sqlx::PgPool::connect(app.settings.database_url.as_deref().unwrap())
        .await
        .unwrap();
    for (active, want) in [(false, 403), (true, 200)] {
        sqlx::query("UPDATE access_keys SET active = $1 WHERE access_key_id = $2")
            .bind(active)
            .bind(&id)
            .execute(&db)
            .await
            .unwrap();
        // Well below the cache's 60 s expiry: only the notification explains it.
        let seen = berth_tests::wait_until(std::time::Duration::from_secs(5), || {
            let (s, h, b) = (signer.clone(), app.http.clone(), brokers.clone());
            async move { status(s, h, b).await == want }
        })
        .await;
        assert!(seen.is_some(), "active = {active} never took effect");
    }
}
