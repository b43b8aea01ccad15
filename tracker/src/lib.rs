//! `soplab-tracker`: the bootstrap server of a soplab swarm, SopCast's "tracker".
//!
//! A joining peer (or the source provider) sends a [`Register`](soplab_wire::Register) for its
//! channel and gets back a [`PeerList`]: a uniformly random subset of the *other* peers
//! registered on that channel, which it then dials with HELLOs. Borges et al. describe
//! SopCast's server this way: a joining client gets a random subset of active clients;
//! departures are not announced, and the server purges them slowly, so lists hold stale
//! addresses. soplab's tracker reproduces that: an entry lives [`Config::ttl`] (15 minutes by
//! default) after its last registration unless an explicit [`Leave`](soplab_wire::Leave)
//! removes it at once; a crashed peer sends nothing and stays listed until its entry expires.
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
//! | `Register { channel, listen_port, want }`, seq = cookie | adds or refreshes the entry `(source IP, listen_port)` | `PeerList`, verified |
//! | `Register`, any other seq | none | `PeerList`, not verified, at most [`UNVERIFIED_LIST_MAX`] peers |
//! | `Query { channel, listen_port, want }` | none | `PeerList`, verified if seq = cookie |
//! | `Leave { channel, listen_port }`, seq = cookie | removes the entry `(source IP, listen_port)` | none |
//!
//! The entry is keyed by the datagram's source IP and the port in the message, the address
//! other peers should contact (a `listen_port` of 0 means "my source port"). A list holds
//! `min(want, list_size, MAX_PEER_LIST)` entries (fewer if the channel has fewer), never the
//! asker's own entry. The reply goes to the datagram's source address and echoes the request's
//! sequence number (the asker's query id), so a client can tell the answer to its request from
//! a list merely sent from the tracker's address.
//!
//! # Spoofed sources
//!
//! UDP does not authenticate a source address, so every answer carries a *cookie*: a keyed hash
//! ([`Secret::mac`]) of the source address, the channel, the listening port and the time
//! epoch ([`Config::cookie_epoch`]), cut to 24 bits. Only a host that receives what is sent to
//! the address learns it; it proves the round trip by sending it back as the sequence number
//! of its next request. The tracker lists only registrations that carry a valid cookie (of the
//! current or the previous epoch, so a cookie lives one to two epochs) and removes entries
//! only for leaves that carry one ([`DropReason::BadCookie`] otherwise). A request without one
//! is answered with at most [`UNVERIFIED_LIST_MAX`] peers, so that the bytes sent to an
//! address that proved nothing are at most [`MAX_AMPLIFICATION`] times the bytes it sent. The
//! cookie needs no state: spoofed requests cost nothing but their answers.
//!
//! Peer lists carry IPv4 addresses only: an IPv4-mapped IPv6 source is taken as IPv4, and a
//! registration from any other IPv6 source is dropped as [`DropReason::UnexpectedMessage`].
//!
//! # Bounds and drops
//!
//! Memory is bounded: at most [`Config::max_channels`] channels of at most
//! [`Config::max_entries`] entries each, and of these at most [`Config::max_entries_per_ip`]
//! entries in at most [`Config::max_channels_per_ip`] channels from one IP address (a
//! registration that would exceed any of them is dropped without an answer,
//! [`DropReason::TableFull`]), and a rate-limit table of at most
//! [`Config::max_rate_sources`] token buckets. Each source IP may send [`Config::rate`]
//! datagrams per second with bursts of [`Config::burst`]; the excess is dropped
//! ([`DropReason::RateLimited`]) before it is even decoded. Bytes that do not decode are
//! [`DropReason::Undecodable`]; valid soplab datagrams that are not tracker requests (peer
//! traffic, a peer list), and anything from the tracker's own address (spoofed), are
//! [`DropReason::UnexpectedMessage`]. Every drop raises
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
use soplab_wire::{ADDR_LEN, COOKIE_MASK, MAX_PEER_LIST, Message, PeerList, Repr, size};

pub mod daemon;
mod ratelimit;
mod table;

use ratelimit::RateLimiter;
use table::{Bounds, Table};

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
/// Default most entries one IP address holds, all channels together: a few clients behind
/// one address (a NAT, several peers of one host on their own ports).
pub const DEFAULT_MAX_ENTRIES_PER_IP: usize = 16;
/// Default most channels one IP address holds entries in.
pub const DEFAULT_MAX_CHANNELS_PER_IP: usize = 4;
/// Default cookie epoch: a cookie is accepted in the epoch it was made and the next one, so
/// for 60 to 120 s, longer than a peer's 30 s between registrations.
pub const DEFAULT_COOKIE_EPOCH: Micros = 60 * SECOND;
/// Most bytes sent to an address that proved no round trip, per byte it sent: a spoofed
/// request makes the tracker an amplifier of at most this factor.
pub const MAX_AMPLIFICATION: usize = 3;
/// Most peers in an answer to a request that proved no round trip: the most that keeps a
/// peer list (21 + 6k bytes) within [`MAX_AMPLIFICATION`] times a 20-byte request (6: 57 bytes).
pub const UNVERIFIED_LIST_MAX: usize = (MAX_AMPLIFICATION * size::TRACKER_REQUEST - PeerList::size_for(0)) / ADDR_LEN;

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
    /// Most entries one IP address holds, all channels together.
    #[serde(default = "default_max_entries_per_ip")]
    pub max_entries_per_ip: usize,
    /// Most channels one IP address holds entries in.
    #[serde(default = "default_max_channels_per_ip")]
    pub max_channels_per_ip: usize,
    /// Length of a cookie epoch: a cookie is valid in its epoch and the next.
    #[serde(default = "default_cookie_epoch")]
    pub cookie_epoch: Micros,
}

fn default_max_entries_per_ip() -> usize {
    DEFAULT_MAX_ENTRIES_PER_IP
}

fn default_max_channels_per_ip() -> usize {
    DEFAULT_MAX_CHANNELS_PER_IP
}

fn default_cookie_epoch() -> Micros {
    DEFAULT_COOKIE_EPOCH
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
            max_entries_per_ip: DEFAULT_MAX_ENTRIES_PER_IP,
            max_channels_per_ip: DEFAULT_MAX_CHANNELS_PER_IP,
            cookie_epoch: DEFAULT_COOKIE_EPOCH,
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
    #[serde(default)]
    pub bad_cookie: u64,
}

impl Drops {
    /// All drops.
    pub fn total(&self) -> u64 {
        self.undecodable + self.unexpected_message + self.rate_limited + self.table_full + self.bad_cookie
    }

    /// The counter for `reason` (0 for reasons the tracker never uses).
    pub fn get(&self, reason: DropReason) -> u64 {
        match reason {
            DropReason::Undecodable => self.undecodable,
            DropReason::UnexpectedMessage => self.unexpected_message,
            DropReason::RateLimited => self.rate_limited,
            DropReason::TableFull => self.table_full,
            DropReason::BadCookie => self.bad_cookie,
            _ => 0,
        }
    }

    fn count(&mut self, reason: DropReason) {
        match reason {
            DropReason::Undecodable => self.undecodable += 1,
            DropReason::UnexpectedMessage => self.unexpected_message += 1,
            DropReason::RateLimited => self.rate_limited += 1,
            DropReason::TableFull => self.table_full += 1,
            DropReason::BadCookie => self.bad_cookie += 1,
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
    /// Registrations accepted (they carried a valid cookie): new entries plus refreshes.
    pub registrations: u64,
    /// Registrations answered without listing anyone, because they carried no valid cookie:
    /// a short list and the cookie to prove the address with.
    #[serde(default)]
    pub challenges: u64,
    /// Registrations that created an entry.
    pub new_entries: u64,
    /// Queries answered (with or without a valid cookie).
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
            table: Table::new(Bounds {
                entries: config.max_entries,
                channels: config.max_channels,
                entries_per_ip: config.max_entries_per_ip,
                channels_per_ip: config.max_channels_per_ip,
            }),
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

    /// The cookie of `asker` in cookie epoch `epoch`: 24 bits of a keyed hash of where the
    /// answer goes and what it is about, which only the tracker can make.
    fn cookie(&self, asker: &Asker, epoch: u64) -> u32 {
        let ip = match asker.from.ip() {
            IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            IpAddr::V6(v6) => v6.octets(),
        };
        let mac = self.secret.mac(&[
            b"tracker cookie",
            &ip,
            &asker.from.port().to_be_bytes(),
            &asker.channel.to_be_bytes(),
            &asker.listen_port.to_be_bytes(),
            &epoch.to_be_bytes(),
        ]);
        mac as u32 & COOKIE_MASK
    }

    fn epoch(&self, now: Micros) -> u64 {
        now / self.config.cookie_epoch.max(1)
    }

    /// Whether the request carries the asker's cookie of this epoch or the previous one: then
    /// the asker received an earlier answer at its address.
    fn proves(&self, now: Micros, asker: &Asker) -> bool {
        let epoch = self.epoch(now);
        asker.seq == self.cookie(asker, epoch) || (epoch > 0 && asker.seq == self.cookie(asker, epoch - 1))
    }

    fn register(&mut self, now: Micros, asker: Asker, want: u16) {
        let Some(key) = entry_addr(asker.from, asker.listen_port) else {
            self.drop_input(asker.from, DropReason::UnexpectedMessage);
            return;
        };
        if !self.proves(now, &asker) {
            // Nothing is listed for an address that may be spoofed; the answer teaches a
            // real asker its cookie and is small enough not to amplify a spoofer's traffic.
            self.stats.challenges += 1;
            self.answer(now, asker, want, false);
            return;
        }
        match self.table.upsert(asker.channel, key, now.saturating_add(self.config.ttl)) {
            Ok(new) => {
                self.stats.registrations += 1;
                self.stats.new_entries += u64::from(new);
                self.events.push_back(Event::TrackerRegister { peer: key.into(), channel: asker.channel, new });
                self.answer(now, asker, want, true);
            }
            Err(_) => self.drop_input(asker.from, DropReason::TableFull),
        }
    }

    fn query(&mut self, now: Micros, asker: Asker, want: u16) {
        self.stats.queries += 1;
        let verified = self.proves(now, &asker);
        self.answer(now, asker, want, verified);
    }

    fn leave(&mut self, now: Micros, asker: Asker) {
        if !self.proves(now, &asker) {
            self.drop_input(asker.from, DropReason::BadCookie);
            return;
        }
        if let Some(key) = entry_addr(asker.from, asker.listen_port)
            && self.table.remove(asker.channel, key)
        {
            self.stats.leaves += 1;
            self.events.push_back(Event::TrackerExpire { peer: key.into(), channel: asker.channel, leave: true });
        }
    }

    /// Sends `asker` a peer list (never its own entry): up to `want` peers if it proved its
    /// address (`verified`), else at most [`UNVERIFIED_LIST_MAX`]; with its current cookie.
    fn answer(&mut self, now: Micros, asker: Asker, want: u16, verified: bool) {
        let cap = if verified { MAX_PEER_LIST } else { UNVERIFIED_LIST_MAX };
        let k = usize::from(want).min(self.config.list_size).min(cap);
        let mut peers = std::mem::take(&mut self.scratch);
        peers.clear();
        let exclude = entry_addr(asker.from, asker.listen_port);
        self.table.sample(asker.channel, exclude, k, &mut self.rng, &mut peers);
        let n = peers.len() as u32;
        let cookie = self.cookie(&asker, self.epoch(now));
        let list = PeerList { channel: asker.channel, verified, cookie, peers };
        let repr = Repr::new(asker.seq, Message::PeerList(list));
        self.transmits.push_back(Transmit { dst: asker.from, payload: repr.to_vec() });
        if let Message::PeerList(list) = repr.message {
            self.scratch = list.peers;
        }
        self.stats.replies += 1;
        self.stats.peers_listed += u64::from(n);
        self.events.push_back(Event::TrackerReply { peer: asker.from, channel: asker.channel, peers: n });
    }
}

/// Who sent a request, with what sequence number (a cookie or a query id), about which
/// channel and listening port: what a cookie is made of, and where the answer goes.
#[derive(Debug, Clone, Copy)]
struct Asker {
    from: SocketAddr,
    seq: u32,
    channel: u32,
    listen_port: u16,
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
        if from == self.config.addr {
            // Spoofed: the tracker sends nothing to itself, so an answer would only be sent
            // back to its own socket.
            self.drop_input(from, DropReason::UnexpectedMessage);
            return;
        }
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
        let seq = repr.seq;
        let asker = |channel, listen_port| Asker { from, seq, channel, listen_port };
        match repr.message {
            Message::Register(r) => self.register(now, asker(r.channel, r.listen_port), r.want),
            Message::Query(q) => self.query(now, asker(q.channel, q.listen_port), q.want),
            Message::Leave(l) => self.leave(now, asker(l.channel, l.listen_port)),
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
