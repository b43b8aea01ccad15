//! Hand-made captures for the tests: frames of every link type around soplab datagrams, and
//! pcap (either byte order, micro- or nanoseconds) and pcapng writers.

#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use soplab_wire::video::segment;
use soplab_wire::{BLOCK_LEN, BufferMap, Message, Repr, Request};

/// A temporary directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(what: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("soplab-analyze-{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn keepalive(seq: u32) -> Vec<u8> {
    let r = Repr { seq, message: Message::KeepAlive(BufferMap::empty()) };
    let mut b = vec![0u8; r.buffer_len()];
    r.emit(&mut b);
    b
}

pub fn request(seq: u32, id: u32) -> Vec<u8> {
    let r = Repr {
        seq,
        message: Message::Request(Request { request: id, first_block: 0, count: 1, channel: 1, token: 0 }),
    };
    let mut b = vec![0u8; r.buffer_len()];
    r.emit(&mut b);
    b
}

/// The packets of a response of `n` blocks.
pub fn video(seq: u32, id: u32, n: usize) -> Vec<Vec<u8>> {
    let data = vec![7u8; n * BLOCK_LEN];
    segment(id, 0, &data)
        .unwrap()
        .enumerate()
        .map(|(i, v)| {
            let r = Repr { seq: seq + i as u32, message: Message::Video(v) };
            let mut b = vec![0u8; r.buffer_len()];
            r.emit(&mut b);
            b
        })
        .collect()
}

/// An IP packet (v4 or v6 after the addresses) carrying UDP `payload`.
pub fn ip_udp(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let b = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => etherparse::PacketBuilder::ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => etherparse::PacketBuilder::ipv6(s.octets(), d.octets(), 64),
        _ => panic!("mixed families"),
    };
    b.udp(src.port(), dst.port()).write(&mut out, payload).unwrap();
    out
}

fn ethertype(ip: &[u8]) -> [u8; 2] {
    if ip[0] >> 4 == 6 { [0x86, 0xdd] } else { [0x08, 0x00] }
}

/// Wraps an IP packet in the link header of `linktype`.
pub fn frame(linktype: u32, ip: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    match linktype {
        1 => {
            f.extend_from_slice(&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2]);
            f.extend_from_slice(&ethertype(ip));
        }
        113 => {
            f.extend_from_slice(&[0, 4, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
            f.extend_from_slice(&ethertype(ip));
        }
        276 => {
            f.extend_from_slice(&ethertype(ip));
            f.extend_from_slice(&[0, 0, 0, 0, 0, 3, 0, 1, 4, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
        }
        0 => f.extend_from_slice(&(if ip[0] >> 4 == 6 { 10u32 } else { 2u32 }).to_le_bytes()),
        108 => f.extend_from_slice(&(if ip[0] >> 4 == 6 { 24u32 } else { 2u32 }).to_be_bytes()),
        101 | 12 | 228 | 229 => {}
        other => panic!("no framing for link type {other}"),
    }
    f.extend_from_slice(ip);
    f
}

/// One record: time in microseconds, captured bytes, original length.
pub struct Rec {
    pub ts_us: i64,
    pub data: Vec<u8>,
    pub orig: u32,
}

impl Rec {
    pub fn new(ts_us: i64, data: Vec<u8>) -> Rec {
        let orig = data.len() as u32;
        Rec { ts_us, data, orig }
    }
    /// Keep only the first `n` bytes (snapshot length).
    pub fn cut(mut self, n: usize) -> Rec {
        self.data.truncate(n);
        self
    }
}

/// A legacy pcap file.
pub fn pcap(linktype: u32, recs: &[Rec], big_endian: bool, nanos: bool) -> Vec<u8> {
    let w32 =
        |v: &mut Vec<u8>, x: u32| v.extend_from_slice(&if big_endian { x.to_be_bytes() } else { x.to_le_bytes() });
    let w16 =
        |v: &mut Vec<u8>, x: u16| v.extend_from_slice(&if big_endian { x.to_be_bytes() } else { x.to_le_bytes() });
    let mut v = Vec::new();
    w32(&mut v, if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 });
    w16(&mut v, 2);
    w16(&mut v, 4);
    w32(&mut v, 0);
    w32(&mut v, 0);
    w32(&mut v, 262_144);
    w32(&mut v, linktype);
    for r in recs {
        w32(&mut v, (r.ts_us / 1_000_000) as u32);
        let frac = (r.ts_us % 1_000_000) as u32;
        w32(&mut v, if nanos { frac * 1000 } else { frac });
        w32(&mut v, r.data.len() as u32);
        w32(&mut v, r.orig);
        v.extend_from_slice(&r.data);
    }
    v
}

fn pad4(v: &mut Vec<u8>) {
    while !v.len().is_multiple_of(4) {
        v.push(0);
    }
}

fn block(t: u32, body: &[u8]) -> Vec<u8> {
    let len = (12 + body.len()) as u32;
    let mut v = Vec::new();
    v.extend_from_slice(&t.to_le_bytes());
    v.extend_from_slice(&len.to_le_bytes());
    v.extend_from_slice(body);
    v.extend_from_slice(&len.to_le_bytes());
    v
}

/// One pcapng interface: link type, and the if_tsresol and if_tsoffset options if given.
#[derive(Clone, Copy)]
pub struct NgIface {
    pub linktype: u16,
    pub tsresol: Option<u8>,
    pub tsoffset: Option<i64>,
}

/// A pcapng file with interfaces (link type, if_tsresol) and packets (interface, record).
pub fn pcapng(ifaces: &[(u16, Option<u8>)], packets: &[(u32, Rec)]) -> Vec<u8> {
    let units: Vec<u128> = ifaces.iter().map(|&(_, res)| 10u128.pow(u32::from(res.unwrap_or(6)))).collect();
    let ifaces: Vec<NgIface> =
        ifaces.iter().map(|&(linktype, tsresol)| NgIface { linktype, tsresol, tsoffset: None }).collect();
    let raw: Vec<(u32, u64, &[u8], u32)> = packets
        .iter()
        .map(|(i, r)| (*i, (r.ts_us as u128 * units[*i as usize] / 1_000_000) as u64, &r.data[..], r.orig))
        .collect();
    pcapng_raw(&ifaces, &raw)
}

/// A pcapng file with interfaces and packets (interface, raw timestamp in the interface's
/// units, captured bytes, original length).
pub fn pcapng_raw(ifaces: &[NgIface], packets: &[(u32, u64, &[u8], u32)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut shb = Vec::new();
    shb.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
    shb.extend_from_slice(&1u16.to_le_bytes());
    shb.extend_from_slice(&0u16.to_le_bytes());
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    out.extend(block(0x0a0d_0d0a, &shb));
    for i in ifaces {
        let mut idb = Vec::new();
        idb.extend_from_slice(&i.linktype.to_le_bytes());
        idb.extend_from_slice(&0u16.to_le_bytes());
        idb.extend_from_slice(&262_144u32.to_le_bytes());
        if let Some(r) = i.tsresol {
            idb.extend_from_slice(&9u16.to_le_bytes());
            idb.extend_from_slice(&1u16.to_le_bytes());
            idb.extend_from_slice(&[r, 0, 0, 0]);
        }
        if let Some(o) = i.tsoffset {
            idb.extend_from_slice(&14u16.to_le_bytes());
            idb.extend_from_slice(&8u16.to_le_bytes());
            idb.extend_from_slice(&o.to_le_bytes());
        }
        if i.tsresol.is_some() || i.tsoffset.is_some() {
            idb.extend_from_slice(&[0, 0, 0, 0]);
        }
        out.extend(block(1, &idb));
    }
    for &(i, ts, data, orig) in packets {
        let mut epb = Vec::new();
        epb.extend_from_slice(&i.to_le_bytes());
        epb.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(ts as u32).to_le_bytes());
        epb.extend_from_slice(&(data.len() as u32).to_le_bytes());
        epb.extend_from_slice(&orig.to_le_bytes());
        epb.extend_from_slice(data);
        pad4(&mut epb);
        out.extend(block(6, &epb));
    }
    out
}

/// Runs the test `name` of this test binary again, alone, in a child process limited to `mb`
/// MiB of address space and `secs` seconds of wall time, and fails unless it succeeds. Returns
/// true in the child, which then does the work (and false in the parent, which is done).
pub fn bounded_child(name: &str, mb: u64, secs: u64) -> bool {
    const CHILD: &str = "SOPLAB_ANALYZE_BOUNDED_CHILD";
    if std::env::var_os(CHILD).is_some() {
        return true;
    }
    let exe = std::env::current_exe().unwrap();
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {}; exec \"$0\" \"$@\"", mb * 1024))
        .arg(&exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{name} under {mb} MiB of address space: {status}");
            return false;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{name} did not finish within {secs} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A small synthetic swarm with a known overlay, 30 s long: tracker T, source S, peers P1..P4.
/// Every peer sends every other peer a keep-alive each second; S and P1, P2 exchange
/// keep-alives too. P1 and P2 request one block a second from S, P3 from P1, P4 from P2, and
/// get it (8 video packets, 10,440 payload bytes). So G_N is complete among the peers (out-degree
/// 3), G_V is P1 -> P3 and P2 -> P4, and the source has two children.
pub struct Swarm {
    pub t0: i64,
    pub seconds: i64,
    /// Leave out keep-alives from `.0` to `.1` (peer numbers 1..=4) during `[.2, .3)` seconds.
    pub drop_keepalives: Option<(usize, usize, i64, i64)>,
    /// Video from P3 to P4 the truth knows nothing about, at this second.
    pub unexplained_video_at: Option<i64>,
}

pub const TRACKER: &str = "198.18.0.1:3900";
pub const SOURCE: &str = "198.18.0.2:3901";

pub fn peer(i: usize) -> SocketAddr {
    addr(&format!("198.18.1.{i}:3908"))
}

impl Swarm {
    pub fn new() -> Swarm {
        Swarm { t0: 1_795_000_000_000_000, seconds: 30, drop_keepalives: None, unexplained_video_at: None }
    }

    /// The datagrams: (time, from, to, payload).
    pub fn datagrams(&self) -> Vec<(i64, SocketAddr, SocketAddr, Vec<u8>)> {
        let mut v = Vec::new();
        self.for_each_datagram(|ts, s, d, p| v.push((ts, s, d, p.to_vec())));
        v
    }

    /// The datagrams in time order, one second at a time (a long swarm need not be held).
    pub fn for_each_datagram(&self, mut f: impl FnMut(i64, SocketAddr, SocketAddr, &[u8])) {
        let t = addr(TRACKER);
        let t0 = self.t0;
        for i in 1..=4 {
            let mut reg = vec![0u8; 20];
            reg[..4].copy_from_slice(&[0x00, 0x20, 0x01, 0x07]);
            f(t0 + 1_000 * i as i64, peer(i), t, &reg);
            let mut list = vec![0u8; 21 + 6 * 4];
            list[..4].copy_from_slice(&[0x00, 0x22, 0x01, 0x07]);
            f(t0 + 1_000 * i as i64 + 200, t, peer(i), &list);
        }
        let mut seq = 0u32;
        for sec in 0..self.seconds {
            let mut v = self.second(sec, &mut seq);
            v.sort_by_key(|d| d.0);
            for (ts, s, d, p) in &v {
                f(*ts, *s, *d, p);
            }
        }
    }

    /// The datagrams of second `sec` (all within it), unsorted.
    fn second(&self, sec: i64, seq: &mut u32) -> Vec<(i64, SocketAddr, SocketAddr, Vec<u8>)> {
        let s = addr(SOURCE);
        let mut v = Vec::new();
        let base = self.t0 + sec * 1_000_000 + 50_000;
        for a in 1..=4usize {
            for b in 1..=4usize {
                if a == b {
                    continue;
                }
                let at = base + (a * 10 + b) as i64 * 1_000;
                if let Some((x, y, from, to)) = self.drop_keepalives
                    && (x, y) == (a, b)
                    && (from..to).contains(&sec)
                {
                    continue;
                }
                *seq += 1;
                v.push((at, peer(a), peer(b), keepalive(*seq)));
            }
        }
        for p in [1, 2] {
            v.push((base + 60_000 + p as i64, s, peer(p), keepalive(sec as u32)));
            v.push((base + 61_000 + p as i64, peer(p), s, keepalive(sec as u32)));
        }
        // Requests and responses: (parent, child) with the request id = second.
        let flows: [(SocketAddr, SocketAddr); 4] = [(s, peer(1)), (s, peer(2)), (peer(1), peer(3)), (peer(2), peer(4))];
        for (f, (parent, child)) in flows.iter().enumerate() {
            let at = base + 100_000 + f as i64 * 20_000;
            v.push((at, *child, *parent, request(sec as u32, sec as u32)));
            for (i, pkt) in video(sec as u32 * 8, sec as u32, 1).into_iter().enumerate() {
                v.push((at + 1_000 + i as i64 * 100, *parent, *child, pkt));
            }
        }
        if self.unexplained_video_at == Some(sec) {
            for (i, pkt) in video(0, 999, 1).into_iter().enumerate() {
                v.push((base + 500_000 + i as i64 * 100, peer(3), peer(4), pkt));
            }
        }
        v
    }

    /// An Ethernet pcap of the datagrams.
    pub fn pcap(&self) -> Vec<u8> {
        let recs: Vec<Rec> =
            self.datagrams().into_iter().map(|(ts, s, d, p)| Rec::new(ts, frame(1, &ip_udp(s, d, &p)))).collect();
        pcap(1, &recs, false, false)
    }

    /// Ground-truth files (name, lines) matching the datagrams (without the dropped and the
    /// unexplained ones: the truth is what the daemons did).
    pub fn truth(&self) -> Vec<(String, Vec<String>)> {
        let t0 = self.t0;
        let end = t0 + self.seconds * 1_000_000;
        let line = |ts: i64, node: SocketAddr, rest: &str| format!("{{\"ts_us\":{ts},\"node\":\"{node}\",{rest}}}");
        let mut files = Vec::new();
        files.push((
            "tracker.jsonl".to_string(),
            vec![line(
                t0 + 1_000,
                addr(TRACKER),
                &format!("\"event\":\"tracker_register\",\"peer\":\"{}\",\"channel\":1,\"new\":true", peer(1)),
            )],
        ));
        let s = addr(SOURCE);
        let mut src = vec![line(t0, s, "\"event\":\"session_start\",\"role\":\"source\"")];
        for p in [1, 2] {
            src.push(line(t0, s, &format!("\"event\":\"neighbor_up\",\"peer\":\"{}\",\"initiator\":false", peer(p))));
        }
        let mut peers: Vec<Vec<String>> = (1..=4)
            .map(|i| {
                let mut l = vec![line(t0, peer(i), "\"event\":\"session_start\",\"role\":\"peer\"")];
                for j in 1..=4 {
                    if i != j {
                        l.push(line(
                            t0,
                            peer(i),
                            &format!("\"event\":\"neighbor_up\",\"peer\":\"{}\",\"initiator\":true", peer(j)),
                        ));
                    }
                }
                if i <= 2 {
                    l.push(line(
                        t0,
                        peer(i),
                        &format!("\"event\":\"neighbor_up\",\"peer\":\"{s}\",\"initiator\":true"),
                    ));
                }
                l
            })
            .collect();
        for sec in 0..self.seconds {
            let base = t0 + sec * 1_000_000 + 50_000;
            let flows: [(Option<usize>, usize); 4] = [(None, 1), (None, 2), (Some(1), 3), (Some(2), 4)];
            for (f, (parent, child)) in flows.iter().enumerate() {
                let at = base + 100_000 + f as i64 * 20_000;
                let paddr = parent.map(peer).unwrap_or(s);
                peers[child - 1].push(line(
                    at,
                    peer(*child),
                    &format!("\"event\":\"request_sent\",\"parent\":\"{paddr}\",\"request\":{sec},\"first_block\":0,\"count\":1"),
                ));
                let sent = line(
                    at + 1_000 + 7 * 100,
                    paddr,
                    &format!(
                        "\"event\":\"response_sent\",\"child\":\"{}\",\"request\":{sec},\"first_block\":0,\"count\":1,\"bytes\":10240,\"packets\":8",
                        peer(*child)
                    ),
                );
                match parent {
                    Some(p) => peers[p - 1].push(sent),
                    None => src.push(sent),
                }
                peers[child - 1].push(line(
                    at + 2_000,
                    peer(*child),
                    &format!("\"event\":\"response_received\",\"parent\":\"{paddr}\",\"request\":{sec},\"first_block\":0,\"count\":1,\"bytes\":10240"),
                ));
            }
        }
        src.push(line(end, s, "\"event\":\"session_end\",\"graceful\":true"));
        files.push(("source.jsonl".to_string(), src));
        for (i, mut l) in peers.into_iter().enumerate() {
            l.sort_by_key(|x| x[9..25].to_string());
            l.push(line(end, peer(i + 1), "\"event\":\"session_end\",\"graceful\":true"));
            files.push((format!("peer-198.18.1.{}-3908.jsonl", i + 1), l));
        }
        files
    }

    /// A run directory: pcap/bridge.pcap and truth/.
    pub fn run_dir(&self, dir: &TempDir) -> PathBuf {
        dir.file("pcap/bridge.pcap", &self.pcap());
        for (name, lines) in self.truth() {
            dir.file(&format!("truth/{name}"), (lines.join("\n") + "\n").as_bytes());
        }
        dir.0.clone()
    }
}

impl Default for Swarm {
    fn default() -> Swarm {
        Swarm::new()
    }
}
