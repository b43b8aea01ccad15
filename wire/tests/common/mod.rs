//! Shared helpers for the integration tests: proptest strategies for every [`Message`] variant
//! within the field ranges the wire format accepts, and a small deterministic byte generator.
//!
//! Not every test crate uses every item, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddrV4};

use proptest::prelude::*;
use soplab_wire::video::{fragment_count, fragment_payload_len};
use soplab_wire::{
    BufferMap, COOKIE_MASK, Hello, HelloReply, Leave, LinkAck, LinkStatus, MAP_BLOCKS, MAX_BLOCKS_PER_REQUEST,
    MAX_PEER_LIST, Message, PeerList, PeerSet, Query, Register, Repr, Request, Role, Video,
};

/// Largest 24-bit sequence number the header carries.
pub const SEQ_MAX: u32 = 0x00ff_ffff;

/// A message whose video payload (if any) is owned, so strategies can produce it.
#[derive(Debug, Clone)]
pub enum Owned {
    Plain(Message<'static>),
    Video { request: u32, first_block: u32, count: u8, index: u16, payload: Vec<u8> },
}

impl Owned {
    /// The borrowed [`Message`] this value stands for.
    pub fn message(&self) -> Message<'_> {
        match self {
            Owned::Plain(m) => m.clone(),
            Owned::Video { request, first_block, count, index, payload } => Message::Video(Video {
                request: *request,
                first_block: *first_block,
                count: *count,
                index: *index,
                total: fragment_count(*count),
                payload,
            }),
        }
    }
}

/// splitmix64: a tiny deterministic generator so big payloads come from one shrinkable seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0); the modulo bias is irrelevant for tests.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

pub fn addr() -> impl Strategy<Value = SocketAddrV4> {
    (any::<u32>(), any::<u16>()).prop_map(|(ip, port)| SocketAddrV4::new(Ipv4Addr::from(ip), port))
}

pub fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Peer), Just(Role::Source)]
}

/// A block id: anything below the `u32::MAX` "no block" sentinel, with the edges favoured.
pub fn block_id() -> impl Strategy<Value = u32> {
    prop_oneof![0u32..400, 0..u32::MAX, Just(u32::MAX - 1)]
}

pub fn hello() -> impl Strategy<Value = Hello> {
    (role(), any::<u32>(), any::<u32>(), any::<u16>(), proptest::option::of(block_id()))
        .prop_map(|(role, nonce, channel, listen_port, newest)| Hello { role, nonce, channel, listen_port, newest })
}

pub fn link_status() -> impl Strategy<Value = LinkStatus> {
    prop_oneof![Just(LinkStatus::Accepted), Just(LinkStatus::Full), Just(LinkStatus::WrongChannel)]
}

pub fn link_ack() -> impl Strategy<Value = LinkAck> {
    (link_status(), any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(status, echo, nonce, channel)| LinkAck {
        status,
        echo,
        nonce,
        channel,
    })
}

/// Up to [`PeerSet::CAPACITY`] (8) addresses.
pub fn peer_set() -> impl Strategy<Value = PeerSet> {
    proptest::collection::vec(addr(), 0..=PeerSet::CAPACITY).prop_map(|v| {
        let set: PeerSet = v.iter().copied().collect();
        assert_eq!(set.as_slice(), &v[..]);
        set
    })
}

/// Buffer maps built with [`BufferMap::from_fn`]: bit k of `mask` says whether block
/// `newest - k` is present. Small `newest` values exercise the "no bits below block 0" rule.
pub fn buffer_map() -> impl Strategy<Value = BufferMap> {
    let mask = prop_oneof![
        proptest::array::uniform24(any::<u8>()),
        Just([0xffu8; 24]),
        Just([0u8; 24]),
        (0u32..=MAP_BLOCKS).prop_map(|run| {
            // The `run` newest blocks present, the rest absent.
            let mut m = [0u8; 24];
            for k in 0..run {
                m[(k / 8) as usize] |= 0x80 >> (k % 8);
            }
            m
        }),
    ];
    prop_oneof![
        1 => Just(BufferMap::empty()),
        8 => (block_id(), mask).prop_map(|(newest, mask)| {
            BufferMap::from_fn(newest, |id| {
                let k = newest - id;
                k < MAP_BLOCKS && mask[(k / 8) as usize] & (0x80 >> (k % 8)) != 0
            })
        }),
    ]
}

/// A block count `1..=16` and a first block with `first + count - 1 < u32::MAX`.
pub fn block_range() -> impl Strategy<Value = (u32, u8)> {
    (1..=MAX_BLOCKS_PER_REQUEST).prop_flat_map(|count| {
        let max_first = u32::MAX - u32::from(count);
        (prop_oneof![0..=max_first, 0u32..1000, Just(max_first)], Just(count))
    })
}

pub fn request() -> impl Strategy<Value = Request> {
    (any::<u32>(), block_range(), any::<u32>(), any::<u32>()).prop_map(
        |(request, (first_block, count), channel, token)| Request { request, first_block, count, channel, token },
    )
}

pub fn register() -> impl Strategy<Value = Register> {
    (role(), any::<u32>(), any::<u16>(), any::<u16>()).prop_map(|(role, channel, listen_port, want)| Register {
        role,
        channel,
        listen_port,
        want,
    })
}

pub fn query() -> impl Strategy<Value = Query> {
    (any::<u32>(), any::<u16>(), any::<u16>()).prop_map(|(channel, listen_port, want)| Query {
        channel,
        listen_port,
        want,
    })
}

pub fn leave() -> impl Strategy<Value = Leave> {
    (role(), any::<u32>(), any::<u16>()).prop_map(|(role, channel, listen_port)| Leave { role, channel, listen_port })
}

/// Up to [`MAX_PEER_LIST`] (200) addresses; a 24-bit cookie.
pub fn peer_list() -> impl Strategy<Value = PeerList> {
    (any::<u32>(), any::<bool>(), 0..=COOKIE_MASK, proptest::collection::vec(addr(), 0..=MAX_PEER_LIST))
        .prop_map(|(channel, verified, cookie, peers)| PeerList { channel, verified, cookie, peers })
}

/// One packet of some response: valid count, range, index, and a payload of exactly the length
/// that index carries.
pub fn video() -> impl Strategy<Value = Owned> {
    (any::<u32>(), block_range())
        .prop_flat_map(|(request, (first_block, count))| {
            let total = fragment_count(count);
            (Just(request), Just(first_block), Just(count), prop_oneof![0..total, Just(total - 1)])
        })
        .prop_flat_map(|(request, first_block, count, index)| {
            let len = fragment_payload_len(count, index);
            (Just(request), Just(first_block), Just(count), Just(index), proptest::collection::vec(any::<u8>(), len))
        })
        .prop_map(|(request, first_block, count, index, payload)| Owned::Video {
            request,
            first_block,
            count,
            index,
            payload,
        })
}

/// Any message soplab sends, every variant represented.
pub fn message() -> impl Strategy<Value = Owned> {
    prop_oneof![
        hello().prop_map(|h| Owned::Plain(Message::Hello(h))),
        (link_ack(), peer_set()).prop_map(|(ack, peers)| Owned::Plain(Message::HelloReply(HelloReply { ack, peers }))),
        link_ack().prop_map(|a| Owned::Plain(Message::Ack(a))),
        buffer_map().prop_map(|m| Owned::Plain(Message::KeepAlive(m))),
        request().prop_map(|r| Owned::Plain(Message::Request(r))),
        video(),
        register().prop_map(|r| Owned::Plain(Message::Register(r))),
        query().prop_map(|q| Owned::Plain(Message::Query(q))),
        peer_list().prop_map(|l| Owned::Plain(Message::PeerList(l))),
        leave().prop_map(|l| Owned::Plain(Message::Leave(l))),
    ]
}

/// A 24-bit sequence number, edges favoured.
pub fn seq() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0u32), 0..=SEQ_MAX, Just(SEQ_MAX)]
}

/// A sequence number and a message.
pub fn repr() -> impl Strategy<Value = (u32, Owned)> {
    (seq(), message())
}

/// The bytes of some valid datagram.
pub fn valid_encoding() -> impl Strategy<Value = Vec<u8>> {
    repr().prop_map(|(seq, m)| Repr::new(seq, m.message()).to_vec())
}
