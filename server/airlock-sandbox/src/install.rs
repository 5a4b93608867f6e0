//! Where a program is installed: the directories an agent's own installation needs readable
//! when the agent process itself runs in the sandbox.
//!
//! Guarantee: never returns `/`, the home directory or one of its ancestors, or a directory
//! that contains the workspace; where the natural directory would be one of those, only the
//! file itself is returned. System directories are readable anyway and are skipped.

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use crate::landlock_rules::SYSTEM_READ;

/// Read+execute grants for the installation of `command` (program and arguments): the
/// program as found in `path_var` (and its `#!` interpreter), and every absolute-path argument
/// that is a file (a node script). Each file is granted with its surroundings: the whole npm
/// tree (the parent of the top-most `node_modules`) for files inside one, else the file's
/// directory — both for the path as given and for its symlink target.
pub fn install_dirs(
    command: &[String],
    path_var: &OsStr,
    home: Option<&Path>,
    workspace: &Path,
) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = Vec::new();
    if let Some((program, args)) = command.split_first() {
        if let Some(p) = find_program(program, path_var) {
            if let Some(interp) = shebang_interpreter(&p, path_var) {
                files.push(interp);
            }
            files.push(p);
        }
        for a in args {
            let p = Path::new(a);
            if p.is_absolute() && p.is_file() {
                files.push(p.to_path_buf());
            }
        }
    }
    let mut out: Vec<PathBuf> = Vec::new();
    for f in files {
        let canonical = std::fs::canonicalize(&f).ok();
        for p in std::iter::once(f).chain(canonical) {
            let grant =
                grant_for(&p, home, workspace).map(|g| std::fs::canonicalize(&g).unwrap_or(g));
            if let Some(g) = grant
                && !out.contains(&g)
            {
                out.push(g);
            }
        }
    }
    out
}

fn find_program(program: &str, path_var: &OsStr) -> Option<PathBuf> {
    if program.contains('/') {
        let p = PathBuf::from(program);
        return (p.is_absolute() && p.is_file()).then_some(p);
    }
    std::env::split_paths(path_var)
        .filter(|d| d.is_absolute())
        .map(|d| d.join(program))
        .find(|c| c.is_file())
}

/// `#!/usr/bin/env node` → `node` found in `path_var`; `#!/abs/interp` → that path.
fn shebang_interpreter(file: &Path, path_var: &OsStr) -> Option<PathBuf> {
    let mut head = [0u8; 256];
    let n = std::fs::File::open(file).ok()?.read(&mut head).ok()?;
    let line = head[..n].strip_prefix(b"#!")?;
    let line = line.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split_whitespace();
    let interp = words.next()?;
    if Path::new(interp).file_name() == Some(OsStr::new("env")) {
        let name = words.find(|w| !w.starts_with('-') && !w.contains('='))?;
        return find_program(name, path_var);
    }
    Some(PathBuf::from(interp))
}

fn grant_for(file: &Path, home: Option<&Path>, workspace: &Path) -> Option<PathBuf> {
    if SYSTEM_READ.iter().any(|s| file.starts_with(s)) {
        return None;
    }
    if file.starts_with(workspace) {
        return None; // readable anyway (read-only)
    }
    let too_wide = |d: &Path| {
        d.parent().is_none() || home.is_some_and(|h| h.starts_with(d)) || workspace.starts_with(d)
    };
    let mut candidates = Vec::new();
    if let Some(nm) = topmost_node_modules(file) {
        candidates.extend(nm.parent().map(Path::to_path_buf));
        candidates.push(nm);
    }
    candidates.extend(file.parent().map(Path::to_path_buf));
    Some(
        candidates
            .into_iter()
            .find(|d| !too_wide(d))
            .unwrap_or_else(|| file.to_path_buf()),
    )
}

fn topmost_node_modules(file: &Path) -> Option<PathBuf> {
    let mut acc = PathBuf::new();
    for c in file.components() {
        acc.push(c);
        if c == Component::Normal(OsStr::new("node_modules")) {
            return Some(acc);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn npm_tree_program_dir_and_narrowing_near_home() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().canonicalize().unwrap();
        let home = root.join("home");
        let ws = root.join("ws");
        let pkg = home.join(".nvm/v20/lib/node_modules/@g/cli/dist");
        let bin = home.join(".nvm/v20/bin");
        for d in [&pkg, &bin, &ws] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(pkg.join("index.js"), "#!/usr/bin/env node\n").unwrap();
        std::fs::write(bin.join("node"), "").unwrap();
        std::os::unix::fs::symlink(pkg.join("index.js"), bin.join("cli")).unwrap();
        std::fs::write(root.join("script.toml"), "").unwrap();
        std::fs::write(home.join("agent.js"), "").unwrap();
        let path_var = std::env::join_paths([&bin]).unwrap();
        let cmd = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let dirs = install_dirs(
            &cmd(&[
                "cli",
                root.join("script.toml").to_str().unwrap(),
                home.join("agent.js").to_str().unwrap(),
            ]),
            &path_var,
            Some(&home),
            &ws,
        );
        assert_eq!(
            dirs,
            vec![
                bin.clone(),               // node (shebang) and the `cli` link
                home.join(".nvm/v20/lib"), // the npm tree of the link's target
                root.join("script.toml"),  // its dir holds HOME and the workspace
                home.join("agent.js"),     // its dir is HOME
            ]
        );
    }
}
