//! Protected paths and deny-read files inside the workspace.
//!
//! Landlock can't deny a subpath of a directory it allows, so this module provides:
//! - a scan of the workspace that finds the deny-read matches and the existing protected paths;
//! - the mount plan used where user namespaces work (protected paths bind-mounted read-only
//!   over themselves, every directory between the workspace root and a protected path
//!   self-bind-mounted so renaming it away fails with `EBUSY`, deny-read files covered by an
//!   empty read-only file);
//! - an integrity snapshot taken before each command and checked after the whole process tree
//!   is dead: anything changed, created or removed under a protected path is restored and
//!   reported. This is the only layer for protected paths that don't exist yet and, without
//!   user namespaces, for all of them (see docs/security.md for the window this leaves).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use airlock_glob::{PatternSet, ReadRules};

use crate::SandboxError;

/// Always protected, relative to the workspace root.
pub const BUILTIN_PROTECTED: &[&str] = &[
    ".git/hooks/",
    ".git/config",
    ".airlock/",
    ".envrc",
    ".vscode/",
    ".idea/",
];

/// Deny-read globs used when the policy gives none.
pub const DEFAULT_DENY_READ: &[&str] = &[".env*"];

/// Snapshots larger than this fail closed rather than leave a path unprotected.
const SNAPSHOT_LIMIT: u64 = 64 << 20;

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '[', '{'])
}

/// Normalises a workspace-relative path or glob (no leading `/` or `./`, no trailing `/`).
fn clean(s: &str) -> String {
    let s = s.trim().trim_start_matches("./").trim_start_matches('/');
    s.trim_end_matches('/').to_string()
}

fn check_relative(s: &str) -> Result<(), SandboxError> {
    if Path::new(s)
        .components()
        .any(|c| matches!(c, Component::ParentDir))
    {
        return Err(SandboxError::Config(format!(
            "path `{s}` escapes the workspace"
        )));
    }
    Ok(())
}

/// Compiles patterns with the policy's semantics (the shared `airlock-glob`), failing on the
/// first malformed one: a pattern the sandbox can't honour must not be silently dropped.
fn pattern_set(patterns: &[String]) -> Result<PatternSet, SandboxError> {
    for p in patterns {
        airlock_glob::validate(p).map_err(SandboxError::Config)?;
    }
    Ok(PatternSet::new(patterns.iter().map(String::as_str)))
}

/// The protected list split into literal paths (fully protected) and other globs.
#[derive(Debug, Clone)]
pub(crate) struct ProtectSpec {
    pub literals: Vec<PathBuf>,
    pub globs: PatternSet,
    pub has_globs: bool,
}

pub(crate) fn protect_spec(extra: &[String]) -> Result<ProtectSpec, SandboxError> {
    let mut literals = Vec::new();
    let mut globs = Vec::new();
    for p in BUILTIN_PROTECTED
        .iter()
        .map(|s| s.to_string())
        .chain(extra.iter().cloned())
    {
        let c = clean(&p);
        if c.is_empty() {
            continue;
        }
        check_relative(&c)?;
        // `dir/**` protects the whole directory: treat as the literal `dir`.
        let lit = c.strip_suffix("/**").unwrap_or(&c);
        if has_glob(lit) {
            // As written: cleaning drops the leading `/` that anchors a glob at the root.
            globs.push(p.trim().to_owned());
        } else if !literals.iter().any(|l: &PathBuf| l == Path::new(lit)) {
            literals.push(PathBuf::from(lit));
        }
    }
    Ok(ProtectSpec {
        literals,
        has_globs: !globs.is_empty(),
        globs: pattern_set(&globs)?,
    })
}

/// What a walk of the workspace found.
#[derive(Debug, Default, Clone)]
pub(crate) struct Scan {
    /// Deny-read matches (absolute), files or directories.
    pub denied: Vec<(PathBuf, bool)>,
    /// Existing paths matching a non-literal protect glob (absolute).
    pub protected_glob_matches: Vec<PathBuf>,
}

/// Walks the workspace once (not following symlinks, not descending into `.git`). `deny` is
/// an ordered deny-read list with `!` exceptions ([`ReadRules`], what the policy hands over):
/// a denied directory is hidden whole unless an exception may open something below it; then
/// the walk goes on inside it and hides only what stays denied, so what the command can read
/// is exactly what the policy lets the agent read.
pub(crate) fn scan(
    workspace: &Path,
    deny: &[String],
    protect: &ProtectSpec,
) -> Result<Scan, SandboxError> {
    let deny = ReadRules::new(deny.iter().map(String::as_str)).map_err(SandboxError::Config)?;
    let mut out = Scan {
        protected_glob_matches: submodule_protected(workspace),
        ..Scan::default()
    };
    if deny.is_empty() && !protect.has_globs {
        return Ok(out);
    }
    let mut stack = vec![workspace.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            // Unreadable dirs are unreadable inside the sandbox too.
            Err(_) => continue,
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(ft) = entry.file_type() else { continue };
            if ft.is_symlink() {
                continue;
            }
            let Ok(rel) = path.strip_prefix(workspace) else {
                continue;
            };
            if deny.denies(rel) {
                if ft.is_dir() && deny.may_open_below(rel) {
                    stack.push(path);
                } else {
                    out.denied.push((path, ft.is_dir()));
                }
                continue;
            }
            if protect.has_globs && protect.globs.is_match(rel) {
                out.protected_glob_matches.push(path.clone());
            }
            if ft.is_dir() && rel != Path::new(".git") {
                stack.push(path);
            }
        }
    }
    Ok(out)
}

/// Most directories looked at under `.git/modules`: a bound for a pathological tree.
const SUBMODULE_WALK_LIMIT: usize = 10_000;

/// The hooks and config of every submodule git dir (`.git/modules/<path>/`, and their own
/// `modules/` for nested submodules). Git runs them in the submodule exactly as it runs
/// `.git/hooks/` and `.git/config` at the top, so they are protected the same way (read-only
/// binds where user namespaces work, the integrity snapshot always); the objects, index and
/// refs next to them stay writable, so work in the submodule goes on. A git dir is a
/// directory with a `HEAD`; other directories are path components of a submodule's name.
fn submodule_protected(workspace: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![workspace.join(".git/modules")];
    let mut seen = 0;
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            // Symlinks are not followed: the snapshot records them as they are.
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            seen += 1;
            if seen > SUBMODULE_WALK_LIMIT {
                return out;
            }
            let path = entry.path();
            if path.join("HEAD").is_file() {
                out.push(path.join("hooks"));
                out.push(path.join("config"));
                stack.push(path.join("modules"));
            } else {
                stack.push(path);
            }
        }
    }
    out
}

/// One captured file-system node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    Missing,
    File {
        mode: u32,
        data: Vec<u8>,
    },
    Symlink(PathBuf),
    Dir {
        mode: u32,
        entries: BTreeMap<OsString, Node>,
    },
    /// Sockets, fifos, devices: only their presence is compared.
    Other,
}

fn capture(path: &Path, budget: &mut u64) -> Result<Node, SandboxError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Node::Missing),
        Err(e) => return Err(SandboxError::io("cannot snapshot protected path", path, e)),
    };
    let ft = meta.file_type();
    let mode = meta.permissions().mode() & 0o7777;
    if ft.is_symlink() {
        let t = std::fs::read_link(path)
            .map_err(|e| SandboxError::io("cannot snapshot protected path", path, e))?;
        return Ok(Node::Symlink(t));
    }
    if ft.is_file() {
        *budget = budget.checked_sub(meta.size()).ok_or_else(|| {
            SandboxError::Config(format!(
                "protected paths are larger than {} MiB; refusing to run",
                SNAPSHOT_LIMIT >> 20
            ))
        })?;
        let data = std::fs::read(path)
            .map_err(|e| SandboxError::io("cannot snapshot protected path", path, e))?;
        return Ok(Node::File { mode, data });
    }
    if ft.is_dir() {
        let mut entries = BTreeMap::new();
        let rd = std::fs::read_dir(path)
            .map_err(|e| SandboxError::io("cannot snapshot protected path", path, e))?;
        for e in rd {
            let e = e.map_err(|e| SandboxError::io("cannot snapshot protected path", path, e))?;
            entries.insert(e.file_name(), capture(&e.path(), budget)?);
        }
        return Ok(Node::Dir { mode, entries });
    }
    Ok(Node::Other)
}

/// An existing directory on the way to (or at) a protected path, held open so that, if the
/// command renames it away and plants a replacement, the original can be found and put back.
#[derive(Debug)]
struct DirPin {
    rel: PathBuf,
    fd: std::os::fd::OwnedFd,
    dev: u64,
    ino: u64,
}

/// Protected paths as they were before the command.
#[derive(Debug)]
pub(crate) struct Snapshot {
    workspace: PathBuf,
    items: Vec<(PathBuf, Node)>,
    pins: Vec<DirPin>,
}

impl Snapshot {
    pub fn take(
        workspace: &Path,
        spec: &ProtectSpec,
        glob_matches: &[PathBuf],
    ) -> Result<Snapshot, SandboxError> {
        let mut budget = SNAPSHOT_LIMIT;
        let mut items = Vec::new();
        let rels = spec.literals.iter().cloned().chain(
            glob_matches
                .iter()
                .filter_map(|p| p.strip_prefix(workspace).ok().map(Path::to_path_buf)),
        );
        for rel in rels {
            let abs = workspace.join(&rel);
            // A protected path under a symlinked or non-directory ancestor (e.g. `.git` as a
            // gitdir file in a worktree) does not exist as such; record it as missing.
            let node = if ancestors_are_dirs(workspace, &rel) {
                capture(&abs, &mut budget)?
            } else {
                Node::Missing
            };
            items.push((rel, node));
        }
        let mut pins: Vec<DirPin> = Vec::new();
        for (rel, node) in &items {
            let mut dirs = between(rel);
            if matches!(node, Node::Dir { .. }) {
                dirs.push(rel.clone());
            }
            for d in dirs {
                if pins.iter().any(|p| p.rel == d) {
                    continue;
                }
                let abs = workspace.join(&d);
                let Ok(meta) = std::fs::symlink_metadata(&abs) else {
                    continue;
                };
                if !meta.file_type().is_dir() {
                    continue;
                }
                let Ok(fd) = crate::landlock_rules::open_path_nofollow(&abs) else {
                    continue;
                };
                pins.push(DirPin {
                    rel: d,
                    fd,
                    dev: meta.dev(),
                    ino: meta.ino(),
                });
            }
        }
        pins.sort_by_key(|p| p.rel.components().count());
        Ok(Snapshot {
            workspace: workspace.to_path_buf(),
            items,
            pins,
        })
    }

    /// Puts renamed-away directories back where they were. The replacement the command
    /// planted is kept next to it under a `.airlock-replaced-*` name for the user to inspect.
    fn restore_pins(&self, violations: &mut Vec<String>) {
        for (n, pin) in self.pins.iter().enumerate() {
            let abs = self.workspace.join(&pin.rel);
            if let Ok(m) = std::fs::symlink_metadata(&abs)
                && m.dev() == pin.dev
                && m.ino() == pin.ino
            {
                continue;
            }
            use std::os::fd::AsRawFd;
            let link = PathBuf::from(format!("/proc/self/fd/{}", pin.fd.as_raw_fd()));
            let now_at = match std::fs::read_link(&link) {
                Ok(p)
                    if p.starts_with(&self.workspace)
                        && std::fs::symlink_metadata(&p).is_ok_and(|m| m.ino() == pin.ino) =>
                {
                    p
                }
                _ => {
                    violations.push(format!(
                        "protected directory {} was deleted",
                        pin.rel.display()
                    ));
                    continue;
                }
            };
            let mut kept = String::new();
            if std::fs::symlink_metadata(&abs).is_ok() {
                let mut name = abs.clone().into_os_string();
                name.push(format!(".airlock-replaced-{}-{n}", std::process::id()));
                let aside = PathBuf::from(name);
                if let Err(e) = std::fs::rename(&abs, &aside) {
                    violations.push(format!("protected directory {} was replaced; cannot move the replacement aside: {e}", pin.rel.display()));
                    continue;
                }
                kept = format!(" (the replacement is kept at {})", aside.display());
            }
            match std::fs::rename(&now_at, &abs) {
                Ok(()) => violations.push(format!(
                    "protected directory {} was moved to {}; moved back{kept}",
                    pin.rel.display(),
                    now_at.display()
                )),
                Err(e) => violations.push(format!(
                    "protected directory {} was moved to {}; RESTORE FAILED: {e}",
                    pin.rel.display(),
                    now_at.display()
                )),
            }
        }
    }

    /// Relative paths that exist (candidates for read-only bind mounts).
    pub fn existing(&self) -> impl Iterator<Item = &Path> {
        self.items
            .iter()
            .filter(|(_, n)| !matches!(n, Node::Missing))
            .map(|(p, _)| p.as_path())
    }

    /// Compares with the current state and restores what changed. Must only run once every
    /// process of the command is dead. Returns one message per restored path.
    pub fn check_and_restore(&self) -> Vec<String> {
        let mut violations = Vec::new();
        self.restore_pins(&mut violations);
        for (rel, before) in &self.items {
            let abs = self.workspace.join(rel);
            let mut ancestors_changed = false;
            if !matches!(before, Node::Missing) {
                ancestors_changed = repair_ancestors(&self.workspace, rel);
            }
            let now = if ancestors_are_dirs(&self.workspace, rel) {
                capture(&abs, &mut u64::MAX.clone()).unwrap_or(Node::Other)
            } else {
                // Something non-directory sits where an ancestor should be; when the path did
                // not exist before, that is fine (it is not a protected path then).
                Node::Missing
            };
            if now == *before && !ancestors_changed {
                continue;
            }
            let what = match (before, &now) {
                (Node::Missing, _) => "created",
                (_, Node::Missing) => "removed",
                _ => "modified",
            };
            let result = restore(&abs, before, &now);
            match result {
                Ok(()) => violations.push(format!(
                    "protected path {} was {what}; restored",
                    rel.display()
                )),
                Err(e) => violations.push(format!(
                    "protected path {} was {what}; RESTORE FAILED: {e}",
                    rel.display()
                )),
            }
        }
        violations
    }
}

fn ancestors_are_dirs(workspace: &Path, rel: &Path) -> bool {
    let mut cur = workspace.to_path_buf();
    let comps: Vec<_> = rel.components().collect();
    for c in comps.iter().take(comps.len().saturating_sub(1)) {
        cur.push(c);
        match std::fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_dir() => {}
            _ => return false,
        }
    }
    true
}

/// Makes every ancestor of `rel` a real directory again (replacing symlinks/files planted by
/// the command). Returns whether anything had to change.
fn repair_ancestors(workspace: &Path, rel: &Path) -> bool {
    let mut changed = false;
    let mut cur = workspace.to_path_buf();
    let comps: Vec<_> = rel.components().collect();
    for c in comps.iter().take(comps.len().saturating_sub(1)) {
        cur.push(c);
        match std::fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(_) => {
                changed = true;
                let _ = std::fs::remove_file(&cur);
                let _ = std::fs::create_dir(&cur);
            }
            Err(_) => {
                changed = true;
                let _ = std::fs::create_dir(&cur);
            }
        }
    }
    changed
}

/// Brings `path` from `now` back to `before`, keeping directories that still exist (so their
/// identity, and any directory handle held on them, survives).
fn restore(path: &Path, before: &Node, now: &Node) -> std::io::Result<()> {
    match (before, now) {
        (Node::Dir { mode, entries: b }, Node::Dir { entries: n, .. }) => {
            for name in n.keys().filter(|k| !b.contains_key(*k)) {
                remove_any(&path.join(name))?;
            }
            for (name, child) in b {
                let cur = n.get(name).unwrap_or(&Node::Missing);
                if cur != child {
                    restore(&path.join(name), child, cur)?;
                }
            }
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(*mode))
        }
        _ => remove_any(path).and_then(|()| recreate(path, before)),
    }
}

fn remove_any(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn recreate(path: &Path, node: &Node) -> std::io::Result<()> {
    match node {
        Node::Missing | Node::Other => Ok(()),
        Node::Symlink(t) => std::os::unix::fs::symlink(t, path),
        Node::File { mode, data } => {
            std::fs::write(path, data)?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(*mode))
        }
        Node::Dir { mode, entries } => {
            std::fs::create_dir(path)?;
            for (name, child) in entries {
                recreate(&path.join(name), child)?;
            }
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(*mode))
        }
    }
}

/// Directories strictly between the workspace root and `rel` (shallowest first).
pub(crate) fn between(rel: &Path) -> Vec<PathBuf> {
    let comps: Vec<_> = rel.components().collect();
    let mut out = Vec::new();
    let mut cur = PathBuf::new();
    for c in comps.iter().take(comps.len().saturating_sub(1)) {
        cur.push(c);
        out.push(cur.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The sandbox's view of the policy's read rules: `airlock-glob` semantics, exceptions
    /// included (what a scan hides is checked from outside a real sandbox in the e2e
    /// `sandbox_deny_read` suite).
    #[test]
    fn scan_hides_what_the_policy_denies() {
        let ws = tempfile::tempdir().unwrap();
        let w = ws.path();
        for f in [
            ".env",
            "sub/.env",
            ".env.example",
            "secret",
            "sub/secret",
            ".env.d/example",
            ".env.d/key",
            "private/a/key",
        ] {
            std::fs::create_dir_all(w.join(f).parent().unwrap()).unwrap();
            std::fs::write(w.join(f), "x").unwrap();
        }
        let rules: Vec<String> = [".env*", "!.env.example", "!.env.d/example", "/secret"]
            .into_iter()
            .chain(["private/"])
            .map(String::from)
            .collect();
        let found = scan(w, &rules, &protect_spec(&[]).unwrap()).unwrap();
        let mut denied: Vec<String> = found
            .denied
            .iter()
            .map(|(p, _)| p.strip_prefix(w).unwrap().display().to_string())
            .collect();
        denied.sort();
        assert_eq!(
            denied,
            [".env", ".env.d/key", "private", "secret", "sub/.env"]
        );
        assert!(scan(w, &["../x".into()], &protect_spec(&[]).unwrap()).is_err());
    }

    #[test]
    fn protect_spec_splits_literals_and_globs() {
        let s = protect_spec(&[".github/workflows/**".into(), "**/*.sh".into()]).unwrap();
        assert!(s.literals.contains(&PathBuf::from(".git/hooks")));
        assert!(s.literals.contains(&PathBuf::from(".github/workflows")));
        assert!(s.has_globs);
        assert!(protect_spec(&["../x".into()]).is_err());
    }

    #[test]
    fn snapshot_restores_modified_created_and_removed() {
        let ws = tempfile::tempdir().unwrap();
        let w = ws.path();
        std::fs::create_dir_all(w.join(".git/hooks")).unwrap();
        std::fs::write(w.join(".git/config"), "[core]\n").unwrap();
        std::fs::write(w.join(".git/hooks/pre-commit.sample"), "x").unwrap();
        let spec = protect_spec(&[]).unwrap();
        let snap = Snapshot::take(w, &spec, &[]).unwrap();
        std::fs::write(w.join(".git/config"), "[core]\nfsmonitor = evil\n").unwrap();
        std::fs::write(w.join(".git/hooks/pre-commit"), "evil").unwrap();
        std::fs::create_dir(w.join(".vscode")).unwrap();
        let v = snap.check_and_restore();
        assert_eq!(v.len(), 3, "{v:?}");
        assert_eq!(
            std::fs::read_to_string(w.join(".git/config")).unwrap(),
            "[core]\n"
        );
        assert!(!w.join(".git/hooks/pre-commit").exists());
        assert!(w.join(".git/hooks/pre-commit.sample").exists());
        assert!(!w.join(".vscode").exists());
        assert!(snap.check_and_restore().is_empty());
    }

    #[test]
    fn renamed_away_git_dir_is_moved_back() {
        let ws = tempfile::tempdir().unwrap();
        let w = ws.path();
        std::fs::create_dir_all(w.join(".git/hooks")).unwrap();
        std::fs::write(w.join(".git/config"), "[core]\n").unwrap();
        std::fs::write(w.join(".git/HEAD"), "ref").unwrap();
        let snap = Snapshot::take(w, &protect_spec(&[]).unwrap(), &[]).unwrap();
        std::fs::rename(w.join(".git"), w.join("moved")).unwrap();
        std::fs::write(w.join("moved/config"), "[core]\nfsmonitor = evil\n").unwrap();
        std::fs::create_dir_all(w.join(".git/hooks")).unwrap();
        std::fs::write(w.join(".git/config"), "[core]\n").unwrap();
        let v = snap.check_and_restore();
        assert!(v.iter().any(|m| m.contains("moved back")), "{v:?}");
        assert_eq!(std::fs::read_to_string(w.join(".git/HEAD")).unwrap(), "ref");
        assert_eq!(
            std::fs::read_to_string(w.join(".git/config")).unwrap(),
            "[core]\n"
        );
        assert!(!w.join("moved").exists());
    }
}
