//! The `peer` target: one peer (or source) core fed a program of datagrams, timers and clock
//! jumps from a pool of 20 addresses (the tracker, 16 peers, one of them on a second port, an
//! IPv6 peer, and the core's own address) and floods from addresses never seen before.
//!
//! Invariants, checked after every step (see [`model`]): no panic; every datagram the core
//! sends decodes, is a kind its role sends, and goes where it may (keep-alives, requests and
//! video only to established neighbours, requests with the link's token, nothing to the
//! core's own address, video only answering what that neighbour asked, and
//! for the source exactly the origin's bytes; registrations only to the tracker); answers to
//! an address that never completed a handshake stay within 3x the bytes it sent
//! (`amplification`); after a wake-up at its deadline the core's next deadline is later
//! (`progress`: a driver never spins); the ground truth is consistent (links, children,
//! requests, playback, session) and bounded (established neighbours <= `max_neighbors`,
//! children <= `max_children`, requests out <= gamma x per parent, parents <= gamma); live
//! heap stays within a budget computed from the configuration (`memory`).

mod model;
pub mod ops;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use arbitrary::Arbitrary;
use bytes::Bytes;
use soplab_node::{Micros, Node, SECOND};
use soplab_peer::{Peer, PeerConfig, Profile};
use soplab_source::Content;
use soplab_wire::{BLOCK_LEN, Role};

use crate::drive::Drive;
pub use model::{Model, Reached};
use ops::Op;

pub const TRACKER: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 3900));
pub const ME: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(198, 18, 1, 16), 3908));
pub const CHANNEL: u32 = 1;
/// Addresses programs pick from by index.
pub const POOL: usize = 20;
/// Most timer wake-ups one program runs (30 virtual seconds of 100 ms ticks, time enough to
/// start playing); past it, `Advance` jumps like `Jump`. Keeps a program to milliseconds.
const MAX_WAKEUPS: u32 = 300;
/// Most datagrams one program delivers.
const MAX_DATAGRAMS: u32 = 4_000;
/// Most datagrams one flood delivers.
const MAX_FLOOD: u16 = 512;
/// Most peer lists one flood delivers.
const MAX_LIST_FLOOD: u16 = 8;
/// Most a clock jump moves: an hour (a daemon stopped, or starved of CPU, that long).
const MAX_JUMP_SECS: u32 = 3_600;

/// Pool address `i` (mod [`POOL`]).
pub fn pool(i: u8) -> SocketAddr {
    match usize::from(i) % POOL {
        0 => TRACKER,
        1 => ME,
        2 => SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7), 3908, 0, 0)),
        3 => SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 1, 100)), 4000),
        k => SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 1, 96 + k as u8)), 3908),
    }
}

/// The pool index of `a`, if it is in the pool ([`pool`] backwards; it runs on every datagram).
pub fn pool_index(a: SocketAddr) -> Option<usize> {
    let i = match a {
        SocketAddr::V4(v) => match (v.ip().octets(), v.port()) {
            ([198, 18, 0, 1], 3900) => 0,
            ([198, 18, 1, 16], 3908) => 1,
            ([198, 18, 1, 100], 4000) => 3,
            ([198, 18, 1, d @ 100..=115], 3908) => usize::from(d) - 96,
            _ => return None,
        },
        SocketAddr::V6(_) => 2,
    };
    (pool(i as u8) == a).then_some(i)
}

/// Address number `n` of those never seen before (198.19.0.0/16, then other ports).
fn fresh(n: u32) -> SocketAddr {
    let ip = Ipv4Addr::new(198, 19, (n >> 8) as u8, n as u8);
    SocketAddr::new(IpAddr::V4(ip), 3908u16.wrapping_add((n >> 16) as u16))
}

/// Which configuration the program runs, its seed, and when the core starts.
#[derive(Arbitrary, Debug)]
pub struct Setup {
    kind: u8,
    seed: u8,
    start_ms: u16,
}

/// The media file the source of the programs loops (three blocks' worth).
fn media() -> Bytes {
    Bytes::from((0..3 * BLOCK_LEN).map(|i| (i * 7 + i / 251) as u8).collect::<Vec<u8>>())
}

impl Setup {
    /// 0: a SopCast peer, 1: the full-mesh profile, 2: the source (11 children), 3: a peer at
    /// 200 kbit/s with a 1 Mbit/s upload cap, 4: a 64 kbit/s stream played 2 s behind (fewer
    /// blocks behind than the start-up buffer holds). Peers keep 6 neighbours, so that the
    /// pool fills them; the source 16, so that children could outnumber its 11.
    fn config(&self) -> PeerConfig {
        let seed = u64::from(self.seed);
        let peer = PeerConfig { max_neighbors: 6, ..PeerConfig::peer(ME, TRACKER, CHANNEL, seed) };
        match self.kind % 5 {
            0 => peer,
            1 => PeerConfig { max_neighbors: 6, ..peer.with_profile(Profile::FullMesh) },
            2 => PeerConfig { max_neighbors: 16, ..PeerConfig::source(ME, TRACKER, CHANNEL, seed) },
            3 => PeerConfig { bitrate_bps: 200_000, upload_bps: Some(1_000_000), ..peer },
            _ => PeerConfig { bitrate_bps: 64_000, lag: 2 * SECOND, ..peer },
        }
    }
}

/// The program `data` encodes: its setup and at most [`MAX_OPS`](crate::MAX_OPS) operations.
pub fn program(data: &[u8]) -> Option<(Setup, Vec<Op>)> {
    crate::drive::program(data)
}

/// Runs one program. Panics when an invariant breaks.
pub fn run(data: &[u8]) {
    let Some((setup, ops)) = program(data) else { return };
    let mut h = Harness::new(&setup);
    for op in ops {
        h.apply(op);
    }
    h.finish();
}

/// The core, the clock, the budgets and the [`Model`] that checks what comes out.
pub struct Harness {
    core: Peer,
    now: Micros,
    wakeups: u32,
    datagrams: u32,
    fresh: u32,
    model: Model,
}

impl Harness {
    pub fn new(setup: &Setup) -> Harness {
        let cfg = setup.config();
        let now = Micros::from(setup.start_ms) * 1_000;
        let (core, media) = if cfg.role == Role::Source {
            let media = media();
            (soplab_source::source(cfg.clone(), Content::File(media.clone())), Some(media))
        } else {
            (Peer::new(cfg.clone(), None), None)
        };
        let mut h = Harness { core, now, wakeups: 0, datagrams: 0, fresh: 0, model: Model::new(cfg, media, now) };
        // As a driver does when it adds a node: its first timer runs at once.
        h.wake();
        h.model.arm_heap();
        h
    }

    /// What the program has seen so far.
    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn apply(&mut self, op: Op) {
        match op {
            Op::Send { from, seq, msg, patch } => {
                let from = pool(from);
                if let Some(bytes) = self.model.build(from, seq, &msg, patch, self.now, &mut self.fresh) {
                    self.deliver(from, &bytes);
                }
            }
            Op::Raw { from, bytes } => self.deliver(pool(from), &bytes),
            Op::Link { from } => self.link(pool(from)),
            Op::Respond { from, pick, skip, twice } => {
                let from = pool(from);
                for bytes in self.model.respond(from, pick, skip, twice) {
                    self.deliver(from, &bytes);
                }
            }
            Op::Flood { kind, n } => self.flood(kind, n),
            Op::Advance { ms } => self.advance(Micros::from(ms) * 1_000),
            Op::Jump { secs } => {
                self.now += Micros::from(secs.min(MAX_JUMP_SECS)) * 1_000_000;
                self.wake();
            }
            Op::Timeout => self.next_timer(),
            Op::Shutdown { graceful } => {
                if graceful {
                    self.core.handle_shutdown(self.now);
                } else {
                    self.core.handle_vanish(self.now);
                }
                self.model.ending(graceful);
                self.settle();
            }
        }
    }

    /// Checks what is left at the end.
    pub fn finish(&mut self) {
        self.settle();
    }

    fn deliver(&mut self, from: SocketAddr, bytes: &[u8]) {
        if self.datagrams >= MAX_DATAGRAMS {
            return;
        }
        self.datagrams += 1;
        self.model.delivered(from, bytes);
        self.core.handle_datagram(self.now, from, bytes);
        self.settle();
    }

    fn link(&mut self, from: SocketAddr) {
        if let Some(reply) = self.model.answer_hello(from) {
            return self.deliver(from, &reply);
        }
        let hello = self.model.hello(from, self.now);
        self.deliver(from, &hello);
        if let Some(ack) = self.model.ack_reply(from) {
            self.deliver(from, &ack);
        }
    }

    fn flood(&mut self, kind: u8, n: u16) {
        // Peer lists carry 200 addresses each: a few fill the core's candidates.
        let n = if model::floods_lists(kind) { n.min(MAX_LIST_FLOOD) } else { n.min(MAX_FLOOD) };
        for _ in 0..n {
            if self.datagrams >= MAX_DATAGRAMS {
                return;
            }
            let from = fresh(self.fresh);
            self.fresh = self.fresh.wrapping_add(1);
            let (from, bytes) = self.model.flood_datagram(kind, from, self.now, &mut self.fresh);
            self.deliver(from, &bytes);
        }
    }
}

impl Drive for Harness {
    type Core = Peer;

    fn core(&mut self) -> &mut Peer {
        &mut self.core
    }

    fn clock(&mut self) -> &mut Micros {
        &mut self.now
    }

    fn wakeups(&mut self) -> (&mut u32, u32) {
        (&mut self.wakeups, MAX_WAKEUPS)
    }

    /// Drains the core's output (events, datagrams, media) into the model, which checks it.
    fn settle(&mut self) {
        let now = self.now;
        while let Some(e) = self.core.poll_event() {
            self.model.event(e);
        }
        while let Some(t) = self.core.poll_transmit(now) {
            self.model.transmit(t);
        }
        while let Some(e) = self.core.poll_event() {
            self.model.event(e);
        }
        while let Some(m) = self.core.poll_media() {
            self.model.media(m);
        }
        self.model.check();
    }
}

#[cfg(test)]
mod tests;
