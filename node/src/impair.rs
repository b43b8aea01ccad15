//! One model of an imperfect path, loss, delay and jitter, shared by the virtual-time network
//! and the UDP shell, so that `--loss 0.01` means the same thing in a simulated swarm and on a
//! real socket. (The machines soplab runs on may lack `sch_netem`, so impairments live here
//! rather than in the kernel.)
//!
//! Losses are independent (Bernoulli) unless a mean burst length is given: then they come in
//! bursts, from a two-state Gilbert–Elliott chain ([`Gilbert`]), with the same long-run share.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64Mcg;

use crate::Micros;

/// What a path does to each datagram: lost with probability `loss` (independently, or in
/// bursts of mean length `loss_burst`), otherwise delivered after `delay` plus a uniform random
/// part of `jitter` (so jitter reorders, as on a real path).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Impairment {
    /// One-way delay before jitter.
    pub delay: Micros,
    /// Extra delay drawn uniformly from `0..=jitter`.
    pub jitter: Micros,
    /// Probability that a datagram is lost, from 0 to 1: the long-run share lost.
    pub loss: f64,
    /// Mean number of consecutive datagrams lost together (a burst), 1 or more: losses then
    /// follow a [`Gilbert`] chain. None: each datagram is lost independently.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_burst: Option<f64>,
}

/// Why an [`Impairment`] cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ImpairmentError {
    #[error("loss {0} is not a share from 0 to 1 (e.g. 0.05 or 5%)")]
    Loss(f64),
    #[error("loss burst {0} is not a mean burst length of 1 datagram or more (e.g. 4)")]
    Burst(f64),
    #[error(
        "a loss of {loss} cannot come in bursts as short as {burst} datagrams on average (losing {loss} needs \
         bursts of at least {min:.3}); raise the burst length"
    )]
    BurstTooShort { loss: f64, burst: f64, min: f64 },
}

impl Impairment {
    /// A local network as the virtual-time tests assume by default: 20 ms plus up to 10 ms.
    pub const LAN: Impairment = Impairment { delay: 20_000, jitter: 10_000, loss: 0.0, loss_burst: None };

    /// Whether it changes anything.
    pub fn is_active(&self) -> bool {
        self.delay > 0 || self.jitter > 0 || self.loss > 0.0
    }

    /// Checks that the loss is a share and the burst length one a chain can have.
    ///
    /// # Errors
    /// When `loss` is outside 0..=1, or `loss_burst` is below 1 or too short for `loss`.
    pub fn check(&self) -> Result<(), ImpairmentError> {
        if !(0.0..=1.0).contains(&self.loss) {
            return Err(ImpairmentError::Loss(self.loss));
        }
        match self.loss_burst {
            Some(b) if !(b >= 1.0 && b.is_finite()) => Err(ImpairmentError::Burst(b)),
            Some(b) => Gilbert::new(self.loss, b).map(|_| ()),
            None => Ok(()),
        }
    }
}

/// The two-state Gilbert–Elliott loss model in its simple (Gilbert) form: a chain moves
/// between a good state, where every datagram is delivered, and a bad state, where every
/// datagram is lost, once per datagram. From good it turns bad with probability `p`; from bad
/// it turns good with probability `r`.
///
/// A burst (a run of consecutive losses) is a stay in the bad state, geometric with mean `1/r`
/// datagrams, and the long-run share lost is the chain's share of time in bad, `p / (p + r)`.
/// So a mean loss `L` in bursts of mean length `b` is `r = 1/b` and `p = L / (b (1 - L))`.
/// Independent losses are the case `b = 1 / (1 - L)` (`p = L`, `r = 1 - L`); shorter bursts
/// (down to 1) spread losses out more evenly than chance, longer ones bunch them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gilbert {
    /// P(good -> bad), per datagram.
    pub p: f64,
    /// P(bad -> good), per datagram.
    pub r: f64,
}

impl Gilbert {
    /// The chain with long-run loss `loss` (0 to 1) in bursts of mean length `burst` (>= 1).
    ///
    /// # Errors
    /// When `p` would exceed 1: a loss above one half needs bursts of at least `L / (1 - L)`.
    pub fn new(loss: f64, burst: f64) -> Result<Gilbert, ImpairmentError> {
        if !(0.0..=1.0).contains(&loss) {
            return Err(ImpairmentError::Loss(loss));
        }
        if !(burst >= 1.0 && burst.is_finite()) {
            return Err(ImpairmentError::Burst(burst));
        }
        if loss >= 1.0 {
            // Always bad: every datagram is lost, bursts never end.
            return Ok(Gilbert { p: 1.0, r: 0.0 });
        }
        let p = loss / (burst * (1.0 - loss));
        // (A little slack for rounding: 80% in bursts of exactly 4 is p = 1.)
        if p > 1.0 + 1e-9 {
            return Err(ImpairmentError::BurstTooShort { loss, burst, min: loss / (1.0 - loss) });
        }
        Ok(Gilbert { p: p.min(1.0), r: 1.0 / burst })
    }

    /// The long-run share of datagrams lost, `p / (p + r)`.
    pub fn mean_loss(&self) -> f64 {
        if self.p + self.r == 0.0 { 0.0 } else { self.p / (self.p + self.r) }
    }

    /// The mean length of a burst of losses, `1 / r` datagrams.
    pub fn mean_burst(&self) -> f64 {
        1.0 / self.r
    }
}

/// An [`Impairment`] with its own seeded random stream: the same seed makes the same choices
/// for the same sequence of datagrams.
#[derive(Debug, Clone)]
pub struct Impairer {
    model: Impairment,
    rng: Pcg64Mcg,
    /// The loss chain and whether it is in its bad state, when losses come in bursts.
    chain: Option<(Gilbert, bool)>,
}

impl Impairer {
    /// An impairer of `model` drawing from `seed`. A burst model whose parameters cannot be met
    /// ([`Impairment::check`]) falls back to independent losses: check models where they are
    /// read.
    pub fn new(model: Impairment, seed: u64) -> Impairer {
        let mut rng = Pcg64Mcg::seed_from_u64(seed);
        // The chain starts in its long-run state, so the first datagrams already lose `loss`.
        let chain = model
            .loss_burst
            .and_then(|b| Gilbert::new(model.loss, b).ok())
            .map(|g| (g, rng.random_bool(g.mean_loss().clamp(0.0, 1.0))));
        Impairer { model, rng, chain }
    }

    pub fn model(&self) -> Impairment {
        self.model
    }

    /// The fate of the next datagram: `None` when it is lost, otherwise how long after now it
    /// arrives. Draws the loss first, then the jitter.
    pub fn fate(&mut self) -> Option<Micros> {
        let m = self.model;
        if self.lost() {
            return None;
        }
        let jitter = if m.jitter > 0 { self.rng.random_range(0..=m.jitter) } else { 0 };
        Some(m.delay + jitter)
    }

    /// Whether the next datagram is lost: the chain's state, which then moves on; or an
    /// independent draw.
    fn lost(&mut self) -> bool {
        match &mut self.chain {
            Some((g, bad)) => {
                let lost = *bad;
                let flip = if lost { g.r } else { g.p };
                if self.rng.random_bool(flip) {
                    *bad = !lost;
                }
                lost
            }
            None => self.model.loss > 0.0 && self.rng.random_bool(self.model.loss.min(1.0)),
        }
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
        let model = Impairment { delay: 1_000, jitter: 500, loss: 0.25, loss_burst: None };
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

    /// The share lost and the mean length of runs of consecutive losses over `n` datagrams.
    fn loss_and_bursts(model: Impairment, seed: u64, n: usize) -> (f64, f64) {
        let mut imp = Impairer::new(model, seed);
        let (mut lost, mut bursts, mut in_burst) = (0usize, 0usize, false);
        for _ in 0..n {
            let l = imp.fate().is_none();
            lost += usize::from(l);
            bursts += usize::from(l && !in_burst);
            in_burst = l;
        }
        (lost as f64 / n as f64, lost as f64 / bursts.max(1) as f64)
    }

    #[test]
    fn gilbert_elliott_keeps_the_mean_loss_and_the_mean_burst_length() {
        let bursty = Impairment { loss: 0.05, loss_burst: Some(4.0), ..Impairment::default() };
        let g = Gilbert::new(0.05, 4.0).unwrap();
        assert!((g.r - 0.25).abs() < 1e-12 && (g.p - 0.05 / 3.8).abs() < 1e-12, "{g:?}");
        assert!((g.mean_loss() - 0.05).abs() < 1e-12 && (g.mean_burst() - 4.0).abs() < 1e-12);
        // 10^6 datagrams: about 12,500 bursts, so the means are within a few percent.
        for seed in [1, 2, 3] {
            let (loss, burst) = loss_and_bursts(bursty, seed, 1_000_000);
            assert!((loss - 0.05).abs() < 0.003, "seed {seed}: lost {loss}");
            assert!((burst - 4.0).abs() < 0.15, "seed {seed}: bursts of {burst} on average");
        }
        // The same share lost independently comes in runs of 1 / (1 - L) = 1.05.
        let (loss, burst) = loss_and_bursts(Impairment { loss_burst: None, ..bursty }, 1, 1_000_000);
        assert!((loss - 0.05).abs() < 0.003 && (burst - 1.0 / 0.95).abs() < 0.02, "{loss} {burst}");
        // Bursts of exactly 1 spread the losses; a chain with L = 0 or 1 never or always loses.
        let (loss, burst) = loss_and_bursts(Impairment { loss_burst: Some(1.0), ..bursty }, 1, 200_000);
        assert!((loss - 0.05).abs() < 0.003 && burst == 1.0, "{loss} {burst}");
        for (l, want) in [(0.0, 0.0), (1.0, 1.0)] {
            let m = Impairment { loss: l, loss_burst: Some(4.0), ..bursty };
            assert_eq!(loss_and_bursts(m, 1, 1000).0, want);
        }
    }

    #[test]
    fn burst_models_are_seeded_and_checked() {
        let bursty = Impairment { delay: 5, loss: 0.05, loss_burst: Some(4.0), ..Impairment::default() };
        let draw = |seed| {
            let mut i = Impairer::new(bursty, seed);
            (0..2000).map(|_| i.fate()).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        assert_eq!(bursty.check(), Ok(()));
        let bad = |loss, loss_burst| Impairment { loss, loss_burst, ..bursty }.check().unwrap_err().to_string();
        assert!(bad(1.5, None).contains("share from 0 to 1"));
        assert!(bad(0.05, Some(0.5)).contains("1 datagram or more"));
        assert!(bad(0.05, Some(f64::NAN)).contains("1 datagram or more"));
        // Losing 80% needs bursts of at least 0.8 / 0.2 = 4 datagrams.
        let e = bad(0.8, Some(2.0));
        assert!(e.contains("at least 4.000") && e.contains("raise the burst length"), "{e}");
        assert_eq!(Impairment { loss: 0.8, loss_burst: Some(4.0), ..bursty }.check(), Ok(()));
    }
}
