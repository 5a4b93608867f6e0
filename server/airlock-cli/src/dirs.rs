//! XDG directories. Libraries never look these up themselves: the CLI resolves them once and
//! passes plain paths down, so tests can point everything at temp dirs through the environment.
//!
//! - config: `$XDG_CONFIG_HOME/airlock` (default `~/.config/airlock`)
//! - state:  `$XDG_STATE_HOME/airlock` (default `~/.local/state/airlock`): logs, audit, proposals, trust
//! - managed policy: `$AIRLOCK_MANAGED_POLICY` (default `/etc/airlock/policy.toml`)

use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Dirs {
    pub config: PathBuf,
    pub state: PathBuf,
    pub managed_policy: PathBuf,
}

impl Dirs {
    pub fn from_env() -> anyhow::Result<Dirs> {
        let home = || -> anyhow::Result<PathBuf> {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(PathBuf::from)
                .ok_or_else(|| {
                    anyhow::anyhow!("neither $HOME nor the XDG directory variables are set")
                })
        };
        let xdg = |var: &str, fallback: &str| -> anyhow::Result<PathBuf> {
            match std::env::var_os(var)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
            {
                // The XDG spec says relative paths are invalid and must be ignored.
                Some(p) if p.is_absolute() => Ok(p),
                _ => Ok(home()?.join(fallback)),
            }
        };
        Ok(Dirs {
            config: xdg("XDG_CONFIG_HOME", ".config")?.join("airlock"),
            state: xdg("XDG_STATE_HOME", ".local/state")?.join("airlock"),
            managed_policy: std::env::var_os("AIRLOCK_MANAGED_POLICY")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/etc/airlock/policy.toml")),
        })
    }

    pub fn user_policy(&self) -> PathBuf {
        self.config.join("policy.toml")
    }

    pub fn user_config(&self) -> PathBuf {
        self.config.join("config.toml")
    }
}
