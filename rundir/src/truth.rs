//! Ground-truth events: what a daemon really did, one JSON line each in `truth/*.jsonl`
//! (schema in docs/GROUND_TRUTH.md). The cores raise them and stamp nothing; the shell adds
//! the wall-clock time and the daemon's address when it writes the [`Line`]. Readers (the
//! swarm's live progress, the played-stream check, the analyzer's validation) parse the same
//! types back.

use std::io::{self, Write};
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use strum::{EnumCount, IntoEnumIterator};

/// Which daemon a host runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Role {
    Tracker,
    Source,
    Peer,
}

impl Role {
    /// The role's name as in the JSON files (`tracker`, `source`, `peer`).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Why an input was dropped; counted per reason in summaries.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumIter,
    strum::EnumCount,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum DropReason {
    /// Not a soplab datagram (decode error).
    Undecodable,
    /// A valid datagram for another channel.
    WrongChannel,
    /// A datagram this role never receives (video at the tracker, ...).
    UnexpectedMessage,
    /// A link-level datagram from an address that is not an established neighbour.
    NotNeighbour,
    /// A HELLO reply whose echo is not the nonce we sent.
    BadNonce,
    /// Video for a request we did not make (or no longer wait for).
    Unrequested,
    /// A video packet we already had (duplicate or replay).
    Duplicate,
    /// A request for blocks we do not hold.
    MissingBlock,
    /// A request refused because the child's queue or the child limit is full.
    Overloaded,
    /// The sender exceeded its rate limit.
    RateLimited,
    /// A table (tracker channel, entries, candidates) is at its bound, or the sender's
    /// address holds its share of it (the tracker's entries and channels per address).
    TableFull,
    /// A video request from a neighbour's address without the link's token: spoofed (or from
    /// a neighbour that lost the link), never served.
    BadToken,
    /// Tracker: a leave whose sequence number is not the sender's cookie, so it does not
    /// prove it comes from the address it names.
    BadCookie,
    /// A tracker peer list that answers no request of ours: its sequence number is not the
    /// query id of our outstanding register.
    Unsolicited,
}

impl DropReason {
    /// The reason's name as in the JSON logs and summaries (`not_neighbour`, ...): the same
    /// snake_case name serde writes.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Why a neighbour link ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DownReason {
    /// Nothing heard for longer than the neighbour timeout.
    Timeout,
    /// The HELLO was not answered in time.
    HandshakeTimeout,
    /// The other side refused the link (full or wrong channel).
    Refused,
    /// This node is shutting down.
    Shutdown,
    /// Dropped, alive, to make room for another peer (the peer list was full).
    Replaced,
    /// The neighbour opened the link anew (it had dropped or lost it) and completed the new
    /// handshake: the old link ends and the new one comes up at once.
    Reopened,
}

/// One ground-truth event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The node started (a peer session begins).
    SessionStart {
        role: Role,
    },
    /// The node stopped; `graceful` is false when it just went silent.
    SessionEnd {
        graceful: bool,
    },
    /// A link completed its handshake.
    NeighborUp {
        peer: SocketAddr,
        initiator: bool,
    },
    NeighborDown {
        peer: SocketAddr,
        reason: DownReason,
    },
    /// The keep-alive to `peer` just sent is followed by the next one only `gap_us` later,
    /// longer than the usual period: the link is quiet, though up, until then. (Keep-alives
    /// are not logged one by one; only these late ones are, so that a validator knows when a
    /// link may show no keep-alive.)
    KeepaliveLate {
        peer: SocketAddr,
        gap_us: u64,
    },
    /// A request sent to a parent.
    RequestSent {
        parent: SocketAddr,
        request: u32,
        first_block: u32,
        count: u8,
    },
    /// A request received and answered (all its packets queued or sent).
    ResponseSent {
        child: SocketAddr,
        request: u32,
        first_block: u32,
        count: u8,
        bytes: u64,
        packets: u32,
    },
    /// A response fully received.
    ResponseReceived {
        parent: SocketAddr,
        request: u32,
        first_block: u32,
        count: u8,
        bytes: u64,
    },
    /// A response given up on; `complete` lists the blocks that still arrived whole.
    RequestTimeout {
        parent: SocketAddr,
        request: u32,
        first_block: u32,
        count: u8,
        complete: Vec<u32>,
    },
    /// A child took (or lost) this node as a parent: first request after a pause, or silence.
    ChildUp {
        child: SocketAddr,
    },
    ChildDown {
        child: SocketAddr,
    },
    /// Playback began at `block` after the start-up buffer filled.
    PlaybackStart {
        block: u32,
    },
    /// A block was played at its deadline (`hit`) or was missing then.
    Play {
        block: u32,
        hit: bool,
    },
    /// Blocks `first .. first + blocks` were due while this node was stalled (its clock
    /// jumped: a stopped process, a suspended host) longer than its lag: all missed, logged as
    /// one line instead of a `play` each. The blocks after them are played as usual.
    Stalled {
        first: u32,
        blocks: u32,
    },
    /// An input was dropped.
    Dropped {
        from: SocketAddr,
        reason: DropReason,
    },
    /// `count` more inputs dropped for `reason` in the interval of `interval_us` from
    /// `interval_start_us` (same clock as `ts_us`), beyond the first [`DROPPED_LINES_PER_INTERVAL`]
    /// logged one by one: a flood costs a line per reason and interval (see [`LineWriter`]).
    DroppedSummary {
        reason: DropReason,
        count: u64,
        interval_start_us: u64,
        interval_us: u64,
    },
    /// Tracker: a registration (new or refreshed entry).
    TrackerRegister {
        peer: SocketAddr,
        channel: u32,
        new: bool,
    },
    /// Tracker: a peer list sent.
    TrackerReply {
        peer: SocketAddr,
        channel: u32,
        peers: u32,
    },
    /// Tracker: an entry removed by TTL expiry or an explicit leave.
    TrackerExpire {
        peer: SocketAddr,
        channel: u32,
        leave: bool,
    },
}

/// One line of a ground-truth file: when, which node, what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// CLOCK_REALTIME microseconds.
    pub ts_us: i64,
    /// The address of the node that wrote it.
    pub node: SocketAddr,
    #[serde(flatten)]
    pub event: Event,
}

impl Line {
    /// Parses one line of a truth file.
    ///
    /// # Errors
    /// When the line is not a ground-truth event as documented in docs/GROUND_TRUTH.md.
    pub fn parse(line: &str) -> serde_json::Result<Line> {
        serde_json::from_str(line)
    }
}

impl Event {
    /// The inputs this event says were dropped, and why: one for `dropped`, `count` for
    /// `dropped_summary`, none for any other event. Summing it over a file gives the exact
    /// count of dropped inputs, folded or not.
    pub fn dropped_inputs(&self) -> Option<(DropReason, u64)> {
        match *self {
            Event::Dropped { reason, .. } => Some((reason, 1)),
            Event::DroppedSummary { reason, count, .. } => Some((reason, count)),
            _ => None,
        }
    }

    /// The event as one JSON object with the time (CLOCK_REALTIME microseconds) and the
    /// writing node's address first.
    pub fn to_json_line(&self, ts_us: u64, node: SocketAddr) -> String {
        let body = serde_json::to_string(self).expect("events serialise");
        // `body` is a JSON object ("{...}"): splice the two leading fields into it.
        format!("{{\"ts_us\":{ts_us},\"node\":\"{node}\",{}", &body[1..])
    }
}

/// How many `dropped` lines per reason an interval of [`DROPPED_INTERVAL_US`] gets one by one;
/// further drops for that reason are counted into one `dropped_summary` line.
pub const DROPPED_LINES_PER_INTERVAL: u32 = 10;

/// The interval over which `dropped` lines are capped, in µs of the `ts_us` clock (intervals
/// start at multiples of it).
pub const DROPPED_INTERVAL_US: u64 = 1_000_000;

/// Writes one node's events as truth lines, capping `dropped` lines so that a file grows with
/// what the node did rather than with the rate at which anyone can send it garbage: per reason
/// and interval the first [`DROPPED_LINES_PER_INTERVAL`] are written as they come, the rest are
/// counted and written as one `dropped_summary` line once the interval is over (at the first
/// event or [`LineWriter::tick`] after it, or at [`LineWriter::close`]). At most
/// `11 x (DROPPED_LINES_PER_INTERVAL + 1)` lines of drops per interval, whatever the flood.
/// The daemons' shell and the virtual-time swarm both write through it.
#[derive(Debug, Clone)]
pub struct LineWriter {
    node: SocketAddr,
    interval_start: u64,
    /// Per reason, in [`DropReason`] order: lines written and inputs folded this interval.
    counts: [(u32, u64); DropReason::COUNT],
    /// The latest time written, for the summaries [`LineWriter::close`] writes.
    last_ts: u64,
}

impl LineWriter {
    /// A writer for the events of `node` (the `node` field of every line).
    pub fn new(node: SocketAddr) -> LineWriter {
        LineWriter { node, interval_start: 0, counts: [(0, 0); DropReason::COUNT], last_ts: 0 }
    }

    /// Writes `event`, which happened at `ts_us`, to `out` (or counts it, for a `dropped`
    /// beyond the interval's cap).
    ///
    /// # Errors
    /// When `out` cannot be written.
    pub fn write<W: Write + ?Sized>(&mut self, out: &mut W, event: &Event, ts_us: u64) -> io::Result<()> {
        self.tick(out, ts_us)?;
        if let Event::Dropped { reason, .. } = *event {
            let (lines, folded) = &mut self.counts[reason as usize];
            if *lines >= DROPPED_LINES_PER_INTERVAL {
                *folded += 1;
                return Ok(());
            }
            *lines += 1;
        }
        write_line(out, event, ts_us, self.node)
    }

    /// Writes the summaries of an interval that is over at `now_us`, so that they do not wait
    /// for the node's next event.
    ///
    /// # Errors
    /// When `out` cannot be written.
    pub fn tick<W: Write + ?Sized>(&mut self, out: &mut W, now_us: u64) -> io::Result<()> {
        let start = now_us - now_us % DROPPED_INTERVAL_US;
        if start != self.interval_start {
            self.summarise(out, now_us)?;
            self.interval_start = start;
        }
        self.last_ts = self.last_ts.max(now_us);
        Ok(())
    }

    /// Writes the summaries of the current interval (at the latest time written): the node
    /// stops, or its file is closed.
    ///
    /// # Errors
    /// When `out` cannot be written.
    pub fn close<W: Write + ?Sized>(&mut self, out: &mut W) -> io::Result<()> {
        self.summarise(out, self.last_ts)
    }

    /// Writes one `dropped_summary` per reason with folded drops, and starts counting anew.
    fn summarise<W: Write + ?Sized>(&mut self, out: &mut W, ts_us: u64) -> io::Result<()> {
        for (reason, (lines, folded)) in DropReason::iter().zip(self.counts.iter_mut()) {
            let count = std::mem::take(folded);
            *lines = 0;
            if count > 0 {
                let interval = (self.interval_start, DROPPED_INTERVAL_US);
                let event =
                    Event::DroppedSummary { reason, count, interval_start_us: interval.0, interval_us: interval.1 };
                write_line(out, &event, ts_us, self.node)?;
            }
        }
        Ok(())
    }
}

/// One line: `event` of `node` at `ts_us`, and a newline.
fn write_line<W: Write + ?Sized>(out: &mut W, event: &Event, ts_us: u64, node: SocketAddr) -> io::Result<()> {
    let line = event.to_json_line(ts_us, node);
    out.write_all(line.as_bytes())?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_reason_names_match_the_json() {
        use strum::IntoEnumIterator;
        assert_eq!(DropReason::iter().count(), 14);
        for r in DropReason::iter() {
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str(), "{r:?}");
        }
    }

    #[test]
    fn lines_parse_back_to_what_was_written() {
        let node: SocketAddr = "198.18.1.7:3908".parse().unwrap();
        let peer: SocketAddr = "198.18.1.9:3908".parse().unwrap();
        for event in [
            Event::SessionStart { role: Role::Source },
            Event::SessionEnd { graceful: false },
            Event::NeighborDown { peer, reason: DownReason::HandshakeTimeout },
            Event::NeighborDown { peer, reason: DownReason::Reopened },
            Event::Dropped { from: peer, reason: DropReason::BadToken },
            Event::KeepaliveLate { peer, gap_us: 3_200_000 },
            Event::RequestTimeout { parent: peer, request: 3, first_block: 9, count: 4, complete: vec![9, 11] },
            Event::Dropped { from: peer, reason: DropReason::NotNeighbour },
            Event::DroppedSummary {
                reason: DropReason::Undecodable,
                count: 99_990,
                interval_start_us: 1_700_000_000_000_000,
                interval_us: DROPPED_INTERVAL_US,
            },
            Event::TrackerExpire { peer, channel: 1, leave: true },
        ] {
            let text = event.to_json_line(1_700_000_000_123_456, node);
            assert_eq!(Line::parse(&text).unwrap(), Line { ts_us: 1_700_000_000_123_456, node, event }, "{text}");
        }
        assert!(Line::parse(r#"{"ts_us":1,"node":"x","event":"play","block":1,"hit":true}"#).is_err());
        assert!(Line::parse(r#"{"ts_us":1,"node":"127.0.0.1:1","event":"warp"}"#).is_err());
    }

    #[test]
    fn json_line_puts_time_and_node_first() {
        let node: SocketAddr = "127.0.0.1:3908".parse().unwrap();
        let line = Event::Play { block: 7, hit: true }.to_json_line(42, node);
        assert_eq!(line, r#"{"ts_us":42,"node":"127.0.0.1:3908","event":"play","block":7,"hit":true}"#);
    }

    /// Writes `n` drops of `reason` from `start` µs, `step` µs apart, and a play every 1,000.
    fn flood(w: &mut LineWriter, out: &mut Vec<u8>, reasons: &[DropReason], n: u64, start: u64, step: u64) {
        let from: SocketAddr = "127.0.0.9:5000".parse().unwrap();
        for i in 0..n {
            let ts = start + i * step;
            let reason = reasons[i as usize % reasons.len()];
            w.write(out, &Event::Dropped { from, reason }, ts).unwrap();
            if i % 1000 == 0 {
                w.write(out, &Event::Play { block: i as u32, hit: true }, ts).unwrap();
            }
        }
    }

    #[test]
    fn a_flood_of_drops_costs_lines_per_reason_and_interval_and_keeps_every_count() {
        let node: SocketAddr = "127.0.0.1:3908".parse().unwrap();
        let (mut w, mut out) = (LineWriter::new(node), Vec::new());
        let reasons = [DropReason::Undecodable, DropReason::NotNeighbour, DropReason::RateLimited];
        // 300,000 drops over 3 s (10 µs apart) from 1.5 s into an interval: 4 intervals.
        let start = 1_700_000_000_500_000;
        flood(&mut w, &mut out, &reasons, 300_000, start, 10);
        w.close(&mut out).unwrap();

        let text = String::from_utf8(out).unwrap();
        let lines: Vec<Line> = text.lines().map(|l| Line::parse(l).unwrap()).collect();
        let mut per_reason = std::collections::BTreeMap::new();
        for l in &lines {
            if let Some((r, n)) = l.event.dropped_inputs() {
                *per_reason.entry(r).or_insert(0) += n;
            }
        }
        assert_eq!(per_reason, reasons.iter().map(|&r| (r, 100_000)).collect());
        let (plays, drops) = (300, lines.len() - 300);
        assert_eq!(lines.iter().filter(|l| matches!(l.event, Event::Play { .. })).count(), plays);
        let cap = 4 * reasons.len() * (DROPPED_LINES_PER_INTERVAL as usize + 1);
        assert_eq!(drops, cap, "{drops} lines of drops for 4 intervals of 3 reasons");
        assert!(lines.windows(2).all(|p| p[0].ts_us <= p[1].ts_us), "lines stay in time order");
        for l in &lines {
            if let Event::DroppedSummary { interval_start_us, interval_us, .. } = l.event {
                assert_eq!(interval_us, DROPPED_INTERVAL_US);
                assert_eq!(interval_start_us % DROPPED_INTERVAL_US, 0);
                assert!(l.ts_us as u64 >= interval_start_us);
            }
        }
    }

    #[test]
    fn a_few_drops_are_written_as_they_come_and_a_tick_ends_an_interval() {
        let node: SocketAddr = "127.0.0.1:3908".parse().unwrap();
        let (mut w, mut out) = (LineWriter::new(node), Vec::new());
        let reasons = [DropReason::Duplicate];
        let n = u64::from(DROPPED_LINES_PER_INTERVAL);
        flood(&mut w, &mut out, &reasons, n, 5_000_000, 1);
        assert_eq!(String::from_utf8_lossy(&out).lines().count() as u64, n + 1, "each drop and the play");
        flood(&mut w, &mut out, &reasons, 5, 5_000_100, 1);
        let before = out.len();
        w.tick(&mut out, 5_999_999).unwrap();
        assert_eq!(out.len(), before, "the interval is not over yet");
        w.tick(&mut out, 6_000_000).unwrap();
        let text = String::from_utf8(out).unwrap();
        let last = Line::parse(text.lines().last().unwrap()).unwrap();
        let want = Event::DroppedSummary {
            reason: DropReason::Duplicate,
            count: 5,
            interval_start_us: 5_000_000,
            interval_us: DROPPED_INTERVAL_US,
        };
        assert_eq!((last.ts_us, last.event), (6_000_000, want));
        let mut again = Vec::new();
        w.close(&mut again).unwrap();
        assert!(again.is_empty(), "nothing counted twice");
    }
}
