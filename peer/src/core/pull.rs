//! Pulling the stream: which missing blocks ahead of the playback point to request, from which
//! parent (at most gamma at once, fast ones preferred), giving up on requests that stall, and
//! reassembling the video that comes back.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;

use bytes::Bytes;
use rand::RngExt;
use soplab_node::{DropReason, Event, Micros};
use soplab_wire::video::{Insert, Reassembler};
use soplab_wire::{BLOCK_LEN, BufferMap, Message, Request, Video};

use super::Peer;
use crate::config::PeerConfig;

/// What we know of a neighbour as a parent.
#[derive(Debug)]
pub(super) struct Parent {
    /// Measured delivery rate (bytes/s, EWMA).
    rate: f64,
    /// Not asked for video before this time (it ignored a request: overloaded or gone).
    backoff_until: Micros,
    backoff: Micros,
}

impl Parent {
    pub(super) fn new(cfg: &PeerConfig) -> Parent {
        Parent { rate: cfg.parent_fresh_rate, backoff_until: 0, backoff: 0 }
    }

    /// Its measured delivery rate (bytes/s).
    pub(super) fn rate(&self) -> f64 {
        self.rate
    }

    /// A parent that ignores requests (overloaded, like a source at its child limit) is left
    /// alone for a while, longer each time.
    fn ignored(&mut self, now: Micros, base: Micros) {
        self.rate *= 0.5;
        self.backoff = (self.backoff * 2).clamp(base, 16 * base);
        self.backoff_until = now + self.backoff;
    }
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

/// Our requests in flight and the responses being reassembled.
pub(super) struct Pull {
    reasm: Reassembler<(SocketAddr, u32)>,
    /// By request id.
    outstanding: BTreeMap<u32, Outstanding>,
    /// Blocks of outstanding requests, so no block is asked twice at once.
    requested: HashSet<u32>,
    /// Each sub-stream's parent (empty without sub-streams).
    sub_parent: Vec<Option<SocketAddr>>,
}

impl Pull {
    pub(super) fn new(cfg: &PeerConfig) -> Pull {
        // One reassembly slot per request we may have outstanding, and a few spare.
        let slots = cfg.gamma * cfg.outstanding_per_parent + 4;
        Pull {
            reasm: Reassembler::new(slots),
            outstanding: BTreeMap::new(),
            requested: HashSet::new(),
            sub_parent: vec![None; cfg.substreams as usize],
        }
    }

    fn parents(&self) -> HashSet<SocketAddr> {
        self.outstanding.values().map(|o| o.parent).collect()
    }

    /// Parents with requests outstanding now.
    pub(super) fn parent_count(&self) -> usize {
        self.parents().len()
    }

    /// Requests outstanding with `parent`.
    fn outstanding_to(&self, parent: SocketAddr) -> usize {
        self.outstanding.values().filter(|o| o.parent == parent).count()
    }

    /// Stops pulling any sub-stream from `parent`.
    fn drop_parent(&mut self, parent: SocketAddr) {
        for p in self.sub_parent.iter_mut().filter(|p| **p == Some(parent)) {
            *p = None;
        }
    }

    /// The sub-stream of block `b`, if the stream is pulled in sub-streams.
    fn substream(&self, b: u32) -> Option<usize> {
        let k = self.sub_parent.len();
        (k > 0).then(|| b as usize % k)
    }

    /// Whether request `o` is late at `now`.
    fn late(o: &Outstanding, now: Micros, cfg: &PeerConfig) -> bool {
        let age = now.saturating_sub(o.sent_at);
        age > cfg.request_timeout
            || (!o.answered && age > cfg.answer_timeout)
            // Answered, then silent: a packet was lost; keep the whole blocks, re-request the rest.
            || (o.answered && now.saturating_sub(o.last_packet) > cfg.answer_timeout)
    }
}

impl Peer {
    /// Gives up requests that stalled, and backs off the parents that ignored them.
    pub(super) fn expire_requests(&mut self, now: Micros) {
        let late: Vec<u32> =
            self.pull.outstanding.iter().filter(|(_, o)| Pull::late(o, now, &self.cfg)).map(|(id, _)| *id).collect();
        for id in late {
            if let Some(o) = self.pull.outstanding.get(&id).copied()
                && let Some(n) = self.links.get_mut(o.parent)
            {
                n.as_parent.ignored(now, self.cfg.parent_backoff);
            }
            if let Some(o) = self.pull.outstanding.get(&id) {
                let parent = o.parent;
                self.pull.drop_parent(parent);
            }
            self.give_up(id);
        }
    }

    /// Gives up every request to `parent` (the link is gone), to re-request elsewhere.
    pub(super) fn give_up_parent(&mut self, parent: SocketAddr) {
        let lost: Vec<u32> =
            self.pull.outstanding.iter().filter(|(_, o)| o.parent == parent).map(|(id, _)| *id).collect();
        for id in lost {
            self.give_up(id);
        }
        self.pull.drop_parent(parent);
    }

    /// Abandons request `id`: keeps the blocks that arrived whole, frees the rest for
    /// re-requesting.
    fn give_up(&mut self, id: u32) {
        let Some(o) = self.pull.outstanding.remove(&id) else { return };
        let mut complete = Vec::new();
        if let Some((report, data)) = self.pull.reasm.take((o.parent, id), id) {
            for (i, b) in (report.first_block..).take(usize::from(report.count)).enumerate() {
                if report.complete & (1 << i) != 0 {
                    complete.push((b, Bytes::copy_from_slice(&data[i * BLOCK_LEN..(i + 1) * BLOCK_LEN])));
                }
            }
        }
        for b in o.first_block..o.first_block + u32::from(o.count) {
            self.pull.requested.remove(&b);
        }
        let ids: Vec<u32> = complete.iter().map(|(b, _)| *b).collect();
        for (b, data) in complete {
            self.blocks.store_mut().insert(b, data);
        }
        self.out.stats.requests_timed_out += 1;
        self.out.event(Event::RequestTimeout {
            parent: o.parent,
            request: id,
            first_block: o.first_block,
            count: o.count,
            complete: ids,
        });
    }

    /// Requests the missing blocks from the playback point up to `request_ahead`, while fewer
    /// than gamma x `outstanding_per_parent` requests are out.
    pub(super) fn schedule(&mut self, now: Micros) {
        let Some(from) = self.play_point(now) else { return };
        let ahead = self.cfg.blocks_in(self.cfg.request_ahead);
        // A neighbour may announce any id up to u32::MAX - 1 (u32::MAX means "no block").
        let end = from.saturating_add(ahead).min(u32::MAX - 1);
        let max_out = self.cfg.gamma * self.cfg.outstanding_per_parent;
        let mut parents = self.current_parents();
        // No neighbour has announced anything past the edge: nothing there to ask for.
        let edge = self.links.announced_edge().unwrap_or(0);
        let end = end.min(edge.saturating_add(1));
        // Blocks from here on were announced lately: they wait for their sub-stream's parent.
        let patient_from = edge.saturating_sub(self.cfg.blocks_in(self.cfg.parent_patience));
        let mut b = from;
        while b < end && self.pull.outstanding.len() < max_out {
            if !self.wanted(b) {
                b += 1;
                continue;
            }
            let patient = self.cfg.parent_patience > 0 && b >= patient_from;
            let Some(parent) = self.parent_for(b, &parents, patient, now) else {
                b += 1;
                continue;
            };
            let map = self.links.get_up(parent).expect("picked among established neighbours").map();
            let count = self.request_len(b, end, map);
            self.send_request(parent, b, count, now);
            parents.insert(parent);
            b += u32::from(count);
        }
    }

    /// Whether block `b` is neither stored nor already asked for.
    fn wanted(&self, b: u32) -> bool {
        !self.blocks.store().has(b) && !self.pull.requested.contains(&b)
    }

    /// How many blocks from `b` to ask in one request: following blocks the same parent has
    /// (`map`) and we still want, up to `request_blocks`.
    fn request_len(&self, b: u32, end: u32, map: BufferMap) -> u8 {
        let mut count: u8 = 1;
        while count < self.cfg.request_blocks {
            let next = b.saturating_add(u32::from(count));
            if next >= end || !map.contains(next) || !self.wanted(next) {
                break;
            }
            count += 1;
        }
        count
    }

    /// Whether `a` is a current parent: a sub-stream's, or with a request out.
    pub(super) fn is_current_parent(&self, a: SocketAddr) -> bool {
        self.pull.sub_parent.contains(&Some(a)) || self.pull.outstanding.values().any(|o| o.parent == a)
    }

    fn current_parents(&self) -> HashSet<SocketAddr> {
        let mut set = self.pull.parents();
        set.extend(self.pull.sub_parent.iter().flatten());
        set
    }

    /// Whether `a` can be asked for `block` now: established, has it, not backed off, room
    /// for another request.
    fn can_ask(&self, a: SocketAddr, block: u32, now: Micros) -> bool {
        let Some(n) = self.links.get_up(a) else { return false };
        n.map().contains(block)
            && n.as_parent.backoff_until <= now
            && self.pull.outstanding_to(a) < self.cfg.outstanding_per_parent
    }

    /// The parent to ask for `block`. Without sub-streams, the best of the neighbours that can
    /// be asked. With them, the sub-stream's parent; while it cannot be asked, the block
    /// waits if `patient` and the parent is still there, and otherwise the sub-stream takes a
    /// new parent (now and then, `parent_explore`, a random one, to try it).
    fn parent_for(
        &mut self,
        block: u32,
        parents: &HashSet<SocketAddr>,
        patient: bool,
        now: Micros,
    ) -> Option<SocketAddr> {
        let Some(s) = self.pull.substream(block) else { return self.pick_parent(block, parents, false, now) };
        let kept = self.pull.sub_parent[s].filter(|a| self.links.get_up(*a).is_some());
        let mut others = parents.clone();
        if let Some(a) = kept {
            others.remove(&a);
            if self.can_ask(a, block, now) {
                // Now and then, a random neighbour is tried instead.
                let explore = self.cfg.parent_explore > 0.0 && self.rng.random_bool(self.cfg.parent_explore.min(1.0));
                let tried = if explore { self.pick_parent(block, &others, true, now) } else { None };
                self.pull.sub_parent[s] = Some(tried.unwrap_or(a));
                return Some(tried.unwrap_or(a));
            }
            if patient && self.links.get_up(a).is_some_and(|n| n.as_parent.backoff_until <= now) {
                return None;
            }
        }
        let a = self.pick_parent(block, &others, false, now)?;
        self.pull.sub_parent[s] = Some(a);
        Some(a)
    }

    /// The best neighbour to ask for `block` (the fastest, give or take `parent_noise`;
    /// uniformly at random if `at_random`); a new parent only while fewer than gamma are in use.
    fn pick_parent(
        &mut self,
        block: u32,
        parents: &HashSet<SocketAddr>,
        at_random: bool,
        now: Micros,
    ) -> Option<SocketAddr> {
        let full = parents.len() >= self.cfg.gamma;
        let Peer { links, pull, cfg, rng, .. } = self;
        let mut best: Option<(f64, SocketAddr)> = None;
        for (a, n) in links.up() {
            if (full && !parents.contains(&a)) || !n.map().contains(block) || n.as_parent.backoff_until > now {
                continue;
            }
            if pull.outstanding_to(a) >= cfg.outstanding_per_parent {
                continue;
            }
            let noise = cfg.parent_noise;
            let score =
                if at_random { 1.0 } else { n.as_parent.rate } * (1.0 - noise + 2.0 * noise * rng.random::<f64>());
            if best.is_none_or(|(s, _)| score > s) {
                best = Some((score, a));
            }
        }
        best.map(|(_, a)| a)
    }

    /// A request id nobody can guess (only the parent sees it, and video must echo it), not
    /// 0 and not outstanding.
    fn new_request_id(&mut self) -> u32 {
        loop {
            let id = self.nonces.random::<u32>();
            if id != 0 && !self.pull.outstanding.contains_key(&id) {
                return id;
            }
        }
    }

    fn send_request(&mut self, parent: SocketAddr, first_block: u32, count: u8, now: Micros) {
        let request = self.new_request_id();
        let token = self.links.get_up(parent).and_then(|n| n.token()).expect("requests go to established neighbours");
        for b in first_block..first_block + u32::from(count) {
            self.pull.requested.insert(b);
        }
        self.pull.outstanding.insert(
            request,
            Outstanding { parent, first_block, count, sent_at: now, answered: false, last_packet: now },
        );
        self.out.stats.requests_sent += 1;
        self.out.event(Event::RequestSent { parent, request, first_block, count });
        let seq = self.links.next_seq(parent);
        let message = Message::Request(Request { request, first_block, count, channel: self.cfg.channel, token });
        self.out.push(parent, seq, message);
    }

    /// A packet of a response to one of our requests.
    pub(super) fn on_video(&mut self, now: Micros, from: SocketAddr, v: &Video<'_>) {
        let Some(o) = self.requested_by_us(from, v) else { return };
        if let Some(n) = self.links.get_mut(from) {
            n.heard(now);
            n.as_parent.backoff = 0;
        }
        if let Some(o) = self.pull.outstanding.get_mut(&v.request) {
            o.answered = true;
            o.last_packet = now;
        }
        let blocks = match self.pull.reasm.insert((from, v.request), now, v) {
            Ok(Insert::Duplicate) => return self.out.drop_input(from, DropReason::Duplicate),
            Ok(Insert::Stored { .. }) => {
                self.out.stats.downloaded_bytes += v.payload.len() as u64;
                return;
            }
            Ok(Insert::Complete(c)) => (0..usize::from(c.count))
                .map(|i| Bytes::copy_from_slice(&c.data[i * BLOCK_LEN..(i + 1) * BLOCK_LEN]))
                .collect::<Vec<_>>(),
            Err(_) => return self.out.drop_input(from, DropReason::Unrequested),
        };
        self.response_complete(now, from, v.request, o, blocks);
        self.schedule(now);
    }

    /// The request `v` answers, if it is ours and went to `from` (else the packet is dropped).
    fn requested_by_us(&mut self, from: SocketAddr, v: &Video<'_>) -> Option<Outstanding> {
        if self.links.get_up(from).is_none() {
            self.out.drop_input(from, DropReason::NotNeighbour);
            return None;
        }
        match self.pull.outstanding.get(&v.request).copied() {
            Some(o) if o.parent == from && o.first_block == v.first_block && o.count == v.count => Some(o),
            _ => {
                self.out.drop_input(from, DropReason::Unrequested);
                None
            }
        }
    }

    /// Stores a whole response and updates the parent's measured rate.
    fn response_complete(&mut self, now: Micros, from: SocketAddr, request: u32, o: Outstanding, blocks: Vec<Bytes>) {
        self.pull.outstanding.remove(&request);
        let bytes = (blocks.len() * BLOCK_LEN) as u64;
        for (i, data) in blocks.into_iter().enumerate() {
            let b = o.first_block + i as u32;
            self.pull.requested.remove(&b);
            self.blocks.store_mut().insert(b, data);
        }
        let elapsed = now.saturating_sub(o.sent_at).max(1) as f64 / 1e6;
        if let Some(n) = self.links.get_mut(from) {
            n.as_parent.rate = 0.7 * n.as_parent.rate + 0.3 * (bytes as f64 / elapsed);
        }
        self.out.event(Event::ResponseReceived {
            parent: from,
            request,
            first_block: o.first_block,
            count: o.count,
            bytes,
        });
    }
}
