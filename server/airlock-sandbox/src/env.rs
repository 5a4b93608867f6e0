//! Environment scrubbing: only allowlisted variables reach the command, and even those are
//! dropped if their name looks like a credential.

use std::ffi::OsString;

/// Variables passed through unchanged (plus every `LC_*`).
pub const ENV_ALLOWLIST: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "TERM",
    "COLORTERM",
    "TZ",
    "NO_COLOR",
    "CLICOLOR",
    "CLICOLOR_FORCE",
    "COLUMNS",
    "LINES",
    "EDITOR",
    "VISUAL",
    "PAGER",
    "CARGO_HOME",
    "RUSTUP_HOME",
    "RUSTUP_TOOLCHAIN",
    "CARGO_TERM_COLOR",
    "PYENV_ROOT",
];

const SECRET_MARKERS: &[&str] = &[
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "CREDENTIAL",
    "API_KEY",
    "APIKEY",
    "PRIVATE",
    "AUTH",
    "SESSION",
    "COOKIE",
];
const SECRET_PREFIXES: &[&str] = &[
    "AWS_",
    "GITHUB_",
    "GH_",
    "GITLAB_",
    "AZURE_",
    "GOOGLE_",
    "GCP_",
    "OPENAI_",
    "ANTHROPIC_",
    "SSH_",
    "GPG_",
    "NPM_",
    "DOCKER_",
];

/// Whether a variable name looks like it carries a credential.
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_MARKERS.iter().any(|m| upper.contains(m))
        || SECRET_PREFIXES.iter().any(|p| upper.starts_with(p))
        || upper.ends_with("_KEY")
}

/// Keeps allowlisted, non-secret variables of `vars`.
pub fn scrub_env(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
) -> Vec<(OsString, OsString)> {
    vars.into_iter()
        .filter(|(k, _)| {
            let Some(name) = k.to_str() else { return false };
            (ENV_ALLOWLIST.contains(&name) || name.starts_with("LC_")) && !is_secret_name(name)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_pass() {
        let vars = [
            ("PATH", "/usr/bin"),
            ("GITHUB_TOKEN", "x"),
            ("AWS_SECRET_ACCESS_KEY", "y"),
            ("LC_ALL", "C"),
            ("MY_API_KEY", "z"),
            ("SSH_AUTH_SOCK", "/run/ssh"),
            ("RANDOM_VAR", "r"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let kept: Vec<_> = scrub_env(vars)
            .into_iter()
            .map(|(k, _)| k.into_string().unwrap_or_default())
            .collect();
        assert_eq!(kept, vec!["PATH", "LC_ALL"]);
    }
}
