//! Proxy variables (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`, and their
//! lower-case forms): refused, not silently followed or silently ignored.
//!
//! Streams must reach the target byte for byte (a cut after body byte k, a reset, a
//! receive buffer of a given size), which an HTTP `CONNECT` hop through a forward proxy
//! would change; so both stacks, streams and plain requests alike, always connect
//! directly (the plain HTTP client is built with no proxy). A proxy variable that would
//! apply to the target is therefore an error that says so and how to proceed, rather
//! than publishes going one way and streams another. Loopback targets are never
//! proxied (no forward proxy can reach the harness's own loopback).
//!
//! Written here rather than taken from reqwest: reqwest's own `NoProxy` matching is not
//! public, and the rules needed are small (`*`, host names with their subdomains,
//! IP addresses, IPv4/IPv6 CIDR blocks).

use std::net::IpAddr;

use crate::error::{HarnessError, HarnessErrorKind};

/// The variables that name a proxy for a scheme, in the order curl reads them.
fn proxy_vars(tls: bool) -> &'static [&'static str] {
    if tls {
        &["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"]
    } else {
        &["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"]
    }
}

/// The proxy variable (name and value) that would apply to `target`, if any, with
/// `env` giving each variable's value (`std::env::var` in use, a table in tests).
pub fn applying(
    target: &sse_wire::Target,
    env: impl Fn(&str) -> Option<String>,
) -> Option<(&'static str, String)> {
    if is_loopback(&target.host) {
        return None;
    }
    let (name, value) = proxy_vars(target.tls)
        .iter()
        .find_map(|n| env(n).filter(|v| !v.trim().is_empty()).map(|v| (*n, v)))?;
    let no_proxy = env("no_proxy")
        .or_else(|| env("NO_PROXY"))
        .unwrap_or_default();
    (!excluded(&target.host, &no_proxy)).then_some((name, value))
}

/// Refuses a target that a proxy variable of the environment would send through a
/// proxy (a usage error naming the variable and the way out).
pub fn refuse(target: &sse_wire::Target) -> Result<(), HarnessError> {
    match applying(target, |n| std::env::var(n).ok()) {
        None => Ok(()),
        Some((name, _)) => Err(HarnessError::new(
            HarnessErrorKind::Usage,
            format!(
                "{name} is set and would apply to {host}: sse-harness connects to the target directly \
(streams must reach it byte for byte, which a proxy hop changes), so it will not go through a proxy, \
nor send publishes and streams different ways; add {host} to NO_PROXY (or unset {name}) to test the target directly",
                host = target.host
            ),
        )),
    }
}

/// Whether `host` is a loopback name or address.
pub fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether `no_proxy` (comma-separated: `*`, host names that also cover their
/// subdomains, with or without a leading dot, IP addresses, CIDR blocks; ports
/// ignored) excludes `host`.
fn excluded(host: &str, no_proxy: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let ip = host.parse::<IpAddr>().ok();
    no_proxy
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            if let Some(ip) = ip {
                return ip_matches(ip, entry);
            }
            let entry = strip_port(entry)
                .trim_start_matches('.')
                .to_ascii_lowercase();
            !entry.is_empty()
                && (host == entry
                    || host
                        .strip_suffix(&entry)
                        .is_some_and(|rest| rest.ends_with('.')))
        })
}

/// `host:port` → `host` (an IPv6 literal in brackets keeps its colons).
fn strip_port(entry: &str) -> &str {
    if let Some(inner) = entry.strip_prefix('[') {
        return inner.split(']').next().unwrap_or(inner);
    }
    match entry.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => entry,
    }
}

/// Whether `ip` is the address `entry` or inside the CIDR block `entry`.
fn ip_matches(ip: IpAddr, entry: &str) -> bool {
    let (addr, bits) = match entry.split_once('/') {
        Some((a, b)) => match b.parse::<u32>() {
            Ok(b) => (a, Some(b)),
            Err(_) => return false,
        },
        None => (strip_port(entry), None),
    };
    let Ok(net) = addr.parse::<IpAddr>() else {
        return false;
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            prefix_eq(a.to_bits().into(), n.to_bits().into(), 32, bits)
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => prefix_eq(a.to_bits(), n.to_bits(), 128, bits),
        _ => false,
    }
}

/// Whether the first `bits` (all `width` when None) bits of `a` and `n` agree.
fn prefix_eq(a: u128, n: u128, width: u32, bits: Option<u32>) -> bool {
    let bits = bits.unwrap_or(width);
    if bits > width {
        return false;
    }
    if bits == 0 {
        return true;
    }
    let shift = width - bits;
    (a >> shift) == (n >> shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(host: &str, tls: bool) -> sse_wire::Target {
        sse_wire::Target {
            host: host.into(),
            port: 443,
            tls,
        }
    }

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |n| {
            vars.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn a_proxy_for_the_targets_scheme_applies() {
        let vars = [("HTTPS_PROXY", "http://proxy:3128")];
        let got = applying(&target("sse.example.com", true), env(&vars));
        assert_eq!(got, Some(("HTTPS_PROXY", "http://proxy:3128".into())));
        assert_eq!(
            applying(&target("sse.example.com", false), env(&vars)),
            None
        );
        let all = [("ALL_PROXY", "socks5://p")];
        assert!(applying(&target("sse.example.com", false), env(&all)).is_some());
    }

    #[test]
    fn loopback_is_never_proxied() {
        let vars = [("https_proxy", "http://proxy:3128")];
        for h in ["127.0.0.1", "127.8.9.1", "::1", "localhost"] {
            assert_eq!(applying(&target(h, true), env(&vars)), None, "{h}");
        }
    }

    #[test]
    fn no_proxy_excludes_names_subdomains_addresses_and_blocks() {
        let cases = [
            ("sse.example.com", "example.com", true),
            ("sse.example.com", ".example.com", true),
            ("sse.example.com", "other.com, *", true),
            ("sse.example.com", "example.com:443", true),
            ("badexample.com", "example.com", false),
            ("example.com", ".example.com", true),
            ("10.1.2.3", "10.0.0.0/8", true),
            ("10.1.2.3", "10.1.2.3", true),
            ("11.1.2.3", "10.0.0.0/8", false),
            ("fd00::5", "fd00::/16", true),
            ("fd00::5", "[fd00::5]:443", true),
            ("10.1.2.3", "10.0.0.0/40", false),
            ("sse.example.com", "", false),
        ];
        for (host, no_proxy, want) in cases {
            assert_eq!(excluded(host, no_proxy), want, "{host} vs {no_proxy:?}");
        }
        let vars = [("HTTPS_PROXY", "http://p"), ("no_proxy", "example.com")];
        assert_eq!(applying(&target("a.example.com", true), env(&vars)), None);
    }
}
