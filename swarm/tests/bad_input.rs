//! The source provider under request pressure: at its limit of 11 children it refuses a 12th
//! requester (`overloaded`) and keeps serving the 11 it has; requests spoofed from its
//! neighbours' addresses (without their links' tokens) get nothing and make no child.
//!
//! The source core (`soplab_source::source`) is driven directly through the sans-IO `Node`
//! trait in virtual time; the test plays the children (HELLO, ACK, keep-alives, requests) with
//! `soplab_wire` and checks every response against the source's content.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use soplab_node::{DropReason, Event, Micros, Node, SECOND, Transmit};
use soplab_peer::{Peer, PeerConfig};
use soplab_source::Content;
use soplab_testkit::v4;
use soplab_wire::video::Insert;
use soplab_wire::{
    BLOCK_LEN, BufferMap, Hello, LinkAck, LinkStatus, Message, Reassembler, Repr, Request, Role, link_token,
};

const CHANNEL: u32 = 3;

fn source_addr() -> SocketAddr {
    v4(10, 0, 0, 2, 3901)
}

fn tracker() -> SocketAddr {
    v4(10, 0, 0, 1, 3900)
}

fn child(i: u8) -> SocketAddr {
    v4(10, 1, 0, 10 + i, 5000)
}

fn dgram(m: Message<'_>) -> Vec<u8> {
    Repr::new(1, m).to_vec()
}

/// The source and the children the test plays.
struct World {
    source: Peer,
    content: Content,
    now: Micros,
    events: Vec<Event>,
    out: Vec<Transmit>,
    /// Per child: reassembly of its responses, and (request id -> first block) of what it asked.
    reasm: BTreeMap<SocketAddr, Reassembler<u32>>,
    asked: BTreeMap<(SocketAddr, u32), u32>,
    /// Complete, correct responses per child.
    served: BTreeMap<SocketAddr, u64>,
    next_id: u32,
    /// Each linked child's link token.
    tokens: BTreeMap<SocketAddr, u32>,
}

impl World {
    fn new() -> World {
        let cfg = PeerConfig::source(source_addr(), tracker(), CHANNEL, 9);
        let content = Content::Synthetic { seed: 77 };
        let mut w = World {
            source: soplab_source::source(cfg, content.clone()),
            content,
            now: 0,
            events: Vec::new(),
            out: Vec::new(),
            reasm: BTreeMap::new(),
            asked: BTreeMap::new(),
            served: BTreeMap::new(),
            next_id: 1,
            tokens: BTreeMap::new(),
        };
        w.source.handle_timeout(0);
        w.pump();
        w
    }

    fn pump(&mut self) {
        while let Some(t) = self.source.poll_transmit(self.now) {
            if let Ok(Repr { message: Message::Video(v), .. }) = Repr::parse(&t.payload) {
                let first = *self.asked.get(&(t.dst, v.request)).expect("video only for requests made");
                assert_eq!(v.first_block, first);
                let r = self.reasm.entry(t.dst).or_insert_with(|| Reassembler::new(16));
                if let Ok(Insert::Complete(done)) = r.insert(v.request, self.now, &v) {
                    for i in 0..u32::from(done.count) {
                        let at = i as usize * BLOCK_LEN;
                        let want = self.content.block(done.first_block + i);
                        assert!(done.data[at..at + BLOCK_LEN] == want[..], "wrong bytes for block");
                    }
                    *self.served.entry(t.dst).or_default() += 1;
                }
            } else {
                self.out.push(t);
            }
        }
        while let Some(e) = self.source.poll_event() {
            self.events.push(e);
        }
    }

    fn deliver(&mut self, from: SocketAddr, d: &[u8]) {
        self.source.handle_datagram(self.now, from, d);
        self.pump();
    }

    /// Advances to `end`, with a keep-alive from every child in `alive` each second.
    fn run_until(&mut self, end: Micros, alive: &[SocketAddr]) {
        let mut next_ka = self.now - self.now % SECOND + SECOND;
        loop {
            let due = self.source.poll_timeout().unwrap_or(Micros::MAX);
            let t = due.min(next_ka);
            if t > end {
                break;
            }
            self.now = self.now.max(t);
            if next_ka <= self.now {
                next_ka += SECOND;
                for a in alive {
                    self.deliver(*a, &dgram(Message::KeepAlive(BufferMap::empty())));
                }
            }
            if due <= self.now {
                self.source.handle_timeout(self.now);
                self.pump();
            }
        }
        self.now = end;
    }

    fn link(&mut self, a: SocketAddr) {
        let hello = Hello { role: Role::Peer, nonce: 5, channel: CHANNEL, listen_port: 5000, newest: None };
        self.deliver(a, &dgram(Message::Hello(hello)));
        let i = self.out.iter().position(|t| t.dst == a).expect("a reply");
        let t = self.out.remove(i);
        let Ok(Repr { message: Message::HelloReply(r), .. }) = Repr::parse(&t.payload) else { panic!("not a reply") };
        assert_eq!(r.ack.status, LinkStatus::Accepted);
        let ack = LinkAck { status: LinkStatus::Accepted, echo: r.ack.nonce, nonce: 5, channel: CHANNEL };
        self.deliver(a, &dgram(Message::Ack(ack)));
        assert!(self.events.contains(&Event::NeighborUp { peer: a, initiator: false }));
        self.tokens.insert(a, link_token(5, r.ack.nonce));
    }

    /// `a` asks for the 4 blocks ending 2 behind the source's newest.
    fn request(&mut self, a: SocketAddr) {
        let token = self.tokens[&a];
        self.request_with(a, token);
    }

    /// A request from `a`'s address carrying `token`.
    fn request_with(&mut self, a: SocketAddr, token: u32) {
        let newest = (self.now / PeerConfig::source(source_addr(), tracker(), CHANNEL, 9).block_interval()) as u32;
        let first = newest - 5;
        let id = self.next_id;
        self.next_id += 1;
        self.asked.insert((a, id), first);
        let q = Request { request: id, first_block: first, count: 4, channel: CHANNEL, token };
        self.deliver(a, &dgram(Message::Request(q)));
    }

    fn dropped(&self) -> BTreeMap<String, u64> {
        self.source.stats().dropped
    }

    fn drop_events(&self, from: SocketAddr, reason: DropReason) -> usize {
        self.events.iter().filter(|e| **e == Event::Dropped { from, reason }).count()
    }
}

#[test]
fn source_at_eleven_children_refuses_a_twelfth_and_keeps_serving() {
    let mut w = World::new();
    let kids: Vec<SocketAddr> = (0..12).map(child).collect();
    for &k in &kids {
        w.link(k);
    }
    w.run_until(10 * SECOND, &kids);
    let eleven = &kids[..11];
    let twelfth = kids[11];

    // 20 s of every child asking every 500 ms; the twelfth always asks last.
    let mut rounds = 0;
    let mut refused = 0u64;
    for step in 0..40 {
        for &k in eleven {
            w.request(k);
        }
        let before = w.dropped().get("overloaded").copied().unwrap_or(0);
        w.request(twelfth);
        let after = w.dropped().get("overloaded").copied().unwrap_or(0);
        assert_eq!(after, before + 1, "step {step}: the twelfth requester was not refused");
        refused += 1;
        rounds += 1;
        let t = w.now + 500_000;
        w.run_until(t, &kids);
    }
    let s = w.source.stats();
    assert_eq!(s.max_children, 11, "source had {} children", s.max_children);
    assert_eq!(s.dropped, BTreeMap::from([("overloaded".to_string(), refused)]));
    assert_eq!(w.drop_events(twelfth, DropReason::Overloaded) as u64, refused);
    assert_eq!(w.events.iter().filter(|e| matches!(e, Event::Dropped { .. })).count() as u64, refused);
    for &k in eleven {
        assert_eq!(w.served.get(&k).copied(), Some(rounds), "child {k} was not served every time");
    }
    assert_eq!(w.served.get(&twelfth), None, "the twelfth got video");
    assert_eq!(w.events.iter().filter(|e| matches!(e, Event::ChildUp { .. })).count(), 11);
    assert_eq!(w.source.stats().neighbors, 12);

    // Once one of the eleven stops asking for longer than the child timeout, its place is free.
    let quiet = eleven[0];
    let timeout = w.source.config().child_timeout;
    let end = w.now + timeout + SECOND;
    while w.now < end {
        for &k in &eleven[1..] {
            w.request(k);
        }
        let t = w.now + 500_000;
        w.run_until(t, &kids);
    }
    assert!(w.events.contains(&Event::ChildDown { child: quiet }));
    let before = w.dropped();
    w.request(twelfth);
    assert_eq!(w.dropped(), before, "the freed place was not given to the twelfth");
    let t = w.now + 100_000;
    w.run_until(t, &kids);
    assert_eq!(w.served.get(&twelfth).copied(), Some(1));
    // ...and now the quiet one is the one refused.
    w.request(quiet);
    assert_eq!(w.drop_events(quiet, DropReason::Overloaded), 1);
    assert_eq!(w.source.stats().max_children, 11);
}

/// Requests spoofed from the addresses of the source's twelve neighbours (an off-path attacker
/// knows the addresses, not the links' tokens) get no video and make no child; the eleven real
/// children are served meanwhile, and the source never has more than eleven.
#[test]
fn source_serves_no_spoofed_child() {
    let mut w = World::new();
    let kids: Vec<SocketAddr> = (0..12).map(child).collect();
    for &k in &kids {
        w.link(k);
    }
    w.run_until(10 * SECOND, &kids);
    let mut spoofed = 0u64;
    for _ in 0..20 {
        for &k in &kids[..11] {
            w.request(k);
        }
        for &k in &kids {
            let wrong = w.tokens[&k] ^ 0x0100_0000;
            w.request_with(k, wrong);
            spoofed += 1;
        }
        let t = w.now + 500_000;
        w.run_until(t, &kids);
    }
    let s = w.source.stats();
    assert_eq!(s.dropped, BTreeMap::from([("bad_token".to_string(), spoofed)]), "{:?}", s.dropped);
    assert_eq!(s.max_children, 11);
    assert_eq!(w.served.get(&kids[11]), None, "the twelfth got video");
    for &k in &kids[..11] {
        assert_eq!(w.served.get(&k).copied(), Some(20), "child {k} was not served every time");
    }
    assert_eq!(s.responses_sent, 11 * 20, "only the real requests were answered");
}
