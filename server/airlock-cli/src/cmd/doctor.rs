//! `airlock doctor`: what this kernel supports, which protections `airlock exec` (and the
//! agent's terminals) would enforce, and the weaker-mode flags for what it can't.

use std::fmt::Write as _;
use std::process::ExitCode;

use airlock_sandbox::{KernelSupport, WeakerMode};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print machine-readable JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let k = airlock_sandbox::probe();
    let agent = agent_isolation();
    let out = if args.json {
        json(&k, &agent)
    } else {
        text(&k, &agent)
    };
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// How `airlock serve` would isolate the agent process: the configured mode and, for
/// `shadow` (or to show what it would use), the shadow this kernel offers.
struct AgentIsolation {
    /// From config.toml (`[agent] isolation`), else the default `sandboxed`. The editor's
    /// initializationOptions and `serve --isolation` can still override it.
    configured: String,
    from_config: bool,
    shadow: airlock_sandbox::shadow::ShadowKind,
}

fn agent_isolation() -> AgentIsolation {
    let dirs = crate::dirs::Dirs::from_env().ok();
    let configured = dirs
        .as_ref()
        .and_then(|d| std::fs::read_to_string(d.user_config()).ok())
        .and_then(|t| airlock_lsp::settings::Settings::from_toml(&t, "config.toml").ok())
        .and_then(|s| s.agent.isolation);
    let from_config = configured.is_some();
    let configured = configured.unwrap_or_else(|| "sandboxed".into());
    // Try overlayfs where the server would put the upper dir (the state dir's filesystem).
    let base = dirs.map(|d| d.state).unwrap_or_else(std::env::temp_dir);
    let scratch = base.join(format!("shadow-probe-{}", std::process::id()));
    let shadow = airlock_sandbox::shadow::pick(&scratch);
    AgentIsolation {
        configured,
        from_config,
        shadow,
    }
}

fn needed_flags(k: &KernelSupport) -> Vec<&'static str> {
    k.protections()
        .iter()
        .filter_map(|p| if p.active { None } else { p.weaker_flag })
        .collect()
}

fn text(k: &KernelSupport, agent: &AgentIsolation) -> String {
    let mut s = String::new();
    let yn = |b: bool| if b { "yes" } else { "no" };
    let _ = writeln!(s, "kernel            {}", k.kernel_release);
    let capped = if k.landlock_abi_capped {
        format!(
            " (capped to {} by AIRLOCK_TEST_LANDLOCK_ABI, test only)",
            k.landlock_abi
        )
    } else {
        String::new()
    };
    let _ = writeln!(s, "landlock ABI      {}{capped}", k.landlock_abi_kernel);
    let _ = writeln!(s, "seccomp           {}", yn(k.seccomp));
    let userns_note = if k.user_namespaces_disabled_by_test {
        " (disabled by AIRLOCK_TEST_NO_USERNS, test only)"
    } else {
        ""
    };
    let _ = writeln!(
        s,
        "user namespaces   {}{userns_note}",
        yn(k.user_namespaces)
    );
    let origin = if agent.from_config {
        "config.toml"
    } else {
        "default"
    };
    let _ = writeln!(s, "agent isolation   {} ({origin})", agent.configured);
    let overlay_note = if std::env::var_os("AIRLOCK_TEST_NO_OVERLAY").is_some_and(|v| v != "0") {
        " (overlayfs disabled by AIRLOCK_TEST_NO_OVERLAY, test only)"
    } else {
        ""
    };
    let _ = writeln!(
        s,
        "shadow workspace  {}: {}{overlay_note}",
        agent.shadow.as_str(),
        agent.shadow.describe()
    );
    let _ = writeln!(s, "\nprotections:");
    for p in k.protections() {
        let mark = if p.active { "[x]" } else { "[ ]" };
        let flag = p
            .weaker_flag
            .map(|f| format!("  (run anyway: --weaker-mode {f})"))
            .unwrap_or_default();
        let _ = writeln!(s, "  {mark} {:<58} {}{flag}", p.name, p.mechanism);
    }
    let flags = needed_flags(k);
    let _ = writeln!(s);
    if flags.is_empty() {
        let _ = writeln!(s, "airlock exec: runs with every protection above.");
    } else {
        let _ = writeln!(
            s,
            "airlock exec: refuses to run unless you opt in with --weaker-mode {}",
            flags.join(",")
        );
    }
    let _ = writeln!(s, "\nweaker modes (explicit opt-in only):");
    for (name, what) in WeakerMode::FLAGS {
        let _ = writeln!(s, "  {name:<16} {what}");
    }
    s
}

fn q(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn json(k: &KernelSupport, agent: &AgentIsolation) -> String {
    let prots: Vec<String> = k
        .protections()
        .iter()
        .map(|p| {
            format!(
                "{{\"name\":{},\"active\":{},\"mechanism\":{},\"weaker_flag\":{}}}",
                q(p.name),
                p.active,
                q(&p.mechanism),
                p.weaker_flag.map(q).unwrap_or_else(|| "null".into())
            )
        })
        .collect();
    let flags: Vec<String> = needed_flags(k).into_iter().map(q).collect();
    let modes: Vec<String> = WeakerMode::FLAGS
        .iter()
        .map(|(n, w)| format!("{{\"flag\":{},\"gives_up\":{}}}", q(n), q(w)))
        .collect();
    format!(
        "{{\"kernel\":{},\"landlock_abi_kernel\":{},\"landlock_abi\":{},\"landlock_abi_capped_for_test\":{},\"seccomp\":{},\"user_namespaces\":{},\"agent_isolation\":{},\"shadow\":{},\"protections\":[{}],\"exec_needs_weaker_modes\":[{}],\"weaker_modes\":[{}]}}\n",
        q(&k.kernel_release),
        k.landlock_abi_kernel,
        k.landlock_abi,
        k.landlock_abi_capped,
        k.seccomp,
        k.user_namespaces,
        q(&agent.configured),
        q(agent.shadow.as_str()),
        prots.join(","),
        flags.join(","),
        modes.join(",")
    )
}
