//! The system's resolver files, read once at start as Kong reads them: `resolv.conf` (name
//! servers, search list, `ndots`, `timeout`, `attempts`) and a hosts file.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// What `resolv.conf` says, with glibc's defaults for what it leaves out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvConf {
    pub nameservers: Vec<SocketAddr>,
    /// Suffixes tried on short names (`search`, or the `domain` line).
    pub search: Vec<String>,
    /// A name with fewer dots than this is tried with the search suffixes first.
    pub ndots: usize,
    /// How long one query to one name server may take.
    pub timeout: Duration,
    /// Rounds over the name servers before a query fails.
    pub attempts: usize,
}

impl Default for ResolvConf {
    /// What a resolver does without a `resolv.conf`: the local name server, Kong's client's
    /// 2 s timeout and 5 attempts.
    fn default() -> Self {
        ResolvConf {
            nameservers: vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 53)],
            search: Vec::new(),
            ndots: 1,
            timeout: Duration::from_secs(2),
            attempts: 5,
        }
    }
}

/// Reads `resolv.conf` text. Lines it does not understand are skipped, as the C library does.
pub fn parse_resolv_conf(text: &str) -> ResolvConf {
    let mut conf = ResolvConf { nameservers: Vec::new(), ..ResolvConf::default() };
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or("");
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                if let Some(server) = words.next().and_then(|w| parse_nameserver(w).ok()) {
                    conf.nameservers.push(server);
                }
            }
            // The last of `search` and `domain` wins, as in glibc.
            Some("search") => conf.search = words.take(6).map(|w| w.trim_end_matches('.').to_string()).collect(),
            Some("domain") => {
                conf.search = words.next().map(|w| vec![w.trim_end_matches('.').to_string()]).unwrap_or_default()
            }
            Some("options") => {
                for option in words {
                    let (name, value) = option.split_once(':').unwrap_or((option, ""));
                    let number = value.parse::<u64>().ok();
                    match (name, number) {
                        ("ndots", Some(n)) => conf.ndots = n.min(15) as usize,
                        ("timeout", Some(n)) => conf.timeout = Duration::from_secs(n.clamp(1, 30)),
                        ("attempts", Some(n)) => conf.attempts = n.clamp(1, 5) as usize,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if conf.nameservers.is_empty() {
        conf.nameservers = ResolvConf::default().nameservers;
    }
    conf
}

/// A name server as Kong writes one: `ip`, `ip:port`, `[ipv6]` or `[ipv6]:port` (port 53 when
/// none is given).
pub fn parse_nameserver(v: &str) -> Result<SocketAddr, String> {
    let v = v.trim();
    if let Ok(ip) = v.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    if let Ok(address) = v.parse::<SocketAddr>() {
        return Ok(address);
    }
    if let Some(ip) = v.strip_prefix('[').and_then(|rest| rest.strip_suffix(']'))
        && let Ok(ip) = ip.parse::<std::net::Ipv6Addr>()
    {
        return Ok(SocketAddr::new(IpAddr::V6(ip), 53));
    }
    Err(format!("{v} is not a name server address: use ip, ip:port or [ipv6]:port"))
}

/// A hosts file: each name (in lower case) with its addresses in file order.
pub fn parse_hosts(text: &str) -> HashMap<String, Vec<IpAddr>> {
    let mut hosts: HashMap<String, Vec<IpAddr>> = HashMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) else { continue };
        for name in words {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            let addresses = hosts.entry(name).or_default();
            if !addresses.contains(&ip) {
                addresses.push(ip);
            }
        }
    }
    hosts
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn resolv_conf_is_read_as_glibc_reads_it() {
        let conf = parse_resolv_conf(
            "# comment\nnameserver 10.0.0.1\nnameserver ::1 # trailing\nnameserver nonsense\n\
             domain old.example\nsearch a.example b.example.\noptions ndots:3 timeout:4 attempts:9 rotate\n",
        );
        assert_eq!(conf.nameservers, vec!["10.0.0.1:53".parse().unwrap(), "[::1]:53".parse().unwrap()]);
        assert_eq!(conf.search, vec!["a.example", "b.example"]);
        assert_eq!(conf.ndots, 3);
        assert_eq!(conf.timeout, Duration::from_secs(4));
        assert_eq!(conf.attempts, 5, "attempts is capped at 5 as in glibc");
        let empty = parse_resolv_conf("");
        assert_eq!(empty, ResolvConf::default());
    }

    #[test]
    fn nameservers_take_kongs_forms() {
        assert_eq!(parse_nameserver("8.8.8.8").unwrap(), "8.8.8.8:53".parse().unwrap());
        assert_eq!(parse_nameserver("8.8.8.8:5353").unwrap(), "8.8.8.8:5353".parse().unwrap());
        assert_eq!(parse_nameserver("[::1]").unwrap(), "[::1]:53".parse().unwrap());
        assert_eq!(parse_nameserver("[::1]:54").unwrap(), "[::1]:54".parse().unwrap());
        assert_eq!(parse_nameserver("::1").unwrap(), "[::1]:53".parse().unwrap());
        assert!(parse_nameserver("dns.example").is_err());
        assert!(parse_nameserver("1.2.3.4:99999").is_err());
    }

    #[test]
    fn hosts_files_map_names_to_addresses_in_order() {
        let hosts =
            parse_hosts("127.0.0.1 localhost Local.Test\n::1 localhost\n# x\nbad line\n10.0.0.1 local.test. # c\n");
        assert_eq!(hosts["localhost"], vec!["127.0.0.1".parse::<IpAddr>().unwrap(), "::1".parse().unwrap()]);
        assert_eq!(hosts["local.test"], vec!["127.0.0.1".parse::<IpAddr>().unwrap(), "10.0.0.1".parse().unwrap()]);
        assert_eq!(hosts.len(), 2);
    }

    proptest! {
        #[test]
        fn any_text_reads_without_panicking(text in "\\PC{0,400}") {
            let conf = parse_resolv_conf(&text);
            prop_assert!(!conf.nameservers.is_empty());
            prop_assert!(conf.attempts >= 1 && conf.attempts <= 5);
            let _ = parse_hosts(&text);
            let _ = parse_nameserver(&text);
        }

        #[test]
        fn generated_files_read_back(
            servers in proptest::collection::vec(any::<std::net::Ipv4Addr>(), 1..4),
            ndots in 0u64..20,
        ) {
            let text: String = servers.iter().map(|s| format!("nameserver {s}\n")).collect::<String>()
                + &format!("options ndots:{ndots}\n");
            let conf = parse_resolv_conf(&text);
            let expected: Vec<SocketAddr> = servers.iter().map(|s| SocketAddr::new(IpAddr::V4(*s), 53)).collect();
            prop_assert_eq!(conf.nameservers, expected);
            prop_assert_eq!(conf.ndots, ndots.min(15) as usize);
        }
    }
}
