//! Editing `.airlock/policy.toml` in an editor connected to the server: precise diagnostics,
//! hover, completion, reload on save, and an invalid policy never loosening anything.

use airlock_e2e::{Env, Lsp};
use serde_json::{Value, json};

fn diags_for(params: &Value) -> Vec<Value> {
    params["diagnostics"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn policy_file_gets_diagnostics_hover_and_completion() -> anyhow::Result<()> {
    let env = Env::new();
    let text = "version = 1\n[commands]\nallow = [\"cargo test\"]\ndenyy = [\"curl\"]\n";
    env.write(".airlock/policy.toml", text);
    let uri = env.uri(".airlock/policy.toml");
    let mut lsp = Lsp::start(&env, &[])?;
    lsp.initialize(&env.workspace_uri(), json!({}), Value::Null)?;
    lsp.open(&uri, text)?;
    let published = lsp.wait_for("textDocument/publishDiagnostics", |p| {
        p["uri"] == uri.as_str() && !diags_for(p).is_empty()
    })?;
    let diags = diags_for(&published);
    let unknown = diags
        .iter()
        .find(|d| d["message"].as_str().is_some_and(|m| m.contains("denyy")))
        .expect("unknown key reported");
    assert_eq!(unknown["range"]["start"]["line"], 3, "{unknown}");
    assert!(
        unknown["message"]
            .as_str()
            .is_some_and(|m| m.contains("did you mean")),
        "{unknown}"
    );
    // Not wiped by another producer right after.
    lsp.drain_for(std::time::Duration::from_millis(300));
    for n in lsp.notifications.iter().filter(|n| {
        n["method"] == "textDocument/publishDiagnostics" && n["params"]["uri"] == uri.as_str()
    }) {
        assert!(
            !diags_for(&n["params"]).is_empty(),
            "policy diagnostics were wiped: {n}"
        );
    }

    let hover = lsp.request(
        "textDocument/hover",
        json!({"textDocument": {"uri": uri}, "position": {"line": 2, "character": 12}}),
    )?;
    assert!(
        hover["contents"]["value"]
            .as_str()
            .is_some_and(|v| v.contains("cargo test")),
        "{hover}"
    );
    let completion = lsp.request(
        "textDocument/completion",
        json!({"textDocument": {"uri": uri}, "position": {"line": 4, "character": 0}}),
    )?;
    assert!(
        completion.as_array().is_some_and(|items| !items.is_empty()),
        "{completion}"
    );
    assert_eq!(lsp.shutdown()?, 0);
    Ok(())
}

#[test]
fn saving_a_broken_policy_keeps_the_last_good_one_in_force() -> anyhow::Result<()> {
    let env = Env::new();
    std::fs::create_dir_all(env.config.join("airlock"))?;
    let user_policy = env.config.join("airlock/policy.toml");
    std::fs::write(
        &user_policy,
        "version = 1\n[commands]\ndeny = [\"mkdir\"]\n",
    )?;
    let mut lsp = Lsp::start_with_script(
        &env,
        "[[turn]]\n[[turn.step]]\nrun = \"mkdir\"\nargs = [\"made\"]\n",
    )?;
    lsp.wait_for("airlock/telemetry", |p| {
        p.to_string().contains("policy.loaded")
    })?;
    // The user breaks their policy file and saves it.
    std::fs::write(&user_policy, "version = 1\n[commands\ndeny = [\"mkdir\"]\n")?;
    let uri = format!("file://{}", user_policy.display());
    lsp.notify(
        "textDocument/didSave",
        json!({"textDocument": {"uri": uri}}),
    )?;
    lsp.wait_for("window/showMessage", |p| {
        p["message"]
            .as_str()
            .is_some_and(|m| m.contains("invalid policy"))
    })?;
    lsp.request("airlock/prompt", json!({"text": "go"}))?;
    let said = lsp.wait_for("airlock/agentUpdate", |p| {
        p.to_string().contains("run mkdir")
    })?;
    assert!(
        said.to_string().contains("commands.deny"),
        "the last good policy must stay in force: {said}"
    );
    assert!(!env.workspace.join("made").exists());
    assert_eq!(lsp.shutdown()?, 0);
    Ok(())
}
