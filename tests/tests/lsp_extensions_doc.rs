//! docs/lsp-extensions.md documents every custom method and command the server announces.

use airlock_e2e::{Env, Lsp};
use serde_json::{Value, json};

#[test]
fn every_announced_extension_is_documented() -> anyhow::Result<()> {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/lsp-extensions.md"
    ))?;
    let env = Env::new();
    let mut lsp = Lsp::start(&env, &[])?;
    let result = lsp.initialize(
        &env.workspace_uri(),
        json!({"experimental": {"airlock": true}}),
        Value::Null,
    )?;
    let ext = &result["capabilities"]["experimental"]["airlock"];
    let mut names = Vec::new();
    for key in ["requests", "notifications", "serverRequests", "commands"] {
        for name in ext[key]
            .as_array()
            .expect("list")
            .iter()
            .filter_map(Value::as_str)
        {
            names.push(name.to_owned());
        }
    }
    assert!(names.len() >= 12, "{names:?}");
    for name in names {
        assert!(
            doc.contains(&format!("`{name}`")),
            "docs/lsp-extensions.md does not document `{name}`"
        );
    }
    assert_eq!(lsp.shutdown()?, 0);
    Ok(())
}
