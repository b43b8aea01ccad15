//! `soplab-tracker`: the bootstrap server of a soplab swarm, SopCast's "tracker".
//!
//! A joining peer (or the source provider) sends a [`Register`] for its channel and gets back a
//! [`PeerList`]: a uniformly random subset of the *other* peers registered on that channel,
//! which it then dials with HELLOs. Borges et al. describe SopCast's server this way: a joining
//! client gets a random subset of active clients; departures are not announced, and the server
//! purges them slowly, so lists hold stale addresses. soplab's tracker reproduces that: an
//! entry lives [`Config::ttl`] (15 minutes by default) after its last registration unless an
//! explicit [`Leave`] removes it at once; a crashed peer sends nothing and stays listed until
//! its entry expires.
//!
//! [`Tracker`] is a sans-IO core implementing [`soplab_node::Node`]: it owns no socket and reads
//! no clock, and draws its randomness from a [`Pcg64Mcg`] seeded with [`Config::seed`], so the
//! same inputs at the same times give the same lists. The `soplab-tracker` binary runs it over
//! UDP with [`soplab_shell::run`]; tests run it in [`soplab_node::sim::Network`].
//!
//! # Protocol
//!
//! | request | effect | answer |
//! |---|---|---|
//! | `Register { channel, listen_port, want }` | adds or refreshes the entry `(source IP, listen_port)` | `PeerList` |
//! | `Query { channel, listen_port, want }` | none | `PeerList` |
//! | `Leave { channel, listen_port }` | removes the entry `(source IP, listen_port)` | none |
//!
//! The entry is keyed by the datagram's source IP and the port in the message, the address
//! other peers should contact (a `listen_port` of 0 means "my source port"). A list holds
//! `min(want, list_size, MAX_PEER_LIST)` entries (fewer if the channel has fewer), never the
//! asker's own entry, and `registered` gives the channel's entry count. The reply goes to the
//! datagram's source address and echoes the request's sequence number, so a client can match
//! answers to requests.
//!
//! Peer lists carry IPv4 addresses only: an IPv4-mapped IPv6 source is taken as IPv4, and a
//! registration from any other IPv6 source is dropped as [`DropReason::UnexpectedMessage`].
//!
//! # Bounds and drops
//!
//! Memory is bounded: at most [`Config::max_channels`] channels of at most
//! [`Config::max_entries`] entries each (a registration that would exceed either is dropped
//! without an answer, [`DropReason::TableFull`]), and a rate-limit table of at most
//! [`Config::max_rate_sources`] token buckets. Each source IP may send [`Config::rate`]
//! datagrams per second with bursts of [`Config::burst`]; the excess is dropped
//! ([`DropReason::RateLimited`]) before it is even decoded. Bytes that do not decode are
//! [`DropReason::Undecodable`]; valid soplab datagrams that are not tracker requests (peer
//! traffic, a peer list) are [`DropReason::UnexpectedMessage`]. Every drop raises
//! [`Event::Dropped`] and is counted in [`Tracker::stats`].
//!
//! # Ground truth
//!
//! [`Event::TrackerRegister`] (`peer` = the entry's address, `new` = not a refresh),
//! [`Event::TrackerReply`] (`peer` = where the list was sent, `peers` = its length),
//! [`Event::TrackerExpire`] (`leave` = removed by a `Leave`, else by TTL), [`Event::Dropped`].

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

use rand::SeedableRng;
use rand_pcg::Pcg64Mcg;
use serde::{Deserialize, Serialize};
use soplab_node::{DropReason, Event, Micros, Node, SECOND, Secret, Transmit};
use soplab_rundir::plan::TRACKER_PORT;
use soplab_wire::{Leave, MAX_PEER_LIST, Message, PeerList, Query, Register, Repr};

pub mod daemon;
mod ratelimit;
mod table;

use ratelimit::RateLimiter;
use table::{Full, Table};

/// Address the tracker listens on by default.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), TRACKER_PORT);
/// Default entry lifetime after its last registration: 15 minutes. Borges et al. saw departed
/// clients linger in peer lists because departures go unannounced and the server purges slowly.
pub const DEFAULT_TTL: Micros = 15 * 60 * SECOND;
/// Default most peers in one list.
pub const DEFAULT_LIST_SIZE: usize = 50;
/// Default most entries per channel.
pub const DEFAULT_MAX_ENTRIES: usize = 10_000;
/// Default most channels.
pub const DEFAULT_MAX_CHANNELS: usize = 64;
/// Default datagrams per second per source IP.
pub const DEFAULT_RATE: u32 = 20;
/// Default burst (datagrams) per source IP.
pub const DEFAULT_BURST: u32 = 40;
/// Default most source IPs tracked by the rate limiter.
pub const DEFAULT_MAX_RATE_SOURCES: usize = 16_384;
/// Default period of the sweep that forgets idle rate-limit buckets.
pub const DEFAULT_SWEEP_INTERVAL: Micros = 10 * SECOND;

/// Tracker settings. [`Config::new`] gives the defaults. Serde, for the daemon's `--config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// The address the tracker is reached at (its [`Node::local_addr`]).
    pub addr: SocketAddr,
    /// Lifetime of an entry after its last registration.
    pub ttl: Micros,
    /// Most peers in one list (also capped by the request's `want` and [`MAX_PEER_LIST`]).
    pub list_size: usize,
    /// Most entries per channel.
    pub max_entries: usize,
    /// Most channels.
    pub max_channels: usize,
    /// Datagrams per second allowed per source IP; 0 turns rate limiting off.
    pub rate: u32,
    /// Datagrams a source IP may send at once after being quiet.
    pub burst: u32,
    /// Most source IPs the rate limiter remembers.
    pub max_rate_sources: usize,
    /// How often idle rate-limit buckets are forgotten.
    pub sweep_interval: Micros,
    /// Seed of the [`Pcg64Mcg`] that picks peer-list subsets.
    pub seed: u64,
}

impl Config {
    /// The defaults, reached at `addr`.
    pub fn new(addr: SocketAddr) -> Config {
        Config {
            addr,
            ttl: DEFAULT_TTL,
            list_size: DEFAULT_LIST_SIZE,
            max_entries: DEFAULT_MAX_ENTRIES,
            max_channels: DEFAULT_MAX_CHANNELS,
            rate: DEFAULT_RATE,
            burst: DEFAULT_BURST,
            max_rate_sources: DEFAULT_MAX_RATE_SOURCES,
            sweep_interval: DEFAULT_SWEEP_INTERVAL,
            seed: 0,
        }
    }
}

impl Default for Config {
    fn default() -> Config {
        Config::new(DEFAULT_LISTEN)
    }
}

/// Inputs dropped, by [`DropReason`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drops {
    pub undecodable: u64,
    pub unexpected_message: u64,
    pub rate_limited: u64,
    pub table_full: u64,
}

impl Drops {
    /// All drops.
    pub fn total(&self) -> u64 {
        self.undecodable + self.unexpected_message + self.rate_limited + self.table_full
    }

    /// The counter for `reason` (0 for reasons the tracker never uses).
    pub fn get(&self, reason: DropReason) -> u64 {
        match reason {
            DropReason::Undecodable => self.undecodable,
            DropReason::UnexpectedMessage => self.unexpected_message,
            DropReason::RateLimited => self.rate_limited,
            DropReason::TableFull => self.table_full,
            _ => 0,
        }
    }

    fn count(&mut self, reason: DropReason) {
        match reason {
            DropReason::Undecodable => self.undecodable += 1,
            DropReason::UnexpectedMessage => self.unexpected_message += 1,
            DropReason::RateLimited => self.rate_limited += 1,
            DropReason::TableFull => self.table_full += 1,
            other => unreachable!("the tracker never drops for {other:?}"),
        }
    }
}

/// What the tracker has done so far ([`Tracker::stats`]). Counters only grow; `entries`,
/// `channels` and `rate_sources` are the current sizes of the tables.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Datagrams received (including dropped ones).
    pub datagrams: u64,
    /// Registrations accepted: new entries plus refreshes.
    pub registrations: u64,
    /// Registrations that created an entry.
    pub new_entries: u64,
    /// Queries answered.
    pub queries: u64,
    /// Entries removed by a `Leave`.
    pub leaves: u64,
    /// Peer lists sent.
    pub replies: u64,
    /// Addresses sent in all peer lists.
    pub peers_listed: u64,
    /// Entries removed because their TTL ran out.
    pub expiries: u64,
    /// Rate-limit buckets evicted to make room (the table was at its bound).
    pub rate_evictions: u64,
    /// Entries held now, all channels.
    pub entries: u64,
    /// Channels with at least one entry now.
    pub channels: u64,
    /// Source IPs the rate limiter holds now.
    pub rate_sources: u64,
    /// Inputs dropped, by reason.
    pub drops: Drops,
}

/// The tracker's sans-IO core; see the [crate docs](crate).
#[derive(Debug)]
pub struct Tracker {
    config: Config,
    table: Table,
    limiter: RateLimiter,
    rng: Pcg64Mcg,
    /// Keys what must be unguessable to others: from the OS in the daemon
    /// ([`Tracker::with_secret`]), from `config.seed` otherwise.
    secret: Secret,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: Stats,
    /// Reused list of sampled addresses (its allocation survives from reply to reply).
    scratch: Vec<SocketAddrV4>,
}

impl Tracker {
    pub fn new(config: Config) -> Tracker {
        Tracker {
            table: Table::new(config.max_entries, config.max_channels),
            limiter: RateLimiter::new(config.rate, config.burst, config.max_rate_sources, config.sweep_interval),
            rng: Pcg64Mcg::seed_from_u64(config.seed),
            secret: Secret::from_seed(config.seed),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            scratch: Vec::new(),
            config,
        }
    }

    /// Replaces the seed-derived secret; the daemon gives [`Secret::from_os`], so that nothing
    /// the tracker hands out can be derived from the swarm's (published) seeds.
    pub fn with_secret(mut self, secret: Secret) -> Tracker {
        self.secret = secret;
        self
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Counters so far and current table sizes.
    pub fn stats(&self) -> Stats {
        Stats {
            entries: self.table.total() as u64,
            channels: self.table.channels() as u64,
            rate_sources: self.limiter.len() as u64,
            ..self.stats
        }
    }

    /// Entries registered on `channel` now.
    pub fn entries(&self, channel: u32) -> usize {
        self.table.len(channel)
    }

    fn drop_input(&mut self, from: SocketAddr, reason: DropReason) {
        self.stats.drops.count(reason);
        self.events.push_back(Event::Dropped { from, reason });
    }

    fn expire(&mut self, now: Micros) {
        let (stats, events) = (&mut self.stats, &mut self.events);
        self.table.expire(now, |channel, addr| {
            stats.expiries += 1;
            events.push_back(Event::TrackerExpire { peer: addr.into(), channel, leave: false });
        });
    }

    fn register(&mut self, now: Micros, from: SocketAddr, seq: u32, r: Register) {
        let Some(key) = entry_addr(from, r.listen_port) else {
            self.drop_input(from, DropReason::UnexpectedMessage);
            return;
        };
        match self.table.upsert(r.channel, key, now.saturating_add(self.config.ttl)) {
            Ok(new) => {
                self.stats.registrations += 1;
                self.stats.new_entries += u64::from(new);
                self.events.push_back(Event::TrackerRegister { peer: key.into(), channel: r.channel, new });
                self.reply(from, seq, r.channel, Some(key), r.want);
            }
            Err(Full::Entries | Full::Channels) => self.drop_input(from, DropReason::TableFull),
        }
    }

    fn query(&mut self, from: SocketAddr, seq: u32, q: Query) {
        self.stats.queries += 1;
        self.reply(from, seq, q.channel, entry_addr(from, q.listen_port), q.want);
    }

    fn leave(&mut self, from: SocketAddr, l: Leave) {
        if let Some(key) = entry_addr(from, l.listen_port)
            && self.table.remove(l.channel, key)
        {
            self.stats.leaves += 1;
            self.events.push_back(Event::TrackerExpire { peer: key.into(), channel: l.channel, leave: true });
        }
    }

    fn reply(&mut self, to: SocketAddr, seq: u32, channel: u32, exclude: Option<SocketAddrV4>, want: u16) {
        let k = usize::from(want).min(self.config.list_size).min(MAX_PEER_LIST);
        let mut peers = std::mem::take(&mut self.scratch);
        peers.clear();
        self.table.sample(channel, exclude, k, &mut self.rng, &mut peers);
        let n = peers.len() as u32;
        let repr = Repr::new(seq, Message::PeerList(PeerList { channel, verified: true, cookie: 0, peers }));
        self.transmits.push_back(Transmit { dst: to, payload: repr.to_vec() });
        if let Message::PeerList(list) = repr.message {
            self.scratch = list.peers;
        }
        self.stats.replies += 1;
        self.stats.peers_listed += u64::from(n);
        self.events.push_back(Event::TrackerReply { peer: to, channel, peers: n });
    }
}

/// The entry address for a datagram from `from` naming `listen_port` (0: the source port).
/// `None` for an IPv6 source, which a peer list cannot carry.
fn entry_addr(from: SocketAddr, listen_port: u16) -> Option<SocketAddrV4> {
    let ip = match from.ip() {
        IpAddr::V4(ip) => ip,
        IpAddr::V6(ip) => ip.to_ipv4_mapped()?,
    };
    let port = if listen_port == 0 { from.port() } else { listen_port };
    Some(SocketAddrV4::new(ip, port))
}

impl Node for Tracker {
    fn local_addr(&self) -> SocketAddr {
        self.config.addr
    }

    fn handle_datagram(&mut self, now: Micros, from: SocketAddr, data: &[u8]) {
        self.stats.datagrams += 1;
        // Entries past their TTL are gone before anyone can be handed them.
        self.expire(now);
        let ip = match from.ip() {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        let verdict = self.limiter.allow(now, ip, &mut self.rng);
        self.stats.rate_evictions += u64::from(verdict.evicted);
        if !verdict.allowed {
            self.drop_input(from, DropReason::RateLimited);
            return;
        }
        let repr = match Repr::parse(data) {
            Ok(repr) => repr,
            Err(_) => {
                self.drop_input(from, DropReason::Undecodable);
                return;
            }
        };
        match repr.message {
            Message::Register(r) => self.register(now, from, repr.seq, r),
            Message::Query(q) => self.query(from, repr.seq, q),
            Message::Leave(l) => self.leave(from, l),
            _ => self.drop_input(from, DropReason::UnexpectedMessage),
        }
    }

    fn handle_timeout(&mut self, now: Micros) {
        self.expire(now);
        self.limiter.handle_timeout(now);
    }

    fn poll_transmit(&mut self, _now: Micros) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    fn poll_timeout(&self) -> Option<Micros> {
        match (self.table.next_expiry(), self.limiter.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests;
