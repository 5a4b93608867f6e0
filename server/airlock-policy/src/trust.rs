//! The trust store: which workspace policy files the user has trusted, pinned to their sha256.
//!
//! Guarantees: trust is recorded for one exact file content; any change to the file (a single
//! byte) makes it untrusted again. The store is written atomically (temp file + rename), so a
//! crash never leaves a half-written store. An unreadable or corrupt store means "nothing is
//! trusted", never the opposite.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::load::{PolicyError, PolicyPaths, read_policy_text};

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("no workspace policy to trust at {path}")]
    NoPolicy { path: PathBuf },
    #[error("refusing to trust an invalid policy:\n{0}")]
    Invalid(#[from] PolicyError),
    #[error("{path}: cannot read the trust store: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: the trust store is corrupt ({message}); delete it to start over")]
    Corrupt { path: PathBuf, message: String },
    #[error("{path}: cannot write the trust store: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Store {
    version: u32,
    /// canonical policy file path -> record
    workspaces: BTreeMap<String, Record>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    sha256: String,
    trusted_at_unix: u64,
}

/// Lowercase hex sha256 of a file's bytes.
pub fn file_sha256(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn key(policy_file: &Path) -> String {
    policy_file
        .canonicalize()
        .unwrap_or_else(|_| policy_file.to_path_buf())
        .to_string_lossy()
        .into_owned()
}

fn read_store(trust_store: &Path) -> Result<Store, TrustError> {
    match std::fs::read(trust_store) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| TrustError::Corrupt {
            path: trust_store.to_path_buf(),
            message: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Store {
            version: 1,
            ..Store::default()
        }),
        Err(source) => Err(TrustError::Read {
            path: trust_store.to_path_buf(),
            source,
        }),
    }
}

/// Is this exact content (`sha256`) of `policy_file` trusted?
pub fn is_trusted(
    trust_store: &Path,
    policy_file: &Path,
    sha256: &str,
) -> Result<bool, TrustError> {
    let store = read_store(trust_store)?;
    Ok(store
        .workspaces
        .get(&key(policy_file))
        .is_some_and(|r| r.sha256 == sha256))
}

/// Trusts the workspace policy as it is now. Refuses a missing or invalid file. Returns the
/// policy path and the sha256 recorded.
pub fn trust_workspace(paths: &PolicyPaths) -> Result<(PathBuf, String), TrustError> {
    let policy_file = paths.workspace_policy();
    let Some(text) = read_policy_text(&policy_file)? else {
        return Err(TrustError::NoPolicy { path: policy_file });
    };
    crate::file::parse(&text).map_err(|errors| PolicyError::Invalid {
        path: policy_file.clone(),
        errors,
    })?;
    let sha = file_sha256(text.as_bytes());
    pin(&paths.trust_store, &policy_file, &sha)?;
    Ok((policy_file, sha))
}

/// Records `sha256` as the trusted content of `policy_file` (replacing any earlier record).
pub(crate) fn pin(trust_store: &Path, policy_file: &Path, sha256: &str) -> Result<(), TrustError> {
    let mut store = read_store(trust_store)?;
    store.version = 1;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    store.workspaces.insert(
        key(policy_file),
        Record {
            sha256: sha256.to_owned(),
            trusted_at_unix: now,
        },
    );
    let write_err = |source| TrustError::Write {
        path: trust_store.to_path_buf(),
        source,
    };
    let json =
        serde_json::to_vec_pretty(&store).map_err(|e| write_err(std::io::Error::other(e)))?;
    crate::atomic::write(trust_store, &json).map_err(write_err)
}
