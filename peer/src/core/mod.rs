//! The peer's sans-IO state machine. [`Peer`] ties together one part per concern, each in its
//! own module with its state private to it:
//!
//! - [`handshake`]: HELLO -> reply -> ACK, with no state for a HELLO until its ACK, and the
//!   link tokens that tie requests to the link;
//! - [`links`]: the neighbour table — keep-alives, expiry, refresh, candidates;
//! - [`pull`]: what we request and from whom — outstanding requests, parent choice, reassembly;
//! - [`upload`]: serving children — their requests, the upload queue and its rate cap;
//! - [`playback`]: the start-up buffer, per-block deadlines and the media handed out;
//! - [`blocks`]: where blocks come from (the source's [`Origin`], a peer's store);
//! - [`tracker_client`]: registering with the tracker, and which of its peer lists to take;
//! - [`timers`]: when the core wakes; [`stats`]: what it reports.
//!
//! This module holds the session (start, end), the tick that drives the concerns in a fixed
//! order, and the datagram dispatch.

mod blocks;
mod handshake;
mod links;
mod playback;
mod pull;
mod stats;
mod timers;
mod tracker_client;
mod upload;

use std::collections::VecDeque;
use std::net::SocketAddr;

use rand::SeedableRng;
use rand::rngs::ChaCha12Rng;
use rand_pcg::Pcg64Mcg;
use soplab_node::truth::DownReason;
use soplab_node::{DropReason, Event, Media, Micros, Node, Secret, Transmit};
use soplab_wire::{Message, Repr};

use crate::config::PeerConfig;
use blocks::Blocks;
use links::Links;
use playback::Playback;
use pull::Pull;
use timers::{Timer, Timers};
use tracker_client::TrackerClient;
use upload::Upload;

pub use blocks::Origin;
pub use stats::PeerStats;

/// The domain of the secret generator of nonces and request ids.
const NONCES: &str = "peer nonces";

/// What the core hands its driver besides video: control datagrams, ground-truth events and
/// the summary's counters. Every concern writes here, so it sits beside them all.
struct Out {
    control: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: PeerStats,
}

impl Out {
    fn push(&mut self, dst: SocketAddr, seq: u32, message: Message<'_>) {
        self.control.push_back(Transmit { dst, payload: Repr::new(seq, message).to_vec() });
    }

    fn event(&mut self, event: Event) {
        self.events.push_back(event);
    }

    /// Counts a datagram we refuse, by reason, and reports it with its sender.
    fn drop_input(&mut self, from: SocketAddr, reason: DropReason) {
        *self.stats.dropped.entry(reason.as_str().to_string()).or_default() += 1;
        self.events.push_back(Event::Dropped { from, reason });
    }
}

/// The peer (or source) core. Drive it through [`Node`].
pub struct Peer {
    cfg: PeerConfig,
    /// Every random choice of behaviour (keep-alive phases, peer choice, exploration) draws
    /// from this one generator in a fixed order, so a seed replays a run exactly.
    rng: Pcg64Mcg,
    /// Keys what must be unguessable to others (HELLO cookies): from the OS in the daemons
    /// ([`Peer::with_secret`]), from `cfg.seed` otherwise.
    secret: Secret,
    /// What others must not guess, drawn from [`Self::secret`]: HELLO nonces and request ids.
    /// Apart from `rng`, so that these draws change no choice of behaviour.
    nonces: ChaCha12Rng,
    started: Option<Micros>,
    ended: bool,
    timers: Timers,
    blocks: Blocks,
    links: Links,
    pull: Pull,
    upload: Upload,
    playback: Playback,
    tracker: TrackerClient,
    out: Out,
}

impl Peer {
    /// A peer (or, with an origin, the source) that starts when first driven.
    ///
    /// # Panics
    ///
    /// If `origin` is given to a peer, or not given to the source (`cfg.role`): the role is
    /// held by the config alone, and the source is the one node whose blocks come from an origin.
    pub fn new(cfg: PeerConfig, origin: Option<Box<dyn Origin>>) -> Peer {
        assert_eq!(origin.is_some(), cfg.is_source(), "an origin is given to the source, and only to it");
        let stats = PeerStats { addr: cfg.addr.to_string(), role: cfg.role_name().to_string(), ..PeerStats::default() };
        let secret = Secret::from_seed(cfg.seed);
        Peer {
            rng: Pcg64Mcg::seed_from_u64(cfg.seed),
            nonces: secret.rng(NONCES),
            tracker: TrackerClient::new(&secret),
            secret,
            started: None,
            ended: false,
            timers: Timers::default(),
            blocks: Blocks::new(origin),
            links: Links::new(cfg.hellos_at_start),
            pull: Pull::new(&cfg),
            upload: Upload::new(),
            playback: Playback::new(),
            out: Out { control: VecDeque::new(), events: VecDeque::new(), stats },
            cfg,
        }
    }

    /// Replaces the seed-derived secret; daemons give [`Secret::from_os`], so that nothing a
    /// peer hands out can be derived from the swarm's (published) seeds.
    pub fn with_secret(mut self, secret: Secret) -> Peer {
        self.nonces = secret.rng(NONCES);
        self.tracker = TrackerClient::new(&secret);
        self.secret = secret;
        self
    }

    pub fn config(&self) -> &PeerConfig {
        &self.cfg
    }

    /// Summary counters, with the current neighbour count.
    pub fn stats(&self) -> PeerStats {
        let mut s = self.out.stats.clone();
        if !self.ended {
            s.neighbors = self.up_neighbors().count();
        }
        s.continuity = s.computed_continuity();
        s.sessions = u32::from(self.started.is_some());
        s
    }

    /// Established neighbours' addresses.
    pub fn up_neighbors(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.links.up().map(|(a, _)| a)
    }

    /// Ends the session: emits `SessionEnd` and goes quiet. A graceful end also leaves the
    /// tracker; SopCast clients that quit just go silent, which is `graceful = false`.
    pub fn shutdown(&mut self, graceful: bool) {
        if self.ended {
            return;
        }
        self.ended = true;
        if graceful {
            self.leave_tracker();
        }
        let up = self.links.clear();
        self.out.stats.neighbors = up.len();
        for a in up {
            self.out.event(Event::NeighborDown { peer: a, reason: DownReason::Shutdown });
        }
        self.upload.clear();
        self.out.event(Event::SessionEnd { graceful });
    }

    /// The source serves from its origin and never requests, reassembles or plays.
    fn is_source(&self) -> bool {
        self.cfg.is_source()
    }

    fn start(&mut self, now: Micros) {
        self.started = Some(now);
        self.timers.set(Timer::Tick, now);
        self.upload.start(now);
        self.out.event(Event::SessionStart { role: self.cfg.host_role() });
    }

    /// Runs every concern's periodic work. The order is part of the behaviour (it orders the
    /// events, the datagrams and the random draws), so it stays fixed: tracker, links,
    /// children, then, for a peer, requests and playback.
    fn tick(&mut self, now: Micros) {
        let retry = self.tracker.retry_due(now);
        if self.timers.due(Timer::Tracker, now) || retry {
            self.register(now);
            self.timers.set(Timer::Tracker, now + self.cfg.tracker_interval);
        }
        self.expire_links(now);
        self.refresh_neighbors(now);
        self.keepalives(now);
        self.open_links(now);
        self.expire_children(now);
        self.expire_responses(now);
        if !self.is_source() {
            self.expire_requests(now);
            self.playback(now);
            self.schedule(now);
        }
        let parents = self.pull.parent_count();
        self.out.stats.max_parents = self.out.stats.max_parents.max(parents);
    }
}

impl Node for Peer {
    fn local_addr(&self) -> SocketAddr {
        self.cfg.addr
    }

    fn handle_datagram(&mut self, now: Micros, from: SocketAddr, data: &[u8]) {
        if self.ended {
            return;
        }
        if self.started.is_none() {
            self.start(now);
        }
        if from == self.cfg.addr {
            // Spoofed: the peer sends nothing to itself, so an answer would go back to its own
            // socket, and a handshake would make it its own neighbour.
            return self.out.drop_input(from, DropReason::UnexpectedMessage);
        }
        let repr = match Repr::parse(data) {
            Ok(r) => r,
            Err(_) => return self.out.drop_input(from, DropReason::Undecodable),
        };
        match repr.message {
            Message::Hello(h) => self.on_hello(now, from, h),
            Message::HelloReply(r) => self.on_reply(now, from, r),
            Message::Ack(a) => self.on_ack(now, from, a),
            Message::KeepAlive(m) => self.on_keepalive(now, from, m),
            Message::Request(r) => self.on_request(now, from, r),
            Message::Video(v) => {
                if self.is_source() {
                    self.out.drop_input(from, DropReason::UnexpectedMessage);
                } else {
                    self.on_video(now, from, &v);
                }
            }
            Message::PeerList(l) if from == self.cfg.tracker => self.on_tracker_list(now, from, repr.seq, l),
            _ => self.out.drop_input(from, DropReason::UnexpectedMessage),
        }
    }

    fn handle_timeout(&mut self, now: Micros) {
        if self.ended {
            return;
        }
        if self.started.is_none() {
            self.start(now);
        }
        if self.timers.due(Timer::Tick, now) {
            self.tick(now);
            self.timers.set(Timer::Tick, now + self.cfg.tick);
        }
    }

    fn poll_transmit(&mut self, now: Micros) -> Option<Transmit> {
        if let Some(t) = self.out.control.pop_front() {
            return Some(t);
        }
        if self.ended {
            return None;
        }
        self.next_video(now)
    }

    fn poll_timeout(&self) -> Option<Micros> {
        if self.ended {
            return None;
        }
        let tick = self.timers.at(Timer::Tick);
        Some(match self.upload.next_packet_at(self.cfg.upload_bps) {
            Some(video) => tick.min(video),
            None => tick,
        })
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.out.events.pop_front()
    }

    fn handle_shutdown(&mut self, _now: Micros) {
        self.shutdown(true);
    }

    fn handle_vanish(&mut self, _now: Micros) {
        self.shutdown(false);
    }

    fn poll_media(&mut self) -> Option<Media> {
        self.playback.next_media()
    }
}

#[cfg(test)]
mod tests {
    use soplab_node::SECOND;
    use soplab_wire::PeerList;

    use super::*;

    /// The times (s) at which a peer that hears nothing registers with the tracker, over
    /// `secs` of ticks; the tracker answers the registrations at the times `answer_at` lists.
    fn registrations(secs: u64, answer_at: &[u64]) -> Vec<u64> {
        let cfg = PeerConfig::peer("198.18.1.9:3908".parse().unwrap(), "198.18.0.1:3900".parse().unwrap(), 1, 3);
        let (tracker, tick) = (cfg.tracker, cfg.tick);
        let mut p = Peer::new(cfg, None);
        let mut sent = Vec::new();
        // The latest register's query id, which the tracker's answer echoes.
        let mut query = 0;
        let mut now = 0;
        while now <= secs * SECOND {
            if answer_at.contains(&(now / SECOND)) && now % SECOND == 0 {
                let list = PeerList { channel: 1, verified: true, cookie: query, peers: Vec::new() };
                p.handle_datagram(now, tracker, &Repr::new(query, Message::PeerList(list)).to_vec());
            }
            p.handle_timeout(now);
            while let Some(t) = p.poll_transmit(now) {
                if let (true, Ok(Repr { seq, message: Message::Register(_) })) =
                    (t.dst == tracker, Repr::parse(&t.payload))
                {
                    sent.push(now / SECOND);
                    query = seq;
                }
            }
            now += tick;
        }
        sent
    }

    #[test]
    fn an_unanswered_registration_is_sent_again_every_two_seconds() {
        // Never answered: asked every 2 s.
        assert_eq!(registrations(40, &[]), (0..=40).step_by(2).collect::<Vec<_>>());
        // Answered within a second: every 30 s, as always.
        assert_eq!(registrations(70, &[1, 31, 61]), [0, 30, 60]);
        // The first registration lost, the second answered: 30 s later the next, which goes
        // unanswered, so every 2 s again.
        assert_eq!(registrations(40, &[3]), [0, 2, 32, 34, 36, 38, 40]);
    }
}
