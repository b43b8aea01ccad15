//! Classification by UDP payload size, the method of Tang et al. (Table 1): the size alone says
//! what a datagram is, so traces of other implementations classify the same way. soplab's
//! header (class field, bytes 0-1) is read as a cross-check where the payload was captured.

use serde::Serialize;
use soplab_wire::{VERSION, class, size};

/// What a datagram is, by its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Kind {
    /// 52: HELLO, opens a link.
    Hello = 0,
    /// 80: confirmation of a HELLO.
    Reply,
    /// 28: acknowledgement.
    Ack,
    /// 42: keep-alive between neighbours.
    KeepAlive,
    /// 46: video request (child to parent).
    Request,
    /// 1320: full video packet.
    VideoFull,
    /// A video tail: soplab's (1200, 1080, ... for n = 1..16 blocks) or Tang et al.'s observed
    /// fragments (377, 497, 617, 1081, 1201).
    VideoTail,
    /// 20: tracker register, query or leave.
    TrackerRequest,
    /// 21 + 6k (odd): tracker peer list.
    TrackerReply,
    /// Any other size.
    Unknown,
}

/// Number of kinds.
pub const KINDS: usize = 10;

impl Kind {
    pub const ALL: [Kind; KINDS] = [
        Kind::Hello,
        Kind::Reply,
        Kind::Ack,
        Kind::KeepAlive,
        Kind::Request,
        Kind::VideoFull,
        Kind::VideoTail,
        Kind::TrackerRequest,
        Kind::TrackerReply,
        Kind::Unknown,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Hello => "hello",
            Kind::Reply => "reply",
            Kind::Ack => "ack",
            Kind::KeepAlive => "keep_alive",
            Kind::Request => "request",
            Kind::VideoFull => "video_full",
            Kind::VideoTail => "video_tail",
            Kind::TrackerRequest => "tracker_request",
            Kind::TrackerReply => "tracker_reply",
            Kind::Unknown => "unknown",
        }
    }

    pub fn is_video(self) -> bool {
        matches!(self, Kind::VideoFull | Kind::VideoTail)
    }

    pub fn is_tracker(self) -> bool {
        matches!(self, Kind::TrackerRequest | Kind::TrackerReply)
    }

    /// The soplab header class that a datagram of this kind carries, when there is one.
    fn wire_classes(self) -> &'static [u16] {
        match self {
            Kind::Hello => &[class::HELLO],
            Kind::Reply => &[class::HELLO_REPLY],
            Kind::Ack => &[class::ACK],
            Kind::KeepAlive => &[class::KEEPALIVE],
            Kind::Request => &[class::REQUEST],
            Kind::VideoFull | Kind::VideoTail => &[class::VIDEO],
            Kind::TrackerRequest => &[class::REGISTER, class::QUERY, class::LEAVE],
            Kind::TrackerReply => &[class::PEER_LIST],
            Kind::Unknown => &[],
        }
    }
}

/// Tail sizes of soplab responses of n = 1..=16 blocks (docs/PROTOCOL.md section 4).
pub const SOPLAB_TAILS: [u32; 16] =
    [1200, 1080, 960, 840, 720, 600, 480, 360, 240, 120, 1295, 1175, 1055, 935, 815, 695];
/// Video fragment sizes Tang et al. observed (Table 1).
pub const TANG_TAILS: [u32; 5] = [377, 497, 617, 1081, 1201];

const fn table() -> [Kind; 1321] {
    let mut t = [Kind::Unknown; 1321];
    t[size::HELLO] = Kind::Hello;
    t[size::HELLO_REPLY] = Kind::Reply;
    t[size::ACK] = Kind::Ack;
    t[size::KEEPALIVE] = Kind::KeepAlive;
    t[size::REQUEST] = Kind::Request;
    t[size::TRACKER_REQUEST] = Kind::TrackerRequest;
    let mut k = 0;
    while 21 + 6 * k <= 1221 {
        t[21 + 6 * k] = Kind::TrackerReply;
        k += 1;
    }
    let mut i = 0;
    while i < SOPLAB_TAILS.len() {
        t[SOPLAB_TAILS[i] as usize] = Kind::VideoTail;
        i += 1;
    }
    let mut i = 0;
    while i < TANG_TAILS.len() {
        t[TANG_TAILS[i] as usize] = Kind::VideoTail;
        i += 1;
    }
    t[size::VIDEO_MAX] = Kind::VideoFull;
    t
}

static TABLE: [Kind; 1321] = table();

/// The kind of a datagram of UDP payload length `len`.
#[inline]
pub fn classify(len: u32) -> Kind {
    TABLE.get(len as usize).copied().unwrap_or(Kind::Unknown)
}

/// Result of reading soplab's header in a datagram already classified by size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireCheck {
    /// Fewer than 4 payload bytes captured, or not soplab's version byte: nothing to compare.
    NotSoplab,
    /// The header class matches the size class.
    Agrees,
    /// The header class says something else.
    Disagrees,
}

/// Compares the size class with the class in soplab's 8-byte header (bytes 0-1, version byte 3).
#[inline]
pub fn wire_check(kind: Kind, head: &[u8]) -> WireCheck {
    if head.len() < 4 || head[3] != VERSION {
        return WireCheck::NotSoplab;
    }
    let c = u16::from_be_bytes([head[0], head[1]]);
    if kind.wire_classes().contains(&c) { WireCheck::Agrees } else { WireCheck::Disagrees }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_one_sizes() {
        assert_eq!(classify(52), Kind::Hello);
        assert_eq!(classify(80), Kind::Reply);
        assert_eq!(classify(28), Kind::Ack);
        assert_eq!(classify(42), Kind::KeepAlive);
        assert_eq!(classify(46), Kind::Request);
        assert_eq!(classify(1320), Kind::VideoFull);
        for t in SOPLAB_TAILS.iter().chain(&TANG_TAILS) {
            assert_eq!(classify(*t), Kind::VideoTail, "{t}");
        }
        assert_eq!(classify(20), Kind::TrackerRequest);
        assert_eq!(classify(21), Kind::TrackerReply);
        assert_eq!(classify(21 + 6 * 200), Kind::TrackerReply);
        assert_eq!(classify(1000), Kind::Unknown);
        assert_eq!(classify(1321), Kind::Unknown);
        assert_eq!(classify(0), Kind::Unknown);
        assert_eq!(classify(u32::MAX), Kind::Unknown);
    }

    #[test]
    fn tails_never_collide_with_other_sizes() {
        for t in SOPLAB_TAILS.iter().chain(&TANG_TAILS) {
            assert!(!size::CONTROL.contains(&(*t as usize)));
            assert!(*t < 21 || (*t - 21) % 6 != 0 || t % 2 == 0, "{t} would read as a peer list");
        }
    }

    #[test]
    fn wire_cross_check() {
        let mut keepalive = [0u8; 8];
        keepalive[..5].copy_from_slice(&[0x00, 0x02, 0x01, 0x07, 0x03]);
        assert_eq!(wire_check(Kind::KeepAlive, &keepalive), WireCheck::Agrees);
        assert_eq!(wire_check(Kind::Request, &keepalive), WireCheck::Disagrees);
        assert_eq!(wire_check(Kind::KeepAlive, &keepalive[..3]), WireCheck::NotSoplab);
        keepalive[3] = 0x05;
        assert_eq!(wire_check(Kind::KeepAlive, &keepalive), WireCheck::NotSoplab);
    }
}
