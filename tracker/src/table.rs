//! The registry: per channel, the addresses peers asked to be listed under, each with an
//! expiry time. All operations are O(1) or O(log n) except sampling, which is O(k) for a list of
//! k peers.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddrV4;

use rand::RngExt;
use rand_pcg::Pcg64Mcg;
use soplab_node::Micros;

/// One channel's entries: a vector for uniform sampling and an index for lookup.
#[derive(Debug, Default)]
struct Channel {
    entries: Vec<Entry>,
    index: HashMap<SocketAddrV4, usize>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    addr: SocketAddrV4,
    expires: Micros,
}

impl Channel {
    fn swap(&mut self, i: usize, j: usize) {
        if i != j {
            self.entries.swap(i, j);
            self.index.insert(self.entries[i].addr, i);
            self.index.insert(self.entries[j].addr, j);
        }
    }

    fn remove(&mut self, addr: SocketAddrV4) -> Option<Entry> {
        let i = self.index.remove(&addr)?;
        let e = self.entries.swap_remove(i);
        if let Some(moved) = self.entries.get(i) {
            self.index.insert(moved.addr, i);
        }
        Some(e)
    }
}

/// Why a registration was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    /// The channel holds `max_entries` entries.
    Entries,
    /// `max_channels` channels exist and this is a new one.
    Channels,
}

/// Every channel's entries, and one expiry order across all of them.
#[derive(Debug)]
pub(crate) struct Table {
    channels: HashMap<u32, Channel>,
    /// `(expires, channel, addr)` for every entry: the first item is the next expiry.
    expiry: BTreeSet<(Micros, u32, SocketAddrV4)>,
    max_entries: usize,
    max_channels: usize,
}

impl Table {
    pub(crate) fn new(max_entries: usize, max_channels: usize) -> Table {
        Table { channels: HashMap::new(), expiry: BTreeSet::new(), max_entries, max_channels }
    }

    /// Adds `addr` to `channel` or moves its expiry to `expires`. Returns whether it is new.
    pub(crate) fn upsert(&mut self, channel: u32, addr: SocketAddrV4, expires: Micros) -> Result<bool, Full> {
        let at_channel_bound = self.channels.len() >= self.max_channels;
        let ch = match self.channels.get_mut(&channel) {
            Some(ch) => ch,
            None if at_channel_bound => return Err(Full::Channels),
            None if self.max_entries == 0 => return Err(Full::Entries),
            None => self.channels.entry(channel).or_default(),
        };
        if let Some(&i) = ch.index.get(&addr) {
            let e = &mut ch.entries[i];
            self.expiry.remove(&(e.expires, channel, addr));
            e.expires = expires;
            self.expiry.insert((expires, channel, addr));
            return Ok(false);
        }
        if ch.entries.len() >= self.max_entries {
            return Err(Full::Entries);
        }
        ch.index.insert(addr, ch.entries.len());
        ch.entries.push(Entry { addr, expires });
        self.expiry.insert((expires, channel, addr));
        Ok(true)
    }

    /// Removes `addr` from `channel`; returns whether it was there. An emptied channel goes.
    pub(crate) fn remove(&mut self, channel: u32, addr: SocketAddrV4) -> bool {
        let Some(ch) = self.channels.get_mut(&channel) else { return false };
        let Some(e) = ch.remove(addr) else { return false };
        self.expiry.remove(&(e.expires, channel, addr));
        if ch.entries.is_empty() {
            self.channels.remove(&channel);
        }
        true
    }

    /// The earliest expiry time, if any entry exists.
    pub(crate) fn next_expiry(&self) -> Option<Micros> {
        self.expiry.first().map(|&(t, _, _)| t)
    }

    /// Removes every entry whose expiry is at or before `now`, calling `f` for each.
    pub(crate) fn expire(&mut self, now: Micros, mut f: impl FnMut(u32, SocketAddrV4)) {
        while let Some(&(t, channel, addr)) = self.expiry.first() {
            if t > now {
                break;
            }
            let removed = self.remove(channel, addr);
            debug_assert!(removed, "expiry index and channels agree");
            f(channel, addr);
        }
    }

    /// Entries in `channel`.
    pub(crate) fn len(&self, channel: u32) -> usize {
        self.channels.get(&channel).map_or(0, |c| c.entries.len())
    }

    /// Entries in all channels.
    pub(crate) fn total(&self) -> usize {
        self.expiry.len()
    }

    pub(crate) fn channels(&self) -> usize {
        self.channels.len()
    }

    /// Appends to `out` a uniformly random subset of `channel`'s entries other than `exclude`,
    /// of size `min(k, entries - [exclude is present])`. Reorders the channel's entries (their
    /// order carries no meaning), which makes this O(k).
    pub(crate) fn sample(
        &mut self,
        channel: u32,
        exclude: Option<SocketAddrV4>,
        k: usize,
        rng: &mut Pcg64Mcg,
        out: &mut Vec<SocketAddrV4>,
    ) {
        let Some(ch) = self.channels.get_mut(&channel) else { return };
        let mut n = ch.entries.len();
        // Move the excluded entry out of the sampled range 0..n.
        if let Some(i) = exclude.and_then(|a| ch.index.get(&a).copied()) {
            ch.swap(i, n - 1);
            n -= 1;
        }
        // Partial Fisher-Yates: after step i, entries[..=i] is a uniform i+1-subset.
        for i in 0..k.min(n) {
            let j = rng.random_range(i..n);
            ch.swap(i, j);
            out.push(ch.entries[i].addr);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use rand::SeedableRng;

    use super::*;

    fn a(i: u32) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::from(0x0a00_0000 + i), 4000)
    }

    /// Index, vector and expiry set describe the same entries.
    fn consistent(t: &Table) {
        let mut total = 0;
        for (&c, ch) in &t.channels {
            assert!(!ch.entries.is_empty());
            assert_eq!(ch.entries.len(), ch.index.len());
            for (i, e) in ch.entries.iter().enumerate() {
                assert_eq!(ch.index[&e.addr], i);
                assert!(t.expiry.contains(&(e.expires, c, e.addr)));
            }
            total += ch.entries.len();
        }
        assert_eq!(total, t.expiry.len());
    }

    #[test]
    fn upsert_remove_sample_keep_the_indexes_consistent() {
        let mut t = Table::new(100, 4);
        let mut rng = Pcg64Mcg::seed_from_u64(1);
        for i in 0..50 {
            assert_eq!(t.upsert(i % 3, a(i), u64::from(i)), Ok(true));
        }
        assert_eq!(t.upsert(0, a(0), 99), Ok(false));
        consistent(&t);
        let mut out = Vec::new();
        t.sample(0, Some(a(3)), 5, &mut rng, &mut out);
        assert_eq!(out.len(), 5);
        assert!(!out.contains(&a(3)));
        consistent(&t);
        for i in (0..50).step_by(2) {
            assert!(t.remove(i % 3, a(i)));
            assert!(!t.remove(i % 3, a(i)));
        }
        consistent(&t);
        let mut gone = Vec::new();
        t.expire(20, |c, addr| gone.push((c, addr)));
        consistent(&t);
        assert!(gone.iter().all(|(_, addr)| u32::from(*addr.ip()) % 2 == 1));
        assert_eq!(t.next_expiry(), Some(21));
    }
}
