//! Golden byte vectors for every datagram kind.
//!
//! Each expected byte string below was written by hand from the offsets documented in
//! `wire/src` (packet.rs header diagram, the `// Offsets:` comments in repr.rs and video.rs), one
//! field per line, and is compared with what `Repr::to_vec` produces; parsing it must give the
//! value back. The classifier facts of `seed-facts.md` (the bytes nDPI and libprotoident match)
//! are asserted on the same bytes.

use std::net::{Ipv4Addr, SocketAddrV4};

use soplab_wire::video::{VIDEO_HEADER_LEN, fragment_count};
use soplab_wire::{
    BufferMap, Hello, HelloReply, Leave, LinkAck, LinkStatus, Message, Packet, PeerList, PeerSet, Query, Register,
    Repr, Request, Role, Video, link_token, segment,
};

const CHANNEL: u32 = 0x5350_0001;

/// Parses whitespace-separated hex byte pairs; panics on anything else so a typo in a golden
/// vector cannot silently shorten it.
fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|t| {
            assert_eq!(t.len(), 2, "golden token {t:?} is not one byte");
            u8::from_str_radix(t, 16).unwrap_or_else(|e| panic!("golden token {t:?}: {e}"))
        })
        .collect()
}

fn addr(a: u8, b: u8, c: u8, d: u8, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(a, b, c, d), port)
}

/// Encodes `repr`, compares with `expected` byte by byte (reporting the first differing offset),
/// and checks that `expected` parses back to `repr` and that `buffer_len` agrees.
fn check_golden(repr: &Repr<'_>, expected: &[u8]) {
    let got = repr.to_vec();
    if let Some(i) = got.iter().zip(expected).position(|(a, b)| a != b) {
        panic!("first difference at byte {i}: got {:#04x}, expected {:#04x}\n got: {got:02x?}", got[i], expected[i]);
    }
    assert_eq!(got.len(), expected.len(), "encoded length");
    assert_eq!(repr.buffer_len(), expected.len(), "buffer_len");
    let parsed = Repr::parse(expected).unwrap_or_else(|e| panic!("golden vector does not parse: {e}"));
    assert_eq!(&parsed, repr);
}

/// Asserts `bytes[at..at + want.len()] == want`.
fn assert_at(bytes: &[u8], at: usize, want: &[u8]) {
    assert_eq!(&bytes[at..at + want.len()], want, "bytes {at}..{}", at + want.len());
}

/// Checks the typed header view against the expected field values.
fn check_header(bytes: &[u8], class: u16, count: u8, flags: u8, seq: u32) {
    let p = Packet::new_checked(bytes).expect("golden vector passes Packet::check");
    assert_eq!(p.class(), class, "class");
    assert_eq!(p.count(), count, "count");
    assert_eq!(p.version(), 0x07, "version");
    assert_eq!(p.flags(), flags, "flags");
    assert_eq!(p.seq(), seq, "seq");
    assert_eq!(p.messages().count(), usize::from(count), "messages");
}

fn hello_repr() -> Repr<'static> {
    Repr::new(
        0,
        Message::Hello(Hello {
            role: Role::Peer,
            nonce: 0x1234_5678,
            channel: CHANNEL,
            listen_port: 3908,
            newest: None,
        }),
    )
}

#[rustfmt::skip]
fn hello_bytes() -> Vec<u8> {
    hex(concat!(
        "ff ff ",         // 0..2   class: HELLO, no link yet
        "01 ",            // 2      message count
        "07 ",            // 3      version
        "00 ",            // 4      header flags: none
        "00 00 00 ",      // 5..8   seq 0
        "02 ",            // 8      message type HELLO
        "ff ",            // 9      message flag
        "00 2c ",         // 10..12 message length 44 = 52 - 8
        "00 00 00 ",      // 12..15 reserved
        "01 ",            // 15     role: peer
        "12 34 56 78 ",   // 16..20 nonce
        "53 50 00 01 ",   // 20..24 channel
        "0f 44 ",         // 24..26 listen port 3908
        "ff ff ff ff ",   // 26..30 newest block: none
        "00 00 00 00 00 00 00 00 00 00 00 ", // 30..41 reserved
        "00 00 00 00 00 00 00 00 00 00 00 ", // 41..52 reserved
    ))
}

#[test]
fn hello_golden() {
    let b = hello_bytes();
    check_golden(&hello_repr(), &b);
    check_header(&b, 0xffff, 1, 0x00, 0);
    // Classifier facts: ff ff 01, byte 3 = 07, bytes 8..15 = 02 ff 00 2c 00 00 00.
    assert_eq!(b.len(), 52);
    assert_at(&b, 0, &[0xff, 0xff, 0x01]);
    assert_eq!(b[3], 0x07);
    assert_at(&b, 8, &[0x02, 0xff, 0x00, 0x2c, 0x00, 0x00, 0x00]);
}

#[test]
#[rustfmt::skip]
fn hello_from_source_with_newest_golden() {
    let repr = Repr::new(
        0x00_0102,
        Message::Hello(Hello {
            role: Role::Source,
            nonce: 0xdead_beef,
            channel: 0x0000_0007,
            listen_port: 0xfffe,
            newest: Some(0x0102_0304),
        }),
    );
    let b = hex(concat!(
        "ff ff 01 07 00 ", // 0..5   class HELLO, 1 message, version 7, no flags
        "00 01 02 ",       // 5..8   seq 0x000102
        "02 ff 00 2c ",    // 8..12  HELLO, flag ff, length 44
        "00 00 00 ",       // 12..15 reserved
        "02 ",             // 15     role: source
        "de ad be ef ",    // 16..20 nonce
        "00 00 00 07 ",    // 20..24 channel
        "ff fe ",          // 24..26 listen port
        "01 02 03 04 ",    // 26..30 newest block
        "00 00 00 00 00 00 00 00 00 00 00 ", // 30..41 reserved
        "00 00 00 00 00 00 00 00 00 00 00 ", // 41..52 reserved
    ));
    check_golden(&repr, &b);
    check_header(&b, 0xffff, 1, 0x00, 0x102);
    assert_at(&b, 0, &[0xff, 0xff, 0x01, 0x07]);
    assert_at(&b, 8, &[0x02, 0xff, 0x00, 0x2c, 0x00, 0x00, 0x00]);
}

fn reply_classifier_facts(b: &[u8]) {
    assert_eq!(b.len(), 80);
    assert_eq!(b[0], 0x00);
    assert_eq!(b[2], 0x02);
    assert_eq!(b[3], 0x07);
    assert_at(b, 8, &[0x01, 0xff, 0x00, 0x14, 0x00, 0x00]);
}

#[test]
#[rustfmt::skip]
fn hello_reply_without_peers_golden() {
    let repr = Repr::new(
        0,
        Message::HelloReply(HelloReply {
            ack: LinkAck { status: LinkStatus::Full, echo: 0x1234_5678, nonce: 0x9abc_def0, channel: CHANNEL },
            peers: PeerSet::new(),
        }),
    );
    let b = hex(concat!(
        "00 01 ",        // 0..2   class: HELLO reply
        "02 ",           // 2      two messages
        "07 ",           // 3      version
        "00 ",           // 4      no flags
        "00 00 00 ",     // 5..8   seq 0
        // ack message at 8
        "01 ff 00 14 ",  // 8..12  ACK, flag ff, length 20
        "00 00 ",        // 12..14 reserved
        "00 01 ",        // 14..16 status: full
        "12 34 56 78 ",  // 16..20 echo (the HELLO's nonce)
        "9a bc de f0 ",  // 20..24 responder's nonce
        "53 50 00 01 ",  // 24..28 channel
        // peer-exchange message at 28
        "07 00 00 34 ",  // 28..32 PEER_EXCHANGE, flag = 0 peers, length 52
        "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 ", // 32..48 no peers
        "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 ", // 48..64
        "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 ", // 64..80
    ));
    check_golden(&repr, &b);
    check_header(&b, 0x0001, 2, 0x00, 0);
    reply_classifier_facts(&b);
}

#[test]
#[rustfmt::skip]
fn hello_reply_with_three_peers_golden() {
    let peers: PeerSet =
        [addr(198, 18, 1, 20, 3908), addr(198, 18, 1, 21, 3909), addr(10, 0, 0, 1, 65535)].into_iter().collect();
    let repr = Repr::new(
        0x00_0001,
        Message::HelloReply(HelloReply {
            ack: LinkAck { status: LinkStatus::Accepted, echo: 0x1234_5678, nonce: 0x9abc_def0, channel: CHANNEL },
            peers,
        }),
    );
    let b = hex(concat!(
        "00 01 02 07 00 ",   // 0..5   class reply, 2 messages, version 7, no flags
        "00 00 01 ",         // 5..8   seq 1
        "01 ff 00 14 ",      // 8..12  ACK, flag ff, length 20
        "00 00 ",            // 12..14 reserved
        "00 00 ",            // 14..16 status: accepted
        "12 34 56 78 ",      // 16..20 echo
        "9a bc de f0 ",      // 20..24 nonce
        "53 50 00 01 ",      // 24..28 channel
        "07 03 00 34 ",      // 28..32 PEER_EXCHANGE, flag = 3 peers, length 52
        "c6 12 01 14 0f 44 ", // 32..38 198.18.1.20:3908
        "c6 12 01 15 0f 45 ", // 38..44 198.18.1.21:3909
        "0a 00 00 01 ff ff ", // 44..50 10.0.0.1:65535
        "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 ", // 50..65 unused slots
        "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 ", // 65..80
    ));
    check_golden(&repr, &b);
    check_header(&b, 0x0001, 2, 0x00, 1);
    reply_classifier_facts(&b);
}

#[test]
#[rustfmt::skip]
fn ack_golden() {
    let repr = Repr::new(
        1,
        Message::Ack(LinkAck { status: LinkStatus::Accepted, echo: 0x9abc_def0, nonce: 0, channel: CHANNEL }),
    );
    let b = hex(concat!(
        "00 0c ",        // 0..2   class: ACK
        "01 ",           // 2      one message
        "07 ",           // 3      version
        "00 ",           // 4      no flags
        "00 00 01 ",     // 5..8   seq 1
        "01 01 00 14 ",  // 8..12  ACK, flag 01, length 20
        "00 00 ",        // 12..14 reserved
        "00 00 ",        // 14..16 status: accepted
        "9a bc de f0 ",  // 16..20 echo (the reply's nonce)
        "00 00 00 00 ",  // 20..24 nonce: 0 in the final ACK
        "53 50 00 01 ",  // 24..28 channel
    ));
    check_golden(&repr, &b);
    check_header(&b, 0x000c, 1, 0x00, 1);
    assert_eq!(b.len(), 28);
    assert_at(&b, 0, &[0x00, 0x0c, 0x01, 0x07, 0x00]);
    assert_at(&b, 8, &[0x01, 0x01, 0x00, 0x14, 0x00, 0x00]);
}

fn keepalive_classifier_facts(b: &[u8]) {
    assert_eq!(b.len(), 42);
    assert_at(b, 0, &[0x00, 0x02, 0x01, 0x07, 0x03]);
    assert_at(b, 8, &[0x06, 0x01, 0x00, 0x22, 0x00, 0x00]);
}

#[test]
#[rustfmt::skip]
fn keepalive_empty_map_golden() {
    let repr = Repr::new(2, Message::KeepAlive(BufferMap::empty()));
    let b = hex(concat!(
        "00 02 ",        // 0..2   class: keep-alive
        "01 ",           // 2      one message
        "07 ",           // 3      version
        "03 ",           // 4      flags: buffer map | linked
        "00 00 02 ",     // 5..8   seq 2
        "06 01 00 22 ",  // 8..12  KEEPALIVE, flag 01, length 34
        "00 00 ",        // 12..14 reserved
        "ff ff ff ff ",  // 14..18 newest: none
        "00 00 00 00 00 00 00 00 00 00 00 00 ", // 18..30 bitmap: empty
        "00 00 00 00 00 00 00 00 00 00 00 00 ", // 30..42
    ));
    check_golden(&repr, &b);
    check_header(&b, 0x0002, 1, 0x03, 2);
    keepalive_classifier_facts(&b);
}

#[test]
#[rustfmt::skip]
fn keepalive_populated_map_golden() {
    // Blocks 100..=140 except 137. Bit k (MSB first) is block 140 - k: k = 0..=40 set, but k = 3.
    let map = BufferMap::from_fn(140, |id| id >= 100 && id != 137);
    let repr = Repr::new(0x00ab_cdef, Message::KeepAlive(map));
    let b = hex(concat!(
        "00 02 01 07 03 ", // 0..5   class keep-alive, 1 message, version 7, flags 03
        "ab cd ef ",       // 5..8   seq 0xabcdef
        "06 01 00 22 ",    // 8..12  KEEPALIVE, flag 01, length 34
        "00 00 ",          // 12..14 reserved
        "00 00 00 8c ",    // 14..18 newest block 140
        "ef ",             // 18     k 0..8: 1110_1111 (block 137 missing)
        "ff ff ff ff ",    // 19..23 k 8..40
        "80 ",             // 23     k 40 (block 100)
        "00 00 00 00 00 00 00 00 00 ", // 24..33
        "00 00 00 00 00 00 00 00 00 ", // 33..42
    ));
    check_golden(&repr, &b);
    check_header(&b, 0x0002, 1, 0x03, 0xab_cdef);
    keepalive_classifier_facts(&b);
    assert!(map.contains(140) && map.contains(100) && !map.contains(137) && !map.contains(99));
}

#[test]
#[rustfmt::skip]
fn keepalive_map_near_block_zero_golden() {
    // Newest block 5, all of 0..=5 present: only bits k = 0..=5 exist.
    let repr = Repr::new(3, Message::KeepAlive(BufferMap::from_fn(5, |_| true)));
    let b = hex(concat!(
        "00 02 01 07 03 00 00 03 ", // 0..8   header, seq 3
        "06 01 00 22 00 00 ",       // 8..14  KEEPALIVE, length 34, reserved
        "00 00 00 05 ",             // 14..18 newest block 5
        "fc ",                      // 18     k 0..6 set: 1111_1100
        "00 00 00 00 00 00 00 00 00 00 00 ", // 19..30
        "00 00 00 00 00 00 00 00 00 00 00 00 ", // 30..42
    ));
    check_golden(&repr, &b);
    keepalive_classifier_facts(&b);
    // A bit for a block below 0 (k = 6 -> block -1) is rejected.
    let mut bad = b.clone();
    bad[18] = 0xfe;
    assert!(Repr::parse(&bad).is_err());
}

#[test]
#[rustfmt::skip]
fn request_golden() {
    let repr = Repr::new(
        0x10,
        Message::Request(Request { request: 1, first_block: 120, count: 3, channel: CHANNEL, token: 0xdead_beef }),
    );
    let b = hex(concat!(
        "00 04 ",        // 0..2   class: video request
        "01 ",           // 2      one message
        "07 ",           // 3      version
        "02 ",           // 4      flags: linked
        "00 00 10 ",     // 5..8   seq 16
        "09 01 00 26 ",  // 8..12  REQUEST, flag 01, length 38
        "00 00 ",        // 12..14 reserved
        "00 00 00 01 ",  // 14..18 request id
        "00 00 00 78 ",  // 18..22 first block 120
        "03 ",           // 22     count
        "00 ",           // 23     reserved
        "53 50 00 01 ",  // 24..28 channel
        "de ad be ef ",  // 28..32 link token
        "00 00 00 00 00 00 00 ", // 32..39 reserved
        "00 00 00 00 00 00 00 ", // 39..46
    ));
    check_golden(&repr, &b);
    check_header(&b, 0x0004, 1, 0x02, 0x10);
    assert_eq!(b.len(), 46);
    // The token takes any value; the bytes after it stay reserved.
    for at in 32..46 {
        let mut bad = b.clone();
        bad[at] = 1;
        assert!(Repr::parse(&bad).is_err(), "byte {at} set still parses");
    }
}

/// The link token is the XOR of the handshake's two nonces, so a responder that answers a new
/// HELLO with `token ^ nonce` keeps the token.
#[test]
fn link_token_of_a_handshake() {
    assert_eq!(link_token(0x1234_5678, 0x9abc_def0), 0x1234_5678 ^ 0x9abc_def0);
    let (token, hello) = (0x0bad_cafe, 0x0f0f_0f0f);
    assert_eq!(link_token(hello, token ^ hello), token);
}

/// The response of the request above: blocks 120..=122, 30720 bytes, cut into 23 packets of
/// 1295 video bytes and a tail of 935.
fn response_data() -> Vec<u8> {
    (0..3 * 10_240).map(|i| (i % 251) as u8).collect()
}

#[test]
#[rustfmt::skip]
fn video_full_packet_golden() {
    let data = response_data();
    let payload = &data[..1295];
    let repr = Repr::new(
        5,
        Message::Video(Video { request: 1, first_block: 120, count: 3, index: 0, total: 24, payload }),
    );
    let header = hex(concat!(
        "00 10 ",        // 0..2   class: video
        "01 ",           // 2      one message
        "07 ",           // 3      version
        "02 ",           // 4      flags: linked
        "00 00 05 ",     // 5..8   seq 5
        "0a 01 05 20 ",  // 8..12  VIDEO, flag 01, length 1312 = 1320 - 8
        "00 00 00 01 ",  // 12..16 request id
        "00 00 00 78 ",  // 16..20 first block 120
        "03 ",           // 20     count
        "00 00 ",        // 21..23 index 0
        "00 18 ",        // 23..25 total 24
    ));
    assert_eq!(header.len(), VIDEO_HEADER_LEN);
    let expected = [&header[..], payload].concat();
    assert_eq!(expected.len(), 1320);
    check_golden(&repr, &expected);
    check_header(&expected, 0x0010, 1, 0x02, 5);
    // emit_header writes exactly those 25 bytes.
    let Message::Video(v) = repr.message else { unreachable!() };
    let mut h = [0u8; VIDEO_HEADER_LEN];
    v.emit_header(5, &mut h);
    assert_eq!(&h[..], &header[..]);
    // And segment() produces this packet first.
    assert_eq!(segment(1, 120, &data).unwrap().next(), Some(v));
}

#[test]
#[rustfmt::skip]
fn video_tail_packet_golden() {
    let data = response_data();
    assert_eq!(fragment_count(3), 24);
    let payload = &data[23 * 1295..];
    assert_eq!(payload.len(), 935);
    let repr = Repr::new(
        0x00_0102,
        Message::Video(Video { request: 1, first_block: 120, count: 3, index: 23, total: 24, payload }),
    );
    let header = hex(concat!(
        "00 10 01 07 02 ", // 0..5   class video, 1 message, version 7, flags linked
        "00 01 02 ",       // 5..8   seq 0x102
        "0a 01 03 b8 ",    // 8..12  VIDEO, flag 01, length 952 = 960 - 8
        "00 00 00 01 ",    // 12..16 request id
        "00 00 00 78 ",    // 16..20 first block 120
        "03 ",             // 20     count
        "00 17 ",          // 21..23 index 23
        "00 18 ",          // 23..25 total 24
    ));
    let expected = [&header[..], payload].concat();
    assert_eq!(expected.len(), 960);
    check_golden(&repr, &expected);
    let Message::Video(v) = repr.message else { unreachable!() };
    assert_eq!(segment(1, 120, &data).unwrap().last(), Some(v));
}

#[test]
#[rustfmt::skip]
fn register_golden() {
    let repr = Repr::new(
        0,
        Message::Register(Register { role: Role::Source, channel: CHANNEL, listen_port: 3908, want: 50 }),
    );
    let b = hex(concat!(
        "00 20 ",        // 0..2   class: tracker register
        "01 07 00 ",     // 2..5   one message, version 7, no flags
        "00 00 00 ",     // 5..8   seq 0
        "10 ",           // 8      REGISTER
        "02 ",           // 9      flag = role: source
        "00 0c ",        // 10..12 length 12
        "53 50 00 01 ",  // 12..16 channel
        "0f 44 ",        // 16..18 listen port 3908
        "00 32 ",        // 18..20 want 50
    ));
    check_golden(&repr, &b);
    check_header(&b, 0x0020, 1, 0x00, 0);
}

#[test]
#[rustfmt::skip]
fn query_golden() {
    let repr = Repr::new(7, Message::Query(Query { channel: CHANNEL, listen_port: 4000, want: 200 }));
    let b = hex(concat!(
        "00 21 01 07 00 ", // 0..5   class tracker query, 1 message, version 7, no flags
        "00 00 07 ",       // 5..8   seq 7
        "11 00 00 0c ",    // 8..12  QUERY, flag 0, length 12
        "53 50 00 01 ",    // 12..16 channel
        "0f a0 ",          // 16..18 listen port 4000
        "00 c8 ",          // 18..20 want 200
    ));
    check_golden(&repr, &b);
    check_header(&b, 0x0021, 1, 0x00, 7);
}

#[test]
#[rustfmt::skip]
fn peer_list_empty_golden() {
    let list = PeerList { channel: CHANNEL, verified: false, cookie: 0x00c0_ffee, peers: vec![] };
    let repr = Repr::new(0x12_3456, Message::PeerList(list));
    let b = hex(concat!(
        "00 22 01 07 00 ", // 0..5   class tracker peer list, 1 message, version 7, no flags
        "12 34 56 ",       // 5..8   seq: the request's query id echoed
        "12 00 00 0d ",    // 8..12  PEER_LIST, flag 0, length 13
        "53 50 00 01 ",    // 12..16 channel
        "00 ",             // 16     not verified
        "c0 ff ee ",       // 17..20 cookie
        "00 ",             // 20     0 peers
    ));
    assert_eq!(b.len(), 21);
    check_golden(&repr, &b);
    check_header(&b, 0x0022, 1, 0x00, 0x12_3456);
    // Byte 16 is a flag: 0 or 1, nothing else.
    for v in 2..=255u8 {
        let mut bad = b.clone();
        bad[16] = v;
        assert!(Repr::parse(&bad).is_err(), "verified byte {v:#04x} parses");
    }
    // The cookie has 24 bits: a wider one is sent cut to them.
    let wide = Repr::new(0x12_3456, Message::PeerList(PeerList { cookie: 0xffc0_ffee, ..list_of(&repr) }));
    assert_eq!(wide.to_vec(), b);
}

fn list_of(repr: &Repr<'_>) -> PeerList {
    match &repr.message {
        Message::PeerList(l) => l.clone(),
        other => panic!("not a peer list: {other:?}"),
    }
}

#[test]
#[rustfmt::skip]
fn peer_list_two_peers_golden() {
    let repr = Repr::new(
        9,
        Message::PeerList(PeerList {
            channel: CHANNEL,
            verified: true,
            cookie: 0x0001_2c00,
            peers: vec![addr(198, 18, 0, 11, 3908), addr(198, 19, 255, 254, 3909)],
        }),
    );
    let b = hex(concat!(
        "00 22 01 07 00 ",    // 0..5   class tracker peer list, 1 message, version 7, no flags
        "00 00 09 ",          // 5..8   seq 9
        "12 00 00 19 ",       // 8..12  PEER_LIST, flag 0, length 25
        "53 50 00 01 ",       // 12..16 channel
        "01 ",                // 16     verified
        "01 2c 00 ",          // 17..20 cookie
        "02 ",                // 20     2 peers
        "c6 12 00 0b 0f 44 ", // 21..27 198.18.0.11:3908
        "c6 13 ff fe 0f 45 ", // 27..33 198.19.255.254:3909
    ));
    assert_eq!(b.len(), 33);
    check_golden(&repr, &b);
}

#[test]
#[rustfmt::skip]
fn leave_golden() {
    let repr = Repr::new(0x00_ffff, Message::Leave(Leave { role: Role::Peer, channel: CHANNEL, listen_port: 3908 }));
    let b = hex(concat!(
        "00 23 01 07 00 ", // 0..5   class tracker leave, 1 message, version 7, no flags
        "00 ff ff ",       // 5..8   seq 0xffff
        "13 ",             // 8      LEAVE
        "01 ",             // 9      flag = role: peer
        "00 0c ",          // 10..12 length 12
        "53 50 00 01 ",    // 12..16 channel
        "0f 44 ",          // 16..18 listen port
        "00 00 ",          // 18..20 reserved
    ));
    check_golden(&repr, &b);
    check_header(&b, 0x0023, 1, 0x00, 0xffff);
}

/// The golden vectors are not accepted blindly: one changed byte in a reserved field, in the
/// version or in the size makes parsing fail.
#[test]
fn golden_hello_rejects_single_byte_changes() {
    let good = hello_bytes();
    assert!(Repr::parse(&good).is_ok());
    for at in [3usize, 4, 12, 13, 14, 30, 51] {
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        assert!(Repr::parse(&bad).is_err(), "byte {at} flipped still parses");
    }
    assert!(Repr::parse(&good[..51]).is_err());
}
