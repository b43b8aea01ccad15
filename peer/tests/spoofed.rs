//! Datagrams spoofed from a neighbour's address, and floods from addresses that never complete
//! a round trip (issue 11, "The daemons on spoofed and hostile datagrams").
//!
//! UDP does not authenticate the sender, so an off-path attacker can send anything from any
//! address, but never sees what is sent back. Each test drives one peer core in virtual time
//! (the test is the network, see `common`) and checks that only the real neighbour, who saw the
//! handshake, can request video, end a link or complete a handshake, and that an address that
//! never completed a round trip gets back at most three times the bytes it sent.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use common::*;
use soplab_node::truth::DownReason;
use soplab_node::{DropReason, Event, SECOND, Secret};
use soplab_peer::{Peer, PeerConfig};
use soplab_wire::video::fragment_count;
use soplab_wire::{LinkStatus, Message, PeerList, Repr, link_token};

/// Bytes of the video packets among `payloads`.
fn video_bytes(payloads: &[Vec<u8>]) -> usize {
    payloads.iter().filter(|p| matches!(parse(p), Message::Video(_))).map(Vec::len).sum()
}

fn v4_of(a: SocketAddr) -> std::net::SocketAddrV4 {
    match a {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(_) => unreachable!("tests use IPv4"),
    }
}

/// The requests among what the peer sent to `to`.
fn requests_to(h: &mut Harness, to: SocketAddr) -> Vec<soplab_wire::Request> {
    h.take(to)
        .iter()
        .filter_map(|p| match parse(p) {
            Message::Request(q) => Some(q),
            _ => None,
        })
        .collect()
}

/// A 46-byte request for 16 blocks, from an established neighbour's address but without the
/// link's token, gets nothing (it got 127 packets, 167,015 bytes); the same request with the
/// token is served whole.
#[test]
fn a_request_spoofed_from_a_neighbours_address_gets_no_video() {
    let mut h = Harness::stocked(|_| {});
    let c = remote(1);
    h.link(c, Map::Empty, false);
    h.out.clear();
    let b = h.held(16);
    let token = h.remotes[&c].token;
    let spoofed: Vec<u32> = [0, token ^ 1, token.wrapping_add(1), !token, 0xdead_beef]
        .into_iter()
        .filter(|t| *t != token)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    h.expect_drops(&[(c, DropReason::BadToken, spoofed.len() as u64)], |h| {
        for t in &spoofed {
            h.deliver(c, &request_bytes(9, b, 16, CHANNEL, *t));
        }
    });
    h.advance(SECOND);
    let answered = video_bytes(&h.take(c));
    eprintln!("spoofed requests: {} x 46 bytes in, {answered} bytes of video out", spoofed.len());
    assert_eq!(answered, 0, "a spoofed request was served");
    assert_eq!(h.count_events(|e| matches!(e, Event::ChildUp { .. })), 0, "a spoofed requester became a child");

    h.expect_drops(&[], |h| h.deliver(c, &h.request(c, 10, b, 16, CHANNEL)));
    h.advance(SECOND);
    let served = h.take(c);
    assert_eq!(videos(&served).len(), usize::from(fragment_count(16)));
    assert_eq!(video_bytes(&served), 167_015, "the real neighbour's request is served whole");
}

/// A HELLO from an established neighbour's address (spoofed, or the neighbour starting over)
/// does not end the link: the link, its child and its token stay, and the reply goes to the
/// neighbour's address only.
#[test]
fn a_hello_from_a_neighbours_address_does_not_end_the_link() {
    let mut h = Harness::stocked(|_| {});
    let c = remote(1);
    h.link(c, Map::Empty, false);
    let b = h.held(4);
    h.deliver(c, &h.request(c, 1, b, 4, CHANNEL));
    assert!(h.events.contains(&Event::ChildUp { child: c }));
    h.out.clear();
    let first = h.events.len();
    for nonce in [1, 2, 0xdead_beef] {
        let r = h.hello(c, CHANNEL, nonce);
        assert_eq!((r.ack.status, r.ack.echo), (LinkStatus::Accepted, nonce));
    }
    let r = h.expect_drops(&[(c, DropReason::WrongChannel, 1)], |h| h.hello(c, CHANNEL + 1, 3));
    assert_eq!((r.ack.status, r.peers.len()), (LinkStatus::WrongChannel, 0));
    h.advance(SECOND);
    let ended = h.count_events(
        |e| matches!(e, Event::NeighborDown { peer, .. } | Event::ChildDown { child: peer } if *peer == c),
    );
    assert_eq!(ended, 0, "events since the HELLOs: {:?}", &h.events[first..]);
    assert_eq!(h.peer.stats().neighbors, 2);
    // The old token still works.
    h.take(c);
    h.expect_drops(&[], |h| h.deliver(c, &h.request(c, 2, b, 4, CHANNEL)));
    h.advance(SECOND);
    assert_eq!(videos(&h.take(c)).len(), usize::from(fragment_count(4)));
}

/// The real neighbour that starts over (it dropped or lost the link) completes the new
/// handshake: the truth says the link was reopened, not that it timed out, and the link's
/// token is kept, so a lost ACK cannot leave the two ends with different tokens.
#[test]
fn a_neighbour_that_opens_the_link_again_reopens_it() {
    let mut h = Harness::new(|_| {});
    let c = remote(1);
    h.link(c, Map::Empty, false);
    let token = h.remotes[&c].token;
    let r = h.hello(c, CHANNEL, 0x5555_0001);
    assert_eq!(r.ack.status, LinkStatus::Accepted);
    assert_eq!(link_token(0x5555_0001, r.ack.nonce), token, "the reply keeps the link's token");
    let first = h.events.len();
    h.expect_drops(&[], |h| h.deliver(c, &ack_bytes(r.ack.nonce, 0x5555_0001)));
    assert_eq!(
        h.events[first..],
        [
            Event::NeighborDown { peer: c, reason: DownReason::Reopened },
            Event::NeighborUp { peer: c, initiator: false }
        ]
    );
    assert_eq!(h.peer.stats().neighbors, 1);
    // An ACK with the right echo but another HELLO nonce proves nothing.
    h.expect_drops(&[(c, DropReason::BadNonce, 1)], |h| h.deliver(c, &ack_bytes(r.ack.nonce, 0x5555_0002)));
}

/// 60 spoofed addresses re-sending HELLOs every 2.5 s for 30 s (and never the ACK) hold no
/// neighbour slot: a real peer greeting meanwhile gets in each time, no real neighbour is
/// pushed out, and the peer greets none of the spoofed addresses itself.
#[test]
fn hellos_resent_from_spoofed_addresses_hold_no_slot() {
    let mut h = Harness::stocked(|_| {});
    h.link(remote(1), Map::Empty, false);
    let (mut sent_in, mut sent_out) = (0usize, 0usize);
    let spoofed: Vec<SocketAddr> = (0..60).map(stranger).collect();
    for round in 0..12u32 {
        for (i, a) in spoofed.iter().enumerate() {
            let d = hello_bytes(CHANNEL, round << 8 | i as u32);
            sent_in += d.len();
            h.deliver(*a, &d);
        }
        let newcomer = remote(100 + round);
        h.link(newcomer, Map::Empty, false);
        h.advance(2_500_000);
        for a in &spoofed {
            let back = h.take(*a);
            sent_out += back.iter().map(Vec::len).sum::<usize>();
            assert!(back.iter().all(|p| matches!(parse(p), Message::HelloReply(_))), "{a} got more than replies");
        }
    }
    eprintln!("spoofed HELLOs: {sent_in} bytes in, {sent_out} bytes out to the spoofed addresses");
    assert!(sent_out <= 3 * sent_in);
    let real: Vec<SocketAddr> = [remote(0), remote(1)].into_iter().chain((0..12).map(|r| remote(100 + r))).collect();
    for a in &real {
        assert_eq!(
            h.count_events(|e| matches!(e, Event::NeighborDown { peer, .. } if peer == a)),
            0,
            "{a} was dropped"
        );
    }
    assert_eq!(h.peer.stats().neighbors, real.len());
}

/// Refusals (full, wrong channel) carry no peer list; an accepted reply still does.
#[test]
fn refusals_carry_no_peer_list() {
    let mut h = Harness::new(|c| {
        c.max_neighbors = 10;
        c.neighbor_refresh = 0;
    });
    for i in 0..9 {
        h.link(remote(i), Map::Empty, false);
    }
    let r = h.hello(stranger(1), CHANNEL, 1);
    assert_eq!((r.ack.status, r.peers.len()), (LinkStatus::Accepted, 8), "peer exchange to a newcomer");
    h.link(remote(9), Map::Empty, false);
    let r = h.hello(stranger(2), CHANNEL, 2);
    assert_eq!((r.ack.status, r.peers.len(), r.ack.nonce), (LinkStatus::Full, 0, 0));
    let r = h.expect_drops(&[(stranger(3), DropReason::WrongChannel, 1)], |h| h.hello(stranger(3), CHANNEL + 1, 3));
    assert_eq!((r.ack.status, r.peers.len(), r.ack.nonce), (LinkStatus::WrongChannel, 0, 0));
}

/// Every kind of datagram from addresses that never completed a round trip, with assorted
/// fields: what the peer sends each of them, then and over the next 5 s, is at most three
/// times what it got from it.
#[test]
fn unverified_addresses_get_at_most_three_times_their_bytes() {
    let mut h = Harness::stocked(|_| {});
    for i in 1..6 {
        h.link(remote(i), Map::Empty, false);
    }
    let b = h.held(16);
    let mut sent_in = std::collections::BTreeMap::<SocketAddr, usize>::new();
    for i in 0..400u32 {
        let from = stranger(i);
        let x = i.wrapping_mul(0x9e37_79b9);
        let d = match i % 8 {
            0 => hello_bytes(CHANNEL, x),
            1 => hello_bytes(CHANNEL + 1, x),
            2 => reply_bytes(LinkStatus::Accepted, x, x, Default::default()),
            3 => ack_bytes(x, x.rotate_left(5)),
            4 => keepalive_bytes(soplab_wire::BufferMap::from_fn(b + 100, |_| true)),
            5 => request_bytes(x, b, 16, CHANNEL, x),
            6 => video_packets(x, b, 16)[0].clone(),
            _ => dgram(0, Message::PeerList(PeerList { channel: CHANNEL, verified: true, cookie: 0, peers: vec![] })),
        };
        *sent_in.entry(from).or_default() += d.len();
        h.deliver(from, &d);
    }
    h.advance(5 * SECOND);
    for (a, got) in &sent_in {
        let back: usize = h.take(*a).iter().map(Vec::len).sum();
        assert!(back <= 3 * got, "{a}: {back} bytes back for {got}");
    }
}

/// Nonces and request ids come from the peer's secret, not from its seed (which a swarm writes
/// to scenario.toml): two peers with the same seed but their own secrets greet and ask with
/// different numbers, and a peer's request ids are not a counter. The same seed and secret
/// still replay exactly.
#[test]
fn nonces_and_request_ids_do_not_follow_from_the_seed() {
    let cfg = PeerConfig::peer(me(), tracker(), CHANNEL, 42);
    let greet = |secret: Option<Secret>| {
        let peer = Peer::new(cfg.clone(), None);
        let mut h = Harness::around(match secret {
            Some(s) => peer.with_secret(s),
            None => peer,
        });
        let l = h.tracker_answer(CHANNEL, vec![v4_of(remote(9))]);
        h.deliver(tracker(), &l);
        h.advance(200_000);
        let hello = h.take(remote(9)).iter().find_map(|p| match parse(p) {
            Message::Hello(x) => Some(x.nonce),
            _ => None,
        });
        let reply = h.hello(stranger(1), CHANNEL, 7).ack.nonce;
        h.link(remote(0), Map::Live { base: 500, t0: 0 }, false);
        h.advance(300_000);
        let ids: Vec<u32> = requests_to(&mut h, remote(0)).iter().map(|q| q.request).collect();
        (hello.expect("the peer greeted its candidate"), reply, ids)
    };
    let seeded = greet(None);
    assert_eq!(seeded, greet(None), "the same seed and secret replay");
    let (a, b) = (greet(Some(Secret::from_os())), greet(Some(Secret::from_os())));
    assert_ne!(a.0, b.0, "HELLO nonces");
    assert_ne!(a.1, b.1, "reply nonces");
    assert!(a.2.len() >= 3, "requests: {:?}", a.2);
    assert_ne!(a.2, b.2, "request ids");
    assert!(a.2.windows(2).any(|w| w[1] != w[0].wrapping_add(1)), "request ids count up: {:?}", a.2);
}

/// Video is taken only from the parent asked, for the request id it was given: a stranger or
/// another neighbour sending the right request id is not heard.
#[test]
fn video_is_taken_only_from_the_parent_asked() {
    let mut h = Harness::new(|_| {});
    let p = remote(0);
    h.link(p, Map::Live { base: 500, t0: 0 }, false);
    h.link(remote(1), Map::Empty, false);
    h.advance(150_000);
    let q = requests_to(&mut h, p)[0];
    let pk = video_packets(q.request, q.first_block, q.count);
    h.expect_drops(&[(remote(1), DropReason::Unrequested, 1), (stranger(1), DropReason::NotNeighbour, 1)], |h| {
        h.deliver(remote(1), &pk[0]);
        h.deliver(stranger(1), &pk[0]);
    });
    h.expect_drops(&[], |h| {
        for d in &pk {
            h.deliver(p, d);
        }
    });
    assert_eq!(h.count_events(|e| matches!(e, Event::ResponseReceived { parent, .. } if *parent == p)), 1);
}

/// The ACK the peer sends carries its HELLO's nonce (so the responder, which keeps no state
/// for a HELLO, can check it), and its requests on the link carry the token of both nonces.
#[test]
fn the_initiators_ack_and_requests_carry_the_handshake() {
    let mut h = Harness::new(|_| {});
    let r = remote(9);
    let l = h.tracker_answer(CHANNEL, vec![v4_of(r)]);
    h.deliver(tracker(), &l);
    h.advance(200_000);
    let nonce = h
        .take(r)
        .iter()
        .find_map(|p| match parse(p) {
            Message::Hello(x) => Some(x.nonce),
            _ => None,
        })
        .expect("a HELLO");
    h.deliver(r, &reply_bytes(LinkStatus::Accepted, nonce, 0x1234, Default::default()));
    let ack = h
        .take(r)
        .iter()
        .find_map(|p| match Repr::parse(p).map(|x| x.message) {
            Ok(Message::Ack(a)) => Some(a),
            _ => None,
        })
        .expect("an ACK");
    assert_eq!((ack.echo, ack.nonce), (0x1234, nonce));
    let token = link_token(nonce, 0x1234);
    h.remotes.insert(r, Remote { map: Map::Live { base: 500, t0: 0 }, serve: false, token });
    h.advance(1_500_000);
    let reqs = requests_to(&mut h, r);
    assert!(!reqs.is_empty());
    assert!(reqs.iter().all(|q| q.token == token), "{reqs:?}");
}

/// Only a link silent for half the neighbour timeout is ended by a HELLO from its address (the
/// truth says reopened, not timeout); that HELLO is then answered as a new one, whose ACK opens
/// a new link. Before that, a HELLO ends nothing.
#[test]
fn a_hello_ends_only_a_link_gone_silent() {
    let mut h = Harness::new(|_| {});
    let c = remote(1);
    h.link(c, Map::Empty, false);
    // `c` falls silent: the harness sends no more keep-alives from it.
    h.remotes.remove(&c);
    let half = h.peer.config().neighbor_timeout / 2;
    h.advance(half - 300_000);
    h.hello(c, CHANNEL, 77);
    assert_eq!(h.count_events(|e| matches!(e, Event::NeighborDown { .. })), 0);
    h.advance(400_000);
    let first = h.events.len();
    let r = h.hello(c, CHANNEL, 78);
    assert_eq!(h.events[first..], [Event::NeighborDown { peer: c, reason: DownReason::Reopened }]);
    assert_eq!(h.peer.stats().neighbors, 0);
    h.expect_drops(&[], |h| h.deliver(c, &ack_bytes(r.ack.nonce, 78)));
    assert_eq!(h.events.last(), Some(&Event::NeighborUp { peer: c, initiator: false }));
    assert_eq!(h.peer.stats().neighbors, 1);
}

/// The table filled up between our reply to a HELLO and its ACK, with HELLOs of our own still
/// unanswered: the completed handshake takes the place of the oldest of them, and is not
/// refused.
#[test]
fn a_completed_handshake_beats_our_own_unanswered_hello() {
    let mut h = Harness::new(|c| {
        c.max_neighbors = 3;
        c.neighbor_refresh = 0;
    });
    h.link(remote(0), Map::Empty, false);
    let y = stranger(1);
    let r = h.hello(y, CHANNEL, 5);
    assert_eq!(r.ack.status, LinkStatus::Accepted);
    let peers = vec![v4_of(remote(8)), v4_of(remote(9))];
    let l = h.tracker_answer(CHANNEL, peers);
    h.deliver(tracker(), &l);
    h.advance(1_200_000);
    let greeted: Vec<SocketAddr> = [remote(8), remote(9)].into_iter().filter(|a| !h.take(*a).is_empty()).collect();
    assert_eq!(greeted.len(), 2, "the peer greets both candidates");
    h.expect_drops(&[], |h| h.deliver(y, &ack_bytes(r.ack.nonce, 5)));
    assert!(h.events.contains(&Event::NeighborUp { peer: y, initiator: false }));
    assert_eq!(h.peer.stats().neighbors, 2);
}

/// Datagrams spoofed from the peer's own address are dropped unanswered: a HELLO from it was
/// answered to the peer's own socket, and the ACK echoing that reply's cookie made the peer its
/// own neighbour (found by the `peer` fuzz target, invariant `self`).
#[test]
fn datagrams_from_the_peers_own_address_get_no_answer() {
    let mut h = Harness::new(|_| {});
    h.advance(SECOND);
    h.out.clear();
    h.expect_drops(&[(me(), DropReason::UnexpectedMessage, 3)], |h| {
        h.deliver(me(), &hello_bytes(CHANNEL, 1));
        let cookie = h.take(me()).iter().find_map(|p| match parse(p) {
            Message::HelloReply(r) => Some(r.ack.nonce),
            _ => None,
        });
        h.deliver(me(), &ack_bytes(cookie.unwrap_or(0), 1));
        h.deliver(me(), &keepalive_bytes(soplab_wire::BufferMap::empty()));
    });
    h.advance(5 * SECOND);
    assert!(h.take(me()).is_empty(), "the peer sent datagrams to its own address");
    assert_eq!(h.count_events(|e| matches!(e, Event::NeighborUp { peer, .. } if *peer == me())), 0);
}
