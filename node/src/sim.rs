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
    dst: SocketAddr,
    payload: Vec<u8>,
}

/// What [`Network::on_datagram`] is handed: the time, sender, receiver and bytes of a datagram.
pub type Tap = dyn FnMut(Micros, SocketAddr, SocketAddr, &[u8]);

/// The virtual-time network. Nodes are boxed so tracker, source and peers can share it.
pub struct Network {
    nodes: Vec<Option<Box<dyn Node>>>,
    index: HashMap<SocketAddr, usize>,
    now: Micros,
    deliveries: DelayQueue<InFlight>,
    timers: BinaryHeap<Reverse<(Micros, usize)>>,
    timer_at: Vec<Option<Micros>>,
    /// Every link's impairment, with one random stream for the whole network...
    link: Impairer,
    /// ...except what the nodes given their own (a host's path, as `--delay` draws per host)
    /// send, each with its own stream.
    own_link: Vec<Option<Impairer>>,
    seed: u64,
    media: Option<Box<dyn FnMut(SocketAddr, Media)>>,
    tap: Option<Box<Tap>>,
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
            own_link: Vec::new(),
            seed,
            media: None,
            tap: None,
            stats: NetStats::default(),
        }
    }

    /// Hands every played block to `f` (otherwise played media are discarded).
    pub fn on_media(&mut self, f: impl FnMut(SocketAddr, Media) + 'static) {
        self.media = Some(Box::new(f));
    }

    /// Hands every datagram to `f` when it arrives (or would have, if its receiver left while
    /// it was on its way), in time order: what a capture on one bridge between all hosts sees.
    /// Lost datagrams are not seen: the loss is the sender's (its I/O shell drops them before
    /// the socket), and so is a datagram to an address no node ever had. A datagram to a node
    /// that was removed is seen: its host is still on the bridge.
    pub fn on_datagram(&mut self, f: impl FnMut(Micros, SocketAddr, SocketAddr, &[u8]) + 'static) {
        self.tap = Some(Box::new(f));
    }

    /// Gives what `addr` sends its own path model (its host's delay, jitter and loss) instead of
    /// the network's. Call after [`Network::add`]; the node's draws get their own seeded stream.
    pub fn set_impairment(&mut self, addr: SocketAddr, model: Impairment) {
        if let Some(&i) = self.index.get(&addr) {
            let seed = self.seed ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            self.own_link[i] = Some(Impairer::new(model, seed));
        }
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
        self.own_link.push(None);
        self.index.insert(addr, i);
        self.nodes[i].as_mut().expect("just added").handle_timeout(self.now);
        self.flush(i, on_event);
    }

    /// Removes a node: it goes silent, as a SopCast client does when it quits, without being
    /// told. Returns it. Its address stays routable, as a host whose client is closed: what
    /// others still send it crosses the network (the tap sees it) and is discarded on arrival.
    pub fn remove(&mut self, addr: SocketAddr) -> Option<Box<dyn Node>> {
        let i = *self.index.get(&addr)?;
        self.timer_at[i] = None;
        self.nodes[i].take()
    }

    /// Stops a node cleanly ([`Node::handle_shutdown`]: a peer leaves the tracker), sends what
    /// it says on the way out, and removes it as [`Network::remove`] does.
    pub fn shutdown(
        &mut self,
        addr: SocketAddr,
        on_event: &mut dyn FnMut(Micros, SocketAddr, &Event),
    ) -> Option<Box<dyn Node>> {
        let i = *self.index.get(&addr)?;
        self.nodes[i].as_mut()?.handle_shutdown(self.now);
        self.flush(i, on_event);
        self.remove(addr)
    }

    /// Ends a node's session without a word ([`Node::handle_vanish`]), as a SopCast user
    /// closing the player: its last events are reported, what it still queues is discarded,
    /// and it is removed as [`Network::remove`] does.
    pub fn vanish(
        &mut self,
        addr: SocketAddr,
        on_event: &mut dyn FnMut(Micros, SocketAddr, &Event),
    ) -> Option<Box<dyn Node>> {
        let now = self.now;
        let mut node = self.remove(addr)?;
        node.handle_vanish(now);
        while node.poll_transmit(now).is_some() {}
        while node.poll_media().is_some() {}
        while let Some(ev) = node.poll_event() {
            on_event(now, addr, &ev);
        }
        Some(node)
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
        self.index.iter().filter(|&(_, &i)| self.nodes[i].is_some()).map(|(a, _)| *a)
    }

    /// Sends `payload` to `dst` now as if `from` had sent it: a forged source address, which
    /// UDP does not check, as an off-path attacker sends. It takes the network's path (loss,
    /// delay) and the tap sees it like any datagram; `from` need not be a node's address.
    pub fn spoof(&mut self, from: SocketAddr, dst: SocketAddr, payload: Vec<u8>) {
        self.stats.sent += 1;
        self.stats.bytes += payload.len() as u64;
        let Some(&to) = self.index.get(&dst) else {
            self.stats.unroutable += 1;
            return;
        };
        let Some(after) = self.link.fate() else {
            self.stats.lost += 1;
            return;
        };
        self.deliveries.push(self.now + after, InFlight { to, from, dst, payload });
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
                if let Some(tap) = self.tap.as_mut() {
                    tap(self.now, d.from, d.dst, &d.payload);
                }
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
            let link = self.own_link[i].as_mut().unwrap_or(&mut self.link);
            let Some(after) = link.fate() else {
                self.stats.lost += 1;
                continue;
            };
            self.deliveries.push(now + after, InFlight { to, from, dst: t.dst, payload: t.payload });
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

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::*;
    use crate::Transmit;

    /// Sends one datagram to `to` per `every`, until `until`.
    struct Ticker {
        addr: SocketAddr,
        to: SocketAddr,
        every: Micros,
        until: Micros,
        next: Micros,
        out: Option<Transmit>,
    }

    impl Node for Ticker {
        fn local_addr(&self) -> SocketAddr {
            self.addr
        }
        fn handle_datagram(&mut self, _: Micros, _: SocketAddr, _: &[u8]) {}
        fn handle_timeout(&mut self, now: Micros) {
            if now >= self.next && now < self.until {
                self.out = Some(Transmit { dst: self.to, payload: vec![7; 42] });
                self.next = now + self.every;
            }
        }
        fn poll_transmit(&mut self, _: Micros) -> Option<Transmit> {
            self.out.take()
        }
        fn poll_timeout(&self) -> Option<Micros> {
            (self.next < self.until).then_some(self.next)
        }
        fn poll_event(&mut self) -> Option<Event> {
            None
        }
    }

    fn ticker(addr: &str, to: &str) -> Box<Ticker> {
        let (addr, to) = (addr.parse().unwrap(), to.parse().unwrap());
        Box::new(Ticker { addr, to, every: 1_000_000, until: 10_000_000, next: 1_000_000, out: None })
    }

    #[test]
    fn the_tap_sees_every_delivery_in_order_with_each_senders_own_delay() {
        let mut net = Network::new(1, Impairment { delay: 5_000, jitter: 0, loss: 0.0, loss_burst: None });
        let seen = Rc::new(RefCell::new(Vec::new()));
        let s = seen.clone();
        net.on_datagram(move |t, from, to, data| s.borrow_mut().push((t, from, to, data.len())));
        let (a, b): (SocketAddr, SocketAddr) = ("10.0.0.1:1".parse().unwrap(), "10.0.0.2:1".parse().unwrap());
        net.add(ticker("10.0.0.1:1", "10.0.0.2:1"), &mut |_, _, _| {});
        net.add(ticker("10.0.0.2:1", "10.0.0.1:1"), &mut |_, _, _| {});
        net.set_impairment(b, Impairment { delay: 300_000, jitter: 0, loss: 0.0, loss_burst: None });
        net.run_until(20_000_000, &mut |_, _, _| {});
        let seen = seen.borrow();
        assert_eq!(seen.len(), 18, "9 each, from 1 s to 9 s");
        assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "in time order");
        assert!(seen.iter().all(|x| x.3 == 42));
        // b's first datagram went out at 1 s with b's own 300 ms; a's with the network's 5 ms.
        assert!(seen.contains(&(1_300_000, b, a, 42)), "{seen:?}");
        assert!(seen.contains(&(1_005_000, a, b, 42)), "{seen:?}");
        assert_eq!(net.stats().delivered, 18);
    }

    #[test]
    fn a_removed_node_still_receives_on_the_bridge_and_can_come_back() {
        let mut net = Network::new(1, Impairment { delay: 1_000, jitter: 0, loss: 0.0, loss_burst: None });
        let seen = Rc::new(RefCell::new(Vec::new()));
        let s = seen.clone();
        net.on_datagram(move |t, from, _, _| s.borrow_mut().push((t, from)));
        let (a, b): (SocketAddr, SocketAddr) = ("10.0.0.1:1".parse().unwrap(), "10.0.0.2:1".parse().unwrap());
        net.add(ticker("10.0.0.1:1", "10.0.0.2:1"), &mut |_, _, _| {});
        net.add(ticker("10.0.0.2:1", "10.0.0.1:1"), &mut |_, _, _| {});
        net.run_until(4_500_000, &mut |_, _, _| {});
        assert!(net.vanish(b, &mut |_, _, _| {}).is_some());
        assert_eq!(net.addrs().collect::<Vec<_>>(), [a]);
        net.run_until(7_500_000, &mut |_, _, _| {});
        // a kept sending to b at 5, 6 and 7 s: on the wire, but nobody took them.
        assert_eq!(net.stats().unroutable, 3);
        assert_eq!(seen.borrow().iter().filter(|x| x.1 == a).count(), 7);
        net.add(ticker("10.0.0.2:1", "10.0.0.1:1"), &mut |_, _, _| {});
        net.run_until(20_000_000, &mut |_, _, _| {});
        // Tickers stop at 10 s: a's at 8 and 9 s reach the new b, which sends at 7.5, 8.5, 9.5 s.
        assert_eq!(net.stats().delivered, 4 + 4 + 2 + 3, "b is back from 7.5 s");
        assert!(net.shutdown(a, &mut |_, _, _| {}).is_some());
        assert!(net.node(a).is_none() && net.node(b).is_some());
    }

    #[test]
    fn a_spoofed_datagram_arrives_from_the_forged_address() {
        let mut net = Network::new(1, Impairment { delay: 2_000, ..Impairment::default() });
        let seen = Rc::new(RefCell::new(Vec::new()));
        let s = seen.clone();
        net.on_datagram(move |t, from, to, data| s.borrow_mut().push((t, from, to, data.len())));
        // A node that sends nothing before 1 s.
        let ear: SocketAddr = "10.0.0.1:1".parse().unwrap();
        net.add(ticker("10.0.0.1:1", "10.0.0.3:1"), &mut |_, _, _| {});
        let forged: SocketAddr = "10.9.9.9:9".parse().unwrap();
        net.run_until(1_000, &mut |_, _, _| {});
        net.spoof(forged, ear, vec![0; 20]);
        net.spoof(forged, "10.0.0.2:1".parse().unwrap(), vec![0; 20]);
        net.run_until(10_000, &mut |_, _, _| {});
        assert_eq!(*seen.borrow(), [(3_000, forged, ear, 20)]);
        let s = net.stats();
        assert_eq!((s.sent, s.delivered, s.unroutable, s.bytes), (2, 1, 1, 40));
    }
}
