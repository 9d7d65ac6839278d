//! Listen specs as Kong writes them: `127.0.0.1:8443 ssl http2 reuseport backlog=16384`, comma
//! separated, or `off` for none.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenSpec {
    /// An IP literal, `*`, or a host name resolved when the listener binds.
    pub host: String,
    pub port: u16,
    pub ssl: bool,
    pub http2: bool,
    pub proxy_protocol: bool,
    pub deferred: bool,
    pub bind: bool,
    pub reuseport: bool,
    pub backlog: Option<u32>,
    pub ipv6only: Option<bool>,
    pub so_keepalive: Option<String>,
}

const FLAGS: &str =
    "ssl, http2, proxy_protocol, deferred, bind, reuseport, backlog=N, ipv6only=on|off, so_keepalive=...";

impl ListenSpec {
    /// The socket address to bind when `host` is an IP literal or `*`.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        let ip: IpAddr = if self.host == "*" { IpAddr::from([0, 0, 0, 0]) } else { self.host.parse().ok()? };
        Some(SocketAddr::new(ip, self.port))
    }

    /// `host:port`, with IPv6 literals in brackets, as a client would dial it.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for ListenSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.authority())?;
        for (on, name) in [
            (self.ssl, "ssl"),
            (self.http2, "http2"),
            (self.proxy_protocol, "proxy_protocol"),
            (self.deferred, "deferred"),
            (self.bind, "bind"),
            (self.reuseport, "reuseport"),
        ] {
            if on {
                write!(f, " {name}")?;
            }
        }
        if let Some(backlog) = self.backlog {
            write!(f, " backlog={backlog}")?;
        }
        Ok(())
    }
}

/// Parses a whole listen value: `off`, or a comma list of specs. Empty items are skipped.
pub fn parse_listen_list(value: &str) -> Result<Vec<ListenSpec>, String> {
    if value.trim() == "off" {
        return Ok(Vec::new());
    }
    value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(parse_listen).collect()
}

pub fn parse_listen(item: &str) -> Result<ListenSpec, String> {
    let mut words = item.split_whitespace();
    let address = words.next().ok_or("an empty listen address")?;
    let (host, port) = split_host_port(address).map_err(|e| format!("`{address}`: {e}"))?;
    let mut spec = ListenSpec {
        host,
        port,
        ssl: false,
        http2: false,
        proxy_protocol: false,
        deferred: false,
        bind: false,
        reuseport: false,
        backlog: None,
        ipv6only: None,
        so_keepalive: None,
    };
    for flag in words {
        match flag.split_once('=') {
            None => match flag {
                "ssl" => spec.ssl = true,
                "http2" => spec.http2 = true,
                "proxy_protocol" => spec.proxy_protocol = true,
                "deferred" => spec.deferred = true,
                "bind" => spec.bind = true,
                "reuseport" => spec.reuseport = true,
                _ => return Err(format!("unknown listen flag `{flag}` (flags: {FLAGS})")),
            },
            Some(("backlog", n)) => {
                spec.backlog = Some(
                    n.parse()
                        .ok()
                        .filter(|&n: &u32| n > 0)
                        .ok_or_else(|| format!("`backlog={n}`: the backlog must be a positive integer"))?,
                )
            }
            Some(("ipv6only", v)) => {
                spec.ipv6only = Some(match v {
                    "on" => true,
                    "off" => false,
                    _ => return Err(format!("`ipv6only={v}`: must be on or off")),
                })
            }
            Some(("so_keepalive", v)) if !v.is_empty() => spec.so_keepalive = Some(v.to_string()),
            Some(_) => return Err(format!("unknown listen flag `{flag}` (flags: {FLAGS})")),
        }
    }
    Ok(spec)
}

/// Splits `host:port`, `[v6]:port` or `*:port`. The port is required and non-zero.
pub fn split_host_port(address: &str) -> Result<(String, u16), String> {
    if address.contains("://") {
        return Err("write host:port, without a scheme".into());
    }
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("an IPv6 address must be written [addr]:port")?;
        let port = after.strip_prefix(':').ok_or("a port is required, as host:port")?;
        host.parse::<std::net::Ipv6Addr>().map_err(|_| format!("`{host}` is not an IPv6 address"))?;
        (host, port)
    } else {
        let (host, port) = address.rsplit_once(':').ok_or("a port is required, as host:port")?;
        if host.contains(':') {
            return Err("an IPv6 address must be written [addr]:port".into());
        }
        (host, port)
    };
    if host.is_empty() {
        return Err("the host before the port is empty".into());
    }
    if host != "*" && !host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_')) {
        return Err(format!("`{host}` is not a host name or IP address"));
    }
    let port =
        port.parse::<u16>().ok().filter(|&p| p > 0).ok_or_else(|| format!("`{port}` is not a port (1-65535)"))?;
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kong_default_proxy_listen_parses() {
        let specs =
            parse_listen_list("0.0.0.0:8000 reuseport backlog=16384, 0.0.0.0:8443 http2 ssl reuseport backlog=16384")
                .unwrap();
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[0].socket_addr(), Some("0.0.0.0:8000".parse().unwrap()));
        assert!(!specs[0].ssl && specs[0].reuseport && specs[0].backlog == Some(16384));
        assert!(specs[1].ssl && specs[1].http2 && specs[1].port == 8443);
    }

    #[test]
    fn off_means_no_listener() {
        assert_eq!(parse_listen_list("off").unwrap(), vec![]);
    }

    #[test]
    fn ipv6_and_names_and_star() {
        let specs = parse_listen_list("[::1]:8001, localhost:8002 ssl, *:8003").unwrap();
        assert_eq!(specs[0].socket_addr(), Some("[::1]:8001".parse().unwrap()));
        assert_eq!(specs[0].authority(), "[::1]:8001");
        assert_eq!(specs[1].host, "localhost");
        assert_eq!(specs[1].socket_addr(), None);
        assert_eq!(specs[2].socket_addr(), Some("0.0.0.0:8003".parse().unwrap()));
    }

    #[test]
    fn display_round_trips() {
        let spec = parse_listen("127.0.0.1:8443 ssl http2 backlog=10").unwrap();
        assert_eq!(parse_listen(&spec.to_string()).unwrap(), spec);
    }

    #[test]
    fn bad_specs_say_why() {
        for (input, needle) in [
            ("127.0.0.1", "a port is required"),
            ("127.0.0.1:99999", "is not a port"),
            ("127.0.0.1:0", "is not a port"),
            ("127.0.0.1:80 sl", "unknown listen flag `sl`"),
            ("127.0.0.1:80 backlog=x", "backlog must be a positive integer"),
            ("127.0.0.1:80 ipv6only=yes", "must be on or off"),
            ("::1:80", "IPv6 address must be written [addr]:port"),
            ("[::1:80", "IPv6 address must be written"),
            ("[zz]:80", "is not an IPv6 address"),
            (":80", "host before the port is empty"),
            ("http://x:80", "without a scheme"),
            ("a/b:80", "not a host name or IP address"),
        ] {
            let err = parse_listen(input).unwrap_err();
            assert!(err.contains(needle), "{input}: {err}");
        }
    }
}
