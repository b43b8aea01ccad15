//! A peer whose clock jumps (its process stopped for an hour, a suspended host) must not play
//! every block of the gap in one wake-up: found by the `peer` fuzz target (`burst`,
//! fuzz/README.md), where a jump of an hour raised 22,000 `play` events at once and one of
//! 11.6 days held 600 MB of them. It counts the stale blocks missed in one `stalled` event and
//! plays the last `lag` of them as usual.

mod common;

use common::*;
use soplab_node::{Event, Micros, Node, SECOND};
use soplab_peer::PeerConfig;

/// A peer at 500 kbit/s with `lag`, linked to one neighbour that announces a live stream from
/// `base` on but serves nothing, its timers run to `until`: playback has started, every block
/// missed.
fn playing(lag: Micros, base: u32, until: Micros) -> Harness {
    let mut h = Harness::new(|c| {
        c.bitrate_bps = 500_000;
        c.lag = lag;
    });
    h.link(remote(0), Map::Live { base, t0: 0 }, false);
    h.run_until(until);
    h
}

/// One wake-up at `now` (however far ahead): the events it raised.
fn wake(h: &mut Harness, now: Micros) -> Vec<Event> {
    let before = h.events.len();
    h.now = now;
    h.peer.handle_timeout(now);
    h.pump();
    h.events[before..].to_vec()
}

fn config(lag: Micros) -> PeerConfig {
    PeerConfig { bitrate_bps: 500_000, lag, ..PeerConfig::peer(me(), tracker(), CHANNEL, 42) }
}

/// Blocks due by `now` (block `start` is due when playback starts, at `t0`).
fn due_by(cfg: &PeerConfig, t0: Micros, now: Micros) -> u64 {
    (now - t0) / cfg.block_interval() + 1
}

#[test]
fn an_hour_long_jump_counts_the_stale_blocks_in_one_event() {
    let cfg = config(10 * SECOND);
    let mut h = playing(cfg.lag, 100_000, 30 * SECOND);
    let before = h.events.clone();
    let start = before.iter().find_map(|e| match e {
        Event::PlaybackStart { block } => Some(*block),
        _ => None,
    });
    let start = start.expect("playback started");
    let plays_before = before.iter().filter(|e| matches!(e, Event::Play { .. })).count() as u64;
    assert!(plays_before > 10, "{plays_before} plays before the jump");
    let due_before = h.peer.stats().blocks_due;
    assert_eq!(due_before, plays_before);

    let now = 30 * SECOND + 3600 * SECOND;
    let events = wake(&mut h, now);
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
    let t0_due = h.peer.stats().blocks_due;
    assert_eq!(t0_due, plays_before + u64::from(blocks) + plays.len() as u64);
    let t0 = (30 * SECOND / 100_000) * 100_000; // bounds only: t0 is within the first 30 s
    assert!(t0_due <= due_by(&cfg, 0, now) && t0_due + 300 >= due_by(&cfg, t0, now), "{t0_due} due");

    // Afterwards playback goes on block by block.
    let before_after = h.events.len();
    h.run_until(now + 10 * SECOND);
    let after = h.events[before_after..].to_vec();
    assert!(!after.iter().any(|e| matches!(e, Event::Stalled { .. })));
    let n = after.iter().filter(|e| matches!(e, Event::Play { .. })).count() as u64;
    assert!((due_by(&cfg, 0, 10 * SECOND) - 2..=due_by(&cfg, 0, 10 * SECOND) + 1).contains(&n), "{n} plays in 10 s");
}

#[test]
fn a_short_jump_within_the_lag_plays_every_block() {
    let cfg = config(10 * SECOND);
    let mut h = playing(cfg.lag, 100_000, 30 * SECOND);
    let due = h.peer.stats().blocks_due;
    let now = 30 * SECOND + 5 * SECOND;
    let events = wake(&mut h, now);
    assert!(!events.iter().any(|e| matches!(e, Event::Stalled { .. })), "{events:?}");
    let plays = events.iter().filter(|e| matches!(e, Event::Play { .. })).count() as u64;
    assert_eq!(h.peer.stats().blocks_due, due + plays);
    assert!(plays >= due_by(&cfg, 0, 5 * SECOND) - 1, "{plays} plays for 5 s");
}

#[test]
fn a_jump_of_days_with_a_long_lag_stays_bounded() {
    // A lag of an hour: more blocks than one wake-up plays one by one (1024).
    let mut h = playing(3600 * SECOND, 1_000_000, 30 * SECOND);
    let now = 30 * SECOND + 12 * 86_400 * SECOND;
    let events = wake(&mut h, now);
    assert!(events.len() < 1200, "{} events in one wake-up", events.len());
    assert_eq!(events.iter().filter(|e| matches!(e, Event::Stalled { .. })).count(), 1);
}
