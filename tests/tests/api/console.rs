//! The web console in a real headless Chromium (fantoccini over chromedriver): login,
//! the broker list and page, the create wizard, roles, cookies, escaping, CSRF and
//! accessibility (axe-core). Pages that need no real broker run on the fake runtime; one
//! test drives a real RabbitMQ broker through its whole life from the console.

use std::sync::Arc;
use std::time::Duration;

use fantoccini::{Client, Locator};
use serde_json::{json, Value};

use berth::app::Role;
use berth_tests::browser::Browser;
use berth_tests::{rabbitmq_broker, spawn_app, spawn_app_on, wait_until, TestApp, RABBITMQ_IMAGE};

const ACCOUNT: &str = "000000000000";
const PASSWORD: &str = "console-Passw0rd-long";

async fn fake_app() -> TestApp {
    let runtime = Arc::new(berth::runtime::fake::FakeRuntime::with_images(&[
        RABBITMQ_IMAGE,
    ]));
    spawn_app_on(runtime, Arc::new(crate::reconciler::ReadyAgent), |_| {}).await
}

pub(crate) fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub(crate) async fn css(c: &Client, sel: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(sel))
        .await
        .unwrap_or_else(|e| panic!("no element {sel}: {e}"))
}

async fn text(c: &Client, sel: &str) -> String {
    css(c, sel).await.text().await.unwrap()
}

/// Clicks `sel` and waits until the next page has loaded.
pub(crate) async fn submit(c: &Client, sel: &str) {
    c.execute("window.__berthOld = true;", vec![])
        .await
        .unwrap();
    css(c, sel).await.click().await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let old = c
            .execute(
                "return window.__berthOld === true || document.readyState !== 'complete';",
                vec![],
            )
            .await
            .unwrap_or(Value::Bool(true));
        if old == Value::Bool(false) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{sel} led nowhere");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn path(c: &Client) -> String {
    c.current_url().await.unwrap().path().to_owned()
}

/// Signs in through the login form.
pub(crate) async fn login(b: &Browser, app: &TestApp, user: &str, password: &str) {
    let c = &b.client;
    c.goto(&format!("{}/console/login", app.address))
        .await
        .unwrap();
    css(c, "#username").await.send_keys(user).await.unwrap();
    css(c, "#password").await.send_keys(password).await.unwrap();
    submit(c, "#sign-in").await;
}

async fn assert_accessible(b: &Browser, page: &str) {
    let v = b.axe_violations().await;
    assert!(v.is_empty(), "axe-core on {page}: {v:#?}");
}

/// Waits until `cond` holds on the broker page, reloading it between checks.
async fn wait_on_page<F, Fut>(c: &Client, timeout: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + timeout;
    while !cond().await {
        assert!(
            std::time::Instant::now() < deadline,
            "condition not met in {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let _ = c.refresh().await;
    }
}

async fn broker_state(c: &Client) -> String {
    match c.find(Locator::Css("#broker-state")).await {
        Ok(e) => e
            .attr("data-state")
            .await
            .ok()
            .flatten()
            .unwrap_or_default(),
        Err(_) => String::new(),
    }
}

#[tokio::test]
async fn login_list_broker_page_and_wizard_render_and_are_accessible() {
    let app = fake_app().await;
    app.create_console_user(ACCOUNT, "alice", PASSWORD, Role::Admin)
        .await;
    let id = app
        .create_broker(&rabbitmq_broker(
            "console-list",
            "app-user",
            "s3cret-Passw0rd-x",
        ))
        .await;
    app.wait_for_state(&id, "RUNNING", Duration::from_secs(30))
        .await;
    let b = Browser::start().await;
    let c = &b.client;

    // `/` leads to the login page; a wrong password is refused on the form.
    c.goto(&format!("{}/", app.address)).await.unwrap();
    assert_eq!(path(c).await, "/console/login");
    assert_accessible(&b, "login").await;
    b.screenshot("login").await;
    login(&b, &app, "alice", "wrong-password-here").await;
    assert_eq!(
        text(c, "#login-error").await,
        "Incorrect username or password."
    );
    assert_eq!(path(c).await, "/console/login");
    login(&b, &app, "nobody", "wrong-password-here").await;
    assert_eq!(
        text(c, "#login-error").await,
        "Incorrect username or password."
    );

    // The right one lands on the broker list.
    login(&b, &app, "alice", PASSWORD).await;
    assert_eq!(path(c).await, "/console/brokers");
    let row = text(c, &format!("tr[data-broker-id='{id}']")).await;
    for part in [
        "console-list",
        "RUNNING",
        "RABBITMQ 4.0",
        "SINGLE_INSTANCE",
        "mq.m7g.medium",
    ] {
        assert!(row.contains(part), "{row}");
    }
    assert_accessible(&b, "broker list").await;
    b.screenshot("brokers").await;

    // The broker page: endpoints, snippets with the user name, the coming tab.
    submit(c, &format!("a[href='/console/brokers/{id}']")).await;
    assert_eq!(text(c, "#broker-name").await, "console-list");
    let amqp = text(c, "#endpoint-amqp-0").await;
    assert!(amqp.starts_with("amqp://"), "{amqp}");
    let snippet = css(c, "#snippet-0")
        .await
        .prop("textContent")
        .await
        .unwrap()
        .unwrap();
    assert!(snippet.contains("app-user"), "{snippet}");
    assert!(!snippet.contains("s3cret-Passw0rd-x"), "{snippet}");
    // The fake agent lists no destinations: the tab says why instead of a table.
    assert!(!text(c, "#destinations-note").await.is_empty());
    assert_accessible(&b, "broker page").await;
    b.screenshot("broker").await;

    // The wizard: a bad name comes back at its field with the typed values kept.
    c.goto(&format!("{}/console/brokers/new", app.address))
        .await
        .unwrap();
    assert_accessible(&b, "wizard").await;
    b.screenshot("wizard").await;
    css(c, "#brokerName")
        .await
        .send_keys("bad name!")
        .await
        .unwrap();
    css(c, "#username")
        .await
        .send_keys("first-user")
        .await
        .unwrap();
    css(c, "#password")
        .await
        .send_keys("s3cret-Passw0rd-x")
        .await
        .unwrap();
    submit(c, "#create").await;
    let err = text(c, "#error-brokerName").await;
    assert!(!err.is_empty());
    let name = css(c, "#brokerName").await.prop("value").await.unwrap();
    assert_eq!(name.as_deref(), Some("bad name!"));
    let user = css(c, "#username").await.prop("value").await.unwrap();
    assert_eq!(user.as_deref(), Some("first-user"));
    let pw = css(c, "#password").await.prop("value").await.unwrap();
    assert_eq!(pw.as_deref(), Some(""));
    b.screenshot("wizard-error").await;

    // A good one creates the broker and shows its page.
    css(c, "#brokerName").await.clear().await.unwrap();
    css(c, "#brokerName")
        .await
        .send_keys("from-wizard")
        .await
        .unwrap();
    css(c, "#hostInstanceType")
        .await
        .select_by_value("mq.m7g.medium")
        .await
        .unwrap();
    css(c, "#password")
        .await
        .send_keys("s3cret-Passw0rd-x")
        .await
        .unwrap();
    submit(c, "#create").await;
    assert_eq!(text(c, "#broker-name").await, "from-wizard");
    wait_on_page(c, Duration::from_secs(30), || async {
        broker_state(c).await == "RUNNING"
    })
    .await;

    // The identity pages.
    for (page, shot) in [
        ("/console/access-keys", "access-keys"),
        ("/console/console-users", "console-users"),
        ("/console/audit", "audit"),
    ] {
        c.goto(&format!("{}{page}", app.address)).await.unwrap();
        css(c, "h1").await;
        assert_accessible(&b, page).await;
        b.screenshot(shot).await;
    }
    // An access key's secret is shown once.
    c.goto(&format!("{}/console/access-keys", app.address))
        .await
        .unwrap();
    css(c, "#key-description")
        .await
        .send_keys("ci")
        .await
        .unwrap();
    submit(c, "#create-key").await;
    let secret = text(c, "#new-key-secret").await;
    assert!(secret.len() >= 30, "{secret}");
    // The list never shows it again.
    c.goto(&format!("{}/console/access-keys", app.address))
        .await
        .unwrap();
    css(c, "#key-list").await;
    assert!(c.find(Locator::Css("#new-key-secret")).await.is_err());

    // Logout ends the session.
    submit(c, "#logout").await;
    assert_eq!(path(c).await, "/console/login");
    c.goto(&format!("{}/console/brokers", app.address))
        .await
        .unwrap();
    assert_eq!(path(c).await, "/console/login");
}

#[tokio::test]
async fn a_viewer_sees_pages_but_every_change_is_refused() {
    let app = fake_app().await;
    let id = app
        .create_broker(&rabbitmq_broker(
            "viewer-sees",
            "app-user",
            "s3cret-Passw0rd-x",
        ))
        .await;
    app.wait_for_state(&id, "RUNNING", Duration::from_secs(30))
        .await;
    app.create_console_user(ACCOUNT, "victor", PASSWORD, Role::Viewer)
        .await;
    let b = Browser::start().await;
    let c = &b.client;
    login(&b, &app, "victor", PASSWORD).await;
    assert_eq!(path(c).await, "/console/brokers");
    assert!(c.find(Locator::Css("#create-broker")).await.is_err());
    c.goto(&format!("{}/console/brokers/{id}", app.address))
        .await
        .unwrap();
    submit(c, "#reboot").await;
    let refused = css(c, "#error-message").await;
    assert_eq!(
        refused.attr("data-status").await.unwrap().as_deref(),
        Some("403")
    );
    assert!(refused.text().await.unwrap().contains("viewer"));
    c.goto(&format!("{}/console/brokers/{id}", app.address))
        .await
        .unwrap();
    css(c, "#delete-confirm")
        .await
        .send_keys("viewer-sees")
        .await
        .unwrap();
    submit(c, "#delete").await;
    assert_eq!(
        css(c, "#error-message")
            .await
            .attr("data-status")
            .await
            .unwrap()
            .as_deref(),
        Some("403")
    );
    let (_, v) = app.describe(&id).await;
    assert_eq!(v["brokerState"], "RUNNING");

    // The same through the API with a viewer's cookie.
    let viewer = app.console_login(Some(ACCOUNT), "victor", PASSWORD).await;
    let resp = viewer
        .send(
            &app.http,
            reqwest::Method::POST,
            &format!("{}/v1/brokers/{id}/reboot", app.address),
            None,
        )
        .await;
    assert_eq!(resp.status(), 403);
    // And a forged console form POST with the right CSRF token.
    let resp = no_redirects()
        .post(format!("{}/console/brokers/{id}/delete", app.address))
        .header("cookie", format!("berth_session={}", viewer.token))
        .form(&[("_csrf", viewer.csrf.as_str()), ("confirm", "viewer-sees")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(resp.text().await.unwrap().contains("not authorized"));
    assert_eq!(app.describe(&id).await.1["brokerState"], "RUNNING");
}

#[tokio::test]
async fn forged_ended_and_missing_cookies_go_to_login_and_forms_need_csrf() {
    let app = fake_app().await;
    let id = app
        .create_broker(&rabbitmq_broker(
            "csrf-check",
            "app-user",
            "s3cret-Passw0rd-x",
        ))
        .await;
    let http = no_redirects();
    let get = |cookie: Option<String>, page: &str| {
        let mut req = http.get(format!("{}{page}", app.address));
        if let Some(c) = cookie {
            req = req.header("cookie", format!("berth_session={c}"));
        }
        req.send()
    };
    for cookie in [None, Some("forged.token.value".to_owned())] {
        for page in [
            "/console/brokers",
            &format!("/console/brokers/{id}"),
            "/console/audit",
        ] {
            let resp = get(cookie.clone(), page).await.unwrap();
            assert_eq!(resp.status(), 303, "{page}");
            assert_eq!(resp.headers()["location"], "/console/login");
        }
    }
    // A token signed with another key.
    let other = berth::http::session::SessionKeys::new(&[9; 32], false);
    let now = chrono::Utc::now().timestamp();
    let forged = other
        .sign(&json!({"iss": "berth", "aud": "berth-console", "sub": uuid::Uuid::new_v4().to_string(),
            "acct": ACCOUNT, "role": "admin", "sid": uuid::Uuid::new_v4().to_string(), "iat": now, "exp": now + 600}))
        .unwrap();
    let resp = get(Some(forged), "/console/brokers").await.unwrap();
    assert_eq!(resp.headers()["location"], "/console/login");

    let s = app
        .console_user_session(ACCOUNT, "carol", Role::Operator)
        .await;
    assert_eq!(
        get(Some(s.token.clone()), "/console/brokers")
            .await
            .unwrap()
            .status(),
        200
    );

    // A form POST without `_csrf` (or with a wrong one) is refused, and nothing happens.
    for body in [
        vec![("confirm", "csrf-check")],
        vec![("confirm", "csrf-check"), ("_csrf", "wrong")],
    ] {
        let resp = http
            .post(format!("{}/console/brokers/{id}/delete", app.address))
            .header("cookie", format!("berth_session={}", s.token))
            .form(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403);
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
    }
    assert_ne!(
        app.describe(&id).await.1["brokerState"],
        "DELETION_IN_PROGRESS"
    );
    let resp = http
        .post(format!("{}/console/brokers/new", app.address))
        .header("cookie", format!("berth_session={}", s.token))
        .form(&[("brokerName", "no-csrf")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);

    // After logout the same cookie goes to login.
    let resp = http
        .post(format!("{}/console/logout", app.address))
        .header("cookie", format!("berth_session={}", s.token))
        .form(&[("_csrf", s.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let resp = get(Some(s.token.clone()), "/console/brokers")
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/console/login");
    // Static assets are cached.
    let resp = http
        .get(format!("{}/console/static/console.css", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("max-age"));
}

const INJECTION: &str = "<img src=x onerror=alert(1)>";

#[tokio::test]
async fn typed_values_are_shown_as_text() {
    let app = fake_app().await;
    app.create_console_user(ACCOUNT, "dave", PASSWORD, Role::Admin)
        .await;
    // A configuration whose revision description is markup, on a broker.
    let resp = app
        .post_json(
            "/v1/configurations",
            &json!({"name": "inj", "engineType": "RABBITMQ", "engineVersion": "4.0"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let cfg: Value = resp.json().await.unwrap();
    let cid = cfg["id"].as_str().unwrap().to_owned();
    use base64::Engine as _;
    let data = base64::engine::general_purpose::STANDARD.encode("consumer_timeout = 1800000\n");
    let resp = app
        .put_json(
            &format!("/v1/configurations/{cid}"),
            &json!({"data": data, "description": INJECTION}),
        )
        .await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let mut body = rabbitmq_broker("injection", "app-user", "s3cret-Passw0rd-x");
    body["configuration"] = json!({"id": cid});
    let id = app.create_broker(&body).await;

    let b = Browser::start().await;
    let c = &b.client;
    let no_img = || async {
        let imgs = c.find_all(Locator::Css("img")).await.unwrap();
        assert!(imgs.is_empty(), "an <img> got into the DOM");
    };
    // The login form echoes the user name.
    login(&b, &app, INJECTION, "whatever-password").await;
    assert_eq!(
        css(c, "#username")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some(INJECTION)
    );
    no_img().await;
    login(&b, &app, "dave", PASSWORD).await;

    // The revision description on the broker page.
    c.goto(&format!("{}/console/brokers/{id}", app.address))
        .await
        .unwrap();
    let descriptions = c.find_all(Locator::Css(".rev-description")).await.unwrap();
    let mut texts = Vec::new();
    for d in descriptions {
        texts.push(d.text().await.unwrap());
    }
    assert!(texts.iter().any(|t| t == INJECTION), "{texts:?}");
    no_img().await;

    // A broker user name and a tag key typed on the page come back in error messages.
    css(c, "#users summary").await.click().await.unwrap();
    css(c, "#new-username")
        .await
        .send_keys(INJECTION)
        .await
        .unwrap();
    css(c, "#new-password")
        .await
        .send_keys("s3cret-Passw0rd-x")
        .await
        .unwrap();
    submit(c, "#add-user").await;
    css(c, "#error-message").await;
    no_img().await;
    c.goto(&format!("{}/console/brokers/{id}", app.address))
        .await
        .unwrap();
    css(c, "#tag-key").await.send_keys(INJECTION).await.unwrap();
    submit(c, "#add-tag").await;
    css(c, "#error-message").await;
    no_img().await;

    // The wizard keeps a typed name as a value.
    c.goto(&format!("{}/console/brokers/new", app.address))
        .await
        .unwrap();
    css(c, "#brokerName")
        .await
        .send_keys(INJECTION)
        .await
        .unwrap();
    css(c, "#username").await.send_keys("u-ser").await.unwrap();
    css(c, "#password")
        .await
        .send_keys("s3cret-Passw0rd-x")
        .await
        .unwrap();
    submit(c, "#create").await;
    css(c, "#error-brokerName").await;
    no_img().await;

    // A new revision from the editor, with its description, then the diff.
    c.goto(&format!("{}/console/brokers/{id}", app.address))
        .await
        .unwrap();
    let editor = css(c, "#revision-data").await;
    editor.clear().await.unwrap();
    editor
        .send_keys("consumer_timeout = 900000\nheartbeat = 30\n")
        .await
        .unwrap();
    css(c, "#revision-description")
        .await
        .send_keys(INJECTION)
        .await
        .unwrap();
    submit(c, "#save-revision").await;
    assert!(text(c, "#notice").await.contains("Revision 3 saved"));
    c.goto(&format!("{}/console/brokers/{id}?from=2&to=3", app.address))
        .await
        .unwrap();
    let diff = text(c, "#diff").await;
    assert!(diff.contains("- consumer_timeout = 1800000"), "{diff}");
    assert!(diff.contains("+ heartbeat = 30"), "{diff}");
    no_img().await;
}

/// The whole life of a real RabbitMQ broker from the console.
#[tokio::test]
async fn a_real_broker_from_the_wizard_to_deletion() {
    let app = spawn_app().await;
    berth_tests::require_image(&app.docker).await;
    app.create_console_user(ACCOUNT, "erin", PASSWORD, Role::Operator)
        .await;
    let b = Browser::start().await;
    let c = &b.client;
    login(&b, &app, "erin", PASSWORD).await;
    c.goto(&format!("{}/console/brokers/new", app.address))
        .await
        .unwrap();
    css(c, "#brokerName")
        .await
        .send_keys("console-real")
        .await
        .unwrap();
    css(c, "#engine")
        .await
        .select_by_value("RABBITMQ 4.0")
        .await
        .unwrap();
    css(c, "#deploymentMode")
        .await
        .select_by_value("SINGLE_INSTANCE")
        .await
        .unwrap();
    css(c, "#hostInstanceType")
        .await
        .select_by_value("mq.m7g.medium")
        .await
        .unwrap();
    css(c, "#username")
        .await
        .send_keys("first-user")
        .await
        .unwrap();
    css(c, "#password")
        .await
        .send_keys("s3cret-Passw0rd-x")
        .await
        .unwrap();
    submit(c, "#create").await;
    assert_eq!(text(c, "#broker-name").await, "console-real");
    let id = path(c).await.rsplit('/').next().unwrap().to_owned();
    assert!(id.starts_with("b-"), "{id}");
    // The page polls by itself while the broker is being created.
    let running = wait_until(Duration::from_secs(240), || async {
        broker_state(c).await == "RUNNING"
    })
    .await;
    assert!(running.is_some(), "the page never showed RUNNING");
    b.screenshot("broker-running").await;

    // Add a user on the page; wait until it is applied.
    css(c, "#users summary").await.click().await.unwrap();
    css(c, "#new-username")
        .await
        .send_keys("console-app")
        .await
        .unwrap();
    css(c, "#new-password")
        .await
        .send_keys("console-Passw0rd-x")
        .await
        .unwrap();
    submit(c, "#add-user").await;
    assert!(text(c, "#notice").await.contains("User change recorded"));
    wait_on_page(c, Duration::from_secs(60), || async {
        match c
            .find(Locator::Css("tr[data-user='console-app'] .user-pending"))
            .await
        {
            Ok(e) => e.text().await.unwrap_or_default() == "applied",
            Err(_) => false,
        }
    })
    .await;
    // Connect with the endpoint the page shows.
    let amqp = text(c, "#endpoint-amqp-0").await;
    let conn = crate::amqp::connect(&amqp, "console-app", "console-Passw0rd-x")
        .await
        .expect("AMQP with the console's endpoint and user");
    crate::amqp::publish_persistent(&conn, "from-console", b"hello").await;
    drop(conn);

    // Queues & topics: the queue is listed with its depth (RabbitMQ refreshes its
    // statistics every few seconds), a test message goes in, a peek shows both and
    // leaves them in the queue.
    css(c, "#send-name")
        .await
        .send_keys("from-console")
        .await
        .unwrap();
    css(c, "#send-body").await.clear().await.unwrap();
    css(c, "#send-body")
        .await
        .send_keys("sent-from-page")
        .await
        .unwrap();
    submit(c, "#send-message").await;
    wait_on_page(c, Duration::from_secs(60), || async {
        match c.find(Locator::Css("#destinations-table")).await {
            Ok(t) => t.text().await.unwrap_or_default().contains("from-console"),
            Err(_) => false,
        }
    })
    .await;
    css(c, "#peek-name")
        .await
        .send_keys("from-console")
        .await
        .unwrap();
    css(c, "#peek-count").await.clear().await.unwrap();
    css(c, "#peek-count").await.send_keys("2").await.unwrap();
    submit(c, "#peek-messages").await;
    let peeked = text(c, "#peeked").await;
    assert!(
        peeked.contains("hello") && peeked.contains("sent-from-page"),
        "{peeked}"
    );
    b.screenshot("broker-destinations").await;

    // Reboot from the page.
    submit(c, "#reboot").await;
    wait_until(Duration::from_secs(30), || async {
        broker_state(c).await != "RUNNING"
    })
    .await;
    assert!(
        wait_until(Duration::from_secs(180), || async {
            broker_state(c).await == "RUNNING"
        })
        .await
        .is_some(),
        "not RUNNING after the reboot"
    );

    // Resize: pending until applied with a reboot.
    css(c, "#resize-type")
        .await
        .select_by_value("mq.m7g.large")
        .await
        .unwrap();
    submit(c, "#resize").await;
    assert!(text(c, "#pending")
        .await
        .contains("mq.m7g.medium → mq.m7g.large"));
    submit(c, "#apply-now").await;
    wait_on_page(c, Duration::from_secs(240), || async {
        broker_state(c).await == "RUNNING" && text(c, "#instance-type").await == "mq.m7g.large"
    })
    .await;

    // Delete with the typed confirmation: a wrong name is refused first.
    css(c, "#delete-confirm")
        .await
        .send_keys("not-it")
        .await
        .unwrap();
    submit(c, "#delete").await;
    assert!(text(c, "#error-message").await.contains("console-real"));
    c.goto(&format!("{}/console/brokers/{id}", app.address))
        .await
        .unwrap();
    css(c, "#delete-confirm")
        .await
        .send_keys("console-real")
        .await
        .unwrap();
    submit(c, "#delete").await;
    assert_eq!(path(c).await, "/console/brokers");
    app.wait_until_gone(&id, Duration::from_secs(180)).await;
}
