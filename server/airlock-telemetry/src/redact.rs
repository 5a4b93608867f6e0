//! Privacy filters applied by the bus to every event before it reaches any sink.
//!
//! Guarantees:
//! - content fields ([`CONTENT_FIELDS`]: prompt text, command output, file contents, stderr) are
//!   removed unless the user opted in with `telemetry.content`;
//! - strings that look like credentials are replaced with [`REDACTED`] whether or not content is
//!   on: well-known token shapes (cloud keys, GitHub/GitLab/Slack/OpenAI-style tokens, JWTs,
//!   private key blocks), the value after a secret-sounding name (`API_TOKEN=…`,
//!   `password: …`, `Bearer …`), the password in a URL (`https://user:…@host`), and the value of
//!   any field whose own name sounds secret.
//!
//! It is a heuristic: it errs on the side of redacting, and it cannot recognise a secret that has
//! no recognisable shape or name. The redaction is applied once, so the audit log, the editor
//! and OTLP all see the same text.

use std::borrow::Cow;

use crate::Event;

pub const REDACTED: &str = "[REDACTED]";

/// Field names that carry user content rather than metadata.
pub const CONTENT_FIELDS: &[&str] = &["text", "output", "stdout", "stderr", "content"];

/// Applies both filters to one event in place.
pub fn apply(event: &mut Event, content: bool) {
    if !content {
        event
            .fields
            .retain(|k, _| !CONTENT_FIELDS.contains(&k.as_str()));
    }
    if let Cow::Owned(s) = redact(&event.subject) {
        event.subject = s;
    }
    for (key, value) in event.fields.iter_mut() {
        if is_secret_name(key) && !value.is_null() {
            *value = serde_json::Value::String(REDACTED.into());
        } else {
            redact_value(value);
        }
    }
}

fn redact_value(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) => {
            if let Cow::Owned(r) = redact(s) {
                *s = r;
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_value),
        serde_json::Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if is_secret_name(key) && !v.is_null() {
                    *v = serde_json::Value::String(REDACTED.into());
                } else {
                    redact_value(v);
                }
            }
        }
        _ => {}
    }
}

/// True for names like `GITHUB_TOKEN`, `db_password`, `X-Api-Key`, `client_secret`.
pub fn is_secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    const NEEDLES: &[&str] = &[
        "password",
        "passwd",
        "secret",
        "token",
        "apikey",
        "api_key",
        "api-key",
        "access_key",
        "access-key",
        "private_key",
        "private-key",
        "authorization",
        "credential",
        "cookie",
    ];
    NEEDLES.iter().any(|n| lower.contains(n))
}

/// Returns `text` with anything that looks like a secret replaced by [`REDACTED`].
pub fn redact(text: &str) -> Cow<'_, str> {
    // Fast path: most subjects are paths and short command lines without any candidate.
    if !might_contain_secret(text) {
        return Cow::Borrowed(text);
    }
    let mut out = redact_private_keys(text);
    out = redact_url_passwords(&out);
    out = redact_tokens(&out);
    if out == text {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(out)
    }
}

fn might_contain_secret(text: &str) -> bool {
    // Every rule below needs either a long token-ish run, a `://…@`, a key block or a
    // separator after a name; all of them contain one of these bytes or a long run.
    text.contains("PRIVATE KEY")
        || text.contains('@')
        || text.contains('=')
        || text.contains(':')
        || contains_ignore_case(text, "bearer")
        || longest_token_run(text) >= 16
}

fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

fn longest_token_run(text: &str) -> usize {
    let mut best = 0;
    let mut run = 0;
    for b in text.bytes() {
        if is_token_byte(b) {
            run += 1;
            best = best.max(run);
        } else {
            run = 0;
        }
    }
    best
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'+' | b'/')
}

fn redact_private_keys(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start..];
        let header_end = after.find("PRIVATE KEY-----");
        let Some(header_end) = header_end else {
            break;
        };
        let end = after[header_end..]
            .find("-----END ")
            .and_then(|e| {
                let tail = &after[header_end + e..];
                tail.find("PRIVATE KEY-----")
                    .map(|k| header_end + e + k + "PRIVATE KEY-----".len())
            })
            // An unterminated block (e.g. cut output): redact to the end.
            .unwrap_or(after.len());
        out.push_str(&rest[..start]);
        out.push_str(REDACTED);
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

fn redact_url_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, after) = rest.split_at(i + 3);
        out.push_str(head);
        let authority_end = after
            .find(|c: char| c == '/' || c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(after.len());
        let authority = &after[..authority_end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                out.push_str(&authority[..=colon]);
                out.push_str(REDACTED);
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &after[authority_end..];
    }
    out.push_str(rest);
    out
}

/// Splits into runs of token bytes and decides per run, looking at the run before it and the
/// separator in between for `NAME=value`, `name: value` and `Bearer value`.
fn redact_tokens(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut prev_token: Option<&str> = None;
    // The token before `prev_token`, for `curl -u user:password`.
    let mut prev2_token: Option<&str> = None;
    let mut separator = String::new();
    while i < bytes.len() {
        if !is_token_byte(bytes[i]) {
            let start = i;
            while i < bytes.len() && !is_token_byte(bytes[i]) {
                i += 1;
            }
            // Token bytes are ASCII, so these slice boundaries are char boundaries.
            let sep = &text[start..i];
            out.push_str(sep);
            separator.push_str(sep);
            continue;
        }
        let start = i;
        while i < bytes.len() && is_token_byte(bytes[i]) {
            i += 1;
        }
        let token = &text[start..i];
        let sep = separator.trim_matches(|c: char| c.is_whitespace() || c == '"' || c == '\'');
        let after_secret_name =
            prev_token.is_some_and(is_secret_name) && (sep == "=" || sep == ":");
        let after_bearer = prev_token
            .is_some_and(|p| p.eq_ignore_ascii_case("bearer") || p.eq_ignore_ascii_case("basic"))
            && sep.is_empty()
            && !separator.is_empty();
        let user_password = sep == ":" && prev2_token.is_some_and(|p| p == "-u" || p == "--user");
        if after_secret_name || after_bearer || user_password || looks_like_token(token) {
            out.push_str(REDACTED);
        } else {
            out.push_str(token);
        }
        prev2_token = prev_token;
        prev_token = Some(token);
        separator.clear();
    }
    out
}

/// Known credential shapes. Prefixes are from the vendors' documented formats.
fn looks_like_token(token: &str) -> bool {
    const PREFIXES: &[(&str, usize)] = &[
        ("ghp_", 20),
        ("gho_", 20),
        ("ghu_", 20),
        ("ghs_", 20),
        ("ghr_", 20),
        ("github_pat_", 20),
        ("glpat-", 20),
        ("sk-", 20),
        ("xoxb-", 10),
        ("xoxp-", 10),
        ("xoxa-", 10),
        ("xoxs-", 10),
        ("xoxr-", 10),
        ("AIza", 30),
        ("npm_", 30),
        ("hf_", 30),
    ];
    for (prefix, min_rest) in PREFIXES {
        if let Some(rest) = token.strip_prefix(prefix)
            && rest.len() >= *min_rest
        {
            return true;
        }
    }
    // AWS access key ids: AKIA/ASIA + 16 upper-case alphanumerics.
    if (token.starts_with("AKIA") || token.starts_with("ASIA"))
        && token.len() == 20
        && token[4..]
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        return true;
    }
    // JWT: three base64url parts, the first two starting with `eyJ` (`{"`).
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() == 3
        && parts[0].starts_with("eyJ")
        && parts[1].starts_with("eyJ")
        && parts[2].len() >= 8
    {
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EventKind;

    #[test]
    fn redacts_known_shapes_and_keeps_ordinary_text() {
        let cases = [
            (
                "curl -H 'Authorization: Bearer abc.def' https://x",
                "curl -H 'Authorization: [REDACTED] [REDACTED]' https://x",
            ),
            (
                "GITHUB_TOKEN=ghp_0123456789abcdefghijklmnopqrstuv make",
                "GITHUB_TOKEN=[REDACTED] make",
            ),
            ("export password=hunter2", "export password=[REDACTED]"),
            ("key AKIAIOSFODNN7EXAMPLE used", "key [REDACTED] used"),
            (
                "git clone https://bob:s3cr3t@example.com/r.git",
                "git clone https://bob:[REDACTED]@example.com/r.git",
            ),
            (
                "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlMTIz ok",
                "jwt [REDACTED] ok",
            ),
            (
                "a\n-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\nb",
                "a\n[REDACTED]\nb",
            ),
            (
                "OPENAI sk-proj-abcdefghijklmnopqrstuvwxyz",
                "OPENAI [REDACTED]",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(redact(input), want, "input: {input}");
        }
        for keep in [
            "src/lib.rs",
            "cargo test -p airlock-telemetry --all-targets",
            "exit code 1",
            "https://example.com/path?q=1",
            "fn main() { let x = 1; }",
            "author: Bob",
            "sk-short",
        ] {
            assert_eq!(redact(keep), keep);
        }
    }

    #[test]
    fn content_fields_need_opt_in_and_secret_named_fields_are_hidden() {
        let mut event = Event::new(EventKind::Prompt, "12 chars")
            .field("text", "use token=abc")
            .field("apiToken", "whatever")
            .field("nested", serde_json::json!({"password": "p", "n": 1}));
        let mut off = event.clone();
        apply(&mut off, false);
        assert!(!off.fields.contains_key("text"));
        assert_eq!(off.fields["apiToken"], REDACTED);
        assert_eq!(off.fields["nested"]["password"], REDACTED);
        assert_eq!(off.fields["nested"]["n"], 1);
        apply(&mut event, true);
        assert_eq!(event.fields["text"], "use token=[REDACTED]");
    }
}
