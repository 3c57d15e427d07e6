//! PostgreSQL goes away under a running server and comes back: the affected endpoints answer
//! 503 `temporarily_unavailable` meanwhile, no token is lost or wrongly revoked, and the pool
//! recovers without a restart. Its own cluster (it is stopped mid-test), in its own binary.

mod common;

use std::time::{Duration, Instant};

use common::pg::PgCluster;
use common::{json_error, Backend, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_means_503_and_recovery_without_restart() {
    let cluster = PgCluster::start();
    let db = cluster.create_db().await;
    // No grace: a token wrongly treated as spent would revoke the family.
    let s = TestServer::start_db(Backend::Postgres, db, |c| c.reuse_grace_secs = 0).await;
    let t = s.login_ok().await;
    let t = s.refresh_ok(&t.refresh).await;
    assert_eq!(s.me(&t.access).await.status(), 200);

    cluster.stop();
    for _ in 0..3 {
        let (status, error, _) = json_error(s.refresh(&t.refresh).await).await;
        assert_eq!((status, error.as_str()), (503, "temporarily_unavailable"));
    }
    let (status, error, _) = json_error(s.me(&t.access).await).await;
    assert_eq!((status, error.as_str()), (503, "temporarily_unavailable"));
    let (status, error, _) = json_error(s.login("demo", "demo").await).await;
    assert_eq!((status, error.as_str()), (503, "temporarily_unavailable"));
    let r = s
        .client
        .post(s.url("/auth/logout"))
        .json(&serde_json::json!({"refresh_token": t.refresh}))
        .send()
        .await
        .unwrap();
    let (status, error, _) = json_error(r).await;
    assert_eq!((status, error.as_str()), (503, "temporarily_unavailable"));
    // Endpoints that need no database keep working.
    assert_eq!(
        s.client
            .get(s.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    cluster.restart();
    // The same server process, the same token: the first answer that is not a 503 rotates it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let t2 = loop {
        let r = s.refresh(&t.refresh).await;
        if r.status() != 503 {
            assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
            break common::tokens(r.json().await.unwrap());
        }
        assert!(Instant::now() < deadline, "the pool did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(s.me(&t2.access).await.status(), 200);
    assert_eq!(
        s.me(&t.access).await.status(),
        200,
        "same session, still live"
    );
    s.login_ok().await;
    assert_eq!(
        s.metric("rotafetch_refresh_total{outcome=\"reused\"}")
            .await,
        0
    );
    assert_eq!(s.metric("rotafetch_families_revoked_total").await, 0);
}
