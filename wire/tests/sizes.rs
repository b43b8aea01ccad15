//! Datagram sizes: Table 1 of Tang et al. for the control packets, eq. 1 for video responses,
//! and no size overlap between control packets and anything else (a size-based classifier must
//! be able to tell them apart).

use std::net::{Ipv4Addr, SocketAddrV4};

use soplab_wire::video::{FRAGMENT_PAYLOAD, VIDEO_HEADER_LEN, fragment_count, tail_size};
use soplab_wire::{
    BLOCK_LEN, BufferMap, Hello, HelloReply, Leave, LinkAck, LinkStatus, MAX_BLOCKS_PER_REQUEST, MAX_PEER_LIST,
    Message, PeerList, PeerSet, Query, Register, Repr, Request, Role, segment, size,
};

fn ack() -> LinkAck {
    LinkAck { status: LinkStatus::Accepted, echo: 1, nonce: 2, channel: 3 }
}

fn encoded_len(m: Message<'_>) -> usize {
    let r = Repr::new(1, m);
    let v = r.to_vec();
    assert_eq!(v.len(), r.buffer_len(), "buffer_len disagrees with to_vec");
    v.len()
}

#[test]
fn control_sizes_are_table_1() {
    // Table 1 of Tang et al., as literals: HELLO 52, reply 80, ACK 28, keep-alive 42, request 46.
    assert_eq!(size::CONTROL, [52, 80, 28, 42, 46]);
    assert_eq!(size::VIDEO_MAX, 1320);

    let hello = Hello { role: Role::Peer, nonce: 9, channel: 3, listen_port: 3908, newest: Some(17) };
    assert_eq!(encoded_len(Message::Hello(hello)), 52);
    assert_eq!(encoded_len(Message::Hello(Hello { newest: None, role: Role::Source, ..hello })), 52);

    // The reply is 80 bytes whatever the number of peers (0..=8) it carries.
    for k in 0..=PeerSet::CAPACITY {
        let peers: PeerSet = (0..k as u8).map(|i| SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, i), 3908)).collect();
        assert_eq!(peers.len(), k);
        assert_eq!(encoded_len(Message::HelloReply(HelloReply { ack: ack(), peers })), 80, "{k} peers");
    }
    assert_eq!(PeerSet::CAPACITY, 8);

    assert_eq!(encoded_len(Message::Ack(ack())), 28);

    assert_eq!(encoded_len(Message::KeepAlive(BufferMap::empty())), 42);
    assert_eq!(encoded_len(Message::KeepAlive(BufferMap::from_fn(1000, |_| true))), 42);

    for count in 1..=MAX_BLOCKS_PER_REQUEST {
        let r = Request { request: 1, first_block: 7, count, channel: 3, token: u32::MAX };
        assert_eq!(encoded_len(Message::Request(r)), 46);
    }
}

#[test]
fn tracker_sizes() {
    let reg = Register { role: Role::Peer, channel: 1, listen_port: 2, want: 3 };
    assert_eq!(encoded_len(Message::Register(reg)), 20);
    assert_eq!(encoded_len(Message::Query(Query { channel: 1, listen_port: 2, want: 3 })), 20);
    assert_eq!(encoded_len(Message::Leave(Leave { role: Role::Source, channel: 1, listen_port: 2 })), 20);
    assert_eq!(size::TRACKER_REQUEST, 20);
    assert_eq!(MAX_PEER_LIST, 200);
    for k in 0..=MAX_PEER_LIST {
        let peers = (0..k).map(|i| SocketAddrV4::new(Ipv4Addr::from(i as u32), i as u16)).collect();
        let n = encoded_len(Message::PeerList(PeerList { channel: 1, verified: true, cookie: k as u32, peers }));
        assert_eq!(n, 21 + 6 * k, "peer list of {k}");
        assert_eq!(PeerList::size_for(k), n);
        assert!(n <= size::VIDEO_MAX);
    }
}

/// The sizes of the packets of an n-block response, from actually segmenting and encoding one.
fn response_sizes(n: u8) -> Vec<usize> {
    let data: Vec<u8> = (0..usize::from(n) * BLOCK_LEN).map(|i| (i * 7 % 256) as u8).collect();
    segment(42, 1000, &data).expect("valid response").map(|v| Repr::new(0, Message::Video(v)).to_vec().len()).collect()
}

#[test]
fn video_constants() {
    assert_eq!(BLOCK_LEN, 10_240);
    assert_eq!(VIDEO_HEADER_LEN, 25);
    assert_eq!(FRAGMENT_PAYLOAD, 1295);
    assert_eq!(MAX_BLOCKS_PER_REQUEST, 16);
}

#[test]
fn response_packets_follow_eq_1() {
    for n in 1..=MAX_BLOCKS_PER_REQUEST {
        let sizes = response_sizes(n);
        assert!(sizes.iter().all(|&s| s <= 1320), "n={n}: packet over 1320 bytes: {sizes:?}");
        let (&tail, full) = sizes.split_last().expect("at least one packet");
        assert!(full.iter().all(|&s| s == 1320), "n={n}: all but the last packet are full: {sizes:?}");
        assert!(tail < 1320 && tail > 25, "n={n}: tail {tail}");
        let x = full.len();
        // n x 10240 = x x 1295 + (tail - 25): the video bytes of x full packets and the tail.
        assert_eq!(usize::from(n) * 10_240, x * 1295 + (tail - 25), "n={n}");
        // x is the largest number of whole 1295-byte payloads in the response.
        assert_eq!(x, usize::from(n) * 10_240 / 1295, "n={n}");
        assert_eq!(sizes.len(), usize::from(fragment_count(n)), "n={n}");
        assert_eq!(tail, tail_size(n), "n={n}");
    }
}

#[test]
fn tail_sizes_for_one_to_eight_blocks() {
    let measured: Vec<usize> = (1..=8).map(|n| *response_sizes(n).last().unwrap()).collect();
    assert_eq!(measured, [1200, 1080, 960, 840, 720, 600, 480, 360]);
    let computed: Vec<usize> = (1..=8).map(tail_size).collect();
    assert_eq!(computed, measured);
}

#[test]
fn no_other_size_is_a_control_size() {
    let control = size::CONTROL;
    for n in 1..=MAX_BLOCKS_PER_REQUEST {
        for s in response_sizes(n) {
            assert!(!control.contains(&s), "video packet of {s} bytes (n={n}) has a control size");
        }
    }
    assert!(!control.contains(&size::TRACKER_REQUEST));
    for k in 0..=MAX_PEER_LIST {
        let s = PeerList::size_for(k);
        assert!(!control.contains(&s), "peer list of {k} peers is {s} bytes, a control size");
        assert_eq!(s % 2, 1, "peer list sizes are odd");
    }
    // Control packets are all even, so the odd peer lists can never collide.
    assert!(control.iter().all(|s| s % 2 == 0));
}
