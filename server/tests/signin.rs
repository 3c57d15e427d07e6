//! Password guessing (issue 25): per-account and per-address failure budgets with
//! exponential back-off (429 + Retry-After), the same answers for a wrong user and a wrong
//! password, the real user signing in once the back-off is over, and concurrent password
//! hashes bounded by the hash gate (503 + Retry-After beyond it); no default user. On both
//! stores.

mod common;

use std::time::{Duration, Instant};

use common::{json_error, Backend, TestServer};
use rotafetch_server::throttle::{Budget, Limits};
use serde_json::Value;

/// Small budgets: 3 failures per account, `per_address` per address, then 3 s, 6 s, ... (at
/// most 12 s; wide enough that a busy machine does not see a back-off end mid-test).
fn limits(per_address: u32) -> Limits {
    let budget = |free| Budget {
        free,
        base_ms: 3_000,
        max_ms: 12_000,
        forget_ms: 3600 * 1000,
    };
    Limits {
        account: budget(3),
        address: budget(per_address),
        capacity: 1_000,
    }
}

/// (status, error, Retry-After) of a login.
async fn attempt(
    s: &TestServer,
    user: &str,
    password: &str,
    xff: Option<&str>,
) -> (u16, String, Option<u64>) {
    let mut req = s
        .client
        .post(s.url("/auth/login"))
        .json(&serde_json::json!({"username": user, "password": password}));
    if let Some(a) = xff {
        req = req.header("x-forwarded-for", a);
    }
    let r = req.send().await.unwrap();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    if r.status() == 200 {
        return (200, String::new(), retry);
    }
    let (status, error, _) = json_error(r).await;
    (status, error, retry)
}

async fn guessing_one_account_backs_off_and_the_user_gets_in_after(b: Backend) {
    let s = TestServer::start_on(b, |c| c.login_limits = limits(100)).await;
    // The same sequence for a made-up account and a real one: identical answers.
    for user in ["nobody-here", "demo"] {
        let mut answers = Vec::new();
        for _ in 0..4 {
            answers.push(attempt(&s, user, "wrong", Some("ignored")).await);
        }
        let throttled = attempt(&s, user, "wrong", None).await;
        answers.push(throttled.clone());
        let invalid = (401, "invalid_credentials".to_owned(), None);
        assert_eq!(answers[..4], vec![invalid; 4][..], "{user}");
        assert_eq!(
            throttled,
            (429, "temporarily_unavailable".into(), Some(3)),
            "{user}"
        );
    }
    // The right password is held back too while the account backs off ...
    assert_eq!(attempt(&s, "demo", "demo", None).await.0, 429);
    // ... and works once it is over (3 s after the latest failure; retried until then).
    let start = Instant::now();
    let signed_in = loop {
        let (status, _, retry) = attempt(&s, "demo", "demo", None).await;
        if status == 200 {
            break start.elapsed();
        }
        assert_eq!(status, 429);
        assert!(retry.is_some_and(|r| (1..=3).contains(&r)), "{retry:?}");
        assert!(start.elapsed() < Duration::from_secs(30), "still throttled");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(signed_in < Duration::from_secs(30));
    let m = s.metrics().await;
    assert!(
        m["rotafetch_logins_total{outcome=\"throttled\"}"] >= 3,
        "{m:?}"
    );
    assert_eq!(
        m["rotafetch_logins_total{outcome=\"invalid_credentials\"}"],
        8
    );
    assert_eq!(m["rotafetch_logins_total{outcome=\"success\"}"], 1);
    // The success forgot the account's failures: a typo now costs no back-off.
    assert_eq!(attempt(&s, "demo", "typo", None).await.0, 401);
    assert_eq!(attempt(&s, "demo", "demo", None).await.0, 200);
}

async fn one_address_guessing_many_accounts_backs_off(b: Backend) {
    let s = TestServer::start_on(b, |c| c.login_limits = limits(6)).await;
    for i in 0..7 {
        let (status, ..) = attempt(&s, &format!("user{i}"), "guess", None).await;
        assert_eq!(status, 401, "guess {i}");
    }
    let (status, _, retry) = attempt(&s, "user7", "guess", None).await;
    assert_eq!(
        (status, retry),
        (429, Some(3)),
        "the address's budget is spent"
    );
    assert_eq!(
        attempt(&s, "demo", "demo", None).await.0,
        429,
        "from that address"
    );
    let m = s.metrics().await;
    assert_eq!(m["rotafetch_login_throttle_addresses"], 1);
    assert_eq!(m["rotafetch_login_throttle_accounts"], 7);
}

async fn behind_a_trusted_proxy_each_forwarded_address_has_its_budget(b: Backend) {
    let s = TestServer::start_on(b, |c| {
        c.login_limits = limits(6);
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    for i in 0..7 {
        let (status, ..) = attempt(&s, &format!("user{i}"), "guess", Some("198.51.100.7")).await;
        assert_eq!(status, 401);
    }
    assert_eq!(attempt(&s, "x", "guess", Some("198.51.100.7")).await.0, 429);
    // Another client behind the same proxy is not held back by the first one's guesses.
    let other = attempt(&s, "demo", "demo", Some("203.0.113.9, 127.0.0.1")).await;
    assert_eq!(other.0, 200);
}

async fn concurrent_password_hashes_are_bounded(b: Backend) {
    let s = TestServer::start_on(b, |c| {
        c.hash_memory_mib = 2 * 19;
        // More threads than the memory's two slots: memory bounds it here.
        c.hash_threads = 4;
        c.hash_wait = Duration::from_millis(10);
    })
    .await;
    let tasks: Vec<_> = (0..24)
        .map(|_| {
            let (client, url) = (s.client.clone(), s.url("/auth/login"));
            tokio::spawn(async move {
                let body = serde_json::json!({"username": "demo", "password": "demo"});
                let r = client.post(url).json(&body).send().await.unwrap();
                let retry = r.headers().get("retry-after").cloned();
                (r.status().as_u16(), retry, r.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let (mut ok, mut busy) = (0, 0);
    for t in tasks {
        let (status, retry, body) = t.await.unwrap();
        match status {
            200 => ok += 1,
            503 => {
                assert_eq!(body["error"], "temporarily_unavailable", "{body}");
                assert_eq!(retry.unwrap(), "1");
                busy += 1;
            }
            other => panic!("{other}: {body}"),
        }
    }
    let m = s.metrics().await;
    assert_eq!(m["rotafetch_password_hash_slots"], 2);
    assert!(
        (1..=2).contains(&m["rotafetch_password_hashes_peak"]),
        "{m:?}"
    );
    assert_eq!(m["rotafetch_logins_total{outcome=\"busy\"}"], busy);
    assert_eq!(m["rotafetch_logins_total{outcome=\"success\"}"], ok);
    assert_eq!(ok + busy, 24);
    assert!(ok >= 1);
    // Refused for load, not for guessing: nothing was charged to the account.
    assert_eq!(m["rotafetch_login_throttle_accounts"], 0);
}

async fn no_demo_user_by_default_and_a_leftover_one_refuses_the_start(b: Backend) {
    let s = TestServer::start_on(b, |c| c.demo_user = false).await;
    let (st, err, _) = json_error(s.login("demo", "demo").await).await;
    assert_eq!((st, err.as_str()), (401, "invalid_credentials"));
    assert!(
        !rotafetch_server::Config::default().demo_user,
        "off by default"
    );
    // A demo/demo user left by a run with --demo-user: refused without the flag.
    let s = s.restart(|c| c.demo_user = true).await;
    s.login_ok().await;
    let (db, key_file) = (s.db.clone(), s.key_file.clone());
    let _dir = s.stop().await;
    let err = TestServer::try_start(db.clone(), key_file.clone())
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("--demo-user"), "{err:#}");
    // A user demo with a real password is fine.
    let s = TestServer::start_db(b, db.clone(), |c| {
        c.keys = Some(rotafetch_server::keys::KeySource::File(key_file.clone()));
    })
    .await;
    let salt = argon2::password_hash::SaltString::encode_b64(&[7; 16]).unwrap();
    let hash = argon2::PasswordHasher::hash_password(&argon2::Argon2::default(), b"s3cret", &salt)
        .unwrap()
        .to_string();
    let sql =
        format!("UPDATE users SET password_hash = '{hash}' WHERE username = 'demo' RETURNING 1");
    assert_eq!(s.scalar(&sql, None).await, 1);
    drop(s.stop().await);
    TestServer::try_start(db, key_file).await.unwrap();
}

on_both_backends!(
    no_demo_user_by_default_and_a_leftover_one_refuses_the_start,
    guessing_one_account_backs_off_and_the_user_gets_in_after,
    one_address_guessing_many_accounts_backs_off,
    behind_a_trusted_proxy_each_forwarded_address_has_its_budget,
    concurrent_password_hashes_are_bounded,
);
