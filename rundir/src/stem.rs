//! The file stem every per-host output of a run is named by: `peer-<ip>-<port>` (truth,
//! played stream, pcap, stats), so that a reader finds a host's files from its address and an
//! address from a file name.

use std::net::SocketAddr;

/// `peer-<ip>-<port>` for `addr` (IPv6 addresses keep their colons: the port is after the
/// last dash).
pub fn host_stem(addr: SocketAddr) -> String {
    format!("peer-{}-{}", addr.ip(), addr.port())
}

/// The address in a file name made by [`host_stem`], with or without an extension
/// (`peer-198.18.1.1-3908.pcap`); `None` for any other name.
pub fn parse_host_stem(name: &str) -> Option<SocketAddr> {
    let rest = name.strip_prefix("peer-")?;
    let (ip, tail) = rest.rsplit_once('-')?;
    let port = tail.split('.').next()?;
    Some(SocketAddr::new(ip.parse().ok()?, port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_round_trip() {
        for a in ["127.88.1.10:3908", "198.18.1.1:1", "[::1]:3908"] {
            let a: SocketAddr = a.parse().unwrap();
            assert_eq!(parse_host_stem(&host_stem(a)), Some(a));
            assert_eq!(parse_host_stem(&format!("{}.jsonl", host_stem(a))), Some(a));
        }
        assert_eq!(host_stem("127.88.1.10:3908".parse().unwrap()), "peer-127.88.1.10-3908");
        for bad in ["peer-x.pcapng", "bridge.pcap", "peer-1.2.3.4", "peer-1.2.3.4-x.pcap", "tracker.jsonl"] {
            assert_eq!(parse_host_stem(bad), None, "{bad}");
        }
    }
}
