//! The tracker core under the tokio shell on loopback: five real UDP clients register, see each
//! other, one leaves, and the ground truth records it all. Ephemeral ports only; every wait is
//! bounded, and the whole test stops within 10 s.

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
    let socket = shell::bind_udp((Ipv4Addr::LOCALHOST, 0).into()).unwrap();
    let tracker_addr = socket.local_addr().unwrap();
    let mut tracker = Tracker::new(Config { seed: 1, ..Config::new(tracker_addr) });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut truth = Vec::new();
        let stop = async {
            let _ = stop_rx.await;
        };
        shell::run(&mut tracker, socket, stop, &mut truth).await.expect("the shell runs cleanly");
        (tracker, truth)
    });

    let mut clients = Vec::new();
    for _ in 0..5 {
        clients.push(UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap());
    }
    let addrs: Vec<SocketAddrV4> = clients.iter().map(|c| v4(c.local_addr().unwrap())).collect();

    // Register one after the other: each sees exactly the ones before it.
    for (i, c) in clients.iter().enumerate() {
        let port = addrs[i].port();
        let l = ask(
            c,
            tracker_addr,
            Message::Register(Register { role: Role::Peer, channel: CHANNEL, listen_port: port, want: 50 }),
        )
        .await;
        assert_eq!(l.channel, CHANNEL);
        assert_eq!(l.peers.iter().copied().collect::<HashSet<_>>(), addrs[..i].iter().copied().collect());
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
    clients[0]
        .send_to(
            &Repr::new(9, Message::Leave(Leave { role: Role::Peer, channel: CHANNEL, listen_port: addrs[0].port() }))
                .to_vec(),
            tracker_addr,
        )
        .await
        .unwrap();
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
    assert_eq!((stats.queries, stats.replies, stats.drops.total()), (10, 15, 0));

    let text = String::from_utf8(truth).unwrap();
    let lines: Vec<serde_json::Value> =
        text.lines().map(|l| serde_json::from_str(l).expect("every truth line is JSON")).collect();
    assert_eq!(lines.len(), 5 + 15 + 1, "5 registrations, 15 replies, 1 leave");
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
