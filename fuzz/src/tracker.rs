//! The `tracker` target: one tracker core with small caps fed a program of registrations,
//! queries, leaves, stray and garbage datagrams from 64 addresses (two ports per IP, an IPv6
//! and an IPv4-mapped source, the tracker's own address) and floods from addresses never
//! seen before, with timers and time passing.
//!
//! Clients prove their address as peers do: a request's sequence number can be the cookie of
//! the tracker's last answer to that address (`Seq::Cookie`), and a flood can send each
//! request again with the cookie its answer brought, so that registrations get listed.
//!
//! Invariants, after every step: no panic; every datagram the tracker sends decodes as a peer
//! list and goes to the sender of the datagram being handled, never to the tracker's own
//! address (`self`); it echoes the request's sequence number (its query id), matches its
//! `TrackerReply` event and holds at most `min(want, list_size, 200)` distinct peers of the
//! asked channel that are registered and unexpired, never the asker's own entry; an answer
//! that is not `verified` holds at most 6 peers (57 bytes), and a register's answer is
//! `verified` exactly when the register was listed (`TrackerRegister`); the ground truth
//! replays into a table (`TrackerRegister` new exactly when absent, `TrackerExpire` only of
//! present entries, by TTL only once it ran out) that agrees with [`Tracker::stats`]; tables
//! stay within `max_channels`, `max_entries` and `max_rate_sources`; nothing outlives its TTL
//! past a step; an address that never proved a round trip (no registration accepted, no
//! `verified` answer) gets at most 3x the bytes it sent (`amplification`); after a wake-up at
//! its deadline the next deadline is later (`progress`); live heap stays within 8 MiB.

use std::collections::{HashSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use arbitrary::Arbitrary;
use soplab_node::{Event, Micros, Node, SECOND, Transmit};
use soplab_tracker::{Config, Tracker};
use soplab_wire::{
    COOKIE_MASK, Hello, Leave, MAX_PEER_LIST, Message, PeerList, Query, Register, Repr, Role, size,
    video::MAX_BLOCKS_PER_REQUEST,
};

use crate::check::{FxMap, Ledger, invariant};
use crate::drive::{Drive, Patch};

pub const ADDR: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 3900));
/// Addresses programs pick from by index.
const POOL: u8 = 64;
/// Budgets that keep a program to a fraction of a millisecond: a few hundred datagrams fill
/// every table (4 channels of 24 entries, 48 rate buckets), so 1,200 reach every cap with room
/// to spare. (They were 4,000 and 512: the record run spent most of its time on datagrams past
/// the caps, at about 1,000 programs a second.)
const MAX_DATAGRAMS: u32 = 1_200;
const MAX_FLOOD: u16 = 128;
const MAX_WAKEUPS: u32 = 500;
/// Live heap allowed above the start: the capped tables are a few kilobytes; this is mostly
/// the harness's own ledger of flood addresses.
const HEAP_BUDGET: usize = 8 << 20;
/// Most peers in an answer to a request without the asker's cookie: a list of 21 + 6k bytes
/// within 3x the 20-byte request (docs/PROTOCOL.md, "Cookies and query ids").
const UNVERIFIED_MAX: usize = 6;

/// Pool address `i` (mod 64).
fn pool(i: u8) -> SocketAddr {
    match i % POOL {
        0 => ADDR,
        1 => SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 9), 4000, 0, 0)),
        2 => SocketAddr::V6(SocketAddrV6::new(Ipv4Addr::new(198, 18, 2, 5).to_ipv6_mapped(), 3908, 0, 0)),
        k => SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 2, k / 2)), 3908 + u16::from(k % 2)),
    }
}

fn fresh(n: u32) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 19, (n >> 8) as u8, n as u8)), 3908u16.wrapping_add((n >> 16) as u16))
}

/// The entry address the tracker keys a request from `from` naming `port` by (its rule: the
/// source IP, IPv4-mapped taken as IPv4, and the named port, 0 meaning the source port).
fn entry(from: SocketAddr, port: u16) -> Option<SocketAddrV4> {
    let ip = match from.ip() {
        IpAddr::V4(ip) => ip,
        IpAddr::V6(ip) => ip.to_ipv4_mapped()?,
    };
    Some(SocketAddrV4::new(ip, if port == 0 { from.port() } else { port }))
}

#[derive(Arbitrary, Debug)]
pub struct Setup {
    kind: u8,
    ttl_s: u8,
    seed: u8,
}

impl Setup {
    /// Small caps, so that programs reach them: 4 channels of 24 entries, 48 rate buckets.
    /// Bit 0 of `kind`: the 15-minute TTL (else 1-256 s); bit 1: no rate limit.
    fn config(&self) -> Config {
        Config {
            ttl: if self.kind & 1 == 1 { 15 * 60 * SECOND } else { (1 + Micros::from(self.ttl_s)) * SECOND },
            list_size: 50,
            max_entries: 24,
            max_channels: 4,
            rate: if self.kind & 2 == 2 { 0 } else { 20 },
            burst: 40,
            max_rate_sources: 48,
            sweep_interval: 10 * SECOND,
            seed: u64::from(self.seed),
            ..Config::new(ADDR)
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Chan {
    /// Channels 1-6 (more than the 4 allowed).
    Small(u8),
    Lit(u32),
}

impl Chan {
    fn get(self) -> u32 {
        match self {
            Chan::Small(c) => 1 + u32::from(c % 6),
            Chan::Lit(c) => c,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Port {
    /// 0: "my source port".
    Zero,
    Same,
    Lit(u16),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Seq {
    Zero,
    /// The sequence number of the tracker's last datagram to this address (the query id it
    /// echoed).
    Echo,
    /// The cookie of the tracker's last answer to this address: the request proves it.
    Cookie,
    Lit(u32),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Msg {
    Register {
        source: bool,
        channel: Chan,
        port: Port,
        want: u16,
    },
    Query {
        channel: Chan,
        port: Port,
        want: u16,
    },
    Leave {
        source: bool,
        channel: Chan,
        port: Port,
    },
    /// A peer's datagram or a peer list, which the tracker never takes.
    Stray {
        kind: u8,
        channel: Chan,
    },
}

#[derive(Arbitrary, Debug)]
pub enum Op {
    Send {
        from: u8,
        seq: Seq,
        msg: Msg,
        patch: Option<Patch>,
    },
    Raw {
        from: u8,
        bytes: Vec<u8>,
    },
    /// `n` datagrams, each from an address never seen before, and (`prove`) each sent
    /// again with the cookie of its answer.
    Flood {
        msg: Msg,
        n: u16,
        prove: bool,
    },
    /// Lets `ms` milliseconds pass (up to about 71 minutes), running every timer due.
    Advance {
        ms: u32,
    },
    /// Runs the next timer.
    Timeout,
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
}

/// The request being handled: who sent it, and what it asks.
#[derive(Debug, Clone, Copy)]
struct Asking {
    from: SocketAddr,
    /// Its sequence number, which the answer echoes.
    seq: u32,
    /// A register (else a query).
    register: bool,
    channel: u32,
    want: u16,
    /// The asker's own entry, which its list must leave out.
    own: Option<SocketAddrV4>,
}

/// The tracker's last datagram to an address.
#[derive(Debug)]
struct Last {
    payload: Vec<u8>,
    seq: u32,
    /// The cookie it carried.
    cookie: u32,
}

pub struct Harness {
    core: Tracker,
    cfg: Config,
    now: Micros,
    datagrams: u32,
    wakeups: u32,
    fresh: u32,
    /// (channel, entry) -> when last registered, replayed from the events.
    table: FxMap<(u32, SocketAddrV4), Micros>,
    /// `TrackerReply` events whose peer list has not been seen yet.
    replies: VecDeque<(SocketAddr, u32, u32)>,
    asking: Option<Asking>,
    /// Whether the datagram being handled registered its sender (`TrackerRegister`).
    listed_now: bool,
    ledger: Ledger,
    /// The last datagram sent to each address.
    last: FxMap<SocketAddr, Last>,
    heap_base: Option<isize>,
    reached: TrackerReached,
}

/// Counts of what a program reached (for the harness's own tests).
#[derive(Debug, Default, Clone, Copy)]
pub struct TrackerReached {
    pub registered: u32,
    pub listed: u32,
    pub expired: u32,
    pub left: u32,
}

impl Harness {
    pub fn new(setup: &Setup) -> Harness {
        let cfg = setup.config();
        let mut h = Harness {
            core: Tracker::new(cfg.clone()),
            cfg,
            now: 0,
            datagrams: 0,
            wakeups: 0,
            fresh: 0,
            table: FxMap::default(),
            replies: VecDeque::new(),
            asking: None,
            listed_now: false,
            ledger: Ledger::default(),
            last: FxMap::default(),
            heap_base: None,
            reached: TrackerReached::default(),
        };
        h.heap_base = crate::alloc::installed().then(crate::alloc::live);
        h
    }

    pub fn reached(&self) -> TrackerReached {
        self.reached
    }

    pub fn apply(&mut self, op: Op) {
        match op {
            Op::Send { from, seq, msg, patch } => {
                let from = pool(from);
                let bytes = self.build(from, seq, msg, patch);
                self.deliver(from, &bytes);
            }
            Op::Raw { from, bytes } => self.deliver(pool(from), &bytes),
            Op::Flood { msg, n, prove } => {
                for _ in 0..n.min(MAX_FLOOD) {
                    let from = fresh(self.fresh);
                    self.fresh = self.fresh.wrapping_add(1);
                    let bytes = self.build(from, Seq::Zero, msg, None);
                    self.deliver(from, &bytes);
                    if prove && self.last.contains_key(&from) {
                        let bytes = self.build(from, Seq::Cookie, msg, None);
                        self.deliver(from, &bytes);
                    }
                }
            }
            Op::Advance { ms } => self.advance(Micros::from(ms.min(1 << 22)) * 1_000),
            Op::Timeout => self.next_timer(),
        }
    }

    fn build(&self, from: SocketAddr, seq: Seq, msg: Msg, patch: Option<Patch>) -> Vec<u8> {
        let last = self.last.get(&from);
        let seq = match seq {
            Seq::Zero => 0,
            Seq::Echo => last.map_or(0, |l| l.seq),
            Seq::Cookie => last.map_or(0, |l| l.cookie),
            Seq::Lit(s) => s & COOKIE_MASK,
        };
        let role = |source: bool| if source { Role::Source } else { Role::Peer };
        let port = |p: Port| match p {
            Port::Zero => 0,
            Port::Same => from.port(),
            Port::Lit(p) => p,
        };
        let message = match msg {
            Msg::Register { source, channel, port: p, want } => {
                Message::Register(Register { role: role(source), channel: channel.get(), listen_port: port(p), want })
            }
            Msg::Query { channel, port: p, want } => {
                Message::Query(Query { channel: channel.get(), listen_port: port(p), want })
            }
            Msg::Leave { source, channel, port: p } => {
                Message::Leave(Leave { role: role(source), channel: channel.get(), listen_port: port(p) })
            }
            Msg::Stray { kind, channel } => stray(kind, channel.get()),
        };
        let mut bytes = Repr::new(seq, message).to_vec();
        if let (Some(p), Some(last)) = (patch, last) {
            p.apply(&last.payload, &mut bytes);
        }
        bytes
    }

    fn deliver(&mut self, from: SocketAddr, bytes: &[u8]) {
        if self.datagrams >= MAX_DATAGRAMS {
            return;
        }
        self.datagrams += 1;
        self.ledger.got(from, bytes.len());
        self.asking = asking(from, bytes);
        self.listed_now = false;
        self.core.handle_datagram(self.now, from, bytes);
        self.settle();
        self.ledger.check(from);
        self.asking = None;
    }

    fn event(&mut self, e: Event) {
        let now = self.now;
        match e {
            Event::TrackerRegister { peer, channel, new } => {
                let key = (channel, v4(peer));
                let present = self.table.insert(key, now).is_some();
                invariant("table", new != present, || {
                    format!("register of {peer} on {channel}: new {new}, present {present}")
                });
                let asking = self.asking;
                invariant("table", asking.is_some_and(|a| a.register), || {
                    format!("register of {peer} on {channel} while handling {asking:?}")
                });
                if let Some(a) = asking {
                    self.ledger.prove(a.from);
                }
                self.listed_now = true;
                self.reached.registered += 1;
            }
            Event::TrackerExpire { peer, channel, leave } => {
                let at = self.table.remove(&(channel, v4(peer)));
                let ttl = self.cfg.ttl;
                invariant("table", at.is_some_and(|t| leave || now >= t.saturating_add(ttl)), || {
                    format!("{peer} on {channel} removed (leave {leave}) at {now}, registered at {at:?}, ttl {ttl}")
                });
                if leave {
                    self.reached.left += 1;
                } else {
                    self.reached.expired += 1;
                }
            }
            Event::TrackerReply { peer, channel, peers } => self.replies.push_back((peer, channel, peers)),
            Event::Dropped { .. } => {}
            #[allow(unreachable_patterns)]
            e => invariant("events", matches!(e, Event::Dropped { .. }), || format!("the tracker logged {e:?}")),
        }
    }

    fn transmit(&mut self, t: Transmit) {
        let Transmit { dst, payload } = t;
        invariant("self", dst != self.cfg.addr, || format!("a datagram to the tracker's own address {dst}"));
        self.ledger.sent(dst, payload.len(), false);
        let asking = self.asking.filter(|a| a.from == dst);
        invariant("reply", asking.is_some(), || {
            format!("a datagram to {dst}, which is not the asker {:?}", self.asking)
        });
        let repr = Repr::parse(&payload);
        let (list, seq) = match repr {
            Ok(Repr { message: Message::PeerList(l), seq }) => {
                self.last.insert(dst, Last { payload: payload.clone(), seq, cookie: l.cookie });
                (l, seq)
            }
            other => return invariant("decode", false, || format!("the tracker sent {dst} {other:?}")),
        };
        if list.verified {
            // The request carried the cookie of an earlier answer: a round trip.
            self.ledger.prove(dst);
        }
        let logged = self.replies.pop_front();
        let n = list.peers.len() as u32;
        invariant("replies", logged == Some((dst, list.channel, n)), || {
            format!("a list of {n} on {} to {dst}, logged {logged:?}", list.channel)
        });
        if let Some(a) = asking {
            invariant("reply", seq == a.seq, || format!("an answer with seq {seq} to {a:?}"));
            self.check_list(a, &list);
        }
        self.reached.listed += n;
    }

    fn check_list(&self, a: Asking, list: &PeerList) {
        let cap = usize::from(a.want).min(self.cfg.list_size).min(MAX_PEER_LIST);
        let distinct: HashSet<&SocketAddrV4> = list.peers.iter().collect();
        invariant(
            "list",
            list.channel == a.channel && list.peers.len() <= cap && distinct.len() == list.peers.len(),
            || format!("{list:?} for {a:?} (at most {cap} distinct peers)"),
        );
        invariant("list", list.verified || list.peers.len() <= UNVERIFIED_MAX, || {
            format!("{} peers in an answer to {a:?}, which did not prove its address", list.peers.len())
        });
        invariant("list", !a.register || list.verified == self.listed_now, || {
            format!("a register answered verified {}, listed {}: {a:?}", list.verified, self.listed_now)
        });
        let ttl = self.cfg.ttl;
        for p in &list.peers {
            let at = self.table.get(&(a.channel, *p));
            invariant("list", Some(*p) != a.own && at.is_some_and(|t| self.now < t.saturating_add(ttl)), || {
                format!(
                    "{p} listed to {a:?}: its own entry, or not registered and unexpired ({at:?}, now {})",
                    self.now
                )
            });
        }
    }

    fn check(&self) {
        let s = self.core.stats();
        let mut channels: FxMap<u32, usize> = FxMap::default();
        for &(c, _) in self.table.keys() {
            *channels.entry(c).or_default() += 1;
        }
        invariant("table", s.entries == self.table.len() as u64 && s.channels == channels.len() as u64, || {
            format!("stats {s:?}, events say {} entries on {} channels", self.table.len(), channels.len())
        });
        invariant(
            "caps",
            channels.len() <= self.cfg.max_channels
                && channels.values().all(|&n| n <= self.cfg.max_entries)
                && s.rate_sources <= self.cfg.max_rate_sources as u64,
            || format!("stats {s:?} over the caps of {:?}", self.cfg),
        );
        let ttl = self.cfg.ttl;
        invariant("ttl", self.table.values().all(|&t| self.now < t.saturating_add(ttl)), || {
            format!("an entry outlived its TTL at {}", self.now)
        });
        if let Some(base) = self.heap_base {
            let used = crate::alloc::live().wrapping_sub(base);
            invariant("memory", used <= HEAP_BUDGET as isize, || {
                format!("{used} heap bytes live, budget {HEAP_BUDGET}")
            });
        }
    }
}

impl Drive for Harness {
    type Core = Tracker;

    fn core(&mut self) -> &mut Tracker {
        &mut self.core
    }

    fn clock(&mut self) -> &mut Micros {
        &mut self.now
    }

    fn wakeups(&mut self) -> (&mut u32, u32) {
        (&mut self.wakeups, MAX_WAKEUPS)
    }

    /// Drains the tracker's output into the model, which checks it.
    fn settle(&mut self) {
        while let Some(e) = self.core.poll_event() {
            self.event(e);
        }
        while let Some(t) = self.core.poll_transmit(self.now) {
            self.transmit(t);
        }
        invariant("replies", self.replies.is_empty(), || format!("replies logged, never sent: {:?}", self.replies));
        self.check();
    }
}

fn v4(a: SocketAddr) -> SocketAddrV4 {
    match a {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(a) => SocketAddrV4::new(a.ip().to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED), a.port()),
    }
}

/// What a datagram from `from` asks of the tracker, if it asks for a list.
fn asking(from: SocketAddr, bytes: &[u8]) -> Option<Asking> {
    let repr = Repr::parse(bytes).ok()?;
    let (register, channel, want, port) = match repr.message {
        Message::Register(r) => (true, r.channel, r.want, r.listen_port),
        Message::Query(q) => (false, q.channel, q.want, q.listen_port),
        // A leave gets no answer: a list to its sender is a bug the `reply` check catches.
        _ => return None,
    };
    Some(Asking { from, seq: repr.seq, register, channel, want, own: entry(from, port) })
}

/// A datagram a tracker never takes: a peer's HELLO, a request-sized peer packet, a peer list.
fn stray(kind: u8, channel: u32) -> Message<'static> {
    match kind % 3 {
        0 => Message::Hello(Hello { role: Role::Peer, nonce: 1, channel, listen_port: 3908, newest: None }),
        1 => Message::Request(soplab_wire::Request {
            request: 1,
            first_block: 0,
            count: MAX_BLOCKS_PER_REQUEST,
            channel,
            token: 0,
        }),
        _ => {
            let peers = vec![SocketAddrV4::new(Ipv4Addr::new(198, 18, 2, 9), 3908); usize::from(kind) % 4];
            debug_assert!(PeerList::size_for(peers.len()) <= size::VIDEO_MAX);
            Message::PeerList(PeerList { channel, verified: true, cookie: 1, peers })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{PENDING, tolerate};

    fn harness(kind: u8) -> Harness {
        tolerate(PENDING);
        Harness::new(&Setup { kind, ttl_s: 30, seed: 1 })
    }

    fn register(from: u8, seq: Seq) -> Op {
        let msg = Msg::Register { source: false, channel: Chan::Small(0), port: Port::Same, want: 50 };
        Op::Send { from, seq, msg, patch: None }
    }

    #[test]
    fn registrations_get_lists_then_leave_or_expire() {
        let mut h = harness(0);
        for from in 3..40 {
            // The first register only gets the cookie; the second, echoing it, is listed.
            h.apply(register(from, Seq::Zero));
            h.apply(register(from, Seq::Cookie));
            h.apply(Op::Advance { ms: 100 });
        }
        let r = h.reached();
        assert_eq!(r.left, 0, "{r:?}");
        // Without the cookie, a leave is dropped; with it, the entry goes.
        let leave = Msg::Leave { source: false, channel: Chan::Small(0), port: Port::Same };
        h.apply(Op::Send { from: 3, seq: Seq::Zero, msg: leave, patch: None });
        assert_eq!(h.reached().left, 0);
        h.apply(Op::Send { from: 3, seq: Seq::Cookie, msg: leave, patch: None });
        let query = Msg::Query { channel: Chan::Small(0), port: Port::Same, want: 10 };
        h.apply(Op::Send { from: 4, seq: Seq::Cookie, msg: query, patch: None });
        h.apply(Op::Advance { ms: 60_000 });
        let r = h.reached();
        // 24 entries fit a channel; the 37 registrations beyond fill it.
        assert!(r.registered >= 24 && r.listed >= 200 && r.left == 1 && r.expired >= 20, "{r:?}");
    }

    #[test]
    fn registers_without_the_cookie_list_nobody() {
        let mut h = harness(0);
        for from in 3..40 {
            h.apply(register(from, Seq::Zero));
            h.apply(register(from, Seq::Echo));
        }
        let r = h.reached();
        assert!(r.registered == 0 && r.listed == 0, "{r:?}");
    }

    #[test]
    fn floods_fill_every_table_to_its_cap_and_no_further() {
        for kind in 0..4 {
            let mut h = harness(kind);
            for channel in 0..6 {
                let msg = Msg::Register { source: false, channel: Chan::Small(channel), port: Port::Zero, want: 200 };
                h.apply(Op::Flood { msg, n: 512, prove: true });
                h.apply(Op::Advance { ms: 500 });
            }
            h.apply(Op::Advance { ms: 20 * 60_000 });
            assert!(h.reached().registered >= 4 * 24, "{:?}", h.reached());
        }
    }

    #[test]
    fn random_programs_keep_every_invariant() {
        tolerate(PENDING);
        for data in crate::drive::inputs(0x7ac, 400) {
            run(&data);
        }
    }
}
