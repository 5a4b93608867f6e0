//! Resolving paths against the workspace root.
//!
//! Guarantee: [`resolve_in_workspace`] returns a path whose every existing component has
//! been resolved by the OS (symlinks, `..`) and that lies inside the canonical workspace
//! root; for a file that does not exist yet, its nearest existing ancestor is resolved and
//! the missing tail may contain only plain names.

use std::path::{Component, Path, PathBuf};

use crate::error::{ProposalError, Result};

/// Canonical form of `path` (relative paths are taken relative to `root`), refused when it
/// lies outside `root`. `root` must already be canonical.
pub fn resolve_in_workspace(root: &Path, path: &Path) -> Result<PathBuf> {
    let joined = if path.is_absolute() {
        path.to_owned()
    } else {
        root.join(path)
    };
    let resolved = canonicalize_allow_missing(&joined)?;
    if !resolved.starts_with(root) {
        return Err(ProposalError::OutsideWorkspace {
            path: path.to_owned(),
            resolved,
            root: root.to_owned(),
        });
    }
    Ok(resolved)
}

fn canonicalize_allow_missing(path: &Path) -> Result<PathBuf> {
    let mut existing = path;
    let mut tail: Vec<&std::ffi::OsStr> = Vec::new();
    loop {
        match std::fs::canonicalize(existing) {
            Ok(mut base) => {
                for name in tail.iter().rev() {
                    base.push(name);
                }
                return Ok(base);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // A missing component followed by `..` could name anything once created,
                // so only plain names may follow the nearest existing ancestor.
                match existing.components().next_back() {
                    Some(Component::Normal(name)) => tail.push(name),
                    Some(Component::CurDir) => {}
                    _ => {
                        return Err(ProposalError::UnresolvablePath {
                            path: path.to_owned(),
                        });
                    }
                }
                existing = existing
                    .parent()
                    .ok_or_else(|| ProposalError::UnresolvablePath {
                        path: path.to_owned(),
                    })?;
            }
            Err(e) => return Err(ProposalError::io("resolve", existing, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn refuses_escapes_through_dotdot_and_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("ws");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        let root = std::fs::canonicalize(&root).unwrap();

        let ok = resolve_in_workspace(&root, Path::new("src/new/deeper.rs")).unwrap();
        assert_eq!(ok, root.join("src/new/deeper.rs"));
        let ok = resolve_in_workspace(&root, &root.join("src/../src/x.rs")).unwrap();
        assert_eq!(ok, root.join("src/x.rs"));

        for bad in [
            "../outside/x",
            "link/x.rs",
            "link/new/dir/x.rs",
            "src/../../outside/x",
        ] {
            let err = resolve_in_workspace(&root, Path::new(bad)).unwrap_err();
            assert!(
                matches!(err, ProposalError::OutsideWorkspace { .. }),
                "{bad}: {err}"
            );
            assert!(err.to_string().contains("outside the workspace root"));
        }
        let err = resolve_in_workspace(&root, Path::new("missing/../../etc/passwd")).unwrap_err();
        assert!(
            matches!(err, ProposalError::UnresolvablePath { .. }),
            "{err}"
        );
    }
}
