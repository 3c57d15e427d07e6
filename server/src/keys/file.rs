//! The key file: its JSON format, the changes made to it (generation of missing keys,
//! rotation, retirement, keys moved from an older version's database) as pure functions of
//! the file and the time, and reading and writing it (mode 0600, atomic, under a lock).
//!
//! ```json
//! {
//!   "version": 1,
//!   "signing": [{"kid": "…", "alg": "EdDSA", "active_from": 1767225600, "pkcs8": "<base64url DER>"}],
//!   "secrets": [{"kid": "…", "purpose": "refresh_successor", "active_from": 1767225600, "key": "<base64url, 32 bytes>"}]
//! }
//! ```
//!
//! `active_from` (Unix seconds) is when a key starts to sign or derive; until then it only
//! verifies. A key is retired (removed) by the rotation that comes [`RETIRE_AFTER_SECS`]
//! after a newer key of its kind took over.

use std::fmt;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::{Alg, KeyRing, Purpose, Secret, SigningKey, SIGNING_ALGS};
use crate::tokens::random_bytes;

/// The format version this server writes and reads.
pub const VERSION: u32 = 1;
/// A key superseded this long ago is dropped at the next rotation: longer than any token it
/// signed can live (access tokens; keep `--access-ttl` below it) and than any grace window.
pub const RETIRE_AFTER_SECS: u64 = 24 * 3600;

/// The key file's content. `Debug` shows only the `kid`s.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    pub version: u32,
    #[serde(default)]
    pub signing: Vec<SigningEntry>,
    #[serde(default)]
    pub secrets: Vec<SecretEntry>,
}

/// A private signing key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningEntry {
    pub kid: String,
    pub alg: Alg,
    pub active_from: u64,
    /// The private key, PKCS#8 DER, base64url.
    pub pkcs8: String,
}

/// A symmetric secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretEntry {
    pub kid: String,
    pub purpose: Purpose,
    pub active_from: u64,
    /// 32 bytes, base64url.
    pub key: String,
}

impl fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kids = |it: &mut dyn Iterator<Item = &String>| it.cloned().collect::<Vec<_>>();
        f.debug_struct("KeyFile")
            .field("signing", &kids(&mut self.signing.iter().map(|e| &e.kid)))
            .field("secrets", &kids(&mut self.secrets.iter().map(|e| &e.kid)))
            .finish()
    }
}

impl SigningEntry {
    fn new(alg: Alg, der: &[u8], active_from: u64) -> Result<Self> {
        let key = SigningKey::from_pkcs8(alg, der, active_from)?;
        Ok(SigningEntry {
            kid: key.kid,
            alg,
            active_from,
            pkcs8: B64URL.encode(der),
        })
    }
}

impl SecretEntry {
    fn new(purpose: Purpose, key: &[u8; 32], active_from: u64) -> Self {
        SecretEntry {
            kid: Secret::kid_of(key),
            purpose,
            active_from,
            key: B64URL.encode(key),
        }
    }
}

/// Keys an older server version kept in the database (`server_secrets`): the Ed25519 seed,
/// the successor HMAC key and the DPoP nonce key, each 32 bytes if present.
#[derive(Default, Clone, PartialEq, Eq)]
pub struct Legacy {
    pub ed25519_seed: Option<[u8; 32]>,
    pub successor_key: Option<[u8; 32]>,
    pub nonce_key: Option<[u8; 32]>,
}

impl fmt::Debug for Legacy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Legacy").finish_non_exhaustive()
    }
}

impl Legacy {
    pub fn is_empty(&self) -> bool {
        self.ed25519_seed.is_none() && self.successor_key.is_none() && self.nonce_key.is_none()
    }
}

impl KeyFile {
    /// Parses a key file's text.
    pub fn parse(text: &str) -> Result<KeyFile> {
        let file: KeyFile = serde_json::from_str(text)
            // serde's message may quote a value: say only where.
            .map_err(|e| {
                anyhow::anyhow!(
                    "malformed key file (line {}, column {})",
                    e.line(),
                    e.column()
                )
            })?;
        anyhow::ensure!(
            file.version == VERSION,
            "key file version {} is not supported (this server reads version {VERSION})",
            file.version
        );
        Ok(file)
    }

    /// The file as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a key file serializes") + "\n"
    }

    /// The ring of these keys (each checked: its `kid` must be what the key computes to).
    pub fn ring(&self) -> Result<KeyRing> {
        let mut signing = Vec::new();
        for e in &self.signing {
            let der = B64URL
                .decode(&e.pkcs8)
                .with_context(|| format!("key {}: pkcs8", e.kid))?;
            let key = SigningKey::from_pkcs8(e.alg, &der, e.active_from)
                .with_context(|| format!("key {}", e.kid))?;
            anyhow::ensure!(
                key.kid == e.kid,
                "key {}: its kid should be {}",
                e.kid,
                key.kid
            );
            signing.push(key);
        }
        let mut secrets = Vec::new();
        for e in &self.secrets {
            let key: [u8; 32] = B64URL
                .decode(&e.key)
                .ok()
                .and_then(|k| k.try_into().ok())
                .with_context(|| format!("secret {}: expected 32 bytes, base64url", e.kid))?;
            let secret = Secret::new(e.purpose, key, e.active_from);
            anyhow::ensure!(
                secret.kid == e.kid,
                "secret {}: its kid should be {}",
                e.kid,
                secret.kid
            );
            secrets.push(secret);
        }
        Ok(KeyRing::new(signing, secrets))
    }

    /// Generates a key of every kind the server needs and the file lacks, active from `now`.
    /// Returns the `kid`s added.
    pub fn add_missing(&mut self, now: u64) -> Result<Vec<String>> {
        let mut added = Vec::new();
        for &alg in SIGNING_ALGS {
            if !self.signing.iter().any(|e| e.alg == alg) {
                let entry = SigningEntry::new(alg, &alg.generate()?, now)?;
                added.push(entry.kid.clone());
                self.signing.push(entry);
            }
        }
        for &purpose in Purpose::ALL {
            if !self.secrets.iter().any(|e| e.purpose == purpose) {
                let entry = SecretEntry::new(purpose, &random_bytes(), now);
                added.push(entry.kid.clone());
                self.secrets.push(entry);
            }
        }
        Ok(added)
    }

    /// Adds the keys an older version kept in the database, as keys active since forever
    /// (`active_from` 0): where the file has keys of that kind, those stay current and the
    /// old ones only verify; where it has none, the old ones go on as the current keys (so an
    /// upgrade signs nobody out). Keys already present are skipped. Returns the `kid`s added.
    pub fn merge_legacy(&mut self, legacy: &Legacy) -> Result<Vec<String>> {
        use ed25519_dalek::pkcs8::EncodePrivateKey as _;
        let mut added = Vec::new();
        if let Some(seed) = &legacy.ed25519_seed {
            let der = ed25519_dalek::SigningKey::from_bytes(seed)
                .to_pkcs8_der()
                .context("encoding the old signing key")?;
            let entry = SigningEntry::new(Alg::EdDSA, der.as_bytes(), 0)?;
            if !self.signing.iter().any(|e| e.kid == entry.kid) {
                added.push(entry.kid.clone());
                self.signing.push(entry);
            }
        }
        let old_secrets = [
            (Purpose::RefreshSuccessor, &legacy.successor_key),
            (Purpose::DpopNonce, &legacy.nonce_key),
        ];
        for (purpose, key) in old_secrets {
            if let Some(key) = key {
                let entry = SecretEntry::new(purpose, key, 0);
                if !self.secrets.iter().any(|e| e.kid == entry.kid) {
                    added.push(entry.kid.clone());
                    self.secrets.push(entry);
                }
            }
        }
        Ok(added)
    }

    /// A rotation: a new key of every kind, signing (deriving) from `now + delay`; keys
    /// superseded more than [`RETIRE_AFTER_SECS`] before `now` are dropped. Returns the new
    /// `kid`s.
    pub fn rotate(&mut self, now: u64, delay: u64) -> Result<Vec<String>> {
        self.retire(now);
        let from = now.saturating_add(delay);
        let mut added = Vec::new();
        for &alg in SIGNING_ALGS {
            let entry = SigningEntry::new(alg, &alg.generate()?, from)?;
            added.push(entry.kid.clone());
            self.signing.push(entry);
        }
        for &purpose in Purpose::ALL {
            let entry = SecretEntry::new(purpose, &random_bytes(), from);
            added.push(entry.kid.clone());
            self.secrets.push(entry);
        }
        Ok(added)
    }

    /// Drops every key that a newer key of its kind replaced more than
    /// [`RETIRE_AFTER_SECS`] before `now`.
    pub fn retire(&mut self, now: u64) {
        let cutoff = now.saturating_sub(RETIRE_AFTER_SECS);
        // Replaced: a newer key of its kind became active at or before the cutoff.
        fn replaced(from: u64, mut kind: impl Iterator<Item = u64>, cutoff: u64) -> bool {
            kind.any(|f| f > from && f <= cutoff)
        }
        let signing = self.signing.clone();
        self.signing.retain(|e| {
            let kind = signing.iter().filter(|o| o.alg == e.alg);
            !replaced(e.active_from, kind.map(|o| o.active_from), cutoff)
        });
        let secrets = self.secrets.clone();
        self.secrets.retain(|e| {
            let kind = secrets.iter().filter(|o| o.purpose == e.purpose);
            !replaced(e.active_from, kind.map(|o| o.active_from), cutoff)
        });
    }
}

/// The sibling file locked while a key file is read and changed (so that instances starting
/// together on one host generate or move keys once).
fn lock_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

/// Holds the key file's lock until dropped.
#[derive(Debug)]
pub struct Locked {
    _file: std::fs::File,
}

/// Takes the key file's lock (blocking).
pub fn lock(path: &Path) -> Result<Locked> {
    let lock = lock_path(path);
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock)
        .with_context(|| format!("opening {}", lock.display()))?;
    f.lock()
        .with_context(|| format!("locking {}", lock.display()))?;
    Ok(Locked { _file: f })
}

/// Reads the key file; `None` if it does not exist. Warns if others may read it.
pub fn read(path: &Path) -> Result<Option<KeyFile>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(e).with_context(|| format!("reading the key file {}", path.display()))
        }
    };
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            "the key file can be read by other users (mode {:o}): chmod 600 it",
            mode & 0o777
        );
    }
    KeyFile::parse(&text)
        .with_context(|| format!("the key file {}", path.display()))
        .map(Some)
}

/// Writes `file` to `path` atomically (a new 0600 file renamed over the old one). With
/// `create`, fails instead if `path` exists.
pub fn write(path: &Path, file: &KeyFile, create: bool) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(file.to_json().as_bytes())?;
    f.sync_all()?;
    let done = if create {
        // A hard link fails if the name exists: never replaces a file someone else made.
        std::fs::hard_link(&tmp, path).map(|_| std::fs::remove_file(&tmp))
    } else {
        std::fs::rename(&tmp, path).map(Ok)
    };
    match done {
        Ok(_) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e).with_context(|| format!("writing the key file {}", path.display()))
        }
    }
}

/// `--rotate-keys`: adds a new key of every kind to the file at `path` (created if absent),
/// signing from `now + delay`, and retires old keys. Returns the file written and the new
/// `kid`s.
pub fn rotate(path: &Path, now: u64, delay: u64) -> Result<(KeyFile, Vec<String>)> {
    let _lock = lock(path)?;
    let existed = read(path)?;
    let mut file = existed.clone().unwrap_or(KeyFile {
        version: VERSION,
        ..KeyFile::default()
    });
    let added = file.rotate(now, delay)?;
    write(path, &file, existed.is_none())?;
    Ok((file, added))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh(now: u64) -> KeyFile {
        let mut f = KeyFile {
            version: VERSION,
            ..KeyFile::default()
        };
        f.add_missing(now).unwrap();
        f
    }

    #[test]
    fn a_fresh_file_has_every_kind_and_round_trips() {
        let f = fresh(1_000);
        assert_eq!(f.signing.len(), SIGNING_ALGS.len());
        assert_eq!(f.secrets.len(), Purpose::ALL.len());
        let back = KeyFile::parse(&f.to_json()).unwrap();
        assert_eq!(back, f);
        let ring = back.ring().unwrap();
        assert_eq!(ring.newest_kids().len(), f.signing.len() + f.secrets.len());
        let mut again = back.clone();
        assert!(
            again.add_missing(2_000).unwrap().is_empty(),
            "nothing missing"
        );
        assert!(
            !format!("{f:?}").contains(&f.secrets[0].key),
            "Debug hides keys"
        );
    }

    #[test]
    fn bad_files_are_refused_without_quoting_them() {
        let err = KeyFile::parse(r#"{"version": 1, "signing": "SECRETVALUE"}"#).unwrap_err();
        assert!(!format!("{err:#}").contains("SECRETVALUE"), "{err:#}");
        assert!(KeyFile::parse(r#"{"version": 2}"#).is_err());
        assert!(KeyFile::parse(r#"{"version": 1, "extra": 1}"#).is_err());
        let mut f = fresh(0);
        f.secrets[0].kid = "forged".into();
        assert!(f.ring().is_err(), "a kid must match its key");
        let mut f = fresh(0);
        f.signing[0].pkcs8 = "AAAA".into();
        assert!(f.ring().is_err());
    }

    #[test]
    fn rotation_schedules_new_keys_and_retires_old_ones_a_day_later() {
        let day = RETIRE_AFTER_SECS;
        let mut f = fresh(1_000);
        let first = f.ring().unwrap().newest_kids();
        let added = f.rotate(2_000, 300).unwrap();
        assert_eq!(added.len(), first.len());
        let ring = f.ring().unwrap();
        assert_eq!(ring.newest_kids(), added);
        // The old key signs until the new one's time, then verifies only.
        assert_eq!(ring.signer(Alg::EdDSA, 2_299).unwrap().kid(), first[0]);
        assert_eq!(ring.signer(Alg::EdDSA, 2_300).unwrap().kid(), added[0]);
        assert!(ring.contains(&first[0]));
        // A day after the new key took over, the next rotation drops the old one.
        f.rotate(2_300 + day - 1, 0).unwrap();
        assert!(f.ring().unwrap().contains(&first[0]));
        f.rotate(2_300 + day, 0).unwrap();
        let ring = f.ring().unwrap();
        assert!(!ring.contains(&first[0]));
        assert!(ring.contains(&added[0]), "replaced just now: kept");
    }

    #[test]
    fn legacy_keys_become_current_keys_of_a_new_file_and_old_keys_of_an_existing_one() {
        let legacy = Legacy {
            ed25519_seed: Some([7; 32]),
            successor_key: Some([8; 32]),
            nonce_key: None,
        };
        let mut new = KeyFile {
            version: VERSION,
            ..KeyFile::default()
        };
        let added = new.merge_legacy(&legacy).unwrap();
        assert_eq!(added.len(), 2);
        new.add_missing(5_000).unwrap();
        let ring = new.ring().unwrap();
        assert_eq!(
            ring.secret(Purpose::RefreshSuccessor, 6_000).unwrap(),
            &[8; 32]
        );
        assert_eq!(ring.signer(Alg::EdDSA, 6_000).unwrap().kid(), added[0]);
        assert!(new.merge_legacy(&legacy).unwrap().is_empty(), "merged once");

        let mut existing = fresh(5_000);
        existing.merge_legacy(&legacy).unwrap();
        let ring = existing.ring().unwrap();
        assert_ne!(
            ring.secret(Purpose::RefreshSuccessor, 6_000).unwrap(),
            &[8; 32]
        );
        assert!(ring
            .secrets(Purpose::RefreshSuccessor, 6_000)
            .contains(&&[8; 32]));
        assert!(
            ring.contains(&added[0]),
            "the old signing key still verifies"
        );
    }

    #[test]
    fn files_are_private_created_once_and_replaced_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        assert!(read(&path).unwrap().is_none());
        let f = fresh(0);
        write(&path, &f, true).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(
            write(&path, &fresh(0), true).is_err(),
            "never overwrites on create"
        );
        assert_eq!(read(&path).unwrap(), Some(f.clone()));
        let (rotated, added) = rotate(&path, 10, 0).unwrap();
        assert_eq!(read(&path).unwrap(), Some(rotated.clone()));
        assert_eq!(rotated.ring().unwrap().newest_kids(), added);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.contains(".tmp")), "{names:?}");
    }
}
