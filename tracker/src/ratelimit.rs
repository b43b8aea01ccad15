//! Per-source-IP token buckets with a bounded table.
//!
//! Tokens are kept in millionths of a datagram so that refilling is exact integer arithmetic:
//! a bucket gains `rate` units per microsecond and a datagram costs [`UNIT`]. A bucket that has
//! refilled to its burst is *idle*: forgetting it loses nothing, since a new bucket starts full.
//! Idle buckets are swept periodically; when the table is at its bound and a new address
//! arrives, the least recently seen of a few randomly sampled buckets is evicted (approximate
//! LRU, O(1)), so a flood of spoofed sources costs bounded memory and never locks out newcomers.

use std::collections::HashMap;
use std::net::IpAddr;

use rand::RngExt;
use rand_pcg::Pcg64Mcg;
use soplab_node::Micros;

/// Cost of one datagram in token units.
const UNIT: u64 = 1_000_000;
/// Buckets sampled to pick an eviction victim.
const EVICTION_SAMPLE: usize = 8;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    ip: IpAddr,
    tokens: u64,
    last: Micros,
}

/// What [`RateLimiter::allow`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub allowed: bool,
    /// A bucket was evicted to make room for this source.
    pub evicted: bool,
}

#[derive(Debug)]
pub(crate) struct RateLimiter {
    buckets: Vec<Bucket>,
    index: HashMap<IpAddr, usize>,
    /// Units gained per microsecond (= datagrams per second); 0 turns the limiter off.
    rate: u64,
    cap: u64,
    max_buckets: usize,
    sweep_interval: Micros,
    next_sweep: Option<Micros>,
}

impl RateLimiter {
    pub(crate) fn new(rate: u32, burst: u32, max_buckets: usize, sweep_interval: Micros) -> RateLimiter {
        RateLimiter {
            buckets: Vec::new(),
            index: HashMap::new(),
            rate: u64::from(rate),
            cap: u64::from(burst.max(1)) * UNIT,
            max_buckets: max_buckets.max(1),
            sweep_interval: sweep_interval.max(1),
            next_sweep: None,
        }
    }

    fn refilled(&self, b: &Bucket, now: Micros) -> u64 {
        b.tokens.saturating_add(now.saturating_sub(b.last).saturating_mul(self.rate)).min(self.cap)
    }

    /// Charges one datagram from `ip` at `now`.
    pub(crate) fn allow(&mut self, now: Micros, ip: IpAddr, rng: &mut Pcg64Mcg) -> Verdict {
        if self.rate == 0 {
            return Verdict { allowed: true, evicted: false };
        }
        if let Some(&i) = self.index.get(&ip) {
            let tokens = self.refilled(&self.buckets[i], now);
            let b = &mut self.buckets[i];
            b.last = now.max(b.last);
            let allowed = tokens >= UNIT;
            b.tokens = if allowed { tokens - UNIT } else { tokens };
            return Verdict { allowed, evicted: false };
        }
        let mut evicted = false;
        if self.buckets.len() >= self.max_buckets {
            let n = self.buckets.len();
            let victim = (0..EVICTION_SAMPLE.min(n))
                .map(|_| rng.random_range(0..n))
                .min_by_key(|&i| self.buckets[i].last)
                .expect("the table is not empty");
            self.remove_at(victim);
            evicted = true;
        }
        self.index.insert(ip, self.buckets.len());
        self.buckets.push(Bucket { ip, tokens: self.cap - UNIT.min(self.cap), last: now });
        if self.next_sweep.is_none() {
            self.next_sweep = Some(now.saturating_add(self.sweep_interval));
        }
        Verdict { allowed: true, evicted }
    }

    fn remove_at(&mut self, i: usize) {
        let b = self.buckets.swap_remove(i);
        self.index.remove(&b.ip);
        if let Some(moved) = self.buckets.get(i) {
            self.index.insert(moved.ip, i);
        }
    }

    /// When [`RateLimiter::handle_timeout`] next has idle buckets to look for.
    pub(crate) fn poll_timeout(&self) -> Option<Micros> {
        self.next_sweep
    }

    /// Forgets idle buckets if the sweep is due.
    pub(crate) fn handle_timeout(&mut self, now: Micros) {
        if self.next_sweep.is_none_or(|t| t > now) {
            return;
        }
        let mut i = 0;
        while i < self.buckets.len() {
            if self.refilled(&self.buckets[i], now) >= self.cap {
                self.remove_at(i);
            } else {
                i += 1;
            }
        }
        self.next_sweep = (!self.buckets.is_empty()).then(|| now.saturating_add(self.sweep_interval));
    }

    /// Buckets held.
    pub(crate) fn len(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use rand::SeedableRng;
    use soplab_node::SECOND;

    use super::*;

    fn ip(i: u32) -> IpAddr {
        Ipv4Addr::from(i).into()
    }

    #[test]
    fn bucket_allows_burst_then_rate() {
        let mut rng = Pcg64Mcg::seed_from_u64(0);
        let mut r = RateLimiter::new(10, 4, 16, 10 * SECOND);
        let ok: Vec<bool> = (0..6).map(|_| r.allow(0, ip(1), &mut rng).allowed).collect();
        assert_eq!(ok, [true, true, true, true, false, false]);
        // 0.1 s later one token is back, 0.05 s is not enough for another.
        assert!(r.allow(SECOND / 10, ip(1), &mut rng).allowed);
        assert!(!r.allow(SECOND / 10 + SECOND / 20, ip(1), &mut rng).allowed);
        // Another source has its own bucket.
        assert!(r.allow(SECOND / 10, ip(2), &mut rng).allowed);
    }

    #[test]
    fn rate_zero_is_off() {
        let mut rng = Pcg64Mcg::seed_from_u64(0);
        let mut r = RateLimiter::new(0, 1, 1, SECOND);
        assert!((0..1000).all(|i| r.allow(0, ip(i), &mut rng).allowed));
        assert_eq!(r.len(), 0);
        assert_eq!(r.poll_timeout(), None);
    }

    #[test]
    fn table_is_bounded_and_swept() {
        let mut rng = Pcg64Mcg::seed_from_u64(0);
        let mut r = RateLimiter::new(20, 40, 8, 10 * SECOND);
        let evictions = (0..100).filter(|&i| r.allow(u64::from(i), ip(i), &mut rng).evicted).count();
        assert_eq!(r.len(), 8);
        assert_eq!(evictions, 92);
        for (i, b) in r.buckets.iter().enumerate() {
            assert_eq!(r.index[&b.ip], i);
        }
        assert_eq!(r.poll_timeout(), Some(10 * SECOND));
        // After 2 s (burst / rate) every bucket is full again: the sweep forgets them all.
        r.handle_timeout(10 * SECOND);
        assert_eq!(r.len(), 0);
        assert_eq!(r.poll_timeout(), None);
    }

    #[test]
    fn sweep_keeps_busy_buckets() {
        let mut rng = Pcg64Mcg::seed_from_u64(0);
        let mut r = RateLimiter::new(1, 10, 8, SECOND);
        for _ in 0..10 {
            r.allow(0, ip(1), &mut rng);
        }
        r.allow(0, ip(2), &mut rng);
        r.handle_timeout(SECOND);
        assert_eq!(r.len(), 1, "ip 1 still owes 8 tokens; ip 2 is full again");
        assert_eq!(r.poll_timeout(), Some(2 * SECOND));
    }
}
