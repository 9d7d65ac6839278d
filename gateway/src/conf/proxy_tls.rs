//! Kong's TLS settings for the proxy's `ssl` listeners, mapped onto what rustls does:
//! `ssl_cipher_suite` (Mozilla's `modern` and `intermediate`; `custom` with `ssl_ciphers`),
//! `ssl_protocols`, `ssl_prefer_server_ciphers`, and the default certificates `ssl_cert` /
//! `ssl_cert_key`. What rustls cannot do (TLS 1.0 and 1.1, CBC, RSA key exchange, finite-field
//! DHE, Kong's `old` and `fips` suites) is refused by name rather than quietly left out.

use super::PemSource;

/// The TLS 1.2 suites rustls offers, by their OpenSSL names (as Kong's `ssl_ciphers` writes them).
/// TLS 1.3 suites are always all offered, as OpenSSL's `ssl_ciphers` leaves them alone.
pub const TLS12_SUITES: [&str; 6] = [
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
];

/// What the proxy's TLS listeners offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyTls {
    pub tls12: bool,
    pub tls13: bool,
    /// The TLS 1.2 suites, by OpenSSL name, in preference order.
    pub tls12_suites: Vec<&'static str>,
    /// The server's order of suites wins over the client's.
    pub prefer_server_ciphers: bool,
    /// Stateless TLS session tickets (`ssl_session_tickets`).
    pub session_tickets: bool,
    /// Sessions kept for resumption by id (`ssl_session_cache_size`, as nginx counts: about 4000
    /// per megabyte).
    pub session_cache: usize,
    /// How long a session may be resumed (`ssl_session_timeout`), from tickets or the cache.
    pub session_timeout: std::time::Duration,
    /// `ssl_cert` / `ssl_cert_key`: the certificates served when no certificate entity matches
    /// the SNI (several: one per key type, each client gets one it can verify). Empty: the
    /// self-signed one in `prefix/ssl`.
    pub default_certificates: Vec<(PemSource, PemSource)>,
}

impl Default for ProxyTls {
    fn default() -> Self {
        ProxyTls {
            tls12: true,
            tls13: true,
            tls12_suites: TLS12_SUITES.to_vec(),
            prefer_server_ciphers: false,
            session_tickets: true,
            session_cache: sessions_in(10 << 20),
            session_timeout: std::time::Duration::from_secs(86_400),
            default_certificates: Vec::new(),
        }
    }
}

/// `ssl_session_timeout`: nginx's time (`1d`, `5m`, `300s`), at least a second, at most a week
/// (TLS 1.3 caps a ticket's life at 7 days).
pub fn parse_session_timeout(v: &str) -> Result<std::time::Duration, String> {
    let timeout = super::client::parse_nginx_time(v)?;
    if timeout < std::time::Duration::from_secs(1) || timeout > std::time::Duration::from_secs(7 * 86_400) {
        return Err("must be from 1s to 7d".into());
    }
    Ok(timeout)
}

/// Sessions a cache of `bytes` holds, as nginx sizes its shared cache (about 4000 a megabyte).
pub fn sessions_in(bytes: u64) -> usize {
    usize::try_from(bytes.saturating_mul(4000) >> 20).unwrap_or(usize::MAX).max(1)
}

/// `ssl_cipher_suite`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CipherSuite {
    Modern,
    Intermediate,
    Custom,
}

pub fn parse_cipher_suite(v: &str) -> Result<CipherSuite, String> {
    match v {
        "modern" => Ok(CipherSuite::Modern),
        "intermediate" => Ok(CipherSuite::Intermediate),
        "custom" => Ok(CipherSuite::Custom),
        "old" => Err("`old` needs TLS 1.0/1.1 and CBC suites, which rustls does not have: use intermediate".into()),
        "fips" => {
            Err("`fips` needs a FIPS-validated TLS library, which this build does not have: use intermediate".into())
        }
        _ => Err("must be one of: modern, intermediate, custom".into()),
    }
}

/// `ssl_protocols`: TLS 1.2 and/or 1.3 (as `(tls12, tls13)`); older versions are refused.
pub fn parse_protocols(v: &str) -> Result<(bool, bool), String> {
    let (mut tls12, mut tls13) = (false, false);
    for item in v.split([' ', ',']).filter(|i| !i.is_empty()) {
        match item {
            "TLSv1.2" => tls12 = true,
            "TLSv1.3" => tls13 = true,
            "TLSv1" | "TLSv1.1" | "SSLv2" | "SSLv3" => {
                return Err(format!("`{item}` is not available: rustls speaks TLSv1.2 and TLSv1.3 only"));
            }
            other => return Err(format!("`{other}` is not a protocol: use TLSv1.2, TLSv1.3")),
        }
    }
    if tls12 || tls13 { Ok((tls12, tls13)) } else { Err("must name TLSv1.2, TLSv1.3 or both".into()) }
}

/// `ssl_ciphers` (OpenSSL's `:`-separated names) for `custom`: each must be one rustls offers.
pub fn parse_ciphers(v: &str) -> Result<Vec<&'static str>, String> {
    let mut suites = Vec::new();
    for name in v.split([':', ',', ' ']).filter(|n| !n.is_empty()) {
        match TLS12_SUITES.iter().find(|known| **known == name) {
            Some(known) if !suites.contains(known) => suites.push(*known),
            Some(_) => {}
            None if name.starts_with("TLS_") => {} // a TLS 1.3 suite: always offered
            None => {
                return Err(format!(
                    "`{name}` is not available (rustls offers TLS 1.2 with {}; TLS 1.3 suites are always on)",
                    TLS12_SUITES.join(", ")
                ));
            }
        }
    }
    Ok(suites)
}

/// `ssl_cert` or `ssl_cert_key`: a list of paths or inline PEM.
pub fn parse_pem_list(v: &str) -> Vec<PemSource> {
    if v.contains("-----BEGIN") && !v.contains(',') {
        return vec![PemSource::parse(v)];
    }
    v.split(',').map(str::trim).filter(|i| !i.is_empty()).map(PemSource::parse).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kongs_names_map_onto_rustls_or_are_refused_by_name() {
        assert_eq!(parse_protocols("TLSv1.2 TLSv1.3"), Ok((true, true)));
        assert_eq!(parse_protocols("TLSv1.3"), Ok((false, true)));
        assert!(parse_protocols("TLSv1.1 TLSv1.2").unwrap_err().contains("`TLSv1.1` is not available"));
        assert_eq!(parse_cipher_suite("modern"), Ok(CipherSuite::Modern));
        assert!(parse_cipher_suite("old").unwrap_err().contains("rustls does not have"));
        assert_eq!(
            parse_ciphers("ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256:TLS_AES_128_GCM_SHA256"),
            Ok(vec!["ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-AES128-GCM-SHA256"])
        );
        assert!(parse_ciphers("ECDHE-RSA-AES128-GCM-SHA256:DES-CBC3-SHA").unwrap_err().contains("`DES-CBC3-SHA`"));
    }
}
