//! What the `peer` harness knows and checks: per pool address, what the core sent it (nonces,
//! requests, the last datagram) and what it asked of the core; the ground truth replayed
//! (links, children, requests, playback); and the byte ledger. It also builds the datagrams
//! a program sends, from what it saw.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{SocketAddr, SocketAddrV4};

use bytes::Bytes;
use soplab_node::truth::DownReason;
use soplab_node::{DropReason, Event, Media, Micros, Transmit};
use soplab_peer::PeerConfig;
use soplab_wire::video::{FRAGMENT_PAYLOAD, fragment_count};
use soplab_wire::{
    BLOCK_LEN, BufferMap, COOKIE_MASK, Hello, HelloReply, Leave, LinkAck, LinkStatus, MAP_BLOCKS,
    MAX_BLOCKS_PER_REQUEST, MAX_PEER_LIST, Message, PeerList, PeerSet, Query, Register, Repr, Request, Role, Video,
    link_token, segment,
};

use super::ops::{Bits, Block, Chan, Echo, Msg, Patch, Seq, Token};
use super::{CHANNEL, POOL, TRACKER, fresh, pool, pool_index};
use crate::check::{FxMap, FxSet, Ledger, invariant};

/// Kinds of floods: HELLOs, requests, keep-alives, junk, peer lists.
const FLOOD_KINDS: u8 = 5;

/// Whether a flood of `kind` is of peer lists.
pub(super) fn floods_lists(kind: u8) -> bool {
    kind % FLOOD_KINDS == FLOOD_KINDS - 1
}

/// Most events one step may raise: a wake-up after the clock jumped an hour must not log an
/// event per block of the hour (22,000 at 500 kbit/s), nor hold them all in memory.
const MAX_EVENTS_PER_STEP: u32 = 4_096;

/// Requests the core sent one address that the harness can still answer.
const KEPT_REQUESTS: usize = 32;

/// What passed between the core and one pool address.
#[derive(Debug, Default)]
struct Remote {
    /// The last datagram the core sent it, and its sequence number.
    last: Vec<u8>,
    last_seq: u32,
    /// The nonce of the core's last HELLO to it.
    hello_nonce: Option<u32>,
    /// The nonce of its last HELLO to the core, which its ACK carries.
    my_hello: Option<u32>,
    /// The token of its link with the core while the link is up (the XOR of the nonces of
    /// the handshake that opened it).
    token: Option<u32>,
    /// The nonce and status of the core's last reply to it.
    reply: Option<(u32, LinkStatus)>,
    /// The core's requests to it: (request, first block, count), newest last.
    requests: VecDeque<(u32, u32, u8)>,
    /// Its requests to the core.
    asked: FxSet<(u32, u32, u8)>,
    /// Its own datagram counter.
    seq: u32,
}

/// The ground truth as replayed from the core's events, with the bounds it must keep.
#[derive(Debug, Default)]
struct Truth {
    started: bool,
    /// The session ended (`SessionEnd` seen).
    over: bool,
    /// The step after the end: nothing more may come out.
    quiet: bool,
    up: BTreeSet<SocketAddr>,
    children: BTreeSet<SocketAddr>,
    /// Requests out: request id -> (parent, first block, count).
    outstanding: BTreeMap<u32, (SocketAddr, u32, u8)>,
    /// Video packets sent per (child, request) not yet accounted for by `ResponseSent`.
    served: FxMap<(SocketAddr, u32), u32>,
    playback_start: Option<u32>,
    last_play: Option<u32>,
    last_media: Option<u32>,
    /// Events raised in this step.
    step_events: u32,
    reached: Reached,
}

/// Counts of the deep states a program reached (for the harness's own tests).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reached {
    pub links_up: u32,
    pub responses_received: u32,
    pub responses_sent: u32,
    pub blocks_played: u32,
    /// Requests of the core whose link token the harness knew and checked.
    pub tokens_checked: u32,
    /// Requests the core dropped for a wrong token, and peer lists as unsolicited.
    pub bad_tokens: u32,
    pub unsolicited: u32,
}

pub struct Model {
    cfg: PeerConfig,
    /// The source's media file (None for a peer).
    media: Option<Bytes>,
    /// When the program began: the harness's own stream has its block 0 there.
    t0: Micros,
    remotes: Vec<Remote>,
    ledger: Ledger,
    /// Addresses whose bytes changed in this step.
    touched: Vec<SocketAddr>,
    truth: Truth,
    /// The newest block the core announced (in a HELLO or a keep-alive).
    core_newest: Option<u32>,
    /// How the session is being ended: `Some(graceful)`.
    ending: Option<bool>,
    /// The token of the link a reply or an ACK delivered in this step would open: (its
    /// sender, the token).
    linking: Option<(SocketAddr, u32)>,
    /// HELLOs [`Model::hello`] built, so that each has its own nonce (a HELLO repeating the
    /// link's own nonce does not reopen it).
    hellos: u32,
    /// Live heap at the start, and the budget above it.
    heap: Option<(isize, usize)>,
}

/// The harness's content for block `b` (peers cannot tell good bytes from bad, so any will do).
fn block_bytes(first: u32, count: u8) -> Vec<u8> {
    let mut data = Vec::with_capacity(usize::from(count) * BLOCK_LEN);
    for b in first..first + u32::from(count) {
        data.extend(std::iter::repeat_n(b as u8 ^ 0x5a, BLOCK_LEN));
    }
    data
}

fn encode(seq: u32, message: Message<'_>) -> Vec<u8> {
    Repr::new(seq & 0x00ff_ffff, message).to_vec()
}

fn v4(a: SocketAddr) -> Option<SocketAddrV4> {
    match a {
        SocketAddr::V4(a) => Some(a),
        SocketAddr::V6(_) => None,
    }
}

fn status(s: u8) -> LinkStatus {
    match s % 3 {
        0 => LinkStatus::Accepted,
        1 => LinkStatus::Full,
        _ => LinkStatus::WrongChannel,
    }
}

fn channel(c: Chan) -> u32 {
    match c {
        Chan::Ours => CHANNEL,
        Chan::Lit(c) => c,
    }
}

/// What the configuration lets a core hold: its block store, a reassembly slot per request it
/// may have out, a full queue of 16-block responses for every neighbour, and 16 MiB for the
/// rest (tables of addresses, the harness's own records).
fn heap_budget(cfg: &PeerConfig) -> usize {
    let response = usize::from(MAX_BLOCKS_PER_REQUEST) * BLOCK_LEN;
    let store = (MAP_BLOCKS as usize + 64) * BLOCK_LEN;
    let reassembly = (cfg.gamma * cfg.outstanding_per_parent + 4) * response;
    let upload = cfg.max_neighbors * cfg.child_queue * response;
    store + reassembly + upload + (16 << 20)
}

impl Model {
    pub(super) fn new(cfg: PeerConfig, media: Option<Bytes>, t0: Micros) -> Model {
        Model {
            cfg,
            media,
            t0,
            remotes: (0..POOL).map(|_| Remote::default()).collect(),
            ledger: Ledger::default(),
            touched: Vec::new(),
            truth: Truth::default(),
            core_newest: None,
            ending: None,
            linking: None,
            hellos: 0,
            heap: None,
        }
    }

    /// Starts measuring the heap: what is live now is the baseline.
    pub(super) fn arm_heap(&mut self) {
        if crate::alloc::installed() {
            self.heap = Some((crate::alloc::live(), heap_budget(&self.cfg)));
        }
    }

    /// How far the program got: links that came up, responses received and served whole,
    /// blocks played.
    pub fn reached(&self) -> Reached {
        self.truth.reached
    }

    fn remote(&mut self, a: SocketAddr) -> Option<&mut Remote> {
        pool_index(a).map(|i| &mut self.remotes[i])
    }

    // ---- what the core sends ----

    pub(super) fn transmit(&mut self, t: Transmit) {
        let Transmit { dst, payload } = t;
        invariant("quiet", !self.truth.quiet, || format!("a datagram to {dst} after the session ended"));
        invariant("self", dst != self.cfg.addr, || format!("a datagram to the core's own address {dst}"));
        let repr = match Repr::parse(&payload) {
            Ok(r) => r,
            Err(e) => {
                invariant("decode", false, || {
                    format!("the core sent {dst} {} bytes that do not decode: {e}", payload.len())
                });
                return;
            }
        };
        let own = match repr.message {
            Message::Hello(_) => true,
            Message::Register(_) | Message::Leave(_) => dst == self.cfg.tracker,
            _ => false,
        };
        self.ledger.sent(dst, payload.len(), own);
        self.touched.push(dst);
        let seq = repr.seq;
        self.sent_message(dst, repr.message);
        if let Some(r) = self.remote(dst) {
            r.last = payload;
            r.last_seq = seq;
        }
    }

    fn sent_message(&mut self, dst: SocketAddr, message: Message<'_>) {
        let up = self.truth.up.contains(&dst);
        let source = self.cfg.role == Role::Source;
        match message {
            Message::Hello(h) => {
                invariant("hello", !up && h.role == self.cfg.role && h.channel == self.cfg.channel, || {
                    format!("HELLO {h:?} to {dst} (established: {up})")
                });
                self.core_newest = h.newest.or(self.core_newest);
                if let Some(r) = self.remote(dst) {
                    r.hello_nonce = Some(h.nonce);
                }
            }
            Message::HelloReply(r) => self.sent_reply(dst, r),
            Message::Ack(_) => invariant("link", up, || format!("an ACK to {dst}, not an established neighbour")),
            Message::KeepAlive(m) => {
                invariant("link", up, || format!("a keep-alive to {dst}, not an established neighbour"));
                self.core_newest = m.newest().or(self.core_newest);
            }
            Message::Request(r) => {
                invariant("link", up && !source, || format!("request {r:?} to {dst} (established: {up})"));
                self.truth.reached.tokens_checked +=
                    u32::from(pool_index(dst).is_some_and(|i| self.remotes[i].token.is_some()));
                if let Some(remote) = self.remote(dst) {
                    let token = remote.token;
                    invariant("token", token.is_none_or(|t| t == r.token), || {
                        format!("request {r:?} to {dst}, whose link's token is {token:?}")
                    });
                    remote.requests.push_back((r.request, r.first_block, r.count));
                    if remote.requests.len() > KEPT_REQUESTS {
                        remote.requests.pop_front();
                    }
                }
            }
            Message::Video(v) => self.sent_video(dst, &v),
            Message::Register(_) => {
                invariant("kind", dst == self.cfg.tracker, || format!("a registration to {dst}"));
            }
            Message::Leave(_) => invariant("kind", dst == self.cfg.tracker && self.ending == Some(true), || {
                format!("a leave to {dst} (ending: {:?})", self.ending)
            }),
            m => invariant("kind", false, || format!("a peer sent {dst} {m:?}")),
        }
    }

    fn sent_reply(&mut self, dst: SocketAddr, r: HelloReply) {
        let listed: Vec<SocketAddr> = r.peers.as_slice().iter().map(|a| SocketAddr::V4(*a)).collect();
        invariant("exchange", listed.iter().all(|a| *a != dst && self.truth.up.contains(a)), || {
            format!("a reply to {dst} lists {listed:?}, not all established neighbours other than {dst}")
        });
        invariant("refusal", r.ack.status == LinkStatus::Accepted || listed.is_empty(), || {
            format!("a refusal ({:?}) to {dst} lists {} peers", r.ack.status, listed.len())
        });
        if let Some(remote) = self.remote(dst) {
            remote.reply = Some((r.ack.nonce, r.ack.status));
        }
    }

    fn sent_video(&mut self, dst: SocketAddr, v: &Video<'_>) {
        let key = (v.request, v.first_block, v.count);
        let asked = pool_index(dst).is_some_and(|i| self.remotes[i].asked.contains(&key));
        invariant("video", self.truth.up.contains(&dst) && asked, || {
            format!("video {key:?} to {dst}, which did not ask for it or is not an established neighbour")
        });
        *self.truth.served.entry((dst, v.request)).or_default() += 1;
        if let Some(media) = &self.media {
            // The source loops a 3-block file: block b is its bytes (b mod 3) x BLOCK_LEN on.
            let at = usize::from(v.index) * FRAGMENT_PAYLOAD;
            let ok = v.payload.iter().enumerate().all(|(j, &byte)| {
                let (o, b) = (at + j, u64::from(v.first_block) + ((at + j) / BLOCK_LEN) as u64);
                media[(b % 3) as usize * BLOCK_LEN + o % BLOCK_LEN] == byte
            });
            invariant("content", ok, || format!("packet {} of {key:?} to {dst} is not the origin's bytes", v.index));
        }
    }

    pub(super) fn media(&mut self, m: Media) {
        let t = &mut self.truth;
        invariant("playback", m.data.len() == BLOCK_LEN && t.last_media.is_none_or(|l| m.block > l), || {
            format!("media block {} ({} bytes) after {:?}", m.block, m.data.len(), t.last_media)
        });
        t.last_media = Some(m.block);
    }

    // ---- what the core says it did ----

    pub(super) fn event(&mut self, e: Event) {
        invariant("quiet", !self.truth.over, || format!("{e:?} after the session ended"));
        self.truth.step_events += 1;
        if self.truth.step_events == MAX_EVENTS_PER_STEP + 1 {
            invariant("burst", false, || format!("more than {MAX_EVENTS_PER_STEP} events in one step, now {e:?}"));
        }
        match e {
            Event::SessionStart { .. } => {
                invariant("session", !self.truth.started, || "a second session start".into());
                self.truth.started = true;
            }
            Event::SessionEnd { graceful } => {
                invariant("session", self.ending == Some(graceful), || format!("session end {graceful} unasked"));
                self.truth.over = true;
            }
            Event::NeighborUp { peer, .. } => self.neighbor_up(peer),
            Event::NeighborDown { peer, reason } => {
                invariant("links", self.truth.up.remove(&peer), || format!("{peer} down ({reason:?}) but not up"));
                if let Some(r) = self.remote(peer) {
                    r.token = None;
                }
                if reason == DownReason::Shutdown {
                    self.truth.children.remove(&peer);
                }
            }
            Event::KeepaliveLate { peer, .. } => {
                invariant("links", self.truth.up.contains(&peer), || format!("late keep-alive to {peer}, not up"));
            }
            Event::ChildUp { child } => self.child_up(child),
            Event::ChildDown { child } => {
                invariant("children", self.truth.children.remove(&child), || format!("{child} down, not a child"));
            }
            e @ (Event::RequestSent { .. } | Event::ResponseReceived { .. } | Event::RequestTimeout { .. }) => {
                self.request_event(e)
            }
            Event::ResponseSent { child, request, count, bytes, packets, .. } => {
                self.response_sent(child, request, count, bytes, packets)
            }
            Event::PlaybackStart { block } => {
                let t = &mut self.truth;
                invariant("playback", self.cfg.role == Role::Peer && t.playback_start.is_none(), || {
                    format!("playback starts at {block} (started: {:?})", t.playback_start)
                });
                t.playback_start = Some(block);
            }
            Event::Play { block, hit } => {
                let t = &mut self.truth;
                t.reached.blocks_played += u32::from(hit);
                let ok = t.playback_start.is_some_and(|s| block >= s) && t.last_play.is_none_or(|l| block > l);
                invariant("playback", ok, || {
                    format!("play {block} after {:?} from {:?}", t.last_play, t.playback_start)
                });
                t.last_play = Some(block);
            }
            Event::Stalled { first, blocks } => {
                let t = &mut self.truth;
                let ok = blocks > 0
                    && t.playback_start.is_some_and(|s| first >= s)
                    && t.last_play.is_none_or(|l| first > l)
                    && first.checked_add(blocks).is_some();
                invariant("playback", ok, || {
                    format!("stalled {first} +{blocks} after {:?} from {:?}", t.last_play, t.playback_start)
                });
                t.last_play = Some(first.saturating_add(blocks.saturating_sub(1)));
            }
            Event::Dropped { reason, .. } => {
                let r = &mut self.truth.reached;
                r.bad_tokens += u32::from(reason == DropReason::BadToken);
                r.unsolicited += u32::from(reason == DropReason::Unsolicited);
            }
            e @ (Event::TrackerRegister { .. } | Event::TrackerReply { .. } | Event::TrackerExpire { .. }) => {
                invariant("events", false, || format!("a peer logged {e:?}"))
            }
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }

    fn neighbor_up(&mut self, peer: SocketAddr) {
        let t = &mut self.truth;
        invariant("links", t.up.insert(peer), || format!("{peer} up twice"));
        t.reached.links_up += 1;
        invariant("neighbors", t.up.len() <= self.cfg.max_neighbors, || {
            format!("{} established neighbours, more than max_neighbors {}", t.up.len(), self.cfg.max_neighbors)
        });
        self.ledger.prove(peer);
        let token = self.linking.filter(|l| l.0 == peer).map(|l| l.1);
        if let Some(r) = self.remote(peer) {
            r.token = token;
        }
    }

    fn child_up(&mut self, child: SocketAddr) {
        let t = &mut self.truth;
        invariant("children", t.up.contains(&child) && t.children.insert(child), || {
            format!("{child} a child twice, or not an established neighbour")
        });
        invariant("children", t.children.len() <= self.cfg.max_children, || {
            format!("{} children, more than max_children {}", t.children.len(), self.cfg.max_children)
        });
    }

    fn request_event(&mut self, e: Event) {
        let (gamma, per_parent) = (self.cfg.gamma, self.cfg.outstanding_per_parent);
        let t = &mut self.truth;
        match e {
            Event::RequestSent { parent, request, first_block, count } => {
                let fresh = t.outstanding.insert(request, (parent, first_block, count)).is_none();
                invariant("requests", fresh && t.up.contains(&parent), || {
                    format!("request {request} to {parent}: id already out, or not an established neighbour")
                });
                invariant("requests", t.outstanding.len() <= gamma * per_parent, || {
                    format!("{} requests out, more than gamma x per parent {}", t.outstanding.len(), gamma * per_parent)
                });
                let parents: BTreeSet<SocketAddr> = t.outstanding.values().map(|o| o.0).collect();
                invariant("parents", parents.len() <= gamma, || {
                    format!("requests out to {} parents, more than gamma {gamma}: {parents:?}", parents.len())
                });
            }
            Event::ResponseReceived { parent, request, first_block, count, bytes } => {
                let out = t.outstanding.remove(&request);
                invariant("requests", out == Some((parent, first_block, count)), || {
                    format!("response {request} from {parent} for {out:?}")
                });
                invariant("requests", bytes == u64::from(count) * BLOCK_LEN as u64, || format!("{bytes} bytes"));
                t.reached.responses_received += 1;
            }
            Event::RequestTimeout { parent, request, first_block, count, complete } => {
                let out = t.outstanding.remove(&request);
                let range = first_block..first_block + u32::from(count);
                invariant("requests", out == Some((parent, first_block, count)), || {
                    format!("timeout of {request} to {parent}, out: {out:?}")
                });
                invariant("requests", complete.iter().all(|b| range.contains(b)), || format!("{complete:?}"));
            }
            _ => unreachable!("only request events come here"),
        }
    }

    fn response_sent(&mut self, child: SocketAddr, request: u32, count: u8, bytes: u64, packets: u32) {
        let served = self.truth.served.entry((child, request)).or_default();
        let whole = u32::from(fragment_count(count));
        invariant(
            "video",
            packets == whole && *served >= packets && bytes == u64::from(count) * BLOCK_LEN as u64,
            || format!("response {request} to {child}: {packets} of {whole} packets, {served} seen, {bytes} bytes"),
        );
        *served = served.saturating_sub(packets);
        self.truth.reached.responses_sent += 1;
    }

    /// The session is being ended (`graceful`: with a leave).
    pub(super) fn ending(&mut self, graceful: bool) {
        if self.ending.is_none() && !self.truth.over {
            self.ending = Some(graceful);
        }
    }

    /// Checks what must hold between steps.
    pub(super) fn check(&mut self) {
        for a in std::mem::take(&mut self.touched) {
            self.ledger.check(a);
        }
        let t = &self.truth;
        invariant("children", t.over || t.children.is_subset(&t.up), || {
            format!("children {:?} not all established ({:?})", t.children, t.up)
        });
        if let Some((base, budget)) = self.heap {
            let used = crate::alloc::live().wrapping_sub(base);
            invariant("memory", used <= budget as isize, || format!("{used} heap bytes live, budget {budget}"));
        }
        self.truth.quiet = self.truth.over;
        self.truth.step_events = 0;
        self.linking = None;
    }

    // ---- what the harness sends ----

    /// Notes a datagram delivered to the core from `from`: what it asked, the nonce of its
    /// HELLO, the token a reply or an ACK would open a link with (hello nonce XOR reply nonce:
    /// a reply echoes the HELLO's and carries its own, an ACK the other way round).
    pub(super) fn delivered(&mut self, from: SocketAddr, bytes: &[u8]) {
        self.ledger.got(from, bytes.len());
        self.touched.push(from);
        let Ok(repr) = Repr::parse(bytes) else { return };
        match repr.message {
            Message::HelloReply(r) => self.linking = Some((from, link_token(r.ack.echo, r.ack.nonce))),
            Message::Ack(a) => self.linking = Some((from, link_token(a.nonce, a.echo))),
            _ => {}
        }
        let Some(remote) = self.remote(from) else { return };
        match repr.message {
            Message::Request(r) => {
                remote.asked.insert((r.request, r.first_block, r.count));
            }
            Message::Hello(h) => remote.my_hello = Some(h.nonce),
            _ => {}
        }
    }

    /// The live edge of the harness's stream at `now`.
    fn edge(&self, now: Micros) -> u32 {
        let b = now.saturating_sub(self.t0) / self.cfg.block_interval().max(1);
        b.min(u64::from(u32::MAX - 1)) as u32
    }

    fn block(&self, b: Block, now: Micros) -> u32 {
        match b {
            Block::Edge(d) => (i64::from(self.edge(now)) + i64::from(d)).clamp(0, i64::from(u32::MAX - 1)) as u32,
            Block::Theirs(k) => self.core_newest.unwrap_or_else(|| self.edge(now)).saturating_sub(u32::from(k)),
            Block::Lit(b) => b,
            Block::Last => u32::MAX - 1,
        }
    }

    fn seq(&mut self, from: SocketAddr, seq: Seq) -> u32 {
        let Some(r) = self.remote(from) else { return 0 };
        match seq {
            Seq::Zero => 0,
            Seq::Next => {
                r.seq = r.seq.wrapping_add(1) & 0x00ff_ffff;
                r.seq
            }
            Seq::Echo => r.last_seq,
            Seq::Lit(s) => s,
        }
    }

    /// The datagram `msg` from `from`, patched; None if there is nothing to build it from.
    pub(super) fn build(
        &mut self,
        from: SocketAddr,
        seq: Seq,
        msg: &Msg,
        patch: Option<Patch>,
        now: Micros,
        fresh_n: &mut u32,
    ) -> Option<Vec<u8>> {
        let seq = self.seq(from, seq);
        let mut bytes = self.message(from, seq, msg, now, fresh_n)?;
        if let (Some(p), Some(i)) = (patch, pool_index(from)) {
            p.apply(&self.remotes[i].last, &mut bytes);
        }
        Some(bytes)
    }

    fn message(&mut self, from: SocketAddr, seq: u32, msg: &Msg, now: Micros, fresh_n: &mut u32) -> Option<Vec<u8>> {
        let r = pool_index(from).map(|i| &self.remotes[i]);
        let message = match *msg {
            Msg::Hello { source, nonce, channel: c, port, newest } => Message::Hello(Hello {
                role: if source { Role::Source } else { Role::Peer },
                nonce,
                channel: channel(c),
                listen_port: port.unwrap_or(from.port()),
                newest: newest.map(|b| self.block(b, now)),
            }),
            Msg::Reply { echo, nonce, status: s, channel: c, ref peers } => {
                let echo = match echo {
                    Echo::Right => r.and_then(|r| r.hello_nonce).unwrap_or(0),
                    Echo::Lit(e) => e,
                };
                let peers: PeerSet = peers.iter().filter_map(|&i| v4(pool(i))).collect();
                let ack = LinkAck { status: status(s), echo, nonce, channel: channel(c) };
                Message::HelloReply(HelloReply { ack, peers })
            }
            Msg::Ack { echo, nonce, status: s, channel: c } => {
                let echo = match echo {
                    Echo::Right => r.and_then(|r| r.reply).map_or(0, |r| r.0),
                    Echo::Lit(e) => e,
                };
                let nonce = match nonce {
                    Echo::Right => r.and_then(|r| r.my_hello).unwrap_or(0),
                    Echo::Lit(n) => n,
                };
                Message::Ack(LinkAck { status: status(s), echo, nonce, channel: channel(c) })
            }
            Msg::KeepAlive { newest, bits } => Message::KeepAlive(self.map(newest.map(|b| self.block(b, now)), bits)),
            Msg::Request { request, first, count, channel: c, token } => {
                let count = 1 + count % MAX_BLOCKS_PER_REQUEST;
                let first = self.block(first, now).min(u32::MAX - u32::from(count));
                let right = r.and_then(|r| r.token).unwrap_or(0);
                let token = match token {
                    Token::Right => right,
                    Token::Wrong(bit) => right ^ (1 << (bit % 32)),
                    Token::Lit(t) => t,
                };
                Message::Request(Request { request, first_block: first, count, channel: channel(c), token })
            }
            Msg::Video { pick, index, fill } => return Some(self.video(from, seq, pick, index, fill, now)),
            Msg::PeerList { channel: c, verified, cookie, ref peers, fresh: n } => {
                let mut list: Vec<SocketAddrV4> = peers.iter().filter_map(|&i| v4(pool(i))).collect();
                for _ in 0..n {
                    list.extend(v4(fresh(*fresh_n)));
                    *fresh_n = fresh_n.wrapping_add(1);
                }
                list.truncate(MAX_PEER_LIST);
                let cookie = cookie & COOKIE_MASK;
                Message::PeerList(PeerList { channel: channel(c), verified, cookie, peers: list })
            }
            Msg::Tracker { kind, channel: c, port, want } => {
                let (role, channel) = (Role::Peer, channel(c));
                match kind % 3 {
                    0 => Message::Register(Register { role, channel, listen_port: port, want }),
                    1 => Message::Query(Query { channel, listen_port: port, want }),
                    _ => Message::Leave(Leave { role, channel, listen_port: port }),
                }
            }
        };
        Some(encode(seq, message))
    }

    /// A buffer map announcing `newest` with the blocks `bits` says.
    fn map(&self, newest: Option<u32>, bits: Bits) -> BufferMap {
        let Some(newest) = newest else { return BufferMap::empty() };
        BufferMap::from_fn(newest, |id| match bits {
            Bits::All => true,
            Bits::Pattern(p) => {
                let k = newest - id;
                k < MAP_BLOCKS && p[(k / 8) as usize] & (0x80 >> (k % 8)) != 0
            }
        })
    }

    /// The `pick`-th newest request the core sent `from`, if it sent any.
    fn picked(&self, from: SocketAddr, pick: u8) -> Option<(u32, u32, u8)> {
        let reqs = &self.remotes[pool_index(from)?].requests;
        let back = usize::from(pick) % reqs.len().max(1);
        reqs.len().checked_sub(back + 1).map(|i| reqs[i])
    }

    fn video(&self, from: SocketAddr, seq: u32, pick: u8, index: u16, fill: u8, now: Micros) -> Vec<u8> {
        let (request, first, count) = self.picked(from, pick).unwrap_or((u32::from(pick), self.edge(now), 1));
        let data = vec![fill; usize::from(count) * BLOCK_LEN];
        let segments = segment(request, first, &data).expect("a request's range is valid");
        let v = segments.get(index % fragment_count(count)).expect("index below the total");
        encode(seq, Message::Video(v))
    }

    /// Every packet of the answer to the `pick`-th newest request the core sent `from`, but every
    /// `skip`-th (skip >= 2), each `twice` or once.
    pub(super) fn respond(&mut self, from: SocketAddr, pick: u8, skip: u8, twice: bool) -> Vec<Vec<u8>> {
        let Some((request, first, count)) = self.picked(from, pick) else { return Vec::new() };
        let data = block_bytes(first, count);
        let segments = segment(request, first, &data).expect("a request's range is valid");
        let mut out = Vec::new();
        for (i, v) in segments.enumerate() {
            if skip >= 2 && i % usize::from(skip) == usize::from(skip) - 1 {
                continue;
            }
            for _ in 0..1 + usize::from(twice) {
                let seq = self.seq(from, Seq::Next);
                out.push(encode(seq, Message::Video(v)));
            }
        }
        out
    }

    /// A HELLO from `from` on our channel, with a nonce of its own (forgetting any earlier
    /// reply, so that [`Model::ack_reply`] sees the answer to this one).
    pub(super) fn hello(&mut self, from: SocketAddr, now: Micros) -> Vec<u8> {
        let newest = Some(self.edge(now));
        if let Some(r) = self.remote(from) {
            r.reply = None;
        }
        self.hellos = self.hellos.wrapping_add(1);
        let nonce = 0x5eed_0000 ^ self.hellos;
        let hello = Hello { role: Role::Peer, nonce, channel: CHANNEL, listen_port: from.port(), newest };
        encode(0, Message::Hello(hello))
    }

    /// The ACK of the core's accepting reply to `from`, if it sent one: it echoes the reply's
    /// nonce and carries our HELLO's.
    pub(super) fn ack_reply(&mut self, from: SocketAddr) -> Option<Vec<u8>> {
        let remote = self.remote(from)?;
        let ((echo, LinkStatus::Accepted), Some(nonce)) = (remote.reply?, remote.my_hello) else { return None };
        let seq = self.seq(from, Seq::Next);
        let ack = LinkAck { status: LinkStatus::Accepted, echo, nonce, channel: CHANNEL };
        Some(encode(seq, Message::Ack(ack)))
    }

    /// An accepting reply to the core's pending HELLO to `from`, if there is one.
    pub(super) fn answer_hello(&mut self, from: SocketAddr) -> Option<Vec<u8>> {
        if self.truth.up.contains(&from) {
            return None;
        }
        let nonce = self.remote(from)?.hello_nonce.take()?;
        let ack = LinkAck { status: LinkStatus::Accepted, echo: nonce, nonce: 0x5eed_0002, channel: CHANNEL };
        Some(encode(0, Message::HelloReply(HelloReply { ack, peers: PeerSet::new() })))
    }

    /// A peer list of 200 addresses never seen before, answering the core's last register (its
    /// query id echoed): unverified, with a cookie other than that query id, so that the core
    /// registers again at once and the next list of the flood answers that register.
    fn flood_list(&self, fresh_n: &mut u32) -> Vec<u8> {
        let peers = (0..MAX_PEER_LIST as u32).filter_map(|k| v4(fresh(fresh_n.wrapping_add(k)))).collect();
        *fresh_n = fresh_n.wrapping_add(MAX_PEER_LIST as u32);
        let query = self.remotes[0].last_seq;
        let cookie = (query ^ *fresh_n) & COOKIE_MASK;
        let cookie = if cookie == query { cookie ^ 1 } else { cookie };
        let list = PeerList { channel: CHANNEL, verified: false, cookie, peers };
        encode(query, Message::PeerList(list))
    }

    /// One datagram of a flood of `kind` from `from` (a peer list comes from the tracker;
    /// see [`floods_lists`]).
    pub(super) fn flood_datagram(
        &mut self,
        kind: u8,
        from: SocketAddr,
        now: Micros,
        fresh_n: &mut u32,
    ) -> (SocketAddr, Vec<u8>) {
        let newest = self.core_newest.unwrap_or_else(|| self.edge(now));
        let message = match kind % FLOOD_KINDS {
            0 => return (from, self.hello(from, now)),
            1 => Message::Request(Request {
                request: 1,
                first_block: newest.min(u32::MAX - 1),
                count: 1,
                channel: CHANNEL,
                token: 0,
            }),
            2 => Message::KeepAlive(self.map(Some(self.edge(now)), Bits::All)),
            3 => {
                let mut junk = self.hello(from, now);
                junk[12] = 0xff;
                return (from, junk);
            }
            _ => return (TRACKER, self.flood_list(fresh_n)),
        };
        (from, encode(0, message))
    }
}
