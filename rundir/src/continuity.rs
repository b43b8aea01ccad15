//! Continuity over time, from the ground truth: each `play` line says that a block was due at
//! its time and whether it was in hand ([`crate::truth::Event::Play`]). A run's summary gives
//! one continuity per peer; a fault's effect needs it over windows of a few seconds: how low it
//! fell while something was down, and how soon it was back. A `stalled` line counts its
//! blocks missed at its time (a peer that slept through them).
//!
//! A window with no block due counts as continuity 0: a peer that should be playing and plays
//! nothing has not recovered.

use std::net::SocketAddr;

use crate::truth::{Event, Line};

/// One peer's plays, in time order: (CLOCK_REALTIME µs, blocks due, of which played on time).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plays {
    plays: Vec<(i64, u64, u64)>,
}

/// Blocks due and played on time in `[start_us, start_us + width)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start_us: i64,
    pub due: u64,
    pub hits: u64,
}

impl Window {
    /// Hits over blocks due; 0 when nothing was due.
    pub fn continuity(&self) -> f64 {
        if self.due == 0 { 0.0 } else { self.hits as f64 / self.due as f64 }
    }
}

/// How windows slide over an interval: each `width_us` long, one starting every `step_us`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slide {
    pub width_us: i64,
    pub step_us: i64,
}

impl Plays {
    /// The plays of `node` among `lines` (any order; other nodes' lines and other events are
    /// skipped).
    pub fn of<'a>(node: SocketAddr, lines: impl IntoIterator<Item = &'a Line>) -> Plays {
        let mut plays: Vec<(i64, u64, u64)> = lines
            .into_iter()
            .filter(|l| l.node == node)
            .filter_map(|l| match l.event {
                Event::Play { hit, .. } => Some((l.ts_us, 1, u64::from(hit))),
                Event::Stalled { blocks, .. } => Some((l.ts_us, u64::from(blocks), 0)),
                _ => None,
            })
            .collect();
        plays.sort_by_key(|p| p.0);
        Plays { plays }
    }

    /// Blocks due over the whole record.
    pub fn due(&self) -> u64 {
        self.plays.iter().map(|p| p.1).sum()
    }

    /// Blocks played on time over the whole record.
    pub fn hits(&self) -> u64 {
        self.plays.iter().map(|p| p.2).sum()
    }

    /// The time of the last block due, if any.
    pub fn last_us(&self) -> Option<i64> {
        self.plays.last().map(|p| p.0)
    }

    /// Blocks due and played in `[from_us, to_us)`.
    pub fn within(&self, from_us: i64, to_us: i64) -> Window {
        let lo = self.plays.partition_point(|p| p.0 < from_us);
        let hi = self.plays.partition_point(|p| p.0 < to_us).max(lo);
        let (due, hits) = self.plays[lo..hi].iter().fold((0, 0), |(d, h), p| (d + p.1, h + p.2));
        Window { start_us: from_us, due, hits }
    }

    /// The windows `slide` places in `[from_us, to_us)`: starting at `from_us`, then every
    /// step, as long as a whole window fits (none if the interval is shorter than one).
    pub fn windows(&self, from_us: i64, to_us: i64, slide: Slide) -> Vec<Window> {
        let step = slide.step_us.max(1);
        let mut v = Vec::new();
        let mut s = from_us;
        while s.saturating_add(slide.width_us) <= to_us {
            v.push(self.within(s, s + slide.width_us));
            s = s.saturating_add(step);
        }
        v
    }

    /// The window of least continuity in `[from_us, to_us)` (the first, at equal continuity).
    pub fn worst(&self, from_us: i64, to_us: i64, slide: Slide) -> Option<Window> {
        self.windows(from_us, to_us, slide)
            .into_iter()
            .reduce(|w, x| if x.continuity() < w.continuity() { x } else { w })
    }

    /// How long after `since_us` continuity is back at `min` for good: the time from `since_us`
    /// to the start of the first window after which every window up to `until_us` has
    /// continuity `min` or more (0 when none falls below). When the last window is still below,
    /// it is the whole interval, `until_us - since_us`.
    pub fn recovery_us(&self, since_us: i64, until_us: i64, slide: Slide, min: f64) -> i64 {
        let windows = self.windows(since_us, until_us, slide);
        match windows.iter().rposition(|w| w.continuity() < min) {
            None => 0,
            Some(last_bad) => match windows.get(last_bad + 1) {
                Some(w) => w.start_us - since_us,
                None => until_us - since_us,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    /// Plays of one peer: a block every 200 ms from 0 to 20 s, missed in `[miss_from, miss_to)`.
    fn plays(miss_from: i64, miss_to: i64) -> (SocketAddr, Vec<Line>) {
        let node: SocketAddr = "198.18.1.1:3908".parse().unwrap();
        let other: SocketAddr = "198.18.1.2:3908".parse().unwrap();
        let mut lines: Vec<Line> = (0..100)
            .map(|k| {
                let ts_us = k * S / 5;
                Line {
                    ts_us,
                    node,
                    event: Event::Play { block: k as u32, hit: !(miss_from..miss_to).contains(&ts_us) },
                }
            })
            .collect();
        lines.push(Line { ts_us: 3 * S, node: other, event: Event::Play { block: 1, hit: false } });
        lines.push(Line { ts_us: 4 * S, node, event: Event::SessionStart { role: crate::truth::Role::Peer } });
        lines.reverse();
        (node, lines)
    }

    #[test]
    fn windows_count_the_plays_in_them() {
        let (node, lines) = plays(5 * S, 7 * S);
        let p = Plays::of(node, &lines);
        assert_eq!((p.due(), p.hits(), p.last_us()), (100, 90, Some(99 * S / 5)), "only its own plays");
        assert_eq!(p.within(4 * S, 6 * S), Window { start_us: 4 * S, due: 10, hits: 5 });
        assert_eq!(p.within(30 * S, 40 * S).continuity(), 0.0, "nothing due is no continuity");
        let slide = Slide { width_us: 2 * S, step_us: S };
        let w = p.windows(0, 10 * S, slide);
        assert_eq!(w.len(), 9);
        assert_eq!(w.iter().map(|w| w.hits).collect::<Vec<_>>(), [10, 10, 10, 10, 5, 0, 5, 10, 10]);
        assert_eq!(p.worst(0, 10 * S, slide).map(|w| (w.start_us, w.continuity())), Some((5 * S, 0.0)));
        assert!(p.windows(0, S, slide).is_empty(), "no whole window fits");
    }

    #[test]
    fn a_stall_counts_its_blocks_missed_at_its_time() {
        let (node, mut lines) = plays(0, 0);
        lines.push(Line { ts_us: 25 * S, node, event: Event::Stalled { first: 100, blocks: 300 } });
        lines.push(Line { ts_us: 25 * S, node, event: Event::Play { block: 400, hit: true } });
        let p = Plays::of(node, &lines);
        assert_eq!((p.due(), p.hits(), p.last_us()), (401, 101, Some(25 * S)));
        assert_eq!(p.within(20 * S, 30 * S), Window { start_us: 20 * S, due: 301, hits: 1 });
        assert_eq!(p.within(0, 20 * S), Window { start_us: 0, due: 100, hits: 100 });
    }

    #[test]
    fn recovery_is_when_every_later_window_is_good_again() {
        let slide = Slide { width_us: 2 * S, step_us: S / 2 };
        let (node, lines) = plays(5 * S, 7 * S);
        let p = Plays::of(node, &lines);
        // The windows starting at 6.5 s and before hold misses; from 7 s on all is played.
        assert_eq!(p.recovery_us(4 * S, 20 * S, slide, 0.95), 3 * S);
        assert_eq!(p.recovery_us(8 * S, 20 * S, slide, 0.95), 0, "nothing missed after 8 s");
        let (node, lines) = plays(0, 0);
        assert_eq!(Plays::of(node, &lines).recovery_us(0, 20 * S, slide, 1.0), 0);
        // Still missing at the end (or silent: no plays at all after 20 s) never recovers.
        let (node, lines) = plays(15 * S, 30 * S);
        assert_eq!(Plays::of(node, &lines).recovery_us(10 * S, 20 * S, slide, 0.95), 10 * S);
        assert_eq!(Plays::of(node, &lines).recovery_us(10 * S, 25 * S, slide, 0.95), 15 * S);
    }
}
