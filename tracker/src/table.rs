//! The registry: per channel, the addresses peers asked to be listed under, each with an
//! expiry time; and per IP address, how many entries and channels it holds, so that one
//! address cannot take a channel or the table of channels for itself. All operations are O(1)
//! or O(log n) except sampling, which is O(k) for a list of k peers.

use std::collections::{BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddrV4};

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
    /// The address holds `max_entries_per_ip` entries.
    IpEntries,
    /// The address has entries in `max_channels_per_ip` channels and this is another one.
    IpChannels,
}

/// The table's bounds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    pub entries: usize,
    pub channels: usize,
    pub entries_per_ip: usize,
    pub channels_per_ip: usize,
}

/// What one IP address holds: entries in all, and entries per channel.
#[derive(Debug, Default)]
struct PerIp {
    entries: usize,
    channels: HashMap<u32, usize>,
}

/// Every channel's entries, and one expiry order across all of them.
#[derive(Debug)]
pub(crate) struct Table {
    channels: HashMap<u32, Channel>,
    /// `(expires, channel, addr)` for every entry: the first item is the next expiry.
    expiry: BTreeSet<(Micros, u32, SocketAddrV4)>,
    /// What each IP address with an entry holds.
    per_ip: HashMap<Ipv4Addr, PerIp>,
    bounds: Bounds,
}

impl Table {
    pub(crate) fn new(bounds: Bounds) -> Table {
        Table { channels: HashMap::new(), expiry: BTreeSet::new(), per_ip: HashMap::new(), bounds }
    }

    /// Adds `addr` to `channel` or moves its expiry to `expires`. Returns whether it is new.
    pub(crate) fn upsert(&mut self, channel: u32, addr: SocketAddrV4, expires: Micros) -> Result<bool, Full> {
        if let Some(ch) = self.channels.get_mut(&channel)
            && let Some(&i) = ch.index.get(&addr)
        {
            let e = &mut ch.entries[i];
            self.expiry.remove(&(e.expires, channel, addr));
            e.expires = expires;
            self.expiry.insert((expires, channel, addr));
            return Ok(false);
        }
        self.admit(channel, *addr.ip())?;
        let ch = self.channels.entry(channel).or_default();
        ch.index.insert(addr, ch.entries.len());
        ch.entries.push(Entry { addr, expires });
        self.expiry.insert((expires, channel, addr));
        let ip = self.per_ip.entry(*addr.ip()).or_default();
        ip.entries += 1;
        *ip.channels.entry(channel).or_default() += 1;
        Ok(true)
    }

    /// Whether a new entry of `ip` fits in `channel`.
    fn admit(&self, channel: u32, ip: Ipv4Addr) -> Result<(), Full> {
        let b = &self.bounds;
        match self.channels.get(&channel) {
            Some(ch) if ch.entries.len() >= b.entries => return Err(Full::Entries),
            Some(_) => {}
            None if self.channels.len() >= b.channels => return Err(Full::Channels),
            None if b.entries == 0 => return Err(Full::Entries),
            None => {}
        }
        let Some(held) = self.per_ip.get(&ip) else {
            return if b.entries_per_ip == 0 || b.channels_per_ip == 0 { Err(Full::IpEntries) } else { Ok(()) };
        };
        if held.entries >= b.entries_per_ip {
            return Err(Full::IpEntries);
        }
        if !held.channels.contains_key(&channel) && held.channels.len() >= b.channels_per_ip {
            return Err(Full::IpChannels);
        }
        Ok(())
    }

    /// Removes `addr` from `channel`; returns whether it was there. An emptied channel goes.
    pub(crate) fn remove(&mut self, channel: u32, addr: SocketAddrV4) -> bool {
        let Some(ch) = self.channels.get_mut(&channel) else { return false };
        let Some(e) = ch.remove(addr) else { return false };
        self.expiry.remove(&(e.expires, channel, addr));
        if ch.entries.is_empty() {
            self.channels.remove(&channel);
        }
        self.release(channel, *addr.ip());
        true
    }

    /// Forgets one entry of `ip` in `channel`.
    fn release(&mut self, channel: u32, ip: Ipv4Addr) {
        let Some(held) = self.per_ip.get_mut(&ip) else { return };
        held.entries -= 1;
        if let Some(n) = held.channels.get_mut(&channel) {
            *n -= 1;
            if *n == 0 {
                held.channels.remove(&channel);
            }
        }
        if held.entries == 0 {
            self.per_ip.remove(&ip);
        }
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

    fn bounds(entries: usize, channels: usize) -> Bounds {
        Bounds { entries, channels, entries_per_ip: usize::MAX, channels_per_ip: usize::MAX }
    }

    /// Index, vector, expiry set and per-address counts describe the same entries.
    fn consistent(t: &Table) {
        let mut total = 0;
        let mut per_ip: HashMap<Ipv4Addr, (usize, HashMap<u32, usize>)> = HashMap::new();
        for (&c, ch) in &t.channels {
            assert!(!ch.entries.is_empty());
            assert_eq!(ch.entries.len(), ch.index.len());
            for (i, e) in ch.entries.iter().enumerate() {
                assert_eq!(ch.index[&e.addr], i);
                assert!(t.expiry.contains(&(e.expires, c, e.addr)));
                let held = per_ip.entry(*e.addr.ip()).or_default();
                held.0 += 1;
                *held.1.entry(c).or_default() += 1;
            }
            total += ch.entries.len();
        }
        assert_eq!(total, t.expiry.len());
        assert_eq!(per_ip.len(), t.per_ip.len());
        for (ip, (entries, channels)) in per_ip {
            assert_eq!((t.per_ip[&ip].entries, &t.per_ip[&ip].channels), (entries, &channels), "{ip}");
        }
    }

    #[test]
    fn one_address_holds_its_share_only() {
        let mut t = Table::new(Bounds { entries: 100, channels: 10, entries_per_ip: 3, channels_per_ip: 2 });
        let port = |p| SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), p);
        assert_eq!(t.upsert(1, port(1), 9), Ok(true));
        assert_eq!(t.upsert(2, port(2), 9), Ok(true));
        assert_eq!(t.upsert(3, port(3), 9), Err(Full::IpChannels), "a third channel");
        assert_eq!(t.upsert(1, port(3), 9), Ok(true));
        assert_eq!(t.upsert(1, port(4), 9), Err(Full::IpEntries), "a fourth entry");
        assert_eq!(t.upsert(1, port(1), 10), Ok(false), "a refresh is always fine");
        assert_eq!(t.upsert(1, a(7), 9), Ok(true), "another address has its own share");
        consistent(&t);
        assert!(t.remove(2, port(2)));
        assert_eq!(t.upsert(3, port(3), 9), Ok(true), "the freed channel share is usable");
        consistent(&t);
        let mut gone = 0;
        t.expire(10, |_, _| gone += 1);
        assert_eq!((gone, t.per_ip.len()), (4, 0), "expiry frees the shares too");
    }

    #[test]
    fn upsert_remove_sample_keep_the_indexes_consistent() {
        let mut t = Table::new(bounds(100, 4));
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
