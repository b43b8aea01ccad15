//! Playback: where in the stream to start, the start-up buffer, one deadline per block after
//! that (a block not in hand by its deadline is missed, which is what continuity counts), and
//! the media handed to the player.

use std::collections::VecDeque;

use soplab_node::{Event, Media, Micros};

use super::Peer;

/// Played blocks kept for a player that does not drain them: the last minute or so.
const MAX_PLAYED: usize = 512;

/// The most overdue blocks one wake-up plays one by one. A peer whose clock jumped (a process
/// stopped and continued, a suspended host) finds every block of the gap due at once; it
/// plays the last `lag` of them (at most this many) and counts the older ones missed in one
/// [`Event::Stalled`], so that the events of a wake-up stay bounded however long it slept.
const MAX_CATCH_UP: u32 = 1024;

pub(super) struct Playback {
    /// The first block to play, once chosen from what the neighbours announce.
    start_block: Option<u32>,
    start_chosen_at: Micros,
    /// When playback started; block `start + k` is due at `play_t0 + k` block intervals.
    play_t0: Option<Micros>,
    /// The next block due (and where requests start from).
    next_play: u32,
    played: VecDeque<Media>,
}

impl Playback {
    pub(super) fn new() -> Playback {
        Playback { start_block: None, start_chosen_at: 0, play_t0: None, next_play: 0, played: VecDeque::new() }
    }

    /// The next played block for the player.
    pub(super) fn next_media(&mut self) -> Option<Media> {
        self.played.pop_front()
    }
}

impl Peer {
    /// The block requests start from: the next block due, once a start has been chosen.
    ///
    /// The start is `lag` behind the median of what the neighbours announce (the median, so
    /// that one neighbour cannot place the start where nobody else has blocks); with no
    /// announcement yet there is none.
    pub(super) fn play_point(&mut self, now: Micros) -> Option<u32> {
        if self.playback.start_block.is_none() {
            let mut announced: Vec<u32> = self.links.up().filter_map(|(_, n)| n.map().newest()).collect();
            if announced.is_empty() {
                return None;
            }
            announced.sort_unstable();
            let newest = announced[(announced.len() - 1) / 2];
            let start = newest.saturating_sub(self.cfg.blocks_in(self.cfg.lag));
            let p = &mut self.playback;
            p.start_block = Some(start);
            p.start_chosen_at = now;
            p.next_play = start;
        }
        Some(self.playback.next_play)
    }

    /// Starts playback when the start-up buffer is ready (or waited for long enough), then
    /// plays every block whose deadline has come.
    pub(super) fn playback(&mut self, now: Micros) {
        let Some(start) = self.playback.start_block else { return };
        if self.playback.play_t0.is_none() {
            if !self.startup_done(start, now) {
                return;
            }
            self.playback.play_t0 = Some(now);
            self.playback.next_play = start;
            self.out.event(Event::PlaybackStart { block: start });
        }
        let t0 = self.playback.play_t0.expect("set above");
        let interval = self.cfg.block_interval();
        self.skip_stale(start, t0, now);
        while t0.saturating_add(u64::from(self.playback.next_play - start).saturating_mul(interval)) <= now {
            let b = self.playback.next_play;
            let Some(next) = b.checked_add(1) else { break };
            self.playback.next_play = next;
            self.play(b);
        }
    }

    /// After a stall, counts missed at once every overdue block beyond the last `lag` (at most
    /// [`MAX_CATCH_UP`]): those are older than the player could catch up on, and playing
    /// them one by one would raise an event per block of the stall.
    fn skip_stale(&mut self, start: u32, t0: Micros, now: Micros) {
        let interval = self.cfg.block_interval().max(1);
        // Blocks `start ..= last_due` are due by now (the `+ 1`: block `start` is due at t0).
        let due = now.saturating_sub(t0) / interval;
        let last_due = u64::from(start).saturating_add(due).min(u64::from(u32::MAX - 1));
        let overdue = (last_due + 1).saturating_sub(u64::from(self.playback.next_play));
        let keep = u64::from(self.cfg.blocks_in(self.cfg.lag).clamp(1, MAX_CATCH_UP));
        if overdue <= keep {
            return;
        }
        let first = self.playback.next_play;
        let blocks = u32::try_from(overdue - keep).unwrap_or(u32::MAX);
        self.playback.next_play = first.saturating_add(blocks);
        self.out.stats.blocks_due += u64::from(blocks);
        self.out.event(Event::Stalled { first, blocks });
    }

    /// Whether playback may start: `startup_blocks` from the start are in hand and the stream
    /// is `lag` ahead of the start, or `startup_max` has passed since the start was chosen.
    fn startup_done(&self, start: u32, now: Micros) -> bool {
        // Waiting for the stream to be `lag` ahead matters to a peer that joins a stream
        // younger than `lag`: it starts at block 0 and would otherwise play closer to the live
        // edge than configured.
        let edge = self.links.announced_edge();
        // Saturating: a neighbour may announce ids up to u32::MAX - 1, and with fewer blocks
        // of lag than of start-up buffer the start is that close to the top.
        let ready = (start..start.saturating_add(self.cfg.startup_blocks)).all(|b| self.blocks.store().has(b))
            && edge.is_some_and(|e| e >= start.saturating_add(self.cfg.blocks_in(self.cfg.lag)));
        ready || now.saturating_sub(self.playback.start_chosen_at) >= self.cfg.startup_max
    }

    /// Block `b` is due: played if in hand, missed otherwise.
    fn play(&mut self, b: u32) {
        let stats = &mut self.out.stats;
        stats.blocks_due += 1;
        let hit = match self.blocks.store().get(b) {
            Some(data) => {
                let data = data.clone();
                stats.blocks_played += 1;
                stats.played_bytes += data.len() as u64;
                stats.first_played_block.get_or_insert(b);
                let played = &mut self.playback.played;
                played.push_back(Media { block: b, data });
                if played.len() > MAX_PLAYED {
                    played.pop_front();
                }
                true
            }
            None => false,
        };
        self.out.event(Event::Play { block: b, hit });
    }
}
