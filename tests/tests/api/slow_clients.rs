//! Slow or idle clients cannot take the API down: half-sent requests beyond the
//! connection cap do not stop `/healthz` from answering and are closed by the server
//! itself; a trickling body gets a 408 and an idle keep-alive connection is closed; every
//! 4xx (also axum's own rejections) comes in Amazon MQ's error shape.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use berth_tests::{spawn_app_on, wait_until, TestApp, RABBITMQ_IMAGE};

async fn fake_app_with(tweak: impl FnOnce(&mut berth::config::Settings)) -> TestApp {
    let runtime = Arc::new(berth::runtime::fake::FakeRuntime::with_images(&[
        RABBITMQ_IMAGE,
    ]));
    spawn_app_on(runtime, Arc::new(crate::reconciler::ReadyAgent), tweak).await
}

fn host(app: &TestApp) -> String {
    app.address.trim_start_matches("http://").to_owned()
}

/// Connects to the app and sends `bytes`.
async fn send(app: &TestApp, bytes: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(host(app)).await.expect("connect");
    s.write_all(bytes).await.expect("send");
    s
}

/// Whether the server closed `s` (EOF or reset) within `within`; what it sent before.
async fn closed_within(s: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .ok()
    .map(|()| got)
}

struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response with a `content-length` body (what the API sends).
async fn read_response(s: &mut TcpStream, within: Duration) -> RawResponse {
    tokio::time::timeout(within, async {
        let mut data = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = s.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed before a full response: {data:?}");
            data.extend_from_slice(&buf[..n]);
            let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&data[..end]).to_string();
            let mut lines = head.split("\r\n");
            let status = lines.next().unwrap().split(' ').nth(1).unwrap();
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .collect();
            let len = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .map_or(0, |(_, v)| v.parse::<usize>().unwrap());
            if data.len() >= end + 4 + len {
                return RawResponse {
                    status: status.parse().unwrap(),
                    body: String::from_utf8_lossy(&data[end + 4..end + 4 + len]).to_string(),
                    headers,
                };
            }
        }
    })
    .await
    .expect("a response in time")
}

fn assert_shaped(status: u16, error_type: Option<&str>, body: &str, want: (u16, &str)) {
    assert_eq!(status, want.0, "{body}");
    assert_eq!(error_type, Some(want.1), "{body}");
    let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("JSON body: {body}"));
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
}

#[tokio::test]
async fn half_sent_requests_beyond_the_cap_do_not_take_the_api_down() {
    let app = fake_app_with(|s| {
        s.http_max_connections = 64;
        s.http_header_timeout_ms = 1_000;
    })
    .await;
    // Healthy first (the reconciler's first sweep done), so a 200 later means the flood
    // did not take the API down.
    wait_until(Duration::from_secs(30), || async {
        app.http
            .get(format!("{}/healthz", app.address))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await
    .expect("/healthz never became 200");
    let head = format!("GET /healthz HTTP/1.1\r\nhost: {}\r\nx-slow: ", host(&app));
    let mut slow = Vec::new();
    for _ in 0..300 {
        slow.push(send(&app, head.as_bytes()).await);
    }

    // The API still answers, on a new connection, at once.
    let started = Instant::now();
    let resp = tokio::time::timeout(
        Duration::from_secs(5),
        reqwest::Client::new()
            .get(format!("{}/healthz", app.address))
            .send(),
    )
    .await
    .expect("/healthz answers within 5 s")
    .expect("/healthz");
    assert_eq!(resp.status(), 200);
    eprintln!(
        "/healthz answered in {:?} behind 300 half-sent requests",
        started.elapsed()
    );

    // The server closes every half-sent request by itself, without an answer.
    for (i, s) in slow.iter_mut().enumerate() {
        let got = closed_within(s, Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("half-sent connection {i} still open"));
        assert!(got.is_empty(), "connection {i} got {got:?}");
    }

    // One on its own is closed after about the header timeout.
    let started = Instant::now();
    let mut s = send(&app, head.as_bytes()).await;
    closed_within(&mut s, Duration::from_secs(10))
        .await
        .expect("closed by the server");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(800), "closed after {took:?}");
    assert!(took < Duration::from_secs(5), "closed after {took:?}");

    tokio::time::timeout(Duration::from_secs(10), app.stop())
        .await
        .expect("stop returns promptly");
}

#[tokio::test]
async fn a_trickling_body_gets_a_408_in_the_error_shape() {
    let app = fake_app_with(|s| s.http_body_timeout_ms = 1_000).await;
    let url = format!("{}/v1/brokers", app.address);
    let body = vec![b' '; 100];
    let mut req = format!(
        "POST /v1/brokers HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n",
        host(&app)
    );
    for (k, v) in app
        .signer
        .headers("POST", &url, &body, Some("application/json"))
    {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n ");
    let started = Instant::now();
    let mut s = send(&app, req.as_bytes()).await;
    let resp = read_response(&mut s, Duration::from_secs(15)).await;
    let took = started.elapsed();
    assert_shaped(
        resp.status,
        resp.header("x-amzn-errortype"),
        &resp.body,
        (408, "RequestTimeoutException"),
    );
    assert!(resp.header("x-amzn-requestid").is_some());
    assert!(
        took >= Duration::from_millis(800),
        "answered after {took:?}"
    );
    assert!(took < Duration::from_secs(10), "answered after {took:?}");
    app.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let app = fake_app_with(|s| {
        s.http_header_timeout_ms = 500;
        s.http_idle_timeout_ms = 2_000;
    })
    .await;
    // (/ca.pem answers 200 from the start; /healthz may still say "starting".)
    let get = format!("GET /ca.pem HTTP/1.1\r\nhost: {}\r\n\r\n", host(&app));
    let mut s = send(&app, get.as_bytes()).await;
    let resp = read_response(&mut s, Duration::from_secs(10)).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let idle_from = Instant::now();
    // Kept alive past the header timeout: idle time is not head time.
    assert!(
        closed_within(&mut s, Duration::from_millis(1_000))
            .await
            .is_none(),
        "closed before the idle timeout"
    );
    // Closed by the server once idle for the idle timeout.
    closed_within(&mut s, Duration::from_secs(10))
        .await
        .expect("closed after the idle timeout");
    let idle = idle_from.elapsed();
    assert!(
        idle >= Duration::from_millis(1_900),
        "closed after {idle:?}"
    );
    assert!(idle < Duration::from_secs(6), "closed after {idle:?}");
    app.stop().await;
}

#[tokio::test]
async fn rejections_of_the_router_come_in_the_error_shape() {
    let app = fake_app_with(|_| {}).await;
    // Undecodable percent-encoding in the path (invalid UTF-8), signed: the path
    // extractor rejects it.
    let resp = app.get("/v1/brokers/%FF%FE").await;
    let status = resp.status().as_u16();
    let kind = resp
        .headers()
        .get("x-amzn-errortype")
        .map(|v| v.to_str().unwrap().to_owned());
    assert!(resp.headers().contains_key("x-amzn-requestid"));
    let body = resp.text().await.unwrap();
    assert_shaped(status, kind.as_deref(), &body, (400, "BadRequestException"));

    // Unsigned, the signature check answers first, also in the shape.
    let resp = app
        .http
        .get(format!("{}/v1/brokers/%FF%FE", app.address))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let kind = resp
        .headers()
        .get("x-amzn-errortype")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = resp.text().await.unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(kind.is_some(), "{body}");

    // A method the route does not have.
    let resp = app
        .http
        .delete(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let kind = resp
        .headers()
        .get("x-amzn-errortype")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = resp.text().await.unwrap();
    assert_shaped(status, kind.as_deref(), &body, (405, "BadRequestException"));
    app.stop().await;
}
