//! The peer's sans-IO state machine: links, keep-alives, pull scheduling, upload, playback.

mod stats;
mod timers;

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::net::{SocketAddr, SocketAddrV4};

use bytes::Bytes;
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64Mcg;
use soplab_node::truth::DownReason;
use soplab_node::{DropReason, Event, Media, Micros, Node, Transmit};
use soplab_wire::video::{Insert, Reassembler};
use soplab_wire::{
    BLOCK_LEN, BufferMap, Hello, HelloReply, LinkAck, LinkStatus, MAP_BLOCKS, Message, PeerSet, Register, Repr,
    Request, segment,
};

use crate::config::PeerConfig;
use crate::store::BlockStore;

pub use stats::PeerStats;
use timers::{Timer, Timers};

/// Where the source's blocks come from: the peer core asks it for the newest block at a given
/// time and for a block's bytes. Implemented by `soplab-source`.
pub trait Origin: Send + 'static {
    /// The newest block published by `now` (time since the source started), if any.
    fn newest(&self, now: Micros) -> Option<u32>;
    /// The 10,240 bytes of block `id`.
    fn block(&mut self, id: u32) -> Bytes;
}

/// Most addresses kept as candidates for new links.
const MAX_CANDIDATES: usize = 1024;
/// Optimistic delivery rate (bytes/s) given to a parent never tried, so new parents get a
/// chance; measured rates replace it.
const FRESH_RATE: f64 = 200_000.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkState {
    /// We sent a HELLO with this nonce.
    HelloSent {
        nonce: u32,
    },
    /// We answered a HELLO and wait for the ACK echoing this nonce.
    ReplySent {
        nonce: u32,
    },
    Up,
}

#[derive(Debug)]
struct Neighbor {
    state: LinkState,
    since: Micros,
    last_heard: Micros,
    next_keepalive: Micros,
    initiator: bool,
    seq: u32,
    map: BufferMap,
    /// Measured delivery rate of this neighbour as a parent (bytes/s, EWMA).
    rate: f64,
    /// Last time it requested from us, if it ever did.
    last_request: Option<Micros>,
    child: bool,
    queued: usize,
    /// Not asked for video before this time (it ignored a request: overloaded or gone).
    backoff_until: Micros,
    backoff: Micros,
}

#[derive(Debug, Clone, Copy)]
struct Outstanding {
    parent: SocketAddr,
    first_block: u32,
    count: u8,
    sent_at: Micros,
    /// Whether any packet of the response has come.
    answered: bool,
    /// When the last packet of the response came.
    last_packet: Micros,
}

#[derive(Debug)]
struct Upload {
    child: SocketAddr,
    request: u32,
    first_block: u32,
    count: u8,
    data: Vec<u8>,
    next: u16,
    packets: u32,
}

/// The peer (or source) core. Drive it through [`Node`].
pub struct Peer {
    cfg: PeerConfig,
    rng: Pcg64Mcg,
    origin: Option<Box<dyn Origin>>,
    started: Option<Micros>,
    ended: bool,
    neighbors: BTreeMap<SocketAddr, Neighbor>,
    candidates: VecDeque<SocketAddr>,
    candidate_set: HashSet<SocketAddr>,
    store: BlockStore,
    reasm: Reassembler<(SocketAddr, u32)>,
    outstanding: BTreeMap<u32, Outstanding>,
    requested: HashSet<u32>,
    next_request_id: u32,
    uploads: VecDeque<Upload>,
    tokens: f64,
    tokens_at: Micros,
    control: VecDeque<Transmit>,
    events: VecDeque<Event>,
    played: VecDeque<Media>,
    timers: Timers,
    hello_credit: f64,
    // Playback.
    start_block: Option<u32>,
    start_chosen_at: Micros,
    play_t0: Option<Micros>,
    next_play: u32,
    stats: PeerStats,
}

fn v4(addr: SocketAddr) -> Option<SocketAddrV4> {
    match addr {
        SocketAddr::V4(a) => Some(a),
        SocketAddr::V6(_) => None,
    }
}

impl Peer {
    /// A peer (or, with an origin, the source) that starts when first driven.
    ///
    /// # Panics
    ///
    /// If `origin` is given to a peer, or not given to the source (`cfg.role`): the role is
    /// held by the config alone, and the source is the one node whose blocks come from an origin.
    pub fn new(cfg: PeerConfig, origin: Option<Box<dyn Origin>>) -> Peer {
        assert_eq!(origin.is_some(), cfg.is_source(), "an origin is given to the source, and only to it");
        let slots = cfg.gamma * cfg.outstanding_per_parent + 4;
        let stats = PeerStats { addr: cfg.addr.to_string(), role: cfg.role_name().to_string(), ..PeerStats::default() };
        Peer {
            rng: Pcg64Mcg::seed_from_u64(cfg.seed),
            origin,
            started: None,
            ended: false,
            neighbors: BTreeMap::new(),
            candidates: VecDeque::new(),
            candidate_set: HashSet::new(),
            store: BlockStore::new(MAP_BLOCKS + 64),
            reasm: Reassembler::new(slots),
            outstanding: BTreeMap::new(),
            requested: HashSet::new(),
            next_request_id: 1,
            uploads: VecDeque::new(),
            tokens: 0.0,
            tokens_at: 0,
            control: VecDeque::new(),
            events: VecDeque::new(),
            played: VecDeque::new(),
            timers: Timers::default(),
            hello_credit: 1.0,
            start_block: None,
            start_chosen_at: 0,
            play_t0: None,
            next_play: 0,
            stats,
            cfg,
        }
    }

    pub fn config(&self) -> &PeerConfig {
        &self.cfg
    }

    /// Summary counters, with the current neighbour count.
    pub fn stats(&self) -> PeerStats {
        let mut s = self.stats.clone();
        if !self.ended {
            s.neighbors = self.up_neighbors().count();
        }
        s.continuity = (s.blocks_due > 0).then(|| s.blocks_played as f64 / s.blocks_due as f64);
        s.sessions = u32::from(self.started.is_some());
        s
    }

    /// Established neighbours' addresses.
    pub fn up_neighbors(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.neighbors.iter().filter(|(_, n)| n.state == LinkState::Up).map(|(a, _)| *a)
    }

    /// Ends the session: emits `SessionEnd` and goes quiet. A graceful end also leaves the
    /// tracker; SopCast clients that quit just go silent, which is `graceful = false`.
    pub fn shutdown(&mut self, graceful: bool) {
        if self.ended {
            return;
        }
        self.ended = true;
        if graceful {
            let leave = Message::Leave(soplab_wire::Leave {
                role: self.cfg.role,
                channel: self.cfg.channel,
                listen_port: self.cfg.addr.port(),
            });
            self.push(self.cfg.tracker, 0, leave);
        }
        let addrs: Vec<SocketAddr> = self.up_neighbors().collect();
        self.stats.neighbors = addrs.len();
        for a in addrs {
            self.events.push_back(Event::NeighborDown { peer: a, reason: DownReason::Shutdown });
        }
        self.neighbors.clear();
        self.uploads.clear();
        self.events.push_back(Event::SessionEnd { graceful });
    }

    /// The source serves from its origin and never requests, reassembles or plays.
    fn is_source(&self) -> bool {
        self.cfg.is_source()
    }

    fn push(&mut self, dst: SocketAddr, seq: u32, message: Message<'_>) {
        self.control.push_back(Transmit { dst, payload: Repr::new(seq, message).to_vec() });
    }

    fn drop_input(&mut self, from: SocketAddr, reason: DropReason) {
        *self.stats.dropped.entry(reason.as_str().to_string()).or_default() += 1;
        self.events.push_back(Event::Dropped { from, reason });
    }

    fn next_seq(&mut self, peer: SocketAddr) -> u32 {
        match self.neighbors.get_mut(&peer) {
            Some(n) => {
                n.seq = (n.seq + 1) & 0x00ff_ffff;
                n.seq
            }
            None => 0,
        }
    }

    fn newest(&self, now: Micros) -> Option<u32> {
        match &self.origin {
            Some(o) => o.newest(now.saturating_sub(self.started.unwrap_or(now))),
            None => self.store.newest(),
        }
    }

    fn has_block(&self, id: u32, now: Micros) -> bool {
        match &self.origin {
            Some(_) => self.newest(now).is_some_and(|n| id <= n && n - id < MAP_BLOCKS),
            None => self.store.has(id),
        }
    }

    fn block(&mut self, id: u32) -> Option<Bytes> {
        match &mut self.origin {
            Some(o) => Some(o.block(id)),
            None => self.store.get(id).cloned(),
        }
    }

    fn buffer_map(&self, now: Micros) -> BufferMap {
        match self.newest(now) {
            Some(n) => BufferMap::from_fn(n, |id| self.has_block(id, now)),
            None => BufferMap::empty(),
        }
    }

    fn add_candidate(&mut self, a: SocketAddr) {
        if a == self.cfg.addr || self.neighbors.contains_key(&a) || self.candidate_set.contains(&a) {
            return;
        }
        if self.candidates.len() >= MAX_CANDIDATES
            && let Some(old) = self.candidates.pop_front()
        {
            self.candidate_set.remove(&old);
        }
        self.candidates.push_back(a);
        self.candidate_set.insert(a);
    }

    fn start(&mut self, now: Micros) {
        self.started = Some(now);
        self.timers.set(Timer::Tick, now);
        self.tokens_at = now;
        self.events.push_back(Event::SessionStart { role: self.cfg.role_name() });
    }

    // ---- timers ----

    fn tick(&mut self, now: Micros) {
        if self.timers.due(Timer::Tracker, now) {
            let reg = Message::Register(Register {
                role: self.cfg.role,
                channel: self.cfg.channel,
                listen_port: self.cfg.addr.port(),
                want: self.cfg.tracker_want,
            });
            self.push(self.cfg.tracker, 0, reg);
            self.timers.set(Timer::Tracker, now + self.cfg.tracker_interval);
        }
        self.expire_links(now);
        self.keepalives(now);
        self.open_links(now);
        self.expire_children(now);
        if !self.is_source() {
            self.expire_requests(now);
            self.playback(now);
            self.schedule(now);
        }
        let parents = self.parents().len();
        self.stats.max_parents = self.stats.max_parents.max(parents);
    }

    fn expire_links(&mut self, now: Micros) {
        let mut gone = Vec::new();
        for (a, n) in &self.neighbors {
            let reason = match n.state {
                LinkState::Up if now.saturating_sub(n.last_heard) > self.cfg.neighbor_timeout => {
                    Some(DownReason::Timeout)
                }
                LinkState::HelloSent { .. } | LinkState::ReplySent { .. }
                    if now.saturating_sub(n.since) > self.cfg.handshake_timeout =>
                {
                    Some(DownReason::HandshakeTimeout)
                }
                _ => None,
            };
            if let Some(r) = reason {
                gone.push((*a, r, n.state == LinkState::Up));
            }
        }
        for (a, reason, was_up) in gone {
            self.remove_neighbor(a, reason, was_up);
        }
    }

    fn remove_neighbor(&mut self, a: SocketAddr, reason: DownReason, was_up: bool) {
        let Some(n) = self.neighbors.remove(&a) else { return };
        if was_up {
            self.events.push_back(Event::NeighborDown { peer: a, reason });
        }
        if n.child {
            self.events.push_back(Event::ChildDown { child: a });
        }
        self.uploads.retain(|u| u.child != a);
        // Requests to it are given up now and re-requested elsewhere.
        let lost: Vec<u32> = self.outstanding.iter().filter(|(_, o)| o.parent == a).map(|(id, _)| *id).collect();
        for id in lost {
            self.give_up(id);
        }
        // Dropped until chosen again: it may come back through the tracker or peer exchange.
        if reason != DownReason::Refused {
            self.add_candidate(a);
        }
    }

    fn keepalives(&mut self, now: Micros) {
        let due: Vec<SocketAddr> = self
            .neighbors
            .iter()
            .filter(|(_, n)| n.state == LinkState::Up && n.next_keepalive <= now)
            .map(|(a, _)| *a)
            .collect();
        if due.is_empty() {
            return;
        }
        let map = self.buffer_map(now);
        for a in due {
            let interval = self.cfg.keepalive_interval;
            if let Some(n) = self.neighbors.get_mut(&a) {
                n.next_keepalive = now + interval;
            }
            let seq = self.next_seq(a);
            self.push(a, seq, Message::KeepAlive(map));
        }
    }

    fn open_links(&mut self, now: Micros) {
        self.hello_credit =
            (self.hello_credit + self.cfg.hellos_per_second as f64 * self.cfg.tick as f64 / 1e6).min(4.0);
        while self.hello_credit >= 1.0 && self.neighbors.len() < self.cfg.max_neighbors && !self.candidates.is_empty() {
            let i = self.rng.random_range(0..self.candidates.len());
            let a = self.candidates.swap_remove_back(i).expect("index in range");
            self.candidate_set.remove(&a);
            if self.neighbors.contains_key(&a) {
                continue;
            }
            self.hello_credit -= 1.0;
            let nonce = self.rng.random::<u32>();
            let n = self.new_neighbor(LinkState::HelloSent { nonce }, now, true);
            self.neighbors.insert(a, n);
            let hello = Message::Hello(Hello {
                role: self.cfg.role,
                nonce,
                channel: self.cfg.channel,
                listen_port: self.cfg.addr.port(),
                newest: self.newest(now),
            });
            self.push(a, 0, hello);
        }
    }

    fn new_neighbor(&mut self, state: LinkState, now: Micros, initiator: bool) -> Neighbor {
        Neighbor {
            state,
            since: now,
            last_heard: now,
            next_keepalive: now + self.rng.random_range(0..self.cfg.keepalive_interval.max(1)),
            initiator,
            seq: 0,
            map: BufferMap::empty(),
            rate: FRESH_RATE,
            last_request: None,
            child: false,
            queued: 0,
            backoff_until: 0,
            backoff: 0,
        }
    }

    fn expire_children(&mut self, now: Micros) {
        let timeout = self.cfg.child_timeout;
        let mut down = Vec::new();
        for (a, n) in self.neighbors.iter_mut() {
            if n.child && n.last_request.is_none_or(|t| now.saturating_sub(t) > timeout) && n.queued == 0 {
                n.child = false;
                down.push(*a);
            }
        }
        for a in down {
            self.events.push_back(Event::ChildDown { child: a });
        }
    }

    fn children(&self) -> usize {
        self.neighbors.values().filter(|n| n.child).count()
    }

    fn parents(&self) -> HashSet<SocketAddr> {
        self.outstanding.values().map(|o| o.parent).collect()
    }

    fn expire_requests(&mut self, now: Micros) {
        let late: Vec<u32> = self
            .outstanding
            .iter()
            .filter(|(_, o)| {
                let age = now.saturating_sub(o.sent_at);
                age > self.cfg.request_timeout
                    || (!o.answered && age > self.cfg.answer_timeout)
                    // Answered, then silent: a packet was lost; keep the whole blocks, re-request the rest.
                    || (o.answered && now.saturating_sub(o.last_packet) > self.cfg.answer_timeout)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            if let Some(o) = self.outstanding.get(&id).copied()
                && let Some(n) = self.neighbors.get_mut(&o.parent)
            {
                // A parent that ignores requests (overloaded, like a source at its child
                // limit) is left alone for a while, longer each time.
                n.rate *= 0.5;
                n.backoff = (n.backoff * 2).clamp(self.cfg.parent_backoff, 16 * self.cfg.parent_backoff);
                n.backoff_until = now + n.backoff;
            }
            self.give_up(id);
        }
    }

    /// Abandons request `id`: keeps the blocks that arrived whole, frees the rest for
    /// re-requesting.
    fn give_up(&mut self, id: u32) {
        let Some(o) = self.outstanding.remove(&id) else { return };
        let mut complete = Vec::new();
        if let Some((report, data)) = self.reasm.take((o.parent, id), id) {
            for (i, b) in (report.first_block..).take(usize::from(report.count)).enumerate() {
                if report.complete & (1 << i) != 0 {
                    complete.push((b, Bytes::copy_from_slice(&data[i * BLOCK_LEN..(i + 1) * BLOCK_LEN])));
                }
            }
        }
        for b in o.first_block..o.first_block + u32::from(o.count) {
            self.requested.remove(&b);
        }
        let ids: Vec<u32> = complete.iter().map(|(b, _)| *b).collect();
        for (b, data) in complete {
            self.store.insert(b, data);
        }
        self.stats.requests_timed_out += 1;
        self.events.push_back(Event::RequestTimeout {
            parent: o.parent,
            request: id,
            first_block: o.first_block,
            count: o.count,
            complete: ids,
        });
    }

    fn playback(&mut self, now: Micros) {
        let Some(start) = self.start_block else { return };
        let interval = self.cfg.block_interval();
        if self.play_t0.is_none() {
            // Also wait until the stream is `lag` ahead of the start: a peer that joins a stream
            // younger than `lag` starts at block 0 and would otherwise play closer to the live
            // edge than configured.
            let edge =
                self.neighbors.values().filter(|n| n.state == LinkState::Up).filter_map(|n| n.map.newest()).max();
            let ready = (start..start + self.cfg.startup_blocks).all(|b| self.store.has(b))
                && edge.is_some_and(|e| e >= start.saturating_add(self.cfg.blocks_in(self.cfg.lag)));
            if ready || now.saturating_sub(self.start_chosen_at) >= self.cfg.startup_max {
                self.play_t0 = Some(now);
                self.next_play = start;
                self.events.push_back(Event::PlaybackStart { block: start });
            } else {
                return;
            }
        }
        let t0 = self.play_t0.expect("set above");
        while t0 + u64::from(self.next_play - start) * interval <= now {
            let b = self.next_play;
            let Some(next) = b.checked_add(1) else { break };
            self.next_play = next;
            self.stats.blocks_due += 1;
            let hit = match self.store.get(b) {
                Some(data) => {
                    let data = data.clone();
                    self.stats.blocks_played += 1;
                    self.stats.played_bytes += data.len() as u64;
                    self.stats.first_played_block.get_or_insert(b);
                    self.played.push_back(Media { block: b, data });
                    // Nobody draining the player: keep only the last minute or so.
                    if self.played.len() > 512 {
                        self.played.pop_front();
                    }
                    true
                }
                None => false,
            };
            self.events.push_back(Event::Play { block: b, hit });
        }
    }

    fn schedule(&mut self, now: Micros) {
        // Choose where to start from the newest block any neighbour announces.
        if self.start_block.is_none() {
            // The median of what the neighbours announce, so that one neighbour cannot place the
            // start where nobody else has blocks.
            let mut announced: Vec<u32> =
                self.neighbors.values().filter(|n| n.state == LinkState::Up).filter_map(|n| n.map.newest()).collect();
            if announced.is_empty() {
                return;
            }
            announced.sort_unstable();
            let newest = announced[(announced.len() - 1) / 2];
            let start = newest.saturating_sub(self.cfg.blocks_in(self.cfg.lag));
            self.start_block = Some(start);
            self.start_chosen_at = now;
            self.next_play = start;
        }
        let from = self.next_play;
        let ahead = self.cfg.blocks_in(self.cfg.request_ahead);
        // A neighbour may announce any id up to u32::MAX - 1 (u32::MAX means "no block").
        let end = from.saturating_add(ahead).min(u32::MAX - 1);
        let max_out = self.cfg.gamma * self.cfg.outstanding_per_parent;
        let mut parents = self.parents();
        let mut b = from;
        while b < end && self.outstanding.len() < max_out {
            if self.store.has(b) || self.requested.contains(&b) {
                b += 1;
                continue;
            }
            let Some(parent) = self.pick_parent(b, &parents, now) else {
                b += 1;
                continue;
            };
            // Extend the request over following blocks the same parent has.
            let map = self.neighbors[&parent].map;
            let mut count: u8 = 1;
            while count < self.cfg.request_blocks {
                let next = b.saturating_add(u32::from(count));
                if next >= end || !map.contains(next) || self.store.has(next) || self.requested.contains(&next) {
                    break;
                }
                count += 1;
            }
            self.send_request(parent, b, count, now);
            parents.insert(parent);
            b += u32::from(count);
        }
    }

    fn pick_parent(&mut self, block: u32, parents: &HashSet<SocketAddr>, now: Micros) -> Option<SocketAddr> {
        let full = parents.len() >= self.cfg.gamma;
        let mut best: Option<(f64, SocketAddr)> = None;
        for (a, n) in &self.neighbors {
            if n.state != LinkState::Up
                || !n.map.contains(block)
                || (full && !parents.contains(a))
                || n.backoff_until > now
            {
                continue;
            }
            let out = self.outstanding.values().filter(|o| o.parent == *a).count();
            if out >= self.cfg.outstanding_per_parent {
                continue;
            }
            // Prefer fast parents, with noise so slower ones are still tried now and then.
            let score = n.rate * (0.5 + self.rng.random::<f64>());
            if best.is_none_or(|(s, _)| score > s) {
                best = Some((score, *a));
            }
        }
        best.map(|(_, a)| a)
    }

    fn send_request(&mut self, parent: SocketAddr, first_block: u32, count: u8, now: Micros) {
        let request = self.next_request_id;
        self.next_request_id = self.next_request_id.wrapping_add(1).max(1);
        for b in first_block..first_block + u32::from(count) {
            self.requested.insert(b);
        }
        self.outstanding.insert(
            request,
            Outstanding { parent, first_block, count, sent_at: now, answered: false, last_packet: now },
        );
        self.stats.requests_sent += 1;
        self.events.push_back(Event::RequestSent { parent, request, first_block, count });
        let seq = self.next_seq(parent);
        self.push(parent, seq, Message::Request(Request { request, first_block, count, channel: self.cfg.channel }));
    }

    // ---- input ----

    fn on_hello(&mut self, now: Micros, from: SocketAddr, h: Hello) {
        if let Some(n) = self.neighbors.get(&from) {
            match n.state {
                // Simultaneous open: the lower address keeps its HELLO, the other answers.
                LinkState::HelloSent { .. } if self.cfg.addr < from => return,
                LinkState::Up => {
                    // The other side lost the link and starts over: so do we.
                    self.remove_neighbor(from, DownReason::Timeout, true);
                }
                _ => {}
            }
        }
        let status = if h.channel != self.cfg.channel {
            LinkStatus::WrongChannel
        } else if self.neighbors.len() >= self.cfg.max_neighbors && !self.neighbors.contains_key(&from) {
            LinkStatus::Full
        } else {
            LinkStatus::Accepted
        };
        let nonce = self.rng.random::<u32>();
        // Peer exchange: a few random established neighbours other than the asker.
        let mut up: Vec<SocketAddrV4> = self.up_neighbors().filter(|a| *a != from).filter_map(v4).collect();
        let mut peers = PeerSet::new();
        while !up.is_empty() && peers.len() < PeerSet::CAPACITY {
            let i = self.rng.random_range(0..up.len());
            peers.push(up.swap_remove(i));
        }
        if status == LinkStatus::Accepted {
            let n = self.new_neighbor(LinkState::ReplySent { nonce }, now, false);
            self.neighbors.insert(from, n);
            self.candidate_set.remove(&from);
            self.candidates.retain(|a| *a != from);
        } else if status == LinkStatus::WrongChannel {
            self.drop_input(from, DropReason::WrongChannel);
        }
        let ack = LinkAck { status, echo: h.nonce, nonce, channel: self.cfg.channel };
        self.push(from, 0, Message::HelloReply(HelloReply { ack, peers }));
    }

    fn on_reply(&mut self, now: Micros, from: SocketAddr, r: HelloReply) {
        let Some(n) = self.neighbors.get_mut(&from) else {
            self.drop_input(from, DropReason::NotNeighbour);
            return;
        };
        let LinkState::HelloSent { nonce } = n.state else {
            self.drop_input(from, DropReason::UnexpectedMessage);
            return;
        };
        if r.ack.echo != nonce {
            self.drop_input(from, DropReason::BadNonce);
            return;
        }
        for a in r.peers.as_slice() {
            self.add_candidate(SocketAddr::V4(*a));
        }
        if r.ack.status != LinkStatus::Accepted {
            self.remove_neighbor(from, DownReason::Refused, false);
            return;
        }
        let n = self.neighbors.get_mut(&from).expect("checked above");
        n.state = LinkState::Up;
        n.last_heard = now;
        n.next_keepalive = now;
        let ack = LinkAck { status: LinkStatus::Accepted, echo: r.ack.nonce, nonce: 0, channel: self.cfg.channel };
        let seq = self.next_seq(from);
        self.push(from, seq, Message::Ack(ack));
        self.link_up(from);
    }

    fn link_up(&mut self, a: SocketAddr) {
        let initiator = self.neighbors[&a].initiator;
        self.events.push_back(Event::NeighborUp { peer: a, initiator });
        let n = self.up_neighbors().count();
        self.stats.neighbors_max = self.stats.neighbors_max.max(n);
    }

    fn on_ack(&mut self, now: Micros, from: SocketAddr, a: LinkAck) {
        let Some(n) = self.neighbors.get_mut(&from) else {
            self.drop_input(from, DropReason::NotNeighbour);
            return;
        };
        match n.state {
            LinkState::ReplySent { nonce } if a.echo == nonce => {
                n.state = LinkState::Up;
                n.last_heard = now;
                n.next_keepalive = now;
                self.link_up(from);
            }
            LinkState::ReplySent { .. } => self.drop_input(from, DropReason::BadNonce),
            _ => self.drop_input(from, DropReason::UnexpectedMessage),
        }
    }

    fn on_keepalive(&mut self, now: Micros, from: SocketAddr, map: BufferMap) {
        match self.neighbors.get_mut(&from) {
            Some(n) if n.state == LinkState::Up => {
                n.last_heard = now;
                n.map = map;
            }
            _ => self.drop_input(from, DropReason::NotNeighbour),
        }
    }

    fn on_request(&mut self, now: Micros, from: SocketAddr, r: Request) {
        if r.channel != self.cfg.channel {
            self.drop_input(from, DropReason::WrongChannel);
            return;
        }
        let children = self.children();
        let Some(n) = self.neighbors.get(&from).filter(|n| n.state == LinkState::Up) else {
            self.drop_input(from, DropReason::NotNeighbour);
            return;
        };
        if (!n.child && children >= self.cfg.max_children) || n.queued >= self.cfg.child_queue {
            self.drop_input(from, DropReason::Overloaded);
            return;
        }
        if !(r.first_block..r.first_block + u32::from(r.count)).all(|b| self.has_block(b, now)) {
            self.drop_input(from, DropReason::MissingBlock);
            return;
        }
        let mut data = Vec::with_capacity(usize::from(r.count) * BLOCK_LEN);
        for b in r.first_block..r.first_block + u32::from(r.count) {
            match self.block(b) {
                Some(bytes) => data.extend_from_slice(&bytes),
                None => {
                    self.drop_input(from, DropReason::MissingBlock);
                    return;
                }
            }
        }
        let n = self.neighbors.get_mut(&from).expect("checked above");
        n.last_heard = now;
        n.last_request = Some(now);
        n.queued += 1;
        if !n.child {
            n.child = true;
            self.events.push_back(Event::ChildUp { child: from });
            let c = self.children();
            self.stats.max_children = self.stats.max_children.max(c);
        }
        self.uploads.push_back(Upload {
            child: from,
            request: r.request,
            first_block: r.first_block,
            count: r.count,
            data,
            next: 0,
            packets: 0,
        });
    }

    fn on_video(&mut self, now: Micros, from: SocketAddr, v: &soplab_wire::Video<'_>) {
        if !self.neighbors.get(&from).is_some_and(|n| n.state == LinkState::Up) {
            self.drop_input(from, DropReason::NotNeighbour);
            return;
        }
        let Some(o) = self.outstanding.get(&v.request).copied() else {
            self.drop_input(from, DropReason::Unrequested);
            return;
        };
        if o.parent != from || o.first_block != v.first_block || o.count != v.count {
            self.drop_input(from, DropReason::Unrequested);
            return;
        }
        if let Some(n) = self.neighbors.get_mut(&from) {
            n.last_heard = now;
            n.backoff = 0;
        }
        if let Some(o) = self.outstanding.get_mut(&v.request) {
            o.answered = true;
            o.last_packet = now;
        }
        let done = match self.reasm.insert((from, v.request), now, v) {
            Ok(Insert::Duplicate) => {
                self.drop_input(from, DropReason::Duplicate);
                return;
            }
            Ok(Insert::Stored { .. }) => {
                self.stats.downloaded_bytes += v.payload.len() as u64;
                return;
            }
            Ok(Insert::Complete(c)) => (0..usize::from(c.count))
                .map(|i| Bytes::copy_from_slice(&c.data[i * BLOCK_LEN..(i + 1) * BLOCK_LEN]))
                .collect::<Vec<_>>(),
            Err(_) => {
                self.drop_input(from, DropReason::Unrequested);
                return;
            }
        };
        self.outstanding.remove(&v.request);
        let bytes = (done.len() * BLOCK_LEN) as u64;
        for (i, data) in done.into_iter().enumerate() {
            let b = o.first_block + i as u32;
            self.requested.remove(&b);
            self.store.insert(b, data);
        }
        let elapsed = now.saturating_sub(o.sent_at).max(1) as f64 / 1e6;
        if let Some(n) = self.neighbors.get_mut(&from) {
            n.rate = 0.7 * n.rate + 0.3 * (bytes as f64 / elapsed);
        }
        self.events.push_back(Event::ResponseReceived {
            parent: from,
            request: v.request,
            first_block: o.first_block,
            count: o.count,
            bytes,
        });
        self.schedule(now);
    }

    /// The next video packet the upload cap allows, if any.
    fn next_video(&mut self, now: Micros) -> Option<Transmit> {
        let up = self.uploads.front()?;
        let len = soplab_wire::video::VIDEO_HEADER_LEN + soplab_wire::video::fragment_payload_len(up.count, up.next);
        if let Some(bps) = self.cfg.upload_bps {
            let rate = bps as f64 / 8.0;
            self.tokens = (self.tokens + now.saturating_sub(self.tokens_at) as f64 * rate / 1e6).min(rate.max(64e3));
            self.tokens_at = now;
            if self.tokens < len as f64 {
                return None;
            }
            self.tokens -= len as f64;
        }
        let mut up = self.uploads.pop_front().expect("front exists");
        let v = segment(up.request, up.first_block, &up.data).ok()?.get(up.next)?;
        let seq = self.next_seq(up.child);
        let payload = Repr::new(seq, Message::Video(v)).to_vec();
        let dst = up.child;
        up.next += 1;
        up.packets += 1;
        self.stats.uploaded_bytes += v.payload.len() as u64;
        if up.next < v.total {
            // Round-robin between children.
            self.uploads.push_back(up);
        } else {
            if let Some(n) = self.neighbors.get_mut(&dst) {
                n.queued = n.queued.saturating_sub(1);
            }
            self.stats.responses_sent += 1;
            self.events.push_back(Event::ResponseSent {
                child: dst,
                request: up.request,
                first_block: up.first_block,
                count: up.count,
                bytes: up.data.len() as u64,
                packets: up.packets,
            });
        }
        Some(Transmit { dst, payload })
    }
}

impl Node for Peer {
    fn local_addr(&self) -> SocketAddr {
        self.cfg.addr
    }

    fn handle_datagram(&mut self, now: Micros, from: SocketAddr, data: &[u8]) {
        if self.ended {
            return;
        }
        if self.started.is_none() {
            self.start(now);
        }
        let repr = match Repr::parse(data) {
            Ok(r) => r,
            Err(_) => return self.drop_input(from, DropReason::Undecodable),
        };
        match repr.message {
            Message::Hello(h) => self.on_hello(now, from, h),
            Message::HelloReply(r) => self.on_reply(now, from, r),
            Message::Ack(a) => self.on_ack(now, from, a),
            Message::KeepAlive(m) => self.on_keepalive(now, from, m),
            Message::Request(r) => self.on_request(now, from, r),
            Message::Video(v) => {
                if self.is_source() {
                    self.drop_input(from, DropReason::UnexpectedMessage);
                } else {
                    self.on_video(now, from, &v);
                }
            }
            Message::PeerList(l) if from == self.cfg.tracker => {
                if l.channel != self.cfg.channel {
                    return self.drop_input(from, DropReason::WrongChannel);
                }
                for a in l.peers {
                    self.add_candidate(SocketAddr::V4(a));
                }
            }
            _ => self.drop_input(from, DropReason::UnexpectedMessage),
        }
    }

    fn handle_timeout(&mut self, now: Micros) {
        if self.ended {
            return;
        }
        if self.started.is_none() {
            self.start(now);
        }
        if self.timers.due(Timer::Tick, now) {
            self.tick(now);
            self.timers.set(Timer::Tick, now + self.cfg.tick);
        }
    }

    fn poll_transmit(&mut self, now: Micros) -> Option<Transmit> {
        if let Some(t) = self.control.pop_front() {
            return Some(t);
        }
        if self.ended {
            return None;
        }
        self.next_video(now)
    }

    fn poll_timeout(&self) -> Option<Micros> {
        if self.ended {
            return None;
        }
        let mut t = self.timers.at(Timer::Tick);
        if let (Some(up), Some(bps)) = (self.uploads.front(), self.cfg.upload_bps) {
            let len =
                soplab_wire::video::VIDEO_HEADER_LEN + soplab_wire::video::fragment_payload_len(up.count, up.next);
            let deficit = (len as f64 - self.tokens).max(0.0);
            let wait = (deficit * 8e6 / bps as f64).ceil() as Micros;
            t = t.min(self.tokens_at + wait.max(1));
        }
        Some(t)
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn handle_shutdown(&mut self, _now: Micros) {
        self.shutdown(true);
    }

    fn handle_vanish(&mut self, _now: Micros) {
        self.shutdown(false);
    }

    fn poll_media(&mut self) -> Option<Media> {
        self.played.pop_front()
    }
}
