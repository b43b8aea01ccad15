//! Hostile and malformed input to the peer core.
//!
//! Each test drives one peer core directly through the sans-IO `Node` trait in virtual time:
//! the test is the network and every other party (`common::Harness`). It plays the other side
//! of HELLO -> reply -> ACK with `soplab_wire`, sends keep-alives, answers (or withholds) the
//! peer's video requests, and then feeds bad input. Every test checks that the drop is counted under the right reason
//! in `stats().dropped` and raised as a `Dropped` event (with the sender's address), that
//! nothing panics, and that state and output stay bounded.

mod common;

use std::cell::RefCell;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::rc::Rc;

use common::*;
use proptest::prelude::*;
use soplab_node::truth::DownReason;
use soplab_node::{DropReason, Event, Node, SECOND};
use soplab_wire::video::{Insert, fragment_count};
use soplab_wire::{
    BLOCK_LEN, BufferMap, Hello, LinkAck, LinkStatus, Message, PeerList, PeerSet, Reassembler, Repr, Request,
};

// ---- 1. undecodable ----

/// Every valid datagram kind, truncated at every length or with its version byte changed, is
/// counted as undecodable, from a neighbour and from a stranger alike, and gets no answer.
#[test]
fn truncated_and_corrupted_datagrams_are_undecodable() {
    let mut h = Harness::new(|_| {});
    let n = remote(1);
    h.link(n, Map::Empty, false);
    h.out.clear();
    let v = video_packets(9, 100, 3);
    let samples = [
        hello_bytes(CHANNEL, 5),
        reply_bytes(LinkStatus::Accepted, 1, 2, PeerSet::new()),
        ack_bytes(3, 4),
        keepalive_bytes(BufferMap::from_fn(300, |b| b % 3 != 0)),
        request_bytes(1, 10, 4, CHANNEL, 5),
        v[0].clone(),
        v.last().expect("packets").clone(),
    ];
    let mut fed = 0;
    for s in &samples {
        for len in 0..s.len() {
            let d = &s[..len];
            assert!(Repr::parse(d).is_err(), "a truncated datagram decoded");
            for from in [n, stranger(1)] {
                h.expect_drops(&[(from, DropReason::Undecodable, 1)], |h| h.deliver(from, d));
                fed += 1;
            }
        }
        let mut bad = s.clone();
        bad[3] ^= 0x40;
        h.expect_drops(&[(n, DropReason::Undecodable, 1)], |h| h.deliver(n, &bad));
        // One byte too many.
        let mut long = s.clone();
        long.push(0);
        assert!(Repr::parse(&bad).is_err() && Repr::parse(&long).is_err());
        h.expect_drops(&[(n, DropReason::Undecodable, 1)], |h| h.deliver(n, &long));
    }
    assert!(fed > 2000);
    assert!(h.out.is_empty(), "garbage was answered: {:?}", h.out.len());
    assert_eq!(h.peer.stats().neighbors, 1, "garbage changed the neighbour set");
}

/// A valid datagram of kind `k` (0..7) with some fields from `x`.
fn sample(k: u8, x: u32) -> Vec<u8> {
    match k {
        0 => hello_bytes(CHANNEL, x),
        1 => reply_bytes(LinkStatus::Accepted, x, x.rotate_left(7), PeerSet::new()),
        2 => ack_bytes(x, x.rotate_left(3)),
        3 => keepalive_bytes(BufferMap::from_fn(x % 100_000, |b| b & 1 == 0)),
        4 => request_bytes(x, x % 100_000, 1 + (x % 16) as u8, CHANNEL, x.rotate_left(11)),
        5 => video_packets(x, x % 100_000, 1 + (x % 3) as u8)[0].clone(),
        _ => dgram(0, Message::PeerList(PeerList { channel: CHANNEL, verified: true, cookie: 0, peers: vec![] })),
    }
}

fn sender(i: u8) -> SocketAddr {
    match i % 3 {
        0 => remote(1),
        1 => stranger(1),
        _ => tracker(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Random byte strings, from a neighbour, a stranger or the tracker's address, are counted
    /// as undecodable one for one and never answered.
    #[test]
    fn random_bytes_are_undecodable(
        datagrams in prop::collection::vec((any::<u8>(), prop::collection::vec(any::<u8>(), 0..1400)), 1..64),
    ) {
        let mut h = Harness::new(|_| {});
        h.link(remote(1), Map::Empty, false);
        h.out.clear();
        for (who, d) in &datagrams {
            let from = sender(*who);
            if Repr::parse(d).is_ok() {
                h.deliver(from, d);
                continue;
            }
            h.expect_drops(&[(from, DropReason::Undecodable, 1)], |h| h.deliver(from, d));
        }
        prop_assert!(h.out.is_empty());
        prop_assert_eq!(h.peer.stats().neighbors, 1);
    }

    /// Valid datagrams with bytes overwritten, truncated or extended: whatever no longer decodes
    /// is counted as undecodable; whatever still decodes is handled without panicking.
    #[test]
    fn mutated_datagrams_never_panic(
        inputs in prop::collection::vec(
            (0u8..7, any::<u32>(), any::<u8>(), prop::collection::vec((any::<u16>(), any::<u8>()), 0..4), any::<u16>()),
            1..48,
        ),
    ) {
        let mut h = Harness::new(|_| {});
        h.link(remote(1), Map::Empty, false);
        for (k, x, who, edits, cut) in &inputs {
            let mut d = sample(*k, *x);
            for (at, b) in edits {
                let i = usize::from(*at) % d.len();
                d[i] = *b;
            }
            match cut % 4 {
                0 => d.truncate(usize::from(*cut) % (d.len() + 1)),
                1 => d.extend_from_slice(&cut.to_be_bytes()),
                _ => {}
            }
            let from = sender(*who);
            if Repr::parse(&d).is_ok() {
                h.deliver(from, &d);
            } else {
                h.expect_drops(&[(from, DropReason::Undecodable, 1)], |h| h.deliver(from, &d));
            }
        }
        h.advance(2 * SECOND);
        prop_assert!(h.peer.stats().neighbors <= 60);
    }
}

// ---- 2. wrong channel ----

#[test]
fn other_channel_hello_and_request_are_refused() {
    let mut h = Harness::stocked(|_| {});
    let a = remote(1);
    let reply = h.expect_drops(&[(a, DropReason::WrongChannel, 1)], |h| h.hello(a, CHANNEL + 1, 99));
    assert_eq!(reply.ack.status, LinkStatus::WrongChannel);
    assert_eq!(reply.ack.echo, 99);
    assert_eq!(reply.ack.channel, CHANNEL);
    // No link was opened, and a refusal hands out no cookie: completing the handshake anyway
    // is a bad nonce.
    assert_eq!(reply.ack.nonce, 0);
    h.expect_drops(&[(a, DropReason::BadNonce, 1)], |h| h.deliver(a, &ack_bytes(reply.ack.nonce, 99)));
    assert_eq!(h.count_events(|e| matches!(e, Event::NeighborUp { peer, .. } if *peer == a)), 0);

    // An established child asking on another channel gets nothing.
    let c = remote(2);
    h.link(c, Map::Empty, false);
    let b = h.held(4);
    h.expect_drops(&[(c, DropReason::WrongChannel, 50)], |h| {
        for i in 0..50 {
            h.deliver(c, &h.request(c, i, b, 4, CHANNEL ^ 0xffff));
        }
    });
    h.advance(SECOND);
    assert!(videos(&h.take(c)).is_empty(), "video sent for another channel's request");
    assert_eq!(h.count_events(|e| matches!(e, Event::ChildUp { .. })), 0);
    // The same request on the right channel is served (the refusals above were for the channel).
    h.expect_drops(&[], |h| h.deliver(c, &h.request(c, 77, b, 4, CHANNEL)));
    assert_eq!(videos(&h.take(c)).len(), usize::from(fragment_count(4)));

    // A tracker peer list for another channel is not used.
    let l = h.tracker_answer(CHANNEL + 1, vec![]);
    h.expect_drops(&[(tracker(), DropReason::WrongChannel, 1)], |h| h.deliver(tracker(), &l));
}

// ---- 3. video nobody asked for ----

/// A peer with one silent parent (`remote(0)`) and the requests it sent it, still outstanding.
fn waiting_for_video() -> (Harness, Vec<Request>) {
    let mut h = Harness::new(|_| {});
    h.link(remote(0), Map::Live { base: 500, t0: 0 }, false);
    h.advance(150_000);
    let reqs: Vec<Request> = h
        .take(remote(0))
        .iter()
        .filter_map(|p| match parse(p) {
            Message::Request(q) => Some(q),
            _ => None,
        })
        .collect();
    assert!(!reqs.is_empty(), "the peer sent no request");
    (h, reqs)
}

#[test]
fn unrequested_video_is_dropped() {
    let (mut h, reqs) = waiting_for_video();
    let p = remote(0);
    let q = reqs[0];
    let s = stranger(3);
    let c = remote(4);
    h.link(c, Map::Empty, false);
    let unused = 0x00ff_0000;
    assert!(reqs.iter().all(|r| r.request != unused));

    // From an address that is not a neighbour.
    let pk = video_packets(unused, q.first_block, q.count);
    h.expect_drops(&[(s, DropReason::NotNeighbour, pk.len() as u64)], |h| {
        for d in &pk {
            h.deliver(s, d);
        }
    });
    // From a neighbour, for a request never made.
    h.expect_drops(&[(c, DropReason::Unrequested, 1), (p, DropReason::Unrequested, 1)], |h| {
        h.deliver(c, &pk[0]);
        h.deliver(p, &pk[0]);
    });
    // From a neighbour that is not the parent the request went to.
    let right = video_packets(q.request, q.first_block, q.count);
    h.expect_drops(&[(c, DropReason::Unrequested, 2)], |h| {
        h.deliver(c, &right[0]);
        h.deliver(c, &right[1]);
    });
    // From the parent, but with first_block or count not those of the request.
    let shifted = video_packets(q.request, q.first_block + 1, q.count);
    let other_count = video_packets(q.request, q.first_block, if q.count > 1 { q.count - 1 } else { 2 });
    h.expect_drops(&[(p, DropReason::Unrequested, (shifted.len() + other_count.len()) as u64)], |h| {
        for d in shifted.iter().chain(&other_count) {
            h.deliver(p, d);
        }
    });
    assert_eq!(h.count_events(|e| matches!(e, Event::ResponseReceived { .. })), 0);
    // None of it disturbed the real response, which still completes with the right bytes.
    h.expect_drops(&[], |h| {
        for d in &right {
            h.deliver(p, d);
        }
    });
    assert!(h.events.contains(&Event::ResponseReceived {
        parent: p,
        request: q.request,
        first_block: q.first_block,
        count: q.count,
        bytes: (usize::from(q.count) * BLOCK_LEN) as u64,
    }));
    assert!(h.out.iter().all(|t| t.dst != s), "the stranger got an answer");
}

/// Video from a stranger that guesses an outstanding request id (ids are sequential) must be
/// counted as `not_neighbour`, like any other link-level datagram from a non-neighbour.
#[test]
fn video_from_stranger_with_outstanding_request_id_is_not_neighbour() {
    let (mut h, reqs) = waiting_for_video();
    let q = reqs[0];
    let s = stranger(3);
    let pk = video_packets(q.request, q.first_block, q.count);
    h.expect_drops(&[(s, DropReason::NotNeighbour, 1)], |h| h.deliver(s, &pk[0]));
}

// ---- 4. duplicates and replays ----

/// Every packet of every response arrives twice, and the whole response is replayed once it
/// has completed. The second copy of a packet of a response in progress is a `duplicate`; a
/// packet of a response already complete (the second copy of its last packet, and every replayed
/// packet) is `unrequested`. The peer still plays exactly the stream's bytes, without a miss.
#[test]
fn duplicated_and_replayed_video() {
    let mut h = Harness::new(|_| {});
    let expected = Rc::new(RefCell::new((0u64, 0u64)));
    let e = expected.clone();
    h.tamper = Some(Box::new(move |packets: Vec<Vec<u8>>| {
        let n = packets.len() as u64;
        let mut e = e.borrow_mut();
        e.0 += n - 1;
        e.1 += n + 1;
        let mut out: Vec<Vec<u8>> = packets.iter().flat_map(|p| [p.clone(), p.clone()]).collect();
        out.extend(packets);
        out
    }));
    let p = remote(0);
    h.link(p, Map::Live { base: 3000, t0: 0 }, true);
    h.advance(30 * SECOND);
    let (dups, unreq) = *expected.borrow();
    assert!(dups > 100, "too few responses: {dups}");
    let d = h.dropped();
    assert_eq!(d.get("duplicate").copied().unwrap_or(0), dups, "{d:?}");
    assert_eq!(d.get("unrequested").copied().unwrap_or(0), unreq, "{d:?}");
    assert_eq!(d.len(), 2, "other drops: {d:?}");
    let ev = |r: DropReason| h.count_events(|e| *e == Event::Dropped { from: p, reason: r }) as u64;
    assert_eq!(ev(DropReason::Duplicate), dups);
    assert_eq!(ev(DropReason::Unrequested), unreq);
    let played = h.check_played();
    let s = h.peer.stats();
    assert!(played > 100, "played {played}");
    assert_eq!(s.blocks_played, s.blocks_due, "missed blocks: {s:?}");
    assert_eq!(s.blocks_played, played as u64);
    assert_eq!(s.requests_timed_out, 0);
}

/// Packets replayed long after their response completed (and from before a request with the
/// same blocks was made again) change nothing.
#[test]
fn late_replay_of_old_responses_is_unrequested() {
    let mut h = Harness::new(|_| {});
    let log = Rc::new(RefCell::new(Vec::<Vec<u8>>::new()));
    let l = log.clone();
    h.tamper = Some(Box::new(move |packets: Vec<Vec<u8>>| {
        l.borrow_mut().extend(packets.iter().cloned());
        packets
    }));
    let p = remote(0);
    h.link(p, Map::Live { base: 3000, t0: 0 }, true);
    h.advance(10 * SECOND);
    let old: Vec<Vec<u8>> = log.borrow().clone();
    assert!(old.len() > 300, "only {} packets", old.len());
    h.expect_drops(&[(p, DropReason::Unrequested, old.len() as u64)], |h| {
        for d in &old {
            h.deliver(p, d);
        }
    });
    h.advance(10 * SECOND);
    h.check_played();
    let s = h.peer.stats();
    assert_eq!(s.blocks_played, s.blocks_due);
}

// ---- 5. bad nonce ----

#[test]
fn reply_with_wrong_nonce_does_not_open_the_link() {
    let mut h = Harness::new(|_| {});
    let r = remote(9);
    let SocketAddr::V4(r4) = r else { unreachable!() };
    let l = h.tracker_answer(CHANNEL, vec![r4]);
    h.deliver(tracker(), &l);
    h.advance(200_000);
    let hellos: Vec<Hello> = h
        .take(r)
        .iter()
        .filter_map(|p| match parse(p) {
            Message::Hello(x) => Some(x),
            _ => None,
        })
        .collect();
    assert_eq!(hellos.len(), 1, "the peer did not greet its candidate");
    let nonce = hellos[0].nonce;

    // A wrong echo, carrying addresses to lure the peer: dropped, no ACK, no link, no candidates.
    let lure: PeerSet = (0..8).map(|i| SocketAddrV4::new(Ipv4Addr::new(10, 9, 9, i), 1)).collect();
    for wrong in [nonce ^ 1, nonce.wrapping_add(1), !nonce] {
        h.expect_drops(&[(r, DropReason::BadNonce, 1)], |h| {
            h.deliver(r, &reply_bytes(LinkStatus::Accepted, wrong, 0x77, lure))
        });
    }
    // A wrong echo with a refusal does not tear the handshake down either.
    h.expect_drops(&[(r, DropReason::BadNonce, 1)], |h| {
        h.deliver(r, &reply_bytes(LinkStatus::Full, nonce ^ 2, 0x77, PeerSet::new()))
    });
    // The right echo from someone else is not a neighbour's.
    h.expect_drops(&[(stranger(1), DropReason::NotNeighbour, 1)], |h| {
        h.deliver(stranger(1), &reply_bytes(LinkStatus::Accepted, nonce, 0x77, PeerSet::new()))
    });
    assert!(h.take(r).is_empty(), "the peer answered a bad reply");
    assert_eq!(h.count_events(|e| matches!(e, Event::NeighborUp { .. })), 0);
    assert_eq!(h.peer.stats().neighbors, 0);

    // The genuine reply still opens the link.
    h.expect_drops(&[], |h| h.deliver(r, &reply_bytes(LinkStatus::Accepted, nonce, 0x1234, PeerSet::new())));
    assert!(h.events.contains(&Event::NeighborUp { peer: r, initiator: true }));
    let acks: Vec<LinkAck> = h
        .take(r)
        .iter()
        .filter_map(|p| match parse(p) {
            Message::Ack(a) => Some(a),
            _ => None,
        })
        .collect();
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].echo, 0x1234);
    // The lure addresses were never contacted.
    h.advance(5 * SECOND);
    assert!(h.out.iter().all(|t| !matches!(t.dst, SocketAddr::V4(a) if a.ip().octets()[..3] == [10, 9, 9])));
}

#[test]
fn reply_to_a_peer_that_never_sent_hello_opens_nothing() {
    let mut h = Harness::new(|_| {});
    let r = remote(9);
    h.expect_drops(&[(r, DropReason::NotNeighbour, 1)], |h| {
        h.deliver(r, &reply_bytes(LinkStatus::Accepted, 0, 0, PeerSet::new()))
    });
    assert_eq!(h.count_events(|e| matches!(e, Event::NeighborUp { .. })), 0);
    assert!(h.take(r).is_empty());
}

/// The responder's side: an ACK that does not echo the reply's nonce.
#[test]
fn ack_with_wrong_nonce_does_not_open_the_link() {
    let mut h = Harness::new(|_| {});
    let r = remote(5);
    let reply = h.hello(r, CHANNEL, 1);
    assert_eq!(reply.ack.status, LinkStatus::Accepted);
    h.expect_drops(&[(r, DropReason::BadNonce, 2)], |h| {
        h.deliver(r, &ack_bytes(reply.ack.nonce ^ 0x8000_0000, 1));
        h.deliver(r, &ack_bytes(reply.ack.nonce.wrapping_sub(1), 1));
    });
    assert_eq!(h.count_events(|e| matches!(e, Event::NeighborUp { .. })), 0);
    assert_eq!(h.peer.stats().neighbors, 0);
    h.expect_drops(&[], |h| h.deliver(r, &ack_bytes(reply.ack.nonce, 1)));
    assert!(h.events.contains(&Event::NeighborUp { peer: r, initiator: false }));
    // A second ACK on an established link is not a handshake any more.
    h.expect_drops(&[(r, DropReason::UnexpectedMessage, 1)], |h| h.deliver(r, &ack_bytes(reply.ack.nonce, 1)));
}

// ---- 6. keep-alives from non-neighbours ----

#[test]
fn keepalives_from_non_neighbours_are_dropped() {
    let mut h = Harness::new(|_| {});
    let big = BufferMap::from_fn(5000, |_| true);
    h.expect_drops(&[(stranger(1), DropReason::NotNeighbour, 100)], |h| {
        for _ in 0..100 {
            h.deliver(stranger(1), &keepalive_bytes(big));
        }
    });
    // Half-open (HELLO answered, no ACK yet) is not a neighbour either.
    let r = remote(1);
    let reply = h.hello(r, CHANNEL, 3);
    assert_eq!(reply.ack.status, LinkStatus::Accepted);
    h.expect_drops(&[(r, DropReason::NotNeighbour, 1)], |h| h.deliver(r, &keepalive_bytes(big)));
    // The announced blocks are never requested from either, and neither gets an answer.
    h.advance(2 * SECOND);
    assert!(h.take(stranger(1)).is_empty());
    assert!(h.take(r).is_empty());
    assert_eq!(h.peer.stats().requests_sent, 0);
    // Requests from a non-neighbour are dropped the same way.
    h.expect_drops(&[(stranger(2), DropReason::NotNeighbour, 1)], |h| {
        h.deliver(stranger(2), &request_bytes(1, 0, 1, CHANNEL, 0))
    });
}

// ---- 7. a child that requests without end ----

/// 100,000 requests in bursts of 1,000 with no upload cap: each burst, exactly `child_queue`
/// requests are accepted and served and the rest are refused as `overloaded`; what the peer
/// sends after each burst stays under a fixed bound.
#[test]
fn request_flood_is_bounded_by_the_child_queue() {
    let mut h = Harness::stocked(|_| {});
    let queue = h.peer.config().child_queue;
    let c = remote(1);
    h.link(c, Map::Empty, false);
    let b = h.held(4);
    let per_response = usize::from(fragment_count(4));
    let mut reasm = Reassembler::<u32>::new(8);
    let mut id = 0u32;
    let mut served = 0;
    for burst in 0..100 {
        h.out.clear();
        h.expect_drops(&[(c, DropReason::Overloaded, 1000 - queue as u64)], |h| {
            for _ in 0..1000 {
                id += 1;
                let d = h.request(c, id, b, 4, CHANNEL);
                h.peer.handle_datagram(h.now, c, &d);
            }
            h.pump();
        });
        let to_c = h.take(c);
        let vids = videos(&to_c);
        assert_eq!(vids.len(), queue * per_response, "burst {burst}: {} video packets", vids.len());
        assert!(to_c.len() <= queue * per_response + 2, "burst {burst}: {} datagrams", to_c.len());
        // The accepted requests are the first `child_queue` of the burst, served whole and right.
        for p in &to_c {
            if let Message::Video(v) = parse(p) {
                assert!(v.request > id - 1000 && v.request <= id - 1000 + queue as u32);
                if let Ok(Insert::Complete(done)) = reasm.insert(v.request, 0, &v) {
                    assert!(done.data == &blocks(b, 4)[..]);
                    served += 1;
                }
            }
        }
        h.advance(50_000);
    }
    assert_eq!(served, 100 * queue);
    assert_eq!(h.peer.stats().responses_sent, 100 * queue as u64);
    assert_eq!(h.dropped().get("overloaded").copied(), Some(100 * (1000 - queue as u64)));
    assert_eq!(h.peer.stats().neighbors, 2);
}

/// With an upload cap, requests arriving far faster than they can be served: the backlog never
/// exceeds `child_queue` responses, the upload never exceeds the token bucket (rate times time,
/// plus one bucket of at most a second, plus one packet), and every other request is refused
/// as `overloaded`.
#[test]
fn request_flood_under_upload_cap_keeps_a_bounded_backlog() {
    let rate_bps = 2_000_000u64;
    let mut h = Harness::stocked(|c| c.upload_bps = Some(rate_bps));
    let queue = h.peer.config().child_queue as u64;
    let per_response = u64::from(fragment_count(4));
    let c = remote(1);
    h.link(c, Map::Empty, false);
    let b = h.held(4);
    let start = h.now;
    let up0 = h.peer.stats().uploaded_bytes;
    let rate = rate_bps as f64 / 8.0;
    let bucket = rate.max(64e3);
    let mut sent = 0u64;
    let mut id = 0u32;
    let mut max_backlog = 0;
    let mut max_steady_packets = 0;
    // 100,000 requests: 250 every 10 ms for 4 s of virtual time.
    while sent < 100_000 {
        h.out.clear();
        for _ in 0..250 {
            id += 1;
            let d = h.request(c, id, b, 4, CHANNEL);
            h.peer.handle_datagram(h.now, c, &d);
            sent += 1;
        }
        h.pump();
        h.advance(10_000);
        let s = h.peer.stats();
        let refused: u64 = s.dropped.values().sum();
        let accepted = sent - refused;
        let done = h.count_events(|e| matches!(e, Event::ResponseSent { child, .. } if *child == c)) as u64;
        let backlog = accepted - done;
        max_backlog = max_backlog.max(backlog);
        assert!(backlog <= queue, "backlog of {backlog} responses for one child");
        let elapsed = (h.now - start) as f64 / 1e6;
        let up = (s.uploaded_bytes - up0) as f64;
        assert!(up <= rate * elapsed + bucket + 1320.0, "uploaded {up} bytes in {elapsed} s");
        let packets = videos(&h.take(c)).len() as u64;
        assert!(packets <= queue * per_response, "{packets} packets in one step");
        if elapsed > 1.5 {
            max_steady_packets = max_steady_packets.max(packets);
        }
    }
    let s = h.peer.stats();
    assert_eq!(s.dropped.keys().collect::<Vec<_>>(), ["overloaded"], "{:?}", s.dropped);
    assert_eq!(max_backlog, queue);
    // 2 Mbit/s is about 19 full packets per 10 ms step.
    assert!(max_steady_packets <= 25, "{max_steady_packets} packets in one 10 ms step");
    let up = s.uploaded_bytes - up0;
    assert!(up as f64 >= rate * 3.0, "only {up} bytes uploaded in 4 s");
    eprintln!(
        "flood under cap: {sent} requests, {} served, {} refused, {up} bytes up",
        s.responses_sent, s.dropped["overloaded"],
    );
}

// ---- 8. missing blocks ----

#[test]
fn requests_for_blocks_not_held_are_dropped() {
    let mut h = Harness::stocked(|_| {});
    let c = remote(1);
    h.link(c, Map::Empty, false);
    let newest = *h.received.last().expect("blocks");
    let oldest = *h.received.first().expect("blocks");
    let cases = [
        (newest + 1, 1),
        (newest, 2),
        (newest + 1000, 16),
        (oldest - 1, 1),
        (oldest - 3, 4),
        (0, 16),
        (u32::MAX - 16, 16),
    ];
    h.expect_drops(&[(c, DropReason::MissingBlock, cases.len() as u64)], |h| {
        for (i, (first, count)) in cases.into_iter().enumerate() {
            h.deliver(c, &h.request(c, i as u32, first, count, CHANNEL));
        }
    });
    h.advance(100_000);
    assert!(videos(&h.take(c)).is_empty());
    assert_eq!(h.count_events(|e| matches!(e, Event::ChildUp { .. })), 0);

    // A peer that holds nothing at all.
    let mut empty = Harness::new(|_| {});
    empty.link(c, Map::Empty, false);
    empty.expect_drops(&[(c, DropReason::MissingBlock, 1)], |h| h.deliver(c, &h.request(c, 1, 0, 1, CHANNEL)));
}

// ---- 9. HELLO flood ----

/// A flood of HELLOs holds nothing: each is answered, accepted while the table has room (no
/// state is kept until the ACK). Completing the handshakes fills the table to `max_neighbors`
/// and no further: past it, one never-met peer gets in for the least useful neighbour, and
/// the others' ACKs are refused as `table_full`.
#[test]
fn hello_flood_never_exceeds_max_neighbors() {
    let mut h = Harness::new(|_| {});
    let max = h.peer.config().max_neighbors;
    let mut accepted = Vec::new();
    for i in 0..5000 {
        let a = remote(i);
        let r = h.hello(a, CHANNEL, i);
        assert_eq!((r.ack.status, r.ack.echo), (LinkStatus::Accepted, i));
        accepted.push((a, r.ack.nonce, i));
    }
    assert_eq!(h.peer.stats().neighbors, 0, "HELLOs alone hold no slot");
    let refused: Vec<(SocketAddr, DropReason, u64)> =
        accepted[max + 1..].iter().map(|(a, _, _)| (*a, DropReason::TableFull, 1)).collect();
    h.expect_drops(&refused, |h| {
        for (a, n, i) in &accepted {
            h.deliver(*a, &ack_bytes(*n, *i));
        }
    });
    assert_eq!(h.peer.stats().neighbors, max);
    assert_eq!(h.count_events(|e| matches!(e, Event::NeighborUp { .. })), max + 1);
    assert_eq!(h.count_events(|e| matches!(e, Event::NeighborDown { reason: DownReason::Replaced, .. })), 1);
    // A full list still tells a peer never met that it is accepted, but at most one per
    // `newcomer_pace`: a flood at one instant gets exactly one. Nobody is pushed out for it
    // before its ACK.
    h.advance(h.peer.config().newcomer_pace);
    let let_in = (5000..6000).filter(|&i| h.hello(remote(i), CHANNEL, i).ack.status == LinkStatus::Accepted).count();
    assert_eq!(let_in, 1);
    assert_eq!(h.peer.stats().neighbors, max);
    // The refused never got a cookie: an ACK without one is a bad nonce.
    h.expect_drops(&[(remote(5500), DropReason::BadNonce, 1)], |h| h.deliver(remote(5500), &ack_bytes(0, 5500)));
    assert_eq!(h.peer.stats().neighbors_max, max);
}

/// HELLOs never completed leave nothing behind: five rounds of 1,000 from new addresses, a
/// handshake timeout apart, are each accepted (the table stays empty), and the peer never
/// greets any of those addresses itself (it used to, once their half-open entries expired).
#[test]
fn unanswered_hello_flood_leaves_no_state() {
    let mut h = Harness::new(|_| {});
    let timeout = h.peer.config().handshake_timeout;
    let mut i = 0;
    for round in 0..5 {
        for _ in 0..1000 {
            let r = h.hello(remote(i), CHANNEL, i);
            i += 1;
            assert_eq!(r.ack.status, LinkStatus::Accepted, "round {round}");
        }
        h.advance(timeout + 500_000);
        let hellos = h
            .out
            .iter()
            .filter(|t| matches!(Repr::parse(&t.payload), Ok(Repr { message: Message::Hello(_), .. })))
            .count();
        assert_eq!(hellos, 0, "HELLOs sent to the flood's addresses");
    }
    assert_eq!(h.count_events(|e| matches!(e, Event::NeighborUp { .. })), 0);
    assert_eq!(h.peer.stats().neighbors, 0);
}

// ---- a neighbour announcing absurd block ids ----

/// A neighbour whose keep-alive announces a newest block near `u32::MAX` (the largest value
/// the wire allows) must not crash the peer; the peer's request window starts `lag` behind it
/// and must not overflow.
#[test]
fn keepalive_announcing_the_largest_block_id_does_not_crash() {
    let mut h = Harness::new(|_| {});
    let r = remote(1);
    h.link(r, Map::Empty, false);
    h.deliver(r, &keepalive_bytes(BufferMap::from_fn(u32::MAX - 1, |_| true)));
    // Long enough for the request window and then playback (which starts at the latest after
    // `startup_max`) to reach the top of the id space.
    h.advance(30 * SECOND);
    assert!(h.peer.stats().neighbors <= 1);
}

/// The same at low bitrates, where `lag` spans fewer blocks than the start-up buffer (at
/// 200 kbit/s a block lasts 0.41 s): the start point and the start-up arithmetic near the top
/// of the id space must not overflow.
#[test]
fn the_largest_block_id_does_not_overflow_at_low_bitrates() {
    for bitrate_bps in [200_000, 64_000, 8_000, 1] {
        let mut h = Harness::new(|c| c.bitrate_bps = bitrate_bps);
        let r = remote(1);
        h.link(r, Map::Empty, false);
        h.deliver(r, &keepalive_bytes(BufferMap::from_fn(u32::MAX - 1, |_| true)));
        h.advance(30 * SECOND);
        assert!(h.peer.stats().neighbors <= 1, "at {bitrate_bps} bit/s");
    }
}

/// One neighbour announcing an absurd newest block before the peer has chosen where to start
/// should not decide the start point alone: with two honest parents streaming around block
/// 1000, the peer should still play their stream. Today the start is the largest newest block
/// any neighbour announces, so one keep-alive leaves the peer waiting forever for blocks only
/// the liar claims to have (after the overflow fix; before it, the peer panics).
#[test]
fn one_lying_neighbour_does_not_choose_the_start_point() {
    let mut h = Harness::new(|_| {});
    h.link(remote(0), Map::Live { base: 1000, t0: 0 }, true);
    h.link(remote(1), Map::Live { base: 1000, t0: 0 }, true);
    h.link(remote(2), Map::Empty, false);
    h.deliver(remote(2), &keepalive_bytes(BufferMap::from_fn(50_000, |_| true)));
    h.advance(30 * SECOND);
    h.check_played();
    let s = h.peer.stats();
    let c = s.continuity.unwrap_or(0.0);
    assert!(c >= 0.9, "continuity {c:.3}: {} of {} blocks", s.blocks_played, s.blocks_due);
}

// ---- structured fuzz: valid datagrams with hostile fields ----

#[derive(Debug, Clone)]
enum Op {
    Hello { who: u8, channel_ok: bool, nonce: u32 },
    Ack { who: u8, echo: u32, nonce: u32 },
    KeepAlive { who: u8, newest: u32, stride: u8 },
    Request { who: u8, id: u32, first: u32, count: u8, channel_ok: bool, token_ok: bool },
    Video { who: u8, request: u32, first: u32, count: u8, index: u16 },
    Advance { ms: u16 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (any::<u8>(), any::<bool>(), any::<u32>()).prop_map(|(who, channel_ok, nonce)| Op::Hello {
            who,
            channel_ok,
            nonce
        }),
        (any::<u8>(), any::<u32>(), any::<u32>()).prop_map(|(who, echo, nonce)| Op::Ack { who, echo, nonce }),
        // Block ids stay below 2^31 here; the largest ids have their own test above.
        (any::<u8>(), 0u32..1 << 31, any::<u8>()).prop_map(|(who, newest, stride)| Op::KeepAlive {
            who,
            newest,
            stride
        }),
        (any::<u8>(), any::<u32>(), 0u32..2000, 1u8..=16, any::<bool>(), any::<bool>()).prop_map(
            |(who, id, first, count, channel_ok, token_ok)| Op::Request { who, id, first, count, channel_ok, token_ok }
        ),
        (any::<u8>(), 0u32..16, 0u32..2000, 1u8..=16, any::<u16>())
            .prop_map(|(who, request, first, count, index)| { Op::Video { who, request, first, count, index } }),
        (0u16..3000).prop_map(|ms| Op::Advance { ms }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any sequence of well-formed datagrams with arbitrary fields, from linked neighbours and
    /// strangers, interleaved with time: no panic, the neighbour table stays bounded, every
    /// drop is both counted and raised, and whatever is played is the stream's bytes.
    #[test]
    fn hostile_valid_datagrams_never_panic(ops in prop::collection::vec(op(), 1..80)) {
        let mut h = Harness::new(|c| c.max_neighbors = 6);
        h.link(remote(0), Map::Live { base: 1000, t0: 0 }, true);
        h.link(remote(1), Map::Empty, false);
        let who = |w: u8| match w % 4 { 0 => remote(0), 1 => remote(1), 2 => remote(2 + u32::from(w % 16)), _ => stranger(u32::from(w)) };
        for o in ops {
            match o {
                Op::Hello { who: w, channel_ok, nonce } => {
                    let ch = if channel_ok { CHANNEL } else { CHANNEL + 1 };
                    h.deliver(who(w), &hello_bytes(ch, nonce));
                }
                Op::Ack { who: w, echo, nonce } => h.deliver(who(w), &ack_bytes(echo, nonce)),
                Op::KeepAlive { who: w, newest, stride } => {
                    let s = u32::from(stride.max(1));
                    // The serving parent's map is the harness's to announce (it checks that the
                    // peer only asks for announced blocks), so lies come from the others.
                    let from = if who(w) == remote(0) { remote(1) } else { who(w) };
                    h.deliver(from, &keepalive_bytes(BufferMap::from_fn(newest, |b| b % s == 0)));
                }
                Op::Request { who: w, id, first, count, channel_ok, token_ok } => {
                    let ch = if channel_ok { CHANNEL } else { CHANNEL ^ 1 };
                    let d = if token_ok { h.request(who(w), id, first, count, ch) } else { request_bytes(id, first, count, ch, id) };
                    h.deliver(who(w), &d);
                }
                Op::Video { who: w, request, first, count, index } => {
                    let pk = video_packets(request, first, count);
                    let i = usize::from(index) % pk.len();
                    h.deliver(who(w), &pk[i]);
                }
                Op::Advance { ms } => h.advance(u64::from(ms) * 1000),
            }
            prop_assert!(h.peer.stats().neighbors <= 6);
        }
        h.advance(5 * SECOND);
        let counted: u64 = h.dropped().values().sum();
        let raised = h.count_events(|e| matches!(e, Event::Dropped { .. })) as u64;
        prop_assert_eq!(counted, raised);
        h.check_played();
    }
}
