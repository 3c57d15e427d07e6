//! Keys out of the database (issue 25): a private key file generated once, keys an older
//! version left in the database moved out of it, rotation that keeps tokens and the grace
//! rule working, and instances with other keys refused; the JWKS verifying RFC 9068 access
//! tokens; nothing secret in `Debug`. On both stores.

mod common;

use std::os::unix::fs::PermissionsExt as _;

use common::{json_error, Backend, TestServer};
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
    let (db_url, issuer) = (s.db.clone(), s.base.clone());
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
        c.public_url = Some(issuer); // the same deployment, on another port
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

async fn jwks_verifies_access_tokens(b: Backend) {
    let s = TestServer::start_on(b, |_| {}).await;
    let t = s.login_ok().await;
    let jwks: Value = s.get_json("/.well-known/jwks.json").await;
    let keys = jwks["keys"].as_array().unwrap();
    // The access-token key beside the ID-token key (RS256), found by the token's kid.
    assert!(keys
        .iter()
        .any(|k| k["alg"] == "RS256" && k["kty"] == "RSA"));
    let kid = kid_of(&t.access);
    let key = keys.iter().find(|k| k["kid"] == kid.as_str()).unwrap();
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert_eq!(key["alg"], "EdDSA");
    assert_eq!(key["use"], "sig");
    let header = jsonwebtoken::decode_header(&t.access).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    assert_eq!(header.kid.as_deref(), key["kid"].as_str());
    // RFC 9068: typ at+jwt; iss is the server's one issuer (the bound URL without
    // --public-url: the issuer of discovery and ID tokens too), aud defaults to it.
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let meta: Value = s.get_json("/.well-known/openid-configuration").await;
    assert_eq!(meta["issuer"], s.base);
    let dk = jsonwebtoken::DecodingKey::from_ed_components(key["x"].as_str().unwrap()).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    v.leeway = 0;
    v.set_issuer(&[&s.base]);
    v.set_audience(&[&s.base]);
    let data = jsonwebtoken::decode::<Value>(&t.access, &dk, &v).unwrap();
    let c = data.claims;
    for claim in ["iss", "aud", "sub", "sid", "iat", "exp", "jti"] {
        assert!(c.get(claim).is_some(), "missing {claim}");
    }
    // Another instance on the same database and keys accepts the token only under the same
    // issuer: instances of one deployment share --public-url.
    let apart = TestServer::start_beside(&s, |_| {}).await;
    let (st, _, desc) = json_error(apart.me(&t.access).await).await;
    assert_eq!(
        (st, desc.as_str()),
        (401, "not an access token for this server")
    );
    let beside = TestServer::start_beside(&s, |c| c.public_url = Some(s.base.clone())).await;
    assert_eq!(beside.me(&t.access).await.status(), 200);
    // With --audience, the API accepts only tokens for that audience.
    let s2 = TestServer::start_beside(&s, |c| {
        c.public_url = Some(s.base.clone());
        c.audience = Some("https://api.example".into());
    })
    .await;
    let (st, _, desc) = json_error(s2.me(&t.access).await).await;
    assert_eq!(
        (st, desc.as_str()),
        (401, "not an access token for this server")
    );
    let t2 = s2.login_ok().await;
    assert_eq!(s2.me(&t2.access).await.status(), 200);
    let aud = &jsonwebtoken::decode::<Value>(&t2.access, &dk, &{
        let mut v = v.clone();
        v.set_audience(&["https://api.example"]);
        v
    })
    .unwrap()
    .claims["aud"];
    assert_eq!(aud, "https://api.example");
    assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), 60);
}

#[tokio::test]
async fn debug_output_redacts_secrets() {
    use rotafetch_server::store::User;
    use rotafetch_server::tokens::{Keys, RefreshToken};
    let t = RefreshToken::generate();
    assert!(!format!("{t:?}").contains(t.as_str()));
    let u = User {
        id: 1,
        username: "demo".into(),
        password_hash: "$argon2id$v=19$secret".into(),
    };
    assert!(!format!("{u:?}").contains("argon2"));
    let mut file = rotafetch_server::keys::KeyFile {
        version: 1,
        ..Default::default()
    };
    file.add_missing(0).unwrap();
    let keys = Keys::new(
        file.ring().unwrap(),
        "https://as.example",
        "https://as.example",
    );
    let dbg = format!("{keys:?} {file:?}");
    for secret in file.signing.iter().map(|e| &e.pkcs8) {
        assert!(!dbg.contains(secret.as_str()), "{dbg}");
    }
    for secret in file.secrets.iter().map(|e| &e.key) {
        assert!(!dbg.contains(secret.as_str()), "{dbg}");
    }
    let config = rotafetch_server::Config {
        db: ":memory:".into(),
        ..Default::default()
    };
    let state = rotafetch_server::AppState::new(&config).await.unwrap();
    let dbg = format!("{state:?}");
    assert!(dbg.contains("kid") && !dbg.contains("key: ["), "{dbg}");
    let config = rotafetch_server::Config {
        db: "postgres://rotafetch:pw-s3cret@db.internal:5432/auth".into(),
        ..Default::default()
    };
    let dbg = format!("{config:?}");
    assert!(
        dbg.contains("db.internal") && !dbg.contains("pw-s3cret"),
        "{dbg}"
    );
}

on_both_backends!(
    jwks_verifies_access_tokens,
    keys_live_in_a_private_file_not_in_the_database,
    keys_an_older_version_left_in_the_database_are_moved_out,
    rotation_keeps_old_tokens_and_the_grace_rule,
    instances_with_other_keys_are_refused,
);
