//! The reader on hand-made captures: every link type, pcap and pcapng, both byte orders,
//! nanoseconds, IPv6, snapshot-cut frames, truncated files, garbage, non-captures, and the
//! merge of several vantage points with a datagram captured twice.

mod common;

use std::path::PathBuf;

use common::*;
use soplab_analyze::Error;
use soplab_analyze::capture::{CaptureFile, Datagram, Dedup, FileStats, Inputs, MergeStats};
use soplab_analyze::classify::{Kind, classify};

fn read(paths: &[PathBuf], dedup: Dedup) -> (Vec<Datagram>, Vec<FileStats>, MergeStats) {
    let mut inputs = Inputs::open(paths, dedup, 50_000).unwrap();
    let mut out = Vec::new();
    let mut d = Datagram::default();
    while inputs.next_datagram(&mut d) {
        out.push(d);
    }
    (out, inputs.file_stats(), inputs.stats.clone())
}

/// A keep-alive, a request and a 1-block response between two peers of the given family.
fn exchange(v6: bool) -> Vec<(i64, std::net::SocketAddr, std::net::SocketAddr, Vec<u8>)> {
    let (a, b) = if v6 {
        (addr("[2001:db8::1]:3908"), addr("[2001:db8::2]:3908"))
    } else {
        (addr("198.18.1.1:3908"), addr("198.18.1.2:3908"))
    };
    let t0 = 1_795_000_000_000_000i64;
    let mut v = vec![(t0, a, b, keepalive(1)), (t0 + 1_000, b, a, request(1, 9))];
    for (i, p) in video(2, 9, 1).into_iter().enumerate() {
        v.push((t0 + 2_000 + i as i64 * 10, a, b, p));
    }
    v
}

fn recs(linktype: u32, v6: bool) -> Vec<Rec> {
    exchange(v6).into_iter().map(|(ts, s, d, p)| Rec::new(ts, frame(linktype, &ip_udp(s, d, &p)))).collect()
}

fn check_exchange(got: &[Datagram], v6: bool) {
    let want = exchange(v6);
    assert_eq!(got.len(), want.len());
    for (g, (ts, s, d, p)) in got.iter().zip(&want) {
        assert_eq!(g.ts_us, *ts);
        assert_eq!(g.src.socket_addr(), *s);
        assert_eq!(g.dst.socket_addr(), *d);
        assert_eq!(g.len as usize, p.len());
        assert_eq!(&g.head[..usize::from(g.head_len)], &p[..usize::from(g.head_len)]);
    }
    let kinds: Vec<Kind> = got.iter().map(|g| classify(g.len)).collect();
    assert_eq!(&kinds[..3], &[Kind::KeepAlive, Kind::Request, Kind::VideoFull]);
    assert_eq!(*kinds.last().unwrap(), Kind::VideoTail);
}

#[test]
fn every_link_type_in_pcap() {
    let dir = TempDir::new("links");
    for (lt, v6) in [
        (1, false),
        (1, true),
        (113, false),
        (276, false),
        (276, true),
        (101, false),
        (101, true),
        (12, false),
        (228, false),
        (229, true),
        (0, false),
        (0, true),
        (108, false),
    ] {
        let p = dir.file(&format!("lt{lt}-{v6}.pcap"), &pcap(lt, &recs(lt, v6), false, false));
        let (got, stats, _) = read(&[p], Dedup::Off);
        check_exchange(&got, v6);
        assert_eq!(stats[0].link_types, vec![lt as i32]);
        assert_eq!((stats[0].records, stats[0].udp), (got.len() as u64, got.len() as u64), "link type {lt}");
    }
}

#[test]
fn big_endian_and_nanosecond_pcap() {
    let dir = TempDir::new("be-ns");
    for (be, ns) in [(true, false), (false, true), (true, true)] {
        let p = dir.file(&format!("{be}-{ns}.pcap"), &pcap(1, &recs(1, false), be, ns));
        let (got, _, _) = read(&[p], Dedup::Off);
        check_exchange(&got, false);
    }
}

#[test]
fn pcapng_with_two_interfaces_and_resolutions() {
    let dir = TempDir::new("ng");
    let eth = recs(1, false);
    let raw = recs(229, true);
    // Interface 0: Ethernet in microseconds; interface 1: raw IPv6 in nanoseconds.
    let mut packets: Vec<(u32, Rec)> = Vec::new();
    for r in eth {
        packets.push((0, r));
    }
    for r in raw {
        packets.push((1, Rec { ts_us: r.ts_us + 500, ..r }));
    }
    let p = dir.file("two.pcapng", &pcapng(&[(1, None), (229, Some(9))], &packets));
    let (got, stats, _) = read(&[p], Dedup::Off);
    assert_eq!(stats[0].format, Some(soplab_analyze::capture::Format::Pcapng));
    assert_eq!(stats[0].link_types, vec![1, 229]);
    let n = got.len() / 2;
    check_exchange(&got[..n], false);
    let v6: Vec<Datagram> = got[n..].iter().map(|d| Datagram { ts_us: d.ts_us - 500, ..*d }).collect();
    check_exchange(&v6, true);
}

#[test]
fn truncated_file_keeps_every_complete_record() {
    let dir = TempDir::new("trunc");
    let full = pcap(1, &recs(1, false), false, false);
    for cut in [full.len() - 1, full.len() - 700, full.len() - 1330] {
        let p = dir.file("t.pcap", &full[..cut]);
        let (got, stats, _) = read(&[p], Dedup::Off);
        assert!(stats[0].truncated, "cut at {cut}");
        assert_eq!(got.len() as u64, stats[0].records);
        assert!(got.len() < recs(1, false).len());
        assert!(!got.is_empty());
    }
    // A pcapng file cut inside a block.
    let ng = pcapng(&[(1, None)], &recs(1, false).into_iter().map(|r| (0, r)).collect::<Vec<_>>());
    let p = dir.file("t.pcapng", &ng[..ng.len() - 10]);
    let (got, stats, _) = read(&[p], Dedup::Off);
    assert!(stats[0].truncated);
    assert_eq!(got.len(), recs(1, false).len() - 1);
}

#[test]
fn garbage_between_records_is_skipped_and_counted() {
    let dir = TempDir::new("garbage");
    let rs = recs(1, false);
    let n = rs.len();
    let good = pcap(1, &rs, false, false);
    // Find the end of the second record and put garbage there.
    let r0 = 24 + 16 + rs[0].data.len();
    let r1 = r0 + 16 + rs[1].data.len();
    let mut bad = good[..r1].to_vec();
    bad.extend_from_slice(&[0xff; 37]);
    bad.extend_from_slice(&good[r1..]);
    let p = dir.file("g.pcap", &bad);
    let (got, stats, _) = read(&[p], Dedup::Off);
    assert_eq!(stats[0].garbage_records, 1);
    assert_eq!(stats[0].garbage_bytes, 37);
    assert_eq!(got.len(), n);
    check_exchange(&got, false);
    // A record header claiming a huge length.
    let mut huge = good[..r1].to_vec();
    huge.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, 0x7f]);
    huge.extend_from_slice(&good[r1..]);
    let p = dir.file("h.pcap", &huge);
    let (got, stats, _) = read(&[p], Dedup::Off);
    assert_eq!(stats[0].garbage_records, 1);
    assert_eq!(got.len(), n);
    // Garbage to the end of the file.
    let mut tail = good.clone();
    tail.extend_from_slice(&[0xab; 100]);
    let p = dir.file("tail.pcap", &tail);
    let (got, stats, _) = read(&[p], Dedup::Off);
    assert_eq!(got.len(), n);
    assert!(stats[0].garbage_bytes > 0 || stats[0].truncated);
    // pcapng: garbage between blocks.
    let ng = pcapng(&[(1, None)], &recs(1, false).into_iter().map(|r| (0, r)).collect::<Vec<_>>());
    let first_epb = 28 + 20; // SHB (28 bytes) + IDB without options (20 bytes)
    let mut bad = ng[..first_epb].to_vec();
    bad.extend_from_slice(&[0xee; 24]);
    bad.extend_from_slice(&ng[first_epb..]);
    let p = dir.file("g.pcapng", &bad);
    let (got, stats, _) = read(&[p], Dedup::Off);
    assert_eq!(got.len(), n);
    assert!(stats[0].garbage_records >= 1);
}

#[test]
fn snapshot_cut_fragments_and_other_protocols_are_counted() {
    let dir = TempDir::new("misc");
    let (a, b) = (addr("198.18.1.1:3908"), addr("198.18.1.2:3908"));
    let v = video(0, 1, 1);
    let mut records = vec![
        // Cut by snaplen 96: analysed, with the length from the UDP header.
        Rec::new(10, frame(1, &ip_udp(a, b, &v[0]))).cut(96),
        // Cut inside the IP header: unusable.
        Rec::new(20, frame(1, &ip_udp(a, b, &v[0]))).cut(20),
    ];
    // TCP.
    let mut tcp = Vec::new();
    etherparse::PacketBuilder::ipv4([198, 18, 1, 1], [198, 18, 1, 2], 64)
        .tcp(1, 2, 3, 4)
        .write(&mut tcp, &[0; 10])
        .unwrap();
    records.push(Rec::new(30, frame(1, &tcp)));
    // A later fragment of a UDP datagram.
    let mut frag = ip_udp(a, b, &v[1]);
    frag[6] = 0x00;
    frag[7] = 0xb9; // offset 185 * 8 bytes
    records.push(Rec::new(40, frame(1, &frag)));
    // ARP.
    let mut arp = vec![0xffu8; 12];
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.extend_from_slice(&[0; 28]);
    records.push(Rec::new(50, arp));
    let p = dir.file("m.pcap", &pcap(1, &records, false, false));
    let (got, stats, _) = read(&[p], Dedup::Off);
    let s = &stats[0];
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].len, got[0].cut), (1320, true));
    assert_eq!(classify(got[0].len), Kind::VideoFull);
    assert_eq!((s.records, s.udp, s.cut_payloads, s.cut_headers), (5, 1, 1, 1));
    assert_eq!((s.not_udp, s.ip_fragments, s.not_ip), (1, 1, 1));
    // An unknown link type: counted, not decoded.
    let p = dir.file("u.pcap", &pcap(147, &recs(1, false), false, false));
    let (got, stats, _) = read(&[p], Dedup::Off);
    assert!(got.is_empty());
    assert_eq!(stats[0].unsupported_link, stats[0].records);
}

#[test]
fn a_datagram_seen_at_two_vantage_points_counts_once() {
    let dir = TempDir::new("dedup");
    let (a, b, c) = (addr("198.18.1.1:3908"), addr("198.18.1.2:3908"), addr("198.18.1.3:3908"));
    let t0 = 1_795_000_000_000_000i64;
    let ab = ip_udp(a, b, &keepalive(5));
    // At a (sender): a->b, then c->a; at b (receiver, Linux cooked): a->b 80 us later, then
    // another a->b keep-alive with a new sequence number (not a copy) and an exact repeat of
    // the first one a second later (outside the window: counted again).
    let at_a = pcap(
        1,
        &[Rec::new(t0, frame(1, &ab)), Rec::new(t0 + 500, frame(1, &ip_udp(c, a, &keepalive(1))))],
        false,
        false,
    );
    // The receiver's copy has another IPv4 identification, as a capture whose IP headers are
    // written by the node itself (soplab's --self-capture) has: still the same datagram.
    let mut ab_renumbered = ab.clone();
    ab_renumbered[4..6].copy_from_slice(&[0x12, 0x34]);
    let at_b = pcap(
        113,
        &[
            Rec::new(t0 + 80, frame(113, &ab_renumbered)),
            Rec::new(t0 + 300, frame(113, &ip_udp(a, b, &keepalive(6)))),
            Rec::new(t0 + 1_000_000, frame(113, &ab)),
        ],
        false,
        false,
    );
    let pa = dir.file("a.pcap", &at_a);
    let pb = dir.file("b.pcap", &at_b);
    let (got, _, merge) = read(&[pa.clone(), pb.clone()], Dedup::Auto);
    assert!(merge.dedup);
    assert_eq!(merge.duplicates, 1);
    assert_eq!(merge.duplicates_per_input, vec![0, 1]);
    let times: Vec<i64> = got.iter().map(|d| d.ts_us - t0).collect();
    assert_eq!(times, vec![0, 300, 500, 1_000_000], "merged in time order, the copy at b dropped");
    let (got, _, merge) = read(&[pa, pb], Dedup::Off);
    assert!(!merge.dedup);
    assert_eq!(got.len(), 5);
}

#[test]
fn files_that_are_not_captures_get_a_clear_error() {
    let dir = TempDir::new("notcap");
    let text = dir.file("notes.txt", b"this is not a capture\n");
    let empty = dir.file("empty.pcap", b"");
    let short = dir.file("short.pcap", &[0xd4, 0xc3, 0xb2, 0xa1, 2, 0]);
    for (p, why) in [(&text, "no pcap or pcapng magic"), (&empty, "empty"), (&short, "header")] {
        match Inputs::open(std::slice::from_ref(p), Dedup::Auto, 50_000) {
            Err(e @ Error::NotACapture { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains("is not a packet capture") && msg.contains(why), "{msg}");
                assert!(msg.contains("tcpdump -w"), "the message says what to give instead: {msg}");
            }
            Err(e) => panic!("{}: wrong error {e}", p.display()),
            Ok(_) => panic!("{} accepted", p.display()),
        }
    }
    match Inputs::open(&[dir.0.join("missing.pcap")], Dedup::Auto, 50_000) {
        Err(e @ Error::Read { .. }) => assert!(e.to_string().contains("cannot read")),
        other => panic!("{:?}", other.err()),
    }
}

#[test]
fn random_bytes_after_a_valid_header_never_panic() {
    let dir = TempDir::new("fuzz");
    let mut x: u64 = 0x1234_5678_9abc_def1;
    for round in 0..200 {
        let mut bytes = pcap(1, &recs(1, false), false, false);
        let n = bytes.len();
        // Flip a few random bytes after the file header.
        for _ in 0..(1 + round % 8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = 24 + (x as usize % (n - 24));
            bytes[i] = (x >> 32) as u8;
        }
        let p = dir.file("f.pcap", &bytes);
        let (got, stats, _) = read(&[p], Dedup::Off);
        assert!(got.len() as u64 <= stats[0].records);
    }
}

#[test]
fn a_capture_in_memory_reads_as_its_file() {
    let dir = TempDir::new("memory");
    let bytes = pcapng(&[(1, None)], &recs(1, true).into_iter().map(|r| (0, r)).collect::<Vec<_>>());
    let p = dir.file("m.pcapng", &bytes);
    let (from_file, file_stats, _) = read(std::slice::from_ref(&p), Dedup::Off);
    let n = bytes.len() as u64;
    let mem = CaptureFile::from_reader(std::io::Cursor::new(bytes), &p, n, 0).unwrap();
    let mut inputs = Inputs::new(vec![mem], Dedup::Off, 50_000).unwrap();
    let mut from_memory = Vec::new();
    let mut d = Datagram::default();
    while inputs.next_datagram(&mut d) {
        from_memory.push(d);
    }
    check_exchange(&from_memory, true);
    assert_eq!(from_memory.len(), from_file.len());
    let (a, b) = (&inputs.file_stats()[0], &file_stats[0]);
    assert_eq!((a.records, a.udp, a.file_bytes, a.last_ts_us), (b.records, b.udp, b.file_bytes, b.last_ts_us));
    match CaptureFile::from_reader(std::io::Cursor::new(b"not a capture".to_vec()), &p, 13, 0) {
        Err(e @ Error::NotACapture { .. }) => assert!(e.to_string().contains("no pcap or pcapng magic"), "{e}"),
        other => panic!("{:?}", other.err()),
    }
}
