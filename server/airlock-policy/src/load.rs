//! Loading the policy layers into one [`Policy`].
//!
//! Guarantees: a missing file is an absent layer; any other problem (unreadable, not UTF-8,
//! too large, invalid) is an error and no policy is returned, so a broken file can never
//! loosen anything. Entries that are valid but not applied — loosening entries of an
//! untrusted workspace policy, keys locked by the managed policy — are removed before the
//! policy is built and each is reported as a [`Warning`] with its position.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::eval::{LayerRules, Policy};
use crate::file::{Entry, FileError, LineIndex, MAX_POLICY_BYTES, PolicyFile};
use crate::trust::{file_sha256, is_trusted};
use crate::{Layer, Verdict};

/// Where the layers live. The CLI resolves these from the environment; libraries never do.
#[derive(Debug, Clone)]
pub struct PolicyPaths {
    pub workspace_root: PathBuf,
    /// `$XDG_CONFIG_HOME/airlock/policy.toml`
    pub user_policy: PathBuf,
    /// `$AIRLOCK_MANAGED_POLICY` or `/etc/airlock/policy.toml`
    pub managed_policy: PathBuf,
    /// `$XDG_STATE_HOME/airlock/trust.json`
    pub trust_store: PathBuf,
}

impl PolicyPaths {
    /// `<workspace_root>/.airlock/policy.toml`
    pub fn workspace_policy(&self) -> PathBuf {
        self.workspace_root.join(".airlock").join("policy.toml")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{}: cannot read policy file: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: policy file is not valid UTF-8 (first bad byte at offset {offset})", path.display())]
    NotUtf8 { path: PathBuf, offset: usize },
    #[error("{}", render_invalid(path, errors))]
    Invalid {
        path: PathBuf,
        errors: Vec<FileError>,
    },
}

fn render_invalid(path: &Path, errors: &[FileError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}:{e}", path.display()))
        .collect::<Vec<_>>()
        .join("\n")
}

impl PolicyError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            PolicyError::Read { path, .. }
            | PolicyError::NotUtf8 { path, .. }
            | PolicyError::Invalid { path, .. } => path,
        }
    }

    /// One `FILE:LINE:COL: message` line per problem (`FILE: message` without a position).
    pub fn lines(&self) -> Vec<String> {
        match self {
            PolicyError::Invalid { path, errors } => errors
                .iter()
                .map(|e| format!("{}:{e}", path.display()))
                .collect(),
            PolicyError::NotUtf8 { path, offset } => {
                vec![format!(
                    "{}:1:1: policy file is not valid UTF-8 (first bad byte at offset {offset})",
                    path.display()
                )]
            }
            other => vec![other.to_string()],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningKind {
    /// A loosening entry of a workspace policy that is not trusted: ignored.
    UntrustedLoosening,
    /// An entry of a lower layer for a key the managed policy locks: ignored.
    Locked,
    /// `lock` outside the managed policy: ignored.
    LockIgnored,
}

/// A valid entry that is not applied, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Warning {
    pub kind: WarningKind,
    pub layer: Layer,
    pub path: PathBuf,
    pub line: usize,
    pub col: usize,
    /// Byte range in the file.
    pub span: Range<usize>,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: warning: {}",
            self.path.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

/// One policy file that took part in the load.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LayerSource {
    pub layer: Layer,
    pub path: PathBuf,
    pub sha256: String,
    /// For the workspace layer: whether this exact content is trusted.
    pub trusted: Option<bool>,
}

/// The result of a successful load.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub policy: Policy,
    pub warnings: Vec<Warning>,
    /// The files that exist, highest precedence first.
    pub sources: Vec<LayerSource>,
    /// `true` when there is no workspace policy or it is trusted.
    pub workspace_trusted: bool,
}

/// Reads a policy file: `Ok(None)` when it does not exist.
pub(crate) fn read_policy_text(path: &Path) -> Result<Option<String>, PolicyError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(PolicyError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    if bytes.len() > MAX_POLICY_BYTES {
        return Err(PolicyError::Invalid {
            path: path.to_path_buf(),
            errors: vec![FileError {
                span: 0..0,
                line: 1,
                col: 1,
                message: format!(
                    "policy file is {} bytes; the limit is {MAX_POLICY_BYTES}",
                    bytes.len()
                ),
            }],
        });
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|e| PolicyError::NotUtf8 {
            path: path.to_path_buf(),
            offset: e.utf8_error().valid_up_to(),
        })
}

/// Reads and validates one policy file (for `airlock policy check`). `Ok(false)` when it
/// does not exist.
pub fn check_file(path: &Path) -> Result<bool, PolicyError> {
    let Some(text) = read_policy_text(path)? else {
        return Ok(false);
    };
    crate::file::parse(&text).map_err(|errors| PolicyError::Invalid {
        path: path.to_path_buf(),
        errors,
    })?;
    Ok(true)
}

struct RawLayer {
    layer: Layer,
    path: PathBuf,
    text: String,
    file: PolicyFile,
}

fn read_layer(layer: Layer, path: &Path) -> Result<Option<RawLayer>, PolicyError> {
    let Some(text) = read_policy_text(path)? else {
        return Ok(None);
    };
    let file = crate::file::parse(&text).map_err(|errors| PolicyError::Invalid {
        path: path.to_path_buf(),
        errors,
    })?;
    Ok(Some(RawLayer {
        layer,
        path: path.to_path_buf(),
        text,
        file,
    }))
}

/// Loads managed, user and workspace layers. See the module docs for what is an error.
pub fn load(paths: &PolicyPaths) -> Result<Loaded, PolicyError> {
    let managed = read_layer(Layer::Managed, &paths.managed_policy)?;
    let user = read_layer(Layer::User, &paths.user_policy)?;
    let workspace = read_layer(Layer::Workspace, &paths.workspace_policy())?;

    let locks: Vec<String> = managed
        .as_ref()
        .map(|m| m.file.lock.iter().map(|e| e.value.clone()).collect())
        .unwrap_or_default();

    let mut warnings = Vec::new();
    let mut sources = Vec::new();
    let mut layers = Vec::new();
    let mut workspace_trusted = true;

    for raw in [managed, user, workspace].into_iter().flatten() {
        let sha = file_sha256(raw.text.as_bytes());
        let mut trusted = None;
        let mut file = raw.file;
        let mut sink = WarningSink {
            index: LineIndex::new(&raw.text),
            layer: raw.layer,
            path: raw.path.clone(),
            out: &mut warnings,
        };
        if raw.layer != Layer::Managed {
            for e in std::mem::take(&mut file.lock) {
                sink.push(
                    WarningKind::LockIgnored,
                    &e,
                    "`lock` only takes effect in the managed policy; ignored".to_owned(),
                );
            }
            remove_locked(&mut file, &locks, &mut sink);
        }
        if raw.layer == Layer::Workspace {
            // An unreadable trust store trusts nothing.
            let ok = is_trusted(&paths.trust_store, &raw.path, &sha).unwrap_or(false);
            trusted = Some(ok);
            workspace_trusted = ok;
            if !ok {
                remove_loosening(&mut file, &mut sink);
            }
        }
        sources.push(LayerSource {
            layer: raw.layer,
            path: raw.path.clone(),
            sha256: sha,
            trusted,
        });
        layers.push(LayerRules {
            layer: raw.layer,
            path: raw.path.display().to_string(),
            file,
        });
    }
    Ok(Loaded {
        policy: Policy::build(&paths.workspace_root, layers),
        warnings,
        sources,
        workspace_trusted,
    })
}

pub(crate) struct WarningSink<'a, 'b> {
    pub index: LineIndex<'a>,
    pub layer: Layer,
    pub path: PathBuf,
    pub out: &'b mut Vec<Warning>,
}

impl WarningSink<'_, '_> {
    pub fn push(&mut self, kind: WarningKind, e: &Entry, message: String) {
        let (line, col) = self.index.line_col(e.span.start);
        self.out.push(Warning {
            kind,
            layer: self.layer,
            path: self.path.clone(),
            line,
            col,
            span: e.span.clone(),
            message,
        });
    }
}

fn is_locked(locks: &[String], table: &str, key: &str) -> bool {
    locks
        .iter()
        .any(|l| l == table || *l == format!("{table}.{key}"))
}

fn remove_locked(file: &mut PolicyFile, locks: &[String], sink: &mut WarningSink<'_, '_>) {
    if locks.is_empty() {
        return;
    }
    let drop_list =
        |table: &str, key: &str, list: &mut Vec<Entry>, sink: &mut WarningSink<'_, '_>| {
            if is_locked(locks, table, key) {
                for e in std::mem::take(list) {
                    sink.push(
                        WarningKind::Locked,
                        &e,
                        format!(
                            "`{table}.{key}` is locked by the managed policy; \"{}\" is ignored",
                            e.value
                        ),
                    );
                }
            }
        };
    drop_list("files", "deny_read", &mut file.files.deny_read, sink);
    drop_list("files", "allow_read", &mut file.files.allow_read, sink);
    drop_list("files", "protect", &mut file.files.protect, sink);
    drop_list("files", "ask_write", &mut file.files.ask_write, sink);
    drop_list("commands", "allow", &mut file.commands.allow, sink);
    drop_list("commands", "ask", &mut file.commands.ask, sink);
    drop_list("commands", "deny", &mut file.commands.deny, sink);
    drop_list("network", "allow", &mut file.network.allow, sink);
    drop_list("network", "deny", &mut file.network.deny, sink);
    for (table, slot) in [
        ("commands", &mut file.commands.default),
        ("network", &mut file.network.default),
    ] {
        if is_locked(locks, table, "default")
            && let Some((_, e)) = slot.take()
        {
            sink.push(
                WarningKind::Locked,
                &e,
                format!("`{table}.default` is locked by the managed policy; ignored"),
            );
        }
    }
}

/// The built-in defaults an untrusted workspace may not go below.
const BUILTIN_COMMAND_DEFAULT: Verdict = Verdict::Ask;
const BUILTIN_NETWORK_DEFAULT: Verdict = Verdict::Deny;

fn remove_loosening(file: &mut PolicyFile, sink: &mut WarningSink<'_, '_>) {
    let untrusted = "ignored until you trust this workspace policy (`airlock policy trust`)";
    for (key, list) in [
        ("files.allow_read", &mut file.files.allow_read),
        ("commands.allow", &mut file.commands.allow),
        ("network.allow", &mut file.network.allow),
    ] {
        for e in std::mem::take(list) {
            sink.push(
                WarningKind::UntrustedLoosening,
                &e,
                format!("`{key}` \"{}\" loosens the policy: {untrusted}", e.value),
            );
        }
    }
    for (key, slot, builtin) in [
        (
            "commands.default",
            &mut file.commands.default,
            BUILTIN_COMMAND_DEFAULT,
        ),
        (
            "network.default",
            &mut file.network.default,
            BUILTIN_NETWORK_DEFAULT,
        ),
    ] {
        if slot.as_ref().is_some_and(|(v, _)| *v < builtin)
            && let Some((v, e)) = slot.take()
        {
            sink.push(
                WarningKind::UntrustedLoosening,
                &e,
                format!("`{key} = \"{v}\"` is looser than the built-in \"{builtin}\": {untrusted}"),
            );
        }
    }
}

/// The loosening warnings an untrusted workspace policy text would produce (for editors).
pub(crate) fn loosening_warnings(text: &str, path: &Path) -> Vec<Warning> {
    let Ok(mut file) = crate::file::parse(text) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut sink = WarningSink {
        index: LineIndex::new(text),
        layer: Layer::Workspace,
        path: path.to_path_buf(),
        out: &mut out,
    };
    remove_loosening(&mut file, &mut sink);
    out
}
