//! Which address a request comes from, for the login rate limit.
//!
//! Directly on the internet that is the TCP peer. Behind a load balancer or reverse proxy every
//! peer is the balancer, so one bucket would throttle the whole city's logins at once; the
//! balancer appends the address it saw to `X-Forwarded-For`. That header is trusted only from
//! peers the operator names (`--trusted-proxy CIDR`): anyone else could write any address there
//! and escape the limit. The list is read from the right (the entry our own proxy appended) and
//! the first address that is not one of our proxies is the client.
//!
//! A subscriber usually holds a whole IPv6 /64 and can rotate through it freely, so IPv6 clients
//! are counted per /64; IPv4-mapped IPv6 addresses count as the IPv4 address they carry.

use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

use axum::http::HeaderMap;

/// An address block, `10.0.0.0/8` or `2001:db8::/32`; a bare address is a block of one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNetwork {
    base: IpAddr,
    prefix: u8,
}

impl IpNetwork {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.base, canonical(ip)) {
            (IpAddr::V4(base), IpAddr::V4(ip)) => masked(u32::from(base).into(), self.prefix, 32) == masked(u32::from(ip).into(), self.prefix, 32),
            (IpAddr::V6(base), IpAddr::V6(ip)) => masked(u128::from(base), self.prefix, 128) == masked(u128::from(ip), self.prefix, 128),
            _ => false,
        }
    }
}

/// The top `prefix` bits of a `width`-bit address.
fn masked(bits: u128, prefix: u8, width: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        bits >> (width - prefix.min(width))
    }
}

impl FromStr for IpNetwork {
    type Err = String;

    fn from_str(text: &str) -> Result<IpNetwork, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let base = canonical(IpAddr::from_str(addr).map_err(|_| format!("{text:?} is not an address or CIDR block"))?);
        let width = if base.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= width)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {width}"))?,
        };
        Ok(IpNetwork { base, prefix })
    }
}

/// Parses a comma-separated list of blocks (`CONGDAN_TRUSTED_PROXIES`).
pub fn parse_networks(text: &str) -> Result<Vec<IpNetwork>, String> {
    text.split(',').filter(|p| !p.trim().is_empty()).map(str::parse).collect()
}

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`, how a dual-stack socket reports IPv4 peers) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The client's address: the peer, or, when the peer is a trusted proxy, the nearest address in
/// `X-Forwarded-For` that is not one of ours. An entry that is not an address stops the walk at
/// the last trusted hop (a proxy of ours wrote something we cannot read; better to count it
/// against that proxy than against a name the client chose).
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNetwork]) -> IpAddr {
    let peer = canonical(peer);
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let mut client = peer;
    // Several header lines are one list, in order (RFC 9110 §5.3).
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else { break };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, possibly `[v6]:port` or `v4:port` as some proxies write.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = IpAddr::from_str(hop) {
        return Some(canonical(ip));
    }
    if let Some(rest) = hop.strip_prefix('[') {
        return rest.split_once(']').and_then(|(a, _)| Ipv6Addr::from_str(a).ok()).map(|v6| canonical(IpAddr::V6(v6)));
    }
    hop.rsplit_once(':').and_then(|(a, port)| port.parse::<u16>().ok().and(std::net::Ipv4Addr::from_str(a).ok())).map(IpAddr::V4)
}

/// What one rate-limit bucket is keyed on: the IPv4 address, or the IPv6 /64.
pub fn bucket_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn forwarded(lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append("x-forwarded-for", HeaderValue::from_str(l).unwrap());
        }
        h
    }

    #[test]
    fn blocks_parse_and_contain() {
        let n: IpNetwork = "10.1.0.0/16".parse().unwrap();
        assert!(n.contains(ip("10.1.255.3")));
        assert!(!n.contains(ip("10.2.0.1")));
        assert!(n.contains(ip("::ffff:10.1.0.9")), "IPv4-mapped peers of a dual-stack socket");
        let one: IpNetwork = "192.0.2.7".parse().unwrap();
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let v6: IpNetwork = "2001:db8:aa::/48".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:aa:1::5")) && !v6.contains(ip("2001:db8:ab::1")));
        assert!(!v6.contains(ip("10.1.0.1")));
        let all: IpNetwork = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.1")));
        for bad in ["10.0.0.0/33", "::/129", "proxy.local", "10.0.0.0/", "10.0.0.0/-1", ""] {
            assert!(bad.parse::<IpNetwork>().is_err(), "{bad:?}");
        }
        assert_eq!(parse_networks("10.0.0.0/8, 2001:db8::/32,").unwrap().len(), 2);
        assert!(parse_networks("10.0.0.0/8,nope").is_err());
    }

    #[test]
    fn the_header_counts_only_from_a_trusted_peer() {
        let trusted = parse_networks("10.0.0.0/8").unwrap();
        let spoofed = forwarded(&["198.51.100.1"]);
        assert_eq!(client_address(ip("203.0.113.5"), &spoofed, &trusted), ip("203.0.113.5"), "an untrusted peer writes what it likes");
        assert_eq!(client_address(ip("10.0.0.2"), &spoofed, &[]), ip("10.0.0.2"), "no proxies configured: the peer");
        assert_eq!(client_address(ip("10.0.0.2"), &spoofed, &trusted), ip("198.51.100.1"));
    }

    #[test]
    fn the_walk_goes_from_the_right_and_stops_at_the_first_outsider() {
        let trusted = parse_networks("10.0.0.0/8").unwrap();
        // The client put a fake address first; our two proxies appended what they saw.
        let h = forwarded(&["1.2.3.4, 198.51.100.9", "10.0.0.7"]);
        assert_eq!(client_address(ip("10.0.0.2"), &h, &trusted), ip("198.51.100.9"));
        // Ports and brackets some proxies write.
        assert_eq!(client_address(ip("10.0.0.2"), &forwarded(&["198.51.100.9:5123"]), &trusted), ip("198.51.100.9"));
        assert_eq!(client_address(ip("10.0.0.2"), &forwarded(&["[2001:db8::1]:443"]), &trusted), ip("2001:db8::1"));
        // Garbage from our own side: counted against the last trusted hop.
        assert_eq!(client_address(ip("10.0.0.2"), &forwarded(&["198.51.100.9, garbage"]), &trusted), ip("10.0.0.2"));
        assert_eq!(client_address(ip("10.0.0.2"), &forwarded(&["garbage, 10.0.0.7"]), &trusted), ip("10.0.0.7"));
        // Only proxies in the list, or no header: the last proxy.
        assert_eq!(client_address(ip("10.0.0.2"), &forwarded(&["10.0.0.8"]), &trusted), ip("10.0.0.8"));
        assert_eq!(client_address(ip("10.0.0.2"), &HeaderMap::new(), &trusted), ip("10.0.0.2"));
    }

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        assert_eq!(bucket_key(ip("2001:db8:1:2:aaaa::1")), bucket_key(ip("2001:db8:1:2:ffff:1:2:3")));
        assert_ne!(bucket_key(ip("2001:db8:1:2::1")), bucket_key(ip("2001:db8:1:3::1")));
        assert_eq!(bucket_key(ip("::ffff:198.51.100.1")), ip("198.51.100.1"));
        assert_eq!(bucket_key(ip("198.51.100.1")), ip("198.51.100.1"));
    }
}
