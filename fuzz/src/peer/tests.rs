//! The harness reaches deep into the core: programs written by hand get links up, video
//! through and blocks played (a harness that only ever hit the decoder would pass any fuzzing
//! run), and every invariant holds on the way.

use super::ops::{Bits, Block, Chan, Msg, Op, Seq, Token};
use super::{Harness, Setup};
use crate::check::{PENDING, tolerate};

/// A harness whose invariants hold but for those [`PENDING`] a fix.
fn harness(kind: u8) -> Harness {
    tolerate(PENDING);
    Harness::new(&Setup { kind, seed: 3, start_ms: 0 })
}

fn send(from: u8, msg: Msg) -> Op {
    Op::Send { from, seq: Seq::Next, msg, patch: None }
}

fn keepalive(from: u8) -> Op {
    send(from, Msg::KeepAlive { newest: Some(Block::Edge(0)), bits: Bits::All })
}

/// Peers at pool 4..10 announce the stream; pool 4..7 link to the core, and it links to the
/// others after the tracker's list names them.
fn linked(kind: u8) -> Harness {
    let mut h = harness(kind);
    h.apply(Op::Advance { ms: 200 });
    let peers = (8..11).collect();
    let list = Msg::PeerList { channel: Chan::Ours, verified: true, cookie: 7, peers, fresh: 0 };
    h.apply(Op::Send { from: 0, seq: Seq::Echo, msg: list, patch: None });
    for from in 4..8 {
        h.apply(Op::Link { from });
    }
    for _ in 0..5 {
        h.apply(Op::Advance { ms: 1_000 });
        for from in 8..11 {
            h.apply(Op::Link { from });
        }
    }
    h
}

#[test]
fn a_peer_links_pulls_and_plays() {
    let mut h = linked(0);
    assert!(h.model().reached().links_up >= 5, "{:?}", h.model().reached());
    for _ in 0..150 {
        h.apply(Op::Advance { ms: 200 });
        for from in 4..11 {
            h.apply(keepalive(from));
            for pick in 0..3 {
                h.apply(Op::Respond { from, pick, skip: 0, twice: pick == 2 });
            }
        }
    }
    h.finish();
    let r = h.model().reached();
    assert!(r.responses_received >= 20 && r.blocks_played >= 50 && r.tokens_checked >= 20, "{r:?}");
}

#[test]
fn the_source_serves_its_children() {
    let mut h = linked(2);
    for round in 0..20u8 {
        h.apply(Op::Advance { ms: 300 });
        for from in 4..11 {
            h.apply(keepalive(from));
            let first = Block::Theirs(round % 8 + 4);
            let token = Token::Right;
            h.apply(send(
                from,
                Msg::Request { request: u32::from(round), first, count: 3, channel: Chan::Ours, token },
            ));
        }
    }
    let before = h.model().reached().responses_sent;
    for from in 4..11 {
        let (first, token) = (Block::Theirs(4), Token::Wrong(from));
        h.apply(send(from, Msg::Request { request: 99, first, count: 1, channel: Chan::Ours, token }));
    }
    h.apply(Op::Advance { ms: 2_000 });
    let r = h.model().reached();
    assert!(r.bad_tokens >= 5 && r.responses_sent == before, "{r:?}");
    h.apply(Op::Shutdown { graceful: true });
    h.apply(Op::Advance { ms: 2_000 });
    h.finish();
    let r = h.model().reached();
    assert!(r.responses_sent >= 50, "{r:?}");
}

#[test]
fn only_a_list_echoing_the_query_id_of_the_register_is_taken() {
    let mut h = harness(0);
    h.apply(Op::Advance { ms: 200 });
    let list = |verified| Msg::PeerList { channel: Chan::Ours, verified, cookie: 7, peers: vec![8, 9], fresh: 0 };
    h.apply(Op::Send { from: 0, seq: Seq::Next, msg: list(true), patch: None });
    assert_eq!(h.model().reached().unsolicited, 1);
    // Unverified: the core registers again at once with the cookie, which the next list echoes.
    h.apply(Op::Send { from: 0, seq: Seq::Echo, msg: list(false), patch: None });
    h.apply(Op::Send { from: 0, seq: Seq::Echo, msg: list(true), patch: None });
    h.apply(Op::Send { from: 0, seq: Seq::Echo, msg: list(true), patch: None });
    assert_eq!(h.model().reached().unsolicited, 2);
}

#[test]
fn floods_and_clock_jumps_keep_the_bounds() {
    for kind in 0..5 {
        let mut h = linked(kind);
        for flood in 0..5 {
            h.apply(Op::Flood { kind: flood, n: 2_000 });
            h.apply(Op::Advance { ms: 3_000 });
        }
        h.apply(Op::Jump { secs: 100_000 });
        h.apply(Op::Timeout);
        h.apply(Op::Shutdown { graceful: false });
        h.finish();
    }
}

#[test]
fn random_programs_keep_every_invariant() {
    // A fixed pseudo-random stream of inputs, as a fuzzer's first mutations would be.
    tolerate(PENDING);
    for data in crate::drive::inputs(0x5eed, 400) {
        super::run(&data);
    }
}
