//! Loopback swarms: the addresses a run takes in 127.0.0.0/8, and the check of what each peer
//! played against the source's content (used by every mode).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;

use anyhow::{Context, Result};
use soplab_source::Content;
use soplab_wire::BLOCK_LEN;

/// The addresses of one run: tracker, source, and peers counting up from the first.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub tracker: SocketAddr,
    pub source: SocketAddr,
    pub first_peer: SocketAddrV4,
}

impl Plan {
    /// A loopback run: a /16 of 127.0.0.0/8 picked from the run's number (the process id) so
    /// that two runs on one machine do not collide.
    pub fn for_run(run: u32) -> Plan {
        let x = 100 + (run % 100) as u8;
        Plan {
            tracker: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, x, 0, 1), 3900)),
            source: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, x, 0, 2), 3901)),
            first_peer: SocketAddrV4::new(Ipv4Addr::new(127, x, 1, 1), 3908),
        }
    }

    /// A netns run: each run has namespaces of its own, so the addresses can be fixed, in
    /// 198.18.0.0/15; peers from 198.18.1.1.
    pub fn netns() -> Plan {
        Plan {
            tracker: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 3900)),
            source: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 3901)),
            first_peer: SocketAddrV4::new(Ipv4Addr::new(198, 18, 1, 1), 3908),
        }
    }

    /// Address of peer `i`: the first one's IPv4 address plus `i`, same port.
    pub fn peer(&self, i: usize) -> SocketAddrV4 {
        let ip = u32::from(*self.first_peer.ip()) + i as u32;
        SocketAddrV4::new(Ipv4Addr::from(ip), self.first_peer.port())
    }
}

/// Compares a peer's played file with the source's content over the blocks its truth log says
/// it played. Returns (blocks checked, blocks that differ or are missing from the file).
pub fn check_played(content: &Content, truth: &Path, played: &Path) -> Result<(u64, u64)> {
    let log = std::fs::read_to_string(truth).with_context(|| format!("cannot read {}", truth.display()))?;
    let data = std::fs::read(played).with_context(|| format!("cannot read {}", played.display()))?;
    let mut blocks = Vec::new();
    for line in log.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("bad line in {}", truth.display()))?;
        if v["event"] == "play" && v["hit"] == true {
            blocks.push(v["block"].as_u64().context("play event without a block")? as u32);
        }
    }
    let mut bad = 0;
    for (i, b) in blocks.iter().enumerate() {
        match data.get(i * BLOCK_LEN..(i + 1) * BLOCK_LEN) {
            Some(chunk) if chunk == &content.block(*b)[..] => {}
            _ => bad += 1,
        }
    }
    if data.len() != blocks.len() * BLOCK_LEN {
        bad += 1;
    }
    Ok((blocks.len() as u64, bad))
}
