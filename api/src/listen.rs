//! The `--listen` flag: what a newcomer types, accepted. A port alone (`8081`) listens on
//! loopback, as the default does; `host:port` takes host names (`localhost:8081`) as well as
//! IP addresses (`0.0.0.0:8081`, `[::1]:8081`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};

/// Parse a `--listen` value. Pure except for resolving a host name.
pub fn parse(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Ok(address);
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!(
            "{text:?} is not a port or host:port (try 8080, 127.0.0.1:8080 or localhost:8080)"
        ));
    };
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{port:?} in {text:?} is not a port number (0 to 65535)"))?;
    let mut addresses = (host, port)
        .to_socket_addrs()
        .map_err(|error| format!("cannot resolve {host:?}: {error}"))?;
    let first = addresses
        .next()
        .ok_or_else(|| format!("{host:?} resolves to no address"))?;
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_hosts_and_addresses() {
        assert_eq!(parse("8081"), Ok("127.0.0.1:8081".parse().unwrap()));
        assert_eq!(parse("0.0.0.0:80"), Ok("0.0.0.0:80".parse().unwrap()));
        assert_eq!(parse("[::1]:9"), Ok("[::1]:9".parse().unwrap()));
        let local = parse("localhost:8081").expect("localhost resolves");
        assert!(local.ip().is_loopback(), "{local}");
        assert_eq!(local.port(), 8081);
        for bad in ["", "localhost", "localhost:http", "70000", "host:99999"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
