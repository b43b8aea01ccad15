//! Spoofing in the virtual-time network (`soplab_node::sim`): a source and five peers stream
//! through a tracker while an off-path attacker sends datagrams from others' addresses. The
//! attacker never sees the answers: they go to the addresses it spoofed, as on a real network
//! (to the real peer whose address it used, or to hosts that ignore them).
//!
//! - From peer 1's address, a 16-block request to the source and a HELLO to the source: the
//!   source sends no video for it and keeps its link with peer 1.
//! - From 60 addresses, HELLOs to peer 2 every 2.5 s for 30 s, never completed: peer 2 keeps
//!   every real neighbour, a peer joining meanwhile links with it, it greets none of the 60,
//!   and sends them at most three times what they sent.
//!
//! Everyone keeps playing the whole stream.

mod common;

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::rc::Rc;

use bytes::Bytes;
use common::content;
use soplab_node::impair::Impairment;
use soplab_node::sim::Network;
use soplab_node::truth::DownReason;
use soplab_node::{Event, Micros, Node, SECOND, Transmit};
use soplab_peer::{Origin, Peer, PeerConfig};
use soplab_testkit::v4;
use soplab_wire::{Hello, Message, PeerList, Register, Repr, Request, Role};

const CHANNEL: u32 = 11;

fn tracker() -> SocketAddr {
    v4(10, 0, 0, 1, 3900)
}

fn source() -> SocketAddr {
    v4(10, 0, 0, 2, 3901)
}

fn peer(i: u8) -> SocketAddr {
    v4(10, 0, 1, i, 3908)
}

fn spoofed(i: u8) -> SocketAddr {
    v4(10, 9, 0, i, 4000)
}

/// The stream, one block per `interval` from the source's start.
struct TestOrigin {
    interval: Micros,
}

impl Origin for TestOrigin {
    fn newest(&self, now: Micros) -> Option<u32> {
        Some((now / self.interval) as u32)
    }

    fn block(&mut self, id: u32) -> Bytes {
        Bytes::from(content(id))
    }
}

/// A tracker that lists every registered address (of the channel) to everyone.
struct TestTracker {
    registered: Vec<SocketAddr>,
    out: VecDeque<Transmit>,
}

impl Node for TestTracker {
    fn local_addr(&self) -> SocketAddr {
        tracker()
    }

    fn handle_datagram(&mut self, _: Micros, from: SocketAddr, data: &[u8]) {
        let Ok(Repr { seq, message: Message::Register(Register { channel: CHANNEL, .. }) }) = Repr::parse(data) else {
            return;
        };
        if !self.registered.contains(&from) {
            self.registered.push(from);
        }
        let peers = self.registered.iter().filter(|a| **a != from).filter_map(|a| v4_of(*a)).collect();
        // Echoes the register's query id, as the real tracker does; lists everyone at once.
        let list = PeerList { channel: CHANNEL, verified: true, cookie: seq, peers };
        self.out.push_back(Transmit { dst: from, payload: Repr::new(seq, Message::PeerList(list)).to_vec() });
    }

    fn handle_timeout(&mut self, _: Micros) {}

    fn poll_transmit(&mut self, _: Micros) -> Option<Transmit> {
        self.out.pop_front()
    }

    fn poll_timeout(&self) -> Option<Micros> {
        None
    }

    fn poll_event(&mut self) -> Option<Event> {
        None
    }
}

fn v4_of(a: SocketAddr) -> Option<std::net::SocketAddrV4> {
    match a {
        SocketAddr::V4(a) => Some(a),
        SocketAddr::V6(_) => None,
    }
}

/// A real peer, and an attacker sending from the same address at set times (what the attacker
/// sends is indistinguishable from the peer's own datagrams; the answers reach the peer).
struct Spoofed {
    inner: Peer,
    attacks: VecDeque<(Micros, Transmit)>,
}

impl Node for Spoofed {
    fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr()
    }

    fn handle_datagram(&mut self, now: Micros, from: SocketAddr, data: &[u8]) {
        self.inner.handle_datagram(now, from, data);
    }

    fn handle_timeout(&mut self, now: Micros) {
        self.inner.handle_timeout(now);
    }

    fn poll_transmit(&mut self, now: Micros) -> Option<Transmit> {
        if self.attacks.front().is_some_and(|(t, _)| *t <= now) {
            return self.attacks.pop_front().map(|(_, d)| d);
        }
        self.inner.poll_transmit(now)
    }

    fn poll_timeout(&self) -> Option<Micros> {
        let attack = self.attacks.front().map(|(t, _)| *t);
        match (self.inner.poll_timeout(), attack) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.inner.poll_event()
    }

    fn poll_media(&mut self) -> Option<soplab_node::Media> {
        self.inner.poll_media()
    }
}

/// A spoofed address that sends a HELLO to `to` every `every` from `from` to `until`, and
/// ignores what comes back.
struct Greeter {
    addr: SocketAddr,
    to: SocketAddr,
    every: Micros,
    next: Micros,
    until: Micros,
    nonce: u32,
    out: Option<Transmit>,
}

impl Node for Greeter {
    fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    fn handle_datagram(&mut self, _: Micros, _: SocketAddr, _: &[u8]) {}

    fn handle_timeout(&mut self, now: Micros) {
        if now >= self.next && now < self.until {
            self.nonce = self.nonce.wrapping_mul(0x9e37_79b9).wrapping_add(1);
            let hello =
                Hello { role: Role::Peer, nonce: self.nonce, channel: CHANNEL, listen_port: 4000, newest: None };
            self.out = Some(Transmit { dst: self.to, payload: Repr::new(0, Message::Hello(hello)).to_vec() });
            self.next += self.every;
        }
    }

    fn poll_transmit(&mut self, _: Micros) -> Option<Transmit> {
        self.out.take()
    }

    fn poll_timeout(&self) -> Option<Micros> {
        (self.next < self.until).then_some(self.next)
    }

    fn poll_event(&mut self) -> Option<Event> {
        None
    }
}

fn peer_cfg(i: u8) -> PeerConfig {
    PeerConfig::peer(peer(i), tracker(), CHANNEL, 100 + u64::from(i))
}

/// The attacks from peer 1's address, to the source: a request for blocks 30..46 with
/// request id `SPOOFED_ID` (the token is not known: 0) at 20 s, a HELLO at 25 s.
const SPOOFED_ID: u32 = 0xdead_0001;

fn attacks_on_the_source() -> VecDeque<(Micros, Transmit)> {
    let request = Request { request: SPOOFED_ID, first_block: 30, count: 16, channel: CHANNEL, token: 0 };
    let hello = Hello { role: Role::Peer, nonce: 77, channel: CHANNEL, listen_port: 3908, newest: None };
    VecDeque::from([
        (20 * SECOND, Transmit { dst: source(), payload: Repr::new(9, Message::Request(request)).to_vec() }),
        (25 * SECOND, Transmit { dst: source(), payload: Repr::new(0, Message::Hello(hello)).to_vec() }),
    ])
}

/// What the tap saw: bytes per (from, to), and the bytes of video answering `SPOOFED_ID`.
#[derive(Default)]
struct Seen {
    bytes: BTreeMap<(SocketAddr, SocketAddr), usize>,
    hellos_to: BTreeMap<SocketAddr, usize>,
    spoofed_video: usize,
}

#[test]
fn spoofed_datagrams_in_a_virtual_swarm() {
    let mut net = Network::new(5, Impairment::LAN);
    let seen = Rc::new(RefCell::new(Seen::default()));
    let tap = seen.clone();
    net.on_datagram(move |_, from, to, d| {
        let mut s = tap.borrow_mut();
        *s.bytes.entry((from, to)).or_default() += d.len();
        match Repr::parse(d).map(|r| r.message) {
            Ok(Message::Video(v)) if v.request == SPOOFED_ID => s.spoofed_video += d.len(),
            Ok(Message::Hello(_)) => *s.hellos_to.entry(to).or_default() += 1,
            _ => {}
        }
    });
    let mut events: Vec<(Micros, SocketAddr, Event)> = Vec::new();
    let mut log = |t: Micros, a: SocketAddr, e: &Event| events.push((t, a, e.clone()));
    net.add(Box::new(TestTracker { registered: Vec::new(), out: VecDeque::new() }), &mut log);
    let src_cfg = PeerConfig::source(source(), tracker(), CHANNEL, 1);
    let interval = src_cfg.block_interval();
    net.add(Box::new(Peer::new(src_cfg, Some(Box::new(TestOrigin { interval })))), &mut log);
    net.add(Box::new(Spoofed { inner: Peer::new(peer_cfg(1), None), attacks: attacks_on_the_source() }), &mut log);
    for i in 2..5 {
        net.add(Box::new(Peer::new(peer_cfg(i), None)), &mut log);
    }
    net.run_until(30 * SECOND, &mut log);
    for i in 0..60 {
        let g = Greeter {
            addr: spoofed(i),
            to: peer(2),
            every: 2_500_000,
            next: 30 * SECOND,
            until: 60 * SECOND,
            nonce: u32::from(i),
            out: None,
        };
        net.add(Box::new(g), &mut log);
    }
    net.run_until(40 * SECOND, &mut log);
    net.add(Box::new(Peer::new(peer_cfg(5), None)), &mut log);
    net.run_until(70 * SECOND, &mut log);

    let s = seen.borrow();
    // The spoofed request got no video, and the spoofed HELLO ended no link.
    assert_eq!(s.spoofed_video, 0, "video sent for the spoofed request");
    let source_downs: Vec<_> =
        events.iter().filter(|(_, a, e)| *a == source() && matches!(e, Event::NeighborDown { .. })).collect();
    assert!(source_downs.is_empty(), "{source_downs:?}");
    let bad_token = Event::Dropped { from: peer(1), reason: soplab_node::DropReason::BadToken };
    assert!(events.iter().any(|(t, a, e)| *a == source() && *t >= 20 * SECOND && *e == bad_token));
    // The HELLO flood held nothing at peer 2.
    let downs_at_2: Vec<_> = events
        .iter()
        .filter(|(t, a, e)| *a == peer(2) && *t >= 30 * SECOND && matches!(e, Event::NeighborDown { .. }))
        .collect();
    assert!(downs_at_2.is_empty(), "{downs_at_2:?}");
    assert!(events.iter().any(|(t, a, e)| *a == peer(2)
        && *t >= 40 * SECOND
        && *e == Event::NeighborUp { peer: peer(5), initiator: false }
        || *a == peer(5) && *e == Event::NeighborUp { peer: peer(2), initiator: true }));
    let (mut flood_in, mut flood_out) = (0, 0);
    for i in 0..60 {
        assert_eq!(s.hellos_to.get(&spoofed(i)), None, "peer 2 greeted spoofed address {i}");
        flood_in += s.bytes.get(&(spoofed(i), peer(2))).copied().unwrap_or(0);
        flood_out += s.bytes.get(&(peer(2), spoofed(i))).copied().unwrap_or(0);
    }
    eprintln!("HELLO flood: {flood_in} bytes in, {flood_out} bytes back");
    assert!(flood_in >= 60 * 12 * 52 && flood_out <= 3 * flood_in);
    // Nobody's link to a real peer ended for any reason but `replaced` (none here) or shutdown.
    assert!(
        events.iter().all(|(_, _, e)| !matches!(
            e,
            Event::NeighborDown { reason: DownReason::Timeout | DownReason::Reopened, .. }
        ))
    );
    // Everyone played the whole stream once started.
    let mut plays: BTreeMap<SocketAddr, (u64, u64)> = BTreeMap::new();
    for (_, a, e) in &events {
        if let Event::Play { hit, .. } = e {
            let p = plays.entry(*a).or_default();
            p.0 += u64::from(*hit);
            p.1 += 1;
        }
    }
    assert_eq!(plays.len(), 5, "{plays:?}");
    for (a, (hit, due)) in &plays {
        assert!(*due > 30 && *hit as f64 >= 0.99 * *due as f64, "{a}: {hit} of {due} blocks");
    }
}
