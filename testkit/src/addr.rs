//! Addresses for tests: loopback addresses of this test process, and short IPv4 literals.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

/// `127.88.X.y`, X from this process's id, so that two test processes running at once (two
/// crates' tests, or two checkouts) bind different addresses. Tests of one process keep apart
/// by using different `y`.
pub fn test_ip(y: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 88, (std::process::id() % 251) as u8, y)
}

/// `a.b.c.d:port` as a [`SocketAddr`], usable in constants.
pub const fn v4(a: u8, b: u8, c: u8, d: u8, port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(a, b, c, d), port))
}
