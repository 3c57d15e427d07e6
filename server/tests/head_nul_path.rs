//! Regression: `HEAD /%00` (an unrouted path with a percent-encoded NUL) reached the static
//! `ServeDir`, which failed on the NUL byte and answered 500. Static errors are now 404.

mod common;

use common::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_with_an_encoded_nul_is_not_a_500() {
    let s = TestServer::start(|_| {}).await;
    for path in ["/%00", "/auth/refresh%00", "/pkg/a%00b", "/x%00y"] {
        let r = s.client.head(s.url(path)).send().await.unwrap();
        assert!(r.status().as_u16() < 500, "HEAD {path}: {}", r.status());
    }
}
