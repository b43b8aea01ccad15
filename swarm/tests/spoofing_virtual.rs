//! Issue 11, the tracker against an off-path attacker, in the virtual-time network: the real
//! tracker, source and peers, and an attacker who forges source addresses
//! ([`Network::spoof`]). Spoofed registrations neither fill the channel nor block it with
//! other channels, their victims get at most three times the attacker's bytes, and peer lists
//! forged from the tracker's address are not taken; the swarm streams regardless.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64Mcg;
use soplab_node::impair::Impairment;
use soplab_node::sim::Network;
use soplab_node::{Event, Micros, Node, SECOND, Transmit};
use soplab_peer::{Peer, PeerConfig};
use soplab_source::Content;
use soplab_tracker::{Config as TrackerConfig, Tracker};
use soplab_wire::{Message, PeerList, Register, Repr, Role};

const CHANNEL: u32 = 1;
const PEERS: u32 = 8;
/// When the source and the peers join, after the attack began.
const JOIN: Micros = 3 * SECOND;
const END: Micros = 40 * SECOND;

fn tracker() -> SocketAddr {
    "198.18.0.1:3900".parse().unwrap()
}

fn source() -> SocketAddr {
    "198.18.0.2:3901".parse().unwrap()
}

fn peer(i: u32) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 1, 1)) + i), 3908))
}

/// The address the attacker forges or lures with, number `i` (a host that exists and hears).
fn victim(i: u32) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 19, 0, 0)) + i), 3908))
}

/// A host that runs no soplab daemon and records what reaches it: bytes, by sender.
struct Ear {
    addr: SocketAddr,
    heard: BTreeMap<SocketAddr, usize>,
}

impl Node for Ear {
    fn local_addr(&self) -> SocketAddr {
        self.addr
    }
    fn handle_datagram(&mut self, _: Micros, from: SocketAddr, data: &[u8]) {
        *self.heard.entry(from).or_default() += data.len();
    }
    fn handle_timeout(&mut self, _: Micros) {}
    fn poll_transmit(&mut self, _: Micros) -> Option<Transmit> {
        None
    }
    fn poll_timeout(&self) -> Option<Micros> {
        None
    }
    fn poll_event(&mut self) -> Option<Event> {
        None
    }
}

fn quiet(_: Micros, _: SocketAddr, _: &Event) {}

/// The tracker's defaults.
fn defaults() -> TrackerConfig {
    TrackerConfig { seed: 5, ..TrackerConfig::new(tracker()) }
}

/// A tracker, `victims` listening hosts, and from `JOIN` the source and the peers. The
/// attacker acts through `attack(net, now)` every 100 ms until `END`.
fn swarm(tracker_cfg: TrackerConfig, victims: u32, mut attack: impl FnMut(&mut Network, Micros)) -> Network {
    let mut net = Network::new(5, Impairment::LAN);
    net.add(Box::new(Tracker::new(tracker_cfg)), &mut quiet);
    for i in 0..victims {
        net.add(Box::new(Ear { addr: victim(i), heard: BTreeMap::new() }), &mut quiet);
    }
    let mut t = 0;
    while t < END {
        attack(&mut net, t);
        if t == JOIN {
            let src = PeerConfig::source(source(), tracker(), CHANNEL, 7);
            net.add(Box::new(soplab_source::source(src, Content::Synthetic { seed: 7 })), &mut quiet);
            for i in 0..PEERS {
                net.add(
                    Box::new(Peer::new(PeerConfig::peer(peer(i), tracker(), CHANNEL, 100 + u64::from(i)), None)),
                    &mut quiet,
                );
            }
        }
        t += SECOND / 10;
        net.run_until(t, &mut quiet);
    }
    net
}

/// Every peer streamed: continuity of at least 0.99 over what was due.
fn assert_streamed(net: &Network) {
    for i in 0..PEERS {
        let s = net.get::<Peer>(peer(i)).expect("the peer runs").stats();
        assert!(s.blocks_due > 100, "peer {i} had only {} blocks due", s.blocks_due);
        let c = s.continuity.expect("the peer played");
        assert!(c >= 0.99, "peer {i}: continuity {c}");
    }
}

fn register(channel: u32, seq: u32) -> Vec<u8> {
    Repr::new(seq, Message::Register(Register { role: Role::Peer, channel, listen_port: 3908, want: 200 })).to_vec()
}

/// Bytes each victim sent in the attacker's hands (what was spoofed in its name).
type Spent = BTreeMap<SocketAddr, usize>;

/// Checks what the victims heard: from the tracker at most three times what was spoofed in
/// their name, from the swarm's peers and source nothing.
fn assert_victims(net: &Network, victims: u32, spent: &Spent) {
    let mut from_tracker = 0;
    for i in 0..victims {
        let ear = net.get::<Ear>(victim(i)).expect("victims stay");
        for (from, &bytes) in &ear.heard {
            assert_eq!(*from, tracker(), "victim {} was contacted by {from}", victim(i));
            let spoofed = spent.get(&victim(i)).copied().unwrap_or(0);
            assert!(bytes <= 3 * spoofed, "victim {}: {bytes} bytes for {spoofed} spoofed", victim(i));
            from_tracker += bytes;
        }
    }
    assert!(from_tracker > 0, "the tracker answered no spoofed request: the test attacked nothing");
}

#[test]
fn spoofed_registrations_do_not_fill_the_channel() {
    let victims = 2_000;
    let limit = 1_000;
    let mut spent = Spent::new();
    let mut rng = Pcg64Mcg::seed_from_u64(9);
    let mut next = 0u32;
    // A tracker whose channels hold `limit` entries; the attacker registers twice that from as
    // many addresses before anyone joins, and keeps it up, with guessed cookies.
    let cfg = TrackerConfig { max_entries: limit, ..defaults() };
    let net = swarm(cfg, victims, |net, now| {
        let n = if now < JOIN { 2 * limit as u32 / 30 } else { 20 };
        for _ in 0..n {
            let v = victim(next % victims);
            next += 1;
            let d = register(CHANNEL, rng.random::<u32>());
            *spent.entry(v).or_default() += d.len();
            net.spoof(v, tracker(), d);
        }
    });
    let t = net.get::<Tracker>(tracker()).unwrap();
    assert_eq!(t.entries(CHANNEL), PEERS as usize + 1, "the channel lists the peers and the source, only");
    assert_streamed(&net);
    assert_victims(&net, victims, &spent);
}

#[test]
fn spoofed_channels_do_not_block_a_new_channel() {
    let victims = 200;
    let mut spent = Spent::new();
    let max_channels = defaults().max_channels as u32;
    let net = swarm(defaults(), victims, |net, now| {
        // Every channel slot claimed before the swarm's channel opens, and claimed again and again.
        if now % SECOND == 0 {
            for c in 0..2 * max_channels {
                let v = victim(c % victims);
                let d = register(1000 + c, c);
                *spent.entry(v).or_default() += d.len();
                net.spoof(v, tracker(), d);
            }
        }
    });
    assert_eq!(net.get::<Tracker>(tracker()).unwrap().stats().channels, 1, "only the swarm's channel exists");
    assert_streamed(&net);
    assert_victims(&net, victims, &spent);
}

#[test]
fn peer_lists_forged_from_the_trackers_address_are_not_taken() {
    let lures = 200;
    let mut rng = Pcg64Mcg::seed_from_u64(11);
    let net = swarm(defaults(), lures, |net, now| {
        if now < JOIN {
            return;
        }
        // Every 100 ms each peer gets a list of 200 lures, as if from the tracker, with a
        // guessed query id.
        for i in 0..PEERS {
            let peers = (0..lures).map(|k| match victim(k) {
                SocketAddr::V4(a) => a,
                SocketAddr::V6(_) => unreachable!(),
            });
            let list = PeerList { channel: CHANNEL, verified: true, cookie: 0, peers: peers.collect() };
            net.spoof(tracker(), peer(i), Repr::new(rng.random::<u32>(), Message::PeerList(list)).to_vec());
        }
    });
    for i in 0..lures {
        let heard = &net.get::<Ear>(victim(i)).unwrap().heard;
        assert!(heard.is_empty(), "lure {} was contacted: {heard:?}", victim(i));
    }
    for i in 0..PEERS {
        let dropped = net.get::<Peer>(peer(i)).unwrap().stats().dropped;
        assert!(dropped.get("unsolicited").copied().unwrap_or(0) > 300, "peer {i} dropped {dropped:?}");
    }
    assert_streamed(&net);
}
