//! End to end against real tools: the `trace` example's pcap as `tcpdump` and nDPI's
//! `ndpiReader` see it, and a hand-written keep-alive-only capture as nDPI sees it.
//!
//! A missing tool skips its part with a message, unless `SOPLAB_REQUIRE_TOOLS=1` is set, in which
//! case the test fails (for CI machines that are meant to have both installed).

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pcap_file::DataLink;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use soplab_testkit::{TempDir, tool_available, udp_frame};
use soplab_wire::video::{FRAGMENT_PAYLOAD, VIDEO_HEADER_LEN};
use soplab_wire::{BLOCK_LEN, BufferMap, Message, Repr, size};

/// A scratch pcap file, `<what>.pcap`, in a directory removed when dropped.
fn temp_pcap(what: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new(&format!("wire-{what}"));
    let file = dir.join(format!("{what}.pcap"));
    (dir, file)
}

/// Runs a command, failing the test with its output if it does not succeed.
fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// One packet as tcpdump prints it.
#[derive(Debug)]
struct Line {
    src: SocketAddrV4,
    dst: SocketAddrV4,
    len: usize,
}

/// `a.b.c.d.port` as tcpdump writes it with `-n`.
fn endpoint(s: &str) -> SocketAddrV4 {
    let (ip, port) = s.rsplit_once('.').unwrap_or_else(|| panic!("bad endpoint {s:?}"));
    SocketAddrV4::new(ip.parse().unwrap_or_else(|e| panic!("bad IP in {s:?}: {e}")), port.parse().expect("port"))
}

/// Parses `HH:MM:SS.ffffff IP A.port > B.port: UDP, length N` lines.
fn tcpdump(tcpdump: &Path, file: &Path) -> Vec<Line> {
    let out = run(Command::new(tcpdump).arg("-n").arg("-r").arg(file));
    out.lines()
        .map(|l| {
            let rest = l.split_once(" IP ").unwrap_or_else(|| panic!("not an IPv4 line: {l:?}")).1;
            let (src, rest) = rest.split_once(" > ").expect("' > '");
            let (dst, rest) = rest.split_once(": ").expect("': '");
            let len = rest.strip_prefix("UDP, length ").unwrap_or_else(|| panic!("not UDP: {l:?}"));
            Line { src: endpoint(src), dst: endpoint(dst), len: len.parse().expect("length") }
        })
        .collect()
}

/// The protocol names of ndpiReader's "Detected protocols:" section, with their flow counts.
fn ndpi_protocols(ndpi: &Path, file: &Path) -> Vec<(String, u64)> {
    let out = run(Command::new(ndpi).arg("-i").arg(file));
    let mut lines = out.lines().skip_while(|l| l.trim() != "Detected protocols:");
    assert!(lines.next().is_some(), "no 'Detected protocols:' section in ndpiReader output:\n{out}");
    lines
        .take_while(|l| !l.trim().is_empty())
        .map(|l| {
            let (name, rest) = l.split_once("packets:").unwrap_or_else(|| panic!("unexpected line {l:?}"));
            let flows = rest.split_once("flows:").expect("flows:").1.trim();
            (name.trim().to_owned(), flows.parse().expect("flow count"))
        })
        .collect()
}

fn in_benchmark_net(a: &SocketAddrV4) -> bool {
    // 198.18.0.0/15: 198.18.x.x and 198.19.x.x.
    let o = a.ip().octets();
    o[0] == 198 && o[1] & 0xfe == 18
}

/// Packet sizes the example must produce, derived from the constants: HELLO, reply, ACK, ten
/// keep-alives each way, a request for 3 blocks, then the response's full packets and tail.
fn expected_sizes() -> Vec<usize> {
    let response = 3 * BLOCK_LEN;
    let full = response / FRAGMENT_PAYLOAD;
    let tail = VIDEO_HEADER_LEN + response - full * FRAGMENT_PAYLOAD;
    // 30720 = 23 x 1295 + 935: 23 full packets and a 960-byte tail.
    assert_eq!((full, tail), (23, 960));
    let mut v = vec![size::HELLO, size::HELLO_REPLY, size::ACK];
    v.extend(std::iter::repeat_n(size::KEEPALIVE, 20));
    v.push(size::REQUEST);
    v.extend(std::iter::repeat_n(size::VIDEO_MAX, full));
    v.push(tail);
    assert_eq!(v[..3], [52, 80, 28]);
    v
}

#[test]
fn trace_example_as_tcpdump_and_ndpi_see_it() {
    let (_dir, pcap) = temp_pcap("trace");
    let out = Command::new(env!("CARGO"))
        .args(["run", "-q", "-p", "soplab-wire", "--example", "trace", "--"])
        .arg(&pcap)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cannot run cargo");
    assert!(out.status.success(), "trace example failed:\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(pcap.metadata().is_ok_and(|m| m.len() > 24), "no pcap written");

    if let Some(tcpdump_path) = tool_available("tcpdump", "tcpdump") {
        let lines = tcpdump(&tcpdump_path, &pcap);
        let sizes: Vec<usize> = lines.iter().map(|l| l.len).collect();
        assert_eq!(sizes, expected_sizes());
        assert_eq!(sizes.len(), 3 + 20 + 1 + 24);
        for l in &lines {
            assert!(in_benchmark_net(&l.src) && in_benchmark_net(&l.dst), "{l:?} outside 198.18.0.0/15");
        }
        // Directions: A opens, B replies, A acknowledges; keep-alives alternate A, B; A requests
        // and B sends the video.
        let a = lines[0].src;
        let b = lines[0].dst;
        assert_ne!(a, b);
        let from_a: Vec<bool> = lines.iter().map(|l| l.src == a).collect();
        for l in &lines {
            assert!((l.src, l.dst) == (a, b) || (l.src, l.dst) == (b, a), "{l:?} is not between {a} and {b}");
        }
        assert_eq!(&from_a[..3], &[true, false, true]);
        assert!((0..20).all(|k| from_a[3 + k] == (k % 2 == 0)));
        assert!(from_a[23]);
        assert!(from_a[24..].iter().all(|&x| !x));
    }

    if let Some(ndpi) = tool_available("ndpiReader", "libndpi-bin") {
        let protos = ndpi_protocols(&ndpi, &pcap);
        assert_eq!(protos.len(), 1, "nDPI detected {protos:?}");
        assert!(protos[0].0.eq_ignore_ascii_case("sopcast"), "nDPI detected {protos:?}");
        assert_eq!(protos[0].1, 1, "one flow");
    }
}

/// A flow of keep-alives only (no HELLO, reply or ACK), as a capture started in the middle of a
/// link would show it.
///
/// Finding: nDPI 4.2 labels it Sopcast. Its `sopcast.c` matches a 42-byte UDP payload starting
/// `00 02 01 07 03` with `06 01 00 22 00 00` at bytes 8..14 on its own (the keep-alive rule),
/// independently of the link-opening packets, so the first keep-alive of either direction is
/// enough.
#[test]
fn keepalive_only_flow_as_ndpi_sees_it() {
    let (_dir, pcap) = temp_pcap("keepalives");
    let a = SocketAddrV4::new(Ipv4Addr::new(198, 18, 7, 1), 4100);
    let b = SocketAddrV4::new(Ipv4Addr::new(198, 19, 7, 2), 4200);
    let header = PcapHeader { datalink: DataLink::ETHERNET, ..Default::default() };
    let mut w = PcapWriter::with_header(File::create(&pcap).expect("create pcap"), header).expect("pcap header");
    let map_a = BufferMap::from_fn(500, |id| id % 3 != 0);
    let map_b = BufferMap::empty();
    for i in 0..10u16 {
        let t = Duration::from_secs(1_800_000_000 + u64::from(i));
        for (from_a, dt) in [(true, 0), (false, 7)] {
            let (src, dst, map) = if from_a { (a, b, map_a) } else { (b, a, map_b) };
            let payload = Repr::new(u32::from(i) + 100, Message::KeepAlive(map)).to_vec();
            assert_eq!(payload.len(), 42);
            let frame = udp_frame(src, dst, &payload, 2 * i + u16::from(!from_a));
            let t = t + Duration::from_millis(dt);
            w.write_packet(&PcapPacket::new(t, frame.len() as u32, &frame)).expect("write packet");
        }
    }
    drop(w);

    if let Some(tcpdump_path) = tool_available("tcpdump", "tcpdump") {
        let lines = tcpdump(&tcpdump_path, &pcap);
        assert_eq!(lines.len(), 20);
        assert!(lines.iter().all(|l| l.len == 42), "{lines:?}");
        assert!(lines.iter().all(|l| in_benchmark_net(&l.src) && in_benchmark_net(&l.dst)));
    }
    if let Some(ndpi) = tool_available("ndpiReader", "libndpi-bin") {
        let protos = ndpi_protocols(&ndpi, &pcap);
        assert_eq!(protos.len(), 1, "nDPI detected {protos:?}");
        assert!(protos[0].0.eq_ignore_ascii_case("sopcast"), "keep-alives alone: nDPI detected {protos:?}");
        assert_eq!(protos[0].1, 1, "one flow");
    }
}
