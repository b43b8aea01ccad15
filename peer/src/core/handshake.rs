//! Opening links: HELLO -> reply -> ACK, with nothing kept for a HELLO until its ACK proves
//! that the sender received our reply at the address it claims.
//!
//! UDP does not authenticate a sender's address (docs/SECURITY.md), so:
//!
//! - the reply's nonce is a cookie, a keyed hash of the sender's address, its HELLO's nonce and
//!   the time, and a HELLO leaves no state: spoofed HELLOs, however many and however often,
//!   hold no neighbour slot and push nobody out. The ACK echoes the cookie and carries the
//!   HELLO's nonce, so the cookie can be checked again; it is good from the HELLO for at least
//!   `handshake_timeout` and less than 1.25 times that, and each ACK is one guess in 2^32.
//! - the link's token (`soplab_wire::link_token`, the XOR of the two nonces) goes in every
//!   request on the link; a request without it is not served (`upload`).
//! - a HELLO from an established neighbour's address ends nothing while the link is alive: it
//!   is answered with a nonce that keeps the link's token, and only the ACK, which only the
//!   real neighbour can send, reopens the link (the truth says `reopened`). Since the token is
//!   kept, a lost ACK leaves both ends agreeing on it. Only a link silent for half the
//!   neighbour timeout ([`Peer::gone_silent`]) is ended by a HELLO, as `reopened` too, and the
//!   HELLO answered as any other.
//! - refusals carry no peer list; an accepted reply carries up to 8 neighbours, as peer
//!   exchange, and an 80-byte reply to a 52-byte HELLO is all an unverified address gets.

use std::net::{SocketAddr, SocketAddrV4};

use rand::RngExt;
use soplab_node::truth::DownReason;
use soplab_node::{DropReason, Event, Micros};
use soplab_wire::{Hello, HelloReply, LinkAck, LinkStatus, Message, PeerSet, link_token};

use super::Peer;
use super::links::{LinkState, Neighbor};

/// A cookie is checked against the time slices of the last `handshake_timeout`, this many
/// slices of it, and one more: it stays good at least `handshake_timeout` after its HELLO
/// and less than (1 + 1/COOKIE_SLICES) times that.
const COOKIE_SLICES: u64 = 4;

/// The bytes of an address for a keyed hash: its IP then its port.
fn addr_bytes(a: SocketAddr) -> Vec<u8> {
    let mut b = match a.ip() {
        std::net::IpAddr::V4(ip) => ip.octets().to_vec(),
        std::net::IpAddr::V6(ip) => ip.octets().to_vec(),
    };
    b.extend_from_slice(&a.port().to_be_bytes());
    b
}

fn v4(addr: SocketAddr) -> Option<SocketAddrV4> {
    match addr {
        SocketAddr::V4(a) => Some(a),
        SocketAddr::V6(_) => None,
    }
}

impl Peer {
    /// Opens a link to `to`, announcing our newest block. The nonce is secret-drawn: whoever
    /// echoes it received this HELLO.
    pub(super) fn send_hello(&mut self, now: Micros, to: SocketAddr) {
        let nonce = self.nonces.random::<u32>();
        let n = self.new_neighbor(LinkState::HelloSent { nonce }, now, true);
        self.links.table.insert(to, n);
        let hello = Message::Hello(Hello {
            role: self.cfg.role,
            nonce,
            channel: self.cfg.channel,
            listen_port: self.cfg.addr.port(),
            newest: self.newest(now),
        });
        self.out.push(to, 0, hello);
    }

    /// A neighbour entering the table; its keep-alives get a random phase so they do not all
    /// go out on the same tick.
    fn new_neighbor(&mut self, state: LinkState, now: Micros, initiator: bool) -> Neighbor {
        let next_keepalive = now + self.rng.random_range(0..self.cfg.keepalive_interval.max(1));
        Neighbor::new(state, now, next_keepalive, initiator, &self.cfg)
    }

    /// The cookie for a HELLO with `nonce` from `from` in time slice `slice`.
    fn cookie(&self, slice: u64, from: SocketAddr, nonce: u32) -> u32 {
        let parts: [&[u8]; 4] = [b"hello cookie", &addr_bytes(from), &nonce.to_be_bytes(), &slice.to_be_bytes()];
        self.secret.mac(&parts) as u32
    }

    fn cookie_slice(&self, now: Micros) -> u64 {
        now / (self.cfg.handshake_timeout / COOKIE_SLICES).max(1)
    }

    /// Whether `echo` is the cookie we gave `from` for its HELLO with `nonce`, lately enough.
    fn cookie_valid(&self, now: Micros, from: SocketAddr, nonce: u32, echo: u32) -> bool {
        let slice = self.cookie_slice(now);
        (0..=COOKIE_SLICES.min(slice)).any(|k| self.cookie(slice - k, from, nonce) == echo)
    }

    pub(super) fn on_hello(&mut self, now: Micros, from: SocketAddr, h: Hello) {
        match self.links.table.get(&from).map(Neighbor::state) {
            // Simultaneous open: the lower address keeps its HELLO, the other answers.
            Some(LinkState::HelloSent { .. }) if self.cfg.addr < from => return,
            Some(LinkState::HelloSent { .. }) => {
                self.links.table.remove(&from);
            }
            Some(LinkState::Up { .. }) if self.gone_silent(now, from) => {
                self.remove_neighbor(from, DownReason::Reopened, true);
            }
            Some(LinkState::Up { token, .. }) => return self.answer_neighbor(from, h, token),
            None => {}
        }
        let status = self.hello_status(now, from, &h);
        let (nonce, peers) = match status {
            LinkStatus::Accepted => (self.cookie(self.cookie_slice(now), from, h.nonce), self.peer_exchange(from)),
            _ => (0, PeerSet::new()),
        };
        if status == LinkStatus::WrongChannel {
            self.out.drop_input(from, DropReason::WrongChannel);
        }
        let ack = LinkAck { status, echo: h.nonce, nonce, channel: self.cfg.channel };
        self.out.push(from, 0, Message::HelloReply(HelloReply { ack, peers }));
    }

    /// Whether established neighbour `a` has been silent so long that a HELLO from its address
    /// may end the link: half the neighbour timeout. A live neighbour sends a keep-alive every
    /// 0.7 to 1.3 s; only a late one (7%, 0.5 to 4.5 s late) leaves a gap that long, about 1
    /// in 110 gaps, and only when no video or request came either. The link is then halfway
    /// to being dropped anyway, and the round trip of a new handshake (tens of ms) still ends
    /// well before the timeout would, so the neighbour's new ACK finds the new link.
    fn gone_silent(&self, now: Micros, a: SocketAddr) -> bool {
        self.links.table.get(&a).is_some_and(|n| now.saturating_sub(n.last_heard()) >= self.cfg.neighbor_timeout / 2)
    }

    /// Whether a HELLO from `from`, not in the table, would be let in. A full table still
    /// welcomes a peer never met, for its least useful neighbour, at most one per
    /// `newcomer_pace`: how a bounded peer list still gets to know the whole swarm. Nobody is
    /// pushed out until the newcomer's ACK comes (`accept`).
    fn hello_status(&mut self, now: Micros, from: SocketAddr, h: &Hello) -> LinkStatus {
        if h.channel != self.cfg.channel {
            return LinkStatus::WrongChannel;
        }
        if self.links.table.len() < self.cfg.max_neighbors {
            return LinkStatus::Accepted;
        }
        let pace = self.cfg.newcomer_pace;
        let paced = |t: Option<Micros>| t.is_none_or(|t| now.saturating_sub(t) >= pace);
        let welcome = self.cfg.neighbor_refresh > 0
            && !self.links.met.contains(&from)
            && paced(self.links.welcomed_at)
            && paced(self.links.replaced_at)
            && self.least_useful().is_some();
        if !welcome {
            return LinkStatus::Full;
        }
        self.links.welcomed_at = Some(now);
        LinkStatus::Accepted
    }

    /// A HELLO from an established neighbour's address: the neighbour starting over (it
    /// dropped or lost the link), or anyone spoofing its address. The link stays; the reply
    /// goes to the neighbour, with the nonce that keeps the link's token, and its ACK reopens
    /// the link (`on_ack`).
    fn answer_neighbor(&mut self, from: SocketAddr, h: Hello, token: u32) {
        let (status, nonce, peers) = if h.channel == self.cfg.channel {
            (LinkStatus::Accepted, token ^ h.nonce, self.peer_exchange(from))
        } else {
            self.out.drop_input(from, DropReason::WrongChannel);
            (LinkStatus::WrongChannel, 0, PeerSet::new())
        };
        let ack = LinkAck { status, echo: h.nonce, nonce, channel: self.cfg.channel };
        self.out.push(from, 0, Message::HelloReply(HelloReply { ack, peers }));
    }

    /// Peer exchange: a few random established neighbours other than the asker.
    fn peer_exchange(&mut self, asker: SocketAddr) -> PeerSet {
        let mut up: Vec<SocketAddrV4> =
            self.links.up().map(|(a, _)| a).filter(|a| *a != asker).filter_map(v4).collect();
        let mut peers = PeerSet::new();
        while !up.is_empty() && peers.len() < PeerSet::CAPACITY {
            let i = self.rng.random_range(0..up.len());
            peers.push(up.swap_remove(i));
        }
        peers
    }

    /// The answer to our HELLO. Only a reply echoing our nonce counts, peer exchange included.
    pub(super) fn on_reply(&mut self, now: Micros, from: SocketAddr, r: HelloReply) {
        let Some(n) = self.links.table.get_mut(&from) else {
            self.out.drop_input(from, DropReason::NotNeighbour);
            return;
        };
        let LinkState::HelloSent { nonce } = n.state() else {
            self.out.drop_input(from, DropReason::UnexpectedMessage);
            return;
        };
        if r.ack.echo != nonce {
            self.out.drop_input(from, DropReason::BadNonce);
            return;
        }
        for a in r.peers.as_slice() {
            self.links.add_candidate(self.cfg.addr, SocketAddr::V4(*a));
        }
        if r.ack.status != LinkStatus::Accepted {
            self.remove_neighbor(from, DownReason::Refused, false);
            return;
        }
        self.links.table.get_mut(&from).expect("checked above").up(now, link_token(nonce, r.ack.nonce), nonce);
        self.links.explore = false;
        // The ACK echoes the reply's nonce and carries our HELLO's, which the responder kept
        // no note of.
        let ack = LinkAck { status: LinkStatus::Accepted, echo: r.ack.nonce, nonce, channel: self.cfg.channel };
        let seq = self.links.next_seq(from);
        self.out.push(from, seq, Message::Ack(ack));
        self.link_up(from);
    }

    fn link_up(&mut self, a: SocketAddr) {
        let initiator = self.links.table[&a].initiator();
        self.out.event(Event::NeighborUp { peer: a, initiator });
        let n = self.links.up().count();
        self.out.stats.neighbors_max = self.out.stats.neighbors_max.max(n);
    }

    /// The third step: `a.echo` is our reply's nonce, `a.nonce` the HELLO's.
    pub(super) fn on_ack(&mut self, now: Micros, from: SocketAddr, a: LinkAck) {
        match self.links.table.get(&from).map(Neighbor::state) {
            Some(LinkState::Up { token, hello_nonce }) if a.echo == token ^ a.nonce => {
                if a.nonce == hello_nonce {
                    // This link's own handshake, again.
                    self.out.drop_input(from, DropReason::UnexpectedMessage);
                } else {
                    self.reopen(now, from, token, a.nonce);
                }
            }
            Some(LinkState::Up { .. }) => self.out.drop_input(from, DropReason::BadNonce),
            _ if self.cookie_valid(now, from, a.nonce, a.echo) => self.accept(now, from, a.nonce, a.echo),
            _ => self.out.drop_input(from, DropReason::BadNonce),
        }
    }

    /// A handshake we answered is complete: `from` joins, if there is room. A full table
    /// makes room by giving up the oldest of our own HELLOs still unanswered (the table
    /// filled up between our reply and this ACK), or, for a never-met newcomer, by replacing
    /// the least useful neighbour (at most one per `newcomer_pace`).
    fn accept(&mut self, now: Micros, from: SocketAddr, hello_nonce: u32, reply_nonce: u32) {
        let full = self.links.table.len() >= self.cfg.max_neighbors && !self.links.table.contains_key(&from);
        if full && !self.give_up_oldest_hello() {
            let newcomer = self.cfg.neighbor_refresh > 0 && !self.links.met.contains(&from);
            if !(newcomer && self.replace_least_useful(now, self.cfg.newcomer_pace)) {
                return self.out.drop_input(from, DropReason::TableFull);
            }
        }
        self.join(now, from, link_token(hello_nonce, reply_nonce), hello_nonce);
    }

    /// Forgets the oldest HELLO we sent that is still unanswered; whether there was one.
    fn give_up_oldest_hello(&mut self) -> bool {
        let oldest =
            self.links.table.iter().filter(|(_, n)| !n.is_up()).min_by_key(|(a, n)| (n.since(), **a)).map(|(a, _)| *a);
        oldest.is_some_and(|a| self.links.table.remove(&a).is_some())
    }

    /// The neighbour at `from` completed a new handshake: the old link ends, and the new one,
    /// with the same token, comes up at once.
    fn reopen(&mut self, now: Micros, from: SocketAddr, token: u32, hello_nonce: u32) {
        self.remove_neighbor(from, DownReason::Reopened, true);
        self.join(now, from, token, hello_nonce);
    }

    /// Puts `from` in the table as an established neighbour that opened the link.
    fn join(&mut self, now: Micros, from: SocketAddr, token: u32, hello_nonce: u32) {
        let mut n = self.new_neighbor(LinkState::Up { token, hello_nonce }, now, false);
        n.up(now, token, hello_nonce);
        self.links.table.insert(from, n);
        self.links.meet(from);
        self.links.remove_candidate(from);
        self.link_up(from);
    }
}
