//! The core's named timers: a fixed set of deadlines in virtual time, so that what fires when
//! reads off one table instead of loose `next_*` fields.

use soplab_node::Micros;

/// A timer of the core.
///
/// Only [`Timer::Tick`] wakes the core (besides a capped upload's next packet, which is
/// computed from the token bucket, not stored). Other duties with a deadline — the tracker,
/// each neighbour's keep-alive, link and request expiry, playback — are checked on every tick,
/// so each fires on the first tick at or after its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timer {
    /// Every `tick`: expiry, keep-alives, new links, requests and playback.
    Tick,
    /// Every `tracker_interval`, checked on the tick: register again (and get fresh peers).
    Tracker,
}

impl Timer {
    const COUNT: usize = 2;

    fn index(self) -> usize {
        match self {
            Timer::Tick => 0,
            Timer::Tracker => 1,
        }
    }
}

/// When each [`Timer`] is next due. All start at 0: due at once.
#[derive(Debug, Default)]
pub(super) struct Timers {
    at: [Micros; Timer::COUNT],
}

impl Timers {
    /// When `timer` is next due.
    pub(super) fn at(&self, timer: Timer) -> Micros {
        self.at[timer.index()]
    }

    pub(super) fn set(&mut self, timer: Timer, at: Micros) {
        self.at[timer.index()] = at;
    }

    /// Whether `timer` is due at `now`.
    pub(super) fn due(&self, timer: Timer, now: Micros) -> bool {
        now >= self.at(timer)
    }
}
