//! Several server processes on one PostgreSQL database: one truth about every refresh token.
//!
//! Each test starts two instances of the real binary (separate OS processes, separate pools)
//! at the same moment on a fresh database (so migrations and key creation race too), then
//! spreads 50 concurrent refreshes of one token (or redemptions of one authorization code)
//! over both.

mod common;

use std::path::Path;

use common::oidc::{auth_params, pkce, Browser, CLIENT, REDIRECT};
use common::pg;
use common::process::ServerProcess;
use serde_json::Value;
use sha2::{Digest, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_rotafetch-server");
const STORM: usize = 50;
/// The issuer both instances share (as behind a load balancer).
const PUBLIC: &str = "http://auth.test.invalid:8443";

struct Pair {
    a: ServerProcess,
    b: ServerProcess,
    db: String,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Pair {
    async fn start(args: &[&str]) -> Pair {
        let db = pg::shared().create_db().await;
        let dir = tempfile::tempdir().unwrap();
        // One deployment, one issuer: both share --public-url (as behind a load balancer),
        // so each accepts the other's access tokens.
        let args = [&["--public-url", PUBLIC], args].concat();
        let (a, b) = tokio::join!(
            ServerProcess::start(Path::new(BIN), &db, dir.path(), "a", &args),
            ServerProcess::start(Path::new(BIN), &db, dir.path(), "b", &args),
        );
        // A rotation (or a code's redemption) now holds its transaction open for 200 ms
        // between reading the token and writing it spent: every other refresh of the storm arrives inside that window, so
        // a read-then-write race (no row lock) would mint two successors or fail with 500s.
        // (Checked: without `FOR UPDATE` in PgStore both tests here fail.)
        pg::connect(&db)
            .await
            .batch_execute(
                "CREATE FUNCTION slow_spend() RETURNS trigger LANGUAGE plpgsql AS
                 $$ BEGIN PERFORM pg_sleep(0.2); RETURN NEW; END $$;
                 CREATE TRIGGER slow_spend BEFORE UPDATE ON refresh_tokens
                 FOR EACH ROW EXECUTE FUNCTION slow_spend();
                 CREATE TRIGGER slow_redeem BEFORE UPDATE ON auth_codes
                 FOR EACH ROW EXECUTE FUNCTION slow_spend();",
            )
            .await
            .unwrap();
        // Both created the demo user if it did not exist: one of them did.
        Pair {
            a,
            b,
            db,
            client: common::client(),
            _dir: dir,
        }
    }

    fn both(&self) -> [&ServerProcess; 2] {
        [&self.a, &self.b]
    }

    async fn login(&self, on: &ServerProcess) -> common::Tokens {
        let r = self
            .client
            .post(on.url("/auth/login"))
            .json(&serde_json::json!({"username": "demo", "password": "demo"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        common::tokens(r.json().await.unwrap())
    }

    async fn refresh(&self, on: &ServerProcess, token: &str) -> (u16, Value) {
        let r = self
            .client
            .post(on.url("/auth/refresh"))
            .json(&serde_json::json!({ "refresh_token": token }))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    async fn me(&self, on: &ServerProcess, access: &str) -> u16 {
        let r = self
            .client
            .get(on.url("/api/me"))
            .bearer_auth(access)
            .send()
            .await
            .unwrap();
        r.status().as_u16()
    }

    /// `STORM` concurrent refreshes of `token`, alternating between the two instances.
    async fn storm(&self, token: &str) -> Vec<(u16, Value)> {
        let tasks: Vec<_> = (0..STORM)
            .map(|i| {
                let url = self.both()[i % 2].url("/auth/refresh");
                let (client, token) = (self.client.clone(), token.to_owned());
                tokio::spawn(async move {
                    let r = client
                        .post(url)
                        .json(&serde_json::json!({ "refresh_token": token }))
                        .send()
                        .await
                        .unwrap();
                    (r.status().as_u16(), r.json::<Value>().await.unwrap())
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    }

    /// A counter summed over both instances.
    async fn metric(&self, series: &str) -> u64 {
        let mut total = 0;
        for s in self.both() {
            let text = self
                .client
                .get(s.url("/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            total += common::parse_metrics(&text)[series];
        }
        total
    }

    async fn successor_rows(&self, parent: &str) -> i64 {
        let hash: [u8; 32] = Sha256::digest(parent.as_bytes()).into();
        let client = pg::connect(&self.db).await;
        let row = client
            .query_one(
                "SELECT COUNT(*) FROM refresh_tokens WHERE parent_hash = $1",
                &[&&hash[..]],
            )
            .await
            .unwrap();
        row.get(0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_grace_one_rotation_and_every_answer_carries_the_same_successor() {
    let p = Pair::start(&["--reuse-grace", "60"]).await;
    // Created once, read by both: the same signing key.
    let jwks_a = p.client.get(p.a.url("/.well-known/jwks.json")).send();
    let jwks_b = p.client.get(p.b.url("/.well-known/jwks.json")).send();
    let (ja, jb) = (jwks_a.await.unwrap(), jwks_b.await.unwrap());
    assert_eq!(
        ja.json::<Value>().await.unwrap(),
        jb.json::<Value>().await.unwrap(),
        "one signing key"
    );

    let t = p.login(&p.a).await;
    assert_eq!(p.me(&p.b, &t.access).await, 200, "A's access token on B");

    let answers = p.storm(&t.refresh).await;
    let mut successors = std::collections::HashSet::new();
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        successors.insert(body["refresh_token"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        successors.len(),
        1,
        "every answer carries the same successor"
    );
    assert_eq!(
        p.successor_rows(&t.refresh).await,
        1,
        "exactly one rotation"
    );
    assert_eq!(
        p.metric("rotafetch_refresh_total{outcome=\"rotated\"}")
            .await,
        1
    );
    assert_eq!(
        p.metric("rotafetch_refresh_total{outcome=\"grace\"}").await,
        STORM as u64 - 1
    );
    assert_eq!(
        p.metric("rotafetch_refresh_total{outcome=\"reused\"}")
            .await,
        0
    );

    // A token rotated on one instance refreshes on the other, back and forth.
    let s1 = successors.into_iter().next().unwrap();
    let (status, body) = p.refresh(&p.b, &s1).await;
    assert_eq!(status, 200, "{body}");
    let s2 = body["refresh_token"].as_str().unwrap().to_owned();
    let (status, body) = p.refresh(&p.a, &s2).await;
    assert_eq!(status, 200, "{body}");
    let access = body["access_token"].as_str().unwrap();
    for s in p.both() {
        assert_eq!(p.me(s, access).await, 200);
    }
    // The grandparent is now outside the grace rule (its child was used): reuse, on B,
    // revokes the family for A as well.
    let (status, body) = p.refresh(&p.b, &t.refresh).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    for s in p.both() {
        assert_eq!(p.me(s, access).await, 401, "revoked family on {}", s.base);
    }
    assert_eq!(p.metric("rotafetch_families_revoked_total").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_grace_reuse_is_detected_and_the_family_revoked_on_both() {
    let p = Pair::start(&["--reuse-grace", "0"]).await;
    let t = p.login(&p.b).await;
    let answers = p.storm(&t.refresh).await;
    let winners: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one rotation: {answers:?}");
    for (status, body) in answers.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(*status, 400, "{body}");
        assert_eq!(body["error"], "invalid_grant", "{body}");
    }
    assert_eq!(p.successor_rows(&t.refresh).await, 1);
    assert_eq!(
        p.metric("rotafetch_refresh_total{outcome=\"rotated\"}")
            .await,
        1
    );
    assert!(
        p.metric("rotafetch_refresh_total{outcome=\"reused\"}")
            .await
            >= 1
    );
    assert_eq!(p.metric("rotafetch_families_revoked_total").await, 1);

    // The family is revoked everywhere: the winner's tokens and the original access token.
    let winner = common::tokens(winners[0].clone());
    for s in p.both() {
        assert_eq!(p.me(s, &winner.access).await, 401, "on {}", s.base);
        assert_eq!(p.me(s, &t.access).await, 401, "on {}", s.base);
        let (status, body) = p.refresh(s, &winner.refresh).await;
        assert_eq!(
            (status, &body["error"]),
            (400, &Value::from("invalid_grant"))
        );
    }

    // Logout on one instance ends the session on the other.
    let t = p.login(&p.a).await;
    assert_eq!(p.me(&p.b, &t.access).await, 200);
    let r = p
        .client
        .post(p.a.url("/auth/logout"))
        .json(&serde_json::json!({"refresh_token": t.refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(p.me(&p.b, &t.access).await, 401);
    assert_eq!(p.refresh(&p.b, &t.refresh).await.0, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_code_redeemed_on_two_instances_at_once_succeeds_once() {
    let client = format!("{CLIENT}={REDIRECT}");
    let p = Pair::start(&["--reuse-grace", "0", "--client", &client]).await;
    let jwks = |s: &ServerProcess| p.client.get(s.url("/.well-known/jwks.json")).send();
    let (ja, jb) = (jwks(&p.a).await.unwrap(), jwks(&p.b).await.unwrap());
    let ja: Value = ja.json().await.unwrap();
    assert_eq!(ja, jb.json::<Value>().await.unwrap(), "one ID-token key");
    assert_eq!(ja["keys"].as_array().unwrap().len(), 2);

    // The form A shows is accepted by B (one form key), and B's provider session serves A.
    let mut browser = Browser::at(&p.a.base);
    let pk = pkce();
    let form = browser.authorize(&auth_params(&pk)).await;
    browser.base = p.b.base.clone();
    let back = browser.submit(&form, "demo", "demo").await;
    assert_eq!(back.status, 303, "{}", back.body);
    let q = back.redirect_params();
    assert_eq!(q["iss"], PUBLIC);
    browser.base = p.a.base.clone();
    assert_eq!(browser.authorize(&auth_params(&pkce())).await.status, 303);

    let tasks: Vec<_> = (0..STORM)
        .map(|i| {
            let url = p.both()[i % 2].url("/token");
            let form = [
                ("grant_type", "authorization_code"),
                ("code", q["code"].as_str()),
                ("redirect_uri", REDIRECT),
                ("client_id", CLIENT),
                ("code_verifier", pk.verifier.as_str()),
            ];
            let req = p.client.post(url).form(&form);
            tokio::spawn(async move {
                let r = req.send().await.unwrap();
                (r.status().as_u16(), r.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    let winners: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one redemption: {answers:?}");
    for (status, body) in answers.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(
            (*status, &body["error"]),
            (400, &Value::from("invalid_grant")),
            "{body}"
        );
    }
    // (Checked: without `FOR UPDATE` on the code row, 32 of the 50 redeemed it.)
    let families = pg::connect(&p.db)
        .await
        .query_one("SELECT COUNT(*) FROM families", &[])
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(families, 1, "one session started");
    assert_eq!(
        p.metric("rotafetch_authorization_codes_total{outcome=\"redeemed\"}")
            .await,
        1
    );
    assert_eq!(
        p.metric("rotafetch_authorization_codes_total{outcome=\"reused\"}")
            .await,
        STORM as u64 - 1
    );
    // The reuses revoked the session the one redemption started, on both instances.
    let winner = common::tokens(winners[0].clone());
    for s in p.both() {
        assert_eq!(p.me(s, &winner.access).await, 401, "on {}", s.base);
    }
    assert_eq!(p.metric("rotafetch_families_revoked_total").await, 1);

    // A request_uri pushed on A is taken once, on B; A then refuses it.
    let pushed: Value = p
        .client
        .post(p.a.url("/par"))
        .form(&auth_params(&pkce()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let front = [
        ("client_id".to_string(), CLIENT.to_string()),
        (
            "request_uri".to_string(),
            pushed["request_uri"].as_str().unwrap().to_owned(),
        ),
    ];
    browser.base = p.b.base.clone();
    assert_eq!(
        browser.authorize(&front).await.status,
        303,
        "signed in: straight back"
    );
    browser.base = p.a.base.clone();
    let again = browser.authorize(&front).await;
    assert_eq!((again.status, again.location.as_deref()), (400, None));
}
