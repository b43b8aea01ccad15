//! A peer whose clock jumps (its process stopped for an hour, a suspended host) must not play
//! every block of the gap in one wake-up: found by the `peer` fuzz target (`burst`,
//! fuzz/README.md), where a jump of an hour raised 22,000 `play` events at once and one of
//! 11.6 days held 600 MB of them. It counts the stale blocks missed in one `stalled` event and
//! plays the last `lag` of them as usual.

use std::net::SocketAddr;

use soplab_node::{Event, Micros, Node, SECOND};
use soplab_peer::{Peer, PeerConfig};
use soplab_testkit::v4;
use soplab_wire::{BufferMap, Hello, LinkAck, LinkStatus, Message, Repr, Role};

fn dgram(seq: u32, m: Message<'_>) -> Vec<u8> {
    Repr::new(seq, m).to_vec()
}

fn drain(p: &mut Peer, t: Micros) -> Vec<Event> {
    while p.poll_transmit(t).is_some() {}
    std::iter::from_fn(|| p.poll_event()).collect()
}

/// A peer linked to one neighbour that announces blocks up to `newest`, its timers run every
/// 100 ms up to `until`: playback has started (every block missed: nobody answers requests).
fn playing(cfg: PeerConfig, newest: u32, until: Micros) -> (Peer, Vec<Event>) {
    let n: SocketAddr = v4(10, 0, 0, 2, 4000);
    let mut p = Peer::new(cfg, None);
    p.handle_timeout(0);
    let mut events = drain(&mut p, 0);
    let hello = Hello { role: Role::Peer, nonce: 11, channel: 1, listen_port: n.port(), newest: None };
    p.handle_datagram(0, n, &dgram(0, Message::Hello(hello)));
    let reply = std::iter::from_fn(|| p.poll_transmit(0)).find(|t| t.dst == n).expect("a reply");
    let Ok(Repr { message: Message::HelloReply(r), .. }) = Repr::parse(&reply.payload) else { panic!("a reply") };
    let ack = LinkAck { status: LinkStatus::Accepted, echo: r.ack.nonce, nonce: hello.nonce, channel: 1 };
    p.handle_datagram(0, n, &dgram(1, Message::Ack(ack)));
    p.handle_datagram(0, n, &dgram(2, Message::KeepAlive(BufferMap::from_fn(newest, |_| true))));
    for t in (100_000..=until).step_by(100_000) {
        p.handle_timeout(t);
        events.extend(drain(&mut p, t));
    }
    (p, events)
}

fn config(lag: Micros) -> PeerConfig {
    PeerConfig { bitrate_bps: 500_000, lag, ..PeerConfig::peer(v4(10, 0, 0, 1, 4000), v4(10, 0, 0, 254, 3900), 1, 7) }
}

/// Blocks due by `now` (block `start` is due when playback starts, at `t0`).
fn due_by(cfg: &PeerConfig, t0: Micros, now: Micros) -> u64 {
    (now - t0) / cfg.block_interval() + 1
}

#[test]
fn an_hour_long_jump_counts_the_stale_blocks_in_one_event() {
    let cfg = config(10 * SECOND);
    let (mut p, before) = playing(cfg.clone(), 100_000, 30 * SECOND);
    let start = before.iter().find_map(|e| match e {
        Event::PlaybackStart { block } => Some(*block),
        _ => None,
    });
    let start = start.expect("playback started");
    let plays_before = before.iter().filter(|e| matches!(e, Event::Play { .. })).count() as u64;
    assert!(plays_before > 10, "{plays_before} plays before the jump");
    let due_before = p.stats().blocks_due;
    assert_eq!(due_before, plays_before);

    let now = 30 * SECOND + 3600 * SECOND;
    p.handle_timeout(now);
    let events = drain(&mut p, now);
    let stalled: Vec<(u32, u32)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Stalled { first, blocks } => Some((*first, *blocks)),
            _ => None,
        })
        .collect();
    let plays: Vec<u32> = events
        .iter()
        .filter_map(|e| match e {
            Event::Play { block, .. } => Some(*block),
            _ => None,
        })
        .collect();
    // One event for the stale blocks, then a `play` for each block of the last `lag`.
    let keep = cfg.blocks_in(cfg.lag);
    assert_eq!(stalled.len(), 1, "{stalled:?}");
    let (first, blocks) = stalled[0];
    assert_eq!(first, start + plays_before as u32, "the stall starts at the next block due");
    assert_eq!(plays.len() as u32, keep, "the last lag of blocks is played one by one");
    assert_eq!(plays[0], first + blocks, "played blocks follow the stalled ones");
    assert!(plays.windows(2).all(|w| w[1] == w[0] + 1));
    assert!(events.len() < 2 * keep as usize + 100, "{} events in one wake-up", events.len());

    // Every block due by now is counted, missed or played: continuity stays honest.
    let t0_due = p.stats().blocks_due;
    assert_eq!(t0_due, plays_before + u64::from(blocks) + plays.len() as u64);
    let t0 = (30 * SECOND / 100_000) * 100_000; // bounds only: t0 is within the first 30 s
    assert!(t0_due <= due_by(&cfg, 0, now) && t0_due + 300 >= due_by(&cfg, t0, now), "{t0_due} due");

    // Afterwards playback goes on block by block.
    let later = now + 10 * SECOND;
    let mut after = Vec::new();
    for t in (now + 100_000..=later).step_by(100_000) {
        p.handle_timeout(t);
        after.extend(drain(&mut p, t));
    }
    assert!(!after.iter().any(|e| matches!(e, Event::Stalled { .. })));
    let n = after.iter().filter(|e| matches!(e, Event::Play { .. })).count() as u64;
    assert!((due_by(&cfg, 0, 10 * SECOND) - 2..=due_by(&cfg, 0, 10 * SECOND) + 1).contains(&n), "{n} plays in 10 s");
}

#[test]
fn a_short_jump_within_the_lag_plays_every_block() {
    let cfg = config(10 * SECOND);
    let (mut p, _) = playing(cfg.clone(), 100_000, 30 * SECOND);
    let due = p.stats().blocks_due;
    let now = 30 * SECOND + 5 * SECOND;
    p.handle_timeout(now);
    let events = drain(&mut p, now);
    assert!(!events.iter().any(|e| matches!(e, Event::Stalled { .. })), "{events:?}");
    let plays = events.iter().filter(|e| matches!(e, Event::Play { .. })).count() as u64;
    assert_eq!(p.stats().blocks_due, due + plays);
    assert!(plays >= due_by(&cfg, 0, 5 * SECOND) - 1, "{plays} plays for 5 s");
}

#[test]
fn a_jump_of_days_with_a_long_lag_stays_bounded() {
    // A lag of an hour: more blocks than one wake-up plays one by one (1024).
    let cfg = config(3600 * SECOND);
    let (mut p, _) = playing(cfg, 1_000_000, 30 * SECOND);
    let now = 30 * SECOND + 12 * 86_400 * SECOND;
    p.handle_timeout(now);
    let events = drain(&mut p, now);
    assert!(events.len() < 1200, "{} events in one wake-up", events.len());
    assert_eq!(events.iter().filter(|e| matches!(e, Event::Stalled { .. })).count(), 1);
}
