//! Host and SNI patterns: exact names, `*.example.com` (any deeper name) and `example.*` (any
//! top-level part), with an optional `:port` for hosts.

/// A parsed host pattern, lower-case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    Exact {
        name: String,
        port: Option<u16>,
    },
    /// `*.example.com`: the name ends with `.example.com` (the stored suffix keeps its dot).
    Suffix {
        suffix: String,
        port: Option<u16>,
    },
    /// `example.*`: the name starts with `example.` (the stored prefix keeps its dot).
    Prefix {
        prefix: String,
        port: Option<u16>,
    },
}

impl HostPattern {
    /// Parses a route host (`with_port`) or an SNI (no port allowed).
    pub fn parse(text: &str, with_port: bool) -> Result<HostPattern, String> {
        let (name, port) = if with_port {
            let (name, port) = split_host_port(text);
            match port {
                Some(p) => (name, Some(p.parse::<u16>().ok().filter(|&p| p > 0).ok_or("invalid port number")?)),
                None => (name, None),
            }
        } else {
            (text, None)
        };
        let name = name.to_ascii_lowercase();
        if name.is_empty() {
            return Err("must not be empty".into());
        }
        let stars = name.matches('*').count();
        if stars > 1 {
            return Err("only one wildcard is allowed".into());
        }
        let valid = |s: &str| {
            !s.is_empty()
                && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']'))
        };
        if let Some(rest) = name.strip_prefix("*.") {
            if !valid(rest) || rest.contains('*') {
                return Err("invalid wildcard host".into());
            }
            return Ok(HostPattern::Suffix { suffix: format!(".{rest}"), port });
        }
        if let Some(rest) = name.strip_suffix(".*") {
            if !valid(rest) {
                return Err("invalid wildcard host".into());
            }
            return Ok(HostPattern::Prefix { prefix: format!("{rest}."), port });
        }
        if stars == 1 {
            return Err("a wildcard must be the leftmost or rightmost label (*.example.com or example.*)".into());
        }
        if !valid(&name) {
            return Err(format!("invalid host {name:?}"));
        }
        Ok(HostPattern::Exact { name, port })
    }

    pub fn is_wildcard(&self) -> bool {
        !matches!(self, HostPattern::Exact { .. })
    }

    /// Whether `host` (lower-case, no port) arriving on `port` matches.
    pub fn matches(&self, host: &str, port: Option<u16>) -> bool {
        let (ok, want) = match self {
            HostPattern::Exact { name, port } => (host == name, port),
            HostPattern::Suffix { suffix, port } => {
                (host.len() > suffix.len() && host.ends_with(suffix.as_str()), port)
            }
            HostPattern::Prefix { prefix, port } => {
                (host.len() > prefix.len() && host.starts_with(prefix.as_str()), port)
            }
        };
        ok && want.is_none_or(|w| port == Some(w))
    }
}

/// Splits `host:port`, `[v6]:port` or a bare host. The port is returned unparsed.
pub fn split_host_port(authority: &str) -> (&str, Option<&str>) {
    if let Some(rest) = authority.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((host, after)) => (host, after.strip_prefix(':')),
            None => (authority, None),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => (host, Some(port)),
        _ => (authority, None),
    }
}
