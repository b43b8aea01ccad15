//! The peer's side of the tracker protocol: it registers (and leaves) proving its address
//! with the tracker's cookie, and takes a peer list only as the answer to its own outstanding
//! register.
//!
//! UDP does not authenticate a sender, so a list "from the tracker's address" may come from
//! anyone. A register's sequence number is its query id, which the tracker's answer echoes:
//! the tracker's cookie when the peer holds one (only the tracker and the peer know it), else
//! a number from a generator keyed by the peer's [`Secret`]. A list echoing anything else is
//! dropped ([`DropReason::Unsolicited`]), and each answer is taken once. An answer saying that
//! the register proved nothing (the first one, or one with a cookie too old) is followed at
//! once by a register with the cookie it carries: joining takes one more round trip, and the
//! first answer already names a few peers.

use std::net::SocketAddr;

use rand::RngExt;
use rand::rngs::ChaCha12Rng;
use soplab_node::{DropReason, Micros, Secret};
use soplab_wire::{COOKIE_MASK, Leave, Message, PeerList, Register};

use super::Peer;

/// How long a registration may go unanswered before it is sent again (until one is answered).
/// A lost registration would otherwise leave a newcomer, whom nobody knows yet, alone for a
/// whole `tracker_interval`; and a peer that sends little stays long in a burst of losses
/// (`--loss-burst`: the loss chain moves once per datagram it sends), so it asks often, at 10
/// bytes a second.
const TRACKER_RETRY: Micros = 2_000_000;

/// What the peer keeps of its exchange with the tracker.
pub(super) struct TrackerClient {
    /// Draws query ids nobody off the path can predict (not from the published seed).
    rng: ChaCha12Rng,
    /// The query id of the register awaiting its answer.
    outstanding: Option<u32>,
    /// The tracker's latest cookie for us.
    cookie: Option<u32>,
    /// While the last registration is unanswered: when to send it again.
    retry_at: Option<Micros>,
}

impl TrackerClient {
    pub(super) fn new(secret: &Secret) -> TrackerClient {
        TrackerClient { rng: secret.rng("tracker"), outstanding: None, cookie: None, retry_at: None }
    }

    /// Whether an unanswered registration is due to be sent again.
    pub(super) fn retry_due(&self, now: Micros) -> bool {
        self.retry_at.is_some_and(|at| now >= at)
    }

    /// The sequence number of our next request: the cookie, or else a fresh query id.
    fn next_seq(&mut self) -> u32 {
        match self.cookie {
            Some(c) => c,
            None => self.rng.random::<u32>() & COOKIE_MASK,
        }
    }
}

impl Peer {
    /// Registers with the tracker, which answers with peers for the channel; until it does,
    /// the registration is sent again every [`TRACKER_RETRY`].
    pub(super) fn register(&mut self, now: Micros) {
        // A register sent again while unanswered keeps its query id: an answer to an earlier
        // copy (delayed, not lost) is still taken.
        let seq = match self.tracker.outstanding {
            Some(q) => q,
            None => self.tracker.next_seq(),
        };
        self.tracker.outstanding = Some(seq);
        self.tracker.retry_at = Some(now + TRACKER_RETRY.min(self.cfg.tracker_interval));
        let reg = Message::Register(Register {
            role: self.cfg.role,
            channel: self.cfg.channel,
            listen_port: self.cfg.addr.port(),
            want: self.cfg.tracker_want,
        });
        self.out.push(self.cfg.tracker, seq, reg);
    }

    /// Leaves the tracker, with the cookie that tells our leave from a spoofed one.
    pub(super) fn leave_tracker(&mut self) {
        let seq = self.tracker.next_seq();
        let leave =
            Message::Leave(Leave { role: self.cfg.role, channel: self.cfg.channel, listen_port: self.cfg.addr.port() });
        self.out.push(self.cfg.tracker, seq, leave);
    }

    /// A peer list from the tracker's address with sequence number `seq`: used only if it
    /// answers our outstanding register.
    pub(super) fn on_tracker_list(&mut self, now: Micros, from: SocketAddr, seq: u32, l: PeerList) {
        if self.tracker.outstanding != Some(seq) {
            return self.out.drop_input(from, DropReason::Unsolicited);
        }
        self.tracker.outstanding = None;
        self.tracker.retry_at = None;
        if l.channel == self.cfg.channel {
            self.tracker.cookie = Some(l.cookie);
            // Not listed: prove the address at once, unless this very cookie was refused.
            if !l.verified && seq != l.cookie {
                self.register(now);
            }
        }
        self.on_peer_list(from, l);
    }
}
