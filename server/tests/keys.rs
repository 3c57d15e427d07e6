//! Keys out of the database (issue 25): a private key file generated once, keys an older
//! version left in the database moved out of it, rotation that keeps tokens and the grace
//! rule working, and instances with other keys refused. On both stores.

mod common;

use std::os::unix::fs::PermissionsExt as _;

use common::{Backend, TestServer};
use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use rotafetch_server::keys::{file, KeyFile, Purpose};
use rotafetch_server::store;
use serde_json::Value;

const LEGACY: [&str; 3] = ["ed25519_seed", "successor_hmac_key", "dpop_nonce_key"];

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The `kid`s of the access-token keys (EdDSA) in a JWKS (the ID-token keys, RS256, sit
/// beside them).
fn kids(jwks: &Value) -> Vec<String> {
    let keys = jwks["keys"].as_array().expect("keys");
    keys.iter()
        .filter(|k| k["alg"] == "EdDSA")
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

fn kid_of(jwt: &str) -> String {
    jsonwebtoken::decode_header(jwt).unwrap().kid.unwrap()
}

fn read_keys(s: &TestServer) -> KeyFile {
    file::read(&s.key_file)
        .unwrap()
        .expect("the key file exists")
}

async fn legacy_rows(s: &TestServer) -> i64 {
    let names = LEGACY.map(|n| format!("'{n}'")).join(",");
    let sql = format!("SELECT COUNT(*) FROM server_meta WHERE name IN ({names})");
    s.scalar(&sql, None).await
}

async fn keys_live_in_a_private_file_not_in_the_database(b: Backend) {
    let s = TestServer::start_on(b, |_| {}).await;
    let mode = std::fs::metadata(&s.key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the key file is private");
    let keys = read_keys(&s);
    let jwks: Value = s.get_json("/.well-known/jwks.json").await;
    assert_eq!(kids(&jwks), vec![keys.signing[0].kid.clone()]);
    assert_eq!(legacy_rows(&s).await, 0, "no key in the database");
    let secret_rows = s
        .scalar(
            "SELECT COUNT(*) FROM server_meta WHERE name <> 'key_ring'",
            None,
        )
        .await;
    assert_eq!(secret_rows, 0, "only the key registry (kids) is kept");
    let t = s.login_ok().await;
    assert_eq!(kid_of(&t.access), keys.signing[0].kid);

    // Generated once: a restart reads the same file.
    let s = s.restart(|_| {}).await;
    assert_eq!(read_keys(&s), keys);
    assert_eq!(s.me(&t.access).await.status(), 200);
}

async fn keys_an_older_version_left_in_the_database_are_moved_out(b: Backend) {
    let s = TestServer::start_on(b, |c| c.reuse_grace_secs = 60).await;
    let t = s.login_ok().await;
    let next = s.refresh_ok(&t.refresh).await;
    let keys = read_keys(&s);
    let db_url = s.db.clone();
    let dir = s.stop().await;
    // What an older version left behind: its keys in the database, no key file, no registry.
    let seed = ed25519_dalek::SigningKey::from_pkcs8_der(&b64url(&keys.signing[0].pkcs8))
        .unwrap()
        .to_bytes();
    let hmac = keys
        .secrets
        .iter()
        .find(|e| e.purpose == Purpose::RefreshSuccessor)
        .unwrap();
    let db = store::open(&db_url).await.unwrap();
    db.write_meta(LEGACY[0], &seed, 0).await.unwrap();
    db.write_meta(LEGACY[1], &b64url(&hmac.key), 0)
        .await
        .unwrap();
    db.delete_meta(&["key_ring"]).await.unwrap();
    drop(db);
    let key_file = dir.path().join("keys.json");
    std::fs::remove_file(&key_file).unwrap();

    let s = TestServer::start_db(b, db_url, |c| {
        c.reuse_grace_secs = 60;
        c.keys = Some(rotafetch_server::keys::KeySource::File(key_file.clone()));
    })
    .await;
    assert_eq!(legacy_rows(&s).await, 0, "moved out of the database");
    let moved = file::read(&key_file)
        .unwrap()
        .expect("a key file made of them");
    assert_eq!(
        moved.signing[0].kid, keys.signing[0].kid,
        "the same signing key"
    );
    // Nobody is signed out: the old access token verifies, and the grace rule (the old
    // successor key) still answers a lost response with the same successor.
    assert_eq!(s.me(&t.access).await.status(), 200);
    assert_eq!(s.refresh_ok(&t.refresh).await.refresh, next.refresh);
}

fn b64url(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap()
}

async fn rotation_keeps_old_tokens_and_the_grace_rule(b: Backend) {
    let s = TestServer::start_on(b, |c| c.reuse_grace_secs = 60).await;
    let t = s.login_ok().await;
    let next = s.refresh_ok(&t.refresh).await;
    let old_kid = kid_of(&t.access);
    let (_, added) = file::rotate(&s.key_file, now(), 0).unwrap();
    let s = s.restart(|c| c.reuse_grace_secs = 60).await;
    let jwks: Value = s.get_json("/.well-known/jwks.json").await;
    assert_eq!(kids(&jwks).len(), 2, "old and new key published: {jwks}");
    assert!(kids(&jwks).contains(&old_kid));
    assert_eq!(s.me(&t.access).await.status(), 200, "signed by the old key");
    let fresh = s.login_ok().await;
    assert_eq!(kid_of(&fresh.access), added[0], "the new key signs");
    // A lost response from before the rotation: the same successor (old refresh key).
    assert_eq!(s.refresh_ok(&t.refresh).await.refresh, next.refresh);
    let after = s.refresh_ok(&next.refresh).await;
    assert_eq!(s.me(&after.access).await.status(), 200);
    // ... and once the new refresh key derives, its grace answer works too.
    assert_eq!(s.refresh_ok(&next.refresh).await.refresh, after.refresh);
}

async fn instances_with_other_keys_are_refused(b: Backend) {
    let s = TestServer::start_on(b, |_| {}).await;
    let other = s.dir.path().join("other-keys.json");
    // A lost (or never copied) key file is not silently replaced by new keys.
    let err = TestServer::try_start(s.db.clone(), other.clone())
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("restore that key file"),
        "{err:#}"
    );
    assert!(!other.exists());
    // Another instance's own keys: refused.
    file::rotate(&other, now(), 0).unwrap();
    let err = TestServer::try_start(s.db.clone(), other)
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("same, current key file"),
        "{err:#}"
    );
    // After a rotation, an old copy of the file is refused too.
    let old_copy = s.dir.path().join("old-copy.json");
    std::fs::copy(&s.key_file, &old_copy).unwrap();
    file::rotate(&s.key_file, now(), 0).unwrap();
    let s2 = TestServer::start_beside(&s, |_| {}).await;
    s2.login_ok().await;
    let err = TestServer::try_start(s.db.clone(), old_copy)
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("same, current key file"),
        "{err:#}"
    );
}

on_both_backends!(
    keys_live_in_a_private_file_not_in_the_database,
    keys_an_older_version_left_in_the_database_are_moved_out,
    rotation_keeps_old_tokens_and_the_grace_rule,
    instances_with_other_keys_are_refused,
);
