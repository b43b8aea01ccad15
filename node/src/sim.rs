//! A deterministic in-memory network in virtual time: the daemons' cores exchange datagrams
//! with seeded loss and delay, with no sockets and no clock, so a 10-minute swarm runs in
//! seconds and the same seed gives the same event log.

use std::any::Any;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;

use crate::impair::{DelayQueue, Impairer, Impairment};
use crate::{Event, Media, Micros, Node};

/// Counters of what the network carried.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NetStats {
    pub sent: u64,
    pub delivered: u64,
    pub lost: u64,
    /// Sent to an address with no live node (a departed peer, a stale tracker entry).
    pub unroutable: u64,
    pub bytes: u64,
}

/// A datagram on its way.
struct InFlight {
    to: usize,
    from: SocketAddr,
    payload: Vec<u8>,
}

/// The virtual-time network. Nodes are boxed so tracker, source and peers can share it.
pub struct Network {
    nodes: Vec<Option<Box<dyn Node>>>,
    index: HashMap<SocketAddr, usize>,
    now: Micros,
    deliveries: DelayQueue<InFlight>,
    timers: BinaryHeap<Reverse<(Micros, usize)>>,
    timer_at: Vec<Option<Micros>>,
    /// Every link's impairment, with one random stream for the whole network.
    link: Impairer,
    media: Option<Box<dyn FnMut(SocketAddr, Media)>>,
    stats: NetStats,
}

impl Network {
    /// An empty network whose every link is impaired as `link` says, drawing from `seed`.
    pub fn new(seed: u64, link: Impairment) -> Network {
        Network {
            nodes: Vec::new(),
            index: HashMap::new(),
            now: 0,
            deliveries: DelayQueue::default(),
            timers: BinaryHeap::new(),
            timer_at: Vec::new(),
            link: Impairer::new(link, seed),
            media: None,
            stats: NetStats::default(),
        }
    }

    /// Hands every played block to `f` (otherwise played media are discarded).
    pub fn on_media(&mut self, f: impl FnMut(SocketAddr, Media) + 'static) {
        self.media = Some(Box::new(f));
    }

    /// Virtual time now.
    pub fn now(&self) -> Micros {
        self.now
    }

    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// Adds a node at the current time and runs its first timer at once.
    pub fn add(&mut self, node: Box<dyn Node>, on_event: &mut dyn FnMut(Micros, SocketAddr, &Event)) {
        let addr = node.local_addr();
        let i = self.nodes.len();
        self.nodes.push(Some(node));
        self.timer_at.push(None);
        self.index.insert(addr, i);
        self.nodes[i].as_mut().expect("just added").handle_timeout(self.now);
        self.flush(i, on_event);
    }

    /// Removes a node: it goes silent, as a SopCast client does when it quits. Returns it.
    pub fn remove(&mut self, addr: SocketAddr) -> Option<Box<dyn Node>> {
        let i = self.index.remove(&addr)?;
        self.timer_at[i] = None;
        self.nodes[i].take()
    }

    /// The live node at `addr`, for inspection (downcast with [`Network::get`]).
    pub fn node(&self, addr: SocketAddr) -> Option<&dyn Node> {
        self.index.get(&addr).and_then(|&i| self.nodes[i].as_deref())
    }

    /// The live node at `addr` as its concrete type.
    pub fn get<T: Node>(&self, addr: SocketAddr) -> Option<&T> {
        let node: &dyn Any = self.node(addr)?;
        node.downcast_ref::<T>()
    }

    /// Every live node's address.
    pub fn addrs(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.index.keys().copied()
    }

    /// Runs until virtual time `end`, handing every event to `on_event`.
    pub fn run_until(&mut self, end: Micros, on_event: &mut dyn FnMut(Micros, SocketAddr, &Event)) {
        loop {
            let next_delivery = self.deliveries.next_due();
            // Drop stale timer entries (a node rescheduled or left).
            while let Some(&Reverse((t, i))) = self.timers.peek() {
                if self.timer_at[i] == Some(t) {
                    break;
                }
                self.timers.pop();
            }
            let next_timer = self.timers.peek().map(|Reverse((t, _))| *t);
            let next = match (next_delivery, next_timer) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (None, None) => break,
            };
            if next > end {
                break;
            }
            self.now = self.now.max(next);
            if next_delivery == Some(next) {
                let (_, d) = self.deliveries.pop().expect("peeked");
                let Some(node) = self.nodes[d.to].as_mut() else {
                    self.stats.unroutable += 1;
                    continue;
                };
                self.stats.delivered += 1;
                node.handle_datagram(self.now, d.from, &d.payload);
                self.flush(d.to, on_event);
            } else {
                let Reverse((_, i)) = self.timers.pop().expect("peeked");
                self.timer_at[i] = None;
                if let Some(node) = self.nodes[i].as_mut() {
                    node.handle_timeout(self.now);
                    self.flush(i, on_event);
                }
            }
        }
        self.now = self.now.max(end);
    }

    /// Collects a node's transmits and events after an input and re-arms its timer.
    fn flush(&mut self, i: usize, on_event: &mut dyn FnMut(Micros, SocketAddr, &Event)) {
        let now = self.now;
        let Some(node) = self.nodes[i].as_mut() else { return };
        let from = node.local_addr();
        while let Some(ev) = node.poll_event() {
            on_event(now, from, &ev);
        }
        while let Some(t) = node.poll_transmit(now) {
            self.stats.sent += 1;
            self.stats.bytes += t.payload.len() as u64;
            let Some(&to) = self.index.get(&t.dst) else {
                self.stats.unroutable += 1;
                continue;
            };
            let Some(after) = self.link.fate() else {
                self.stats.lost += 1;
                continue;
            };
            self.deliveries.push(now + after, InFlight { to, from, payload: t.payload });
        }
        // Events raised while transmitting.
        while let Some(ev) = node.poll_event() {
            on_event(now, from, &ev);
        }
        while let Some(m) = node.poll_media() {
            if let Some(sink) = self.media.as_mut() {
                sink(from, m);
            }
        }
        let next = node.poll_timeout();
        if next != self.timer_at[i] {
            self.timer_at[i] = next;
            if let Some(t) = next {
                self.timers.push(Reverse((t.max(now), i)));
                self.timer_at[i] = Some(t.max(now));
            }
        }
    }
}
