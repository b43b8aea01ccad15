//! A whole swarm — tracker, source, peers — in the virtual-time network: minutes of streaming
//! in seconds, the same seed giving the same events and datagrams.
//!
//! [`Setup`] says what runs, when, and on which paths; [`Setup::run`] runs it and hands every
//! ground-truth event and every datagram to a [`Sink`]. Two things build setups:
//! `soplab swarm --mode virtual` (from the daemon configurations a netns run would start, and a
//! sink that writes the run directory), and [`VirtualSwarm`] (from a few numbers, for tests and
//! examples, with a sink that keeps the events in memory).

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::rc::Rc;

use soplab_node::impair::Impairment;
use soplab_node::sim::{NetStats, Network};
use soplab_node::{Event, Micros, Node, SECOND};
use soplab_peer::daemon::config::session_config;
use soplab_peer::{Peer, PeerConfig, PeerStats};
use soplab_rundir::plan::Plan;
use soplab_source::Content;
use soplab_tracker::{Config as TrackerConfig, Stats as TrackerStats, Tracker};

use crate::summary::{PlayCheck, Summary};

/// Everything a virtual swarm runs: the tracker from time 0, the source, the peers' sessions,
/// and the paths datagrams take.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Seed of the network's random draws (loss, jitter).
    pub seed: u64,
    /// The path of every node not given its own (the tracker's, the source's).
    pub link: Impairment,
    pub tracker: TrackerConfig,
    pub source: PeerConfig,
    pub content: Content,
    /// When the source starts.
    pub source_at: Micros,
    pub peers: Vec<VirtualPeer>,
    /// When everything still running is stopped cleanly: the peers, then the source, then,
    /// [`GRACE`] later, the tracker (as a netns run stops its daemons).
    pub end: Micros,
}

/// One peer of a [`Setup`].
#[derive(Debug, Clone)]
pub struct VirtualPeer {
    /// Its settings; session `k` runs a fresh core with [`session_config`]`(cfg, k)`, as the
    /// peer daemon does.
    pub cfg: PeerConfig,
    /// The path of what it sends (its host's delay, jitter and loss); `None`: the network's.
    pub link: Option<Impairment>,
    /// Its sessions, (start, end); no end: until [`Setup::end`]. A session that is empty or
    /// starts at or after the end is not played.
    pub spans: Vec<(Micros, Option<Micros>)>,
}

/// Where a running virtual swarm reports.
pub trait Sink {
    /// A ground-truth event of `node` at virtual time `t`.
    fn event(&mut self, t: Micros, node: SocketAddr, event: &Event);
    /// A datagram on the wire, when it arrives (what a bridge capture sees; see
    /// [`Network::on_datagram`]).
    fn datagram(&mut self, _t: Micros, _from: SocketAddr, _to: SocketAddr, _payload: &[u8]) {}
    /// Virtual time has reached `t`, with `online` peers in a session (every [`SECOND`]).
    fn progress(&mut self, _t: Micros, _online: usize) {}
}

/// How long after stopping the peers and the source the tracker is stopped, so that their
/// goodbyes reach it.
pub const GRACE: Micros = SECOND;

/// What a run of a [`Setup`] came to.
#[derive(Debug)]
pub struct Ran {
    pub source_stats: PeerStats,
    /// Each peer's counters over all its sessions, in the order of [`Setup::peers`] (a peer
    /// that never played a session reports a fresh core's).
    pub peer_stats: Vec<PeerStats>,
    pub tracker_stats: TrackerStats,
    /// Every played block checked against the content.
    pub plays: PlayCheck,
    pub net: NetStats,
    /// When the last node stopped.
    pub ended: Micros,
}

impl Ran {
    /// summary.json's contents, as a netns run builds them.
    pub fn summary(&self) -> Summary {
        let mut s = crate::summary::build(&self.source_stats, &self.peer_stats, &self.plays);
        s.tracker = serde_json::to_value(self.tracker_stats).ok();
        s
    }
}

/// A session of peer `peer` starting or ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    /// Ends sort first: a client leaving at `t` is gone before one joining at `t` looks.
    End {
        peer: usize,
    },
    Start {
        peer: usize,
        session: usize,
    },
}

/// The peers' session starts and ends in time order (a stable order at equal times).
fn timeline(setup: &Setup) -> Vec<(Micros, Action)> {
    let mut v = Vec::new();
    for (peer, p) in setup.peers.iter().enumerate() {
        for (session, &(start, end)) in p.spans.iter().enumerate() {
            if start >= setup.end || end.is_some_and(|e| e <= start) {
                continue;
            }
            v.push((start, Action::Start { peer, session }));
            if let Some(e) = end.filter(|&e| e <= setup.end) {
                v.push((e, Action::End { peer }));
            }
        }
    }
    v.sort();
    v
}

/// The run in progress: the network, the sink, and each peer's counters so far.
struct Running<'a, S: Sink> {
    setup: &'a Setup,
    net: Network,
    sink: Rc<RefCell<S>>,
    stats: Vec<Option<PeerStats>>,
    online: Vec<bool>,
}

impl<S: Sink + 'static> Running<'_, S> {
    fn on_event(sink: &Rc<RefCell<S>>) -> impl FnMut(Micros, SocketAddr, &Event) + '_ {
        |t, node, e| sink.borrow_mut().event(t, node, e)
    }

    fn run_until(&mut self, t: Micros) {
        self.net.run_until(t, &mut Self::on_event(&self.sink));
    }

    fn apply(&mut self, action: Action) {
        match action {
            Action::Start { peer, session } => {
                let p = &self.setup.peers[peer];
                let core = Peer::new(session_config(&p.cfg, session), None);
                self.net.add(Box::new(core), &mut Self::on_event(&self.sink));
                if let Some(link) = p.link {
                    self.net.set_impairment(p.cfg.addr, link);
                }
                self.online[peer] = true;
            }
            Action::End { peer } => {
                let left = self.net.vanish(self.setup.peers[peer].cfg.addr, &mut Self::on_event(&self.sink));
                self.ended(peer, left);
            }
        }
    }

    /// Adds the counters of a session of `peer` that just ended.
    fn ended(&mut self, peer: usize, node: Option<Box<dyn Node>>) {
        self.online[peer] = false;
        let Some(s) = node.and_then(|n| (n as Box<dyn Any>).downcast::<Peer>().ok()).map(|p| p.stats()) else {
            return;
        };
        match &mut self.stats[peer] {
            Some(all) => all.merge(&s),
            none => *none = Some(s),
        }
    }

    /// Stops every peer still in a session, then the source, cleanly; lets their last
    /// datagrams arrive; stops the tracker. Returns the source's and the tracker's counters.
    fn stop_all(&mut self) -> (PeerStats, TrackerStats) {
        for peer in 0..self.setup.peers.len() {
            if self.online[peer] {
                let left = self.net.shutdown(self.setup.peers[peer].cfg.addr, &mut Self::on_event(&self.sink));
                self.ended(peer, left);
            }
        }
        let source = self.net.shutdown(self.setup.source.addr, &mut Self::on_event(&self.sink));
        let source = source.and_then(|n| (n as Box<dyn Any>).downcast::<Peer>().ok()).expect("the source runs");
        self.run_until(self.net.now() + GRACE);
        let tracker = self.net.shutdown(self.setup.tracker.addr, &mut Self::on_event(&self.sink));
        let tracker = tracker.and_then(|n| (n as Box<dyn Any>).downcast::<Tracker>().ok()).expect("the tracker runs");
        (source.stats(), tracker.stats())
    }
}

impl Setup {
    /// Runs the swarm to its end, reporting to `sink`; returns what it came to and the sink.
    pub fn run<S: Sink + 'static>(&self, sink: S) -> (Ran, S) {
        let sink = Rc::new(RefCell::new(sink));
        let plays = Rc::new(RefCell::new(PlayCheck::default()));
        let mut net = Network::new(self.seed, self.link);
        {
            let (plays, content) = (plays.clone(), self.content.clone());
            net.on_media(move |peer, m| plays.borrow_mut().check(&content, peer, &m));
            let sink = sink.clone();
            net.on_datagram(move |t, from, to, data| sink.borrow_mut().datagram(t, from, to, data));
        }
        let n = self.peers.len();
        let mut run = Running { setup: self, net, sink, stats: vec![None; n], online: vec![false; n] };
        run.net.add(Box::new(Tracker::new(self.tracker.clone())), &mut Running::on_event(&run.sink));
        let mut actions = timeline(self).into_iter().peekable();
        let mut source = Some(soplab_source::source(self.source.clone(), self.content.clone()));
        let mut tick = SECOND;
        loop {
            let next_action = actions.peek().map(|a| a.0);
            let source_at = source.as_ref().map(|_| self.source_at);
            let t = [next_action, source_at, Some(tick), Some(self.end)].into_iter().flatten().min().expect("some");
            run.run_until(t);
            if source_at == Some(t) {
                let core = source.take().expect("not started yet");
                run.net.add(Box::new(core), &mut Running::on_event(&run.sink));
            }
            while let Some((_, a)) = actions.next_if(|a| a.0 == t) {
                run.apply(a);
            }
            if t == tick {
                let online = run.online.iter().filter(|&&o| o).count();
                run.sink.borrow_mut().progress(t, online);
                tick += SECOND;
            }
            if t >= self.end && source.is_none() {
                break;
            }
        }
        let (source_stats, tracker_stats) = run.stop_all();
        let peer_stats = (self.peers.iter().zip(run.stats))
            .map(|(p, s)| s.unwrap_or_else(|| Peer::new(p.cfg.clone(), None).stats()))
            .collect();
        let (net_stats, ended) = (run.net.stats(), run.net.now());
        drop(run.net);
        let sink = Rc::try_unwrap(run.sink).ok().expect("the network, which shared the sink, is gone").into_inner();
        let plays = Rc::try_unwrap(plays).expect("the network, which shared the checker, is gone").into_inner();
        let ran = Ran { source_stats, peer_stats, tracker_stats, plays, net: net_stats, ended };
        (ran, sink)
    }
}

/// A swarm described by a few numbers, for tests and examples: a tracker and a source at time
/// 0, then peer `i` joining at (i + 1) × 50 ms, as a crowd arriving, and staying to the end.
#[derive(Debug, Clone)]
pub struct VirtualSwarm {
    pub peers: usize,
    pub duration: Micros,
    pub seed: u64,
    pub link: Impairment,
    pub channel: u32,
    /// Adjusts each peer's configuration (index, config) before it starts.
    pub tweak: fn(usize, &mut PeerConfig),
}

impl VirtualSwarm {
    pub fn new(peers: usize, duration: Micros, seed: u64) -> VirtualSwarm {
        VirtualSwarm { peers, duration, seed, link: Impairment::LAN, channel: 1, tweak: |_, _| {} }
    }
}

/// What came out.
pub struct Outcome {
    pub summary: Summary,
    pub source_stats: PeerStats,
    pub peer_stats: Vec<PeerStats>,
    /// Every event as its JSON line, with virtual time as the timestamp.
    pub log: Vec<String>,
    /// Peer pairs (source left out) that were ever neighbours, with when they first linked.
    pub links: Vec<(Micros, SocketAddr, SocketAddr)>,
    pub net: NetStats,
    pub tracker: SocketAddr,
    pub source: SocketAddr,
}

/// The address of the tracker, source and peer `i` in virtual swarms: the netns plan
/// (198.18.0.0/15), with peers from 198.18.1.16.
pub fn tracker_addr() -> SocketAddr {
    Plan::netns().tracker
}

pub fn source_addr() -> SocketAddr {
    Plan::netns().source
}

pub fn peer_addr(i: usize) -> SocketAddr {
    Plan::netns().peer(i + 15).into()
}

/// A [`Sink`] that keeps every event's line and when each pair of peers first linked.
struct Memory {
    source: SocketAddr,
    log: Vec<String>,
    links: Vec<(Micros, SocketAddr, SocketAddr)>,
    seen: HashSet<(SocketAddr, SocketAddr)>,
}

impl Sink for Memory {
    fn event(&mut self, t: Micros, node: SocketAddr, e: &Event) {
        self.log.push(e.to_json_line(t, node));
        if let Event::NeighborUp { peer, .. } = e
            && node != self.source
            && *peer != self.source
        {
            let key = if node < *peer { (node, *peer) } else { (*peer, node) };
            if self.seen.insert(key) {
                self.links.push((t, key.0, key.1));
            }
        }
    }
}

impl VirtualSwarm {
    /// What this swarm runs.
    pub fn setup(&self) -> Setup {
        let (tracker, source) = (tracker_addr(), source_addr());
        let peers = (0..self.peers)
            .map(|i| {
                let mut cfg =
                    PeerConfig::peer(peer_addr(i), tracker, self.channel, self.seed.wrapping_add(100 + i as u64));
                (self.tweak)(i, &mut cfg);
                VirtualPeer { cfg, link: None, spans: vec![((i as u64 + 1) * 50_000, None)] }
            })
            .collect();
        Setup {
            seed: self.seed,
            link: self.link,
            tracker: TrackerConfig { seed: self.seed ^ 1, ..TrackerConfig::new(tracker) },
            source: PeerConfig::source(source, tracker, self.channel, self.seed ^ 2),
            content: Content::Synthetic { seed: self.seed },
            source_at: 0,
            peers,
            end: self.duration,
        }
    }

    pub fn run(&self) -> Outcome {
        let setup = self.setup();
        let (tracker, source) = (setup.tracker.addr, setup.source.addr);
        let memory = Memory { source, log: Vec::new(), links: Vec::new(), seen: HashSet::new() };
        let (ran, memory) = setup.run(memory);
        Outcome {
            summary: ran.summary(),
            source_stats: ran.source_stats,
            peer_stats: ran.peer_stats,
            log: memory.log,
            links: memory.links,
            net: ran.net,
            tracker,
            source,
        }
    }
}
