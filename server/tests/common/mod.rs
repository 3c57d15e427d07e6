//! Shared helpers: an in-process server on 127.0.0.1:0 with a SQLite file in a temp dir or a
//! fresh database on a throw-away PostgreSQL cluster ([`Backend`]).
#![allow(dead_code)]

pub mod dpop;
pub mod oidc;
pub mod pg;
pub mod process;
pub mod rng;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rotafetch_server::keys::KeySource;
use rotafetch_server::{serve, Config};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Which store a [`TestServer`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// For each named `async fn NAME(b: Backend)` in the file: a module `NAME` with the tests
/// `sqlite` and `postgres` (one suite, two backends; filter with `cargo test postgres`).
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => { $(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::common::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::common::Backend::Postgres).await
            }
        }
    )* };
}

pub struct TestServer {
    pub base: String,
    pub addr: std::net::SocketAddr,
    pub dir: Arc<TempDir>,
    pub backend: Backend,
    /// The SQLite file or the PostgreSQL URL.
    pub db: String,
    /// The key file (`dir/keys.json` unless shared with another instance).
    pub key_file: PathBuf,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
}

/// Binds `addr` again after its server stopped (SO_REUSEADDR is set, so its closed
/// connections do not block it); retries for a while should a client socket hold the port.
async fn rebind(addr: std::net::SocketAddr) -> TcpListener {
    for _ in 0..100 {
        match TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("binding {addr} again: {e}"),
        }
    }
    panic!("{addr} stayed in use after its server stopped");
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

impl TestServer {
    pub async fn start(tweak: impl FnOnce(&mut Config)) -> Self {
        Self::start_on(Backend::Sqlite, tweak).await
    }

    /// A server on a fresh SQLite file or a fresh PostgreSQL database.
    pub async fn start_on(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let db = match backend {
            Backend::Sqlite => sqlite_file(&dir),
            Backend::Postgres => pg::shared().create_db().await,
        };
        let key_file = dir.path().join("keys.json");
        Self::launch(backend, dir, db, key_file, tweak).await
    }

    /// A server on the given database (a SQLite file or a PostgreSQL URL).
    pub async fn start_db(backend: Backend, db: String, tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let key_file = dir.path().join("keys.json");
        Self::launch(backend, dir, db, key_file, tweak).await
    }

    /// A second instance beside `other`: the same database and key file.
    pub async fn start_beside(other: &TestServer, tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let (db, key_file) = (other.db.clone(), other.key_file.clone());
        Self::launch(other.backend, dir, db, key_file, tweak).await
    }

    /// A SQLite server whose database (and www/pkg directories) live in `dir`.
    pub async fn start_in(dir: Arc<TempDir>, tweak: impl FnOnce(&mut Config)) -> Self {
        let db = sqlite_file(&dir);
        let key_file = dir.path().join("keys.json");
        Self::launch(Backend::Sqlite, dir, db, key_file, tweak).await
    }

    /// Stops this server and starts a new one on the same database, key file and address
    /// (so the same issuer: its access tokens stay valid, as across a real restart).
    pub async fn restart(self, tweak: impl FnOnce(&mut Config)) -> Self {
        let (backend, db, key_file) = (self.backend, self.db.clone(), self.key_file.clone());
        let addr = self.addr;
        let dir = self.stop().await;
        let listener = rebind(addr).await;
        Self::launch_on(listener, backend, dir, db, key_file, tweak).await
    }

    /// Like [`TestServer::start_db`], but the start's error instead of a server.
    pub async fn try_start(db: String, key_file: PathBuf) -> anyhow::Result<()> {
        let config = Config {
            db,
            keys: Some(KeySource::File(key_file)),
            ..Config::default()
        };
        rotafetch_server::AppState::new(&config).await.map(drop)
    }

    async fn launch(
        backend: Backend,
        dir: Arc<TempDir>,
        db: String,
        key_file: PathBuf,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::launch_on(listener, backend, dir, db, key_file, tweak).await
    }

    async fn launch_on(
        listener: TcpListener,
        backend: Backend,
        dir: Arc<TempDir>,
        db: String,
        key_file: PathBuf,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        let mut config = Config {
            db: db.clone(),
            www: Some(dir.path().join("www")),
            pkg: Some(dir.path().join("pkg")),
            test_faults: true,
            demo_user: true,
            shutdown_grace: Duration::from_secs(2),
            keys: Some(KeySource::File(key_file.clone())),
            ..Config::default()
        };
        tweak(&mut config);
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(serve(config, listener, async {
            let _ = rx.await;
        }));
        let server = TestServer {
            base: format!("http://{addr}"),
            addr,
            dir,
            backend,
            db,
            key_file,
            client: client(),
            shutdown: Some(tx),
            handle: Some(handle),
        };
        // Wait until it answers.
        for _ in 0..200 {
            let ready = server.client.get(server.url("/.well-known/jwks.json"));
            if let Ok(r) = ready.send().await {
                if r.status() == 200 {
                    return server;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("server did not come up");
    }

    /// Graceful stop; returns the temp dir so a new server can reuse the database.
    pub async fn stop(mut self) -> Arc<TempDir> {
        let _ = self.shutdown.take().unwrap().send(());
        let res = tokio::time::timeout(Duration::from_secs(20), self.handle.take().unwrap())
            .await
            .expect("server did not stop in time")
            .unwrap();
        res.unwrap();
        self.dir.clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn login(&self, username: &str, password: &str) -> reqwest::Response {
        self.client
            .post(self.url("/auth/login"))
            .json(&serde_json::json!({"username": username, "password": password}))
            .send()
            .await
            .unwrap()
    }

    pub async fn login_ok(&self) -> Tokens {
        let r = self.login("demo", "demo").await;
        assert_eq!(r.status(), 200);
        tokens(r.json().await.unwrap())
    }

    pub async fn refresh(&self, refresh_token: &str) -> reqwest::Response {
        self.client
            .post(self.url("/auth/refresh"))
            .json(&serde_json::json!({"refresh_token": refresh_token}))
            .send()
            .await
            .unwrap()
    }

    pub async fn refresh_ok(&self, refresh_token: &str) -> Tokens {
        let r = self.refresh(refresh_token).await;
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 200, "{body}");
        tokens(body)
    }

    pub async fn me(&self, access: &str) -> reqwest::Response {
        self.client
            .get(self.url("/api/me"))
            .bearer_auth(access)
            .send()
            .await
            .unwrap()
    }

    pub async fn set_faults(&self, plan: Value) {
        let r = self
            .client
            .post(self.url("/test/faults"))
            .json(&plan)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    /// GET `path` and read the body as text.
    pub async fn get_text(&self, path: &str) -> String {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// GET `path` and read the body as JSON.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn metrics(&self) -> HashMap<String, u64> {
        let text = self.get_text("/metrics").await;
        parse_metrics(&text)
    }

    pub async fn metric(&self, series: &str) -> u64 {
        *self
            .metrics()
            .await
            .get(series)
            .unwrap_or_else(|| panic!("no series {series}"))
    }

    /// Number of stored successors of `parent` (read straight from the database).
    pub async fn successor_rows(&self, parent: &str) -> i64 {
        let hash: [u8; 32] = Sha256::digest(parent.as_bytes()).into();
        self.scalar(
            "SELECT COUNT(*) FROM refresh_tokens WHERE parent_hash = $1",
            Some(hash),
        )
        .await
    }

    /// Runs a query returning one integer straight on the database, with an optional hash as
    /// `$1`.
    pub async fn scalar(&self, sql: &str, param: Option<[u8; 32]>) -> i64 {
        let params: Vec<&[u8]> = param.iter().map(|h| &h[..]).collect();
        match self.backend {
            Backend::Sqlite => {
                let conn = rusqlite::Connection::open(&self.db).unwrap();
                conn.busy_timeout(Duration::from_secs(10)).unwrap();
                conn.query_row(sql, rusqlite::params_from_iter(params), |r| r.get(0))
                    .unwrap()
            }
            Backend::Postgres => {
                let client = pg::connect(&self.db).await;
                let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
                    .iter()
                    .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
                    .collect();
                let row = client.query_one(sql, &params).await.unwrap();
                match row.try_get::<_, i64>(0) {
                    Ok(v) => v,
                    Err(_) => i64::from(row.get::<_, i32>(0)),
                }
            }
        }
    }

    /// Sends raw bytes and returns everything the server sent back before closing (or until
    /// `wait` elapses).
    pub async fn raw(&self, request: &[u8], wait: Duration) -> Vec<u8> {
        let mut s = TcpStream::connect(self.addr).await.unwrap();
        s.write_all(request).await.unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(wait, s.read_to_end(&mut out)).await;
        out
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn sqlite_file(dir: &TempDir) -> String {
    dir.path()
        .join("rotafetch-test.db")
        .to_string_lossy()
        .into_owned()
}

pub fn tokens(body: Value) -> Tokens {
    assert_eq!(body["token_type"], "Bearer", "{body}");
    Tokens {
        access: body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned(),
        refresh: body["refresh_token"]
            .as_str()
            .expect("refresh_token")
            .to_owned(),
    }
}

/// The integer series of a `/metrics` text (the few in seconds are left out).
pub fn parse_metrics(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ').expect("series line");
            let seconds = k.ends_with("_seconds_total");
            let n = v.parse().ok().filter(|_| !seconds);
            assert!(n.is_some() || seconds, "not an integer: {l}");
            Some((k.to_owned(), n?))
        })
        .collect()
}

/// Asserts a JSON error response and returns (status, error, error_description).
pub async fn json_error(r: reqwest::Response) -> (u16, String, String) {
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = r.text().await.unwrap();
    assert!(
        ct.starts_with("application/json"),
        "status {status}: content-type {ct:?}, body {text:?}"
    );
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (
        status,
        v["error"].as_str().expect("error field").to_owned(),
        v["error_description"]
            .as_str()
            .expect("error_description field")
            .to_owned(),
    )
}

/// A raw HTTP/1.1 POST with a JSON body.
pub fn raw_post(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// `n` concurrent refreshes of one token, JSON and form requests interleaved: (status, body).
pub async fn concurrent_refreshes(s: &TestServer, token: &str, n: usize) -> Vec<(u16, Value)> {
    let mut tasks = Vec::new();
    for i in 0..n {
        let client = s.client.clone();
        let url = s.url("/auth/refresh");
        let token = token.to_owned();
        tasks.push(tokio::spawn(async move {
            // Both request formats, interleaved.
            let req = if i % 2 == 0 {
                client
                    .post(url)
                    .json(&serde_json::json!({ "refresh_token": token }))
            } else {
                client
                    .post(url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(format!("grant_type=refresh_token&refresh_token={token}"))
            };
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}
