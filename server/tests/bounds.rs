//! Bounded requests (issue 25): slow bodies and slow headers are cut at their timeouts, a
//! slow request is answered 408, connections are capped, a huge body is refused without
//! being read, `/api/echo` checks the token before the body, `/auth/*` parses no `text/plain`
//! (or type-less) bodies, faults cannot hang for long, and `/metrics` can move to its own
//! address. All on loopback, each bounded in time.

mod common;

use std::time::{Duration, Instant};

use common::{json_error, TestServer};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Everything the server sends on `s` until it closes, or what came within `wait`.
async fn read_all(s: &mut TcpStream, wait: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let closed = tokio::time::timeout(wait, s.read_to_end(&mut out))
        .await
        .is_ok();
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

async fn connect(s: &TestServer, head: &str) -> TcpStream {
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(head.as_bytes()).await.unwrap();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_is_cut_at_the_body_timeout() {
    let s = TestServer::start(|c| c.body_timeout = Duration::from_secs(1)).await;
    let start = Instant::now();
    // 100 bytes promised, 10 sent, then nothing: a slow-loris body.
    let mut c = connect(
        &s,
        "POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{\"usernam",
    )
    .await;
    let (text, closed) = read_all(&mut c, Duration::from_secs(20)).await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
    assert!(closed, "the connection is closed");
    assert!(start.elapsed() < Duration::from_secs(20));
    assert_eq!(s.metric("rotafetch_http_body_timeouts_total").await, 1);
    // Service continues.
    s.login_ok().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_idle_connections_are_closed_at_the_header_timeout() {
    let s = TestServer::start(|c| c.header_timeout = Duration::from_secs(1)).await;
    let mut slow = connect(&s, "GET /metrics HTTP/1.1\r\nHost: x\r\n").await;
    let (_, closed) = read_all(&mut slow, Duration::from_secs(20)).await;
    assert!(closed, "half-sent headers: closed");
    let mut idle = connect(&s, "").await;
    let (text, closed) = read_all(&mut idle, Duration::from_secs(20)).await;
    assert!(closed && !text.contains("200"), "{text}");
    assert!(s.metric("rotafetch_http_header_timeouts_total").await >= 2);
    s.login_ok().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_request_is_answered_408_at_the_request_timeout() {
    let s = TestServer::start(|c| c.request_timeout = Duration::from_secs(1)).await;
    let t = s.login_ok().await;
    s.set_faults(json!({"refresh": [{"kind": "delay", "ms": 5000}]}))
        .await;
    let start = Instant::now();
    let (status, error, _) = json_error(s.refresh(&t.refresh).await).await;
    assert_eq!((status, error.as_str()), (408, "request_timeout"));
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "cut before the delay ended"
    );
    assert_eq!(s.metric("rotafetch_http_request_timeouts_total").await, 1);
    // Nothing was spent: the token still refreshes.
    s.refresh_ok(&t.refresh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let s = TestServer::start(|c| c.max_connections = 2).await;
    // Two idle connections hold both slots (until the 10 s header timeout).
    let first = connect(&s, "").await;
    let _second = connect(&s, "").await;
    let quick = common::client();
    let r = tokio::time::timeout(Duration::from_secs(1), quick.get(s.url("/metrics")).send()).await;
    assert!(r.is_err(), "no slot: the request waits in the backlog");
    drop(first);
    let r = quick.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200, "served once a slot is free");
    let m = common::parse_metrics(&r.text().await.unwrap());
    assert!(m["rotafetch_http_connection_waits_total"] >= 1, "{m:?}");
    assert!(m["rotafetch_http_connections_open"] <= 2, "{m:?}");
}

/// A connection from 127.0.0.2 (another host on loopback).
async fn connect_from(s: &TestServer, from: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(s.addr).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_an_address_bound_are_closed_at_once() {
    let s = TestServer::start(|c| c.max_connections_per_address = 2).await;
    // 127.0.0.2 holds its two places with idle connections (until the 10 s header timeout).
    let first = connect_from(&s, "127.0.0.2").await;
    let _second = connect_from(&s, "127.0.0.2").await;
    // Its third is closed without an answer, long before any timeout.
    let mut third = connect_from(&s, "127.0.0.2").await;
    let _ = third
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut out = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(5), third.read_to_end(&mut out)).await;
    assert!(ended.is_ok(), "closed, not kept waiting");
    assert!(out.is_empty(), "{:?}", String::from_utf8_lossy(&out));
    // Another address is served meanwhile: `metric` asks from 127.0.0.1.
    assert_eq!(
        s.metric("rotafetch_http_connections_refused_total").await,
        1
    );
    // A closed connection gives its place back.
    drop(first);
    let mut again = None;
    for _ in 0..100 {
        let mut c = connect_from(&s, "127.0.0.2").await;
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let (text, _) = read_all(&mut c, Duration::from_secs(10)).await;
        if text.starts_with("HTTP/1.1 200") {
            again = Some(text);
            break;
        }
        // The server may not have seen the close yet: its place is given back when it does.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(again.is_some(), "a place came back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_is_not_bound_per_address() {
    let s = TestServer::start(|c| {
        c.max_connections_per_address = 1;
        c.trusted_proxies = vec!["127.0.0.3".parse().unwrap()];
    })
    .await;
    let _held: Vec<_> = idle_from(&s, "127.0.0.3", 3).await;
    let mut c = connect_from(&s, "127.0.0.3").await;
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (text, _) = read_all(&mut c, Duration::from_secs(10)).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(
        s.metric("rotafetch_http_connections_refused_total").await,
        0
    );
}

/// `n` idle connections from `from`.
async fn idle_from(s: &TestServer, from: &str, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::new();
    for _ in 0..n {
        held.push(connect_from(s, from).await);
    }
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_body_is_refused_without_being_read() {
    let s = TestServer::start(|_| {}).await;
    let t = s.login_ok().await;
    // 16 MiB declared, a few bytes sent: refused at once, not awaited.
    for (path, auth) in [
        ("/auth/refresh", String::new()),
        (
            "/api/echo",
            format!("Authorization: Bearer {}\r\n", t.access),
        ),
    ] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\n\
             Content-Length: 16777216\r\nConnection: close\r\n\r\n{{\"refresh_token\":"
        );
        let mut c = connect(&s, &head).await;
        let (text, _) = read_all(&mut c, Duration::from_secs(20)).await;
        assert!(text.starts_with("HTTP/1.1 413"), "{path}: {text}");
    }
    assert_eq!(s.metric("rotafetch_http_bodies_too_large_total").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_checks_the_token_before_reading_the_body() {
    let s = TestServer::start(|_| {}).await;
    // 1 MiB promised, 10 bytes sent, no token: answered 401 without waiting for the body.
    let mut c = connect(
        &s,
        "POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n0123456789",
    )
    .await;
    let start = Instant::now();
    let (text, _) = read_all(&mut c, Duration::from_secs(20)).await;
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_endpoints_parse_no_body_another_site_could_post_blind() {
    let s = TestServer::start(|_| {}).await;
    let json_login = r#"{"username":"demo","password":"demo"}"#;
    // text/plain, no content type and (for sign-in) a form need no CORS preflight.
    for (ct, body) in [
        (Some("text/plain"), json_login),
        (Some("text/plain;charset=UTF-8"), json_login),
        (None, json_login),
        (
            Some("application/x-www-form-urlencoded"),
            "username=demo&password=demo",
        ),
    ] {
        let mut req = s.client.post(s.url("/auth/login")).body(body);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        let (status, error, _) = json_error(req.send().await.unwrap()).await;
        assert_eq!(
            (status, error.as_str()),
            (415, "unsupported_media_type"),
            "{ct:?}"
        );
    }
    let t = s.login_ok().await;
    let plain = s
        .client
        .post(s.url("/auth/refresh"))
        .header("content-type", "text/plain")
        .body(json!({"refresh_token": t.refresh}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(json_error(plain).await.0, 415);
    // RFC 6749's form refresh still works.
    let form = s
        .client
        .post(s.url("/auth/refresh"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=refresh_token&refresh_token={}",
            t.refresh
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hang_and_delay_faults_are_capped() {
    let s = TestServer::start(|_| {}).await;
    for kind in ["hang", "delay"] {
        let r = s
            .client
            .post(s.url("/test/faults"))
            .json(&json!({"refresh": [{"kind": kind, "ms": 20_001}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(json_error(r).await.0, 400, "{kind}");
    }
    s.set_faults(json!({"refresh": [{"kind": "hang", "ms": 20_000}]}))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_leave_the_main_address() {
    let s = TestServer::start(|c| c.metrics_on_main = false).await;
    assert_eq!(
        json_error(s.client.get(s.url("/metrics")).send().await.unwrap())
            .await
            .0,
        404
    );
}

#[test]
fn off_loopback_public_url_is_required_and_test_faults_refused() {
    let lan: std::net::SocketAddr = "192.0.2.10:8080".parse().unwrap();
    let local: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
    let mut c = rotafetch_server::Config::default();
    assert!(c.check_listen(local).is_ok());
    let err = c.check_listen(lan).unwrap_err();
    assert!(format!("{err}").contains("--public-url"), "{err}");
    c.public_url = Some("https://auth.example".into());
    assert!(c.check_listen(lan).is_ok());
    c.test_faults = true;
    let err = c.check_listen(lan).unwrap_err();
    assert!(format!("{err}").contains("--test-faults"), "{err}");
    assert!(c.check_listen(local).is_ok());
}
