//! The activity of one directed pair in one layer: the time slots in which it sent something.
//!
//! Stored as runs of 64-slot words, so that a pair that is busy all along costs one bit per slot
//! (as a plain bitmap would) while a long silence costs nothing: a new run starts wherever the
//! pair was silent for more than [`GAP_WORDS`] words. Memory is O(slots set), whatever the
//! timestamps say. Slots set out of order before the last run go to the run that holds them or,
//! between runs, to a small ordered map, so that a capture in reverse time order stays
//! O(n log n) to read.

use std::collections::BTreeMap;

/// Silent words a run bridges with zeros before a new run starts (a run entry costs as much
/// as two words).
const GAP_WORDS: u64 = 2;

/// One run: `len` words from word index `first`, stored from `start` in [`Activity::words`].
#[derive(Debug, Clone, Copy)]
struct Run {
    first: u64,
    start: usize,
}

/// The slots in which a pair was active (one bit per slot).
#[derive(Debug, Clone, Default)]
pub struct Activity {
    /// Runs in ascending word order; run i holds `words[runs[i].start..runs[i + 1].start]`.
    runs: Vec<Run>,
    words: Vec<u64>,
    /// Words set out of order that fall between runs (never inside one).
    late: BTreeMap<u64, u64>,
}

impl Activity {
    /// Marks `slot` active.
    #[inline]
    pub fn set(&mut self, slot: u64) {
        let (w, bit) = (slot / 64, 1u64 << (slot % 64));
        let Some(last) = self.runs.last().copied() else {
            self.runs.push(Run { first: w, start: 0 });
            self.words.push(bit);
            return;
        };
        let end = last.first + (self.words.len() - last.start) as u64;
        if w >= last.first && w < end {
            let i = last.start + (w - last.first) as usize;
            self.words[i] |= bit;
        } else if w >= end && w - end <= GAP_WORDS {
            self.words.extend(std::iter::repeat_n(0, (w - end) as usize));
            self.words.push(bit);
        } else if w >= end {
            self.runs.push(Run { first: w, start: self.words.len() });
            self.words.push(bit);
        } else {
            self.set_early(w, bit);
        }
    }

    /// A word before the last run: into the run that covers it, or between runs.
    #[cold]
    fn set_early(&mut self, w: u64, bit: u64) {
        let r = self.runs.partition_point(|r| r.first <= w);
        if r > 0 {
            let run = self.runs[r - 1];
            let len = self.run_len(r - 1);
            if w - run.first < len as u64 {
                self.words[run.start + (w - run.first) as usize] |= bit;
                return;
            }
        }
        *self.late.entry(w).or_insert(0) |= bit;
    }

    fn run_len(&self, r: usize) -> usize {
        let end = self.runs.get(r + 1).map_or(self.words.len(), |n| n.start);
        end - self.runs[r].start
    }

    /// The non-zero words with an index in `from..=to`, ascending: (word index, bits).
    pub fn words(&self, from: u64, to: u64) -> impl Iterator<Item = (u64, u64)> + '_ {
        let r0 = self.runs.partition_point(|r| r.first <= from).saturating_sub(1);
        let in_runs = self.runs[r0..]
            .iter()
            .enumerate()
            .flat_map(move |(j, run)| {
                let len = self.run_len(r0 + j);
                let skip = from.saturating_sub(run.first).min(len as u64) as usize;
                let words = &self.words[run.start + skip..run.start + len];
                (run.first + skip as u64..).zip(words.iter().copied())
            })
            .take_while(move |&(w, _)| w <= to);
        // (An empty range is no range: the ordered map panics on one that ends before it starts.)
        let late = (from <= to).then(|| self.late.range(from..=to)).into_iter().flatten().map(|(&w, &b)| (w, b));
        Merge { a: in_runs.peekable(), b: late.peekable() }.filter(|&(_, b)| b != 0)
    }

    /// True when any slot in `from..to` is set.
    pub fn any(&self, from: u64, to: u64) -> bool {
        if to <= from {
            return false;
        }
        let (wl, wh) = (from / 64, (to - 1) / 64);
        self.words(wl, wh).any(|(w, bits)| bits & mask(w, from, to) != 0)
    }

    /// The set slots in `from..to`, ascending.
    pub fn slots(&self, from: u64, to: u64) -> impl Iterator<Item = u64> + '_ {
        let (wl, wh) = (from / 64, to.saturating_sub(1) / 64);
        self.words(wl, wh).filter(move |_| to > from).flat_map(move |(w, bits)| {
            let mut bits = bits & mask(w, from, to);
            std::iter::from_fn(move || {
                (bits != 0).then(|| {
                    let b = bits.trailing_zeros();
                    bits &= bits - 1;
                    w * 64 + u64::from(b)
                })
            })
        })
    }

    /// Of `count` snapshots of `tau` slots from slot `first`, those with a set slot, ascending.
    /// Costs the words set in them, not the snapshots.
    pub fn snapshots(&self, first: u64, tau: u64, count: u64) -> impl Iterator<Item = u64> + '_ {
        let end = first.saturating_add(tau.saturating_mul(count));
        let mut words = self.words(first / 64, end.saturating_sub(1) / 64).filter(move |_| end > first);
        // The first slot of the snapshot after the last one given.
        let mut next = first;
        let mut word: Option<(u64, u64)> = None;
        std::iter::from_fn(move || {
            loop {
                let (w, bits) = match word {
                    Some(x) => x,
                    None => words.next()?,
                };
                let bits = bits & mask(w, next, end);
                if bits == 0 {
                    word = None;
                    continue;
                }
                let k = (w * 64 + u64::from(bits.trailing_zeros()) - first) / tau;
                next = first + (k + 1) * tau;
                word = Some((w, bits));
                return Some(k);
            }
        })
    }

    /// The first and the last set slot in `from..to`. Costs the words in the range.
    pub fn bounds(&self, from: u64, to: u64) -> Option<(u64, u64)> {
        if to <= from {
            return None;
        }
        let mut words = self
            .words(from / 64, (to - 1) / 64)
            .map(|(w, bits)| (w, bits & mask(w, from, to)))
            .filter(|&(_, b)| b != 0);
        let (w0, b0) = words.next()?;
        let (w1, b1) = words.last().unwrap_or((w0, b0));
        Some((w0 * 64 + u64::from(b0.trailing_zeros()), w1 * 64 + 63 - u64::from(b1.leading_zeros())))
    }

    /// The first set slot.
    pub fn first(&self) -> Option<u64> {
        self.words(0, u64::MAX).next().map(|(w, bits)| w * 64 + u64::from(bits.trailing_zeros()))
    }

    pub fn is_empty(&self) -> bool {
        self.runs.is_empty() && self.late.is_empty()
    }

    /// Heap bytes held (the ordered map counted at its entries' size).
    pub fn heap_bytes(&self) -> usize {
        self.words.capacity() * 8 + self.runs.capacity() * std::mem::size_of::<Run>() + self.late.len() * 16
    }
}

/// The bits of word `w` that fall in `from..to` (`to > from`).
#[inline]
fn mask(w: u64, from: u64, to: u64) -> u64 {
    let base = w * 64;
    let lo = from.max(base) - base;
    let hi = to.saturating_sub(base).min(64);
    if lo >= hi {
        return 0;
    }
    let upper = if hi == 64 { u64::MAX } else { (1u64 << hi) - 1 };
    upper & (u64::MAX << lo)
}

/// Two ascending sequences of disjoint word indices as one.
struct Merge<A: Iterator<Item = (u64, u64)>, B: Iterator<Item = (u64, u64)>> {
    a: std::iter::Peekable<A>,
    b: std::iter::Peekable<B>,
}

impl<A: Iterator<Item = (u64, u64)>, B: Iterator<Item = (u64, u64)>> Iterator for Merge<A, B> {
    type Item = (u64, u64);
    fn next(&mut self) -> Option<(u64, u64)> {
        match (self.a.peek(), self.b.peek()) {
            (Some(x), Some(y)) if y.0 < x.0 => self.b.next(),
            (Some(_), _) => self.a.next(),
            (None, _) => self.b.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn ranges() {
        let mut a = Activity::default();
        assert!(!a.any(0, 1000));
        a.set(130);
        a.set(5);
        a.set(700);
        assert_eq!(a.first(), Some(5));
        assert!(a.any(5, 6));
        assert!(!a.any(6, 130));
        assert!(a.any(6, 131));
        assert!(a.any(0, 64));
        assert!(!a.any(131, 700));
        assert!(a.any(131, 701));
        assert!(!a.any(701, 100_000));
        assert!(!a.any(10, 10));
        assert_eq!(a.slots(0, u64::MAX).collect::<Vec<_>>(), vec![5, 130, 700]);
        assert_eq!(a.slots(6, 701).collect::<Vec<_>>(), vec![130, 700]);
    }

    #[test]
    fn far_apart_slots_cost_nothing_between() {
        let mut a = Activity::default();
        for i in 0..1000u64 {
            a.set(i * (1 << 40));
        }
        a.set(u64::MAX);
        assert!(a.heap_bytes() < 1000 * 64, "{} bytes", a.heap_bytes());
        assert_eq!(a.slots(0, u64::MAX).count(), 1000);
        assert!(!a.any(u64::MAX - 1, u64::MAX), "the range is half-open");
        assert_eq!(a.words(0, u64::MAX).last(), Some((u64::MAX / 64, 1 << 63)));
        assert_eq!(a.first(), Some(0));
    }

    /// Found by the `analyze` fuzz target: an empty range (an empty grid: a trace shorter than
    /// one snapshot) on an activity with words set out of order asked the ordered map for a
    /// range that ends before it starts, and it panicked.
    #[test]
    fn empty_ranges_with_words_set_out_of_order() {
        let mut a = Activity::default();
        a.set(1000);
        a.set(10);
        assert_eq!(a.words(5, 1).count(), 0);
        assert_eq!(a.slots(700, 600).count(), 0);
        assert_eq!(a.snapshots(640, 25, 0).count(), 0);
        assert!(!a.any(700, 600));
        assert_eq!(a.snapshots(0, 25, 41).collect::<Vec<_>>(), vec![0, 40]);
    }

    /// Against a set of slots: random slots, in order, out of order, close and far apart.
    #[test]
    fn agrees_with_a_set_of_slots() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..300 {
            let (mut a, mut model) = (Activity::default(), BTreeSet::new());
            let mut t = next() % 10_000;
            for _ in 0..(round % 50) * 4 {
                t = match next() % 8 {
                    0 => t.saturating_sub(next() % 2_000),
                    1 => t + next() % 5_000,
                    2 => next() % 20_000,
                    _ => t + next() % 70,
                };
                a.set(t);
                model.insert(t);
            }
            assert_eq!(a.slots(0, u64::MAX).collect::<Vec<_>>(), model.iter().copied().collect::<Vec<_>>());
            assert_eq!(a.first(), model.first().copied());
            for (lo, hi) in [(0, u64::MAX), (t / 2, t), (t, t + 200), (5, 5)] {
                let mut inside = model.range(lo..hi.max(lo));
                let want = inside.next().map(|&f| (f, inside.next_back().copied().unwrap_or(f)));
                assert_eq!(a.bounds(lo, hi), want, "bounds({lo}, {hi})");
            }
            assert_eq!(a.is_empty(), model.is_empty());
            for (first, tau) in [(0, 1), (3, 25), (100, 64), (7, 1000), (640, 25)] {
                let count = next() % 40;
                let got: Vec<u64> = a.snapshots(first, tau, count).collect();
                let want: Vec<u64> = (0..count)
                    .filter(|k| model.range(first + k * tau..first + (k + 1) * tau).next().is_some())
                    .collect();
                assert_eq!(got, want, "snapshots({first}, {tau}, {count})");
            }
            for _ in 0..50 {
                let lo = next() % 30_000;
                let hi = lo + next() % 3_000;
                assert_eq!(a.any(lo, hi), model.range(lo..hi).next().is_some(), "any({lo}, {hi})");
                let got: Vec<u64> = a.slots(lo, hi).collect();
                assert_eq!(got, model.range(lo..hi).copied().collect::<Vec<_>>());
            }
        }
    }
}
