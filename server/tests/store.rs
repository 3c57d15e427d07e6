//! The `Store` trait itself, on both backends: rotation, grace, reuse, expiry, pruning and
//! server-wide values, with explicit clocks.

mod common;

use std::sync::Arc;

use common::{pg, Backend};
use rotafetch_server::store::{self, Policy, RotateOutcome, Store, TokenHash};

const POLICY: Policy = Policy {
    session_ttl_ms: 10_000,
    idle_ttl_ms: 5_000,
    reuse_grace_ms: 1_000,
};

fn h(n: u8) -> TokenHash {
    [n; 32]
}

/// A fresh store with user "u" (returned id) and family "f" whose first token is h(1).
async fn setup(b: Backend) -> (Arc<dyn Store>, i64) {
    let db = match b {
        Backend::Sqlite => ":memory:".to_owned(),
        Backend::Postgres => pg::shared().create_db().await,
    };
    let s = store::open(&db).await.unwrap();
    let uid = s.create_user("u", "hash", 0).await.unwrap().unwrap();
    assert_eq!(s.create_user("u", "hash", 0).await.unwrap(), None);
    assert_eq!(s.user_by_name("u").await.unwrap().unwrap().id, uid);
    s.create_family(uid, "f", &h(1), 0).await.unwrap();
    (s, uid)
}

async fn rotate_grace_reuse(b: Backend) {
    let (s, uid) = setup(b).await;
    let rotate = |p: u8, now| {
        let s = s.clone();
        async move { s.rotate(&h(p), &h(p + 1), now, &POLICY).await.unwrap() }
    };
    let grace = RotateOutcome::Grace {
        user_id: uid,
        family_id: "f".into(),
    };
    assert_eq!(
        rotate(1, 100).await,
        RotateOutcome::Rotated {
            user_id: uid,
            family_id: "f".into()
        }
    );
    // A request whose clock read 90 but that got the lock after the rotation at 100 (or
    // another instance's clock, a little behind): grace, not reuse.
    assert_eq!(rotate(1, 90).await, grace);
    assert_eq!(rotate(1, 600).await, grace);
    assert_eq!(rotate(9, 600).await, RotateOutcome::Unknown);
    // `check` reports a spent token without acting.
    assert_eq!(
        s.check(&h(1), 700, &POLICY).await.unwrap(),
        RotateOutcome::Reused {
            family_id: "f".into(),
            newly_revoked: false
        }
    );
    assert!(!s.session("f").await.unwrap().unwrap().revoked);
    assert_eq!(
        rotate(1, 1_200).await,
        RotateOutcome::Reused {
            family_id: "f".into(),
            newly_revoked: true
        }
    );
    assert_eq!(rotate(2, 1_300).await, RotateOutcome::Revoked);
    let session = s.session("f").await.unwrap().unwrap();
    assert!(session.revoked);
    assert_eq!((session.user_id, session.username.as_str()), (uid, "u"));
    assert!(!s.revoke_family_of(&h(2), 1_400, "logout").await.unwrap());
}

async fn grace_ends_when_the_successor_is_used(b: Backend) {
    let (s, _) = setup(b).await;
    assert!(matches!(
        s.rotate(&h(1), &h(2), 100, &POLICY).await.unwrap(),
        RotateOutcome::Rotated { .. }
    ));
    assert!(matches!(
        s.rotate(&h(2), &h(3), 200, &POLICY).await.unwrap(),
        RotateOutcome::Rotated { .. }
    ));
    assert!(matches!(
        s.rotate(&h(1), &h(2), 300, &POLICY).await.unwrap(),
        RotateOutcome::Reused {
            newly_revoked: true,
            ..
        }
    ));
    assert!(s.session("f").await.unwrap().unwrap().revoked);
}

async fn expiry_and_prune(b: Backend) {
    let (s, uid) = setup(b).await;
    assert_eq!(
        s.rotate(&h(1), &h(2), 5_000, &POLICY).await.unwrap(),
        RotateOutcome::Expired
    );
    assert!(matches!(
        s.check(&h(1), 4_000, &POLICY).await.unwrap(),
        RotateOutcome::Valid { .. }
    ));
    // A second, logged-out family: pruned once the revocation is older than `keep`.
    s.create_family(uid, "g", &h(50), 3_000).await.unwrap();
    assert!(s.revoke_family_of(&h(50), 3_500, "logout").await.unwrap());
    assert_eq!(s.prune(4_000, &POLICY, 1_000).await.unwrap(), 0);
    assert_eq!(s.prune(4_600, &POLICY, 1_000).await.unwrap(), 1);
    assert_eq!(s.session("g").await.unwrap(), None);
    assert!(s.session("f").await.unwrap().is_some());
    assert_eq!(s.prune(6_000, &POLICY, 0).await.unwrap(), 1);
    assert_eq!(s.session("f").await.unwrap(), None);
    // Its tokens went with it.
    assert_eq!(
        s.rotate(&h(1), &h(2), 6_000, &POLICY).await.unwrap(),
        RotateOutcome::Unknown
    );
}

async fn meta_values_are_written_replaced_and_deleted(b: Backend) {
    let (s, _) = setup(b).await;
    assert_eq!(s.read_meta("k").await.unwrap(), None);
    s.write_meta("k", &[1; 4], 0).await.unwrap();
    s.write_meta("k", &[2; 4], 0).await.unwrap();
    s.write_meta("j", b"x", 0).await.unwrap();
    assert_eq!(s.read_meta("k").await.unwrap(), Some(vec![2; 4]));
    s.delete_meta(&["k", "absent"]).await.unwrap();
    assert_eq!(s.read_meta("k").await.unwrap(), None);
    assert_eq!(s.read_meta("j").await.unwrap(), Some(b"x".to_vec()));
}

/// The version-2 tables this test needs (as migrations 1 and 2 left them).
const V2_TABLES: &str = "CREATE TABLE server_secrets (name TEXT PRIMARY KEY, value BYTEA NOT NULL,
    created_at BIGINT NOT NULL);
CREATE TABLE dpop_jti (key BYTEA PRIMARY KEY, expires_at BIGINT NOT NULL);
CREATE INDEX dpop_jti_expires ON dpop_jti(expires_at);";

/// Migration 3 on a database a version-2 server left: `server_secrets` (with its keys)
/// becomes `server_meta`, and live replay-cache entries stay, numbered (PostgreSQL).
async fn migration_3_keeps_the_old_keys_and_replay_entries(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = match b {
        Backend::Sqlite => dir.path().join("v2.db").to_string_lossy().into_owned(),
        Backend::Postgres => pg::shared().create_db().await,
    };
    let fill = "INSERT INTO server_secrets VALUES ('ed25519_seed', 'seed-bytes', 0);
        INSERT INTO dpop_jti VALUES ('k1', 5000), ('k2', 6000);";
    match b {
        Backend::Sqlite => {
            // The tables as a version-2 server left them (the ones migration 3 touches, and
            // the others it expects), marked version 2.
            let conn = rusqlite::Connection::open(&db).unwrap();
            conn.execute_batch(&V2_TABLES.replace("BYTEA", "BLOB"))
                .unwrap();
            // Blobs, as the old server wrote them.
            let fill =
                "INSERT INTO server_secrets VALUES ('ed25519_seed', X'736565642d6279746573', 0);
                INSERT INTO dpop_jti VALUES (X'6b31', 5000), (X'6b32', 6000);";
            conn.execute_batch(fill).unwrap();
            for stmt in ["CREATE TABLE users (id INTEGER PRIMARY KEY, username TEXT NOT NULL UNIQUE, password_hash TEXT NOT NULL, created_at INTEGER NOT NULL)",
                "CREATE TABLE families (id TEXT PRIMARY KEY, user_id INTEGER NOT NULL, created_at INTEGER NOT NULL, last_rotated_at INTEGER NOT NULL, revoked_at INTEGER, revoke_reason TEXT, jkt TEXT)",
                "CREATE TABLE refresh_tokens (hash BLOB PRIMARY KEY, family_id TEXT NOT NULL, parent_hash BLOB UNIQUE, issued_at INTEGER NOT NULL, used_at INTEGER, bound INTEGER NOT NULL DEFAULT 0)",
                "PRAGMA user_version = 2"] {
                conn.execute_batch(stmt).unwrap();
            }
        }
        Backend::Postgres => {
            let c = pg::connect(&db).await;
            c.batch_execute(V2_TABLES).await.unwrap();
            c.batch_execute(
                &fill
                    .replace("'seed-bytes'", "'seed-bytes'::bytea")
                    .replace("('k1'", "('k1'::bytea")
                    .replace("('k2'", "('k2'::bytea"),
            )
            .await
            .unwrap();
            c.batch_execute(
                "CREATE TABLE users (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, username TEXT NOT NULL UNIQUE, password_hash TEXT NOT NULL, created_at BIGINT NOT NULL);
                 CREATE TABLE families (id TEXT PRIMARY KEY, user_id BIGINT NOT NULL, created_at BIGINT NOT NULL, last_rotated_at BIGINT NOT NULL, revoked_at BIGINT, revoke_reason TEXT, jkt TEXT);
                 CREATE TABLE refresh_tokens (hash BYTEA PRIMARY KEY, family_id TEXT NOT NULL, parent_hash BYTEA UNIQUE, issued_at BIGINT NOT NULL, used_at BIGINT, bound BOOLEAN NOT NULL DEFAULT FALSE);
                 CREATE TABLE rotafetch_schema (version INTEGER NOT NULL);
                 INSERT INTO rotafetch_schema VALUES (2);",
            )
            .await
            .unwrap();
        }
    }
    let s = store::open(&db).await.unwrap();
    assert_eq!(
        s.read_meta("ed25519_seed").await.unwrap(),
        Some(b"seed-bytes".to_vec())
    );
    use rotafetch_server::store::JtiOutcome;
    // The span of the two numbered entries: full at a bound of 2.
    assert_eq!(
        s.peek_dpop_jti(&[9; 32], 1_000, 2).await.unwrap(),
        JtiOutcome::Full
    );
    assert_eq!(s.prune_dpop_jti(5_500).await.unwrap(), (1, 1));
}

on_both_backends!(
    migration_3_keeps_the_old_keys_and_replay_entries,
    rotate_grace_reuse,
    grace_ends_when_the_successor_is_used,
    expiry_and_prune,
    meta_values_are_written_replaced_and_deleted,
);

/// A rotation dropped while it waits for the family lock (a client gone, a request timeout)
/// leaves no transaction open behind it (a connection left idle in its transaction would hold
/// the family locked for every other connection), and the token then rotates. PostgreSQL
/// only: the transaction is begun in the same round trip as its statements and rolled back
/// by a guard when dropped.
#[tokio::test]
async fn a_cancelled_rotation_leaves_no_lock_behind_postgres() {
    let db = pg::shared().create_db().await;
    let s = store::open(&db).await.unwrap();
    let uid = s.create_user("u", "hash", 0).await.unwrap().unwrap();
    s.create_family(uid, "f", &h(1), 0).await.unwrap();
    let mut holder = pg::connect(&db).await;
    let tx = holder.transaction().await.unwrap();
    tx.execute("SELECT 1 FROM families WHERE id = 'f' FOR UPDATE", &[])
        .await
        .unwrap();
    let waiting = tokio::time::timeout(
        std::time::Duration::from_millis(300),
        s.rotate(&h(1), &h(2), 100, &POLICY),
    )
    .await;
    assert!(waiting.is_err(), "the rotation waits for the lock");
    tx.rollback().await.unwrap();
    // Its statements then run, and its ROLLBACK right behind them: no connection of the
    // store's pool stays in a transaction.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let open: i64 = holder
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND application_name = 'rotafetch-server'
                   AND state LIKE 'idle in transaction%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if open == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a pooled connection stays in its transaction"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let rotated = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        s.rotate(&h(1), &h(2), 100, &POLICY),
    )
    .await
    .expect("no abandoned transaction holds the family");
    assert_eq!(
        rotated.unwrap(),
        RotateOutcome::Rotated {
            user_id: uid,
            family_id: "f".into()
        }
    );
}

/// The write-ahead log reaches the database file without any request checkpointing it: a
/// thread of the store's own does (`store/sqlite/checkpoint.rs`). The file alone (a copy
/// without its `-wal`) soon holds rows written in far fewer than SQLite's default 1,000 pages,
/// which before only a request's commit past those pages would have copied there, stalling
/// every request behind it.
#[tokio::test]
async fn the_log_is_checkpointed_off_the_requests_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let s = store::open(path.to_str().unwrap()).await.unwrap();
    let uid = s.create_user("u", "hash", 0).await.unwrap().unwrap();
    for n in 1..=40u8 {
        s.create_family(uid, &format!("f{n}"), &h(n), 0)
            .await
            .unwrap();
    }
    let families_in_the_file = || {
        let copy = dir.path().join("copy.db");
        std::fs::copy(&path, &copy).unwrap();
        let _ = std::fs::remove_file(dir.path().join("copy.db-wal"));
        let conn = rusqlite::Connection::open(&copy).unwrap();
        conn.query_row("SELECT COUNT(*) FROM families", [], |r| r.get::<_, i64>(0))
            .unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while families_in_the_file() < 40 {
        assert!(
            std::time::Instant::now() < deadline,
            "the rows never reached the database file"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The store still serves after its log was checkpointed (and restarted).
    s.create_family(uid, "g", &h(200), 0).await.unwrap();
    assert_eq!(s.session("g").await.unwrap().unwrap().user_id, uid);
}
