//! One model of an imperfect path, loss, delay and jitter, shared by the virtual-time network
//! and the UDP shell, so that `--loss 0.01` means the same thing in a simulated swarm and on a
//! real socket. (The machines soplab runs on may lack `sch_netem`, so impairments live here
//! rather than in the kernel.)

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64Mcg;

use crate::Micros;

/// What a path does to each datagram: lost with probability `loss`, otherwise delivered after
/// `delay` plus a uniform random part of `jitter` (so jitter reorders, as on a real path).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Impairment {
    /// One-way delay before jitter.
    pub delay: Micros,
    /// Extra delay drawn uniformly from `0..=jitter`.
    pub jitter: Micros,
    /// Probability that a datagram is lost, from 0 to 1.
    pub loss: f64,
}

impl Impairment {
    /// A local network as the virtual-time tests assume by default: 20 ms plus up to 10 ms.
    pub const LAN: Impairment = Impairment { delay: 20_000, jitter: 10_000, loss: 0.0 };

    /// Whether it changes anything.
    pub fn is_active(&self) -> bool {
        self.delay > 0 || self.jitter > 0 || self.loss > 0.0
    }
}

/// An [`Impairment`] with its own seeded random stream: the same seed makes the same choices
/// for the same sequence of datagrams.
#[derive(Debug, Clone)]
pub struct Impairer {
    model: Impairment,
    rng: Pcg64Mcg,
}

impl Impairer {
    pub fn new(model: Impairment, seed: u64) -> Impairer {
        Impairer { model, rng: Pcg64Mcg::seed_from_u64(seed) }
    }

    pub fn model(&self) -> Impairment {
        self.model
    }

    /// The fate of the next datagram: `None` when it is lost, otherwise how long after now it
    /// arrives. Draws the loss first, then the jitter.
    pub fn fate(&mut self) -> Option<Micros> {
        let m = self.model;
        if m.loss > 0.0 && self.rng.random_bool(m.loss.min(1.0)) {
            return None;
        }
        let jitter = if m.jitter > 0 { self.rng.random_range(0..=m.jitter) } else { 0 };
        Some(m.delay + jitter)
    }
}

/// Items held back until a due time, released earliest first and, at equal times, in the
/// order they were held (so ties never reorder).
#[derive(Debug)]
pub struct DelayQueue<T> {
    heap: BinaryHeap<Held<T>>,
    seq: u64,
}

impl<T> Default for DelayQueue<T> {
    fn default() -> Self {
        DelayQueue { heap: BinaryHeap::new(), seq: 0 }
    }
}

impl<T> DelayQueue<T> {
    /// Holds `item` until `due`.
    pub fn push(&mut self, due: Micros, item: T) {
        self.heap.push(Held { due, seq: self.seq, item });
        self.seq += 1;
    }

    /// When the earliest held item is due.
    pub fn next_due(&self) -> Option<Micros> {
        self.heap.peek().map(|h| h.due)
    }

    /// The earliest held item if it is due by `now`.
    pub fn pop_due(&mut self, now: Micros) -> Option<(Micros, T)> {
        if self.next_due()? <= now { self.pop() } else { None }
    }

    /// The earliest held item, due or not.
    pub fn pop(&mut self) -> Option<(Micros, T)> {
        self.heap.pop().map(|h| (h.due, h.item))
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[derive(Debug)]
struct Held<T> {
    due: Micros,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Held<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}

impl<T> Eq for Held<T> {}

impl<T> PartialOrd for Held<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Held<T> {
    /// Reversed, so that the max-heap pops the earliest, then the first held.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_releases_in_due_then_hold_order() {
        let mut q = DelayQueue::default();
        q.push(30, "c");
        q.push(10, "a1");
        q.push(10, "a2");
        q.push(20, "b");
        assert_eq!(q.pop_due(5), None);
        assert_eq!(q.pop_due(10), Some((10, "a1")));
        assert_eq!(q.pop_due(10), Some((10, "a2")));
        assert_eq!(q.next_due(), Some(20));
        assert_eq!(q.pop(), Some((20, "b")));
        assert_eq!((q.len(), q.pop(), q.is_empty()), (1, Some((30, "c")), true));
    }

    #[test]
    fn fates_follow_the_model_and_the_seed() {
        let model = Impairment { delay: 1_000, jitter: 500, loss: 0.25 };
        let draw = |seed| {
            let mut i = Impairer::new(model, seed);
            (0..4000).map(|_| i.fate()).collect::<Vec<_>>()
        };
        let a = draw(1);
        assert_eq!(a, draw(1));
        assert_ne!(a, draw(2));
        let lost = a.iter().filter(|f| f.is_none()).count() as f64 / a.len() as f64;
        assert!((lost - 0.25).abs() < 0.03, "{lost}");
        assert!(a.iter().flatten().all(|d| (1_000..=1_500).contains(d)));
        let mut none = Impairer::new(Impairment::default(), 3);
        assert!(!Impairment::default().is_active() && none.fate() == Some(0));
    }
}
