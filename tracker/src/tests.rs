use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV4};

use proptest::prelude::*;
use soplab_node::impair::Impairment;
use soplab_node::sim::Network;
use soplab_wire::{BufferMap, COOKIE_MASK, Leave, Query, Register, Role};

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

/// The cookie the tracker expects at `now` from `from` for `channel` and `listen_port` (what
/// an answer to `from` would carry).
fn cookie(t: &Tracker, now: Micros, from: SocketAddr, channel: u32, listen_port: u16) -> u32 {
    t.cookie(&Asker { from, seq: 0, channel, listen_port }, t.epoch(now))
}

/// Registers `from` (listening on its source port) on `channel` with its cookie, as a client
/// that learnt it from an earlier answer does; returns the list it got.
fn reg_ch(t: &mut Tracker, now: Micros, from: SocketAddr, channel: u32, want: u16) -> Option<PeerList> {
    let seq = cookie(t, now, from, channel, from.port());
    let mut lists = feed(t, now, from, &register_seq(channel, from.port(), want, seq));
    assert!(lists.len() <= 1);
    lists.pop().map(|(dst, l)| {
        assert_eq!(dst, from);
        assert!(l.verified, "a register with the cookie is verified");
        l
    })
}

fn reg(t: &mut Tracker, now: Micros, from: SocketAddr, want: u16) -> Option<PeerList> {
    reg_ch(t, now, from, CH, want)
}

/// A leave from `from` for `channel` and `listen_port`, with its cookie.
fn leave_ok(
    t: &mut Tracker,
    now: Micros,
    from: SocketAddr,
    channel: u32,
    listen_port: u16,
) -> Vec<(SocketAddr, PeerList)> {
    let seq = cookie(t, now, from, channel, listen_port);
    feed(t, now, from, &leave_seq(channel, listen_port, seq))
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

// ---- spoofed sources (issue 11) ----

/// An address that never receives what is sent to it: a spoofed source (`i < 2^24`).
fn spoofed(i: u32) -> SocketAddr {
    SocketAddr::new(Ipv4Addr::from(0x0b00_0000 + i).into(), 4000)
}

fn register_seq(channel: u32, listen_port: u16, want: u16, seq: u32) -> Vec<u8> {
    Repr::new(seq, Message::Register(Register { role: Role::Peer, channel, listen_port, want })).to_vec()
}

fn query_seq(channel: u32, listen_port: u16, want: u16, seq: u32) -> Vec<u8> {
    Repr::new(seq, Message::Query(Query { channel, listen_port, want })).to_vec()
}

fn leave_seq(channel: u32, listen_port: u16, seq: u32) -> Vec<u8> {
    Repr::new(seq, Message::Leave(Leave { role: Role::Peer, channel, listen_port })).to_vec()
}

/// Registers `from` on `channel` with sequence number `seq`; the answer (which must go to
/// `from` and echo `seq`).
fn reg_on(t: &mut Tracker, now: Micros, from: SocketAddr, channel: u32, seq: u32, want: u16) -> Option<PeerList> {
    t.handle_datagram(now, from, &register_seq(channel, from.port(), want, seq));
    let tx = t.poll_transmit(now)?;
    assert!(t.poll_transmit(now).is_none(), "one answer per request");
    assert_eq!(tx.dst, from);
    let repr = Repr::parse(&tx.payload).expect("the tracker emits valid datagrams");
    assert_eq!(repr.seq, seq & COOKIE_MASK, "the answer echoes the query id");
    match repr.message {
        Message::PeerList(l) => Some(l),
        other => panic!("tracker sent {other:?}"),
    }
}

/// Joins `channel` as a client does: registers with a query id; if the answer is not
/// verified, registers again at once with the cookie it carries. The last answer.
fn join_on(t: &mut Tracker, now: Micros, from: SocketAddr, channel: u32, want: u16) -> Option<PeerList> {
    let first = reg_on(t, now, from, channel, 0x00ab_cdef, want)?;
    if first.verified {
        return Some(first);
    }
    reg_on(t, now, from, channel, first.cookie, want)
}

fn join(t: &mut Tracker, now: Micros, from: SocketAddr, want: u16) -> Option<PeerList> {
    join_on(t, now, from, CH, want)
}

/// Feeds `data` from `from` and returns the bytes the tracker sent to `from` in answer,
/// checking that it sent nothing anywhere else.
fn bytes_back(t: &mut Tracker, now: Micros, from: SocketAddr, data: &[u8]) -> usize {
    t.handle_datagram(now, from, data);
    std::iter::from_fn(|| t.poll_transmit(now))
        .map(|tx| {
            assert_eq!(tx.dst, from, "an answer goes to the asker");
            tx.payload.len()
        })
        .sum()
}

#[test]
fn spoofed_registrations_from_many_addresses_do_not_fill_a_channel() {
    // The default bounds and rate limit: each spoofed address gets a fresh token bucket.
    let mut t = Tracker::new(Config { seed: 42, ..Config::new("192.0.2.1:3900".parse().unwrap()) });
    let max = t.config().max_entries as u32;
    // Twice the channel's bound, each from its own address with a guessed cookie.
    for i in 0..2 * max {
        let guess = i.wrapping_mul(0x9e37_79b9) & COOKIE_MASK;
        bytes_back(&mut t, u64::from(i) * 10, spoofed(i), &register_seq(CH, 4000, 50, guess));
    }
    assert_eq!(t.entries(CH), 0, "spoofed sources were listed");
    assert_eq!(t.stats().new_entries, 0);
    // Real peers still join, and see each other and nothing else.
    let now = u64::from(2 * max) * 10;
    for i in 0..5 {
        let l = join(&mut t, now, peer(i), 50).expect("a real peer is answered");
        assert!(l.verified);
        assert_eq!(set(&l), (0..i).map(v4).collect(), "peer {i}");
    }
    assert_eq!(t.entries(CH), 5);
}

#[test]
fn spoofed_channels_do_not_block_a_new_channel() {
    let mut t = Tracker::new(config());
    let max = t.config().max_channels as u32;
    // Every channel slot claimed twice over: from as many addresses, and all from one.
    for c in 0..2 * max {
        bytes_back(&mut t, 0, spoofed(c), &register_seq(1000 + c, 4000, 50, c));
        bytes_back(&mut t, 0, spoofed(9999), &register_seq(5000 + c, 4000, 50, c));
    }
    assert_eq!(t.stats().channels, 0, "spoofed registrations opened channels");
    let first = join(&mut t, 0, peer(1), 50).expect("a new channel opens for a real peer");
    assert!(first.verified);
    assert_eq!(join(&mut t, 0, peer(2), 50).unwrap().peers, [v4(1)]);
}

#[test]
fn unverified_addresses_get_at_most_three_times_their_bytes() {
    let mut t = Tracker::new(Config { list_size: MAX_PEER_LIST, ..config() });
    for i in 0..300 {
        join(&mut t, 0, peer(i), 0).expect("joined");
    }
    // A spoofer sends in the name of a stranger and of a listed peer, every kind of request
    // with the most peers wanted and guessed cookies.
    let mut largest = 0;
    for victim in [spoofed(1), peer(7)] {
        let (mut sent, mut back) = (0, 0);
        for guess in 0..50u32 {
            for req in [
                register_seq(CH, victim.port(), u16::MAX, guess),
                query_seq(CH, victim.port(), u16::MAX, guess),
                leave_seq(CH, victim.port(), guess),
            ] {
                let got = bytes_back(&mut t, SECOND, victim, &req);
                assert!(got <= 3 * req.len(), "{got} bytes answered a {}-byte request in {victim}'s name", req.len());
                sent += req.len();
                back += got;
                largest = largest.max(got);
            }
        }
        assert!(back <= 3 * sent && back > 0, "{victim}: {back} bytes for {sent}");
    }
    assert_eq!(largest, PeerList::size_for(UNVERIFIED_LIST_MAX), "the largest answer: 6 peers, 57 bytes");
    assert_eq!(t.entries(CH), 300, "nobody was listed or removed");
}

#[test]
fn a_spoofed_leave_removes_nobody() {
    let mut t = Tracker::new(config());
    let cookie = join(&mut t, 0, peer(1), 50).unwrap().cookie;
    join(&mut t, 0, peer(2), 50).unwrap();
    let guesses: Vec<u32> = (0..1000).filter(|&g| g != cookie).collect();
    for &guess in &guesses {
        bytes_back(&mut t, SECOND, peer(1), &leave_seq(CH, 4000, guess));
    }
    assert_eq!(t.entries(CH), 2, "a leave without the cookie removed the entry");
    assert_eq!(t.stats().drops.get(DropReason::BadCookie), guesses.len() as u64);
    // The peer's own leave carries its cookie.
    bytes_back(&mut t, SECOND, peer(1), &leave_seq(CH, 4000, cookie));
    assert_eq!(t.entries(CH), 1);
}

#[test]
fn requests_spoofed_from_the_trackers_own_address_are_not_answered() {
    let mut t = Tracker::new(config());
    let own = t.config().addr;
    for req in [register_seq(CH, own.port(), 50, 1), query_seq(CH, own.port(), 50, 2), leave_seq(CH, own.port(), 3)] {
        assert_eq!(bytes_back(&mut t, 0, own, &req), 0);
        assert_eq!(events(&mut t), [Event::Dropped { from: own, reason: DropReason::UnexpectedMessage }]);
    }
}

#[test]
fn one_address_holds_a_few_entries_in_a_few_channels() {
    let mut t = Tracker::new(Config { max_entries_per_ip: 3, max_channels_per_ip: 2, ..config() });
    let port = |p| SocketAddr::new(peer(1).ip(), p);
    for p in 1..=5 {
        join(&mut t, 0, port(p), 50);
    }
    assert_eq!(t.entries(CH), 3, "entries from one address");
    assert_eq!(t.stats().drops.table_full, 2);
    let mut t = Tracker::new(Config { max_entries_per_ip: 16, max_channels_per_ip: 2, ..config() });
    for c in 0..5 {
        join_on(&mut t, 0, peer(1), 100 + c, 50);
    }
    assert_eq!(t.stats().channels, 2, "channels from one address");
    // Others are not held back by it.
    assert!(join_on(&mut t, 0, peer(2), 104, 50).unwrap().verified);
    assert_eq!(t.stats().channels, 3);
}

#[test]
fn a_cookie_proves_one_address_channel_and_port_for_one_to_two_epochs() {
    let epoch = 60 * SECOND;
    let mut t = Tracker::new(Config { cookie_epoch: epoch, ..config() });
    let first = reg_on(&mut t, 10 * SECOND, peer(1), CH, 0x1234, 50).unwrap();
    assert!(!first.verified);
    let c = first.cookie;
    assert_eq!(c, cookie(&t, 10 * SECOND, peer(1), CH, 4000));
    // Useless from another address, port or channel.
    assert!(!reg_on(&mut t, 10 * SECOND, peer(2), CH, c, 50).unwrap().verified);
    let other_port = SocketAddr::new(peer(1).ip(), 4001);
    assert!(!reg_on(&mut t, 10 * SECOND, other_port, CH, c, 50).unwrap().verified);
    assert!(!reg_on(&mut t, 10 * SECOND, peer(1), CH + 1, c, 50).unwrap().verified);
    assert_eq!(t.stats().entries, 0);
    // Good in its epoch and the next; a newer cookie comes with each answer.
    assert!(reg_on(&mut t, 11 * SECOND, peer(1), CH, c, 50).unwrap().verified);
    let later = reg_on(&mut t, epoch + 59 * SECOND, peer(1), CH, c, 50).unwrap();
    assert!(later.verified);
    assert_ne!(later.cookie, c);
    // Past that, it proves nothing (and refreshes nothing), and the answer has the new one.
    let stale = reg_on(&mut t, 2 * epoch, peer(1), CH, c, 50).unwrap();
    assert!(!stale.verified);
    assert!(reg_on(&mut t, 2 * epoch, peer(1), CH, stale.cookie, 50).unwrap().verified);
    // Another tracker secret (a restarted daemon) makes other cookies.
    let other = Tracker::new(config()).with_secret(Secret::from_seed(99));
    assert_ne!(cookie(&other, 0, peer(1), CH, 4000), cookie(&t, 0, peer(1), CH, 4000));
}

#[test]
fn joining_takes_one_more_round_trip_and_the_first_answer_already_has_peers() {
    let mut t = Tracker::new(config());
    for i in 0..20 {
        join(&mut t, 0, peer(i), 50).unwrap();
    }
    let first = reg_on(&mut t, 0, peer(99), CH, 0x42, 50).unwrap();
    assert!(!first.verified);
    assert_eq!(first.peers.len(), UNVERIFIED_LIST_MAX);
    assert_eq!(PeerList::size_for(UNVERIFIED_LIST_MAX), 57);
    let second = reg_on(&mut t, 0, peer(99), CH, first.cookie, 50).unwrap();
    assert!(second.verified);
    assert_eq!(second.peers.len(), 20);
    assert_eq!(t.entries(CH), 21);
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
    let proof = cookie(&t, 0, from, CH, 4000);
    let lists = feed(&mut t, 0, from, &register_seq(CH, 4000, 10, proof));
    assert_eq!(lists[0].0, from);
    assert_eq!(
        events(&mut t)[0],
        Event::TrackerRegister { peer: "10.1.1.1:4000".parse().unwrap(), channel: CH, new: true }
    );
    // Another peer is handed the listening address.
    assert_eq!(reg(&mut t, 0, peer(1), 10).unwrap().peers, ["10.1.1.1:4000".parse().unwrap()]);
    // A second port on the same IP is a second entry; listen_port 0 means the source port.
    let proof = cookie(&t, 0, from, CH, 0);
    feed(&mut t, 0, from, &register_seq(CH, 0, 10, proof));
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
    assert!(leave_ok(&mut t, 1, peer(3), CH, 4000).is_empty());
    leave_ok(&mut t, 1, peer(1), CH + 1, 4000);
    assert_eq!(events(&mut t), []);
    assert_eq!(t.entries(CH), 2);

    assert!(leave_ok(&mut t, 1, peer(1), CH, 4000).is_empty(), "a leave gets no answer");
    assert_eq!(events(&mut t), [Event::TrackerExpire { peer: peer(1), channel: CH, leave: true }]);
    assert_eq!(ask(&mut t, 2, peer(3), 10).peers, [v4(2)]);
    leave_ok(&mut t, 3, peer(2), CH, 4000);
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

    assert!(reg_ch(&mut t, 0, peer(10), CH + 1, 1).is_some());
    assert!(reg_ch(&mut t, 0, peer(11), CH + 2, 1).is_none(), "a third channel is dropped");
    // Once a channel empties, its slot is free again.
    leave_ok(&mut t, 0, peer(10), CH + 1, 4000);
    assert!(reg_ch(&mut t, 0, peer(11), CH + 2, 1).is_some());
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
    let proof = cookie(&t, 0, mapped, CH, 4000);
    feed(&mut t, 0, mapped, &register_seq(CH, 4000, 1, proof));
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
        prop_assert_eq!(s.replies, s.registrations + s.challenges + s.queries);
    }

    /// Random valid and invalid requests from a few peers over a few channels: the bounds and
    /// the bookkeeping hold, and every list is well-formed.
    #[test]
    fn invariants_hold_under_random_traffic(ops in proptest::collection::vec((0u8..6, 0u32..12, 0u32..3, 0u16..8, 0u64..20_000_000), 1..200)) {
        let ttl = 60 * SECOND;
        let mut t = Tracker::new(Config { ttl, max_entries: 5, max_channels: 2, list_size: 4, ..config() });
        let mut now = 0;
        for (op, who, ch, want, dt) in ops {
            now += dt;
            if let Some(at) = t.poll_timeout() && at <= now {
                t.handle_timeout(now);
            }
            let from = peer(who);
            // Requests with the cookie, and (ops 3, 4) without.
            let proof = cookie(&t, now, from, ch, 4000);
            let data = match op {
                0 => register_seq(ch, 4000, want, proof),
                1 => query_seq(ch, 4000, want, proof),
                2 => leave_seq(ch, 4000, proof),
                3 => register(ch, 4000, want),
                4 => leave(ch, 4000),
                _ => vec![0; usize::from(want)],
            };
            for (dst, l) in feed(&mut t, now, from, &data) {
                prop_assert_eq!(dst, from);
                prop_assert_eq!(l.channel, ch);
                prop_assert!(l.peers.len() <= usize::from(want).min(4));
                prop_assert!(l.verified || PeerList::size_for(l.peers.len()) <= 3 * data.len());
                prop_assert!(!l.peers.contains(&v4(who)));
                prop_assert_eq!(set(&l).len(), l.peers.len());
            }
            while t.poll_event().is_some() {}
            let s = t.stats();
            prop_assert!(s.channels <= 2 && s.entries <= 10);
            prop_assert_eq!(s.entries, s.new_entries - s.leaves - s.expiries);
            prop_assert_eq!(s.replies, s.registrations + s.challenges + s.queries);
        }
    }
}

/// A scripted client for the simulated network: at given times it registers, queries, leaves
/// or sends garbage, and it keeps every list it is sent. As a real client, it sends the last
/// cookie it got as the sequence number of its requests, and registers again at once with the
/// cookie of an answer that did not list it.
struct FakePeer {
    addr: SocketAddr,
    tracker: SocketAddr,
    script: VecDeque<(Micros, Vec<u8>)>,
    lists: Vec<(Micros, PeerList)>,
    out: VecDeque<Transmit>,
    cookie: Option<u32>,
    /// The last register sent, and its sequence number.
    last: Option<(u32, Register)>,
}

impl FakePeer {
    fn new(addr: SocketAddr, tracker: SocketAddr, script: Vec<(Micros, Vec<u8>)>) -> Box<FakePeer> {
        let script = script.into();
        Box::new(FakePeer { addr, tracker, script, lists: Vec::new(), out: VecDeque::new(), cookie: None, last: None })
    }

    /// Sends `payload`, a tracker request with the cookie in place of its sequence number.
    fn send(&mut self, payload: Vec<u8>) {
        let with_cookie = match Repr::parse(&payload) {
            Ok(Repr { seq, message: m @ (Message::Register(_) | Message::Query(_) | Message::Leave(_)) }) => {
                let seq = self.cookie.unwrap_or(seq);
                if let Message::Register(r) = m {
                    self.last = Some((seq, r));
                }
                Some(Repr::new(seq, m).to_vec())
            }
            _ => None,
        };
        self.out.push_back(Transmit { dst: self.tracker, payload: with_cookie.unwrap_or(payload) });
    }

    /// Only the lists that answered a request with a valid cookie.
    fn verified(&self) -> impl Iterator<Item = &(Micros, PeerList)> {
        self.lists.iter().filter(|(_, l)| l.verified)
    }
}

impl Node for FakePeer {
    fn local_addr(&self) -> SocketAddr {
        self.addr
    }
    fn handle_datagram(&mut self, now: Micros, _from: SocketAddr, data: &[u8]) {
        if let Ok(Repr { message: Message::PeerList(l), .. }) = Repr::parse(data) {
            self.cookie = Some(l.cookie);
            if let Some((seq, r)) = self.last.filter(|(seq, _)| !l.verified && *seq != l.cookie) {
                self.send(Repr::new(seq, Message::Register(r)).to_vec());
            }
            self.lists.push((now, l));
        }
    }
    fn handle_timeout(&mut self, now: Micros) {
        while self.script.front().is_some_and(|(t, _)| *t <= now) {
            let (_, payload) = self.script.pop_front().unwrap();
            self.send(payload);
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

    // What registered peers were listed with, and what the querying one got.
    let lists =
        |i| net.get::<FakePeer>(p(i)).unwrap().verified().map(|(t, l)| (*t / SECOND, set(l))).collect::<Vec<_>>();
    let answers =
        |i| net.get::<FakePeer>(p(i)).unwrap().lists.iter().map(|(t, l)| (*t / SECOND, set(l))).collect::<Vec<_>>();
    let s = |v: &[u32]| v.iter().map(|&i| v4(i)).collect::<HashSet<_>>();
    // Peer 1 first sees nobody, then peers 2 and 3.
    assert_eq!(lists(1), [(0, s(&[])), (60, s(&[2, 3])), (120, s(&[2, 3]))]);
    assert_eq!(lists(2), [(5, s(&[1]))]);
    // At 150 s peer 2 (registered at 5 s) has expired at 125 s; so has peer 3 (10 s -> 130 s).
    assert_eq!(answers(4), [(150, s(&[1])), (250, s(&[3]))]);
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
    // Each first register proved nothing yet, and so did peer 3's with a cookie 180 s old.
    assert_eq!(st.challenges, 4);
    assert_eq!(st.drops.total(), 1);
    assert_eq!(net.stats().unroutable, 0);
}

/// How long after `sent` the registration sent then was listed (from the tracker's register
/// event time): one trip, or three when the client first had to fetch its cookie.
fn net_delay(events: &[(Micros, Event)], sent: Micros) -> Micros {
    let arrived = events
        .iter()
        .find(|(t, e)| matches!(e, Event::TrackerRegister { .. }) && *t >= sent && *t - sent <= 100_000)
        .map(|(t, _)| *t)
        .expect("a registration arrived within the link delay");
    arrived - sent
}
