//! Criterion benchmarks of the wire codec (`soplab-wire`).
//!
//! ```text
//! cargo bench -p soplab-benches --bench wire -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Groups:
//! - `encode/<msg>`: `Repr::emit` into a reused buffer;
//! - `decode/<msg>`: `Repr::parse` (framing, strict validation, decoding);
//! - `video/...`: cutting a 10-block (102,400-byte) response into packets and putting it back
//!   together with a `Reassembler` that lives across iterations, as in a daemon.
//!
//! Targets (docs/PERFORMANCE.md): decode+validate a control message in <= 20 ns, segment+
//! reassemble 10 blocks in <= 2 us.

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddrV4};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use soplab_wire::video::Insert;
use soplab_wire::{
    BLOCK_LEN, BufferMap, Hello, HelloReply, LinkAck, LinkStatus, Message, PeerList, PeerSet, Reassembler, Register,
    Repr, Request, Role, Video, segment,
};

const CHANNEL: u32 = 0x5350_0001;
/// Blocks in the response of the `video/*` benchmarks.
const BLOCKS: usize = 10;

fn peer(i: usize) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(198, 18, (i >> 8) as u8, i as u8), 8900 + i as u16)
}

/// 10 blocks of recognisable (non-zero) bytes.
fn response() -> Vec<u8> {
    (0..BLOCKS * BLOCK_LEN).map(|i| (i * 31 + 7) as u8).collect()
}

/// One representative value of each benchmarked message, by name. The video packet borrows
/// its payload from `data`.
fn samples(data: &[u8]) -> Vec<(&'static str, Repr<'_>)> {
    let full_video = segment(42, 1000, data).expect("10 whole blocks").next().expect("first packet");
    assert_eq!(full_video.buffer_len(), soplab_wire::size::VIDEO_MAX);
    vec![
        (
            "hello",
            Repr::new(
                0,
                Message::Hello(Hello {
                    role: Role::Peer,
                    nonce: 0xdead_beef,
                    channel: CHANNEL,
                    listen_port: 8902,
                    newest: Some(123_456),
                }),
            ),
        ),
        (
            "hello_reply_8_peers",
            Repr::new(
                1,
                Message::HelloReply(HelloReply {
                    ack: LinkAck {
                        status: LinkStatus::Accepted,
                        echo: 0xdead_beef,
                        nonce: 0x1234_5678,
                        channel: CHANNEL,
                    },
                    peers: (0..PeerSet::CAPACITY).map(peer).collect(),
                }),
            ),
        ),
        (
            "ack",
            Repr::new(
                2,
                Message::Ack(LinkAck { status: LinkStatus::Accepted, echo: 0x1234_5678, nonce: 0, channel: CHANNEL }),
            ),
        ),
        ("keepalive", Repr::new(3, Message::KeepAlive(BufferMap::from_fn(123_456, |id| id % 7 != 3)))),
        (
            "request",
            Repr::new(
                4,
                Message::Request(Request {
                    request: 42,
                    first_block: 1000,
                    count: BLOCKS as u8,
                    channel: CHANNEL,
                    token: 0x5eed_70ce,
                }),
            ),
        ),
        ("video_full", Repr::new(5, Message::Video(full_video))),
        (
            "tracker_register",
            Repr::new(
                6,
                Message::Register(Register { role: Role::Peer, channel: CHANNEL, listen_port: 8902, want: 50 }),
            ),
        ),
        (
            "tracker_peer_list_50",
            Repr::new(
                7,
                Message::PeerList(PeerList {
                    channel: CHANNEL,
                    verified: true,
                    cookie: 1234,
                    peers: (0..50).map(peer).collect(),
                }),
            ),
        ),
    ]
}

fn codec(c: &mut Criterion) {
    let data = response();
    let samples = samples(&data);
    let mut buf = [0u8; 1500];

    let mut encode = c.benchmark_group("encode");
    for (name, repr) in &samples {
        encode.throughput(Throughput::Bytes(repr.buffer_len() as u64));
        encode.bench_function(*name, |b| b.iter(|| black_box(repr).emit(black_box(&mut buf[..]))));
    }
    encode.finish();

    let mut decode = c.benchmark_group("decode");
    for (name, repr) in &samples {
        let bytes = repr.to_vec();
        assert_eq!(Repr::parse(&bytes).as_ref(), Ok(repr), "{name} must round-trip");
        decode.throughput(Throughput::Bytes(bytes.len() as u64));
        // The result (an `Ok(Repr)`, including the peer list's vector) goes through
        // criterion's black_box and is dropped inside the timed loop.
        decode.bench_function(*name, |b| b.iter(|| Repr::parse(black_box(&bytes[..]))));
    }
    decode.finish();
}

fn video(c: &mut Criterion) {
    let data = response();
    let mut group = c.benchmark_group("video");
    group.throughput(Throughput::Bytes(data.len() as u64));

    // Cut and reassemble in one loop: the borrowing segmenter hands each packet straight to a
    // reassembler that is created once and reused (its buffer comes back from its spare list).
    // The reassembler answers packets of a response it has just completed with `Duplicate`, so
    // every iteration uses a new key, as a new response from another parent would.
    let mut reasm: Reassembler<u64> = Reassembler::new(8);
    let mut key = 0u64;
    group.bench_function("segment+reassemble_10_blocks", |b| {
        b.iter(|| {
            key += 1;
            for v in segment(black_box(42), black_box(1000), black_box(&data[..])).expect("10 whole blocks") {
                if let Insert::Complete(done) = reasm.insert(key, 0, &v).expect("valid packet") {
                    black_box(&done);
                    return done.data.len();
                }
            }
            unreachable!("the last packet completes the response")
        })
    });

    // Segmentation alone, writing every full datagram (header + payload copy) into a reused
    // buffer as a sender does before `send_to`.
    let mut buf = [0u8; soplab_wire::size::VIDEO_MAX];
    group.bench_function("segment_emit_10_blocks", |b| {
        b.iter(|| {
            let mut sent = 0;
            for (seq, v) in
                segment(black_box(42), black_box(1000), black_box(&data[..])).expect("10 whole blocks").enumerate()
            {
                v.emit(seq as u32, &mut buf);
                sent += black_box(&buf[..v.buffer_len()]).len();
            }
            sent
        })
    });

    // Segmentation alone without copying: only the borrowing iterator.
    group.bench_function("segment_only_10_blocks", |b| {
        b.iter(|| {
            segment(black_box(42), black_box(1000), black_box(&data[..]))
                .expect("10 whole blocks")
                .map(|v| black_box(v).payload.len())
                .sum::<usize>()
        })
    });

    // Reassembly alone, from packets cut beforehand.
    let packets: Vec<Video<'_>> = segment(42, 1000, &data).expect("10 whole blocks").collect();
    group.bench_function("reassemble_10_blocks", |b| {
        b.iter(|| {
            key += 1;
            for v in black_box(&packets[..]) {
                if let Insert::Complete(done) = reasm.insert(key, 0, v).expect("valid packet") {
                    black_box(&done);
                    return done.data.len();
                }
            }
            unreachable!("the last packet completes the response")
        })
    });

    // The whole receive path: parse + validate each datagram, then reassemble.
    let datagrams: Vec<Vec<u8>> =
        packets.iter().enumerate().map(|(seq, v)| Repr::new(seq as u32, Message::Video(*v)).to_vec()).collect();
    group.bench_function("parse+reassemble_10_blocks", |b| {
        b.iter(|| {
            key += 1;
            for d in black_box(&datagrams[..]) {
                let Ok(Repr { message: Message::Video(v), .. }) = Repr::parse(d) else {
                    unreachable!("valid datagram")
                };
                if let Insert::Complete(done) = reasm.insert(key, 0, &v).expect("valid packet") {
                    black_box(&done);
                    return done.data.len();
                }
            }
            unreachable!("the last packet completes the response")
        })
    });
    assert_eq!(reasm.in_progress(), 0, "every response completed");
    group.finish();
}

/// What the copies in `video/*` cost on their own on this machine: the floor for any
/// reassembler that copies each payload once.
fn baseline(c: &mut Criterion) {
    let data = response();
    let mut dst = vec![0u8; data.len()];
    let mut group = c.benchmark_group("baseline");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("memcpy_102400", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&data[..]));
            black_box(&mut dst[..]);
        })
    });
    group.bench_function("memcpy_80x1295", |b| {
        b.iter(|| {
            for (d, s) in dst.chunks_mut(1295).zip(black_box(&data[..]).chunks(1295)) {
                d.copy_from_slice(s);
            }
            black_box(&mut dst[..]);
        })
    });
    group.bench_function("memset_102400", |b| {
        b.iter(|| {
            dst.fill(black_box(0));
            black_box(&mut dst[..]);
        })
    });
    group.finish();
}

criterion_group!(benches, codec, video, baseline);
criterion_main!(benches);
