//! The peer's side of the tracker protocol, driven through the sans-IO [`Node`] interface with
//! the test playing the tracker and an off-path attacker who sends from the tracker's address.
//!
//! A peer takes a peer list only as the answer to its own outstanding register: the list must
//! echo the register's query id, which nobody off the path can predict. It proves its own
//! address to the tracker by echoing the tracker's cookie as the sequence number of its next
//! register (at once, when an answer says it is not listed yet) and of its leave.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use soplab_node::{Micros, Node, SECOND, Secret, Transmit};
use soplab_peer::{Peer, PeerConfig};
use soplab_testkit::v4;
use soplab_wire::{Message, PeerList, Register, Repr};

const CHANNEL: u32 = 7;

fn me() -> SocketAddr {
    v4(10, 0, 0, 1, 4000)
}

fn tracker() -> SocketAddr {
    v4(10, 0, 0, 2, 3900)
}

/// Addresses an attacker wants the peer to contact (`i < 65536`).
fn bait(i: u32) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(10, 66, (i >> 8) as u8, i as u8), 5000)
}

/// A real peer the tracker knows.
fn other() -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(10, 1, 0, 1), 5000)
}

fn list(seq: u32, verified: bool, cookie: u32, peers: Vec<SocketAddrV4>) -> Vec<u8> {
    Repr::new(seq, Message::PeerList(PeerList { channel: CHANNEL, verified, cookie, peers })).to_vec()
}

/// One peer and what it sent, in virtual time.
struct Client {
    peer: Peer,
    now: Micros,
    out: Vec<Transmit>,
}

impl Client {
    fn new(secret: Secret) -> Client {
        let peer = Peer::new(PeerConfig::peer(me(), tracker(), CHANNEL, 42), None).with_secret(secret);
        let mut c = Client { peer, now: 0, out: Vec::new() };
        c.peer.handle_timeout(0);
        c.collect();
        c
    }

    fn collect(&mut self) {
        while let Some(t) = self.peer.poll_transmit(self.now) {
            self.out.push(t);
        }
        while self.peer.poll_event().is_some() {}
    }

    fn deliver(&mut self, from: SocketAddr, data: &[u8]) {
        self.peer.handle_datagram(self.now, from, data);
        self.collect();
    }

    fn advance(&mut self, d: Micros) {
        let end = self.now + d;
        while let Some(t) = self.peer.poll_timeout().filter(|&t| t <= end) {
            self.now = self.now.max(t);
            self.peer.handle_timeout(self.now);
            self.collect();
        }
        self.now = end;
    }

    /// Takes the registers sent so far: (sequence number, register).
    fn registers(&mut self) -> Vec<(u32, Register)> {
        let (to_tracker, rest): (Vec<Transmit>, Vec<Transmit>) = self.out.drain(..).partition(|t| t.dst == tracker());
        self.out = rest;
        to_tracker
            .iter()
            .filter_map(|t| match Repr::parse(&t.payload) {
                Ok(Repr { seq, message: Message::Register(r) }) => Some((seq, r)),
                _ => None,
            })
            .collect()
    }

    /// The one register sent since the last look (and its copies sent again while it went
    /// unanswered, which carry the same query id); its sequence number.
    fn one_register(&mut self) -> u32 {
        let regs = self.registers();
        assert!(!regs.is_empty() && regs.iter().all(|r| r.0 == regs[0].0), "one register: {regs:?}");
        assert_eq!((regs[0].1.channel, regs[0].1.listen_port), (CHANNEL, me().port()));
        regs[0].0
    }

    fn unsolicited(&self) -> u64 {
        self.peer.stats().dropped.get("unsolicited").copied().unwrap_or(0)
    }

    fn sent_to(&self, a: SocketAddrV4) -> usize {
        self.out.iter().filter(|t| t.dst == SocketAddr::V4(a)).count()
    }
}

#[test]
fn a_peer_list_that_answers_no_register_is_dropped() {
    let mut c = Client::new(Secret::from_seed(1));
    let q = c.one_register();
    // Lists from the tracker's address with every query id but the right one, 200 lures each.
    for k in 1..=50u32 {
        let lures = (0..200).map(|i| bait(k * 200 + i)).collect();
        c.deliver(tracker(), &list(q ^ k, true, 0, lures));
    }
    assert_eq!(c.unsolicited(), 50, "each injected list is dropped as unsolicited");
    c.advance(5 * SECOND);
    assert!(
        c.out.iter().all(|t| !matches!(t.dst, SocketAddr::V4(a) if a.ip().octets()[1] == 66)),
        "a lure was contacted"
    );

    // The tracker's real answer is taken (its peer is greeted)...
    c.deliver(tracker(), &list(q, true, 0x77, vec![other()]));
    c.advance(SECOND);
    assert_eq!(c.sent_to(other()), 1, "the listed peer was greeted");
    // ...once: a copy of it no longer answers anything.
    c.deliver(tracker(), &list(q, true, 0x77, vec![bait(1)]));
    assert_eq!(c.unsolicited(), 51);
}

#[test]
fn query_ids_come_from_the_secret_not_the_seed() {
    let first = |secret| Client::new(secret).one_register();
    assert_eq!(first(Secret::from_seed(1)), first(Secret::from_seed(1)), "virtual time replays");
    // The same seed (in scenario.toml for all to read) with other secrets: other ids.
    let ids: Vec<u32> = (2..10).map(|s| first(Secret::from_seed(s))).collect();
    assert!(ids.iter().all(|&q| q != first(Secret::from_seed(1))));
    assert!(ids.windows(2).all(|w| w[0] != w[1]), "{ids:?}");
    // A fresh id per register, not one per session; copies of an unanswered one keep its id.
    let mut c = Client::new(Secret::from_seed(1));
    let q1 = c.one_register();
    c.advance(5 * SECOND);
    assert_eq!(c.one_register(), q1, "a register sent again keeps its id");
    // Answered (on another channel, so that no cookie takes the place of the next id).
    let other_channel = PeerList { channel: CHANNEL + 1, verified: true, cookie: 0, peers: vec![] };
    c.deliver(tracker(), &Repr::new(q1, Message::PeerList(other_channel)).to_vec());
    c.advance(31 * SECOND);
    assert_ne!(c.one_register(), q1);
}

#[test]
fn an_unverified_answer_is_followed_at_once_by_a_register_with_its_cookie() {
    let mut c = Client::new(Secret::from_seed(3));
    let q = c.one_register();
    c.deliver(tracker(), &list(q, false, 0x00ab_cdef, vec![other()]));
    assert_eq!(c.one_register(), 0x00ab_cdef, "the cookie is echoed at once");
    // The tracker lists it and hands it a newer cookie, which the next register carries.
    c.deliver(tracker(), &list(0x00ab_cdef, true, 0x0012_3456, vec![other()]));
    assert_eq!(c.unsolicited(), 0);
    c.advance(31 * SECOND);
    assert_eq!(c.one_register(), 0x0012_3456, "the periodic register proves the address");
    // An answer refusing the very cookie it carries is not retried at once (no loop).
    c.deliver(tracker(), &list(0x0012_3456, false, 0x0012_3456, vec![]));
    assert!(c.registers().is_empty());
    // The leave carries the cookie, so that the tracker can tell it from a spoofed one.
    c.peer.shutdown(true);
    c.collect();
    let leaves: Vec<u32> = c
        .out
        .iter()
        .filter(|t| t.dst == tracker())
        .filter_map(|t| match Repr::parse(&t.payload) {
            Ok(Repr { seq, message: Message::Leave(_) }) => Some(seq),
            _ => None,
        })
        .collect();
    assert_eq!(leaves, [0x0012_3456]);
}

#[test]
fn a_list_for_another_channel_answering_our_register_is_not_used() {
    let mut c = Client::new(Secret::from_seed(4));
    let q = c.one_register();
    let other_channel = Repr::new(
        q,
        Message::PeerList(PeerList { channel: CHANNEL + 1, verified: false, cookie: 5, peers: vec![bait(1)] }),
    );
    c.deliver(tracker(), &other_channel.to_vec());
    assert_eq!(c.peer.stats().dropped.get("wrong_channel"), Some(&1));
    assert!(c.registers().is_empty(), "its cookie was not taken");
    c.advance(SECOND);
    assert_eq!(c.sent_to(bait(1)), 0);
}

/// Listed peers, none of which answer (departed clients the tracker still lists).
fn listed(n: u32) -> Vec<SocketAddrV4> {
    (0..n).map(|i| SocketAddrV4::new(Ipv4Addr::new(10, 1, 1, i as u8), 5000)).collect()
}

/// HELLOs sent so far to the peers of `listed`.
fn hellos_to_listed(c: &Client) -> usize {
    c.out.iter().filter(|t| matches!(t.dst, SocketAddr::V4(a) if a.ip().octets()[..3] == [10, 1, 1])).count()
}

#[test]
fn a_fresh_peer_greets_a_handful_of_listed_peers_at_once_then_paces() {
    let mut c = Client::new(Secret::from_seed(3));
    let q = c.one_register();
    c.deliver(tracker(), &list(q, true, 0x77, listed(40)));
    // Within one tick, `hellos_at_start` (4) HELLOs: a dead entry does not hold the join up.
    c.advance(150_000);
    assert_eq!(hellos_to_listed(&c), 4);
    // Then `hellos_per_second` (1): about 5 more in the next 5 s (with no answers, the list
    // stays below `max_neighbors`).
    c.advance(5 * SECOND);
    let later = hellos_to_listed(&c) - 4;
    assert!((4..=6).contains(&later), "{later} HELLOs in 5 s after the start");
}

#[test]
fn the_full_mesh_profile_greets_one_at_a_time_as_before() {
    let cfg = PeerConfig::peer(me(), tracker(), CHANNEL, 42).with_profile(soplab_peer::Profile::FullMesh);
    let mut c = Client { peer: Peer::new(cfg, None).with_secret(Secret::from_seed(3)), now: 0, out: Vec::new() };
    c.peer.handle_timeout(0);
    c.collect();
    let q = c.one_register();
    c.deliver(tracker(), &list(q, true, 0x77, listed(40)));
    c.advance(150_000);
    assert_eq!(hellos_to_listed(&c), 1);
}
