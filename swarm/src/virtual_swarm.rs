//! A whole swarm — tracker, source, peers — in the virtual-time network: minutes of streaming
//! in seconds, the same seed giving the same event log.

use std::cell::RefCell;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::rc::Rc;

use soplab_node::impair::Impairment;
use soplab_node::sim::{NetStats, Network};
use soplab_node::{Event, Micros};
use soplab_peer::{Peer, PeerConfig, PeerStats};
use soplab_rundir::plan::Plan;
use soplab_source::Content;
use soplab_tracker::{Config as TrackerConfig, Tracker};

use crate::summary::{PlayCheck, Summary};

/// What to run.
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

impl VirtualSwarm {
    pub fn run(&self) -> Outcome {
        let mut net = Network::new(self.seed, self.link);
        let content = Content::Synthetic { seed: self.seed };
        let plays = Rc::new(RefCell::new(PlayCheck::default()));
        {
            let plays = plays.clone();
            let content = content.clone();
            net.on_media(move |peer, m| plays.borrow_mut().check(&content, peer, &m));
        }
        let mut log = Vec::new();
        let mut links = Vec::new();
        let mut seen = HashSet::new();
        let source = source_addr();
        let mut on_event = |t: Micros, node: SocketAddr, e: &Event| {
            log.push(e.to_json_line(t, node));
            if let Event::NeighborUp { peer, .. } = e
                && node != source
                && *peer != source
            {
                let key = if node < *peer { (node, *peer) } else { (*peer, node) };
                if seen.insert(key) {
                    links.push((t, key.0, key.1));
                }
            }
        };
        let tracker = tracker_addr();
        net.add(
            Box::new(Tracker::new(TrackerConfig { seed: self.seed ^ 1, ..TrackerConfig::new(tracker) })),
            &mut on_event,
        );
        let cfg = PeerConfig::source(source, tracker, self.channel, self.seed ^ 2);
        net.add(Box::new(soplab_source::source(cfg, content.clone())), &mut on_event);
        // Peers join over the first few seconds, as a crowd arriving.
        for i in 0..self.peers {
            let t = net.now() + 50_000;
            net.run_until(t, &mut on_event);
            let mut cfg = PeerConfig::peer(peer_addr(i), tracker, self.channel, self.seed.wrapping_add(100 + i as u64));
            (self.tweak)(i, &mut cfg);
            net.add(Box::new(Peer::new(cfg, None)), &mut on_event);
        }
        net.run_until(self.duration, &mut on_event);
        let source_stats = net.get::<Peer>(source).expect("source is in the network").stats();
        let peer_stats: Vec<PeerStats> =
            (0..self.peers).filter_map(|i| net.get::<Peer>(peer_addr(i)).map(Peer::stats)).collect();
        let summary = crate::summary::build(&source_stats, &peer_stats, &plays.borrow());
        Outcome { summary, source_stats, peer_stats, log, links, net: net.stats(), tracker, source }
    }
}
