//! Addresses and CIDR ranges as Kong's `typedefs.ip_or_cidr` takes them (`10.0.0.1`,
//! `10.0.0.0/8`, `2001:db8::/32`): the prefix is a plain decimal in the family's range, host bits
//! are ignored as Kong's matcher does, and an IPv4-mapped IPv6 range is kept as the IPv4 range it
//! names, so `::ffff:10.0.0.1` and `10.0.0.1` are one client.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One address or range, as configured (its text is kept for writing the configuration back).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cidr {
    text: String,
    range: Range,
}

/// A range with its host bits cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Range {
    V4 { net: u32, mask: u32 },
    V6 { net: u128, mask: u128 },
}

impl Cidr {
    /// `text` as an address or a range, or Kong's message saying why not.
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let range = parse_range(text).ok_or_else(|| format!("invalid ip or cidr range: '{text}'"))?;
        Ok(Cidr { text: text.to_string(), range })
    }

    pub fn range(&self) -> Range {
        self.range
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

fn parse_range(text: &str) -> Option<Range> {
    let (ip, prefix) = match text.split_once('/') {
        Some((ip, prefix)) => (ip, Some(prefix)),
        None => (text, None),
    };
    // Kong's matcher (lua-resty-ipmatcher) takes an IPv6 address in brackets too: `[::1]`.
    if let Some(inner) = ip.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')) {
        return Some(Range::v6(inner.parse::<Ipv6Addr>().ok()?, prefix_of(prefix, 128)?));
    }
    match ip.parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) => Some(Range::v4(v4, prefix_of(prefix, 32)?)),
        IpAddr::V6(v6) => Some(Range::v6(v6, prefix_of(prefix, 128)?)),
    }
}

/// The prefix as Kong's table of `"0"`..`"32"` (or `"128"`) has it: no sign, no leading zero.
fn prefix_of(text: Option<&str>, max: u32) -> Option<u32> {
    let Some(text) = text else { return Some(max) };
    let canonical = !text.is_empty()
        && text.len() <= 3
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    let prefix: u32 = if canonical { text.parse().ok()? } else { return None };
    (prefix <= max).then_some(prefix)
}

impl Range {
    fn v4(ip: Ipv4Addr, prefix: u32) -> Range {
        let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
        Range::V4 { net: u32::from(ip) & mask, mask }
    }

    fn v6(ip: Ipv6Addr, prefix: u32) -> Range {
        if let Some(v4) = ip.to_ipv4_mapped()
            && prefix >= 96
        {
            return Range::v4(v4, prefix - 96);
        }
        let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
        Range::V6 { net: u128::from(ip) & mask, mask }
    }

    /// Whether `ip` (an IPv4-mapped IPv6 address counts as its IPv4 address) is in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self, ip.to_canonical()) {
            (Range::V4 { net, mask }, IpAddr::V4(ip)) => u32::from(ip) & mask == *net,
            (Range::V6 { net, mask }, IpAddr::V6(ip)) => u128::from(ip) & mask == *net,
            _ => false,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Cidr::parse(&String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// A list of ranges, split by family so a lookup scans only its own.
#[derive(Debug, Default)]
pub struct Matcher {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl Matcher {
    pub fn new<'a>(cidrs: impl IntoIterator<Item = &'a Cidr>) -> Matcher {
        let mut matcher = Matcher::default();
        for cidr in cidrs {
            match cidr.range {
                Range::V4 { net, mask } => matcher.v4.push((net, mask)),
                Range::V6 { net, mask } => matcher.v6.push((net, mask)),
            }
        }
        matcher
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    pub fn matches(&self, ip: IpAddr) -> bool {
        match ip.to_canonical() {
            IpAddr::V4(ip) => {
                let ip = u32::from(ip);
                self.v4.iter().any(|(net, mask)| ip & mask == *net)
            }
            IpAddr::V6(ip) => {
                let ip = u128::from(ip);
                self.v6.iter().any(|(net, mask)| ip & mask == *net)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn kongs_addresses_and_ranges() {
        for good in
            ["10.0.0.1", "10.0.0.0/8", "0.0.0.0/0", "1.2.3.4/32", "::1", "::/0", "2001:db8::/32", "::ffff:10.0.0.1"]
        {
            assert!(Cidr::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "10.0.0",
            "10.0.0.256",
            "10.0.0.1/33",
            "10.0.0.1/",
            "10.0.0.1/08",
            "10.0.0.1/+8",
            "10.0.0.1/-1",
            "::1/129",
            "2001:db8::/032",
            "010.0.0.1",
            "10.0.0.1/8/8",
            " 10.0.0.1",
            "fe80::1%eth0",
            "example.com",
            "10.0.0.1/ 8",
            "::1/1000",
            "[10.0.0.1]",
            "[::1",
            "::1]",
            "[::1]/129",
        ] {
            assert_eq!(Cidr::parse(bad).unwrap_err(), format!("invalid ip or cidr range: '{bad}'"));
        }
    }

    #[test]
    fn ranges_contain_their_addresses_only() {
        let range = Cidr::parse("10.1.2.3/16").unwrap().range();
        assert!(range.contains(ip("10.1.0.0")) && range.contains(ip("10.1.255.255")));
        assert!(!range.contains(ip("10.2.0.0")) && !range.contains(ip("::1")));
        assert!(range.contains(ip("::ffff:10.1.9.9")), "a mapped address is its IPv4 address");
        let v6 = Cidr::parse("2001:db8::/32").unwrap().range();
        assert!(v6.contains(ip("2001:db8:ffff::1")) && !v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        let mapped = Cidr::parse("::ffff:192.168.0.0/112").unwrap().range();
        assert_eq!(mapped, Cidr::parse("192.168.0.0/16").unwrap().range());
        assert!(Cidr::parse("0.0.0.0/0").unwrap().range().contains(ip("255.255.255.255")));
        assert!(Cidr::parse("::/0").unwrap().range().contains(ip("ffff::")));
        // Brackets, as Kong's matcher takes them.
        assert_eq!(Cidr::parse("[::1]").unwrap().range(), Cidr::parse("::1").unwrap().range());
        assert_eq!(Cidr::parse("[2001:db8::]/32").unwrap().range(), v6);
    }

    #[test]
    fn a_matcher_looks_in_its_family() {
        let list: Vec<Cidr> = ["10.0.0.0/8", "2001:db8::1"].iter().map(|c| Cidr::parse(c).unwrap()).collect();
        let matcher = Matcher::new(&list);
        assert!(matcher.matches(ip("10.9.9.9")) && matcher.matches(ip("2001:db8::1")));
        assert!(!matcher.matches(ip("11.0.0.1")) && !matcher.matches(ip("2001:db8::2")));
        assert!(Matcher::new(&[]).is_empty());
    }

    proptest! {
        #[test]
        fn parsing_never_panics(text in "\\PC{0,48}") {
            let _ = Cidr::parse(&text);
        }

        #[test]
        fn any_v4_range_holds_its_network_and_not_beyond(addr in any::<u32>(), prefix in 0u32..=32, probe in any::<u32>()) {
            let text = format!("{}/{prefix}", Ipv4Addr::from(addr));
            let range = Cidr::parse(&text).unwrap().range();
            prop_assert!(range.contains(IpAddr::V4(Ipv4Addr::from(addr))));
            let same_network = prefix == 0 || (addr ^ probe) >> (32 - prefix) == 0;
            prop_assert_eq!(range.contains(IpAddr::V4(Ipv4Addr::from(probe))), same_network);
        }

        #[test]
        fn any_v6_range_holds_its_network_and_not_beyond(addr in any::<u128>(), prefix in 0u32..=128, probe in any::<u128>()) {
            prop_assume!(Ipv6Addr::from(addr).to_ipv4_mapped().is_none());
            prop_assume!(Ipv6Addr::from(probe).to_ipv4_mapped().is_none());
            let text = format!("{}/{prefix}", Ipv6Addr::from(addr));
            let range = Cidr::parse(&text).unwrap().range();
            prop_assert!(range.contains(IpAddr::V6(Ipv6Addr::from(addr))));
            let same_network = prefix == 0 || (addr ^ probe) >> (128 - prefix) == 0;
            prop_assert_eq!(range.contains(IpAddr::V6(Ipv6Addr::from(probe))), same_network);
        }

        #[test]
        fn a_prefix_is_plain_decimal(prefix in "[0-9+ -]{1,4}") {
            let canonical = prefix.parse::<u32>().ok().filter(|p| *p <= 32 && p.to_string() == prefix);
            prop_assert_eq!(Cidr::parse(&format!("10.0.0.0/{prefix}")).is_ok(), canonical.is_some());
        }
    }
}
