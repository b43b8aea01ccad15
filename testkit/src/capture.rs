//! Captures as real tools read them (tcpdump, ndpiReader), and hand-made frames for writing
//! captures of one's own.

use std::net::SocketAddrV4;
use std::path::Path;
use std::process::Command;

/// One UDP packet as `tcpdump -tt -n -r` prints it.
#[derive(Debug, Clone, PartialEq)]
pub struct UdpLine {
    pub ts: f64,
    pub src: String,
    pub dst: String,
    pub len: usize,
}

/// Reads a capture with tcpdump itself: its UDP packets, and how many other lines it printed.
pub fn tcpdump_udp(pcap: &Path) -> (Vec<UdpLine>, usize) {
    let out = Command::new("tcpdump").args(["-tt", "-n", "-r"]).arg(pcap).output().expect("run tcpdump");
    assert!(out.status.success(), "tcpdump -r {}: {}", pcap.display(), String::from_utf8_lossy(&out.stderr));
    let mut udp = Vec::new();
    let mut other = 0;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // 1795000000.123456 IP 198.18.1.1.3908 > 198.18.1.2.3908: UDP, length 42
        let f: Vec<&str> = line.split_whitespace().collect();
        match (f.get(1), f.iter().position(|w| *w == "length"), line.contains(": UDP, length")) {
            (Some(&"IP"), Some(i), true) => udp.push(UdpLine {
                ts: f[0].parse().expect("tcpdump -tt time"),
                src: endpoint(f[2]),
                dst: endpoint(f[4].trim_end_matches(':')),
                len: f[i + 1].parse().expect("UDP length"),
            }),
            _ => other += 1,
        }
    }
    (udp, other)
}

/// `198.18.1.1.3908` (tcpdump) as `198.18.1.1:3908`.
fn endpoint(s: &str) -> String {
    match s.rsplit_once('.') {
        Some((ip, port)) => format!("{ip}:{port}"),
        None => s.to_string(),
    }
}

/// `ndpiReader -v 2` on a capture: each UDP flow's two endpoints and the protocol name.
pub fn ndpi_flows(pcap: &Path) -> Vec<(String, String, String)> {
    let out = Command::new("ndpiReader").args(["-v", "2", "-i"]).arg(pcap).output().expect("run ndpiReader");
    assert!(out.status.success(), "ndpiReader -i {}: {}", pcap.display(), String::from_utf8_lossy(&out.stderr));
    let mut flows = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // 	1	UDP 198.18.1.2:3908 <-> 198.18.0.2:3901 [proto: 57/Sopcast][...
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() > 5 && f[1] == "UDP" && f[3] == "<->" {
            let proto = line.split("[proto: ").nth(1).and_then(|r| r.split(']').next()).unwrap_or("").to_string();
            flows.push((f[2].to_string(), f[4].to_string(), proto));
        }
    }
    flows
}

/// One UDP datagram wrapped in Ethernet + IPv4 + UDP headers (UDP checksum 0: optional in IPv4),
/// for pcaps of link type Ethernet that tcpdump and ndpiReader read.
pub fn udp_frame(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8], ip_id: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + 20 + 8 + payload.len());
    // Ethernet: locally administered MACs derived from the last address byte.
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, dst.ip().octets()[3]]);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, src.ip().octets()[3]]);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    // IPv4 header.
    let total = (20 + 8 + payload.len()) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[4..6].copy_from_slice(&ip_id.to_be_bytes());
    ip[6] = 0x40; // don't fragment
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src.ip().octets());
    ip[16..20].copy_from_slice(&dst.ip().octets());
    let mut sum: u32 = ip.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    f.extend_from_slice(&ip);
    // UDP header.
    f.extend_from_slice(&src.port().to_be_bytes());
    f.extend_from_slice(&dst.port().to_be_bytes());
    f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}
