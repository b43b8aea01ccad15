//! The tracker core under the tokio shell on loopback: five real UDP clients register, see each
//! other, one leaves, and the ground truth records it all; sources that never prove they
//! receive what is sent to them (as spoofed ones cannot) fill nothing and get little back.
//! Ephemeral ports only; every wait is bounded, and each test stops within 10 s.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use soplab_shell as shell;
use soplab_tracker::{Config, Tracker};
use soplab_wire::{Leave, Message, PeerList, Query, Register, Repr, Role};
use tokio::net::UdpSocket;
use tokio::time::timeout;

const CHANNEL: u32 = 3;
const WAIT: Duration = Duration::from_secs(2);

fn v4(a: SocketAddr) -> SocketAddrV4 {
    match a {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(_) => panic!("loopback clients are IPv4"),
    }
}

/// Sends `message` to the tracker and waits (bounded) for the peer list it answers with.
async fn ask(client: &UdpSocket, tracker: SocketAddr, message: Message<'_>) -> PeerList {
    client.send_to(&Repr::new(9, message).to_vec(), tracker).await.unwrap();
    let mut buf = [0u8; 2048];
    let (n, from) = timeout(WAIT, client.recv_from(&mut buf)).await.expect("the tracker answers in time").unwrap();
    assert_eq!(from, tracker);
    let repr = Repr::parse(&buf[..n]).expect("the answer decodes");
    assert_eq!(repr.seq, 9, "the answer echoes the request's sequence number");
    match repr.message {
        Message::PeerList(l) => l,
        other => panic!("expected a peer list, got {other:?}"),
    }
}

fn query(client: &UdpSocket) -> Message<'static> {
    Message::Query(Query { channel: CHANNEL, listen_port: client.local_addr().unwrap().port(), want: 50 })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_clients_register_see_each_other_and_one_leaves() {
    timeout(Duration::from_secs(10), scenario()).await.expect("the scenario finishes within 10 s");
}

async fn scenario() {
    let (tracker_addr, stop_tx, task) = start(|addr| Config { seed: 1, ..Config::new(addr) });

    let mut clients = Vec::new();
    for _ in 0..5 {
        clients.push(UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap());
    }
    let addrs: Vec<SocketAddrV4> = clients.iter().map(|c| v4(c.local_addr().unwrap())).collect();

    // Register one after the other (each first fetches its cookie): each sees exactly the ones
    // before it.
    let mut cookies = Vec::new();
    for (i, c) in clients.iter().enumerate() {
        let l = join(c, tracker_addr, CHANNEL).await;
        assert!(l.verified);
        assert_eq!(l.channel, CHANNEL);
        assert_eq!(l.peers.iter().copied().collect::<HashSet<_>>(), addrs[..i].iter().copied().collect());
        cookies.push(l.cookie);
    }
    // Now each gets the four others, never itself.
    for (i, c) in clients.iter().enumerate() {
        let l = ask(c, tracker_addr, query(c)).await;
        let others: HashSet<_> = addrs.iter().copied().filter(|&a| a != addrs[i]).collect();
        assert_eq!(l.peers.len(), 4);
        assert_eq!(l.peers.iter().copied().collect::<HashSet<_>>(), others);
    }

    // Client 0 leaves (no answer); a Query from each other client proves it is gone. The leave
    // and the queries come from different sockets, so wait for the tracker to have seen the
    // leave: ask client 0's own socket afterwards (same socket, ordered on loopback).
    // The leave carries the client's cookie: the tracker takes no other.
    let leave = Message::Leave(Leave { role: Role::Peer, channel: CHANNEL, listen_port: addrs[0].port() });
    clients[0].send_to(&Repr::new(cookies[0], leave).to_vec(), tracker_addr).await.unwrap();
    assert_eq!(ask(&clients[0], tracker_addr, query(&clients[0])).await.peers.len(), 4);
    for (i, c) in clients.iter().enumerate().skip(1) {
        let l = ask(c, tracker_addr, query(c)).await;
        assert!(!l.peers.contains(&addrs[0]), "client 0 left but is still listed");
        assert_eq!(l.peers.len(), 3, "client {i} sees the three others");
    }

    stop_tx.send(()).unwrap();
    let (tracker, truth) = timeout(WAIT, task).await.expect("the tracker stops in time").unwrap();

    let stats = tracker.stats();
    assert_eq!((stats.registrations, stats.new_entries, stats.leaves, stats.entries), (5, 5, 1, 4));
    assert_eq!((stats.challenges, stats.queries, stats.replies, stats.drops.total()), (5, 10, 20, 0));

    let text = String::from_utf8(truth).unwrap();
    let lines: Vec<serde_json::Value> =
        text.lines().map(|l| serde_json::from_str(l).expect("every truth line is JSON")).collect();
    assert_eq!(lines.len(), 5 + 20 + 1, "5 registrations, 20 replies, 1 leave");
    for l in &lines {
        assert_eq!(l["node"], tracker_addr.to_string());
        assert!(l["ts_us"].as_u64().is_some());
    }
    let registered: HashSet<String> = lines
        .iter()
        .filter(|l| l["event"] == "tracker_register")
        .map(|l| {
            assert_eq!(l["channel"], CHANNEL);
            assert_eq!(l["new"], true);
            l["peer"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(registered, addrs.iter().map(|a| a.to_string()).collect());
    let left: Vec<&serde_json::Value> = lines.iter().filter(|l| l["event"] == "tracker_expire").collect();
    assert_eq!(left.len(), 1);
    assert_eq!(
        (left[0]["peer"].as_str(), &left[0]["leave"]),
        (Some(&*addrs[0].to_string()), &serde_json::Value::Bool(true))
    );
}

/// The tracker's task: hands back the core and its ground truth when stopped.
type Running = tokio::task::JoinHandle<(Tracker, Vec<u8>)>;

/// Starts a tracker on an ephemeral loopback port; returns its address, the stop switch and
/// its task.
fn start(config: impl FnOnce(SocketAddr) -> Config) -> (SocketAddr, tokio::sync::oneshot::Sender<()>, Running) {
    let socket = shell::bind_udp((Ipv4Addr::LOCALHOST, 0).into()).unwrap();
    let addr = socket.local_addr().unwrap();
    let mut tracker = Tracker::new(config(addr));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut truth = Vec::new();
        let stop = async {
            let _ = stop_rx.await;
        };
        shell::run(&mut tracker, socket, stop, &mut truth).await.expect("the shell runs cleanly");
        (tracker, truth)
    });
    (addr, stop_tx, task)
}

/// Registers as a client does: with a query id, then at once with the cookie of an answer
/// that is not verified. The last answer.
async fn join(client: &UdpSocket, tracker: SocketAddr, channel: u32) -> PeerList {
    let port = client.local_addr().unwrap().port();
    let register = Message::Register(Register { role: Role::Peer, channel, listen_port: port, want: 50 });
    let first = ask_seq(client, tracker, 0x00c0_ffee, register.clone()).await;
    if first.verified {
        return first;
    }
    ask_seq(client, tracker, first.cookie, register).await
}

/// Sends `message` with sequence number `seq` and waits (bounded) for the answer echoing it.
async fn ask_seq(client: &UdpSocket, tracker: SocketAddr, seq: u32, message: Message<'_>) -> PeerList {
    client.send_to(&Repr::new(seq, message).to_vec(), tracker).await.unwrap();
    let mut buf = [0u8; 2048];
    let (n, from) = timeout(WAIT, client.recv_from(&mut buf)).await.expect("the tracker answers in time").unwrap();
    assert_eq!(from, tracker);
    let repr = Repr::parse(&buf[..n]).expect("the answer decodes");
    assert_eq!(repr.seq, seq, "the answer echoes the query id");
    match repr.message {
        Message::PeerList(l) => l,
        other => panic!("expected a peer list, got {other:?}"),
    }
}

/// Bytes waiting on `socket` within `until`.
async fn drain(socket: &UdpSocket, until: tokio::time::Instant) -> Vec<usize> {
    let mut sizes = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok(Ok((n, _))) = tokio::time::timeout_at(until, socket.recv_from(&mut buf)).await {
        sizes.push(n);
    }
    sizes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_that_never_echo_a_cookie_fill_nothing_and_get_little_back() {
    timeout(Duration::from_secs(10), never_echo()).await.expect("the scenario finishes within 10 s");
}

async fn never_echo() {
    // Small bounds, so that a few dozen sources would exhaust them.
    let (tracker, stop, task) = start(|addr| Config { max_entries: 20, max_channels: 8, seed: 3, ..Config::new(addr) });
    // 40 sources on addresses of their own (127.0.1.x) register, with guessed cookies, on the
    // real channel and on new channels, and never echo what comes back: as spoofed ones.
    let mut spoofers = Vec::new();
    for i in 0..40u8 {
        let s = UdpSocket::bind((Ipv4Addr::new(127, 0, 1, 10 + i), 0)).await.unwrap();
        let port = s.local_addr().unwrap().port();
        let channel = if i % 2 == 0 { CHANNEL } else { 1000 + u32::from(i) };
        let register = Message::Register(Register { role: Role::Peer, channel, listen_port: port, want: 200 });
        s.send_to(&Repr::new(u32::from(i) * 7919, register).to_vec(), tracker).await.unwrap();
        spoofers.push(s);
    }
    let until = tokio::time::Instant::now() + Duration::from_millis(500);
    for s in &spoofers {
        for n in drain(s, until).await {
            assert!(n <= 3 * 20, "{n} bytes answered a 20-byte register from {}", s.local_addr().unwrap());
        }
    }
    // Real clients still open the channel, are listed and see each other only.
    let a = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let b = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    assert!(join(&a, tracker, CHANNEL).await.verified, "the first real client is listed");
    let l = join(&b, tracker, CHANNEL).await;
    assert!(l.verified);
    assert_eq!(l.peers, [v4(a.local_addr().unwrap())], "the second sees the first, and no unproven source");

    stop.send(()).unwrap();
    let (tracker, _) = timeout(WAIT, task).await.expect("the tracker stops in time").unwrap();
    let s = tracker.stats();
    assert_eq!((s.entries, s.channels), (2, 1), "only the real clients are listed");
}
