//! A peer core under the tokio shell on loopback, with the test playing its tracker: peer
//! lists sent from the tracker's address that do not echo the query id of the peer's register
//! are dropped (the addresses they carry are never contacted); the answer that does is taken.
//! Ephemeral ports only; every wait is bounded, and the test stops within 10 s.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use soplab_node::Secret;
use soplab_peer::{Peer, PeerConfig};
use soplab_rundir::truth::{DropReason, Event, Line};
use soplab_shell as shell;
use soplab_wire::{Message, PeerList, Repr};
use tokio::net::UdpSocket;
use tokio::time::timeout;

const CHANNEL: u32 = 7;
const WAIT: Duration = Duration::from_secs(2);

fn v4(a: SocketAddr) -> SocketAddrV4 {
    match a {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(_) => panic!("loopback sockets are IPv4"),
    }
}

fn list(seq: u32, peers: Vec<SocketAddrV4>) -> Vec<u8> {
    Repr::new(seq, Message::PeerList(PeerList { channel: CHANNEL, verified: true, cookie: 0x0012_3456, peers }))
        .to_vec()
}

/// Whether `socket` receives a datagram within `wait`.
async fn hears(socket: &UdpSocket, wait: Duration) -> bool {
    let mut buf = [0u8; 2048];
    timeout(wait, socket.recv_from(&mut buf)).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_from_the_trackers_address_that_answer_no_register_are_dropped() {
    timeout(Duration::from_secs(10), scenario()).await.expect("the scenario finishes within 10 s");
}

async fn scenario() {
    let tracker = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let lure = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let real = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let socket = shell::bind_udp((Ipv4Addr::LOCALHOST, 0).into()).unwrap();
    let me = socket.local_addr().unwrap();
    let cfg = PeerConfig::peer(me, tracker.local_addr().unwrap(), CHANNEL, 1);
    let mut peer = Peer::new(cfg, None).with_secret(Secret::from_os());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut truth = Vec::new();
        let stop = async {
            let _ = stop_rx.await;
        };
        shell::run(&mut peer, socket, stop, &mut truth).await.expect("the shell runs cleanly");
        truth
    });

    // The peer registers; its query id is the register's sequence number.
    let mut buf = [0u8; 2048];
    let (n, from) = timeout(WAIT, tracker.recv_from(&mut buf)).await.expect("the peer registers").unwrap();
    assert_eq!(from, me);
    let repr = Repr::parse(&buf[..n]).unwrap();
    assert!(matches!(repr.message, Message::Register(_)), "{repr:?}");
    let q = repr.seq;

    // Lists from the tracker's address with other query ids, naming the lure: dropped.
    for k in 1..=20 {
        tracker.send_to(&list(q ^ k, vec![v4(lure.local_addr().unwrap())]), me).await.unwrap();
    }
    assert!(!hears(&lure, Duration::from_millis(1500)).await, "the peer contacted an injected address");
    // The answer to its register is taken: the peer greets the address in it.
    tracker.send_to(&list(q, vec![v4(real.local_addr().unwrap())]), me).await.unwrap();
    assert!(hears(&real, WAIT).await, "the peer did not greet the tracker's peer");

    stop_tx.send(()).unwrap();
    let truth = timeout(WAIT, task).await.expect("the peer stops in time").unwrap();
    let text = String::from_utf8(truth).unwrap();
    // Beyond the first drops of a reason in a second, the truth counts them in one
    // `dropped_summary` line (docs/GROUND_TRUTH.md): sum both kinds.
    let lines: Vec<Line> = text.lines().map(|l| Line::parse(l).expect("every truth line parses")).collect();
    let unsolicited: u64 = lines
        .iter()
        .filter_map(|l| l.event.dropped_inputs())
        .filter(|(reason, _)| *reason == DropReason::Unsolicited)
        .map(|(_, n)| n)
        .sum();
    assert_eq!(unsolicited, 20, "each injected list is in the ground truth as unsolicited");
    let from_tracker = Event::Dropped { from: tracker.local_addr().unwrap(), reason: DropReason::Unsolicited };
    assert!(lines.iter().any(|l| l.event == from_tracker), "the drops name the tracker's address");
}
