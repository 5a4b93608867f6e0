//! Splitting a shell command line into the parts a policy decides.
//!
//! Guarantees: every simple command that could run is returned as a part, including those
//! inside subshells, `$(…)`, backticks, process substitutions, `sh -c '…'` strings,
//! function bodies, loops and conditionals, and behind wrappers (`env`, `nohup`, `timeout`,
//! `nice`, `xargs`, `find -exec`, `sudo`, …); every redirection is a read or write part.
//! Whatever is not understood with confidence becomes a `Fixed(Ask, reason)` part, never an
//! allow. Never panics: the parser is run under `catch_unwind`, and input size and nesting
//! are bounded before parsing.

use brush_parser::ParserOptions;
use brush_parser::ast;
use brush_parser::word::{self, WordPiece, WordPieceWithSource};

use crate::Verdict;

/// A command word: literal text after quote removal, or text only known at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    Lit(String),
    Dyn(String),
}

impl Arg {
    fn text(&self) -> &str {
        match self {
            Arg::Lit(s) | Arg::Dyn(s) => s,
        }
    }

    fn lit(&self) -> Option<&str> {
        match self {
            Arg::Lit(s) => Some(s),
            Arg::Dyn(_) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartKind {
    /// A program with its arguments. `explicit_only`: a wrapper (`timeout 5 …`) that only
    /// counts when a rule names it; otherwise only the wrapped command is decided.
    Command {
        argv: Vec<Arg>,
        unsafe_env: Vec<String>,
        explicit_only: bool,
    },
    /// A redirection writing to a path.
    Write(Arg),
    /// A redirection reading from a path.
    Read(Arg),
    /// A construct decided without rules (`ask` for what is not understood).
    Fixed(Verdict, String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub text: String,
    pub kind: PartKind,
}

/// Longest command line analysed; longer ones are `ask`.
const MAX_COMMAND_BYTES: usize = 64 * 1024;
/// Deepest nesting of `sh -c`, `$(…)` and wrappers followed.
const MAX_DEPTH: usize = 12;
/// Deepest bracket nesting handed to the (recursive) parser.
const MAX_BRACKETS: usize = 64;

/// Environment variables that cannot change which code an allowed program runs.
const SAFE_ENV: &[&str] = &[
    "RUST_BACKTRACE",
    "RUST_LOG",
    "RUST_TEST_THREADS",
    "CARGO_TERM_COLOR",
    "CARGO_INCREMENTAL",
    "NO_COLOR",
    "FORCE_COLOR",
    "CLICOLOR",
    "TERM",
    "COLUMNS",
    "LINES",
    "LANG",
    "LANGUAGE",
    "TZ",
    "CI",
    "DEBUG",
    "VERBOSE",
    "PAGER",
    "GIT_PAGER",
    "PYTHONUNBUFFERED",
    "PYTHONDONTWRITEBYTECODE",
    "NODE_ENV",
];

fn is_safe_env(name: &str) -> bool {
    SAFE_ENV.contains(&name) || name.starts_with("LC_")
}

fn fixed_ask(text: impl Into<String>, reason: impl Into<String>) -> Part {
    Part {
        text: text.into(),
        kind: PartKind::Fixed(Verdict::Ask, format!("builtin: {}", reason.into())),
    }
}

fn parser_options() -> ParserOptions {
    ParserOptions::default()
}

/// Splits a command line (shell syntax) into decidable parts.
pub fn split_command(line: &str) -> Vec<Part> {
    let mut out = Vec::new();
    parse_into(line, 0, &mut out);
    out
}

/// Splits an argv (no shell parsing of the words themselves).
pub fn split_argv(argv: &[String]) -> Vec<Part> {
    let mut out = Vec::new();
    let args: Vec<Arg> = argv.iter().map(|a| Arg::Lit(a.clone())).collect();
    command(args, Vec::new(), 0, &mut out);
    out
}

fn max_bracket_depth(s: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    for c in s.chars() {
        match c {
            '(' | '{' | '`' => {
                depth += 1;
                max = max.max(depth);
            }
            ')' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

fn parse_into(src: &str, depth: usize, out: &mut Vec<Part>) {
    if depth > MAX_DEPTH {
        out.push(fixed_ask(src, "command nests too deeply to analyse"));
        return;
    }
    if src.len() > MAX_COMMAND_BYTES {
        out.push(fixed_ask(
            truncate(src, 80),
            "command is too long to analyse",
        ));
        return;
    }
    if max_bracket_depth(src) > MAX_BRACKETS {
        out.push(fixed_ask(
            truncate(src, 80),
            "command nests too deeply to analyse",
        ));
        return;
    }
    let options = parser_options();
    let parsed = std::panic::catch_unwind(|| {
        let mut parser = brush_parser::Parser::new(std::io::Cursor::new(src), &options);
        parser.parse_program()
    });
    match parsed {
        Ok(Ok(program)) => {
            for list in &program.complete_commands {
                compound_list(list, depth, out);
            }
        }
        Ok(Err(e)) => out.push(fixed_ask(src, format!("could not parse the command: {e}"))),
        Err(_) => out.push(fixed_ask(src, "could not parse the command")),
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_owned();
    }
    let mut end = n;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn compound_list(list: &ast::CompoundList, depth: usize, out: &mut Vec<Part>) {
    for ast::CompoundListItem(and_or, _sep) in &list.0 {
        pipeline(&and_or.first, depth, out);
        for next in &and_or.additional {
            match next {
                ast::AndOr::And(p) | ast::AndOr::Or(p) => pipeline(p, depth, out),
            }
        }
    }
}

fn pipeline(p: &ast::Pipeline, depth: usize, out: &mut Vec<Part>) {
    for cmd in &p.seq {
        command_node(cmd, depth, out);
    }
}

fn command_node(cmd: &ast::Command, depth: usize, out: &mut Vec<Part>) {
    match cmd {
        ast::Command::Simple(simple) => simple_command(simple, depth, out),
        ast::Command::Compound(compound, redirects) => {
            compound_command(compound, depth, out);
            if let Some(list) = redirects {
                for r in &list.0 {
                    redirect(r, depth, out);
                }
            }
        }
        ast::Command::Function(def) => {
            // The body may never run, but deciding it now is the conservative choice.
            let ast::FunctionBody(body, redirects) = &def.body;
            compound_command(body, depth, out);
            if let Some(list) = redirects {
                for r in &list.0 {
                    redirect(r, depth, out);
                }
            }
        }
        ast::Command::ExtendedTest(test, redirects) => {
            let text = test.to_string();
            if has_substitution(&text) {
                out.push(fixed_ask(
                    format!("[[ {text} ]]"),
                    "command substitution inside a [[ ]] test is not analysed",
                ));
            } else {
                out.push(Part {
                    text: format!("[[ {text} ]]"),
                    kind: PartKind::Fixed(Verdict::Allow, "builtin: test expression".to_owned()),
                });
            }
            if let Some(list) = redirects {
                for r in &list.0 {
                    redirect(r, depth, out);
                }
            }
        }
    }
}

/// Whether an "arithmetic" text looks like commands rather than arithmetic: characters
/// arithmetic never uses, or two operands in a row (`curl x`).
fn may_be_commands(expr: &str) -> bool {
    let arithmetic_char = |c: char| {
        c.is_ascii_alphanumeric() || c.is_whitespace() || "_+-*/%<>=!&|^~?:,()$[]{}#@".contains(c)
    };
    if !expr.chars().all(arithmetic_char) {
        return true;
    }
    let operand = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$';
    let mut prev_operand = false;
    let mut gap = false;
    for c in expr.chars() {
        if c.is_whitespace() {
            gap = true;
            continue;
        }
        let is_operand = operand(c);
        if is_operand && prev_operand && gap {
            return true;
        }
        prev_operand = is_operand;
        gap = false;
    }
    false
}

fn has_substitution(s: &str) -> bool {
    s.contains("$(") || s.contains('`') || s.contains("<(") || s.contains(">(")
}

fn compound_command(c: &ast::CompoundCommand, depth: usize, out: &mut Vec<Part>) {
    match c {
        ast::CompoundCommand::BraceGroup(g) => compound_list(&g.list, depth, out),
        ast::CompoundCommand::Subshell(s) => compound_list(&s.list, depth, out),
        ast::CompoundCommand::ForClause(f) => {
            for w in f.values.iter().flatten() {
                let _ = word_arg(&w.value, depth, out);
            }
            compound_list(&f.body.list, depth, out);
        }
        ast::CompoundCommand::CaseClause(c) => {
            let _ = word_arg(&c.value.value, depth, out);
            for item in &c.cases {
                for p in &item.patterns {
                    let _ = word_arg(&p.value, depth, out);
                }
                if let Some(list) = &item.cmd {
                    compound_list(list, depth, out);
                }
            }
        }
        ast::CompoundCommand::IfClause(i) => {
            compound_list(&i.condition, depth, out);
            compound_list(&i.then, depth, out);
            for e in i.elses.iter().flatten() {
                if let Some(cond) = &e.condition {
                    compound_list(cond, depth, out);
                }
                compound_list(&e.body, depth, out);
            }
        }
        ast::CompoundCommand::WhileClause(w) | ast::CompoundCommand::UntilClause(w) => {
            compound_list(&w.0, depth, out);
            compound_list(&w.1.list, depth, out);
        }
        ast::CompoundCommand::Arithmetic(a) => {
            out.push(fixed_ask(
                format!("(( {} ))", a.expr.value),
                "arithmetic commands are not analysed",
            ));
            // `( (cmd) )` can come back as arithmetic; reading it as commands too only adds
            // parts, so it can only make the verdict stricter.
            // The parser does not keep the spacing that tells `( (` from `((`, and this part is
            // `ask` anyway, so always look inside.
            parse_into(&a.expr.value, depth + 1, out);
        }
        ast::CompoundCommand::ArithmeticForClause(f) => {
            out.push(fixed_ask(
                "for (( … ))",
                "arithmetic for loops are not analysed",
            ));
            compound_list(&f.body.list, depth, out);
        }
        ast::CompoundCommand::Coprocess(c) => {
            out.push(fixed_ask("coproc", "coprocesses are not analysed"));
            command_node(&c.body, depth, out);
        }
    }
}

fn redirect(r: &ast::IoRedirect, depth: usize, out: &mut Vec<Part>) {
    match r {
        ast::IoRedirect::File(_, kind, target) => {
            let writes = matches!(
                kind,
                ast::IoFileRedirectKind::Write
                    | ast::IoFileRedirectKind::Append
                    | ast::IoFileRedirectKind::Clobber
                    | ast::IoFileRedirectKind::ReadAndWrite
            );
            let reads = matches!(
                kind,
                ast::IoFileRedirectKind::Read | ast::IoFileRedirectKind::ReadAndWrite
            );
            match target {
                ast::IoFileRedirectTarget::Filename(w) => {
                    let arg = word_arg(&w.value, depth, out);
                    if writes {
                        out.push(Part {
                            text: format!("{kind} {}", w.value),
                            kind: PartKind::Write(arg.clone()),
                        });
                    }
                    if reads {
                        out.push(Part {
                            text: format!("{kind} {}", w.value),
                            kind: PartKind::Read(arg),
                        });
                    }
                }
                ast::IoFileRedirectTarget::Fd(_) => {}
                ast::IoFileRedirectTarget::ProcessSubstitution(_, sub) => {
                    compound_list(&sub.list, depth + 1, out);
                }
                ast::IoFileRedirectTarget::Duplicate(w) => {
                    // `>&2` duplicates a descriptor; `>& file` (bash) writes to a file.
                    let arg = word_arg(&w.value, depth, out);
                    let is_fd = arg.lit().is_some_and(|s| {
                        s == "-" || s.trim_end_matches('-').chars().all(|c| c.is_ascii_digit())
                    });
                    if !is_fd {
                        out.push(Part {
                            text: format!("{kind} {}", w.value),
                            kind: PartKind::Write(arg),
                        });
                    }
                }
            }
        }
        ast::IoRedirect::OutputAndError(w, _) => {
            let arg = word_arg(&w.value, depth, out);
            out.push(Part {
                text: format!("&> {}", w.value),
                kind: PartKind::Write(arg),
            });
        }
        ast::IoRedirect::HereString(_, w) => {
            let _ = word_arg(&w.value, depth, out);
        }
        ast::IoRedirect::HereDocument(_, doc) => {
            if doc.requires_expansion {
                match word::parse_heredoc(&doc.doc.value, &parser_options()) {
                    Ok(pieces) => {
                        let mut dynamic = false;
                        pieces_into(
                            &doc.doc.value,
                            &pieces,
                            false,
                            depth,
                            out,
                            &mut String::new(),
                            &mut dynamic,
                        );
                    }
                    Err(_) => out.push(fixed_ask(
                        "<<heredoc",
                        "here-document could not be analysed",
                    )),
                }
            }
        }
    }
}

/// Analyses a word: its literal value if it has one, and every command it would run.
fn word_arg(raw: &str, depth: usize, out: &mut Vec<Part>) -> Arg {
    // Most words are plain; they need no word parser (which dominates decision time).
    let plain = !raw.is_empty()
        && !raw.starts_with('~')
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_./=:,+@%-".contains(&b));
    if plain {
        return Arg::Lit(raw.to_owned());
    }
    let pieces = match word::parse(raw, &parser_options()) {
        Ok(p) => p,
        Err(_) => {
            out.push(fixed_ask(raw, "word could not be analysed"));
            return Arg::Dyn(raw.to_owned());
        }
    };
    let mut lit = String::new();
    let mut dynamic = false;
    pieces_into(raw, &pieces, false, depth, out, &mut lit, &mut dynamic);
    if dynamic {
        Arg::Dyn(raw.to_owned())
    } else {
        Arg::Lit(lit)
    }
}

#[allow(clippy::too_many_arguments)]
fn pieces_into(
    raw: &str,
    pieces: &[WordPieceWithSource],
    quoted: bool,
    depth: usize,
    out: &mut Vec<Part>,
    lit: &mut String,
    dynamic: &mut bool,
) {
    for p in pieces {
        match &p.piece {
            WordPiece::Text(s) => {
                if !quoted && s.chars().any(|c| matches!(c, '*' | '?' | '[' | '{')) {
                    // Globs and brace expansion produce words only known at run time.
                    *dynamic = true;
                }
                lit.push_str(s);
            }
            WordPiece::SingleQuotedText(s) => lit.push_str(s),
            WordPiece::EscapeSequence(s) => {
                let unescaped = s.strip_prefix('\\').unwrap_or(s);
                if unescaped != "\n" {
                    lit.push_str(unescaped);
                }
            }
            WordPiece::DoubleQuotedSequence(inner)
            | WordPiece::GettextDoubleQuotedSequence(inner) => {
                pieces_into(raw, inner, true, depth, out, lit, dynamic);
            }
            WordPiece::AnsiCQuotedText(s) => {
                *dynamic = true;
                lit.push_str(s);
            }
            WordPiece::TildeExpansion(_) => {
                *dynamic = true;
                lit.push('~');
            }
            WordPiece::ParameterExpansion(_) => {
                *dynamic = true;
                let text = raw.get(p.start_index..p.end_index).unwrap_or(raw);
                if has_substitution(text) {
                    out.push(fixed_ask(
                        text,
                        "command substitution inside a parameter expansion is not analysed",
                    ));
                }
            }
            WordPiece::CommandSubstitution(s) | WordPiece::BackquotedCommandSubstitution(s) => {
                *dynamic = true;
                parse_into(s, depth + 1, out);
            }
            WordPiece::ArithmeticExpression(e) => {
                *dynamic = true;
                // `$(( … ))` and `$( ( … ) )` are told apart by guessing, in bash as in the
                // parser; reading the text as commands too can only add stricter parts.
                if may_be_commands(&e.value) {
                    parse_into(&e.value, depth + 1, out);
                }
                if has_substitution(&e.value) || e.value.contains('$') {
                    out.push(fixed_ask(
                        format!("$(( {} ))", e.value),
                        "expansions inside arithmetic are not analysed",
                    ));
                }
            }
        }
    }
}

fn simple_command(sc: &ast::SimpleCommand, depth: usize, out: &mut Vec<Part>) {
    let mut env_names = Vec::new();
    let mut argv = Vec::new();
    for item in sc.prefix.iter().flat_map(|p| p.0.iter()) {
        prefix_or_suffix(item, depth, out, &mut env_names, &mut argv, true);
    }
    if let Some(w) = &sc.word_or_name {
        argv.push(word_arg(&w.value, depth, out));
    }
    for item in sc.suffix.iter().flat_map(|s| s.0.iter()) {
        prefix_or_suffix(item, depth, out, &mut env_names, &mut argv, false);
    }
    if argv.is_empty() {
        if !env_names.is_empty() {
            out.push(Part {
                text: sc.to_string(),
                kind: PartKind::Fixed(Verdict::Allow, "builtin: variable assignment".to_owned()),
            });
        }
        return;
    }
    command(argv, env_names, depth, out);
}

fn prefix_or_suffix(
    item: &ast::CommandPrefixOrSuffixItem,
    depth: usize,
    out: &mut Vec<Part>,
    env_names: &mut Vec<String>,
    argv: &mut Vec<Arg>,
    in_prefix: bool,
) {
    match item {
        ast::CommandPrefixOrSuffixItem::IoRedirect(r) => redirect(r, depth, out),
        ast::CommandPrefixOrSuffixItem::Word(w) => argv.push(word_arg(&w.value, depth, out)),
        ast::CommandPrefixOrSuffixItem::AssignmentWord(assignment, w) => {
            match &assignment.value {
                ast::AssignmentValue::Scalar(v) => {
                    let _ = word_arg(&v.value, depth, out);
                }
                ast::AssignmentValue::Array(items) => {
                    for (k, v) in items {
                        if let Some(k) = k {
                            let _ = word_arg(&k.value, depth, out);
                        }
                        let _ = word_arg(&v.value, depth, out);
                    }
                }
            }
            if in_prefix {
                let name = match &assignment.name {
                    ast::AssignmentName::VariableName(n) => n.clone(),
                    ast::AssignmentName::ArrayElementName(n, _) => n.clone(),
                };
                env_names.push(name);
            } else {
                // `export X=1`, `declare X=1`: an argument of the program.
                argv.push(word_arg(&w.value, depth, out));
            }
        }
        ast::CommandPrefixOrSuffixItem::ProcessSubstitution(_, sub) => {
            argv.push(Arg::Dyn("<(…)".to_owned()));
            compound_list(&sub.list, depth + 1, out);
        }
    }
}

fn render(argv: &[Arg]) -> String {
    argv.iter().map(Arg::text).collect::<Vec<_>>().join(" ")
}

fn basename(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

/// Decides what an argv really runs: looks through wrappers and `sh -c`, and emits parts.
fn command(argv: Vec<Arg>, env_names: Vec<String>, depth: usize, out: &mut Vec<Part>) {
    if depth > MAX_DEPTH {
        out.push(fixed_ask(
            render(&argv),
            "command nests too deeply to analyse",
        ));
        return;
    }
    let unsafe_env: Vec<String> = env_names
        .iter()
        .filter(|n| !is_safe_env(n))
        .cloned()
        .collect();
    let Some(program) = argv.first().and_then(Arg::lit).map(basename) else {
        out.push(Part {
            text: render(&argv),
            kind: PartKind::Command {
                argv,
                unsafe_env,
                explicit_only: false,
            },
        });
        return;
    };
    let wrapper_part = |argv: &[Arg], out: &mut Vec<Part>| {
        out.push(Part {
            text: render(argv),
            kind: PartKind::Command {
                argv: argv.to_vec(),
                unsafe_env: Vec::new(),
                explicit_only: true,
            },
        });
    };
    let program = program.to_owned();
    match program.as_str() {
        "eval" | "exec" if argv.len() == 1 => plain(argv, unsafe_env, out),
        "eval" => out.push(fixed_ask(
            render(&argv),
            "eval runs a string built at run time",
        )),
        "env" => {
            wrapper_part(&argv, out);
            let mut names = env_names;
            let mut i = 1;
            while let Some(a) = argv.get(i) {
                let Some(s) = a.lit() else {
                    out.push(fixed_ask(
                        render(&argv),
                        "env argument computed at run time",
                    ));
                    return;
                };
                match s {
                    "-i" | "--ignore-environment" | "-0" | "--null" | "-" => i += 1,
                    "--" => {
                        i += 1;
                        break;
                    }
                    "-u" | "--unset" | "-C" | "--chdir" => i += 2,
                    _ if s.starts_with("--unset=") || s.starts_with("--chdir=") => i += 1,
                    _ if s.starts_with('-') => {
                        out.push(fixed_ask(
                            render(&argv),
                            format!("env option `{s}` is not analysed"),
                        ));
                        return;
                    }
                    _ if s.contains('=') => {
                        names.push(s.split('=').next().unwrap_or(s).to_owned());
                        i += 1;
                    }
                    _ => break,
                }
            }
            // `env X=1` alone prints the environment.
            let rest = argv.get(i..).unwrap_or_default().to_vec();
            if rest.is_empty() {
                plain(argv, unsafe_env, out);
            } else {
                command(rest, names, depth + 1, out);
            }
        }
        "nohup" | "setsid" | "builtin" => unwrap_simple(&argv, 1, env_names, depth, out),
        "exec" | "command" => {
            let mut i = 1;
            while let Some(s) = argv.get(i).and_then(Arg::lit) {
                match s {
                    "-v" | "-V" if program == "command" => {
                        // `command -v x` only looks x up.
                        plain(argv, unsafe_env, out);
                        return;
                    }
                    "-p" | "-c" | "-l" => i += 1,
                    "-a" => i += 2,
                    "--" => {
                        i += 1;
                        break;
                    }
                    _ => break,
                }
            }
            unwrap_simple(&argv, i, env_names, depth, out);
        }
        "time" => {
            let mut i = 1;
            while let Some(s) = argv.get(i).and_then(Arg::lit) {
                match s {
                    "-p" | "-v" | "--verbose" | "--portability" | "-a" | "--append" => i += 1,
                    "-o" | "-f" | "--output" | "--format" => i += 2,
                    _ => break,
                }
            }
            unwrap_simple(&argv, i, env_names, depth, out);
        }
        "nice" => {
            let mut i = 1;
            while let Some(s) = argv.get(i).and_then(Arg::lit) {
                if s == "-n" || s == "--adjustment" {
                    i += 2;
                } else if s.starts_with("--adjustment=")
                    || (s.starts_with('-')
                        && s[1..].chars().all(|c| c.is_ascii_digit())
                        && s.len() > 1)
                {
                    i += 1;
                } else {
                    break;
                }
            }
            unwrap_simple(&argv, i, env_names, depth, out);
        }
        "timeout" => {
            let mut i = 1;
            while let Some(s) = argv.get(i).and_then(Arg::lit) {
                match s {
                    "-s" | "--signal" | "-k" | "--kill-after" => i += 2,
                    "--preserve-status" | "--foreground" | "-v" | "--verbose" => i += 1,
                    _ if s.starts_with("--signal=") || s.starts_with("--kill-after=") => i += 1,
                    _ if s.starts_with('-') && s.len() > 1 => {
                        out.push(fixed_ask(
                            render(&argv),
                            format!("timeout option `{s}` is not analysed"),
                        ));
                        return;
                    }
                    _ => break,
                }
            }
            // Then the duration.
            unwrap_simple(&argv, i + 1, env_names, depth, out);
        }
        "stdbuf" => {
            let mut i = 1;
            while let Some(s) = argv.get(i).and_then(Arg::lit) {
                if matches!(s, "-i" | "-o" | "-e") {
                    i += 2;
                } else if s.starts_with('-') {
                    i += 1;
                } else {
                    break;
                }
            }
            unwrap_simple(&argv, i, env_names, depth, out);
        }
        "xargs" => {
            wrapper_part(&argv, out);
            let mut i = 1;
            let mut replace: Option<String> = None;
            while let Some(a) = argv.get(i) {
                let Some(s) = a.lit() else {
                    out.push(fixed_ask(
                        render(&argv),
                        "xargs argument computed at run time",
                    ));
                    return;
                };
                if !s.starts_with('-') || s == "-" {
                    break;
                }
                if s == "--" {
                    i += 1;
                    break;
                }
                match s {
                    "-I" => {
                        replace = argv.get(i + 1).map(|a| a.text().to_owned());
                        i += 2;
                    }
                    "-L" | "-n" | "-P" | "-s" | "-d" | "-E" | "-a" | "--max-lines"
                    | "--max-args" | "--max-procs" | "--max-chars" | "--delimiter" | "--eof"
                    | "--arg-file" | "--process-slot-var" => i += 2,
                    _ if s.starts_with("-i") || s.starts_with("--replace") => {
                        let r = s
                            .strip_prefix("--replace=")
                            .or_else(|| s.strip_prefix("-i"))
                            .filter(|r| !r.is_empty())
                            .unwrap_or("{}");
                        replace = Some(r.to_owned());
                        i += 1;
                    }
                    "-0" | "--null" | "-r" | "--no-run-if-empty" | "-t" | "--verbose" | "-p"
                    | "--interactive" | "-x" | "--exit" | "-o" | "--open-tty" => i += 1,
                    _ if s.starts_with("--") && s.contains('=') => i += 1,
                    _ if s.len() > 2
                        && matches!(
                            &s[..2],
                            "-L" | "-n" | "-P" | "-s" | "-d" | "-E" | "-a" | "-l" | "-e"
                        ) =>
                    {
                        i += 1
                    }
                    "-l" | "-e" => i += 1,
                    _ => {
                        out.push(fixed_ask(
                            render(&argv),
                            format!("xargs option `{s}` is not analysed"),
                        ));
                        return;
                    }
                }
            }
            let mut inner: Vec<Arg> = argv.get(i..).unwrap_or_default().to_vec();
            if inner.is_empty() {
                inner.push(Arg::Lit("echo".to_owned()));
            }
            match replace {
                Some(r) => {
                    for a in &mut inner {
                        if a.text().contains(r.as_str()) {
                            *a = Arg::Dyn(a.text().to_owned());
                        }
                    }
                }
                // The input lines become extra arguments.
                None => inner.push(Arg::Dyn("<stdin words>".to_owned())),
            }
            command(inner, env_names, depth + 1, out);
        }
        "find" => {
            plain(argv.clone(), unsafe_env, out);
            let mut i = 1;
            while i < argv.len() {
                let is_exec = argv[i]
                    .lit()
                    .is_some_and(|s| matches!(s, "-exec" | "-execdir" | "-ok" | "-okdir"));
                if !is_exec {
                    i += 1;
                    continue;
                }
                let start = i + 1;
                let mut end = start;
                while end < argv.len() && !matches!(argv[end].lit(), Some(";") | Some("+")) {
                    end += 1;
                }
                let inner: Vec<Arg> = argv[start..end]
                    .iter()
                    .map(|a| {
                        if a.text().contains("{}") {
                            Arg::Dyn(a.text().to_owned())
                        } else {
                            a.clone()
                        }
                    })
                    .collect();
                if inner.is_empty() {
                    out.push(fixed_ask(render(&argv), "find -exec without a command"));
                } else {
                    command(inner, Vec::new(), depth + 1, out);
                }
                i = end + 1;
            }
        }
        "sudo" | "doas" => {
            // Decided as its own program (a rule on `sudo` applies), and what it runs too.
            plain(argv.clone(), unsafe_env, out);
            let mut i = 1;
            while let Some(s) = argv.get(i).and_then(Arg::lit) {
                match s {
                    "-u" | "-g" | "-U" | "-C" | "-D" | "-h" | "-p" | "-r" | "-t" | "-T" => i += 2,
                    "--" => {
                        i += 1;
                        break;
                    }
                    _ if s.starts_with('-') => i += 1,
                    _ => break,
                }
            }
            if i < argv.len() {
                command(argv[i..].to_vec(), Vec::new(), depth + 1, out);
            }
        }
        "sh" | "bash" | "dash" | "zsh" | "ksh" | "ash" | "mksh" | "busybox" => {
            shell_invocation(argv, unsafe_env, depth, out)
        }
        "su" => {
            // Its own program (a rule on `su` applies), and `-c 'script'` is parsed.
            plain(argv.clone(), unsafe_env, out);
            let script = argv
                .iter()
                .position(|a| matches!(a.lit(), Some("-c" | "--command")))
                .and_then(|i| argv.get(i + 1));
            match script {
                Some(Arg::Lit(s)) => parse_into(s, depth + 1, out),
                Some(Arg::Dyn(s)) => out.push(fixed_ask(
                    render(&argv),
                    format!("su script `{s}` is computed at run time"),
                )),
                None => {}
            }
        }
        "watch" => {
            // watch runs its arguments through `sh -c` (or directly with -x).
            let mut i = 1;
            while let Some(s) = argv.get(i).and_then(Arg::lit) {
                match s {
                    "-n" | "--interval" | "-q" | "--equexit" => i += 2,
                    _ if s.starts_with('-') => i += 1,
                    _ => break,
                }
            }
            let rest: Vec<Arg> = argv.get(i..).unwrap_or_default().to_vec();
            wrapper_part(&argv, out);
            if rest.iter().all(|a| a.lit().is_some()) {
                parse_into(&render(&rest), depth + 1, out);
            } else {
                out.push(fixed_ask(
                    render(&argv),
                    "watch command computed at run time",
                ));
            }
        }
        "flock" => {
            // flock [opts] FILE CMD … | flock [opts] FILE -c 'script' | flock [opts] FD
            let mut i = 1;
            while let Some(s) = argv.get(i).and_then(Arg::lit) {
                match s {
                    "-w" | "--timeout" | "-E" | "--conflict-exit-code" => i += 2,
                    "-c" | "--command" => break,
                    _ if s.starts_with('-') => i += 1,
                    _ => break,
                }
            }
            // Skip the lock file.
            i += 1;
            match argv.get(i).and_then(Arg::lit) {
                Some("-c" | "--command") => match argv.get(i + 1) {
                    Some(Arg::Lit(script)) => {
                        wrapper_part(&argv, out);
                        parse_into(script, depth + 1, out);
                    }
                    _ => out.push(fixed_ask(render(&argv), "flock script not analysed")),
                },
                _ => unwrap_simple(&argv, i, env_names, depth, out),
            }
        }
        _ => plain(argv, unsafe_env, out),
    }
}

fn plain(argv: Vec<Arg>, unsafe_env: Vec<String>, out: &mut Vec<Part>) {
    out.push(Part {
        text: render(&argv),
        kind: PartKind::Command {
            argv,
            unsafe_env,
            explicit_only: false,
        },
    });
}

/// A transparent wrapper whose command starts at `argv[start]`.
fn unwrap_simple(
    argv: &[Arg],
    start: usize,
    env_names: Vec<String>,
    depth: usize,
    out: &mut Vec<Part>,
) {
    out.push(Part {
        text: render(argv),
        kind: PartKind::Command {
            argv: argv.to_vec(),
            unsafe_env: Vec::new(),
            explicit_only: true,
        },
    });
    match argv.get(start..) {
        Some(rest) if !rest.is_empty() => command(rest.to_vec(), env_names, depth + 1, out),
        _ => {
            let unsafe_env = env_names.into_iter().filter(|n| !is_safe_env(n)).collect();
            out.push(Part {
                text: render(argv),
                kind: PartKind::Command {
                    argv: argv.to_vec(),
                    unsafe_env,
                    explicit_only: false,
                },
            });
        }
    }
}

/// `sh -c 'script' …`: the script is parsed like a command line. A shell reading a script
/// file or stdin is decided as the program it is.
fn shell_invocation(argv: Vec<Arg>, unsafe_env: Vec<String>, depth: usize, out: &mut Vec<Part>) {
    let mut i = 1;
    if argv.first().and_then(Arg::lit).map(basename) == Some("busybox") {
        match argv.get(1).and_then(Arg::lit) {
            Some("sh" | "ash") => i = 2,
            // `busybox rm …` is `rm …`.
            Some(_) => return unwrap_simple(&argv, 1, Vec::new(), depth, out),
            None => return plain(argv, unsafe_env, out),
        }
    }
    let mut has_c = false;
    while let Some(a) = argv.get(i) {
        let Some(s) = a.lit() else {
            out.push(fixed_ask(
                render(&argv),
                "shell option computed at run time",
            ));
            return;
        };
        if s == "--" {
            i += 1;
            break;
        }
        if s.starts_with("--") {
            // --norc, --login, --posix, …
            i += 1;
            continue;
        }
        if (s.starts_with('-') || s.starts_with('+')) && s.len() > 1 {
            if s[1..].contains('c') {
                has_c = true;
            }
            // `-o opt` / `-O opt` take an argument.
            if s[1..].contains('o') || s[1..].contains('O') {
                i += 1;
            }
            i += 1;
            continue;
        }
        break;
    }
    if !has_c {
        plain(argv, unsafe_env, out);
        return;
    }
    // The shell itself is a wrapper here; only an explicit rule on it counts.
    out.push(Part {
        text: render(&argv),
        kind: PartKind::Command {
            argv: argv.clone(),
            unsafe_env: unsafe_env.clone(),
            explicit_only: true,
        },
    });
    match argv.get(i) {
        Some(Arg::Lit(script)) => {
            let before = out.len();
            parse_into(script, depth + 1, out);
            if !unsafe_env.is_empty() {
                // Variables set for the shell reach every command it runs.
                for part in &mut out[before..] {
                    if let PartKind::Command { unsafe_env: u, .. } = &mut part.kind {
                        u.extend(unsafe_env.iter().cloned());
                    }
                }
            }
        }
        Some(Arg::Dyn(s)) => out.push(fixed_ask(
            render(&argv),
            format!("shell script `{s}` is computed at run time"),
        )),
        None => out.push(fixed_ask(render(&argv), "`-c` without a script")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn texts(line: &str) -> Vec<String> {
        split_command(line).into_iter().map(|p| p.text).collect()
    }

    #[test]
    fn splits_operators() {
        assert_eq!(
            texts("a 1; b && c || d | e & f\ng"),
            ["a 1", "b", "c", "d", "e", "f", "g"]
        );
    }

    #[test]
    fn substitutions_and_subshells() {
        let t = texts("echo $(rm -rf x) `id`; (cd a; make); { ls; }");
        assert!(t.contains(&"rm -rf x".to_owned()), "{t:?}");
        assert!(t.contains(&"id".to_owned()), "{t:?}");
        assert!(t.contains(&"make".to_owned()), "{t:?}");
        assert!(t.contains(&"ls".to_owned()), "{t:?}");
    }

    #[test]
    fn quotes_are_removed() {
        let parts = split_command("'r'\"m\" -rf \\/");
        let PartKind::Command { argv, .. } = &parts[0].kind else {
            panic!("{parts:?}")
        };
        assert_eq!(argv[0], Arg::Lit("rm".into()));
        assert_eq!(argv[2], Arg::Lit("/".into()));
    }
}
