//! Owned representations of every datagram soplab sends, with `parse` (bytes -> value) and
//! `emit` (value -> bytes). Parsing is strict: sizes, flags and reserved bytes must be exactly
//! what `emit` writes, so every valid datagram has one encoding and round-trips bit for bit.

use core::net::{Ipv4Addr, SocketAddrV4};

use crate::packet::{HEADER_LEN, MSG_HEADER_LEN, Packet, put_msg_header};
use crate::video::{self, Video};
use crate::{Error, Result, class, flags, msg, size};

/// Sentinel for "no block yet" in block-id fields.
const NO_BLOCK: u32 = u32::MAX;

// One bounds check and one load per field (indexing byte by byte costs a check per byte).
#[inline]
fn be16(d: &[u8], at: usize) -> u16 {
    u16::from_be_bytes(d[at..at + 2].try_into().unwrap())
}

#[inline]
fn be32(d: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(d[at..at + 4].try_into().unwrap())
}

fn put16(d: &mut [u8], at: usize, v: u16) {
    d[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

fn put32(d: &mut [u8], at: usize, v: u32) {
    d[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// Fails with the offset of the first non-zero byte in `d[range]`. Valid input (all zero) is
/// checked 8 bytes at a time; the offset is only looked for on the (cold) error path.
#[inline]
fn zero(d: &[u8], range: core::ops::Range<usize>) -> Result<()> {
    let r = &d[range.clone()];
    let mut words = r.chunks_exact(8);
    let mut acc = 0u64;
    for w in &mut words {
        acc |= u64::from_ne_bytes(w.try_into().unwrap());
    }
    for &b in words.remainder() {
        acc |= u64::from(b);
    }
    if acc == 0 { Ok(()) } else { Err(first_nonzero(r, range.start)) }
}

#[cold]
#[inline(never)]
fn first_nonzero(r: &[u8], start: usize) -> Error {
    Error::Reserved(start + r.iter().position(|&b| b != 0).unwrap_or(0))
}

fn block_opt(v: u32) -> Option<u32> {
    (v != NO_BLOCK).then_some(v)
}

#[inline]
fn addr_at(d: &[u8], at: usize) -> SocketAddrV4 {
    let a: [u8; 6] = d[at..at + 6].try_into().unwrap();
    SocketAddrV4::new(Ipv4Addr::new(a[0], a[1], a[2], a[3]), u16::from_be_bytes([a[4], a[5]]))
}

fn put_addr(d: &mut [u8], at: usize, a: &SocketAddrV4) {
    d[at..at + 4].copy_from_slice(&a.ip().octets());
    put16(d, at + 4, a.port());
}

/// Bytes of one peer address (IPv4 + port) in peer exchange and tracker lists.
pub const ADDR_LEN: usize = 6;

/// The fixed shape of a datagram class: total size, header flags and its messages.
struct Shape {
    what: &'static str,
    /// Exact size, or `None` when the size depends on the content.
    size: Option<usize>,
    flags: u8,
    /// (type, flag or `None` when the flag is a field, exact length or `None`).
    msgs: &'static [(u8, Option<u8>, Option<usize>)],
}

impl Shape {
    /// True iff `d` is exactly this fixed-size shape as far as the header and message headers go:
    /// then `Packet::check` and `Shape::check` would both pass, so `Repr::parse` can skip them.
    /// Anything else takes the full checks, which find the error to report.
    #[inline(always)]
    fn matches_fixed(&self, d: &[u8]) -> bool {
        let Some(size) = self.size else { return false };
        if d.len() != size || usize::from(d[2]) != self.msgs.len() || d[3] != crate::VERSION || d[4] != self.flags {
            return false;
        }
        let mut at = HEADER_LEN;
        let mut i = 0;
        while i < self.msgs.len() {
            let (kind, flag, mlen) = self.msgs[i];
            let Some(mlen) = mlen else { return false };
            if d[at] != kind || flag.is_some_and(|f| d[at + 1] != f) || usize::from(be16(d, at + 2)) != mlen {
                return false;
            }
            at += mlen;
            i += 1;
        }
        at == size
    }

    /// Checks size, header flags and message types/flags/lengths of a framing-checked packet.
    fn check(&self, p: &Packet<&[u8]>) -> Result<()> {
        let len = p.as_bytes().len();
        if let Some(expected) = self.size
            && len != expected
        {
            return Err(Error::BadSize { what: self.what, len, expected });
        }
        if p.flags() != self.flags {
            return Err(Error::BadFlag { offset: 4, found: p.flags(), expected: self.flags });
        }
        let found = p.count();
        if usize::from(found) != self.msgs.len() {
            return Err(Error::BadCount { declared: found, found: self.msgs.len() as u8 });
        }
        for (m, &(kind, flag, mlen)) in p.messages().zip(self.msgs) {
            if m.kind != kind {
                return Err(Error::UnknownType { found: m.kind, expected: kind });
            }
            if let Some(f) = flag
                && m.flag != f
            {
                return Err(Error::BadFlag { offset: m.offset + 1, found: m.flag, expected: f });
            }
            let total = m.body.len() + MSG_HEADER_LEN;
            if let Some(l) = mlen
                && total != l
            {
                return Err(Error::BadMessageLength { offset: m.offset, found: total, expected: l });
            }
        }
        Ok(())
    }

    /// Writes header and message headers (with their exact lengths) into a zeroed buffer.
    fn emit_headers(&self, buf: &mut [u8], class: u16, seq: u32, flag_fields: &[u8]) {
        let mut p = Packet::new_unchecked(&mut *buf);
        p.set_header(class, self.msgs.len() as u8, self.flags, seq);
        let mut at = HEADER_LEN;
        let mut fields = flag_fields.iter();
        for &(kind, flag, mlen) in self.msgs {
            let flag = flag.unwrap_or_else(|| *fields.next().unwrap_or(&0));
            let mlen = mlen.unwrap_or(buf.len() - at);
            put_msg_header(buf, at, kind, flag, mlen);
            at += mlen;
        }
    }
}

const HELLO: Shape = Shape {
    what: "HELLO",
    size: Some(size::HELLO),
    flags: 0,
    msgs: &[(msg::HELLO, Some(0xff), Some(size::HELLO - HEADER_LEN))],
};
const HELLO_REPLY: Shape = Shape {
    what: "HELLO reply",
    size: Some(size::HELLO_REPLY),
    flags: 0,
    msgs: &[(msg::ACK, Some(0xff), Some(ACK_MSG_LEN)), (msg::PEER_EXCHANGE, None, Some(PEX_MSG_LEN))],
};
const ACK: Shape =
    Shape { what: "ACK", size: Some(size::ACK), flags: 0, msgs: &[(msg::ACK, Some(0x01), Some(ACK_MSG_LEN))] };
const KEEPALIVE: Shape = Shape {
    what: "keep-alive",
    size: Some(size::KEEPALIVE),
    flags: flags::BUFFER_MAP | flags::LINKED,
    msgs: &[(msg::KEEPALIVE, Some(0x01), Some(size::KEEPALIVE - HEADER_LEN))],
};
const REQUEST: Shape = Shape {
    what: "video request",
    size: Some(size::REQUEST),
    flags: flags::LINKED,
    msgs: &[(msg::REQUEST, Some(0x01), Some(size::REQUEST - HEADER_LEN))],
};
const REGISTER: Shape = Shape {
    what: "tracker register",
    size: Some(size::TRACKER_REQUEST),
    flags: 0,
    msgs: &[(msg::REGISTER, None, Some(size::TRACKER_REQUEST - HEADER_LEN))],
};
const QUERY: Shape = Shape {
    what: "tracker query",
    size: Some(size::TRACKER_REQUEST),
    flags: 0,
    msgs: &[(msg::QUERY, Some(0), Some(size::TRACKER_REQUEST - HEADER_LEN))],
};
const LEAVE: Shape = Shape {
    what: "tracker leave",
    size: Some(size::TRACKER_REQUEST),
    flags: 0,
    msgs: &[(msg::LEAVE, None, Some(size::TRACKER_REQUEST - HEADER_LEN))],
};
const PEER_LIST: Shape =
    Shape { what: "tracker peer list", size: None, flags: 0, msgs: &[(msg::PEER_LIST, Some(0), None)] };

/// Length of the acknowledgement message (in the 80-byte reply and the 28-byte ACK).
const ACK_MSG_LEN: usize = 20;
/// Length of the peer-exchange message in the 80-byte reply.
const PEX_MSG_LEN: usize = size::HELLO_REPLY - HEADER_LEN - ACK_MSG_LEN;

/// Who sent a HELLO or a tracker registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Role {
    /// An ordinary peer.
    Peer = 1,
    /// The source provider (SP): serves video, requests none.
    Source = 2,
}

impl Role {
    fn from_u8(v: u8) -> Result<Role> {
        match v {
            1 => Ok(Role::Peer),
            2 => Ok(Role::Source),
            _ => Err(Error::BadField { field: "role", value: v.into() }),
        }
    }
}

/// 52-byte HELLO: opens a link. Bytes 0-1 are `ff ff` because no link exists yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    pub role: Role,
    /// Random challenge; the reply must echo it.
    pub nonce: u32,
    pub channel: u32,
    /// The port the sender listens on (its source port may differ behind a NAT).
    pub listen_port: u16,
    /// The newest block the sender holds, if any.
    pub newest: Option<u32>,
}

impl Hello {
    // Offsets: 12..15 reserved, 15 role, 16 nonce, 20 channel, 24 port, 26 newest, 30..52 reserved.
    #[inline(always)]
    fn parse(d: &[u8]) -> Result<Hello> {
        zero(d, 12..15)?;
        zero(d, 30..size::HELLO)?;
        Ok(Hello {
            role: Role::from_u8(d[15])?,
            nonce: be32(d, 16),
            channel: be32(d, 20),
            listen_port: be16(d, 24),
            newest: block_opt(be32(d, 26)),
        })
    }

    fn emit(&self, d: &mut [u8]) {
        d[15] = self.role as u8;
        put32(d, 16, self.nonce);
        put32(d, 20, self.channel);
        put16(d, 24, self.listen_port);
        put32(d, 26, self.newest.unwrap_or(NO_BLOCK));
    }
}

/// Whether the responder took the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum LinkStatus {
    Accepted = 0,
    /// The responder is at its neighbour limit.
    Full = 1,
    /// The responder is not on the HELLO's channel.
    WrongChannel = 2,
}

/// The acknowledgement message (type 0x01): 16 bytes of body after the message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkAck {
    pub status: LinkStatus,
    /// The nonce being acknowledged.
    pub echo: u32,
    /// In the reply, the responder's own challenge, echoed by the final ACK; in the ACK, the
    /// HELLO's nonce again, so that a responder keeping no state for a HELLO can recheck its
    /// cookie (docs/PROTOCOL.md, ACK).
    pub nonce: u32,
    pub channel: u32,
}

impl LinkAck {
    /// `at` is the message's first byte: 2 reserved, status, echo, nonce, channel.
    #[inline(always)]
    fn parse(d: &[u8], at: usize) -> Result<LinkAck> {
        zero(d, at + 4..at + 6)?;
        let status = match be16(d, at + 6) {
            0 => LinkStatus::Accepted,
            1 => LinkStatus::Full,
            2 => LinkStatus::WrongChannel,
            v => return Err(Error::BadField { field: "link status", value: v.into() }),
        };
        Ok(LinkAck { status, echo: be32(d, at + 8), nonce: be32(d, at + 12), channel: be32(d, at + 16) })
    }

    fn emit(&self, d: &mut [u8], at: usize) {
        put16(d, at + 6, self.status as u16);
        put32(d, at + 8, self.echo);
        put32(d, at + 12, self.nonce);
        put32(d, at + 16, self.channel);
    }
}

/// Up to [`PeerSet::CAPACITY`] peer addresses, stored inline so decoding never allocates.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PeerSet {
    len: u8,
    addrs: [SocketAddrV4; PeerSet::CAPACITY],
}

impl PeerSet {
    /// Addresses that fit in the reply's 48-byte peer-exchange body.
    pub const CAPACITY: usize = (PEX_MSG_LEN - MSG_HEADER_LEN) / ADDR_LEN;

    /// An empty set.
    pub const fn new() -> PeerSet {
        PeerSet { len: 0, addrs: [SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0); PeerSet::CAPACITY] }
    }

    /// Adds an address; returns false when full.
    pub fn push(&mut self, addr: SocketAddrV4) -> bool {
        if usize::from(self.len) == Self::CAPACITY {
            return false;
        }
        self.addrs[usize::from(self.len)] = addr;
        self.len += 1;
        true
    }

    pub fn as_slice(&self) -> &[SocketAddrV4] {
        &self.addrs[..usize::from(self.len)]
    }

    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Default for PeerSet {
    fn default() -> Self {
        PeerSet::new()
    }
}

impl core::fmt::Debug for PeerSet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl FromIterator<SocketAddrV4> for PeerSet {
    /// Takes the first [`PeerSet::CAPACITY`] addresses.
    fn from_iter<I: IntoIterator<Item = SocketAddrV4>>(iter: I) -> PeerSet {
        let mut set = PeerSet::new();
        for a in iter.into_iter().take(Self::CAPACITY) {
            set.push(a);
        }
        set
    }
}

/// 80-byte reply to a HELLO: an acknowledgement (echoing the HELLO's nonce) followed by a
/// peer-exchange message with up to 8 other peers' addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HelloReply {
    pub ack: LinkAck,
    pub peers: PeerSet,
}

impl HelloReply {
    const PEX_AT: usize = HEADER_LEN + ACK_MSG_LEN;

    #[inline(always)]
    fn parse(d: &[u8]) -> Result<HelloReply> {
        let ack = LinkAck::parse(d, HEADER_LEN)?;
        let n = usize::from(d[Self::PEX_AT + 1]);
        if n > PeerSet::CAPACITY {
            return Err(Error::BadField { field: "peer-exchange count", value: n as u32 });
        }
        let first = Self::PEX_AT + MSG_HEADER_LEN;
        zero(d, first + n * ADDR_LEN..size::HELLO_REPLY)?;
        // Unused entries are zero (checked above): 0.0.0.0:0, what `PeerSet::new` holds.
        let body: &[u8; PeerSet::CAPACITY * ADDR_LEN] = d[first..size::HELLO_REPLY].try_into().unwrap();
        let mut peers = PeerSet::new();
        for (i, a) in peers.addrs.iter_mut().enumerate() {
            *a = addr_at(body, i * ADDR_LEN);
        }
        peers.len = n as u8;
        Ok(HelloReply { ack, peers })
    }

    fn emit(&self, d: &mut [u8]) {
        self.ack.emit(d, HEADER_LEN);
        let first = Self::PEX_AT + MSG_HEADER_LEN;
        for (i, a) in self.peers.as_slice().iter().enumerate() {
            put_addr(d, first + i * ADDR_LEN, a);
        }
    }
}

/// Blocks a keep-alive's buffer map covers, newest first.
pub const MAP_BLOCKS: u32 = 192;
const MAP_BYTES: usize = (MAP_BLOCKS / 8) as usize;

/// A buffer map: the newest block the sender holds and which of the [`MAP_BLOCKS`] blocks up to
/// it are present. Bit k (most significant bit first) stands for block `newest - k`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BufferMap {
    newest: Option<u32>,
    bits: [u8; MAP_BYTES],
}

impl BufferMap {
    /// A map of a peer that holds nothing yet.
    pub const fn empty() -> BufferMap {
        BufferMap { newest: None, bits: [0; MAP_BYTES] }
    }

    /// A map whose newest block is `newest`, with `has(id)` telling which blocks are present.
    pub fn from_fn(newest: u32, mut has: impl FnMut(u32) -> bool) -> BufferMap {
        let newest = newest.min(NO_BLOCK - 1);
        let mut map = BufferMap { newest: Some(newest), bits: [0; MAP_BYTES] };
        for k in 0..MAP_BLOCKS.min(newest + 1) {
            if has(newest - k) {
                map.bits[(k / 8) as usize] |= 0x80 >> (k % 8);
            }
        }
        map
    }

    pub fn newest(&self) -> Option<u32> {
        self.newest
    }

    /// Whether the map says `block` is present; blocks older than the window read as absent.
    pub fn contains(&self, block: u32) -> bool {
        let Some(newest) = self.newest else { return false };
        let Some(k) = newest.checked_sub(block) else { return false };
        k < MAP_BLOCKS && self.bits[(k / 8) as usize] & (0x80 >> (k % 8)) != 0
    }

    /// The raw bitmap bytes.
    pub fn bits(&self) -> &[u8; MAP_BYTES] {
        &self.bits
    }

    // Offsets: 12..14 reserved, 14 newest, 18..42 bitmap.
    #[inline(always)]
    fn parse(d: &[u8]) -> Result<BufferMap> {
        zero(d, 12..14)?;
        let newest = block_opt(be32(d, 14));
        let mut bits = [0u8; MAP_BYTES];
        bits.copy_from_slice(&d[18..18 + MAP_BYTES]);
        if newest.is_none() && bits != [0; MAP_BYTES] {
            return Err(Error::BadField { field: "buffer map without a newest block", value: 0 });
        }
        // Bits for blocks below id 0 cannot be set.
        if let Some(n) = newest
            && n + 1 < MAP_BLOCKS
        {
            for k in n + 1..MAP_BLOCKS {
                if bits[(k / 8) as usize] & (0x80 >> (k % 8)) != 0 {
                    return Err(Error::BadField { field: "buffer map bit below block 0", value: k });
                }
            }
        }
        Ok(BufferMap { newest, bits })
    }

    fn emit(&self, d: &mut [u8]) {
        put32(d, 14, self.newest.unwrap_or(NO_BLOCK));
        d[18..18 + MAP_BYTES].copy_from_slice(&self.bits);
    }
}

/// 46-byte video request: a child asks a parent for `count` blocks from `first_block` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Chosen by the child; the parent echoes it in every video packet of the response.
    pub request: u32,
    pub first_block: u32,
    /// 1..=[`video::MAX_BLOCKS_PER_REQUEST`].
    pub count: u8,
    pub channel: u32,
    /// The link's token ([`link_token`]): only the neighbour that completed the handshake
    /// knows it, so a request spoofed from its address is told apart. Any value.
    pub token: u32,
}

impl Request {
    // Offsets: 12..14 reserved, 14 request, 18 first block, 22 count, 23 reserved, 24 channel,
    // 28 token, 32..46 reserved.
    #[inline(always)]
    fn parse(d: &[u8]) -> Result<Request> {
        zero(d, 12..14)?;
        zero(d, 23..24)?;
        zero(d, 32..size::REQUEST)?;
        let count = d[22];
        video::check_count(count)?;
        let first_block = be32(d, 18);
        video::check_range(first_block, count)?;
        Ok(Request { request: be32(d, 14), first_block, count, channel: be32(d, 24), token: be32(d, 28) })
    }

    fn emit(&self, d: &mut [u8]) {
        put32(d, 14, self.request);
        put32(d, 18, self.first_block);
        d[22] = self.count;
        put32(d, 24, self.channel);
        put32(d, 28, self.token);
    }
}

/// The token of a link opened by a HELLO with nonce `hello_nonce` answered by a reply with
/// nonce `reply_nonce`: what a child puts in its requests on that link, and what the parent
/// checks. Both ends know both nonces after the handshake, and nobody off the path sees either
/// (they are random, and travel only between the two addresses), so nobody else can compute
/// it. It is the XOR of the two, so a responder can keep a link's token through a new
/// handshake by answering nonce `h` with `token ^ h` (docs/PROTOCOL.md, "Link token").
pub const fn link_token(hello_nonce: u32, reply_nonce: u32) -> u32 {
    hello_nonce ^ reply_nonce
}

/// Tracker registration (20 bytes): adds the sender to a channel's list (or refreshes its
/// entry) and asks for up to `want` peers back. The message flag carries the [`Role`].
///
/// The tracker lists the sender only if the datagram's sequence number is the cookie of the
/// tracker's last [`PeerList`] to it (proof that the sender receives what is sent to its
/// address); otherwise the sequence number is a query id the asker chose at random. Either
/// way the peer list answering it echoes the sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Register {
    pub role: Role,
    pub channel: u32,
    pub listen_port: u16,
    pub want: u16,
}

/// Tracker query (20 bytes): asks for up to `want` peers without registering. Its sequence
/// number is a cookie or a query id, as in a [`Register`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query {
    pub channel: u32,
    /// The asker's listening port, so the tracker can leave the asker out of the answer.
    pub listen_port: u16,
    pub want: u16,
}

/// Tracker leave (20 bytes): removes the sender's entry at once, if its sequence number is
/// the sender's cookie (so nobody else can remove it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leave {
    pub role: Role,
    pub channel: u32,
    pub listen_port: u16,
}

/// Most addresses one tracker peer list carries (keeps the datagram under 1320 bytes).
pub const MAX_PEER_LIST: usize = 200;

/// The bits of a tracker cookie: it comes back as a request's 24-bit sequence number.
pub const COOKIE_MASK: u32 = crate::packet::SEQ_MASK;

/// Tracker peer list: `21 + 6k` bytes for k peers, always odd, so it can never be taken for a
/// peer control packet (all even) by a size-based classifier.
///
/// It answers one request: its sequence number echoes the request's, which the asker checks
/// against the request it has outstanding, so that a list merely sent from the tracker's
/// address is not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerList {
    pub channel: u32,
    /// The request carried a valid cookie: a register was listed (or refreshed), a query got
    /// a full list. Otherwise the list holds at most a few peers and nothing was listed.
    pub verified: bool,
    /// The tracker's cookie for the asker's address (the low 24 bits, [`COOKIE_MASK`], are
    /// sent): the sequence number its next register, query or leave proves itself with.
    pub cookie: u32,
    /// At most [`MAX_PEER_LIST`].
    pub peers: Vec<SocketAddrV4>,
}

impl PeerList {
    const FIXED: usize = HEADER_LEN + MSG_HEADER_LEN + 9;

    /// Datagram size for `k` peers.
    pub const fn size_for(k: usize) -> usize {
        Self::FIXED + k * ADDR_LEN
    }

    fn parse(d: &[u8]) -> Result<PeerList> {
        let k = usize::from(d[20]);
        if k > MAX_PEER_LIST {
            return Err(Error::BadField { field: "peer list count", value: k as u32 });
        }
        if d.len() != Self::size_for(k) {
            return Err(Error::BadSize { what: "tracker peer list", len: d.len(), expected: Self::size_for(k) });
        }
        let verified = match d[16] {
            0 => false,
            1 => true,
            v => return Err(Error::BadField { field: "peer list verified", value: v.into() }),
        };
        let peers = (0..k).map(|i| addr_at(d, Self::FIXED + i * ADDR_LEN)).collect();
        Ok(PeerList { channel: be32(d, 12), verified, cookie: be32(d, 16) & COOKIE_MASK, peers })
    }

    fn emit(&self, d: &mut [u8]) {
        put32(d, 12, self.channel);
        put32(d, 16, self.cookie & COOKIE_MASK);
        d[16] = u8::from(self.verified);
        d[20] = self.peers.len().min(MAX_PEER_LIST) as u8;
        for (i, a) in self.peers.iter().take(MAX_PEER_LIST).enumerate() {
            put_addr(d, Self::FIXED + i * ADDR_LEN, a);
        }
    }
}

/// Every message soplab sends, one variant per datagram class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    Hello(Hello),
    HelloReply(HelloReply),
    /// The 28-byte third step of link set-up, echoing the reply's nonce.
    Ack(LinkAck),
    KeepAlive(BufferMap),
    Request(Request),
    Video(Video<'a>),
    Register(Register),
    Query(Query),
    PeerList(PeerList),
    Leave(Leave),
}

/// A decoded datagram: the header's sequence number and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repr<'a> {
    /// 24-bit per-link datagram counter (0 on HELLO).
    pub seq: u32,
    pub message: Message<'a>,
}

impl<'a> Repr<'a> {
    /// Decodes one datagram. Never panics; allocates only for a tracker peer list, at most
    /// [`MAX_PEER_LIST`] addresses.
    pub fn parse(bytes: &'a [u8]) -> Result<Repr<'a>> {
        // Fast path for well-formed peer control packets: their fixed headers are compared in
        // place of the generic framing walk and shape check (same result, fewer instructions).
        if bytes.len() >= HEADER_LEN {
            let seq = u32::from_be_bytes([0, bytes[5], bytes[6], bytes[7]]);
            let d = bytes;
            let message = match be16(d, 0) {
                class::HELLO if HELLO.matches_fixed(d) => Some(Message::Hello(Hello::parse(d)?)),
                class::HELLO_REPLY if HELLO_REPLY.matches_fixed(d) => Some(Message::HelloReply(HelloReply::parse(d)?)),
                class::ACK if ACK.matches_fixed(d) => Some(Message::Ack(LinkAck::parse(d, HEADER_LEN)?)),
                class::KEEPALIVE if KEEPALIVE.matches_fixed(d) => Some(Message::KeepAlive(BufferMap::parse(d)?)),
                class::REQUEST if REQUEST.matches_fixed(d) => Some(Message::Request(Request::parse(d)?)),
                _ => None,
            };
            if let Some(message) = message {
                return Ok(Repr { seq, message });
            }
        }
        let p = Packet::new_checked(bytes)?;
        let d = bytes;
        let message = match p.class() {
            class::HELLO => {
                HELLO.check(&p)?;
                Message::Hello(Hello::parse(d)?)
            }
            class::HELLO_REPLY => {
                HELLO_REPLY.check(&p)?;
                Message::HelloReply(HelloReply::parse(d)?)
            }
            class::ACK => {
                ACK.check(&p)?;
                Message::Ack(LinkAck::parse(d, HEADER_LEN)?)
            }
            class::KEEPALIVE => {
                KEEPALIVE.check(&p)?;
                Message::KeepAlive(BufferMap::parse(d)?)
            }
            class::REQUEST => {
                REQUEST.check(&p)?;
                Message::Request(Request::parse(d)?)
            }
            class::VIDEO => Message::Video(Video::parse(&p)?),
            class::REGISTER => {
                REGISTER.check(&p)?;
                Message::Register(Register {
                    role: Role::from_u8(d[9])?,
                    channel: be32(d, 12),
                    listen_port: be16(d, 16),
                    want: be16(d, 18),
                })
            }
            class::QUERY => {
                QUERY.check(&p)?;
                Message::Query(Query { channel: be32(d, 12), listen_port: be16(d, 16), want: be16(d, 18) })
            }
            class::LEAVE => {
                LEAVE.check(&p)?;
                zero(d, 18..20)?;
                Message::Leave(Leave { role: Role::from_u8(d[9])?, channel: be32(d, 12), listen_port: be16(d, 16) })
            }
            class::PEER_LIST => {
                PEER_LIST.check(&p)?;
                if d.len() < PeerList::FIXED {
                    return Err(Error::TooShort { len: d.len(), need: PeerList::FIXED });
                }
                Message::PeerList(PeerList::parse(d)?)
            }
            other => return Err(Error::UnknownClass(other)),
        };
        Ok(Repr { seq: p.seq(), message })
    }

    /// A representation with sequence number `seq`.
    pub fn new(seq: u32, message: Message<'a>) -> Repr<'a> {
        Repr { seq, message }
    }

    /// The encoded size in bytes: the UDP payload length `tcpdump` shows.
    pub fn buffer_len(&self) -> usize {
        match &self.message {
            Message::Hello(_) => size::HELLO,
            Message::HelloReply(_) => size::HELLO_REPLY,
            Message::Ack(_) => size::ACK,
            Message::KeepAlive(_) => size::KEEPALIVE,
            Message::Request(_) => size::REQUEST,
            Message::Video(v) => v.buffer_len(),
            Message::Register(_) | Message::Query(_) | Message::Leave(_) => size::TRACKER_REQUEST,
            Message::PeerList(l) => PeerList::size_for(l.peers.len().min(MAX_PEER_LIST)),
        }
    }

    /// Encodes into `buf[..self.buffer_len()]` and returns that length.
    ///
    /// # Panics
    /// If `buf` is shorter than [`Repr::buffer_len`] (a caller bug, never an input problem).
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let len = self.buffer_len();
        let d = &mut buf[..len];
        if let Message::Video(v) = &self.message {
            v.emit(self.seq, d);
            return len;
        }
        d.fill(0);
        let seq = self.seq;
        match &self.message {
            Message::Hello(h) => {
                HELLO.emit_headers(d, class::HELLO, seq, &[]);
                h.emit(d);
            }
            Message::HelloReply(r) => {
                HELLO_REPLY.emit_headers(d, class::HELLO_REPLY, seq, &[r.peers.len() as u8]);
                r.emit(d);
            }
            Message::Ack(a) => {
                ACK.emit_headers(d, class::ACK, seq, &[]);
                a.emit(d, HEADER_LEN);
            }
            Message::KeepAlive(m) => {
                KEEPALIVE.emit_headers(d, class::KEEPALIVE, seq, &[]);
                m.emit(d);
            }
            Message::Request(r) => {
                REQUEST.emit_headers(d, class::REQUEST, seq, &[]);
                r.emit(d);
            }
            Message::Register(r) => {
                REGISTER.emit_headers(d, class::REGISTER, seq, &[r.role as u8]);
                put32(d, 12, r.channel);
                put16(d, 16, r.listen_port);
                put16(d, 18, r.want);
            }
            Message::Query(q) => {
                QUERY.emit_headers(d, class::QUERY, seq, &[]);
                put32(d, 12, q.channel);
                put16(d, 16, q.listen_port);
                put16(d, 18, q.want);
            }
            Message::Leave(l) => {
                LEAVE.emit_headers(d, class::LEAVE, seq, &[l.role as u8]);
                put32(d, 12, l.channel);
                put16(d, 16, l.listen_port);
            }
            Message::PeerList(l) => {
                PEER_LIST.emit_headers(d, class::PEER_LIST, seq, &[]);
                l.emit(d);
            }
            Message::Video(_) => unreachable!("handled above"),
        }
        len
    }

    /// Encodes into a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v);
        v
    }
}
