//! Ground-truth events: what a daemon really did, one JSON line each in `truth/*.jsonl`
//! (schema in docs/GROUND_TRUTH.md). The cores raise them and stamp nothing; the shell adds
//! the wall-clock time and the daemon's address when it writes the [`Line`]. Readers (the
//! swarm's live progress, the played-stream check, the analyzer's validation) parse the same
//! types back.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

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
    /// An input was dropped.
    Dropped {
        from: SocketAddr,
        reason: DropReason,
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
    /// The event as one JSON object with the time (CLOCK_REALTIME microseconds) and the
    /// writing node's address first.
    pub fn to_json_line(&self, ts_us: u64, node: SocketAddr) -> String {
        let body = serde_json::to_string(self).expect("events serialise");
        // `body` is a JSON object ("{...}"): splice the two leading fields into it.
        format!("{{\"ts_us\":{ts_us},\"node\":\"{node}\",{}", &body[1..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_reason_names_match_the_json() {
        use strum::IntoEnumIterator;
        assert_eq!(DropReason::iter().count(), 13);
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
            Event::KeepaliveLate { peer, gap_us: 3_200_000 },
            Event::RequestTimeout { parent: peer, request: 3, first_block: 9, count: 4, complete: vec![9, 11] },
            Event::Dropped { from: peer, reason: DropReason::NotNeighbour },
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
}
