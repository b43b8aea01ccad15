//! Serving children: their requests (no tit-for-tat: any established neighbour may ask, up to
//! `max_children` and `child_queue`), the responses queued round-robin between children, and
//! the token bucket that caps the video upload rate.

use std::collections::VecDeque;
use std::net::SocketAddr;

use soplab_node::{DropReason, Event, Micros, Transmit};
use soplab_wire::video::{VIDEO_HEADER_LEN, fragment_payload_len};
use soplab_wire::{BLOCK_LEN, Message, Repr, Request, segment};

use super::Peer;

/// Least token-bucket depth (bytes), so that a low cap still lets a whole packet through.
const MIN_BUCKET: f64 = 64e3;

/// What we know of a neighbour as our child.
#[derive(Debug, Default)]
pub(super) struct Child {
    /// Whether it counts as a child (it requested lately, or we still owe it a response).
    active: bool,
    /// Last time it requested from us, if it ever did.
    last_request: Option<Micros>,
    /// Its responses queued or being sent.
    queued: usize,
}

impl Child {
    pub(super) fn is_child(&self) -> bool {
        self.active
    }

    /// Whether it stopped being a child: nothing owed, and no request for `timeout`.
    fn lapsed(&self, now: Micros, timeout: Micros) -> bool {
        self.active && self.last_request.is_none_or(|t| now.saturating_sub(t) > timeout) && self.queued == 0
    }
}

/// A response being sent, one video packet at a time.
#[derive(Debug)]
struct Response {
    child: SocketAddr,
    request: u32,
    first_block: u32,
    count: u8,
    data: Vec<u8>,
    /// The next packet to send.
    next: u16,
    packets: u32,
    /// When the request came.
    asked_at: Micros,
}

impl Response {
    /// Bytes of the next packet (header included), which is what the upload cap counts.
    fn next_len(&self) -> usize {
        VIDEO_HEADER_LEN + fragment_payload_len(self.count, self.next)
    }
}

/// The upload queue and its rate cap.
pub(super) struct Upload {
    /// Round-robin: a response goes back to the end after each packet.
    queue: VecDeque<Response>,
    /// Token bucket of the upload cap, in bytes, as of `tokens_at`.
    tokens: f64,
    tokens_at: Micros,
}

impl Upload {
    pub(super) fn new() -> Upload {
        Upload { queue: VecDeque::new(), tokens: 0.0, tokens_at: 0 }
    }

    /// The bucket starts empty when the session does.
    pub(super) fn start(&mut self, now: Micros) {
        self.tokens_at = now;
    }

    pub(super) fn clear(&mut self) {
        self.queue.clear();
    }

    /// Drops what is queued for `child` (the link is gone).
    pub(super) fn forget(&mut self, child: SocketAddr) {
        self.queue.retain(|r| r.child != child);
    }

    /// When the cap lets the next packet out, if one waits and a cap is set.
    pub(super) fn next_packet_at(&self, upload_bps: Option<u64>) -> Option<Micros> {
        let (Some(r), Some(bps)) = (self.queue.front(), upload_bps) else { return None };
        let deficit = (r.next_len() as f64 - self.tokens).max(0.0);
        let wait = (deficit * 8e6 / bps as f64).ceil() as Micros;
        Some(self.tokens_at + wait.max(1))
    }

    /// Takes `len` bytes' worth of tokens at `now`, if the bucket has them.
    fn take_tokens(&mut self, len: usize, bps: u64, now: Micros) -> bool {
        let rate = bps as f64 / 8.0;
        self.tokens = (self.tokens + now.saturating_sub(self.tokens_at) as f64 * rate / 1e6).min(rate.max(MIN_BUCKET));
        self.tokens_at = now;
        if self.tokens < len as f64 {
            return false;
        }
        self.tokens -= len as f64;
        true
    }
}

impl Peer {
    fn children(&self) -> usize {
        self.links.all().filter(|(_, n)| n.as_child.is_child()).count()
    }

    pub(super) fn expire_children(&mut self, now: Micros) {
        let timeout = self.cfg.child_timeout;
        let mut down = Vec::new();
        for (a, n) in self.links.all_mut() {
            if n.as_child.lapsed(now, timeout) {
                n.as_child.active = false;
                down.push(a);
            }
        }
        for a in down {
            self.out.event(Event::ChildDown { child: a });
        }
    }

    /// A neighbour's request: queued whole if it carries the link's token (else it was sent
    /// by someone else from the neighbour's address) and we may serve it and have every block.
    pub(super) fn on_request(&mut self, now: Micros, from: SocketAddr, r: Request) {
        let Some(n) = self.links.get_up(from) else {
            return self.out.drop_input(from, DropReason::NotNeighbour);
        };
        if n.token() != Some(r.token) {
            return self.out.drop_input(from, DropReason::BadToken);
        }
        if r.channel != self.cfg.channel {
            return self.out.drop_input(from, DropReason::WrongChannel);
        }
        if let Err(reason) = self.may_serve(from, &r, now) {
            return self.out.drop_input(from, reason);
        }
        let mut data = Vec::with_capacity(usize::from(r.count) * BLOCK_LEN);
        for b in r.first_block..r.first_block + u32::from(r.count) {
            match self.block(b) {
                Some(bytes) => data.extend_from_slice(&bytes),
                None => return self.out.drop_input(from, DropReason::MissingBlock),
            }
        }
        let n = self.links.get_mut(from).expect("checked in may_serve");
        n.heard(now);
        n.as_child.last_request = Some(now);
        n.as_child.queued += 1;
        if !n.as_child.active {
            n.as_child.active = true;
            self.out.event(Event::ChildUp { child: from });
            let c = self.children();
            self.out.stats.max_children = self.out.stats.max_children.max(c);
        }
        let (request, first_block, count) = (r.request, r.first_block, r.count);
        let r = Response { child: from, request, first_block, count, data, next: 0, packets: 0, asked_at: now };
        self.upload.queue.push_back(r);
    }

    /// Why `from`'s request `r` is refused, if it is: not a neighbour, too many children or
    /// too much queued for it, or blocks we do not have.
    fn may_serve(&self, from: SocketAddr, r: &Request, now: Micros) -> Result<(), DropReason> {
        let children = self.children();
        let n = self.links.get_up(from).ok_or(DropReason::NotNeighbour)?;
        if (!n.as_child.active && children >= self.cfg.max_children) || n.as_child.queued >= self.cfg.child_queue {
            return Err(DropReason::Overloaded);
        }
        if !(r.first_block..r.first_block + u32::from(r.count)).all(|b| self.has_block(b, now)) {
            return Err(DropReason::MissingBlock);
        }
        Ok(())
    }

    /// The next video packet the upload cap allows, if any.
    pub(super) fn next_video(&mut self, now: Micros) -> Option<Transmit> {
        let len = self.upload.queue.front()?.next_len();
        if let Some(bps) = self.cfg.upload_bps
            && !self.upload.take_tokens(len, bps, now)
        {
            return None;
        }
        let mut r = self.upload.queue.pop_front().expect("front exists");
        let v = segment(r.request, r.first_block, &r.data).ok()?.get(r.next)?;
        let seq = self.links.next_seq(r.child);
        let payload = Repr::new(seq, Message::Video(v)).to_vec();
        let dst = r.child;
        r.next += 1;
        r.packets += 1;
        self.out.stats.uploaded_bytes += v.payload.len() as u64;
        if r.next < v.total {
            self.upload.queue.push_back(r);
        } else {
            self.response_sent(r);
        }
        Some(Transmit { dst, payload })
    }

    /// Drops the queued responses not started by the time their child gives up on them
    /// (`request_timeout` after asking): sending them would spend upload on video nobody waits
    /// for, and under load that spiral starves everyone (a 132-peer swarm fell to continuity
    /// 0.67 without it).
    pub(super) fn expire_responses(&mut self, now: Micros) {
        let timeout = self.cfg.request_timeout;
        let stale = |r: &Response| r.next == 0 && now.saturating_sub(r.asked_at) > timeout;
        if !self.upload.queue.iter().any(stale) {
            return;
        }
        let (gone, kept): (Vec<Response>, Vec<Response>) = self.upload.queue.drain(..).partition(stale);
        self.upload.queue = kept.into();
        for r in gone {
            if let Some(n) = self.links.get_mut(r.child) {
                n.as_child.queued = n.as_child.queued.saturating_sub(1);
            }
            self.out.stats.responses_expired += 1;
        }
    }

    /// The last packet of `r` went out.
    fn response_sent(&mut self, r: Response) {
        if let Some(n) = self.links.get_mut(r.child) {
            n.as_child.queued = n.as_child.queued.saturating_sub(1);
        }
        self.out.stats.responses_sent += 1;
        self.out.event(Event::ResponseSent {
            child: r.child,
            request: r.request,
            first_block: r.first_block,
            count: r.count,
            bytes: r.data.len() as u64,
            packets: r.packets,
        });
    }
}
