//! A neighbour announcing the largest block id to a peer that plays fewer blocks behind the
//! newest than its start-up buffer holds (a low bitrate, a short lag): the start-up check
//! must not overflow the block id (found by the `peer` fuzz target, fuzz/README.md).

use std::net::SocketAddr;

use soplab_node::{Event, Micros, Node, SECOND};
use soplab_peer::{Peer, PeerConfig};
use soplab_testkit::v4;
use soplab_wire::{BufferMap, Hello, LinkAck, LinkStatus, Message, Repr, Role};

fn dgram(seq: u32, m: Message<'_>) -> Vec<u8> {
    Repr::new(seq, m).to_vec()
}

/// Runs the peer's timers from `from` to `to`, returning its events.
fn run(p: &mut Peer, from: Micros, to: Micros) -> Vec<Event> {
    let mut events = Vec::new();
    for t in (from..=to).step_by(100_000) {
        p.handle_timeout(t);
        while p.poll_transmit(t).is_some() {}
        events.extend(std::iter::from_fn(|| p.poll_event()));
    }
    events
}

#[test]
fn the_largest_block_id_at_a_low_bitrate_starts_playback_without_overflow() {
    let (me, tracker, n): (SocketAddr, SocketAddr, SocketAddr) =
        (v4(10, 0, 0, 1, 4000), v4(10, 0, 0, 254, 3900), v4(10, 0, 0, 2, 4000));
    // 64 kbit/s: a block every 1.28 s, so the 2 s lag is 2 blocks, fewer than the 12 of the
    // start-up buffer: playback starts 2 blocks below the newest.
    let cfg = PeerConfig { bitrate_bps: 64_000, lag: 2 * SECOND, ..PeerConfig::peer(me, tracker, 1, 7) };
    let mut p = Peer::new(cfg, None);
    run(&mut p, 0, 0);
    let hello = Hello { role: Role::Peer, nonce: 11, channel: 1, listen_port: n.port(), newest: None };
    p.handle_datagram(0, n, &dgram(0, Message::Hello(hello)));
    let reply = std::iter::from_fn(|| p.poll_transmit(0)).find(|t| t.dst == n).expect("a reply");
    let Ok(Repr { message: Message::HelloReply(r), .. }) = Repr::parse(&reply.payload) else { panic!("a reply") };
    // The ACK echoes the reply's nonce and carries the HELLO's (docs/PROTOCOL.md, ACK).
    let ack = LinkAck { status: LinkStatus::Accepted, echo: r.ack.nonce, nonce: hello.nonce, channel: 1 };
    p.handle_datagram(0, n, &dgram(1, Message::Ack(ack)));
    assert!(p.up_neighbors().any(|a| a == n), "the link is up");

    let newest = u32::MAX - 1;
    p.handle_datagram(0, n, &dgram(2, Message::KeepAlive(BufferMap::from_fn(newest, |_| true))));
    let events = run(&mut p, 100_000, 10 * SECOND);
    assert!(events.contains(&Event::PlaybackStart { block: newest - 2 }), "{events:?}");
}
