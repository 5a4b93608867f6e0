//! Gitignore-style path patterns, relative to the workspace root.
//!
//! Semantics (the subset of gitignore that a policy needs, documented in docs/policy.md):
//! - a pattern without a `/` (other than a trailing one) matches at any depth: `.env` matches
//!   `.env` and `sub/.env`;
//! - a pattern with a leading or inner `/` is anchored at the workspace root;
//! - a pattern that matches a directory also matches everything below it; a trailing `/`
//!   is accepted for readability (`.vscode/`);
//! - `*` and `?` never cross `/`; `**` crosses any number of directories;
//! - negation (`!pattern`) is rejected: strictest-wins policies have no "unless".

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

/// The globs a pattern compiles to: the pattern itself and everything below it.
fn expand(pattern: &str) -> Result<[String; 2], String> {
    let p = pattern.trim();
    if p.starts_with('!') {
        return Err(format!(
            "`{pattern}`: negated patterns are not supported (the strictest rule always wins)"
        ));
    }
    if p.contains('\\') {
        return Err(format!(
            "`{pattern}`: use `/` as the path separator (backslashes are not allowed)"
        ));
    }
    let p = p.trim_end_matches('/');
    if p.is_empty() || p == "/" {
        return Err(format!("`{pattern}` matches nothing; write a path or glob"));
    }
    if p.split('/').any(|seg| seg == "..") {
        return Err(format!(
            "`{pattern}`: `..` is not allowed; patterns are relative to the workspace root"
        ));
    }
    let anchored = p.starts_with('/') || p.contains('/');
    let p = p.trim_start_matches('/');
    let base = if anchored || p.starts_with("**") {
        p.to_owned()
    } else {
        format!("**/{p}")
    };
    let below = format!("{base}/**");
    Ok([base, below])
}

fn build(glob: &str) -> Result<Glob, globset::Error> {
    GlobBuilder::new(glob)
        .literal_separator(true)
        .backslash_escape(false)
        .build()
}

/// Checks that a pattern is well-formed; the error says what is wrong with it.
pub fn validate(pattern: &str) -> Result<(), String> {
    for g in expand(pattern)? {
        build(&g).map_err(|e| format!("invalid glob `{pattern}`: {}", e.kind()))?;
    }
    Ok(())
}

/// Patterns, compiled on first use; [`PatternSet::matches`] returns the indices of matching
/// patterns. Compiling is the expensive part of loading a policy (regex automata), and a
/// short-lived `airlock exec` only reads the pattern lists, so it never pays for it.
#[derive(Debug, Clone)]
pub struct PatternSet {
    patterns: Vec<String>,
    compiled: std::sync::OnceLock<Compiled>,
}

#[derive(Debug, Clone)]
struct Compiled {
    set: GlobSet,
    /// glob index in `set` -> pattern index
    owner: Vec<usize>,
}

impl PatternSet {
    /// Keeps the patterns; invalid ones (which validation already rejected) match nothing.
    pub fn new<'a>(patterns: impl IntoIterator<Item = &'a str>) -> PatternSet {
        PatternSet {
            patterns: patterns.into_iter().map(str::to_owned).collect(),
            compiled: std::sync::OnceLock::new(),
        }
    }

    fn compiled(&self) -> &Compiled {
        self.compiled.get_or_init(|| {
            let mut builder = GlobSetBuilder::new();
            let mut owner = Vec::new();
            for (i, p) in self.patterns.iter().enumerate() {
                let Ok(globs) = expand(p) else { continue };
                for g in globs {
                    if let Ok(glob) = build(&g) {
                        builder.add(glob);
                        owner.push(i);
                    }
                }
            }
            let set = builder.build().unwrap_or_else(|_| GlobSet::empty());
            Compiled { set, owner }
        })
    }

    /// Indices (into the patterns given to `new`) of the patterns matching `rel`, a
    /// workspace-relative path with `/` separators.
    pub fn matches(&self, rel: &str) -> Vec<usize> {
        if self.patterns.is_empty() {
            return Vec::new();
        }
        let c = self.compiled();
        let mut out: Vec<usize> = c
            .set
            .matches(rel)
            .into_iter()
            .filter_map(|g| c.owner.get(g).copied())
            .collect();
        out.dedup();
        out
    }
}

/// Explains in words what a pattern matches (for hover).
pub fn describe(pattern: &str) -> String {
    match expand(pattern) {
        Err(e) => e,
        Ok([base, _]) => {
            let p = pattern.trim().trim_end_matches('/');
            if base.starts_with("**/") && !p.starts_with("**") {
                format!(
                    "`{p}` at any depth below the workspace root (e.g. `{p}` and `sub/{p}`), and everything inside it if it is a directory"
                )
            } else {
                format!(
                    "`{}` relative to the workspace root, and everything inside it if it is a directory",
                    base
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, path: &str) -> bool {
        !PatternSet::new([pattern]).matches(path).is_empty()
    }

    #[test]
    fn gitignore_semantics() {
        let cases: &[(&str, &str, bool)] = &[
            (".env", ".env", true),
            (".env", "sub/.env", true),
            (".env", ".env.local", false),
            (".env.*", ".env.local", true),
            (".env*", ".envrc", true),
            ("secrets/**", "secrets/a/b", true),
            ("secrets/**", "x/secrets/a", false),
            ("secrets/", "secrets/a", true),
            ("secrets/", "x/secrets/a", true),
            ("/secrets", "x/secrets", false),
            ("/secrets", "secrets/key", true),
            (".git/hooks/", ".git/hooks/pre-commit", true),
            (".git/hooks/", "sub/.git/hooks/pre-commit", false),
            (".git/config", ".git/config", true),
            ("*.pem", "a/b/c.pem", true),
            ("src/*.rs", "src/a/b.rs", false),
            ("src/**/*.rs", "src/a/b.rs", true),
            (".vscode/", ".vscode/settings.json", true),
        ];
        for (p, path, want) in cases {
            assert_eq!(m(p, path), *want, "pattern {p} path {path}");
        }
    }

    #[test]
    fn rejects_bad_patterns() {
        assert!(validate("!keep").is_err());
        assert!(validate("a/[").is_err());
        assert!(validate("../x").is_err());
        assert!(validate("/").is_err());
        assert!(validate("a\\b").is_err());
        assert!(validate("src/{a,b}/**").is_ok());
    }
}
