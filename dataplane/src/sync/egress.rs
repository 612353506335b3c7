//! The destination policy: which addresses a delivery, or an OAuth2 token request, may connect
//! to. The delivery engine must not become a proxy into the network it runs in.
//!
//! Checked on the address actually connected to, after DNS resolution, never on URL text:
//! [`Deliverer`](super::Deliverer) resolves host names through [`GuardedResolver`], which
//! hands the connector only addresses the policy allows; URLs with an IP literal (which skip
//! resolution) are checked before the request; redirects are never followed; and system
//! proxies (`HTTP_PROXY`…) are ignored, since through a proxy the address connected to is
//! the proxy's. IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible and NAT64 (`64:ff9b::/96`)
//! IPv6 addresses are judged as the IPv4 address they carry.
//!
//! Rules, first match wins:
//!
//! | rule                                   | addresses                                               | verdict |
//! | -------------------------------------- | ------------------------------------------------------- | ------- |
//! | own listener                           | Hookplane's listen address and port (any loopback or unspecified address at that port; any non-public one when listening on all interfaces) | refused, always |
//! | cloud metadata                         | `169.254.169.254`, `169.254.170.2`, `169.254.170.23`, `fd00:ec2::254`, `fd00:ec2::23`, `100.100.100.200`, `192.0.0.192` | refused, always |
//! | link-local                             | `169.254.0.0/16`, `fe80::/10`                           | refused, always |
//! | `--destination-deny`                   | the CIDRs given                                         | refused |
//! | `--destination-allow`                  | the CIDRs given                                         | allowed |
//! | `strict` only                          | loopback, unspecified (`0.0.0.0/8`, `::`), private (`10/8`, `172.16/12`, `192.168/16`, `fc00::/7`, `fec0::/10`), shared (`100.64/10`), special-purpose (`192.0.0/24`, `198.18/15`), multicast, broadcast and reserved (`224/4`, `240/4`, `ff00::/8`) | refused |
//! | otherwise                              |                                                         | allowed |
//!
//! A refusal is [`Forbidden`]: it names the address and the rule, and its code is
//! `DESTINATION_FORBIDDEN`. Pure, except [`GuardedResolver`], which asks the system resolver.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    str::FromStr,
    sync::Arc,
};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The code of every refusal.
pub const FORBIDDEN_CODE: &str = "DESTINATION_FORBIDDEN";

/// Whether loopback and private ranges are reachable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PolicyMode {
    /// Loopback and private ranges are allowed (local development, `hookplane serve`).
    #[default]
    Permissive,
    /// Only public addresses, plus what `allow` lists.
    Strict,
}

impl PolicyMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Permissive => "permissive",
            Self::Strict => "strict",
        }
    }
}

/// An IP network: an address and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Self {
        Self {
            network: IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
            prefix,
        }
    }

    const fn v6(segments: [u16; 8], prefix: u8) -> Self {
        let [a, b, c, d, e, f, g, h] = segments;
        Self {
            network: IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h)),
            prefix,
        }
    }

    /// Whether `ip` is in the network (an IPv4 network never contains an IPv6 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(network), IpAddr::V4(ip)) => prefix_eq(
                u128::from(network.to_bits()) << 96,
                u128::from(ip.to_bits()) << 96,
                self.prefix,
            ),
            (IpAddr::V6(network), IpAddr::V6(ip)) => {
                prefix_eq(network.to_bits(), ip.to_bits(), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: u128, b: u128, prefix: u8) -> bool {
    match prefix {
        0 => true,
        p if p >= 128 => a == b,
        p => (a ^ b) >> (128 - u32::from(p)) == 0,
    }
}

/// Why a CIDR did not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IP address or CIDR (such as 10.0.0.0/8 or fd00::/8)")]
pub struct CidrError(String);

impl FromStr for Cidr {
    type Err = CidrError;

    /// `10.0.0.0/8`, `fd00::/8`, or a single address (`/32`, `/128`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || CidrError(text.to_owned());
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text.trim(), None),
        };
        let network: IpAddr = address.parse().map_err(|_| error())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix.parse::<u8>().map_err(|_| error())?,
            None => max,
        };
        if prefix > max {
            return Err(error());
        }
        Ok(Self { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The rule that refused an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    /// One of Hookplane's own listeners.
    OwnListener(SocketAddr),
    /// A cloud provider's instance metadata service.
    CloudMetadata,
    /// A link-local address.
    LinkLocal,
    /// Listed in `--destination-deny`.
    Denied(Cidr),
    /// A range only the permissive policy allows (`loopback`, `private`, …).
    Strict(&'static str),
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OwnListener(listener) => {
                write!(
                    f,
                    "it is Hookplane's own listener {listener}; never allowed"
                )
            }
            Self::CloudMetadata => f.write_str("cloud metadata addresses are never allowed"),
            Self::LinkLocal => f.write_str("link-local addresses are never allowed"),
            Self::Denied(cidr) => write!(f, "denied by --destination-deny {cidr}"),
            Self::Strict(kind) => write!(
                f,
                "{kind} addresses are denied by --destination-policy strict (allow them with --destination-allow)"
            ),
        }
    }
}

impl Rule {
    /// A short name for log fields.
    pub fn name(&self) -> &'static str {
        match self {
            Self::OwnListener(_) => "own-listener",
            Self::CloudMetadata => "cloud-metadata",
            Self::LinkLocal => "link-local",
            Self::Denied(_) => "deny-list",
            Self::Strict(_) => "strict",
        }
    }
}

/// A connection the policy refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{FORBIDDEN_CODE}: {target}{via} is refused by the destination policy: {rule}")]
pub struct Forbidden {
    /// The address refused (port 0 when the port was not known).
    pub address: IpAddr,
    /// What was refused: the address, with its port when known.
    target: String,
    /// `" (host.example)"` when the address came from resolving a name.
    via: String,
    pub rule: Rule,
}

impl Forbidden {
    fn new(address: IpAddr, port: Option<u16>, rule: Rule) -> Self {
        let target = match port {
            Some(port) => SocketAddr::new(address, port).to_string(),
            None => address.to_string(),
        };
        Self {
            address,
            target,
            via: String::new(),
            rule,
        }
    }

    /// The same refusal, saying `host` resolved to the address.
    fn resolved_from(mut self, host: &str) -> Self {
        self.via = format!(" (resolved from {host})");
        self
    }
}

/// The policy a worker delivers under.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DestinationPolicy {
    pub mode: PolicyMode,
    /// Allowed even under `strict` (never over the fixed refusals or `deny`).
    pub allow: Vec<Cidr>,
    /// Refused even under `permissive`.
    pub deny: Vec<Cidr>,
    /// Hookplane's own listeners in this process.
    pub own_listeners: Vec<SocketAddr>,
}

const METADATA: [IpAddr; 7] = [
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
    IpAddr::V4(Ipv4Addr::new(169, 254, 170, 2)),
    IpAddr::V4(Ipv4Addr::new(169, 254, 170, 23)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23)),
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
    IpAddr::V4(Ipv4Addr::new(192, 0, 0, 192)),
];

const LINK_LOCAL: [Cidr; 2] = [
    Cidr::v4(169, 254, 0, 0, 16),
    Cidr::v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),
];

/// What `strict` refuses, by kind.
const NON_PUBLIC: [(&str, Cidr); 17] = [
    ("loopback", Cidr::v4(127, 0, 0, 0, 8)),
    ("loopback", Cidr::v6([0, 0, 0, 0, 0, 0, 0, 1], 128)),
    ("unspecified", Cidr::v4(0, 0, 0, 0, 8)),
    ("unspecified", Cidr::v6([0; 8], 128)),
    ("private", Cidr::v4(10, 0, 0, 0, 8)),
    ("private", Cidr::v4(172, 16, 0, 0, 12)),
    ("private", Cidr::v4(192, 168, 0, 0, 16)),
    ("private", Cidr::v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7)),
    ("private", Cidr::v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10)),
    ("shared", Cidr::v4(100, 64, 0, 0, 10)),
    ("special-purpose", Cidr::v4(192, 0, 0, 0, 24)),
    ("special-purpose", Cidr::v4(198, 18, 0, 0, 15)),
    ("multicast", Cidr::v4(224, 0, 0, 0, 4)),
    ("reserved", Cidr::v4(240, 0, 0, 0, 4)),
    ("multicast", Cidr::v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8)),
    ("documentation", Cidr::v4(192, 0, 2, 0, 24)),
    (
        "documentation",
        Cidr::v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32),
    ),
];

/// The address a connection to `ip` really reaches: the IPv4 address an IPv4-mapped,
/// IPv4-compatible or NAT64 IPv6 address carries, else `ip`.
pub fn effective(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else {
        return ip;
    };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    let segments = v6.segments();
    let embedded = Ipv4Addr::from_bits(v6.to_bits() as u32);
    let compatible = segments[..6] == [0; 6] && !matches!(v6.to_bits(), 0 | 1);
    let nat64 = segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
    if compatible || nat64 {
        IpAddr::V4(embedded)
    } else {
        ip
    }
}

fn non_public_kind(ip: IpAddr) -> Option<&'static str> {
    if ip == IpAddr::V4(Ipv4Addr::BROADCAST) {
        return Some("broadcast");
    }
    NON_PUBLIC
        .iter()
        .find(|(_, cidr)| cidr.contains(ip))
        .map(|(kind, _)| *kind)
}

impl DestinationPolicy {
    /// Checks a connection to `address` (with its port, so own listeners are recognised).
    pub fn check(&self, address: SocketAddr) -> Result<(), Forbidden> {
        self.judge(address.ip(), Some(address.port()))
    }

    /// Every port on which a connection could reach one of our own listeners.
    pub fn own_ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.own_listeners.iter().map(SocketAddr::port)
    }

    fn judge(&self, ip: IpAddr, port: Option<u16>) -> Result<(), Forbidden> {
        let real = effective(ip);
        let refuse = |rule| Err(Forbidden::new(ip, port, rule));
        if let Some(port) = port
            && let Some(listener) = self.own_listener(real, port)
        {
            return refuse(Rule::OwnListener(listener));
        }
        if METADATA.contains(&real) {
            return refuse(Rule::CloudMetadata);
        }
        if LINK_LOCAL.iter().any(|cidr| cidr.contains(real)) {
            return refuse(Rule::LinkLocal);
        }
        if let Some(cidr) = self
            .deny
            .iter()
            .find(|cidr| cidr.contains(real) || cidr.contains(ip))
        {
            return refuse(Rule::Denied(*cidr));
        }
        if self
            .allow
            .iter()
            .any(|cidr| cidr.contains(real) || cidr.contains(ip))
        {
            return Ok(());
        }
        match (self.mode, non_public_kind(real)) {
            (PolicyMode::Strict, Some(kind)) => refuse(Rule::Strict(kind)),
            _ => Ok(()),
        }
    }

    /// The listener a connection to `ip:port` would reach, if it is one of ours.
    fn own_listener(&self, ip: IpAddr, port: u16) -> Option<SocketAddr> {
        self.own_listeners.iter().copied().find(|listener| {
            let bound = effective(listener.ip());
            listener.port() == port
                && (ip == bound
                    || ip.is_unspecified()
                    || non_public_kind(ip) == Some("unspecified")
                    || (ip.is_loopback() && (bound.is_loopback() || bound.is_unspecified()))
                    || (bound.is_unspecified() && non_public_kind(ip).is_some()))
        })
    }
}

/// A DNS resolver that gives the connector only the addresses `policy` allows. With `port`
/// (the request's, when it is one of our own listeners' ports) it refuses our own
/// listeners too; without, the port is unknown here and only address rules apply.
pub struct GuardedResolver {
    pub policy: Arc<DestinationPolicy>,
    pub port: Option<u16>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = Arc::clone(&self.policy);
        let port = self.port;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let mut allowed = Vec::new();
            let mut refused = None;
            for address in resolved {
                match policy.judge(address.ip(), port) {
                    Ok(()) => allowed.push(address),
                    Err(forbidden) => {
                        refused.get_or_insert(forbidden);
                    }
                }
            }
            match refused {
                Some(forbidden) if allowed.is_empty() => {
                    Err(Box::new(forbidden.resolved_from(&host)) as _)
                }
                _ => Ok(Box::new(allowed.into_iter()) as Addrs),
            }
        })
    }
}

/// The refusal somewhere in `error`'s chain of causes, if the policy refused the connection.
pub fn forbidden_in(error: &(dyn std::error::Error + 'static)) -> Option<Forbidden> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(forbidden) = error.downcast_ref::<Forbidden>() {
            return Some(forbidden.clone());
        }
        current = error.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> SocketAddr {
        text.parse().expect("a socket address")
    }

    fn rule(policy: &DestinationPolicy, address: &str) -> Option<Rule> {
        policy
            .check(at(address))
            .err()
            .map(|forbidden| forbidden.rule)
    }

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|c| c.parse().expect("a CIDR")).collect()
    }

    #[test]
    fn cidrs_parse_and_contain() {
        let net: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains("10.255.1.2".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        assert!(!net.contains("::ffff:10.0.0.1".parse().unwrap()));
        let host: Cidr = "192.0.2.7".parse().unwrap();
        assert_eq!(host.to_string(), "192.0.2.7/32");
        assert!(host.contains("192.0.2.7".parse().unwrap()));
        assert!(!host.contains("192.0.2.8".parse().unwrap()));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(
            "0.0.0.0/0"
                .parse::<Cidr>()
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        for bad in ["", "10.0.0.0/33", "::/129", "example.com/8", "10.0.0.0/x"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn link_local_metadata_and_own_listeners_are_refused_even_when_permissive() {
        let policy = DestinationPolicy {
            allow: cidrs(&["0.0.0.0/0", "::/0"]),
            own_listeners: vec![at("127.0.0.1:8080")],
            ..DestinationPolicy::default()
        };
        assert_eq!(
            rule(&policy, "169.254.169.254:80"),
            Some(Rule::CloudMetadata)
        );
        assert_eq!(
            rule(&policy, "[fd00:ec2::254]:80"),
            Some(Rule::CloudMetadata)
        );
        assert_eq!(rule(&policy, "169.254.10.1:80"), Some(Rule::LinkLocal));
        assert_eq!(rule(&policy, "[fe80::1]:80"), Some(Rule::LinkLocal));
        assert_eq!(
            rule(&policy, "[::ffff:169.254.169.254]:80"),
            Some(Rule::CloudMetadata)
        );
        let own = Some(Rule::OwnListener(at("127.0.0.1:8080")));
        assert_eq!(rule(&policy, "127.0.0.1:8080"), own);
        assert_eq!(rule(&policy, "[::ffff:127.0.0.1]:8080"), own);
        assert_eq!(rule(&policy, "0.0.0.0:8080"), own);
        assert_eq!(rule(&policy, "[::1]:8080"), own);
        assert_eq!(rule(&policy, "127.0.0.1:8081"), None);
        assert_eq!(
            rule(&policy, "10.1.2.3:8080"),
            None,
            "not reachable on 127.0.0.1 only"
        );

        let everywhere = DestinationPolicy {
            own_listeners: vec![at("0.0.0.0:8080")],
            ..DestinationPolicy::default()
        };
        assert!(matches!(
            rule(&everywhere, "10.1.2.3:8080"),
            Some(Rule::OwnListener(_))
        ));
        assert_eq!(rule(&everywhere, "93.184.215.14:8080"), None);
    }

    #[test]
    fn strict_refuses_non_public_ranges_unless_allowed() {
        let strict = DestinationPolicy {
            mode: PolicyMode::Strict,
            allow: cidrs(&["10.20.0.0/16"]),
            ..DestinationPolicy::default()
        };
        for (address, kind) in [
            ("127.0.0.1:80", "loopback"),
            ("[::1]:80", "loopback"),
            ("[::ffff:127.0.0.1]:80", "loopback"),
            ("[::127.0.0.1]:80", "loopback"),
            ("[64:ff9b::7f00:1]:80", "loopback"),
            ("0.0.0.0:80", "unspecified"),
            ("10.0.0.1:80", "private"),
            ("172.20.0.1:80", "private"),
            ("192.168.1.1:80", "private"),
            ("[fd12::1]:80", "private"),
            ("100.64.0.1:80", "shared"),
            ("255.255.255.255:80", "broadcast"),
        ] {
            assert_eq!(
                rule(&strict, address),
                Some(Rule::Strict(kind)),
                "{address}"
            );
        }
        assert_eq!(
            rule(&strict, "10.20.3.4:80"),
            None,
            "allowed by --destination-allow"
        );
        assert_eq!(rule(&strict, "93.184.215.14:443"), None);
        assert_eq!(
            rule(&strict, "[2606:2800:21f:cb07:6820:80da:af6b:8b2c]:443"),
            None
        );

        let permissive = DestinationPolicy::default();
        assert_eq!(rule(&permissive, "127.0.0.1:80"), None);
        assert_eq!(rule(&permissive, "10.0.0.1:80"), None);
    }

    #[test]
    fn deny_wins_over_allow_and_permissive() {
        let policy = DestinationPolicy {
            allow: cidrs(&["10.0.0.0/8"]),
            deny: cidrs(&["10.9.0.0/16"]),
            ..DestinationPolicy::default()
        };
        let denied = Some(Rule::Denied("10.9.0.0/16".parse().unwrap()));
        assert_eq!(rule(&policy, "10.9.1.1:443"), denied);
        assert_eq!(rule(&policy, "[::ffff:10.9.1.1]:443"), denied);
        assert_eq!(rule(&policy, "10.8.1.1:443"), None);
    }

    #[test]
    fn refusals_name_the_address_and_the_rule() {
        let policy = DestinationPolicy {
            mode: PolicyMode::Strict,
            ..DestinationPolicy::default()
        };
        let refused = policy.check(at("127.0.0.1:9000")).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "DESTINATION_FORBIDDEN: 127.0.0.1:9000 is refused by the destination policy: \
             loopback addresses are denied by --destination-policy strict (allow them with \
             --destination-allow)"
        );
        let resolved = refused.resolved_from("localhost");
        assert!(
            resolved
                .to_string()
                .contains("127.0.0.1:9000 (resolved from localhost)")
        );
    }

    #[tokio::test]
    async fn the_resolver_filters_what_a_name_resolves_to() {
        let strict = Arc::new(DestinationPolicy {
            mode: PolicyMode::Strict,
            ..DestinationPolicy::default()
        });
        let resolver = GuardedResolver {
            policy: Arc::clone(&strict),
            port: None,
        };
        let error = match resolver.resolve(Name::from_str("localhost").unwrap()).await {
            Ok(_) => panic!("localhost resolves to loopback only"),
            Err(error) => error,
        };
        let forbidden = forbidden_in(&*error).expect("the refusal is the error");
        assert_eq!(forbidden.rule, Rule::Strict("loopback"));
        assert!(forbidden.to_string().contains("(resolved from localhost)"));

        let permissive = GuardedResolver {
            policy: Arc::new(DestinationPolicy {
                own_listeners: vec![at("127.0.0.1:8080")],
                ..DestinationPolicy::default()
            }),
            port: Some(8080),
        };
        let Err(error) = permissive
            .resolve(Name::from_str("localhost").unwrap())
            .await
        else {
            panic!("localhost:8080 is our own listener");
        };
        assert!(matches!(
            forbidden_in(&*error).map(|f| f.rule),
            Some(Rule::OwnListener(_))
        ));
    }
}
