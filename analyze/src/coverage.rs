//! What k of n vantage points see (the shape of Table 1 of Borges et al.), shared by
//! `validate` (truth peers as emulated vantage points) and the client layer of `analyze` (the
//! run's vantage captures): targets (a peer or a client in one snapshot, an edge) each with
//! the set of vantage points that see it, and the share of them a subset of k vantage points
//! sees, over every k-subset when there are few of them, else over random ones.

/// The vantage sets of the targets: one bitset of `words` words per target.
#[derive(Debug, Clone, Default)]
pub struct Sightings {
    words: usize,
    bits: Vec<u64>,
    /// What the share is of (at least the targets: a target no vantage point sees counts here
    /// and has no entry).
    pub total: u64,
}

impl Sightings {
    /// Targets seen by some of `n` vantage points.
    pub fn new(n: usize) -> Sightings {
        Sightings { words: n.div_ceil(64).max(1), bits: Vec::new(), total: 0 }
    }

    /// Adds a target seen by the vantage points `seen_by` (indices below n).
    pub fn push(&mut self, seen_by: impl IntoIterator<Item = usize>) {
        let at = self.bits.len();
        self.bits.resize(at + self.words, 0);
        for i in seen_by {
            self.bits[at + i / 64] |= 1 << (i % 64);
        }
        self.total += 1;
    }

    /// Adds a target given as a bitset of `words` words.
    pub fn push_bits(&mut self, bits: &[u64]) {
        self.bits.extend_from_slice(&bits[..self.words]);
        self.total += 1;
    }

    pub fn words(&self) -> usize {
        self.words
    }

    /// Targets the vantage set `chosen` (a bitset) sees, over `total`; 1 when there is nothing
    /// to see.
    pub fn share(&self, chosen: &[u64]) -> f64 {
        if self.total == 0 {
            return 1.0;
        }
        let seen = self.bits.chunks_exact(self.words).filter(|t| t.iter().zip(chosen).any(|(a, b)| a & b != 0)).count();
        seen as f64 / self.total as f64
    }
}

/// A small deterministic generator (xorshift64*) for the random subsets.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    /// A uniform random k-subset of 0..n, ascending.
    pub fn subset(&mut self, n: usize, k: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..n).collect();
        for i in 0..k.min(n) {
            let j = i + self.below(n - i);
            order.swap(i, j);
        }
        let mut s = order[..k.min(n)].to_vec();
        s.sort_unstable();
        s
    }
}

/// n choose k, saturating.
pub fn choose(n: usize, k: usize) -> u64 {
    if k > n {
        return 0;
    }
    let k = k.min(n - k);
    let mut c: u128 = 1;
    for i in 0..k {
        c = c * (n - i) as u128 / (i + 1) as u128;
        if c > u128::from(u64::MAX) {
            return u64::MAX;
        }
    }
    c as u64
}

/// Every k-subset of 0..n in lexicographic order, to `f`.
pub fn for_each_subset(n: usize, k: usize, mut f: impl FnMut(&[usize])) {
    if k > n {
        return;
    }
    let mut idx: Vec<usize> = (0..k).collect();
    loop {
        f(&idx);
        let Some(i) = (0..k).rev().find(|&i| idx[i] < n - k + i) else { return };
        idx[i] += 1;
        for j in i + 1..k {
            idx[j] = idx[j - 1] + 1;
        }
    }
}

/// The k of a coverage table: 1, 2, 5, 10, 20, 50, 70, 100, 200, 500 below n, and n.
pub fn table_ks(n: usize) -> Vec<usize> {
    let mut ks: Vec<usize> = [1, 2, 5, 10, 20, 50, 70, 100, 200, 500].into_iter().filter(|&k| k < n).collect();
    if n > 0 {
        ks.push(n);
    }
    ks
}

/// The k-subsets of n vantage points a row is averaged over: all of them when there are at
/// most `draws`, else `draws` random ones.
pub fn vantage_sets(n: usize, k: usize, draws: u32, rng: &mut Rng) -> Vec<Vec<usize>> {
    let draws = draws.max(1);
    if choose(n, k) <= u64::from(draws) {
        let mut all = Vec::new();
        for_each_subset(n, k, |s| all.push(s.to_vec()));
        return all;
    }
    (0..draws).map(|_| rng.subset(n, k)).collect()
}

/// The bitset of a subset of vantage points.
pub fn bitset(words: usize, set: &[usize]) -> Vec<u64> {
    let mut v = vec![0u64; words];
    for &i in set {
        v[i / 64] |= 1 << (i % 64);
    }
    v
}

/// Mean and standard deviation over the vantage sets of each sighting's share, per k.
pub struct Row {
    pub k: usize,
    pub draws: u32,
    /// (mean, sd) per sighting, in the order given.
    pub shares: Vec<(f64, f64)>,
}

/// One row per k of [`table_ks`] over `n` vantage points.
pub fn rows(n: usize, draws: u32, seed: u64, sightings: &[&Sightings]) -> Vec<Row> {
    let mut rng = Rng(seed);
    let words = n.div_ceil(64).max(1);
    table_ks(n)
        .into_iter()
        .map(|k| {
            let sets = vantage_sets(n, k, draws, &mut rng);
            let chosen: Vec<Vec<u64>> = sets.iter().map(|s| bitset(words, s)).collect();
            let shares = sightings
                .iter()
                .map(|s| {
                    let xs: Vec<f64> = chosen.iter().map(|c| s.share(c)).collect();
                    crate::stats::mean_sd(&xs)
                })
                .collect();
            Row { k, draws: sets.len() as u32, shares }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsets_and_binomials() {
        assert_eq!(choose(5, 2), 10);
        assert_eq!(choose(421, 0), 1);
        assert_eq!(choose(3, 4), 0);
        assert_eq!(choose(10_000, 5000), u64::MAX);
        let mut all = Vec::new();
        for_each_subset(4, 2, |s| all.push(s.to_vec()));
        assert_eq!(all, vec![vec![0, 1], vec![0, 2], vec![0, 3], vec![1, 2], vec![1, 3], vec![2, 3]]);
        let mut one = 0;
        for_each_subset(3, 3, |_| one += 1);
        assert_eq!(one, 1);
        let mut rng = Rng(7);
        let s = rng.subset(100, 5);
        assert!(s.len() == 5 && s.windows(2).all(|w| w[0] < w[1]) && s[4] < 100);
        assert_eq!(vantage_sets(4, 1, 20, &mut rng).len(), 4, "few subsets: all of them");
        assert_eq!(vantage_sets(40, 3, 20, &mut rng).len(), 20);
    }

    #[test]
    fn shares_of_every_subset() {
        // Three vantage points; targets seen by {0}, {0, 1}, {2} and one by none.
        let mut s = Sightings::new(3);
        s.push([0]);
        s.push([0, 1]);
        s.push([2]);
        s.total += 1;
        let r = rows(3, 20, 1, &[&s]);
        assert_eq!(r.iter().map(|r| r.k).collect::<Vec<_>>(), vec![1, 2, 3]);
        // k = 1: {0} sees 2, {1} 1, {2} 1, of 4.
        assert!((r[0].shares[0].0 - (2.0 + 1.0 + 1.0) / 12.0).abs() < 1e-12);
        assert_eq!(r[0].draws, 3);
        assert_eq!(r[2].shares[0].0, 0.75);
    }
}
