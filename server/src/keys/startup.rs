//! Loading the key ring on start: from the key file (generated once when absent), from the
//! environment, or in memory for a throw-away database; moving keys an older version left in
//! the database out of it; and the database's key registry, which keeps instances that share
//! a database from running with different keys.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::file::{self, KeyFile, Legacy, VERSION};
use super::KeyRing;
use crate::store::{is_postgres_url, Millis, Store};

/// The environment variable that may hold the whole key file (JSON) instead of a file.
pub const KEYS_ENV: &str = "ROTAFETCH_KEYS";

/// Where the keys come from.
#[derive(Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A key file (`--key-file`), generated when absent.
    File(PathBuf),
    /// The key file's JSON from the environment ([`KEYS_ENV`]); never written, so it must
    /// hold every kind of key.
    Inline(String),
    /// Fresh keys in memory (a `:memory:` database without `--key-file`).
    Ephemeral,
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::File(p) => f.debug_tuple("File").field(p).finish(),
            KeySource::Inline(_) => f.write_str("Inline(<redacted>)"),
            KeySource::Ephemeral => f.write_str("Ephemeral"),
        }
    }
}

impl KeySource {
    /// The default for database `db`: `<db>.keys.json` beside a SQLite file, in memory for
    /// `:memory:`. PostgreSQL has no default: every instance must be given the same keys.
    pub fn default_for(db: &str) -> Result<KeySource> {
        if is_postgres_url(db) {
            anyhow::bail!(
                "with PostgreSQL, pass --key-file (or set {KEYS_ENV}): every instance sharing \
                 the database must sign with the same keys, so give them all the same file"
            );
        }
        if db == ":memory:" {
            return Ok(KeySource::Ephemeral);
        }
        Ok(KeySource::File(PathBuf::from(format!("{db}.keys.json"))))
    }
}

/// Names of the keys older versions kept in `server_meta` (then `server_secrets`).
const LEGACY_NAMES: [&str; 3] = ["ed25519_seed", "successor_hmac_key", "dpop_nonce_key"];
/// The registry entry: the `kid`s of the newest keys of each kind any instance started with.
const REGISTRY: &str = "key_ring";

async fn read_legacy(store: &dyn Store) -> Result<Legacy> {
    let mut found = [None; 3];
    for (slot, name) in found.iter_mut().zip(LEGACY_NAMES) {
        if let Some(v) = store.read_meta(name).await? {
            let key: [u8; 32] = v
                .as_slice()
                .try_into()
                .with_context(|| format!("the old key {name} in the database is not 32 bytes"))?;
            *slot = Some(key);
        }
    }
    let [ed25519_seed, successor_key, nonce_key] = found;
    Ok(Legacy {
        ed25519_seed,
        successor_key,
        nonce_key,
    })
}

/// The registry check, pure: every `kid` the database has seen as a newest key must be in
/// this ring (else this instance has other keys, or older ones, than the instances before
/// it). Returns the registry to record (this ring's newest `kid`s) if it changed.
pub fn check_registry(registered: &[String], ring: &KeyRing) -> Result<Option<Vec<String>>> {
    let missing: Vec<&str> = registered
        .iter()
        .filter(|kid| !ring.contains(kid))
        .map(String::as_str)
        .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "these keys do not match the database: it was used with keys {missing:?}, which this \
         key set lacks (another instance's key file, or an older copy of it). Give every \
         instance the same, current key file"
    );
    let newest = ring.newest_kids();
    Ok((newest != registered).then_some(newest))
}

/// Under the key file's lock: reads (or creates) the file, adds the old version's keys and
/// any missing kind, and writes it back if that changed it.
fn load_file(path: &Path, legacy: &Legacy, registered: &[String], now: u64) -> Result<KeyFile> {
    let existing = file::read(path)?;
    let created = existing.is_none();
    if created && !registered.is_empty() && legacy.is_empty() {
        anyhow::bail!(
            "the key file {} does not exist, but this database was used with keys {registered:?}: \
             restore that key file (or copy it from the instance that has it) instead of \
             generating new keys",
            path.display()
        );
    }
    let mut keys = existing.clone().unwrap_or(KeyFile {
        version: VERSION,
        ..KeyFile::default()
    });
    let moved = keys.merge_legacy(legacy)?;
    let generated = keys.add_missing(now)?;
    if Some(&keys) != existing.as_ref() {
        file::write(path, &keys, created)?;
    }
    let path = path.display();
    if created {
        tracing::info!(%path, "created the key file (mode 0600); keep it secret and back it up");
    }
    if !moved.is_empty() {
        tracing::warn!(%path, kids = ?moved, "moved the keys an older version kept in the database into the key file; the database no longer holds them");
    }
    if !generated.is_empty() && !created {
        tracing::info!(%path, kids = ?generated, "added missing keys to the key file");
    }
    Ok(keys)
}

/// Loads the key ring from `source` and reconciles it with the database:
///
/// 1. Keys an older version kept in the database are moved into the key file (as the
///    current keys of a new file, so an upgrade signs nobody out; as older, verify-only keys
///    of an existing one) and then deleted from the database, with a log line. With keys
///    from the environment (never written) they are kept in memory for this run.
/// 2. A missing file is generated (mode 0600), unless the database has been used with other
///    keys before: then the start is refused (a lost or uncopied key file).
/// 3. The database's key registry (`kid`s only) must be covered by the ring: an instance
///    with another instance's keys, or an older copy of a rotated file, is refused.
pub async fn load(source: &KeySource, store: &dyn Store, now_ms: Millis) -> Result<KeyRing> {
    let now = u64::try_from(now_ms / 1000).unwrap_or(0);
    let legacy = read_legacy(store).await?;
    let registered: Vec<String> = match store.read_meta(REGISTRY).await? {
        Some(v) => serde_json::from_slice(&v).context("the database's key registry")?,
        None => Vec::new(),
    };
    let keys = match source {
        KeySource::File(path) => {
            let (path, legacy, registered) = (path.clone(), legacy.clone(), registered.clone());
            tokio::task::spawn_blocking(move || {
                let _lock = file::lock(&path)?;
                load_file(&path, &legacy, &registered, now)
            })
            .await??
        }
        KeySource::Inline(text) => {
            let mut keys = KeyFile::parse(text).with_context(|| format!("${KEYS_ENV}"))?;
            let mut complete = keys.clone();
            anyhow::ensure!(
                complete.add_missing(now)?.is_empty(),
                "${KEYS_ENV} lacks some kinds of keys: write a complete key file with \
                 `rotafetch-server --rotate-keys --key-file FILE` and put its content there"
            );
            if !keys.merge_legacy(&legacy)?.is_empty() {
                tracing::warn!("the database held keys of an older version: they verify for this run only (the key set from ${KEYS_ENV} is not written); they were deleted from the database");
            }
            keys
        }
        KeySource::Ephemeral => {
            let mut keys = KeyFile {
                version: VERSION,
                ..KeyFile::default()
            };
            keys.merge_legacy(&legacy)?;
            keys.add_missing(now)?;
            tracing::info!("keys generated in memory for this run (no --key-file)");
            keys
        }
    };
    let ring = keys.ring()?;
    let update = check_registry(&registered, &ring)?;
    if let Some(kids) = update {
        let value = serde_json::to_vec(&kids).expect("kids serialize");
        store.write_meta(REGISTRY, &value, now_ms).await?;
    }
    if !legacy.is_empty() {
        store.delete_meta(&LEGACY_NAMES).await?;
    }
    Ok(ring)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_refuses_keys_it_has_not_seen_and_follows_rotations() {
        let mut a = KeyFile {
            version: VERSION,
            ..KeyFile::default()
        };
        a.add_missing(0).unwrap();
        let ring_a = a.ring().unwrap();
        let first = check_registry(&[], &ring_a).unwrap().expect("recorded");
        assert_eq!(check_registry(&first, &ring_a).unwrap(), None, "unchanged");
        // Another instance's own keys: refused.
        let mut b = a.clone();
        b.signing.clear();
        b.secrets.clear();
        b.add_missing(0).unwrap();
        let err = check_registry(&first, &b.ring().unwrap()).unwrap_err();
        assert!(format!("{err}").contains("same, current key file"), "{err}");
        // The rotated file covers the old registry and records its new keys; the old copy
        // is refused from then on.
        let mut rotated = a.clone();
        rotated.rotate(10, 0).unwrap();
        let second = check_registry(&first, &rotated.ring().unwrap())
            .unwrap()
            .unwrap();
        assert!(check_registry(&second, &ring_a).is_err());
    }

    #[test]
    fn postgres_needs_a_key_file_and_memory_needs_none() {
        assert!(KeySource::default_for("postgres://u@h/db").is_err());
        assert_eq!(
            KeySource::default_for(":memory:").unwrap(),
            KeySource::Ephemeral
        );
        assert_eq!(
            KeySource::default_for("target/demo.db").unwrap(),
            KeySource::File("target/demo.db.keys.json".into())
        );
        assert!(!format!("{:?}", KeySource::Inline("SECRET".into())).contains("SECRET"));
    }
}
