//! The address plan of a run: where the tracker, the source and peer `i` are, and the only
//! address blocks soplab ever binds or sends to.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use serde::{Deserialize, Serialize};

/// The blocks soplab binds hosts in: loopback, and 198.18.0.0/15 (RFC 2544's benchmarking
/// range) for network namespaces: (network, prefix length, description).
pub const RANGES: [(Ipv4Addr, u8, &str); 2] = [
    (Ipv4Addr::new(127, 0, 0, 0), 8, "127.0.0.0/8 (loopback)"),
    (Ipv4Addr::new(198, 18, 0, 0), 15, "198.18.0.0/15 (the benchmarking test range soplab uses for namespaces)"),
];

/// The block of [`RANGES`] that holds `ip`, if any.
pub fn range_of(ip: Ipv4Addr) -> Option<(Ipv4Addr, u8, &'static str)> {
    let ip = u32::from(ip);
    RANGES.iter().copied().find(|(net, prefix, _)| ip >> (32 - u32::from(*prefix)) == u32::from(*net) >> (32 - prefix))
}

/// Default UDP ports, SopCast's own: the tracker, the source, and every peer.
pub const TRACKER_PORT: u16 = 3900;
pub const SOURCE_PORT: u16 = 3901;
pub const PEER_PORT: u16 = 3908;

/// The /16 blocks of loopback runs, 127.100.0.0/16 to 127.199.0.0/16: one run in each at a
/// time (each run locks its block for its life).
pub const LOOPBACK_BLOCKS: std::ops::RangeInclusive<u8> = 100..=199;

/// The addresses of one run: tracker, source, and peers counting up from the first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub tracker: SocketAddr,
    pub source: SocketAddr,
    pub first_peer: SocketAddrV4,
}

impl Plan {
    /// A loopback run in 127.`block`.0.0/16, one of [`LOOPBACK_BLOCKS`]; the swarm takes a block
    /// no other run holds.
    pub fn loopback(block: u8) -> Plan {
        Plan::in_block(Ipv4Addr::new(127, block, 0, 0))
    }

    /// A netns run: each run has namespaces of its own, so the addresses can be fixed, in
    /// 198.18.0.0/15; peers from 198.18.1.1.
    pub fn netns() -> Plan {
        Plan::in_block(Ipv4Addr::new(198, 18, 0, 0))
    }

    /// Tracker at .0.1, source at .0.2, peers from .1.1 of the /16 at `base`.
    fn in_block(base: Ipv4Addr) -> Plan {
        let at = |third: u32, fourth: u32| Ipv4Addr::from(u32::from(base) | third << 8 | fourth);
        Plan {
            tracker: SocketAddr::V4(SocketAddrV4::new(at(0, 1), TRACKER_PORT)),
            source: SocketAddr::V4(SocketAddrV4::new(at(0, 2), SOURCE_PORT)),
            first_peer: SocketAddrV4::new(at(1, 1), PEER_PORT),
        }
    }

    /// Address of peer `i`: the first one's IPv4 address plus `i`, same port.
    pub fn peer(&self, i: usize) -> SocketAddrV4 {
        let ip = u32::from(*self.first_peer.ip()) + i as u32;
        SocketAddrV4::new(Ipv4Addr::from(ip), self.first_peer.port())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_stay_in_their_blocks() {
        let p = Plan::netns();
        assert_eq!(p.tracker, "198.18.0.1:3900".parse().unwrap());
        assert_eq!(p.source, "198.18.0.2:3901".parse().unwrap());
        assert_eq!(p.peer(0), "198.18.1.1:3908".parse().unwrap());
        assert_eq!(p.peer(255), "198.18.2.0:3908".parse().unwrap());
        let l = Plan::loopback(121);
        assert_eq!(l.tracker, "127.121.0.1:3900".parse().unwrap());
        assert_eq!(l.peer(1), "127.121.1.2:3908".parse().unwrap());
        for ip in [*p.peer(1000).ip(), *l.peer(1000).ip()] {
            assert!(range_of(ip).is_some(), "{ip}");
        }
        assert!(range_of(Ipv4Addr::new(198, 20, 0, 1)).is_none());
        assert!(range_of(Ipv4Addr::new(10, 0, 0, 1)).is_none());
        assert_eq!(range_of(Ipv4Addr::new(198, 19, 255, 255)).unwrap().1, 15);
    }
}
