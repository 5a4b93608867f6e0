//! Running the real Gemini CLI offline in tests: where it is installed, the settings that keep
//! it off the network with a fixed model, and the recorded model turns `--fake-responses` reads.
//!
//! Installed by `scripts/install-gemini.sh` (npm `@google/gemini-cli`); tests skip with a loud
//! message when it is missing outside CI and fail in CI.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::{Value, json};

/// `gemini.js` of the installed CLI: `$AIRLOCK_GEMINI_JS`, else the copy under `.cache/`.
pub fn gemini_js() -> Option<PathBuf> {
    let path = std::env::var_os("AIRLOCK_GEMINI_JS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../.cache/gemini/node_modules/@google/gemini-cli/bundle/gemini.js")
        });
    path.exists().then_some(path)
}

/// `gemini_js()`, or `None` after saying the test is skipped; in CI a missing CLI fails.
pub fn gemini_js_or_skip() -> Option<PathBuf> {
    let found = gemini_js();
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "Gemini CLI is not installed: run scripts/install-gemini.sh"
        );
        eprintln!("SKIPPED: Gemini CLI not installed (bash scripts/install-gemini.sh)");
    }
    found
}

/// Writes `home/.gemini/settings.json` so the CLI stays offline (no update check, telemetry or
/// IDE probe) and uses one fixed model: the default "auto" model makes an extra routing call
/// that would shift the recorded responses.
pub fn write_settings(home: &Path) -> Result<()> {
    let dir = home.join(".gemini");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let settings = json!({
        "general": {"disableAutoUpdate": true, "disableUpdateNag": true},
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "telemetry": {"enabled": false},
        "privacy": {"usageStatisticsEnabled": false},
        "ide": {"enabled": false, "hasSeenNudge": true},
        "model": {"name": "gemini-2.5-flash"},
        "sandbox": false
    });
    std::fs::write(dir.join("settings.json"), settings.to_string())
        .with_context(|| format!("writing {}/settings.json", dir.display()))
}

/// One recorded model turn for `--fake-responses` (one JSON line): the model answers with
/// `parts` (text and/or `functionCall`s).
pub fn model_turn(parts: Value) -> String {
    json!({
        "method": "generateContentStream",
        "response": [{
            "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15}
        }]
    })
    .to_string()
}
