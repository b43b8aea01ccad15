//! The neighbour table: links opened with HELLO -> reply -> ACK, kept alive with buffer maps
//! about every second, and dropped when silent; plus the candidates new links are drawn from
//! (the tracker's peer lists and peer exchange).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::net::SocketAddr;

use rand::RngExt;
use rand_pcg::Pcg64Mcg;
use soplab_node::truth::DownReason;
use soplab_node::{DropReason, Event, Micros};
use soplab_wire::{BufferMap, Message, PeerList};

use super::Peer;
use super::pull::Parent;
use super::upload::Child;
use crate::config::PeerConfig;

/// Most addresses kept as candidates for new links.
const MAX_CANDIDATES: usize = 1024;
/// Most addresses remembered as met; past it the memory starts over (it only orders candidates).
const MAX_MET: usize = 4096;
/// HELLOs that can be saved up while no candidate is at hand.
const MAX_HELLO_CREDIT: f64 = 4.0;

/// Where a link stands. A HELLO we answer leaves no state (see `handshake`): a link enters
/// the table when we greet a peer, or when a peer completes the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LinkState {
    /// We sent a HELLO with this nonce and wait for the reply echoing it.
    HelloSent { nonce: u32 },
    /// The handshake is done. `token` is the link's token (`soplab_wire::link_token`), which
    /// requests on the link carry; `hello_nonce` is the nonce of the HELLO of the handshake
    /// that set it, which tells that handshake's own ACK (again) from a new handshake's.
    Up { token: u32, hello_nonce: u32 },
}

/// One neighbour: the link itself, and what the pull and upload sides keep about it (held
/// here so that all of it goes when the link does).
#[derive(Debug)]
pub(super) struct Neighbor {
    state: LinkState,
    since: Micros,
    last_heard: Micros,
    next_keepalive: Micros,
    initiator: bool,
    seq: u32,
    map: BufferMap,
    /// How it does as our parent.
    pub(super) as_parent: Parent,
    /// How we serve it as our child.
    pub(super) as_child: Child,
}

impl Neighbor {
    /// A neighbour entering the table at `now`, its first keep-alive due at `next_keepalive`.
    pub(super) fn new(
        state: LinkState,
        now: Micros,
        next_keepalive: Micros,
        initiator: bool,
        cfg: &PeerConfig,
    ) -> Self {
        Neighbor {
            state,
            since: now,
            last_heard: now,
            next_keepalive,
            initiator,
            seq: 0,
            map: BufferMap::empty(),
            as_parent: Parent::new(cfg),
            as_child: Child::default(),
        }
    }

    pub(super) fn state(&self) -> LinkState {
        self.state
    }

    /// Whether the handshake is done.
    pub(super) fn is_up(&self) -> bool {
        matches!(self.state, LinkState::Up { .. })
    }

    /// The link's token, once it is up.
    pub(super) fn token(&self) -> Option<u32> {
        match self.state {
            LinkState::Up { token, .. } => Some(token),
            LinkState::HelloSent { .. } => None,
        }
    }

    /// Whether we opened the link.
    pub(super) fn initiator(&self) -> bool {
        self.initiator
    }

    /// When it entered the table.
    pub(super) fn since(&self) -> Micros {
        self.since
    }

    /// When it was last heard from.
    pub(super) fn last_heard(&self) -> Micros {
        self.last_heard
    }

    /// The blocks it announced last.
    pub(super) fn map(&self) -> BufferMap {
        self.map
    }

    /// Notes that it spoke, which keeps the link from expiring.
    pub(super) fn heard(&mut self, now: Micros) {
        self.last_heard = now;
    }

    /// Completes the handshake; keep-alives start at once so it learns our buffer map.
    pub(super) fn up(&mut self, now: Micros, token: u32, hello_nonce: u32) {
        self.state = LinkState::Up { token, hello_nonce };
        self.last_heard = now;
        self.next_keepalive = now;
    }

    /// Why the link is dropped at `now`, if it is.
    fn expiry(&self, now: Micros, neighbor_timeout: Micros, handshake_timeout: Micros) -> Option<DownReason> {
        match self.state {
            LinkState::Up { .. } if now.saturating_sub(self.last_heard) > neighbor_timeout => Some(DownReason::Timeout),
            // From the HELLO on, never re-armed: one deadline per handshake.
            LinkState::HelloSent { .. } if now.saturating_sub(self.since) > handshake_timeout => {
                Some(DownReason::HandshakeTimeout)
            }
            _ => None,
        }
    }
}

/// Neighbours (established or handshaking) by address, and candidates for new links.
pub(super) struct Links {
    /// Ordered by address, so every walk over neighbours (and the random draws made during it)
    /// is the same for the same seed.
    pub(super) table: BTreeMap<SocketAddr, Neighbor>,
    candidates: VecDeque<SocketAddr>,
    candidate_set: HashSet<SocketAddr>,
    /// Every address we greeted or that completed a handshake with us: candidates not in it
    /// go first.
    pub(super) met: HashSet<SocketAddr>,
    /// HELLOs we may send now; refilled at `hellos_per_second`.
    hello_credit: f64,
    /// HELLOs explore, going to peers never met, until one of them accepts (a refresh made
    /// room for it).
    pub(super) explore: bool,
    /// When a neighbour was last replaced (by a refresh or for a newcomer).
    pub(super) replaced_at: Option<Micros>,
    /// When a never-met peer was last told "accepted" while the table was full: one per
    /// `newcomer_pace`, so that HELLOs alone (spoofed ones too) get no more than that.
    pub(super) welcomed_at: Option<Micros>,
}

impl Links {
    pub(super) fn meet(&mut self, a: SocketAddr) {
        if self.met.len() >= MAX_MET {
            self.met.clear();
        }
        self.met.insert(a);
    }

    /// `hellos_at_start`: the HELLOs the peer may send before pacing starts.
    pub(super) fn new(hellos_at_start: u32) -> Links {
        Links {
            table: BTreeMap::new(),
            candidates: VecDeque::new(),
            candidate_set: HashSet::new(),
            met: HashSet::new(),
            hello_credit: f64::from(hellos_at_start.max(1)),
            explore: false,
            replaced_at: None,
            welcomed_at: None,
        }
    }

    /// The newest block any established neighbour announced: the live edge as this peer sees it.
    pub(super) fn announced_edge(&self) -> Option<u32> {
        self.up().filter_map(|(_, n)| n.map().newest()).max()
    }

    /// Established neighbours, by address.
    pub(super) fn up(&self) -> impl Iterator<Item = (SocketAddr, &Neighbor)> + '_ {
        self.table.iter().filter(|(_, n)| n.is_up()).map(|(a, n)| (*a, n))
    }

    /// Every neighbour, handshaking ones too, by address.
    pub(super) fn all(&self) -> impl Iterator<Item = (SocketAddr, &Neighbor)> + '_ {
        self.table.iter().map(|(a, n)| (*a, n))
    }

    pub(super) fn all_mut(&mut self) -> impl Iterator<Item = (SocketAddr, &mut Neighbor)> + '_ {
        self.table.iter_mut().map(|(a, n)| (*a, n))
    }

    /// `a` if it is an established neighbour.
    pub(super) fn get_up(&self, a: SocketAddr) -> Option<&Neighbor> {
        self.table.get(&a).filter(|n| n.is_up())
    }

    pub(super) fn get_mut(&mut self, a: SocketAddr) -> Option<&mut Neighbor> {
        self.table.get_mut(&a)
    }

    /// The sequence number of our next datagram to `a` (0 outside a link).
    pub(super) fn next_seq(&mut self, a: SocketAddr) -> u32 {
        match self.table.get_mut(&a) {
            Some(n) => {
                n.seq = (n.seq + 1) & 0x00ff_ffff;
                n.seq
            }
            None => 0,
        }
    }

    /// Forgets every neighbour (the session ends); returns the established ones.
    pub(super) fn clear(&mut self) -> Vec<SocketAddr> {
        let up = self.up().map(|(a, _)| a).collect();
        self.table.clear();
        up
    }

    pub(super) fn add_candidate(&mut self, me: SocketAddr, a: SocketAddr) {
        if a == me || self.table.contains_key(&a) || self.candidate_set.contains(&a) {
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

    /// Takes a random candidate out of the list; if `unmet_first`, one never met if there is
    /// one: a client exploring its swarm tries peers it does not know before those it dropped.
    fn draw_candidate(&mut self, rng: &mut Pcg64Mcg, unmet_first: bool) -> Option<SocketAddr> {
        if self.candidates.is_empty() {
            return None;
        }
        let unmet: Vec<usize> = if unmet_first {
            (0..self.candidates.len()).filter(|&i| !self.met.contains(&self.candidates[i])).collect()
        } else {
            Vec::new()
        };
        let i = if unmet.is_empty() {
            rng.random_range(0..self.candidates.len())
        } else {
            unmet[rng.random_range(0..unmet.len())]
        };
        let a = self.candidates.swap_remove_back(i).expect("index in range");
        self.candidate_set.remove(&a);
        Some(a)
    }

    pub(super) fn remove_candidate(&mut self, a: SocketAddr) {
        self.candidate_set.remove(&a);
        self.candidates.retain(|c| *c != a);
    }
}

impl Peer {
    /// Drops links gone silent and handshakes left unanswered.
    pub(super) fn expire_links(&mut self, now: Micros) {
        let (neighbor_timeout, handshake_timeout) = (self.cfg.neighbor_timeout, self.cfg.handshake_timeout);
        let gone: Vec<(SocketAddr, DownReason, bool)> = self
            .links
            .table
            .iter()
            .filter_map(|(a, n)| Some((*a, n.expiry(now, neighbor_timeout, handshake_timeout)?, n.is_up())))
            .collect();
        for (a, reason, was_up) in gone {
            self.remove_neighbor(a, reason, was_up);
        }
    }

    /// Drops neighbour `a`, with what we served it and what we asked of it.
    pub(super) fn remove_neighbor(&mut self, a: SocketAddr, reason: DownReason, was_up: bool) {
        let Some(n) = self.links.table.remove(&a) else { return };
        if was_up {
            self.out.event(Event::NeighborDown { peer: a, reason });
        }
        if n.as_child.is_child() {
            self.out.event(Event::ChildDown { child: a });
        }
        self.upload.forget(a);
        // Requests to it are given up now and re-requested elsewhere.
        self.give_up_parent(a);
        // Dropped until chosen again: it may come back through the tracker or peer exchange.
        if reason != DownReason::Refused {
            self.links.add_candidate(self.cfg.addr, a);
        }
    }

    /// Sends our buffer map to each established neighbour whose keep-alive is due: it both
    /// keeps the link and tells the neighbour what it may request from us.
    pub(super) fn keepalives(&mut self, now: Micros) {
        let due: Vec<SocketAddr> = self.links.up().filter(|(_, n)| n.next_keepalive <= now).map(|(a, _)| a).collect();
        if due.is_empty() {
            return;
        }
        let map = self.buffer_map(now);
        for a in due {
            let child = self.links.table.get(&a).is_some_and(|n| n.as_child.is_child());
            let (gap, late) = self.keepalive_gap(child);
            if let Some(n) = self.links.table.get_mut(&a) {
                n.next_keepalive = now + gap;
            }
            if late {
                self.out.event(Event::KeepaliveLate { peer: a, gap_us: gap });
            }
            let seq = self.links.next_seq(a);
            self.out.push(a, seq, Message::KeepAlive(map));
        }
    }

    /// The wait until the next keep-alive to a neighbour: the interval (a child's, for a
    /// child), give or take the jitter, and now and then late if not a child; and whether late.
    fn keepalive_gap(&mut self, child: bool) -> (Micros, bool) {
        let interval = if child { self.cfg.child_keepalive_interval } else { self.cfg.keepalive_interval };
        // The jitter scales with the interval.
        let jitter =
            (self.cfg.keepalive_jitter as f64 * interval as f64 / self.cfg.keepalive_interval.max(1) as f64) as Micros;
        let jitter = jitter.min(interval);
        let mut gap = if jitter > 0 { self.rng.random_range(interval - jitter..=interval + jitter) } else { interval };
        let late = !child && self.cfg.keepalive_late > 0.0 && self.rng.random_bool(self.cfg.keepalive_late.min(1.0));
        if late {
            gap += self.rng.random_range(
                self.cfg.keepalive_late_min.min(self.cfg.keepalive_late_max)..=self.cfg.keepalive_late_max,
            );
        }
        (gap.max(1), late)
    }

    /// While the table is full, drops the least useful established neighbour about every
    /// `neighbor_refresh`: one that is neither a current parent nor a child, the slowest as a
    /// parent. Its slot goes to a peer never met if one is known (which lets it in, see
    /// `on_hello`), so that the peer list gets round the swarm at the refresh's pace.
    pub(super) fn refresh_neighbors(&mut self, now: Micros) {
        let every = self.cfg.neighbor_refresh;
        if every == 0 || self.links.table.len() < self.cfg.max_neighbors {
            return;
        }
        if !self.rng.random_bool((self.cfg.tick as f64 / every as f64).min(1.0)) {
            return;
        }
        if self.replace_least_useful(now, every) {
            self.links.explore = true;
        }
    }

    /// Drops the least useful neighbour, unless one was replaced (by a refresh or for a
    /// newcomer) less than `pace` ago. Whether it did.
    pub(super) fn replace_least_useful(&mut self, now: Micros, pace: Micros) -> bool {
        if self.links.replaced_at.is_some_and(|t| now.saturating_sub(t) < pace) {
            return false;
        }
        let Some(a) = self.least_useful() else { return false };
        self.remove_neighbor(a, DownReason::Replaced, true);
        self.links.replaced_at = Some(now);
        true
    }

    /// The established neighbour we would miss least: neither a current parent nor a child,
    /// and the slowest as a parent.
    pub(super) fn least_useful(&self) -> Option<SocketAddr> {
        self.links
            .up()
            .filter(|(a, n)| !n.as_child.is_child() && !self.is_current_parent(*a))
            .min_by(|(a, x), (b, y)| x.as_parent.rate().total_cmp(&y.as_parent.rate()).then(a.cmp(b)))
            .map(|(a, _)| a)
    }

    /// Sends HELLOs to random candidates while below `max_neighbors`, at most
    /// `hellos_per_second` on average.
    pub(super) fn open_links(&mut self, now: Micros) {
        let refill = self.cfg.hellos_per_second as f64 * self.cfg.tick as f64 / 1e6;
        // The start's credit may exceed the cap until it is spent.
        let cap = MAX_HELLO_CREDIT.max(self.links.hello_credit);
        self.links.hello_credit = (self.links.hello_credit + refill).min(cap);
        while self.links.hello_credit >= 1.0 && self.links.table.len() < self.cfg.max_neighbors {
            let explore = self.links.explore;
            let Some(a) = self.links.draw_candidate(&mut self.rng, explore) else { break };
            if self.links.table.contains_key(&a) {
                continue;
            }
            self.links.hello_credit -= 1.0;
            self.links.meet(a);
            self.send_hello(now, a);
        }
    }

    pub(super) fn on_keepalive(&mut self, now: Micros, from: SocketAddr, map: BufferMap) {
        match self.links.table.get_mut(&from) {
            Some(n) if n.is_up() => {
                n.last_heard = now;
                n.map = map;
            }
            _ => self.out.drop_input(from, DropReason::NotNeighbour),
        }
    }

    /// The tracker's answer to a registration: candidates for new links.
    pub(super) fn on_peer_list(&mut self, from: SocketAddr, l: PeerList) {
        if l.channel != self.cfg.channel {
            return self.out.drop_input(from, DropReason::WrongChannel);
        }
        for a in l.peers {
            self.links.add_candidate(self.cfg.addr, SocketAddr::V4(a));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{PeerConfig, Profile};

    fn peer(profile: Profile) -> Peer {
        let a: SocketAddr = "198.18.1.16:3908".parse().unwrap();
        let t: SocketAddr = "198.18.0.2:3900".parse().unwrap();
        Peer::new(PeerConfig::peer(a, t, 1, 9).with_profile(profile), None)
    }

    #[test]
    fn keepalive_gaps_are_jittered_sometimes_late_and_never_late_to_a_child() {
        let mut p = peer(Profile::SopCast);
        let c = p.cfg.clone();
        let (lo, hi) = (c.keepalive_interval - c.keepalive_jitter, c.keepalive_interval + c.keepalive_jitter);
        let gaps: Vec<Micros> = (0..20_000).map(|_| p.keepalive_gap(false).0).collect();
        assert!(gaps.iter().all(|&g| g >= lo && g <= hi + c.keepalive_late_max));
        let late = gaps.iter().filter(|&&g| g > hi).count() as f64 / gaps.len() as f64;
        // Late ones are held back at least keepalive_late_min, so almost all land above `hi`.
        assert!((late - c.keepalive_late).abs() < 0.015, "late share {late}");
        let spread = gaps
            .iter()
            .filter(|&&g| g <= hi)
            .map(|&g| g as f64)
            .fold((f64::MAX, 0.0f64), |(a, b), g| (a.min(g), b.max(g)));
        assert!(spread.1 - spread.0 > 0.9 * (hi - lo) as f64, "jitter spans the range: {spread:?}");
        let to_children: Vec<Micros> = (0..5_000).map(|_| p.keepalive_gap(true).0).collect();
        let child_hi = c.child_keepalive_interval * 2;
        assert!(to_children.iter().all(|&g| g <= child_hi), "a child's keep-alives are never late");

        let mut mesh = peer(Profile::FullMesh);
        assert!(
            (0..1_000).all(|_| mesh.keepalive_gap(false) == (mesh.cfg.keepalive_interval, false)),
            "full mesh: every second"
        );
    }

    #[test]
    fn unmet_candidates_go_first_only_when_exploring() {
        let mut l = Links::new(1);
        let me: SocketAddr = "198.18.1.16:3908".parse().unwrap();
        let addrs: Vec<SocketAddr> = (0..20).map(|i| format!("198.18.1.{}:3908", 100 + i).parse().unwrap()).collect();
        for a in &addrs {
            l.add_candidate(me, *a);
        }
        for a in &addrs[..19] {
            l.meet(*a);
        }
        let mut rng = <Pcg64Mcg as rand::SeedableRng>::seed_from_u64(3);
        assert_eq!(l.draw_candidate(&mut rng, true), Some(addrs[19]), "the one never met");
        let drawn: HashSet<SocketAddr> = (0..19).filter_map(|_| l.draw_candidate(&mut rng, true)).collect();
        assert_eq!(drawn.len(), 19, "then the met ones, all of them");
    }
}
