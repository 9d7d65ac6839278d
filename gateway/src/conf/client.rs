//! Settings for what the proxy accepts from clients: nginx's client timeouts and limits under
//! Kong's `nginx_http_*` key names, and whose forwarding headers to believe (`trusted_ips`,
//! `real_ip_header`, `real_ip_recursive`).

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

/// How long clients may take and how much they may send (nginx's semantics, see
/// docs/configuration.md for how each is enforced).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientLimits {
    /// Reading a whole request head (`client_header_timeout`).
    pub header_timeout: Duration,
    /// Between two reads of a request body (`client_body_timeout`).
    pub body_timeout: Duration,
    /// An idle keep-alive connection between requests (`keepalive_timeout`).
    pub keepalive_timeout: Duration,
    /// Between two writes of a response the client does not read (`send_timeout`).
    pub send_timeout: Duration,
    /// Largest request body; `None` is unlimited (`client_max_body_size 0`).
    pub max_body_size: Option<u64>,
    /// Largest request head, from `large_client_header_buffers` (number × size).
    pub max_header_bytes: usize,
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            header_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(75),
            send_timeout: Duration::from_secs(60),
            max_body_size: None,
            max_header_bytes: 4 * 8192,
        }
    }
}

/// An nginx time: `500ms`, `60s`, `5m`, `1h`, `1d`, or bare seconds. Zero is refused: every
/// timer must run out.
pub fn parse_nginx_time(v: &str) -> Result<Duration, String> {
    const HINT: &str = "must be a time such as 60s, 500ms or 5m";
    let digits_end = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, unit) = v.split_at(digits_end);
    let n: u64 = digits.parse().map_err(|_| HINT.to_string())?;
    let millis = match unit {
        "ms" => Some(n),
        "" | "s" => n.checked_mul(1_000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        "d" => n.checked_mul(86_400_000),
        _ => return Err(HINT.into()),
    }
    .ok_or("is too large")?;
    if millis == 0 {
        return Err("must be greater than zero".into());
    }
    Ok(Duration::from_millis(millis))
}

/// An nginx size: digits with an optional `k` or `m` suffix (powers of 1024); `0` allowed.
pub fn parse_nginx_size(v: &str) -> Result<u64, String> {
    const HINT: &str = "must be a size such as 8k or 10m (a number with an optional k or m suffix)";
    let (digits, factor) = match v.as_bytes().last() {
        Some(b'k' | b'K') => (&v[..v.len() - 1], 1u64 << 10),
        Some(b'm' | b'M') => (&v[..v.len() - 1], 1 << 20),
        Some(b'g' | b'G') => (&v[..v.len() - 1], 1 << 30),
        _ => (v, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HINT.into());
    }
    digits.parse::<u64>().ok().and_then(|n| n.checked_mul(factor)).ok_or_else(|| HINT.to_string())
}

/// `client_max_body_size`: `0` means unlimited, as in nginx (and Kong's default).
pub fn parse_max_body_size(v: &str) -> Result<Option<u64>, String> {
    parse_nginx_size(v).map(|n| (n > 0).then_some(n))
}

/// `large_client_header_buffers NUMBER SIZE`: the largest head is their product; one request line
/// or header line may not exceed SIZE either way.
pub fn parse_header_buffers(v: &str) -> Result<usize, String> {
    const HINT: &str = "must be a number of buffers and a size, such as 4 8k";
    let mut parts = v.split_whitespace();
    let (Some(number), Some(size), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(HINT.into());
    };
    let number: u64 = number.parse().map_err(|_| HINT.to_string())?;
    let size = parse_nginx_size(size)?;
    let total = number.checked_mul(size).filter(|&t| t > 0).ok_or_else(|| HINT.to_string())?;
    // hyper cannot read a head into less than 8 KiB.
    if total < 8192 {
        return Err("must allow at least 8k in all (the smallest head buffer this gateway has)".into());
    }
    usize::try_from(total).map_err(|_| "is too large".into())
}

/// Whose forwarding headers to believe, and where the client's address comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTrust {
    /// Peers whose `X-Forwarded-*`, `X-Real-IP` and `Forwarded` headers are kept.
    pub trusted: Vec<IpNet>,
    /// The header a trusted peer names the client in (lower-case); Kong's default `x-real-ip`.
    pub real_ip_header: String,
    /// With `X-Forwarded-For`-style lists: skip trusted addresses from the right.
    pub real_ip_recursive: bool,
}

impl ClientTrust {
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: the peer, or for a trusted peer the one its `real_ip_header` names
    /// (nginx's realip module: the last address of the list, or with `real_ip_recursive` the last
    /// one that is not trusted). Anything that is not an address is ignored.
    pub fn client_ip(&self, peer: IpAddr, header: Option<&[u8]>) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let Some(value) = header.and_then(|h| std::str::from_utf8(h).ok()) else { return peer };
        let addresses: Vec<&str> = value.split(',').map(str::trim).collect();
        let mut chosen = peer;
        for candidate in addresses.iter().rev() {
            let Some(ip) = parse_ip(candidate) else { return chosen };
            chosen = ip;
            if !self.real_ip_recursive || !self.trusts(ip) {
                break;
            }
        }
        chosen
    }
}

impl ClientTrust {
    /// [`Self::client_ip`] with the `real_ip_header` as it came: one line or several (each proxy
    /// adding its own), read in order as one list.
    pub fn client_ip_from_lines<'a>(&self, peer: IpAddr, mut lines: impl Iterator<Item = &'a [u8]>) -> IpAddr {
        let Some(first) = lines.next() else { return self.client_ip(peer, None) };
        let Some(second) = lines.next() else { return self.client_ip(peer, Some(first)) };
        let mut all = first.to_vec();
        for line in std::iter::once(second).chain(lines) {
            all.extend_from_slice(b", ");
            all.extend_from_slice(line);
        }
        self.client_ip(peer, Some(&all))
    }
}

/// An address as a header may carry it: `1.2.3.4`, `::1`, `[::1]`, `1.2.3.4:80`, `[::1]:80`.
fn parse_ip(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse() {
        return Some(ip);
    }
    if let Ok(addr) = text.parse::<std::net::SocketAddr>() {
        return Some(addr.ip());
    }
    text.strip_prefix('[').and_then(|t| t.strip_suffix(']')).and_then(|t| t.parse().ok())
}

/// IPv4-mapped IPv6 addresses as IPv4, so `127.0.0.1` matches a dual-stack peer.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// `trusted_ips`: addresses or CIDR blocks, comma-separated (`0.0.0.0/0, ::/0` trusts everyone).
pub fn parse_trusted_ips(v: &str) -> Result<Vec<IpNet>, String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            if item.starts_with("unix:") {
                return Err("unix: sockets are not supported (no listener here takes them)".to_string());
            }
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{item:?} is not an IP address or a CIDR block"))
        })
        .collect()
}

/// `real_ip_header`: a header name. `proxy_protocol` needs PROXY protocol listeners, which this
/// gateway does not have: refused rather than ignored.
pub fn parse_real_ip_header(v: &str) -> Result<String, String> {
    if v.eq_ignore_ascii_case("proxy_protocol") {
        return Err("proxy_protocol is not supported (listeners do not speak the PROXY protocol)".into());
    }
    hyper::header::HeaderName::from_bytes(v.as_bytes())
        .map(|name| name.as_str().to_string())
        .map_err(|_| "must be a header name".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_times_and_sizes() {
        assert_eq!(parse_nginx_time("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_nginx_time("60"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_nginx_time("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_nginx_time("2m"), Ok(Duration::from_secs(120)));
        for bad in ["", "0", "0s", "s", "1x", "-1s", "1.5s", "99999999999999999999d"] {
            assert!(parse_nginx_time(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_max_body_size("0"), Ok(None));
        assert_eq!(parse_max_body_size("10m"), Ok(Some(10 << 20)));
        assert_eq!(parse_max_body_size("100"), Ok(Some(100)));
        assert!(parse_max_body_size("1x").is_err());
        assert_eq!(parse_header_buffers("4 8k"), Ok(32768));
        for bad in ["4", "4 8k 1", "0 8k", "1 1k", "x 8k"] {
            assert!(parse_header_buffers(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_client_address_comes_from_a_trusted_peer_only() {
        let trust = ClientTrust {
            trusted: parse_trusted_ips("10.0.0.0/8, 127.0.0.1").unwrap(),
            real_ip_header: "x-forwarded-for".into(),
            real_ip_recursive: false,
        };
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let list = b"1.1.1.1, 10.0.0.2, 10.0.0.3".as_slice();
        assert_eq!(trust.client_ip(ip("8.8.8.8"), Some(list)), ip("8.8.8.8"), "untrusted peer");
        assert_eq!(trust.client_ip(ip("127.0.0.1"), Some(list)), ip("10.0.0.3"), "the last address");
        assert_eq!(trust.client_ip(ip("::ffff:127.0.0.1"), Some(list)), ip("10.0.0.3"), "mapped v4");
        let recursive = ClientTrust { real_ip_recursive: true, ..trust.clone() };
        assert_eq!(recursive.client_ip(ip("127.0.0.1"), Some(list)), ip("1.1.1.1"), "skips trusted hops");
        assert_eq!(trust.client_ip(ip("127.0.0.1"), Some(b"garbage")), ip("127.0.0.1"));
        assert_eq!(trust.client_ip(ip("127.0.0.1"), Some(b"[::1]:80")), ip("::1"));
        assert_eq!(trust.client_ip(ip("127.0.0.1"), None), ip("127.0.0.1"));
        assert!(parse_trusted_ips("unix:").is_err());
        assert!(parse_trusted_ips("1.2.3.4/33").is_err());
        assert!(parse_real_ip_header("proxy_protocol").is_err());
        assert_eq!(parse_real_ip_header("X-Forwarded-For"), Ok("x-forwarded-for".into()));
    }
}
