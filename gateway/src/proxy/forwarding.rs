//! What the proxy tells an upstream about the client: `X-Forwarded-*`, `X-Real-IP` and
//! `Forwarded`, and the Host it asked for. A client's own forwarding headers are believed only
//! when its address is in `trusted_ips` (as Kong does); from anyone else they are replaced.
//! Unlike Kong, an untrusted client's `X-Forwarded-For` is replaced too, not appended to: an
//! upstream that reads the first address of the list can then never be lied to.

use std::net::IpAddr;

use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::conf::ClientTrust;

/// Why a Host or `:authority` is refused (the request gets 400 and goes no further).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("the request has no Host")]
    Missing,
    #[error("the request has more than one Host")]
    Several,
    #[error("the Host is not a DNS name or IP address with an optional port")]
    Invalid,
}

/// The host the client asked for, checked: the absolute-form or HTTP/2 `:authority` when there is
/// one (it wins over Host, RFC 9112 section 3.2.2), else the Host header. HTTP/1.0 may omit it.
pub fn request_host(uri: &hyper::Uri, headers: &HeaderMap, version: hyper::Version) -> Result<String, HostError> {
    let mut hosts = headers.get_all(header::HOST).iter();
    let header = hosts.next();
    if hosts.next().is_some() {
        return Err(HostError::Several);
    }
    let text = match (uri.authority(), header) {
        (Some(authority), _) => authority.as_str(),
        (None, Some(value)) => value.to_str().map_err(|_| HostError::Invalid)?,
        (None, None) if version <= hyper::Version::HTTP_10 => return Ok(String::new()),
        (None, None) => return Err(HostError::Missing),
    };
    if valid_authority(text) { Ok(text.to_string()) } else { Err(HostError::Invalid) }
}

/// `host[:port]` where host is a DNS name, an IPv4 address or a bracketed IPv6 address. No
/// userinfo, no path, no spaces: `evil.com#.example.com` or `a@b` never reach routing.
pub fn valid_authority(text: &str) -> bool {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else { return false };
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match after {
            "" => return true,
            _ => match after.strip_prefix(':') {
                Some(port) => (None, Some(port)),
                None => return false,
            },
        }
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(text), None),
        }
    };
    if let Some(port) = port
        && (port.is_empty()
            || port.len() > 5
            || !port.bytes().all(|b| b.is_ascii_digit())
            || port.parse::<u16>().is_err())
    {
        return false;
    }
    host.is_none_or(valid_host_name)
}

/// A DNS name (labels of letters, digits, `-` and `_`, up to 63 bytes, 253 in all, an optional
/// trailing dot) or an IPv4 address.
fn valid_host_name(host: &str) -> bool {
    let name = host.strip_suffix('.').unwrap_or(host);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// What the gateway knows about the request it forwards.
pub struct Forwarded<'a> {
    pub peer: IpAddr,
    pub tls: bool,
    /// The host the client asked for (checked), possibly with a port.
    pub host: &'a str,
    pub local_port: u16,
    pub path: &'a str,
}

/// The client's address as the gateway trusts it: the peer's, or, from a trusted peer, the one
/// `real_ip_header` names (Kong's `trusted_ips`, `real_ip_header`, `real_ip_recursive`).
pub fn client_ip(headers: &HeaderMap, trust: &ClientTrust, peer: IpAddr) -> IpAddr {
    if !trust.trusts(peer) {
        return peer;
    }
    // A list header may come as several lines (each proxy adding its own): read them all, in
    // order, as one list.
    let real_ip = joined(headers, &trust.real_ip_header);
    trust.client_ip(peer, real_ip.as_deref().map(str::as_bytes))
}

const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
const X_FORWARDED_PATH: HeaderName = HeaderName::from_static("x-forwarded-path");
const X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");

/// Sets the forwarding headers on `headers` (the client's, on their way upstream).
pub fn set_forwarding_headers(headers: &mut HeaderMap, trust: &ClientTrust, request: &Forwarded<'_>) {
    let trusted = trust.trusts(request.peer);
    let peer = request.peer.to_string();
    if trusted {
        let client_ip = client_ip(headers, trust, request.peer);
        let forwarded_for = match joined(headers, "x-forwarded-for") {
            Some(existing) => format!("{existing}, {peer}"),
            None => peer,
        };
        set(headers, X_REAL_IP, &client_ip.to_string());
        set(headers, X_FORWARDED_FOR, &forwarded_for);
    } else {
        match HeaderValue::from_str(&peer) {
            Ok(v) => {
                headers.insert(X_REAL_IP, v.clone());
                headers.insert(X_FORWARDED_FOR, v);
            }
            Err(_) => {
                headers.remove(X_REAL_IP);
                headers.remove(X_FORWARDED_FOR);
            }
        }
    }
    let (bare_host, _) = router_core::split_host_port(request.host);
    let proto = HeaderValue::from_static(if request.tls { "https" } else { "http" });
    let ours = [
        (X_FORWARDED_PROTO, Ok(proto)),
        (X_FORWARDED_HOST, HeaderValue::from_str(bare_host)),
        (X_FORWARDED_PORT, Ok(HeaderValue::from(request.local_port))),
        (X_FORWARDED_PATH, HeaderValue::from_str(request.path)),
    ];
    for (name, value) in ours {
        if trusted && headers.contains_key(&name) {
            continue;
        }
        match value {
            Ok(v) => headers.insert(name, v),
            Err(_) => headers.remove(name),
        };
    }
    if !trusted {
        // Nobody vouches for these: an upstream must not see a client's claims.
        headers.remove(X_FORWARDED_PREFIX);
        headers.remove(header::FORWARDED);
    }
}

fn set(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    match HeaderValue::from_str(value) {
        Ok(v) => {
            headers.insert(name, v);
        }
        Err(_) => {
            headers.remove(name);
        }
    }
}

/// Every line of a header, joined with `, `; `None` when absent or not text.
fn joined(headers: &HeaderMap, name: &str) -> Option<String> {
    let lines: Vec<&str> = headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect();
    (!lines.is_empty()).then(|| lines.join(", "))
}

/// HTTP/2 lets a client split `cookie` into several fields; HTTP/1.1 wants one, joined by `; `
/// (RFC 9113 section 8.2.3).
pub fn join_cookies(headers: &mut HeaderMap) {
    let mut values = headers.get_all(header::COOKIE).iter();
    let (Some(_), Some(_)) = (values.next(), values.next()) else { return };
    let joined: Vec<u8> =
        headers.get_all(header::COOKIE).iter().map(HeaderValue::as_bytes).collect::<Vec<_>>().join(&b"; "[..]);
    if let Ok(value) = HeaderValue::from_bytes(&joined) {
        headers.insert(header::COOKIE, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities() {
        for good in
            ["a.test", "a.test:8000", "A-b_c.test.", "127.0.0.1", "127.0.0.1:80", "[::1]", "[::1]:8443", "localhost"]
        {
            assert!(valid_authority(good), "{good}");
        }
        for bad in [
            "",
            "evil.com#.example.com",
            "a b",
            "user@a.test",
            "a.test:",
            "a.test:99999",
            "a.test:80:80",
            "[::1",
            "[nope]",
            "[::1]x",
            "a..b",
            "a/b",
            "a\\b",
            ":80",
            &"a".repeat(64),
        ] {
            assert!(!valid_authority(bad), "{bad}");
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn untrusted_clients_claims_are_replaced_trusted_ones_kept() {
        let claims: [(&'static str, &str); 8] = [
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.test"),
            ("x-forwarded-port", "1"),
            ("x-forwarded-path", "/evil"),
            ("x-forwarded-prefix", "/evil"),
            ("x-real-ip", "6.6.6.6"),
            ("forwarded", "for=6.6.6.6"),
        ];
        let request = Forwarded {
            peer: "127.0.0.1".parse().unwrap(),
            tls: false,
            host: "a.test:8000",
            local_port: 8000,
            path: "/p",
        };
        let untrusted = ClientTrust { real_ip_header: "x-real-ip".into(), ..Default::default() };
        let mut h = headers(&claims);
        set_forwarding_headers(&mut h, &untrusted, &request);
        assert_eq!(h["x-forwarded-for"], "127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "a.test");
        assert_eq!(h["x-forwarded-port"], "8000");
        assert_eq!(h["x-forwarded-path"], "/p");
        assert_eq!(h["x-real-ip"], "127.0.0.1");
        assert!(h.get("x-forwarded-prefix").is_none() && h.get("forwarded").is_none());

        let trusted = ClientTrust { trusted: vec!["127.0.0.0/8".parse().unwrap()], ..untrusted };
        let mut h = headers(&claims);
        set_forwarding_headers(&mut h, &trusted, &request);
        assert_eq!(h["x-forwarded-for"], "6.6.6.6, 127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "evil.test");
        assert_eq!(h["x-forwarded-prefix"], "/evil");
        assert_eq!(h["x-real-ip"], "6.6.6.6", "from real_ip_header");
        assert_eq!(h["forwarded"], "for=6.6.6.6");
    }

    #[test]
    fn list_headers_on_several_lines_are_read_as_one_list() {
        let trust = ClientTrust {
            trusted: vec!["127.0.0.0/8".parse().unwrap(), "10.0.0.0/8".parse().unwrap()],
            real_ip_header: "x-forwarded-for".into(),
            real_ip_recursive: true,
        };
        let request =
            Forwarded { peer: "127.0.0.1".parse().unwrap(), tls: false, host: "a.test", local_port: 80, path: "/" };
        // The client forged the first line; the trusted balancer added the second.
        let mut h = headers(&[("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "7.7.7.7, 10.0.0.2")]);
        set_forwarding_headers(&mut h, &trust, &request);
        assert_eq!(h["x-forwarded-for"], "6.6.6.6, 7.7.7.7, 10.0.0.2, 127.0.0.1");
        assert_eq!(h["x-real-ip"], "7.7.7.7", "the last untrusted address of all the lines");
    }

    #[test]
    fn cookies_are_joined() {
        let mut h = headers(&[("cookie", "a=1"), ("cookie", "b=2")]);
        join_cookies(&mut h);
        assert_eq!(h.get_all("cookie").iter().count(), 1);
        assert_eq!(h["cookie"], "a=1; b=2");
    }
}
