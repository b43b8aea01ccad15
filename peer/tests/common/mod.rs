//! The test-played world around one peer core, shared by the peer's integration tests: the
//! test is the network and every other party. It plays the other side of HELLO -> reply ->
//! ACK with `soplab_wire`, sends keep-alives, answers (or withholds) the peer's video requests
//! (checking that they carry the link's token), and records what the peer sends and raises.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, SocketAddrV4};

use soplab_node::{DropReason, Event, Media, Micros, Node, SECOND, Transmit};
use soplab_peer::{Peer, PeerConfig};
use soplab_testkit::v4;
use soplab_wire::{
    BLOCK_LEN, BufferMap, Hello, HelloReply, LinkAck, LinkStatus, Message, PeerList, PeerSet, Repr, Request, Role,
    link_token, segment,
};

pub const CHANNEL: u32 = 7;

/// The peer under test.
pub fn me() -> SocketAddr {
    v4(10, 0, 0, 1, 4000)
}

pub fn tracker() -> SocketAddr {
    v4(10, 0, 0, 2, 3900)
}

/// Other peers, played by the test (`i < 65536`).
pub fn remote(i: u32) -> SocketAddr {
    v4(10, 1, (i >> 8) as u8, i as u8, 5000)
}

/// Addresses the peer has no link with (`i < 65536`).
pub fn stranger(i: u32) -> SocketAddr {
    v4(10, 2, (i >> 8) as u8, i as u8, 6000)
}

// ---- content and datagrams ----

/// The stream's block `id`: pseudo-random bytes (splitmix64), distinct per block.
pub fn content(id: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(BLOCK_LEN);
    let mut x = u64::from(id).wrapping_mul(0xd1b5_4a32_d192_ed03) ^ 0x5eed;
    while out.len() < BLOCK_LEN {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out
}

pub fn blocks(first: u32, count: u8) -> Vec<u8> {
    (first..first + u32::from(count)).flat_map(content).collect()
}

pub fn dgram(seq: u32, m: Message<'_>) -> Vec<u8> {
    Repr::new(seq, m).to_vec()
}

pub fn hello_bytes(channel: u32, nonce: u32) -> Vec<u8> {
    dgram(0, Message::Hello(Hello { role: Role::Peer, nonce, channel, listen_port: 5000, newest: None }))
}

pub fn reply_bytes(status: LinkStatus, echo: u32, nonce: u32, peers: PeerSet) -> Vec<u8> {
    dgram(0, Message::HelloReply(HelloReply { ack: LinkAck { status, echo, nonce, channel: CHANNEL }, peers }))
}

/// The ACK completing a handshake: it echoes the reply's nonce and carries the HELLO's.
pub fn ack_bytes(echo: u32, hello_nonce: u32) -> Vec<u8> {
    dgram(1, Message::Ack(LinkAck { status: LinkStatus::Accepted, echo, nonce: hello_nonce, channel: CHANNEL }))
}

pub fn keepalive_bytes(map: BufferMap) -> Vec<u8> {
    dgram(2, Message::KeepAlive(map))
}

pub fn request_bytes(request: u32, first_block: u32, count: u8, channel: u32, token: u32) -> Vec<u8> {
    dgram(3, Message::Request(Request { request, first_block, count, channel, token }))
}

/// The packets of a correct response to `request`.
pub fn video_packets(request: u32, first_block: u32, count: u8) -> Vec<Vec<u8>> {
    let data = blocks(first_block, count);
    segment(request, first_block, &data).expect("whole blocks").map(|v| dgram(4, Message::Video(v))).collect()
}

pub fn parse(payload: &[u8]) -> Message<'_> {
    Repr::parse(payload).expect("the peer emits valid datagrams").message
}

// ---- the harness ----

/// What a remote neighbour announces in its keep-alives.
#[derive(Debug, Clone, Copy)]
pub enum Map {
    /// Holds nothing.
    Empty,
    /// A live stream: every block up to `base + (now - t0) / block interval`.
    Live { base: u32, t0: Micros },
}

#[derive(Debug, Clone, Copy)]
pub struct Remote {
    pub map: Map,
    /// Answers the peer's requests at once with correct video.
    pub serve: bool,
    /// The link's token, which the peer's requests must carry.
    pub token: u32,
}

pub type Tamper = Box<dyn FnMut(Vec<Vec<u8>>) -> Vec<Vec<u8>>>;

/// One peer and the test-played world around it. Delivery is instantaneous.
pub struct Harness {
    pub peer: Peer,
    pub now: Micros,
    pub interval: Micros,
    pub remotes: BTreeMap<SocketAddr, Remote>,
    pub next_keepalive: Micros,
    /// Datagrams the peer sent that no serving remote consumed, in order.
    pub out: Vec<Transmit>,
    pub events: Vec<Event>,
    pub played: Vec<Media>,
    /// Blocks the peer received whole (from `ResponseReceived`).
    pub received: BTreeSet<u32>,
    /// Rewrites the packets of each response a serving remote sends.
    pub tamper: Option<Tamper>,
}

pub fn newest_of(map: Map, now: Micros, interval: Micros) -> Option<u32> {
    match map {
        Map::Empty => None,
        Map::Live { base, t0 } => Some(base + (now.saturating_sub(t0) / interval) as u32),
    }
}

pub fn buffer_map(map: Map, now: Micros, interval: Micros) -> BufferMap {
    match newest_of(map, now, interval) {
        Some(n) => BufferMap::from_fn(n, |_| true),
        None => BufferMap::empty(),
    }
}

impl Harness {
    pub fn new(tweak: impl FnOnce(&mut PeerConfig)) -> Harness {
        let mut cfg = PeerConfig::peer(me(), tracker(), CHANNEL, 42);
        tweak(&mut cfg);
        Harness::around(Peer::new(cfg, None))
    }

    /// The world around `peer` (at [`me`], on [`CHANNEL`]).
    pub fn around(peer: Peer) -> Harness {
        let interval = peer.config().block_interval();
        let mut h = Harness {
            peer,
            now: 0,
            interval,
            remotes: BTreeMap::new(),
            next_keepalive: SECOND,
            out: Vec::new(),
            events: Vec::new(),
            played: Vec::new(),
            received: BTreeSet::new(),
            tamper: None,
        };
        h.peer.handle_timeout(0);
        h.pump();
        h
    }

    /// A peer holding a few seconds of a live stream, fetched from the serving parent
    /// `remote(0)`.
    pub fn stocked(tweak: impl FnOnce(&mut PeerConfig)) -> Harness {
        let mut h = Harness::new(tweak);
        h.link(remote(0), Map::Live { base: 1000, t0: 0 }, true);
        h.advance(3 * SECOND);
        assert!(h.received.len() >= 20, "the peer fetched only {} blocks", h.received.len());
        h
    }

    pub fn deliver(&mut self, from: SocketAddr, data: &[u8]) {
        self.peer.handle_datagram(self.now, from, data);
        self.pump();
    }

    /// Collects everything the peer has to say; serving remotes answer requests at once.
    pub fn pump(&mut self) {
        for _ in 0..100_000 {
            let mut inbound: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
            while let Some(t) = self.peer.poll_transmit(self.now) {
                let serving = self.remotes.get(&t.dst).filter(|r| r.serve).map(|r| r.map);
                match (serving, Repr::parse(&t.payload)) {
                    (Some(map), Ok(Repr { message: Message::Request(q), .. })) => {
                        assert_eq!(q.channel, CHANNEL, "request on another channel");
                        assert_eq!(q.token, self.remotes[&t.dst].token, "request without the link's token");
                        let newest = newest_of(map, self.now, self.interval);
                        let last = q.first_block + u32::from(q.count) - 1;
                        assert!(
                            newest.is_some_and(|n| last <= n),
                            "peer asked {} for block {last}, which it never announced (newest {newest:?})",
                            t.dst
                        );
                        let mut packets = video_packets(q.request, q.first_block, q.count);
                        if let Some(f) = self.tamper.as_mut() {
                            packets = f(packets);
                        }
                        inbound.extend(packets.into_iter().map(|p| (t.dst, p)));
                    }
                    _ => self.out.push(t),
                }
            }
            self.drain_events();
            if inbound.is_empty() {
                return;
            }
            for (from, d) in inbound {
                self.peer.handle_datagram(self.now, from, &d);
            }
        }
        panic!("the peer kept talking: pump did not settle");
    }

    pub fn drain_events(&mut self) {
        while let Some(e) = self.peer.poll_event() {
            if let Event::ResponseReceived { first_block, count, .. } = e {
                self.received.extend(first_block..first_block + u32::from(count));
            }
            self.events.push(e);
        }
        while let Some(m) = self.peer.poll_media() {
            self.played.push(m);
        }
    }

    /// Runs the peer's timers and the remotes' keep-alives (every second) until `end`.
    pub fn run_until(&mut self, end: Micros) {
        let mut steps = 0u64;
        loop {
            let due = self.peer.poll_timeout().unwrap_or(Micros::MAX);
            let t = due.min(self.next_keepalive);
            if t > end {
                break;
            }
            steps += 1;
            assert!(steps < 10_000_000, "timer livelock at {} us", self.now);
            self.now = self.now.max(t);
            if self.next_keepalive <= self.now {
                self.next_keepalive = self.now + SECOND;
                let maps: Vec<(SocketAddr, BufferMap)> =
                    self.remotes.iter().map(|(a, r)| (*a, buffer_map(r.map, self.now, self.interval))).collect();
                for (a, m) in maps {
                    self.peer.handle_datagram(self.now, a, &keepalive_bytes(m));
                }
                self.pump();
            }
            if due <= self.now {
                self.peer.handle_timeout(self.now);
                self.pump();
            }
        }
        self.now = self.now.max(end);
    }

    pub fn advance(&mut self, d: Micros) {
        self.run_until(self.now + d);
    }

    /// Removes and returns every datagram sent to `to` so far.
    pub fn take(&mut self, to: SocketAddr) -> Vec<Vec<u8>> {
        let (mine, rest): (Vec<Transmit>, Vec<Transmit>) = self.out.drain(..).partition(|t| t.dst == to);
        self.out = rest;
        mine.into_iter().map(|t| t.payload).collect()
    }

    /// A tracker peer list of `peers` on `channel` answering the peer's latest register: it
    /// echoes the register's query id, as the tracker does.
    pub fn tracker_answer(&mut self, channel: u32, peers: Vec<SocketAddrV4>) -> Vec<u8> {
        let seq = (self.take(tracker()).iter().rev())
            .find_map(|p| match Repr::parse(p) {
                Ok(Repr { seq, message: Message::Register(_) }) => Some(seq),
                _ => None,
            })
            .expect("the peer registered");
        dgram(seq, Message::PeerList(PeerList { channel, verified: true, cookie: 0, peers }))
    }

    /// A request from neighbour `from` carrying its link's token (0 if it has no link).
    pub fn request(&self, from: SocketAddr, request: u32, first_block: u32, count: u8, channel: u32) -> Vec<u8> {
        let token = self.remotes.get(&from).map_or(0, |r| r.token);
        request_bytes(request, first_block, count, channel, token)
    }

    /// Sends a HELLO from `from` and returns the peer's reply.
    pub fn hello(&mut self, from: SocketAddr, channel: u32, nonce: u32) -> HelloReply {
        self.deliver(from, &hello_bytes(channel, nonce));
        let replies: Vec<HelloReply> = self
            .take(from)
            .iter()
            .filter_map(|p| match parse(p) {
                Message::HelloReply(r) => Some(r),
                _ => None,
            })
            .collect();
        assert_eq!(replies.len(), 1, "one reply per HELLO");
        replies[0]
    }

    /// Opens a link from `from` (HELLO, reply, ACK) and starts its keep-alives.
    pub fn link(&mut self, from: SocketAddr, map: Map, serve: bool) {
        let nonce = 0xa5a5_0000
            ^ u32::from_be_bytes(match from {
                SocketAddr::V4(a) => a.ip().octets(),
                SocketAddr::V6(_) => unreachable!(),
            });
        let r = self.hello(from, CHANNEL, nonce);
        assert_eq!(r.ack.status, LinkStatus::Accepted);
        assert_eq!(r.ack.echo, nonce);
        let before = self.events.len();
        self.deliver(from, &ack_bytes(r.ack.nonce, nonce));
        assert!(
            self.events[before..].contains(&Event::NeighborUp { peer: from, initiator: false }),
            "link with {from} did not come up"
        );
        let token = link_token(nonce, r.ack.nonce);
        self.remotes.insert(from, Remote { map, serve, token });
        self.deliver(from, &keepalive_bytes(buffer_map(map, self.now, self.interval)));
    }

    pub fn dropped(&self) -> BTreeMap<String, u64> {
        self.peer.stats().dropped
    }

    /// Runs `f` and checks the drops it caused, exactly: per reason in `stats().dropped`, and
    /// per sender and reason in `Dropped` events.
    pub fn expect_drops<R>(
        &mut self,
        expected: &[(SocketAddr, DropReason, u64)],
        f: impl FnOnce(&mut Harness) -> R,
    ) -> R {
        let before = self.dropped();
        let first_event = self.events.len();
        let r = f(self);
        let after = self.dropped();
        let mut delta = BTreeMap::new();
        for (k, v) in &after {
            let d = v - before.get(k).copied().unwrap_or(0);
            if d > 0 {
                delta.insert(k.clone(), d);
            }
        }
        let mut want = BTreeMap::new();
        let mut want_events = BTreeMap::new();
        for &(from, reason, n) in expected {
            if n > 0 {
                *want.entry(reason.as_str().to_string()).or_insert(0) += n;
                *want_events.entry((from, reason.as_str())).or_insert(0u64) += n;
            }
        }
        assert_eq!(delta, want, "stats().dropped changed by {delta:?}, expected {want:?}");
        let mut seen = BTreeMap::new();
        for e in &self.events[first_event..] {
            if let Event::Dropped { from, reason } = e {
                *seen.entry((*from, reason.as_str())).or_insert(0u64) += 1;
            }
        }
        assert_eq!(seen, want_events, "Dropped events");
        r
    }

    pub fn count_events(&self, f: impl Fn(&Event) -> bool) -> usize {
        self.events.iter().filter(|e| f(e)).count()
    }

    /// First block of `count` consecutive blocks the peer holds.
    pub fn held(&self, count: u8) -> u32 {
        let v: Vec<u32> = self.received.iter().copied().collect();
        v.windows(usize::from(count))
            .find(|w| w[usize::from(count) - 1] == w[0] + u32::from(count) - 1)
            .map(|w| w[0])
            .expect("the peer holds enough consecutive blocks")
    }

    /// Every played block has the stream's bytes; returns how many were played.
    pub fn check_played(&self) -> usize {
        for m in &self.played {
            assert_eq!(m.data.len(), BLOCK_LEN);
            assert!(m.data[..] == content(m.block)[..], "block {} played with wrong bytes", m.block);
        }
        self.played.len()
    }
}

/// The video packets among `payloads`, as (request, index).
pub fn videos(payloads: &[Vec<u8>]) -> Vec<(u32, u16)> {
    payloads
        .iter()
        .filter_map(|p| match parse(p) {
            Message::Video(v) => Some((v.request, v.index)),
            _ => None,
        })
        .collect()
}
