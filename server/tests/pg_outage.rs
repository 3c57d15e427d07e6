//! PostgreSQL goes away under a running server and comes back: the affected endpoints answer
//! 503 `temporarily_unavailable` meanwhile, no token is lost or wrongly revoked, and the pool
//! recovers without a restart. Its own cluster (it is stopped mid-test), in its own binary.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::pg::{self, PgCluster};
use common::process::ServerProcess;
use common::{json_error, Backend, TestServer};

const BIN: &str = env!("CARGO_BIN_EXE_rotafetch-server");
const PASSWORD: &str = "pw-S3CRET-never-logged";

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_at_start_is_a_clear_error_without_the_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port(); // nothing listens there once the listener is dropped
    let db = format!("postgres://postgres:{PASSWORD}@127.0.0.1:{port}/nothing");
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(BIN)
            .args(["--listen", "127.0.0.1:0", "--db", &db, "--key-file"])
            .arg(dir.path().join("keys.json"))
            .env("RUST_LOG", "debug")
            .output(),
    )
    .await
    .expect("the server gives up on an unreachable database")
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("database unavailable"), "{stderr}");
    assert!(!stderr.contains(PASSWORD), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_password_never_reaches_the_logs() {
    // The test cluster trusts every connection, so any password works.
    let db = pg::shared().create_db().await;
    let db = db.replace("postgres@", &format!("postgres:{PASSWORD}@"));
    let dir = tempfile::tempdir().unwrap();
    let s = ServerProcess::start_logging(Path::new(BIN), &db, dir.path(), "s", &[], "debug").await;
    let client = common::client();
    let r = client
        .post(s.url("/auth/login"))
        .json(&serde_json::json!({"username": "demo", "password": "demo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let log = s.log_text();
    s.kill().await;
    assert!(log.contains("postgres:***@127.0.0.1"), "{log}");
    assert!(!log.contains(PASSWORD), "{log}");
}
