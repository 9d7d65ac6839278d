//! Listen specs as Kong writes them: `127.0.0.1:8443 ssl http2 reuseport backlog=16384`, comma
//! separated, or `off` for none. Every flag is either honoured where the socket is bound
//! (`node::listener`, `server`) or refused here, naming the key and the flag: a listener never
//! silently lacks what its spec asks for.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

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
    pub so_keepalive: Option<KeepAlive>,
}

/// nginx's `so_keepalive=on|off|[idle]:[interval]:[count]`: TCP keep-alive on accepted connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAlive {
    Off,
    /// On, with the system's timings.
    On,
    /// On, with the timings given (the system's for those left out).
    Tuned {
        idle: Option<Duration>,
        interval: Option<Duration>,
        count: Option<u32>,
    },
}

impl KeepAlive {
    fn parse(v: &str) -> Result<KeepAlive, String> {
        let hint = || format!("`so_keepalive={v}`: must be on, off or [idle]:[interval]:[count]");
        match v {
            "on" => return Ok(KeepAlive::On),
            "off" => return Ok(KeepAlive::Off),
            _ => {}
        }
        let parts: Vec<&str> = v.split(':').collect();
        let [idle, interval, count] = parts.as_slice() else { return Err(hint()) };
        let time = |t: &str| -> Result<Option<Duration>, String> {
            if t.is_empty() {
                return Ok(None);
            }
            let (digits, unit) = match t.strip_suffix('s') {
                Some(d) => (d, 1),
                None => match t.strip_suffix('m') {
                    Some(d) => (d, 60),
                    None => match t.strip_suffix('h') {
                        Some(d) => (d, 3600),
                        None => (t, 1),
                    },
                },
            };
            let n: u64 = digits.parse().map_err(|_| hint())?;
            // The kernel takes whole seconds up to 32767.
            match n.checked_mul(unit) {
                Some(secs @ 1..=32767) => Ok(Some(Duration::from_secs(secs))),
                _ => Err(format!("`so_keepalive={v}`: times must be 1 to 32767 seconds")),
            }
        };
        let count = match *count {
            "" => None,
            c => Some(
                c.parse::<u32>()
                    .ok()
                    .filter(|n| (1..=127).contains(n))
                    .ok_or_else(|| format!("`so_keepalive={v}`: the count must be 1 to 127"))?,
            ),
        };
        let (idle, interval) = (time(idle)?, time(interval)?);
        if idle.is_none() && interval.is_none() && count.is_none() {
            return Err(hint());
        }
        Ok(KeepAlive::Tuned { idle, interval, count })
    }
}

impl fmt::Display for KeepAlive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeepAlive::Off => f.write_str("off"),
            KeepAlive::On => f.write_str("on"),
            KeepAlive::Tuned { idle, interval, count } => {
                let secs = |d: &Option<Duration>| d.map(|d| format!("{}s", d.as_secs())).unwrap_or_default();
                let count = count.map(|c| c.to_string()).unwrap_or_default();
                write!(f, "{}:{}:{count}", secs(idle), secs(interval))
            }
        }
    }
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
        if let Some(only) = self.ipv6only {
            write!(f, " ipv6only={}", if only { "on" } else { "off" })?;
        }
        if let Some(keepalive) = self.so_keepalive {
            write!(f, " so_keepalive={keepalive}")?;
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
            Some(("so_keepalive", v)) => spec.so_keepalive = Some(KeepAlive::parse(v)?),
            Some(_) => return Err(format!("unknown listen flag `{flag}` (flags: {FLAGS})")),
        }
    }
    Ok(spec)
}

/// A listen value for `key`: parsed, then every flag that listener cannot honour refused with the
/// key and the flag named.
pub fn parse_listen_for(key: &str, value: &str) -> Result<Vec<ListenSpec>, String> {
    let specs = parse_listen_list(value)?;
    for spec in &specs {
        check_flags(key, spec).map_err(|why| format!("`{spec}`: {why}"))?;
    }
    Ok(specs)
}

/// Whether the listener of `key` can do what `spec` asks. `bind` is always honoured (every
/// address gets its own socket); `reuseport`, `backlog`, `ipv6only` and `so_keepalive` are set on
/// the socket; `ssl` and `http2` are served on the proxy, Admin API and status listeners.
fn check_flags(key: &str, spec: &ListenSpec) -> Result<(), String> {
    if spec.proxy_protocol {
        return Err("the `proxy_protocol` flag is not supported yet; remove it (clients would be answered as if their PROXY header were HTTP)".into());
    }
    if spec.deferred {
        return Err("the `deferred` flag (TCP_DEFER_ACCEPT) is not supported; remove it".into());
    }
    if spec.ipv6only.is_some() && (spec.host == "*" || spec.host.parse::<std::net::Ipv4Addr>().is_ok()) {
        return Err("the `ipv6only` flag applies to IPv6 addresses only".into());
    }
    let cluster = matches!(key, "cluster_listen" | "cluster_telemetry_listen");
    if cluster && spec.ssl {
        return Err(format!("{key} always uses mutual TLS with the cluster certificate; remove the `ssl` flag"));
    }
    if cluster && spec.http2 {
        return Err(format!("{key} speaks WebSocket over HTTP/1.1; remove the `http2` flag"));
    }
    Ok(())
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
    fn every_flag_round_trips_through_display() {
        let spec =
            parse_listen("[::]:8000 ssl http2 bind reuseport backlog=7 ipv6only=on so_keepalive=30m:10:5").unwrap();
        assert_eq!(
            spec.so_keepalive,
            Some(KeepAlive::Tuned {
                idle: Some(Duration::from_secs(1800)),
                interval: Some(Duration::from_secs(10)),
                count: Some(5)
            })
        );
        assert_eq!(parse_listen(&spec.to_string()).unwrap(), spec);
        for keepalive in ["on", "off", "::3", "10s::", ":1h:"] {
            let spec = parse_listen(&format!("127.0.0.1:1 so_keepalive={keepalive}")).unwrap();
            assert_eq!(parse_listen(&spec.to_string()).unwrap(), spec, "{keepalive}");
        }
    }

    #[test]
    fn flags_a_listener_cannot_honour_are_refused_with_key_and_flag() {
        for (key, value, needle) in [
            ("proxy_listen", "0.0.0.0:8000 proxy_protocol", "`proxy_protocol` flag is not supported"),
            ("admin_listen", "127.0.0.1:8001 deferred", "`deferred` flag"),
            ("status_listen", "127.0.0.1:8007 ipv6only=on", "`ipv6only` flag applies to IPv6 addresses only"),
            ("cluster_listen", "0.0.0.0:8005 ssl", "cluster_listen always uses mutual TLS"),
            ("cluster_telemetry_listen", "0.0.0.0:8006 http2", "remove the `http2` flag"),
            ("cluster_listen", "0.0.0.0:8005 proxy_protocol", "`proxy_protocol`"),
        ] {
            let err = parse_listen_for(key, value).unwrap_err();
            assert!(err.contains(needle), "{key} = {value}: {err}");
        }
        for (key, value) in [
            ("proxy_listen", "0.0.0.0:8000 reuseport backlog=16384, 0.0.0.0:8443 http2 ssl reuseport backlog=16384"),
            ("admin_listen", "127.0.0.1:8444 http2 ssl bind so_keepalive=on"),
            ("cluster_listen", "[::]:8005 ipv6only=off reuseport backlog=10"),
        ] {
            assert!(parse_listen_for(key, value).is_ok(), "{key} = {value}");
        }
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
            ("127.0.0.1:80 so_keepalive=", "must be on, off or [idle]:[interval]:[count]"),
            ("127.0.0.1:80 so_keepalive=1:2", "must be on, off or [idle]:[interval]:[count]"),
            ("127.0.0.1:80 so_keepalive=::", "must be on, off or [idle]:[interval]:[count]"),
            ("127.0.0.1:80 so_keepalive=x::", "must be on, off or [idle]:[interval]:[count]"),
            ("127.0.0.1:80 so_keepalive=99999::", "1 to 32767 seconds"),
            ("127.0.0.1:80 so_keepalive=::0", "the count must be 1 to 127"),
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
