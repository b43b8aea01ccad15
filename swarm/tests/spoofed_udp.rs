//! Spoofed and hostile datagrams against a real `soplab source` daemon over UDP on loopback
//! (issue 11). The test plays a neighbour, and an off-path attacker sending from that
//! neighbour's address (on loopback, the same socket: the daemon cannot tell them apart, and
//! the answers go to the neighbour either way), then strangers at other addresses:
//!
//! - a 16-block request from the neighbour's address without the link's token gets no video
//!   (the same request with the token gets 127 packets, 167,015 bytes, as the truth says);
//! - a HELLO from the neighbour's address is answered (80 bytes) and ends nothing: the link
//!   keeps its token and the truth has no `neighbor_down`;
//! - a refusal (wrong channel) carries no peer list;
//! - 40 addresses re-sending HELLOs every 2.5 s hold no slot: a new neighbour still gets in;
//! - each stranger gets back at most three times the bytes it sent.
//!
//! Addresses 127.88.X.y, X from the process id: y = 150 (tracker, absent), 151 (source), 152
//! and 153 (neighbours), 160.. (strangers).

use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use soplab_peer::PeerStats;
use soplab_rundir::truth::{DropReason, Event};
use soplab_testkit::{Guard, TempDir, serial, test_ip, truth_lines};
use soplab_wire::{
    BufferMap, Hello, HelloReply, LinkAck, LinkStatus, Message, PeerList, Repr, Request, Role, link_token,
};

const CHANNEL: u32 = 1;

fn addr(y: u8, port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(test_ip(y), port))
}

fn send(s: &UdpSocket, to: SocketAddr, m: Message<'_>) -> usize {
    let d = Repr::new(0, m).to_vec();
    s.send_to(&d, to).expect("send on loopback")
}

/// Every datagram `s` receives within `d`.
fn receive_for(s: &UdpSocket, d: Duration) -> Vec<Vec<u8>> {
    let end = Instant::now() + d;
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while let Some(left) = end.checked_duration_since(Instant::now()).filter(|l| !l.is_zero()) {
        s.set_read_timeout(Some(left)).unwrap();
        match s.recv_from(&mut buf) {
            Ok((n, _)) => got.push(buf[..n].to_vec()),
            Err(_) => break,
        }
    }
    got
}

fn hello(nonce: u32, channel: u32) -> Message<'static> {
    Message::Hello(Hello { role: Role::Peer, nonce, channel, listen_port: 5000, newest: None })
}

fn replies(got: &[Vec<u8>]) -> Vec<HelloReply> {
    got.iter()
        .filter_map(|d| match Repr::parse(d).map(|r| r.message) {
            Ok(Message::HelloReply(r)) => Some(r),
            _ => None,
        })
        .collect()
}

/// Bytes of video answering request `id` among `got`, and the newest block announced.
fn video_for(got: &[Vec<u8>], id: u32) -> (usize, usize) {
    let mut bytes = 0;
    let mut packets = 0;
    for d in got {
        if let Ok(Message::Video(v)) = Repr::parse(d).map(|r| r.message)
            && v.request == id
        {
            bytes += d.len();
            packets += 1;
        }
    }
    (bytes, packets)
}

fn newest(got: &[Vec<u8>]) -> Option<u32> {
    got.iter()
        .filter_map(|d| match Repr::parse(d).map(|r| r.message) {
            Ok(Message::KeepAlive(m)) => m.newest(),
            _ => None,
        })
        .max()
}

/// A neighbour the test plays: HELLO, reply, ACK; then keep-alives and requests.
struct Neighbour {
    sock: UdpSocket,
    to: SocketAddr,
    token: u32,
}

impl Neighbour {
    fn link(y: u8, to: SocketAddr, nonce: u32) -> Neighbour {
        let sock = UdpSocket::bind(addr(y, 5000)).expect("bind a loopback address");
        send(&sock, to, hello(nonce, CHANNEL));
        let r = replies(&receive_for(&sock, Duration::from_millis(500)));
        assert_eq!(r.len(), 1, "one reply to the HELLO");
        assert_eq!((r[0].ack.status, r[0].ack.echo), (LinkStatus::Accepted, nonce));
        let ack = LinkAck { status: LinkStatus::Accepted, echo: r[0].ack.nonce, nonce, channel: CHANNEL };
        send(&sock, to, Message::Ack(ack));
        Neighbour { sock, to, token: link_token(nonce, r[0].ack.nonce) }
    }

    /// Sends a keep-alive and returns what came within `d`.
    fn keepalive_and_listen(&self, d: Duration) -> Vec<Vec<u8>> {
        send(&self.sock, self.to, Message::KeepAlive(BufferMap::empty()));
        receive_for(&self.sock, d)
    }

    fn request(&self, id: u32, first_block: u32, token: u32) -> usize {
        send(
            &self.sock,
            self.to,
            Message::Request(Request { request: id, first_block, count: 16, channel: CHANNEL, token }),
        )
    }
}

fn wait_bound(log: &Path, what: SocketAddr, guard: &mut Guard) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(log).unwrap_or_default().contains(&what.to_string()) {
        assert!(guard.is_running() && Instant::now() < deadline, "the source did not bind {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn spoofed_datagrams_against_a_real_source() {
    let _one = serial();
    let dir = TempDir::new("spoofed-udp");
    let (truth, stats, log) = (dir.join("source.jsonl"), dir.join("source.stats.json"), dir.join("source.stderr"));
    let source = addr(151, 3901);
    let mut guard = Guard::spawn(
        "soplab source",
        Command::new(env!("CARGO_BIN_EXE_soplab"))
            .args(["source", "--listen", &source.to_string(), "--tracker", &addr(150, 3900).to_string()])
            .args(["--synthetic-seed", "3", "--bitrate", "2M", "--duration", "20s"])
            .arg("--truth")
            .arg(&truth)
            .arg("--stats")
            .arg(&stats)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap()),
    );
    wait_bound(&log, source, &mut guard);

    // A real neighbour, and what the source announces to it.
    let n = Neighbour::link(152, source, 0x0123_4567);
    let mut top = None;
    for _ in 0..20 {
        top = newest(&n.keepalive_and_listen(Duration::from_millis(300))).filter(|b| *b >= 40).or(top);
        if top.is_some() {
            break;
        }
    }
    let first = top.expect("the source announced 40 blocks") - 30;

    // A request spoofed from the neighbour's address: the token is not known, and the
    // attacker sends zeros there (all a request carried before the token).
    let sent = n.request(0xdead_0001, first, u32::from(n.token == 0));
    let (spoofed, _) = video_for(&n.keepalive_and_listen(Duration::from_millis(1500)), 0xdead_0001);
    eprintln!("spoofed request: {sent} bytes in, {spoofed} bytes of video out");
    assert_eq!(spoofed, 0, "the source served a spoofed request");
    // The neighbour's own request is served (whole, says the truth below; the socket may
    // not keep all 127 packets of a burst).
    n.request(0xbeef_0002, first, n.token);
    let (real, _) = video_for(&n.keepalive_and_listen(Duration::from_millis(1500)), 0xbeef_0002);
    assert!(real > 0, "the neighbour's own request got nothing");

    // A HELLO from the neighbour's address: answered, 80 bytes, and the link stays.
    let sent = send(&n.sock, source, hello(0x7777, CHANNEL));
    let got = n.keepalive_and_listen(Duration::from_millis(500));
    let r = replies(&got);
    assert_eq!(r.len(), 1);
    assert_eq!((sent, Repr::new(0, Message::HelloReply(r[0])).buffer_len()), (52, 80));
    n.request(0xbeef_0003, first, n.token);
    let (after, _) = video_for(&n.keepalive_and_listen(Duration::from_millis(1500)), 0xbeef_0003);
    assert!(after > 0, "the link and its token did not survive the HELLO");
    // A refusal carries no peer list, though the source has a neighbour to tell of.
    let stranger = UdpSocket::bind(addr(160, 5000)).unwrap();
    send(&stranger, source, hello(1, CHANNEL + 1));
    let r = replies(&receive_for(&stranger, Duration::from_millis(500)));
    assert_eq!((r.len(), r[0].ack.status, r[0].peers.len()), (1, LinkStatus::WrongChannel, 0));

    // 40 addresses re-sending HELLOs every 2.5 s, never completing; meanwhile a new
    // neighbour gets in. Each gets back at most three times what it sent.
    let flood: Vec<UdpSocket> = (0..40).map(|i| UdpSocket::bind(addr(170 + i, 5000)).unwrap()).collect();
    let mut flood_in = vec![0usize; flood.len()];
    let mut flood_out = vec![0usize; flood.len()];
    for round in 0..3u32 {
        for (i, s) in flood.iter().enumerate() {
            flood_in[i] += send(s, source, hello(round << 8 | i as u32, CHANNEL));
        }
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(2500) {
            n.keepalive_and_listen(Duration::from_millis(500));
        }
        for (i, s) in flood.iter().enumerate() {
            flood_out[i] += receive_for(s, Duration::from_millis(1)).iter().map(Vec::len).sum::<usize>();
        }
    }
    let m = Neighbour::link(153, source, 0x0bad_f00d);
    for (i, (got, gave)) in flood_out.iter().zip(&flood_in).enumerate() {
        assert!(*got <= 3 * gave, "flood address {i}: {got} bytes back for {gave}");
    }
    eprintln!(
        "HELLO flood: {} bytes in, {} bytes back",
        flood_in.iter().sum::<usize>(),
        flood_out.iter().sum::<usize>()
    );

    // Strangers sending every other kind of datagram get no more than three times their bytes.
    let kinds: Vec<Message<'static>> = vec![
        Message::Ack(LinkAck { status: LinkStatus::Accepted, echo: 5, nonce: 6, channel: CHANNEL }),
        Message::KeepAlive(BufferMap::from_fn(first + 10, |_| true)),
        Message::Request(Request { request: 9, first_block: first, count: 16, channel: CHANNEL, token: 0 }),
        Message::PeerList(PeerList { channel: CHANNEL, verified: true, cookie: 0, peers: vec![] }),
    ];
    for k in kinds {
        let sent = send(&stranger, source, k);
        let back: usize = receive_for(&stranger, Duration::from_millis(300)).iter().map(Vec::len).sum();
        assert!(back <= 3 * sent, "{back} bytes back for {sent}");
    }
    n.keepalive_and_listen(Duration::from_millis(10));
    m.keepalive_and_listen(Duration::from_millis(10));

    let status = guard.exit_within(Duration::from_secs(25));
    assert!(status.success(), "the source exited with {status}");
    let lines = truth_lines(&truth);
    let from_n = |e: &Event| matches!(e, Event::NeighborDown { peer, .. } if *peer == addr(152, 5000));
    let downs: Vec<_> = lines.iter().filter(|l| from_n(&l.event)).map(|l| &l.event).collect();
    // The source ends its session with every link down as `shutdown`, the neighbour's too.
    assert!(
        downs
            .iter()
            .all(|e| matches!(e, Event::NeighborDown { reason: soplab_rundir::truth::DownReason::Shutdown, .. })),
        "{downs:?}"
    );
    // What the source sent: the two real requests whole (127 packets, 167,015 bytes of UDP
    // payload each), nothing for the spoofed one.
    let responses: Vec<(u32, u32)> = lines
        .iter()
        .filter_map(|l| match l.event {
            Event::ResponseSent { request, packets, .. } => Some((request, packets)),
            _ => None,
        })
        .collect();
    assert_eq!(responses, [(0xbeef_0002, 127), (0xbeef_0003, 127)]);
    let bad_token = Event::Dropped { from: addr(152, 5000), reason: DropReason::BadToken };
    assert_eq!(lines.iter().filter(|l| l.event == bad_token).count(), 1);
    assert!(lines.iter().any(|l| l.event == Event::NeighborUp { peer: addr(153, 5000), initiator: false }));
    let s: PeerStats = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    assert_eq!(s.dropped.get("bad_token"), Some(&1), "{:?}", s.dropped);
}
