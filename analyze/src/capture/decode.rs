//! Link, IP and UDP headers: from one captured frame to a [`Datagram`] (addresses, ports, the UDP
//! payload length and the first payload bytes), without allocating.
//!
//! The payload length is read from the UDP header, as `tcpdump` prints it (`UDP, length N`), so
//! a frame cut by the snapshot length still has its true size as long as its UDP header was
//! captured.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// How many leading payload bytes a [`Datagram`] keeps (for the wire cross-check and the
/// de-duplication key).
pub const HEAD: usize = 32;

/// Link-layer header types (pcap `LINKTYPE_*` values) the reader understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// 0: BSD loopback, a 4-byte address family in the writer's byte order.
    Null,
    /// 108: OpenBSD loopback, the address family in network byte order.
    Loop,
    /// 1: Ethernet II, with 802.1Q/802.1ad tags.
    Ethernet,
    /// 113: Linux cooked capture v1 (`tcpdump -i any` before libpcap 1.10).
    Sll,
    /// 276: Linux cooked capture v2 (`tcpdump -i any`).
    Sll2,
    /// 101 (and the DLT values 12, 14): raw IP, version from the first nibble.
    Raw,
    /// 228: raw IPv4.
    Ipv4,
    /// 229: raw IPv6.
    Ipv6,
    /// Anything else: frames are counted and skipped.
    Unsupported(i32),
}

impl Link {
    /// The link type of a pcap header or pcapng interface.
    pub fn from_linktype(lt: i32) -> Link {
        match lt {
            0 => Link::Null,
            108 => Link::Loop,
            1 => Link::Ethernet,
            113 => Link::Sll,
            276 => Link::Sll2,
            101 | 12 | 14 => Link::Raw,
            228 => Link::Ipv4,
            229 => Link::Ipv6,
            other => Link::Unsupported(other),
        }
    }
}

/// An address and port, IPv4 stored as an IPv4-mapped IPv6 address so both fit one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Endpoint {
    pub ip: u128,
    pub port: u16,
}

const V4_MAPPED: u128 = 0xffff_0000_0000;

impl Endpoint {
    pub fn v4(ip: [u8; 4], port: u16) -> Endpoint {
        Endpoint { ip: V4_MAPPED | u128::from(u32::from_be_bytes(ip)), port }
    }
    pub fn v6(ip: [u8; 16], port: u16) -> Endpoint {
        Endpoint { ip: u128::from_be_bytes(ip), port }
    }
    pub fn is_v4(&self) -> bool {
        self.ip >> 32 == 0xffff
    }
    /// The address as `tcpdump` and the ground truth write it (`1.2.3.4:3908`, `[::1]:3908`).
    pub fn socket_addr(&self) -> SocketAddr {
        let ip =
            if self.is_v4() { IpAddr::V4(Ipv4Addr::from(self.ip as u32)) } else { IpAddr::V6(Ipv6Addr::from(self.ip)) };
        SocketAddr::new(ip, self.port)
    }
    pub fn from_socket_addr(a: SocketAddr) -> Endpoint {
        match a.ip() {
            IpAddr::V4(v4) => Endpoint::v4(v4.octets(), a.port()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Endpoint::v4(v4.octets(), a.port()),
                None => Endpoint::v6(v6.octets(), a.port()),
            },
        }
    }
    /// The IP address alone.
    pub fn ip_addr(&self) -> IpAddr {
        self.socket_addr().ip()
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.socket_addr().fmt(f)
    }
}

/// One captured UDP datagram, reduced to what the analysis uses.
#[derive(Debug, Clone, Copy, Default)]
pub struct Datagram {
    /// Capture time, microseconds since the Unix epoch.
    pub ts_us: i64,
    pub src: Endpoint,
    pub dst: Endpoint,
    /// UDP payload length from the UDP header (what `tcpdump` prints as `length N`).
    pub len: u32,
    /// IPv4 identification (0 for IPv6); part of the de-duplication key.
    pub ip_id: u16,
    /// The first `head_len` payload bytes.
    pub head: [u8; HEAD],
    pub head_len: u8,
    /// The payload was not captured whole (snapshot length).
    pub cut: bool,
    /// The datagram was the first fragment of a fragmented IP packet.
    pub fragmented: bool,
    /// Index of the input file it was read from.
    pub input: u16,
}

/// What a frame turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A UDP datagram (written into the caller's [`Datagram`]).
    Udp,
    /// Not IPv4/IPv6 (ARP, LLDP, ...).
    NotIp,
    /// IP but not UDP (TCP, ICMP, ...).
    NotUdp,
    /// A non-first IP fragment: no UDP header to read.
    Fragment,
    /// The headers up to and including UDP were cut by the snapshot length.
    Cut,
    /// Headers that contradict themselves (bad version, lengths below the minimum).
    Malformed,
    /// A link type the reader does not know.
    UnsupportedLink,
}

#[inline]
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;

/// Decodes `frame` (captured bytes of link type `link`) into `out` (addresses, ports, length,
/// head). `out.ts_us` and `out.input` are left to the caller.
pub fn decode(link: Link, frame: &[u8], out: &mut Datagram) -> Frame {
    match link {
        Link::Ethernet => {
            if frame.len() < 14 {
                return Frame::Cut;
            }
            let mut at = 12;
            let mut ethertype = be16(frame, at);
            // Up to two VLAN tags (802.1Q, 802.1ad, and the old QinQ 0x9100).
            for _ in 0..2 {
                if matches!(ethertype, 0x8100 | 0x88a8 | 0x9100) {
                    at += 4;
                    if frame.len() < at + 2 {
                        return Frame::Cut;
                    }
                    ethertype = be16(frame, at);
                }
            }
            by_ethertype(ethertype, &frame[at + 2..], out)
        }
        Link::Sll => {
            if frame.len() < 16 {
                return Frame::Cut;
            }
            by_ethertype(be16(frame, 14), &frame[16..], out)
        }
        Link::Sll2 => {
            if frame.len() < 20 {
                return Frame::Cut;
            }
            by_ethertype(be16(frame, 0), &frame[20..], out)
        }
        Link::Null | Link::Loop => {
            if frame.len() < 4 {
                return Frame::Cut;
            }
            let raw: [u8; 4] = frame[..4].try_into().expect("4 bytes");
            // LINKTYPE_NULL is in the writer's byte order; values are small, so the order whose
            // value fits 16 bits is the right one.
            let family = if link == Link::Loop {
                u32::from_be_bytes(raw)
            } else {
                let le = u32::from_le_bytes(raw);
                if le <= 0xffff { le } else { u32::from_be_bytes(raw) }
            };
            match family {
                2 => ipv4(&frame[4..], out),
                // AF_INET6 on Linux, the BSDs and macOS.
                10 | 24 | 28 | 30 => ipv6(&frame[4..], out),
                _ => Frame::NotIp,
            }
        }
        Link::Raw => match frame.first().map(|b| b >> 4) {
            Some(4) => ipv4(frame, out),
            Some(6) => ipv6(frame, out),
            Some(_) => Frame::Malformed,
            None => Frame::Cut,
        },
        Link::Ipv4 => ipv4(frame, out),
        Link::Ipv6 => ipv6(frame, out),
        Link::Unsupported(_) => Frame::UnsupportedLink,
    }
}

#[inline]
fn by_ethertype(ethertype: u16, rest: &[u8], out: &mut Datagram) -> Frame {
    match ethertype {
        ETH_IPV4 => ipv4(rest, out),
        ETH_IPV6 => ipv6(rest, out),
        _ => Frame::NotIp,
    }
}

#[inline]
fn ipv4(p: &[u8], out: &mut Datagram) -> Frame {
    if p.len() < 20 {
        return if p.is_empty() || p[0] >> 4 == 4 { Frame::Cut } else { Frame::Malformed };
    }
    if p[0] >> 4 != 4 {
        return Frame::Malformed;
    }
    let ihl = usize::from(p[0] & 0x0f) * 4;
    if ihl < 20 {
        return Frame::Malformed;
    }
    let frag = be16(p, 6);
    let offset = frag & 0x1fff;
    let more = frag & 0x2000 != 0;
    if p[9] != 17 {
        return Frame::NotUdp;
    }
    if offset != 0 {
        return Frame::Fragment;
    }
    if p.len() < ihl + 8 {
        return Frame::Cut;
    }
    out.src = Endpoint::v4(p[12..16].try_into().expect("4 bytes"), be16(p, ihl));
    out.dst = Endpoint::v4(p[16..20].try_into().expect("4 bytes"), be16(p, ihl + 2));
    out.ip_id = be16(p, 4);
    out.fragmented = more;
    let total = usize::from(be16(p, 2));
    // UDP length 0 is not valid over IPv4; fall back on the IP length when it is unusable.
    let udp_len = usize::from(be16(p, ihl + 4));
    let ip_payload = total.saturating_sub(ihl);
    let len = if udp_len >= 8 {
        udp_len - 8
    } else if ip_payload >= 8 {
        ip_payload - 8
    } else {
        return Frame::Malformed;
    };
    udp_payload(&p[ihl + 8..], len, out)
}

#[inline]
fn ipv6(p: &[u8], out: &mut Datagram) -> Frame {
    if p.len() < 40 {
        return if p.is_empty() || p[0] >> 4 == 6 { Frame::Cut } else { Frame::Malformed };
    }
    if p[0] >> 4 != 6 {
        return Frame::Malformed;
    }
    let payload_len = usize::from(be16(p, 4));
    let mut next = p[6];
    let mut at = 40;
    let mut fragmented = false;
    let mut frag_id = 0u16;
    // Walk the extension headers (a few at most in practice).
    for _ in 0..8 {
        match next {
            17 => break,
            // Hop-by-hop, routing, destination options: length in 8-byte units after the first 8.
            0 | 43 | 60 => {
                if p.len() < at + 2 {
                    return Frame::Cut;
                }
                next = p[at];
                at += 8 + usize::from(p[at + 1]) * 8;
            }
            44 => {
                if p.len() < at + 8 {
                    return Frame::Cut;
                }
                let off_flags = be16(p, at + 2);
                if off_flags & 0xfff8 != 0 {
                    return Frame::Fragment;
                }
                fragmented = off_flags & 1 != 0;
                frag_id = (u32::from_be_bytes(p[at + 4..at + 8].try_into().expect("4 bytes")) & 0xffff) as u16;
                next = p[at];
                at += 8;
            }
            _ => return Frame::NotUdp,
        }
    }
    if next != 17 {
        return Frame::NotUdp;
    }
    if p.len() < at + 8 {
        return Frame::Cut;
    }
    out.src = Endpoint::v6(p[8..24].try_into().expect("16 bytes"), be16(p, at));
    out.dst = Endpoint::v6(p[24..40].try_into().expect("16 bytes"), be16(p, at + 2));
    out.ip_id = frag_id;
    out.fragmented = fragmented;
    let udp_len = usize::from(be16(p, at + 4));
    let ip_rest = (40 + payload_len).saturating_sub(at);
    // UDP length 0 means a jumbogram: the length comes from the IP layer.
    let len = if udp_len >= 8 {
        udp_len - 8
    } else if udp_len == 0 && ip_rest >= 8 {
        ip_rest - 8
    } else {
        return Frame::Malformed;
    };
    udp_payload(&p[at + 8..], len, out)
}

#[inline]
fn udp_payload(captured: &[u8], len: usize, out: &mut Datagram) -> Frame {
    out.len = len as u32;
    let n = captured.len().min(len).min(HEAD);
    out.head[..n].copy_from_slice(&captured[..n]);
    out.head_len = n as u8;
    out.cut = captured.len() < len;
    Frame::Udp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4_udp(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        etherparse::PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(3908, 3901)
            .write(&mut out, payload)
            .unwrap();
        out
    }

    #[test]
    fn raw_ipv4_udp() {
        let mut d = Datagram::default();
        let f = v4_udp(&[7u8; 42]);
        assert_eq!(decode(Link::Raw, &f, &mut d), Frame::Udp);
        assert_eq!(d.len, 42);
        assert_eq!(d.src.to_string(), "10.0.0.1:3908");
        assert_eq!(d.dst.to_string(), "10.0.0.2:3901");
        assert_eq!(d.head_len, 32);
        assert!(!d.cut);
        // Snap-cut payload: length still from the UDP header.
        assert_eq!(decode(Link::Raw, &f[..30], &mut d), Frame::Udp);
        assert_eq!((d.len, d.head_len, d.cut), (42, 2, true));
        // Cut inside the UDP header.
        assert_eq!(decode(Link::Raw, &f[..24], &mut d), Frame::Cut);
        assert_eq!(decode(Link::Raw, &[], &mut d), Frame::Cut);
        assert_eq!(decode(Link::Raw, &[0x50, 0, 0], &mut d), Frame::Malformed);
    }

    #[test]
    fn ipv4_fragments_and_other_protocols() {
        let mut d = Datagram::default();
        let mut f = v4_udp(&[1u8; 100]);
        f[6] = 0x20; // more fragments, offset 0: first fragment, UDP header present
        assert_eq!(decode(Link::Raw, &f, &mut d), Frame::Udp);
        assert!(d.fragmented);
        f[6] = 0x00;
        f[7] = 0x10; // offset 16 (x8 bytes): a later fragment
        assert_eq!(decode(Link::Raw, &f, &mut d), Frame::Fragment);
        f[7] = 0;
        f[9] = 6; // TCP
        assert_eq!(decode(Link::Raw, &f, &mut d), Frame::NotUdp);
    }

    #[test]
    fn ipv6_with_extension_headers() {
        let mut out = Vec::new();
        let src = [0x20, 0x01, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let mut dst = src;
        dst[15] = 2;
        etherparse::PacketBuilder::ipv6(src, dst, 64).udp(5000, 6000).write(&mut out, &[9u8; 46]).unwrap();
        let mut d = Datagram::default();
        assert_eq!(decode(Link::Raw, &out, &mut d), Frame::Udp);
        assert_eq!(d.len, 46);
        assert_eq!(d.src.to_string(), "[2001:db8::1]:5000");
        // Insert a destination-options header (8 bytes) before UDP.
        let mut ext = out[..40].to_vec();
        ext[6] = 60;
        let plen = be16(&out, 4) + 8;
        ext[4..6].copy_from_slice(&plen.to_be_bytes());
        ext.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]);
        ext.extend_from_slice(&out[40..]);
        assert_eq!(decode(Link::Ipv6, &ext, &mut d), Frame::Udp);
        assert_eq!((d.len, d.dst.port), (46, 6000));
    }

    #[test]
    fn ethernet_vlan_sll_sll2_null() {
        let ip = v4_udp(&[3u8; 28]);
        let mut d = Datagram::default();
        let mut eth = vec![0u8; 12];
        eth.extend_from_slice(&[0x81, 0x00, 0x00, 0x05, 0x08, 0x00]);
        eth.extend_from_slice(&ip);
        assert_eq!(decode(Link::Ethernet, &eth, &mut d), Frame::Udp);
        assert_eq!(d.len, 28);
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&[0x08, 0x00]);
        sll.extend_from_slice(&ip);
        assert_eq!(decode(Link::Sll, &sll, &mut d), Frame::Udp);
        let mut sll2 = vec![0x08, 0x00];
        sll2.extend_from_slice(&[0u8; 18]);
        sll2.extend_from_slice(&ip);
        assert_eq!(decode(Link::Sll2, &sll2, &mut d), Frame::Udp);
        for fam in [2u32.to_le_bytes(), 2u32.to_be_bytes()] {
            let mut null = fam.to_vec();
            null.extend_from_slice(&ip);
            assert_eq!(decode(Link::Null, &null, &mut d), Frame::Udp);
        }
        let mut arp = vec![0u8; 12];
        arp.extend_from_slice(&[0x08, 0x06, 0, 0]);
        assert_eq!(decode(Link::Ethernet, &arp, &mut d), Frame::NotIp);
        assert_eq!(decode(Link::Unsupported(147), &ip, &mut d), Frame::UnsupportedLink);
    }
}
