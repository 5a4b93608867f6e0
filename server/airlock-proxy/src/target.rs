//! Target normalization and the rules that go beyond the policy's name match: IP literals and
//! internal addresses need an explicit, exact allow rule.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use airlock_policy::{Decision, Layer, Verdict};

/// Lowercases, strips one trailing dot and `[...]` around IPv6, converts internationalized
/// names to their IDNA `xn--` form, and refuses anything that is not then a host name or IP
/// literal.
pub fn normalize_host(host: &str) -> Result<String, crate::ProxyError> {
    let bad = |reason: &str| crate::ProxyError::Host {
        host: host.to_string(),
        reason: reason.to_string(),
    };
    let h = host.trim();
    let h = h.strip_suffix('.').unwrap_or(h);
    let h = h
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(h);
    if h.is_empty() || h.len() > 253 {
        return Err(bad("empty or longer than 253 bytes"));
    }
    // Internationalized names are decided (and written in rules) in their IDNA `xn--` form,
    // which is what goes on the wire; UTS 46 mapping also folds case and width.
    let converted;
    let h = if h.is_ascii() {
        h
    } else {
        converted = idna::domain_to_ascii(h).map_err(|_| bad("not a valid IDNA name"))?;
        converted.as_str()
    };
    if !h
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
    {
        return Err(bad("characters other than letters, digits, `-`, `_`, `.`"));
    }
    Ok(h.to_ascii_lowercase())
}

/// Parses an IP literal, including the legacy IPv4 forms `inet_aton` accepts and resolvers
/// honour (`2130706433`, `0x7f.1`, `0177.0.0.1`), so they cannot pass as names.
pub fn parse_ip_literal(host: &str) -> Option<IpAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(ip);
    }
    if host.contains(':') {
        return host.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    let parts: Vec<&str> = host.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut nums = Vec::with_capacity(parts.len());
    for p in &parts {
        let n = if let Some(hex) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
            u64::from_str_radix(hex, 16).ok()?
        } else if p.len() > 1 && p.starts_with('0') {
            u64::from_str_radix(&p[1..], 8).ok()?
        } else {
            p.parse::<u64>().ok()?
        };
        nums.push(n);
    }
    let (last, head) = nums.split_last()?;
    if head.iter().any(|&n| n > 255) {
        return None;
    }
    let rest_bits = 8 * (4 - head.len() as u32);
    if *last >= (1u64 << rest_bits) {
        return None;
    }
    let mut v: u64 = 0;
    for (i, n) in head.iter().enumerate() {
        v |= n << (24 - 8 * i as u32);
    }
    v |= last;
    Some(IpAddr::V4(Ipv4Addr::from(v as u32)))
}

/// Loopback, private, link-local, unique-local, CGNAT, unspecified, multicast/broadcast and
/// IPv4-mapped forms of those: addresses a public name should never resolve to.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
        }
    }
}

/// Whether `d` allows through an exact rule (not `*`, not `*.suffix`, not a default): the only
/// kind of rule that may open an IP literal or an internal address.
pub fn explicitly_allows(d: &Decision) -> bool {
    if d.verdict != Verdict::Allow {
        return false;
    }
    let Some(rule) = &d.rule else { return false };
    if rule.starts_with("builtin") || rule.contains(" = ") {
        return false;
    }
    let Some(start) = rule.find('"') else {
        return false;
    };
    let pat = &rule[start + 1..];
    !pat.starts_with('*')
}

/// A one-off allow rule (`airlock exec --allow-domain`): `name`, `*.suffix`, each with an
/// optional `:port` (`[v6]:port`). Same matching as the policy's `network.allow`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRule {
    pattern: String,
    host: String,
    suffix: bool,
    port: Option<u16>,
}

impl HostRule {
    pub fn parse(pattern: &str) -> Result<HostRule, crate::ProxyError> {
        let bad = |reason: &str| crate::ProxyError::Host {
            host: pattern.to_string(),
            reason: reason.to_string(),
        };
        let p = pattern.trim();
        let (host, port) = if let Some(rest) = p.strip_prefix('[') {
            let (h, tail) = rest.split_once(']').ok_or_else(|| bad("unclosed `[`"))?;
            match tail.strip_prefix(':') {
                Some(port) => (h, Some(port)),
                None if tail.is_empty() => (h, None),
                None => return Err(bad("expected `[v6]:PORT`")),
            }
        } else if p.matches(':').count() == 1 {
            let (h, port) = p.split_once(':').ok_or_else(|| bad("expected HOST:PORT"))?;
            (h, Some(port))
        } else {
            (p, None)
        };
        let port = match port {
            Some(s) => Some(
                s.parse::<u16>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| bad("port must be 1-65535"))?,
            ),
            None => None,
        };
        let (suffix, name) = match host.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, host),
        };
        if name.contains('*') {
            return Err(bad("`*` only as a leading `*.`"));
        }
        let mut name = normalize_host(name)?;
        if let Some(ip) = parse_ip_literal(&name) {
            name = ip.to_string();
        }
        Ok(HostRule {
            pattern: p.to_string(),
            host: name,
            suffix,
            port,
        })
    }

    /// `host` normalized as by [`normalize_host`].
    pub fn matches(&self, host: &str, port: u16) -> bool {
        let host_ok = if self.suffix {
            host.len() > self.host.len() + 1
                && host.ends_with(&self.host)
                && host.as_bytes()[host.len() - self.host.len() - 1] == b'.'
        } else {
            host == self.host
        };
        host_ok && self.port.is_none_or(|p| p == port)
    }

    /// The decision this rule gives, naming it as `--allow-domain "PATTERN"`.
    pub fn decision(&self) -> Decision {
        Decision {
            verdict: Verdict::Allow,
            rule: Some(format!("--allow-domain \"{}\"", self.pattern)),
            layer: Layer::User,
            source: None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn legacy_ipv4_forms_are_literals() {
        let lo = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(parse_ip_literal("2130706433"), lo);
        assert_eq!(parse_ip_literal("0x7f.1"), lo);
        assert_eq!(parse_ip_literal("0177.0.0.1"), lo);
        assert_eq!(parse_ip_literal("0x7f000001"), lo);
        assert_eq!(parse_ip_literal("127.1"), lo);
        assert_eq!(parse_ip_literal("::1"), Some("::1".parse().unwrap()));
        assert_eq!(parse_ip_literal("example.com"), None);
        assert_eq!(parse_ip_literal("1.2.3.4.5"), None);
        assert_eq!(parse_ip_literal("256.1.1.1"), None);
    }

    #[test]
    fn internal_addresses() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.1.1",
            "172.16.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_internal(a.parse().unwrap()), "{a}");
        }
        for a in ["93.184.216.34", "2606:4700::1"] {
            assert!(!is_internal(a.parse().unwrap()), "{a}");
        }
    }

    #[test]
    fn normalization() {
        assert_eq!(normalize_host("Example.COM.").unwrap(), "example.com");
        assert_eq!(normalize_host("[::1]").unwrap(), "::1");
        assert_eq!(normalize_host("Bücher.de.").unwrap(), "xn--bcher-kva.de");
        assert_eq!(
            normalize_host("xn--bcher-kva.de").unwrap(),
            "xn--bcher-kva.de"
        );
        assert!(normalize_host("a\u{202e}b.de").is_err());
        assert!(normalize_host("a b").is_err());
        assert!(normalize_host("").is_err());
    }

    #[test]
    fn host_rules() {
        let r = HostRule::parse("*.Example.com:443").unwrap();
        assert!(r.matches("a.example.com", 443));
        assert!(!r.matches("example.com", 443));
        assert!(!r.matches("a.example.com", 80));
        assert!(!r.matches("badexample.com", 443));
        let r = HostRule::parse("localhost").unwrap();
        assert!(r.matches("localhost", 1));
        let r = HostRule::parse("[::1]:8080").unwrap();
        assert!(r.matches("::1", 8080));
        assert!(HostRule::parse("a*.b").is_err());
        assert!(HostRule::parse("a:0").is_err());
    }

    #[test]
    fn explicit_needs_an_exact_rule() {
        let d = |rule: &str| Decision {
            verdict: Verdict::Allow,
            rule: Some(rule.into()),
            layer: Layer::User,
            source: None,
        };
        assert!(explicitly_allows(&d("network.allow \"127.0.0.1\"")));
        assert!(explicitly_allows(&d("--allow-domain \"127.0.0.1:80\"")));
        assert!(!explicitly_allows(&d("network.allow \"*\"")));
        assert!(!explicitly_allows(&d("network.allow \"*.0.0.1\"")));
        assert!(!explicitly_allows(&d("network.default = \"allow\"")));
    }
}
