//! The compiled policy and its decisions.
//!
//! Guarantees: decisions never fail and never touch the network; path decisions resolve
//! symlinks and `..` (the only I/O, to read link targets) and judge both the path as written and
//! the path it resolves to, keeping the stricter verdict; the verdict is always the strictest
//! of every matching rule in every layer, and a default applies only when no rule matched.

use std::path::{Component, Path, PathBuf};

use crate::file::{Entry, PolicyFile};
use crate::glob::PatternSet;
use crate::shell::{self, Arg, Part, PartKind};
use crate::{CommandDecision, CommandPart, Decision, Layer, Verdict};

/// Paths the agent may never write, whatever the policy says (workspace-relative,
/// gitignore-style). The sandbox makes them read-only too.
pub const BUILTIN_PROTECTED: &[&str] = &[
    ".git/hooks/",
    ".git/config",
    // Submodule git dirs: git runs their hooks and config in the submodule.
    ".git/modules/**/hooks/",
    ".git/modules/**/config",
    ".airlock/",
    ".envrc",
    ".vscode/",
    ".idea/",
];

/// Reads denied when no rule of any policy file matches the path (a policy may open them
/// with `files.allow_read`, e.g. `.env.example`).
pub const BUILTIN_DENY_READ: &[&str] = &[".env*"];

pub(crate) const RULE_WRITE_DEFAULT: &str = "builtin: agent writes go through proposals";
const RULE_READ_DEFAULT: &str = "builtin: reads inside the workspace are allowed";
const RULE_OUTSIDE_READ: &str = "builtin: reads outside the workspace are denied";
const RULE_OUTSIDE_WRITE: &str = "builtin: writes outside the workspace are denied";
const RULE_COMMAND_DEFAULT: &str = "builtin: commands default to ask";
const RULE_NETWORK_DEFAULT: &str = "builtin: network defaults to deny";

/// Directories whose programs are the same program as their bare name (`/usr/bin/rm` ≡ `rm`).
/// A program given by any other path (`./cargo`, `/tmp/x/cargo`) may be a look-alike, so
/// `allow` rules naming the bare program do not apply to it (deny and ask rules still do).
const SYSTEM_BIN_DIRS: &[&str] = &[
    "/bin",
    "/sbin",
    "/usr/bin",
    "/usr/sbin",
    "/usr/local/bin",
    "/usr/local/sbin",
];

/// The built-in protected paths (see [`BUILTIN_PROTECTED`]).
pub fn builtin_protected_paths() -> Vec<String> {
    BUILTIN_PROTECTED.iter().map(|s| (*s).to_owned()).collect()
}

#[derive(Debug, Clone)]
pub(crate) struct Origin {
    pub layer: Layer,
    pub rule: String,
    pub source: Option<String>,
}

impl Origin {
    fn decision(&self, verdict: Verdict) -> Decision {
        Decision {
            verdict,
            rule: Some(self.rule.clone()),
            layer: self.layer,
            source: self.source.clone(),
        }
    }
}

/// One layer's validated file, with the entries that apply (untrusted loosening and locked keys
/// already removed by the loader).
#[derive(Debug, Clone)]
pub(crate) struct LayerRules {
    pub layer: Layer,
    /// Displayed path of the file.
    pub path: String,
    pub file: PolicyFile,
}

#[derive(Debug, Clone)]
struct PathRules {
    patterns: Vec<String>,
    origins: Vec<Origin>,
    set: PatternSet,
}

impl PathRules {
    fn new(items: Vec<(String, Origin)>) -> PathRules {
        let (patterns, origins): (Vec<_>, Vec<_>) = items.into_iter().unzip();
        let set = PatternSet::new(patterns.iter().map(String::as_str));
        PathRules {
            patterns,
            origins,
            set,
        }
    }

    fn best(&self, rel: &str) -> Option<&Origin> {
        self.set
            .matches(rel)
            .into_iter()
            .filter_map(|i| self.origins.get(i))
            .max_by_key(|o| o.layer)
    }
}

#[derive(Debug, Clone)]
enum RuleProgram {
    Name(String),
    Path(String),
}

#[derive(Debug, Clone)]
struct CommandRule {
    program: RuleProgram,
    args: Vec<String>,
    verdict: Verdict,
    origin: Origin,
}

/// A network rule: a host pattern and an optional port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainRule {
    host: HostPattern,
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    Exact(String),
    /// `*.example.com`, stored as `.example.com`; matches subdomains, not the apex.
    Suffix(String),
}

impl DomainRule {
    /// Parses `host`, `*.suffix`, `*`, each with an optional `:port` (`[v6]:port` for IPv6).
    pub fn parse(pattern: &str) -> Result<DomainRule, String> {
        let p = pattern.trim().to_ascii_lowercase();
        let (host, port) = split_host_port(&p)
            .ok_or_else(|| format!("`{pattern}`: expected HOST or HOST:PORT (port 1-65535)"))?;
        let host = host.trim_end_matches('.');
        let pattern_host = if host == "*" {
            HostPattern::Any
        } else if let Some(rest) = host.strip_prefix("*.") {
            check_host(rest).map_err(|e| format!("`{pattern}`: {e}"))?;
            HostPattern::Suffix(format!(".{rest}"))
        } else {
            check_host(host).map_err(|e| format!("`{pattern}`: {e}"))?;
            HostPattern::Exact(host.to_owned())
        };
        Ok(DomainRule {
            host: pattern_host,
            port,
        })
    }

    /// Whether the rule matches; a rule with a port never matches a request without one
    /// unless `unknown_port_matches` (used for deny rules, to stay strict).
    fn matches(&self, host: &str, port: Option<u16>, unknown_port_matches: bool) -> bool {
        let host_ok = match &self.host {
            HostPattern::Any => true,
            HostPattern::Exact(h) => h == host,
            HostPattern::Suffix(s) => host.len() > s.len() && host.ends_with(s.as_str()),
        };
        let port_ok = match (self.port, port) {
            (None, _) => true,
            (Some(a), Some(b)) => a == b,
            (Some(_), None) => unknown_port_matches,
        };
        host_ok && port_ok
    }

    fn describe(&self) -> String {
        let host = match &self.host {
            HostPattern::Any => "any host".to_owned(),
            HostPattern::Exact(h) => format!("exactly `{h}`"),
            HostPattern::Suffix(s) => {
                format!("any subdomain of `{}` (not `{}` itself)", &s[1..], &s[1..])
            }
        };
        match self.port {
            Some(p) => format!("{host}, port {p} only"),
            None => format!("{host}, any port"),
        }
    }
}

/// Describes a network pattern for hover.
pub(crate) fn describe_domain(pattern: &str) -> String {
    match DomainRule::parse(pattern) {
        Ok(rule) => rule.describe(),
        Err(e) => e,
    }
}

fn split_host_port(p: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = p.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        if host.is_empty()
            || !host
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return None;
        }
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(parse_port(after.strip_prefix(':')?)?))),
        };
    }
    match p.rsplit_once(':') {
        None => Some((p, None)),
        Some((h, port)) => Some((h, Some(parse_port(port)?))),
    }
}

fn parse_port(s: &str) -> Option<u16> {
    s.parse::<u16>().ok().filter(|p| *p != 0)
}

fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() || host.len() > 253 {
        return Err("host name must have 1 to 253 characters".to_owned());
    }
    if host.contains(':') {
        // Bracketless IPv6 was split as host:port above; only bracketed forms reach here.
        return if host
            .chars()
            .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            Ok(())
        } else {
            Err("invalid IPv6 address".to_owned())
        };
    }
    for label in host.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("empty or over-long label in host name".to_owned());
        }
        if label.contains('*') {
            return Err(
                "`*` is only allowed as the whole first label (`*.example.com`)".to_owned(),
            );
        }
        if !label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!("invalid character in host name label `{label}`"));
        }
    }
    Ok(())
}

const SHELL_METACHARS: &[char] = &[
    ';', '&', '|', '<', '>', '(', ')', '$', '`', '"', '\'', '\\', '\n', '*', '?', '[', '{', '}',
];

/// Checks a command rule (`"cargo test"`): words separated by spaces, no shell syntax.
pub(crate) fn validate_command_rule(rule: &str) -> Result<(), String> {
    if rule.split_whitespace().next().is_none() {
        return Err("empty command rule".to_owned());
    }
    if let Some(c) = rule.chars().find(|c| SHELL_METACHARS.contains(c)) {
        return Err(format!(
            "`{rule}`: a command rule is a program and leading arguments separated by spaces \
             (like \"cargo test\"), not shell syntax; `{}` is not allowed",
            c.escape_default()
        ));
    }
    Ok(())
}

/// Describes a command rule for hover.
pub(crate) fn describe_command(rule: &str) -> String {
    if let Err(e) = validate_command_rule(rule) {
        return e;
    }
    let words: Vec<&str> = rule.split_whitespace().collect();
    let program = match parse_rule_program(words[0]) {
        RuleProgram::Name(n) => {
            format!("the program `{n}` (by bare name or from a system bin directory)")
        }
        RuleProgram::Path(p) => format!("exactly the program `{p}`"),
    };
    if words.len() == 1 {
        format!("{program}, with any arguments")
    } else {
        format!(
            "{program} when its first arguments are `{}` (followed by anything); `{}x` does not match",
            words[1..].join(" "),
            words.join(" ")
        )
    }
}

fn parse_rule_program(word: &str) -> RuleProgram {
    match program_identity(word) {
        (name, true) => RuleProgram::Name(name),
        (_, false) => RuleProgram::Path(word.to_owned()),
    }
}

/// (bare name, whether the path is equivalent to the bare name).
fn program_identity(word: &str) -> (String, bool) {
    match word.rsplit_once('/') {
        None => (word.to_owned(), true),
        Some((dir, name)) => {
            let dir = if dir.is_empty() { "/" } else { dir };
            (name.to_owned(), SYSTEM_BIN_DIRS.contains(&dir))
        }
    }
}

/// A compiled, layered policy. Cheap to clone; share it behind an `Arc` for concurrent use.
#[derive(Debug, Clone)]
pub struct Policy {
    root: PathBuf,
    given_root: PathBuf,
    deny_read: PathRules,
    allow_read: PathRules,
    builtin_deny_read: PathRules,
    protect: PathRules,
    ask_write: PathRules,
    commands: Vec<CommandRule>,
    command_default: Option<(Verdict, Origin)>,
    domains: Vec<(DomainRule, Verdict, Origin)>,
    network_default: Option<(Verdict, Origin)>,
}

impl Policy {
    /// The built-in policy with no files: what applies when no policy file exists, and what a
    /// caller falls back to when the first load fails.
    pub fn strict_default(workspace_root: &Path) -> Policy {
        Policy::build(workspace_root, Vec::new())
    }

    pub(crate) fn build(workspace_root: &Path, layers: Vec<LayerRules>) -> Policy {
        let root = workspace_root
            .canonicalize()
            .unwrap_or_else(|_| normalize(workspace_root));
        let mut deny_read = Vec::new();
        let mut allow_read = Vec::new();
        let mut protect: Vec<(String, Origin)> = BUILTIN_PROTECTED
            .iter()
            .map(|p| {
                (
                    (*p).to_owned(),
                    Origin {
                        layer: Layer::Builtin,
                        rule: format!("builtin protect \"{p}\""),
                        source: None,
                    },
                )
            })
            .collect();
        let builtin_deny_read = BUILTIN_DENY_READ
            .iter()
            .map(|p| {
                (
                    (*p).to_owned(),
                    Origin {
                        layer: Layer::Builtin,
                        rule: format!("builtin deny_read \"{p}\""),
                        source: None,
                    },
                )
            })
            .collect();
        let mut ask_write = Vec::new();
        let mut commands = Vec::new();
        let mut command_default: Option<(Verdict, Origin)> = None;
        let mut domains = Vec::new();
        let mut network_default: Option<(Verdict, Origin)> = None;

        for l in &layers {
            let origin = |key: &str, e: &Entry| Origin {
                layer: l.layer,
                rule: format!("{key} \"{}\"", e.value),
                source: Some(format!("{}:{}", l.path, e.line)),
            };
            let f = &l.file;
            for (list, key, out) in [
                (&f.files.deny_read, "files.deny_read", &mut deny_read),
                (&f.files.allow_read, "files.allow_read", &mut allow_read),
                (&f.files.protect, "files.protect", &mut protect),
                (&f.files.ask_write, "files.ask_write", &mut ask_write),
            ] {
                out.extend(list.iter().map(|e| (e.value.clone(), origin(key, e))));
            }
            for (list, key, verdict) in [
                (&f.commands.allow, "commands.allow", Verdict::Allow),
                (&f.commands.ask, "commands.ask", Verdict::Ask),
                (&f.commands.deny, "commands.deny", Verdict::Deny),
            ] {
                for e in list {
                    let mut words = e.value.split_whitespace();
                    let Some(first) = words.next() else { continue };
                    commands.push(CommandRule {
                        program: parse_rule_program(first),
                        args: words.map(str::to_owned).collect(),
                        verdict,
                        origin: origin(key, e),
                    });
                }
            }
            for (list, key, verdict) in [
                (&f.network.allow, "network.allow", Verdict::Allow),
                (&f.network.deny, "network.deny", Verdict::Deny),
            ] {
                for e in list {
                    if let Ok(rule) = DomainRule::parse(&e.value) {
                        domains.push((rule, verdict, origin(key, e)));
                    }
                }
            }
            for (default, key, slot) in [
                (
                    &f.commands.default,
                    "commands.default",
                    &mut command_default,
                ),
                (&f.network.default, "network.default", &mut network_default),
            ] {
                if let Some((v, e)) = default {
                    let o = Origin {
                        layer: l.layer,
                        rule: format!("{key} = \"{v}\""),
                        source: Some(format!("{}:{}", l.path, e.line)),
                    };
                    let stricter = slot
                        .as_ref()
                        .is_none_or(|(cur, co)| (*v, l.layer) > (*cur, co.layer));
                    if stricter {
                        *slot = Some((*v, o));
                    }
                }
            }
        }
        Policy {
            given_root: workspace_root.to_path_buf(),
            root,
            deny_read: PathRules::new(deny_read),
            allow_read: PathRules::new(allow_read),
            builtin_deny_read: PathRules::new(builtin_deny_read),
            protect: PathRules::new(protect),
            ask_write: PathRules::new(ask_write),
            commands,
            command_default,
            domains,
            network_default,
        }
    }

    /// The canonical workspace root decisions are relative to.
    pub fn workspace_root(&self) -> &Path {
        &self.root
    }

    /// May the agent read `path` (absolute, or relative to the workspace root)?
    pub fn decide_read(&self, path: &Path) -> Decision {
        self.decide_path(path, |rel| match rel {
            None => Decision::builtin(Verdict::Deny, RULE_OUTSIDE_READ),
            Some(rel) => {
                let deny = self.deny_read.best(rel).map(|o| o.decision(Verdict::Deny));
                let allow = self
                    .allow_read
                    .best(rel)
                    .map(|o| o.decision(Verdict::Allow));
                strictest([deny, allow]).unwrap_or_else(|| match self.builtin_deny_read.best(rel) {
                    Some(o) => o.decision(Verdict::Deny),
                    None => Decision::builtin(Verdict::Allow, RULE_READ_DEFAULT),
                })
            }
        })
    }

    /// May the agent write `path`? `ask` means "through a proposal the user reviews";
    /// `deny` means never (protected, or outside the workspace).
    pub fn decide_write(&self, path: &Path) -> Decision {
        self.decide_path(path, |rel| match rel {
            None => Decision::builtin(Verdict::Deny, RULE_OUTSIDE_WRITE),
            Some(rel) => {
                let deny = self.protect.best(rel).map(|o| o.decision(Verdict::Deny));
                let ask = self.ask_write.best(rel).map(|o| o.decision(Verdict::Ask));
                strictest([deny, ask])
                    .unwrap_or_else(|| Decision::builtin(Verdict::Ask, RULE_WRITE_DEFAULT))
            }
        })
    }

    /// Is `path` protected (never writable by the agent or its commands)?
    pub fn is_protected(&self, path: &Path) -> bool {
        let d = self.decide_write(path);
        d.verdict == Verdict::Deny
    }

    fn decide_path(&self, path: &Path, one: impl Fn(Option<&str>) -> Decision) -> Decision {
        let abs = if path.is_absolute() {
            normalize(path)
        } else {
            normalize(&self.root.join(path))
        };
        let real = match abs.strip_prefix(&self.root) {
            // The root is canonical already: only what is below it can be a link.
            Ok(rel) => resolve_links(&self.root, rel),
            Err(_) => resolve_links(Path::new("/"), &abs),
        };
        let mut best: Option<Decision> = None;
        let candidates: &[&PathBuf] = if real == abs { &[&abs] } else { &[&abs, &real] };
        for candidate in candidates {
            let rel = self.relative(candidate);
            let d = one(rel.as_deref());
            if best.as_ref().is_none_or(|b| d.verdict > b.verdict) {
                best = Some(d);
            }
        }
        best.unwrap_or_else(|| one(None))
    }

    fn relative(&self, abs: &Path) -> Option<String> {
        let rel = abs
            .strip_prefix(&self.root)
            .or_else(|_| abs.strip_prefix(&self.given_root))
            .ok()?;
        let parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        Some(parts.join("/"))
    }

    /// Decides a shell command line run in the workspace root: every part of it, strictest
    /// wins.
    pub fn decide_command(&self, command_line: &str) -> CommandDecision {
        self.decide_parts(shell::split_command(command_line), &self.root)
    }

    /// Like [`Policy::decide_command`] for a command run in `cwd` (absolute, or relative to the
    /// workspace root): relative redirection targets and arguments are resolved from there.
    pub fn decide_command_in(&self, command_line: &str, cwd: &Path) -> CommandDecision {
        let cwd = self.root.join(cwd);
        self.decide_parts(shell::split_command(command_line), &cwd)
    }

    /// Decides a command given as program and arguments (no shell involved, but `sh -c`,
    /// wrappers such as `env`/`timeout`/`xargs` are still looked through), run in the
    /// workspace root.
    pub fn decide_argv(&self, argv: &[String]) -> CommandDecision {
        self.decide_parts(shell::split_argv(argv), &self.root)
    }

    /// Like [`Policy::decide_argv`] for a command run in `cwd`.
    pub fn decide_argv_in(&self, argv: &[String], cwd: &Path) -> CommandDecision {
        let cwd = self.root.join(cwd);
        self.decide_parts(shell::split_argv(argv), &cwd)
    }

    fn decide_parts(&self, parts: Vec<Part>, cwd: &Path) -> CommandDecision {
        let mut out: Vec<CommandPart> = Vec::with_capacity(parts.len());
        for part in parts {
            if let Some(decision) = self.decide_part(&part.kind, cwd) {
                out.push(CommandPart {
                    text: part.text,
                    decision,
                });
            }
        }
        if out.is_empty() {
            out.push(CommandPart {
                text: String::new(),
                decision: Decision::builtin(Verdict::Ask, "builtin: empty command"),
            });
        }
        let verdict = out
            .iter()
            .map(|p| p.decision.verdict)
            .max()
            .unwrap_or(Verdict::Ask);
        CommandDecision {
            verdict,
            parts: out,
        }
    }

    fn decide_part(&self, kind: &PartKind, cwd: &Path) -> Option<Decision> {
        match kind {
            PartKind::Fixed(verdict, reason) => Some(Decision::builtin(*verdict, reason.clone())),
            PartKind::Write(Arg::Dyn(_)) => Some(Decision::builtin(
                Verdict::Ask,
                "builtin: redirect target is computed at run time",
            )),
            PartKind::Read(Arg::Dyn(_)) => Some(Decision::builtin(
                Verdict::Ask,
                "builtin: redirect source is computed at run time",
            )),
            PartKind::Write(Arg::Lit(path)) => {
                if is_harmless_device(path) {
                    return Some(Decision::builtin(
                        Verdict::Allow,
                        "builtin: standard device",
                    ));
                }
                let d = self.decide_write(&cwd.join(path));
                if d.layer == Layer::Builtin && d.rule.as_deref() == Some(RULE_WRITE_DEFAULT) {
                    // A command's own output file is not an agent edit: only rules about the
                    // path (protect, ask_write, outside the workspace) matter here.
                    Some(Decision::builtin(
                        Verdict::Allow,
                        "builtin: redirect into the workspace",
                    ))
                } else {
                    Some(d)
                }
            }
            PartKind::Read(Arg::Lit(path)) => {
                if is_harmless_device(path) {
                    return Some(Decision::builtin(
                        Verdict::Allow,
                        "builtin: standard device",
                    ));
                }
                Some(self.decide_read(&cwd.join(path)))
            }
            PartKind::Command {
                argv,
                unsafe_env,
                explicit_only,
            } => self.decide_simple(argv, unsafe_env, *explicit_only, cwd),
        }
    }

    fn decide_simple(
        &self,
        argv: &[Arg],
        unsafe_env: &[String],
        explicit_only: bool,
        cwd: &Path,
    ) -> Option<Decision> {
        let program = match argv.first() {
            None => return Some(Decision::builtin(Verdict::Ask, "builtin: empty command")),
            Some(Arg::Dyn(_)) => {
                return Some(Decision::builtin(
                    Verdict::Ask,
                    "builtin: program name is computed at run time",
                ));
            }
            Some(Arg::Lit(p)) => p.as_str(),
        };
        let (name, equivalent) = program_identity(program);
        let best = self
            .commands
            .iter()
            .filter(|r| {
                let program_ok = match &r.program {
                    RuleProgram::Name(n) => {
                        *n == name && (equivalent || r.verdict != Verdict::Allow)
                    }
                    RuleProgram::Path(p) => p == program,
                };
                program_ok && args_match(&r.args, &argv[1..], r.verdict != Verdict::Allow)
            })
            .max_by_key(|r| (r.verdict, r.origin.layer));
        let decision = match best {
            Some(r) => r.origin.decision(r.verdict),
            None if explicit_only => return None,
            None => match &self.command_default {
                Some((v, o)) => o.decision(*v),
                None => Decision::builtin(Verdict::Ask, RULE_COMMAND_DEFAULT),
            },
        };
        if decision.verdict == Verdict::Allow
            && let Some(reason) = self.sensitive_argument(&argv[1..], cwd)
        {
            return Some(Decision::builtin(Verdict::Ask, reason));
        }
        if decision.verdict == Verdict::Allow && !unsafe_env.is_empty() {
            return Some(Decision::builtin(
                Verdict::Ask,
                format!(
                    "builtin: environment variable {} can change what an allowed program runs",
                    unsafe_env.join(", ")
                ),
            ));
        }
        Some(decision)
    }

    /// Defence in depth for allowed commands: an argument naming a protected path or a path
    /// the agent may not read (`cp x .git/hooks/pre-commit`, `cat .env`) turns `allow` into
    /// `ask`. Lexical only (no symlink resolution: the sandbox enforces the real thing), and
    /// only for paths inside the workspace.
    fn sensitive_argument(&self, args: &[Arg], cwd: &Path) -> Option<String> {
        for arg in args {
            let Arg::Lit(a) = arg else { continue };
            let value = match a.split_once('=') {
                Some((opt, v)) if opt.starts_with('-') => v,
                _ if a.starts_with('-') => continue,
                _ => a.as_str(),
            };
            if value.is_empty() || value.contains("://") {
                continue;
            }
            let p = Path::new(value);
            let abs = if p.is_absolute() {
                normalize(p)
            } else {
                normalize(&cwd.join(p))
            };
            let Some(rel) = self.relative(&abs) else {
                continue;
            };
            if rel.is_empty() {
                continue;
            }
            if self.protect.best(&rel).is_some() {
                return Some(format!(
                    "builtin: argument `{value}` names a protected path"
                ));
            }
            let denied = self.deny_read.best(&rel).is_some()
                || (self.allow_read.best(&rel).is_none()
                    && self.builtin_deny_read.best(&rel).is_some());
            if denied {
                return Some(format!(
                    "builtin: argument `{value}` names a path the agent may not read"
                ));
            }
        }
        None
    }

    /// May the agent's commands connect to `host` (and `port`, when known)?
    pub fn decide_domain(&self, host: &str, port: Option<u16>) -> Decision {
        let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(&host)
            .to_owned();
        let valid = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
        if !valid {
            return Decision::builtin(Verdict::Deny, "builtin: not a valid host name");
        }
        let best = self
            .domains
            .iter()
            .filter(|(rule, verdict, _)| rule.matches(&host, port, *verdict != Verdict::Allow))
            .max_by_key(|(_, v, o)| (*v, o.layer));
        match best {
            Some((_, v, o)) => o.decision(*v),
            None => match &self.network_default {
                Some((v, o)) => o.decision(*v),
                None => Decision::builtin(Verdict::Deny, RULE_NETWORK_DEFAULT),
            },
        }
    }

    /// Built-in protected paths plus every layer's `files.protect`, workspace-relative,
    /// gitignore-style (see docs/policy.md). Deduplicated, in order.
    pub fn protected_paths(&self) -> Vec<String> {
        dedup(self.protect.patterns.clone())
    }

    /// The read rules as one ordered, gitignore-style list for the sandbox (the format of
    /// [`airlock_glob::ReadRules`]: the last matching pattern decides, `!pattern` is an
    /// exception): the built-in `.env*`, then every layer's `files.allow_read` as exceptions,
    /// then every layer's `files.deny_read`, which no exception opens. A path is denied by
    /// this list exactly when [`Policy::decide_read`] denies it (a test checks it).
    pub fn deny_read_globs(&self) -> Vec<String> {
        let mut v = dedup(self.builtin_deny_read.patterns.clone());
        v.extend(
            dedup(self.allow_read.patterns.clone())
                .into_iter()
                .map(|p| format!("!{}", p.trim())),
        );
        v.extend(dedup(self.deny_read.patterns.clone()));
        v
    }

    /// Network `allow` patterns of every layer as written (`crates.io`, `*.crates.io:443`).
    /// The proxy should still call [`Policy::decide_domain`] for each connection, because deny
    /// rules and defaults apply too.
    pub fn allowed_domains(&self) -> Vec<String> {
        self.domain_patterns(Verdict::Allow)
    }

    /// Network `deny` patterns of every layer as written.
    pub fn denied_domains(&self) -> Vec<String> {
        self.domain_patterns(Verdict::Deny)
    }

    fn domain_patterns(&self, verdict: Verdict) -> Vec<String> {
        dedup(
            self.domains
                .iter()
                .filter(|(_, v, _)| *v == verdict)
                .filter_map(|(_, _, o)| {
                    o.rule
                        .split_once(' ')
                        .map(|(_, pat)| pat.trim_matches('"').to_owned())
                })
                .collect(),
        )
    }

    /// The network default in force (`deny` unless a policy says otherwise).
    pub fn network_default(&self) -> Verdict {
        self.network_default
            .as_ref()
            .map_or(Verdict::Deny, |(v, _)| *v)
    }
}

fn dedup(v: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    v.into_iter().filter(|s| seen.insert(s.clone())).collect()
}

fn strictest<const N: usize>(ds: [Option<Decision>; N]) -> Option<Decision> {
    ds.into_iter()
        .flatten()
        .max_by_key(|d| (d.verdict, d.layer))
}

fn args_match(rule: &[String], args: &[Arg], dynamic_matches: bool) -> bool {
    rule.len() <= args.len()
        && rule.iter().zip(args).all(|(r, a)| match a {
            Arg::Lit(s) => s == r,
            Arg::Dyn(_) => dynamic_matches,
        })
}

fn is_harmless_device(path: &str) -> bool {
    matches!(
        path,
        "/dev/null" | "/dev/stdout" | "/dev/stderr" | "/dev/stdin" | "/dev/tty"
    ) || path
        .strip_prefix("/dev/fd/")
        .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()))
}

/// Removes `.` and `..` lexically (`..` at the root stays at the root).
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Resolves symlinks in `rel` below the symlink-free directory `base`, including in components
/// that do not exist yet and dangling links (which a write would follow). Gives up after 40
/// links, like the kernel, returning the path resolved so far.
fn resolve_links(base: &Path, rel: &Path) -> PathBuf {
    let mut pending: Vec<std::ffi::OsString> = rel
        .components()
        .filter(|c| !matches!(c, Component::RootDir))
        .map(|c| c.as_os_str().to_owned())
        .collect();
    pending.reverse();
    let mut done = base.to_path_buf();
    let mut links = 0;
    while let Some(name) = pending.pop() {
        if name == ".." {
            done.pop();
            continue;
        }
        if name == "." {
            continue;
        }
        let next = done.join(&name);
        match std::fs::read_link(&next) {
            Ok(target) if links < 40 => {
                links += 1;
                if target.is_absolute() {
                    done = PathBuf::from("/");
                }
                let mut comps: Vec<std::ffi::OsString> = target
                    .components()
                    .filter(|c| !matches!(c, Component::RootDir))
                    .map(|c| c.as_os_str().to_owned())
                    .collect();
                comps.reverse();
                pending.extend(comps);
            }
            _ => done = next,
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_patterns() {
        let r = DomainRule::parse("*.crates.io").expect("valid");
        assert!(r.matches("static.crates.io", None, false));
        assert!(!r.matches("crates.io", None, false));
        assert!(!r.matches("evilcrates.io", None, false));
        let r = DomainRule::parse("example.com:443").expect("valid");
        assert!(r.matches("example.com", Some(443), false));
        assert!(!r.matches("example.com", Some(80), false));
        assert!(!r.matches("example.com", None, false));
        assert!(r.matches("example.com", None, true));
        assert!(DomainRule::parse("[::1]:8080").is_ok());
        for bad in [
            "exa mple.com",
            "a.*.com",
            "x:0",
            "x:99999",
            "",
            "http://x.com",
            "a..b",
        ] {
            assert!(DomainRule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn command_rules_validate() {
        assert!(validate_command_rule("cargo test").is_ok());
        assert!(validate_command_rule("/usr/bin/rm -rf").is_ok());
        for bad in ["", "  ", "a && b", "rm *", "echo $HOME", "x'y'"] {
            assert!(validate_command_rule(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn program_identity_only_for_system_dirs() {
        assert_eq!(program_identity("/usr/bin/rm"), ("rm".to_owned(), true));
        assert_eq!(program_identity("rm"), ("rm".to_owned(), true));
        assert_eq!(program_identity("./rm"), ("rm".to_owned(), false));
        assert_eq!(program_identity("/tmp/rm"), ("rm".to_owned(), false));
    }
}
