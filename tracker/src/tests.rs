use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV4};

use proptest::prelude::*;
use soplab_node::impair::Impairment;
use soplab_node::sim::Network;
use soplab_wire::{BufferMap, Role};

use super::*;

const CH: u32 = 7;

/// A config without rate limiting unless a test asks for it.
fn config() -> Config {
    Config { rate: 0, seed: 42, ..Config::new("192.0.2.1:3900".parse().unwrap()) }
}

/// Peer number `i`: its own IP, listening on port 4000.
fn peer(i: u32) -> SocketAddr {
    SocketAddr::V4(v4(i))
}

fn v4(i: u32) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::from(0x0a00_0000 + i), 4000)
}

fn register(channel: u32, listen_port: u16, want: u16) -> Vec<u8> {
    Repr::new(1, Message::Register(Register { role: Role::Peer, channel, listen_port, want })).to_vec()
}

fn query(channel: u32, listen_port: u16, want: u16) -> Vec<u8> {
    Repr::new(2, Message::Query(Query { channel, listen_port, want })).to_vec()
}

fn leave(channel: u32, listen_port: u16) -> Vec<u8> {
    Repr::new(3, Message::Leave(Leave { role: Role::Peer, channel, listen_port })).to_vec()
}

/// Feeds one datagram and returns the peer lists sent (with their destinations).
fn feed(t: &mut Tracker, now: Micros, from: SocketAddr, data: &[u8]) -> Vec<(SocketAddr, PeerList)> {
    t.handle_datagram(now, from, data);
    let mut out = Vec::new();
    while let Some(tx) = t.poll_transmit(now) {
        match Repr::parse(&tx.payload).expect("the tracker emits valid datagrams").message {
            Message::PeerList(l) => out.push((tx.dst, l)),
            other => panic!("tracker sent {other:?}"),
        }
    }
    out
}

/// Registers `from` (listening on its source port) and returns the list it got.
fn reg(t: &mut Tracker, now: Micros, from: SocketAddr, want: u16) -> Option<PeerList> {
    let mut lists = feed(t, now, from, &register(CH, from.port(), want));
    assert!(lists.len() <= 1);
    lists.pop().map(|(dst, l)| {
        assert_eq!(dst, from);
        l
    })
}

fn ask(t: &mut Tracker, now: Micros, from: SocketAddr, want: u16) -> PeerList {
    let (dst, l) = feed(t, now, from, &query(CH, from.port(), want)).pop().expect("queries are answered");
    assert_eq!(dst, from);
    l
}

fn events(t: &mut Tracker) -> Vec<Event> {
    std::iter::from_fn(|| t.poll_event()).collect()
}

fn set(l: &PeerList) -> HashSet<SocketAddrV4> {
    let s: HashSet<_> = l.peers.iter().copied().collect();
    assert_eq!(s.len(), l.peers.len(), "a list never repeats an address");
    s
}

#[test]
fn register_lists_the_others_never_self() {
    let mut t = Tracker::new(config());
    for i in 0..5 {
        let l = reg(&mut t, 0, peer(i), 50).unwrap();
        assert_eq!(set(&l), (0..i).map(v4).collect(), "peer {i} gets the earlier ones");
        assert_eq!((l.channel, t.entries(CH)), (CH, i as usize + 1));
        assert_eq!(
            events(&mut t),
            [
                Event::TrackerRegister { peer: peer(i), channel: CH, new: true },
                Event::TrackerReply { peer: peer(i), channel: CH, peers: i },
            ]
        );
    }
    for i in 0..5 {
        let l = reg(&mut t, SECOND, peer(i), 50).unwrap();
        assert_eq!(set(&l), (0..5).filter(|&j| j != i).map(v4).collect());
        assert_eq!(events(&mut t)[0], Event::TrackerRegister { peer: peer(i), channel: CH, new: false });
    }
    let s = t.stats();
    assert_eq!((s.registrations, s.new_entries, s.replies, s.entries, s.channels), (10, 5, 10, 5, 1));
    assert_eq!(s.peers_listed, (0..5).sum::<u64>() + 5 * 4);
}

#[test]
fn entry_is_source_ip_and_listen_port_reply_goes_to_source() {
    let mut t = Tracker::new(config());
    // Registers from source port 5555, listening on 4000.
    let from: SocketAddr = "10.1.1.1:5555".parse().unwrap();
    let lists = feed(&mut t, 0, from, &register(CH, 4000, 10));
    assert_eq!(lists[0].0, from);
    assert_eq!(
        events(&mut t)[0],
        Event::TrackerRegister { peer: "10.1.1.1:4000".parse().unwrap(), channel: CH, new: true }
    );
    // Another peer is handed the listening address.
    assert_eq!(reg(&mut t, 0, peer(1), 10).unwrap().peers, ["10.1.1.1:4000".parse().unwrap()]);
    // A second port on the same IP is a second entry; listen_port 0 means the source port.
    feed(&mut t, 0, from, &register(CH, 0, 10));
    assert_eq!(events(&mut t)[2], Event::TrackerRegister { peer: from, channel: CH, new: true });
    assert_eq!(t.entries(CH), 3);
}

#[test]
fn reply_echoes_the_request_sequence_number() {
    let mut t = Tracker::new(config());
    let q = Repr::new(0x00ab_cdef, Message::Query(Query { channel: CH, listen_port: 1, want: 1 })).to_vec();
    t.handle_datagram(0, peer(1), &q);
    let tx = t.poll_transmit(0).unwrap();
    assert_eq!(Repr::parse(&tx.payload).unwrap().seq, 0x00ab_cdef);
}

#[test]
fn list_size_is_min_of_want_list_size_and_max_peer_list() {
    for (list_size, want, expected) in [(50, 10, 10), (50, 1000, 50), (1000, 1000, MAX_PEER_LIST), (50, 0, 0)] {
        let mut t = Tracker::new(Config { list_size, ..config() });
        for i in 0..300 {
            reg(&mut t, 0, peer(i), 0);
        }
        let l = reg(&mut t, 0, peer(7), want).unwrap();
        assert_eq!(l.peers.len(), expected, "list_size {list_size}, want {want}");
        assert_eq!(t.entries(CH), 300);
        let s = set(&l);
        assert!(!s.contains(&v4(7)));
        assert!(s.iter().all(|a| (0x0a00_0000..0x0a00_0000 + 300).contains(&u32::from(*a.ip()))));
    }
}

#[test]
fn lists_are_uniform_random_and_seeded() {
    let mut t = Tracker::new(config());
    for i in 0..20 {
        reg(&mut t, 0, peer(i), 0);
    }
    // An asker that is registered never sees itself; the 19 others are equally likely.
    let rounds = 19_000;
    let mut seen: HashMap<SocketAddrV4, u32> = HashMap::new();
    let mut distinct = HashSet::new();
    for _ in 0..rounds {
        let l = ask(&mut t, 0, peer(3), 5);
        assert_eq!(l.peers.len(), 5);
        for a in &l.peers {
            *seen.entry(*a).or_default() += 1;
        }
        let mut key = l.peers.clone();
        key.sort();
        distinct.insert(key);
    }
    assert_eq!(seen.len(), 19);
    assert!(!seen.contains_key(&v4(3)));
    // Each appears with probability 5/19: 5000 times expected, sd about 61.
    for (a, n) in &seen {
        assert!((4700..=5300).contains(n), "{a} listed {n} times");
    }
    // C(19, 5) = 11628 subsets; 19000 draws hit most of them.
    assert!(distinct.len() > 7000, "only {} distinct subsets", distinct.len());

    // Same seed, same inputs: same lists. Another seed: other lists.
    let run = |seed| {
        let mut t = Tracker::new(Config { seed, ..config() });
        (0..30).map(|i| reg(&mut t, 0, peer(i), 8).unwrap().peers).collect::<Vec<_>>()
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
}

#[test]
fn query_does_not_register() {
    let mut t = Tracker::new(config());
    let l = ask(&mut t, 0, peer(1), 10);
    assert_eq!((l.channel, t.entries(CH), l.peers.len()), (CH, 0, 0));
    assert_eq!(t.entries(CH), 0);
    assert_eq!(events(&mut t), [Event::TrackerReply { peer: peer(1), channel: CH, peers: 0 }]);
    reg(&mut t, 0, peer(2), 10);
    assert_eq!(ask(&mut t, 0, peer(1), 10).peers, [v4(2)]);
    assert!(ask(&mut t, 0, peer(2), 10).peers.is_empty(), "the asker's own entry is left out");
    let s = t.stats();
    assert_eq!((s.queries, s.registrations, s.replies, s.entries), (3, 1, 4, 1));
}

#[test]
fn entries_expire_after_ttl() {
    let ttl = 60 * SECOND;
    let mut t = Tracker::new(Config { ttl, ..config() });
    assert_eq!(t.poll_timeout(), None);
    reg(&mut t, 0, peer(1), 10);
    reg(&mut t, 10 * SECOND, peer(2), 10);
    assert_eq!(t.poll_timeout(), Some(ttl));
    events(&mut t);

    t.handle_timeout(ttl - 1);
    assert_eq!(t.entries(CH), 2);
    t.handle_timeout(ttl);
    assert_eq!(events(&mut t), [Event::TrackerExpire { peer: peer(1), channel: CH, leave: false }]);
    assert_eq!(t.poll_timeout(), Some(ttl + 10 * SECOND));

    // A refresh pushes the expiry back.
    reg(&mut t, 30 * SECOND, peer(2), 10);
    assert_eq!(t.poll_timeout(), Some(30 * SECOND + ttl));
    t.handle_timeout(ttl + 10 * SECOND);
    assert_eq!(t.entries(CH), 1);

    // Entries past their TTL are never handed out, even if no timer ran yet.
    let l = reg(&mut t, 30 * SECOND + ttl, peer(3), 10).unwrap();
    assert!(l.peers.is_empty());
    assert_eq!(t.entries(CH), 1);
    let s = t.stats();
    assert_eq!((s.expiries, s.entries, s.channels), (2, 1, 1));
    // The emptied channel disappears.
    t.handle_timeout(30 * SECOND + 2 * ttl);
    assert_eq!((t.stats().entries, t.stats().channels, t.poll_timeout()), (0, 0, None));
}

#[test]
fn leave_removes_at_once() {
    let mut t = Tracker::new(config());
    reg(&mut t, 0, peer(1), 10);
    reg(&mut t, 0, peer(2), 10);
    events(&mut t);
    // Leaving from another IP with the same port removes nothing; neither does an unknown channel.
    assert!(feed(&mut t, 1, peer(3), &leave(CH, 4000)).is_empty());
    feed(&mut t, 1, peer(1), &leave(CH + 1, 4000));
    assert_eq!(events(&mut t), []);
    assert_eq!(t.entries(CH), 2);

    assert!(feed(&mut t, 1, peer(1), &leave(CH, 4000)).is_empty(), "a leave gets no answer");
    assert_eq!(events(&mut t), [Event::TrackerExpire { peer: peer(1), channel: CH, leave: true }]);
    assert_eq!(ask(&mut t, 2, peer(3), 10).peers, [v4(2)]);
    feed(&mut t, 3, peer(2), &leave(CH, 4000));
    let s = t.stats();
    assert_eq!((s.leaves, s.expiries, s.entries, s.channels), (2, 0, 0, 0));
    assert_eq!(t.poll_timeout(), None);
}

#[test]
fn tables_are_bounded() {
    let mut t = Tracker::new(Config { max_entries: 3, max_channels: 2, ..config() });
    for i in 0..3 {
        assert!(reg(&mut t, 0, peer(i), 10).is_some());
    }
    events(&mut t);
    assert!(reg(&mut t, 0, peer(3), 10).is_none(), "a new entry in a full channel is dropped");
    assert_eq!(events(&mut t), [Event::Dropped { from: peer(3), reason: DropReason::TableFull }]);
    assert!(reg(&mut t, 0, peer(0), 10).is_some(), "a refresh in a full channel is fine");
    // Queries still work on a full channel.
    assert_eq!(ask(&mut t, 0, peer(3), 10).peers.len(), 3);

    assert_eq!(feed(&mut t, 0, peer(10), &register(CH + 1, 4000, 1)).len(), 1);
    assert!(feed(&mut t, 0, peer(11), &register(CH + 2, 4000, 1)).is_empty(), "a third channel is dropped");
    // Once a channel empties, its slot is free again.
    feed(&mut t, 0, peer(10), &leave(CH + 1, 4000));
    assert_eq!(feed(&mut t, 0, peer(11), &register(CH + 2, 4000, 1)).len(), 1);
    let s = t.stats();
    assert_eq!((s.drops.table_full, s.drops.total(), s.entries, s.channels), (2, 2, 4, 2));

    let mut none = Tracker::new(Config { max_entries: 0, ..config() });
    assert!(reg(&mut none, 0, peer(1), 10).is_none());
    assert_eq!(none.stats().channels, 0);
}

#[test]
fn rate_limit_per_source_ip() {
    let mut t = Tracker::new(Config { rate: 20, burst: 40, ..config() });
    let replies = |t: &mut Tracker, now, ip: u32, n: u16| {
        (0..n).filter(|&k| !feed(t, now, SocketAddr::new(peer(ip).ip(), 5000 + k), &query(CH, 0, 1)).is_empty()).count()
    };
    assert_eq!(replies(&mut t, 0, 1, 50), 40, "the burst");
    assert_eq!(replies(&mut t, 0, 2, 5), 5, "another IP has its own bucket");
    assert_eq!(replies(&mut t, SECOND / 2, 1, 50), 10, "20/s refill");
    let s = t.stats();
    assert_eq!((s.drops.rate_limited, s.datagrams, s.rate_sources), (50, 105, 2));
    assert!(
        events(&mut t)
            .contains(&Event::Dropped { from: "10.0.0.1:5040".parse().unwrap(), reason: DropReason::RateLimited })
    );

    // The bucket table is bounded: 1000 sources through a 16-bucket table, none limited.
    let mut t = Tracker::new(Config { rate: 20, burst: 40, max_rate_sources: 16, ..config() });
    for i in 0..1000 {
        assert_eq!(feed(&mut t, u64::from(i), peer(i), &query(CH, 0, 1)).len(), 1);
    }
    let s = t.stats();
    assert_eq!((s.rate_sources, s.rate_evictions, s.drops.total()), (16, 984, 0));
    // The sweep forgets idle buckets and then stops asking for timers.
    assert_eq!(t.poll_timeout(), Some(DEFAULT_SWEEP_INTERVAL));
    t.handle_timeout(DEFAULT_SWEEP_INTERVAL);
    assert_eq!((t.stats().rate_sources, t.poll_timeout()), (0, None));
}

#[test]
fn non_tracker_input_is_dropped_and_counted() {
    let mut t = Tracker::new(config());
    let hello = Repr::new(
        0,
        Message::Hello(soplab_wire::Hello { role: Role::Peer, nonce: 1, channel: CH, listen_port: 4000, newest: None }),
    )
    .to_vec();
    let keepalive = Repr::new(5, Message::KeepAlive(BufferMap::from_fn(10, |_| true))).to_vec();
    let list = Repr::new(0, Message::PeerList(PeerList { channel: CH, verified: true, cookie: 1, peers: vec![v4(1)] }))
        .to_vec();
    let mut bad_version = register(CH, 4000, 1);
    bad_version[3] ^= 0xff;
    for (data, reason) in [
        (&[][..], DropReason::Undecodable),
        (&[0xff; 7][..], DropReason::Undecodable),
        (&bad_version[..], DropReason::Undecodable),
        (&register(CH, 4000, 1)[..19], DropReason::Undecodable),
        (&hello[..], DropReason::UnexpectedMessage),
        (&keepalive[..], DropReason::UnexpectedMessage),
        (&list[..], DropReason::UnexpectedMessage),
    ] {
        assert!(feed(&mut t, 0, peer(1), data).is_empty());
        assert_eq!(events(&mut t), [Event::Dropped { from: peer(1), reason }]);
    }
    let d = t.stats().drops;
    assert_eq!((d.undecodable, d.unexpected_message, d.total()), (4, 3, 7));
    assert_eq!(d.get(DropReason::Undecodable), 4);
    assert_eq!(t.stats().entries, 0);
}

#[test]
fn ipv6_sources() {
    let mut t = Tracker::new(config());
    let mapped = SocketAddr::new(Ipv4Addr::new(10, 9, 9, 9).to_ipv6_mapped().into(), 4000);
    feed(&mut t, 0, mapped, &register(CH, 4000, 1));
    assert_eq!(
        events(&mut t)[0],
        Event::TrackerRegister { peer: "10.9.9.9:4000".parse().unwrap(), channel: CH, new: true }
    );
    let v6 = SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 4000);
    assert!(feed(&mut t, 0, v6, &register(CH, 4000, 1)).is_empty());
    assert_eq!(events(&mut t), [Event::Dropped { from: v6, reason: DropReason::UnexpectedMessage }]);
    // An IPv6 asker still gets the (IPv4) list; its leave is a no-op.
    let lists = feed(&mut t, 0, v6, &query(CH, 4000, 5));
    assert_eq!(lists[0].1.peers, ["10.9.9.9:4000".parse().unwrap()]);
    feed(&mut t, 0, v6, &leave(CH, 4000));
    assert_eq!(t.entries(CH), 1);
}

#[test]
fn stats_serialise_to_json() {
    let mut t = Tracker::new(config());
    reg(&mut t, 0, peer(1), 1);
    let v = serde_json::to_value(t.stats()).unwrap();
    assert_eq!(v["registrations"], 1);
    assert_eq!(v["drops"]["table_full"], 0);
    let back: Stats = serde_json::from_value(v).unwrap();
    assert_eq!(back, t.stats());
}

/// A datagram to throw at the tracker: random bytes, or a valid request or peer list with a
/// few bytes overwritten and its length changed (near misses reach deeper into the decoder).
fn garbage() -> impl Strategy<Value = Vec<u8>> {
    let base = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..1500),
        (any::<u32>(), any::<u16>(), any::<u16>()).prop_map(|(c, p, w)| register(c, p, w)),
        (any::<u32>(), any::<u16>(), any::<u16>()).prop_map(|(c, p, w)| query(c, p, w)),
        (any::<u32>(), any::<u16>()).prop_map(|(c, p)| leave(c, p)),
        proptest::collection::vec(any::<u32>(), 0..10).prop_map(|ips| {
            let peers = ips.into_iter().map(|ip| SocketAddrV4::new(ip.into(), 4000)).collect();
            Repr::new(0, Message::PeerList(PeerList { channel: CH, verified: true, cookie: 3, peers })).to_vec()
        }),
    ];
    let edits = proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4);
    (base, edits, -3i32..3).prop_map(|(mut d, edits, grow)| {
        if !d.is_empty() {
            for (i, b) in edits {
                let at = i.index(d.len());
                d[at] = b;
            }
        }
        let len = (d.len() as i32 + grow).max(0) as usize;
        d.resize(len, 0);
        d
    })
}

proptest! {
    #[test]
    fn garbage_never_panics(inputs in proptest::collection::vec((any::<u8>(), 0u64..5_000_000, garbage()), 1..40)) {
        let mut t = Tracker::new(Config { rate: 5, burst: 10, max_rate_sources: 4, max_entries: 3, ..config() });
        let mut now = 0;
        for (ip, dt, bytes) in &inputs {
            now += dt;
            t.handle_datagram(now, peer(u32::from(*ip % 8)), bytes);
            while let Some(tx) = t.poll_transmit(now) {
                prop_assert!(Repr::parse(&tx.payload).is_ok());
            }
            while t.poll_event().is_some() {}
            if let Some(at) = t.poll_timeout() && at <= now {
                t.handle_timeout(now);
            }
        }
        let s = t.stats();
        prop_assert_eq!(s.datagrams, inputs.len() as u64);
        prop_assert!(s.rate_sources <= 4);
        prop_assert_eq!(s.replies, s.registrations + s.queries);
    }

    /// Random valid and invalid requests from a few peers over a few channels: the bounds and
    /// the bookkeeping hold, and every list is well-formed.
    #[test]
    fn invariants_hold_under_random_traffic(ops in proptest::collection::vec((0u8..4, 0u32..12, 0u32..3, 0u16..8, 0u64..20_000_000), 1..200)) {
        let ttl = 60 * SECOND;
        let mut t = Tracker::new(Config { ttl, max_entries: 5, max_channels: 2, list_size: 4, ..config() });
        let mut now = 0;
        for (op, who, ch, want, dt) in ops {
            now += dt;
            if let Some(at) = t.poll_timeout() && at <= now {
                t.handle_timeout(now);
            }
            let from = peer(who);
            let data = match op {
                0 => register(ch, 4000, want),
                1 => query(ch, 4000, want),
                2 => leave(ch, 4000),
                _ => vec![0; usize::from(want)],
            };
            for (dst, l) in feed(&mut t, now, from, &data) {
                prop_assert_eq!(dst, from);
                prop_assert_eq!(l.channel, ch);
                prop_assert!(l.peers.len() <= usize::from(want).min(4));
                prop_assert!(!l.peers.contains(&v4(who)));
                prop_assert_eq!(set(&l).len(), l.peers.len());
            }
            while t.poll_event().is_some() {}
            let s = t.stats();
            prop_assert!(s.channels <= 2 && s.entries <= 10);
            prop_assert_eq!(s.entries, s.new_entries - s.leaves - s.expiries);
            prop_assert_eq!(s.replies, s.registrations + s.queries);
        }
    }
}

/// A scripted client for the simulated network: at given times it registers, queries, leaves
/// or sends garbage, and it keeps every list it is sent.
struct FakePeer {
    addr: SocketAddr,
    tracker: SocketAddr,
    script: VecDeque<(Micros, Vec<u8>)>,
    lists: Vec<(Micros, PeerList)>,
    out: VecDeque<Transmit>,
}

impl FakePeer {
    fn new(addr: SocketAddr, tracker: SocketAddr, script: Vec<(Micros, Vec<u8>)>) -> Box<FakePeer> {
        Box::new(FakePeer { addr, tracker, script: script.into(), lists: Vec::new(), out: VecDeque::new() })
    }
}

impl Node for FakePeer {
    fn local_addr(&self) -> SocketAddr {
        self.addr
    }
    fn handle_datagram(&mut self, now: Micros, _from: SocketAddr, data: &[u8]) {
        if let Ok(Repr { message: Message::PeerList(l), .. }) = Repr::parse(data) {
            self.lists.push((now, l));
        }
    }
    fn handle_timeout(&mut self, now: Micros) {
        while self.script.front().is_some_and(|(t, _)| *t <= now) {
            let (_, payload) = self.script.pop_front().unwrap();
            self.out.push_back(Transmit { dst: self.tracker, payload });
        }
    }
    fn poll_transmit(&mut self, _now: Micros) -> Option<Transmit> {
        self.out.pop_front()
    }
    fn poll_timeout(&self) -> Option<Micros> {
        self.script.front().map(|(t, _)| *t)
    }
    fn poll_event(&mut self) -> Option<Event> {
        None
    }
}

#[test]
fn simulated_swarm_registers_leaves_and_expires() {
    let ttl = 120 * SECOND;
    let cfg = Config { ttl, rate: DEFAULT_RATE, ..config() };
    let tracker = cfg.addr;
    let mut net = Network::new(9, Impairment::LAN);
    let mut log: Vec<(Micros, SocketAddr, Event)> = Vec::new();
    let mut on_event = |t: Micros, node: SocketAddr, e: &Event| log.push((t, node, e.clone()));
    net.add(Box::new(Tracker::new(cfg)), &mut on_event);

    // Peer 1 registers, re-registers every 60 s and leaves at 200 s. Peer 2 registers at 5 s
    // and crashes (never speaks again). Peer 3 registers at 10 s and 190 s. Peer 4 only
    // queries, at 150 s and 250 s, and sends garbage once.
    let p = |i| peer(i);
    let r = || register(CH, 4000, 50);
    net.add(
        FakePeer::new(
            p(1),
            tracker,
            vec![(0, r()), (60 * SECOND, r()), (120 * SECOND, r()), (200 * SECOND, leave(CH, 4000))],
        ),
        &mut on_event,
    );
    net.add(FakePeer::new(p(2), tracker, vec![(5 * SECOND, r())]), &mut on_event);
    net.add(FakePeer::new(p(3), tracker, vec![(10 * SECOND, r()), (190 * SECOND, r())]), &mut on_event);
    net.add(
        FakePeer::new(
            p(4),
            tracker,
            vec![
                (150 * SECOND, query(CH, 4000, 50)),
                (151 * SECOND, vec![1, 2, 3]),
                (250 * SECOND, query(CH, 4000, 50)),
            ],
        ),
        &mut on_event,
    );
    net.run_until(300 * SECOND, &mut on_event);

    let lists =
        |i| net.get::<FakePeer>(p(i)).unwrap().lists.iter().map(|(t, l)| (*t / SECOND, set(l))).collect::<Vec<_>>();
    let s = |v: &[u32]| v.iter().map(|&i| v4(i)).collect::<HashSet<_>>();
    // Peer 1 first sees nobody, then peers 2 and 3.
    assert_eq!(lists(1), [(0, s(&[])), (60, s(&[2, 3])), (120, s(&[2, 3]))]);
    assert_eq!(lists(2), [(5, s(&[1]))]);
    // At 150 s peer 2 (registered at 5 s) has expired at 125 s; so has peer 3 (10 s -> 130 s).
    assert_eq!(lists(4), [(150, s(&[1])), (250, s(&[3]))]);
    assert_eq!(lists(3), [(10, s(&[1, 2])), (190, s(&[1]))]);

    let tracker_events: Vec<(Micros, Event)> =
        log.iter().filter(|(_, n, _)| *n == tracker).map(|(t, _, e)| (*t, e.clone())).collect();
    let expiries: Vec<(Micros, Event)> =
        tracker_events.iter().filter(|(_, e)| matches!(e, Event::TrackerExpire { .. })).cloned().collect();
    let at = |t: Micros, i, leave| (t, Event::TrackerExpire { peer: p(i), channel: CH, leave });
    let sent = |t: Micros| t + net_delay(&tracker_events, t);
    assert_eq!(expiries.len(), 3);
    // TTL expiries happen exactly ttl after the last registration reached the tracker.
    assert_eq!(expiries[0], at(sent(5 * SECOND) + ttl, 2, false));
    assert_eq!(expiries[1], at(sent(10 * SECOND) + ttl, 3, false));
    assert!(
        matches!(expiries[2], (t, Event::TrackerExpire { peer, leave: true, .. }) if peer == p(1) && t / SECOND == 200)
    );
    assert!(tracker_events.iter().any(|(_, e)| *e == Event::Dropped { from: p(4), reason: DropReason::Undecodable }));
    let st = net.get::<Tracker>(tracker).unwrap().stats();
    assert_eq!((st.registrations, st.new_entries, st.queries, st.leaves, st.expiries, st.entries), (6, 4, 2, 1, 2, 1));
    assert_eq!(st.drops.total(), 1);
    assert_eq!(net.stats().unroutable, 0);
}

/// The link delay of the registration sent at `sent` (from the tracker's register event time).
fn net_delay(events: &[(Micros, Event)], sent: Micros) -> Micros {
    let arrived = events
        .iter()
        .find(|(t, e)| matches!(e, Event::TrackerRegister { .. }) && *t >= sent && *t - sent <= 30_000)
        .map(|(t, _)| *t)
        .expect("a registration arrived within the link delay");
    arrived - sent
}
