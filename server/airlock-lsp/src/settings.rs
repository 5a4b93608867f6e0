//! Settings from the user's `config.toml` and the editor's `initializationOptions`.
//!
//! The agent command is never read from the repository: only from these two sources or
//! `--agent`, so cloning a repository cannot make Airlock start a program.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct Settings {
    #[serde(default)]
    pub agent: AgentSettings,
    /// Log filter for the server's log file (`AIRLOCK_LOG` wins), e.g. `info`, `airlock_lsp=debug`.
    #[serde(default)]
    pub log: Option<String>,
    #[serde(default)]
    pub telemetry: TelemetrySettings,
    #[serde(default)]
    pub approvals: ApprovalSettings,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct ApprovalSettings {
    /// How long a connection through the egress proxy waits for the user to answer an `ask`
    /// before it is denied (default 60 s).
    #[serde(default)]
    pub network_timeout_secs: Option<u64>,
}

impl ApprovalSettings {
    pub const DEFAULT_NETWORK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

    pub fn network_timeout(&self) -> std::time::Duration {
        self.network_timeout_secs.map_or(
            Self::DEFAULT_NETWORK_TIMEOUT,
            std::time::Duration::from_secs,
        )
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct AgentSettings {
    /// Program and arguments, e.g. `["gemini", "--acp"]`. Empty: the embedded scripted agent.
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Script for the embedded agent (`airlock agent mock --script`), when `command` is empty.
    #[serde(default)]
    pub script: Option<String>,
    /// Paths the agent process may write besides its temp dir (e.g. `~/.gemini`).
    #[serde(default)]
    pub writable: Vec<String>,
    /// Domains the agent process may reach (its model API), `host` or `host:port`.
    #[serde(default)]
    pub allow_domains: Vec<String>,
    /// `sandboxed` (default: read-only workspace, edits through `fs/write_text_file`), `shadow`
    /// (the agent writes into a copy-on-write shadow; its writes become proposals) or `none`
    /// (explicit opt-out, recorded in telemetry).
    #[serde(default)]
    pub isolation: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct TelemetrySettings {
    /// Include content (prompt text, command output) in events. Off by default.
    #[serde(default)]
    pub content: bool,
}

impl Settings {
    /// Parses `config.toml`. Errors name the file and location.
    pub fn from_toml(text: &str, origin: &str) -> Result<Settings, String> {
        toml::from_str(text).map_err(|e| format!("{origin}: {e}"))
    }

    /// `initializationOptions` override the user's file field by field.
    pub fn merge_init_options(
        &mut self,
        options: Option<&serde_json::Value>,
    ) -> Result<(), String> {
        let Some(options) = options else {
            return Ok(());
        };
        if options.is_null() {
            return Ok(());
        }
        let from_editor: Settings = serde_json::from_value(options.clone())
            .map_err(|e| format!("initializationOptions: {e}"))?;
        if !from_editor.agent.command.is_empty() {
            self.agent.command = from_editor.agent.command;
            self.agent.env = from_editor.agent.env;
        }
        if from_editor.agent.script.is_some() {
            self.agent.script = from_editor.agent.script;
        }
        self.agent.writable.extend(from_editor.agent.writable);
        self.agent
            .allow_domains
            .extend(from_editor.agent.allow_domains);
        if from_editor.agent.isolation.is_some() {
            self.agent.isolation = from_editor.agent.isolation;
        }
        if from_editor.log.is_some() {
            self.log = from_editor.log;
        }
        self.telemetry.content |= from_editor.telemetry.content;
        if from_editor.approvals.network_timeout_secs.is_some() {
            self.approvals.network_timeout_secs = from_editor.approvals.network_timeout_secs;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn network_ask_timeout_from_config_and_editor() {
        let mut s = Settings::from_toml("[approvals]\nnetwork_timeout_secs = 30\n", "t").unwrap();
        assert_eq!(
            s.approvals.network_timeout(),
            std::time::Duration::from_secs(30)
        );
        s.merge_init_options(Some(&serde_json::json!({"agent": {}})))
            .unwrap();
        assert_eq!(s.approvals.network_timeout_secs, Some(30), "kept");
        s.merge_init_options(Some(
            &serde_json::json!({"approvals": {"network_timeout_secs": 2}}),
        ))
        .unwrap();
        assert_eq!(
            s.approvals.network_timeout(),
            std::time::Duration::from_secs(2)
        );
        assert_eq!(
            Settings::default().approvals.network_timeout(),
            ApprovalSettings::DEFAULT_NETWORK_TIMEOUT
        );
        assert!(Settings::from_toml("[approvals]\nbogus = 1\n", "t").is_err());
    }

    #[test]
    fn shadow_isolation_from_config_and_editor() {
        let mut s = Settings::from_toml("[agent]\nisolation = \"shadow\"\n", "t").unwrap();
        assert_eq!(s.agent.isolation.as_deref(), Some("shadow"));
        s.merge_init_options(Some(&serde_json::json!({"agent": {}})))
            .unwrap();
        assert_eq!(s.agent.isolation.as_deref(), Some("shadow"), "kept");
        s.merge_init_options(Some(
            &serde_json::json!({"agent": {"isolation": "sandboxed"}}),
        ))
        .unwrap();
        assert_eq!(s.agent.isolation.as_deref(), Some("sandboxed"));
    }
}
