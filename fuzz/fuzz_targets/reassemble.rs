//! Drives `segment`, `Reassembler::insert`, `Reassembler::take` and `Reassembler::expire` with a
//! byte program and checks them against a small model: every packet goes through `Video::emit`
//! and `Repr::parse` first (as in a daemon), completed responses must hold exactly the blocks'
//! bytes, duplicates, evictions and reports must agree with what was inserted, packets of a
//! response recently completed or given up must read as duplicates, and `in_progress` must never
//! exceed the slots.
//!
//! Block `b` holds bytes that depend on `b mod 256` only, so the expected contents of any
//! response are known. At most `MAX_OPS` operations run per input.

#![no_main]

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use soplab_wire::video::{Incomplete, Insert, fragment_count};
use soplab_wire::{BLOCK_LEN, MAX_BLOCKS_PER_REQUEST, Message, Reassembler, Repr, Video, segment, size};

const MAX_OPS: usize = 256;
const KEYS: u8 = 4;
const REQUESTS: u8 = 8;
/// `Reassembler` remembers the last `RECENT_PER_SLOT x slots` responses it completed or gave up
/// (`Reassembler::remember`) and answers their packets with `Duplicate`.
const RECENT_PER_SLOT: usize = 4;

/// Blocks 0..256+16, block k holding a pattern of `k mod 256`, so that any run of up to 16
/// block ids (mod 256) is one contiguous slice.
fn blocks() -> &'static [u8] {
    static DATA: OnceLock<Vec<u8>> = OnceLock::new();
    DATA.get_or_init(|| {
        (0..(256 + usize::from(MAX_BLOCKS_PER_REQUEST)) * BLOCK_LEN)
            .map(|i| {
                let (b, j) = ((i / BLOCK_LEN) % 256, i % BLOCK_LEN);
                (b.wrapping_mul(151) ^ j.wrapping_mul(7) ^ (j >> 8)) as u8
            })
            .collect()
    })
}

fn expected(first_block: u32, count: u8) -> &'static [u8] {
    let start = (first_block % 256) as usize * BLOCK_LEN;
    &blocks()[start..start + usize::from(count) * BLOCK_LEN]
}

/// What the model knows of one response in progress.
struct Entry {
    first_block: u32,
    count: u8,
    have: u128,
    started: u64,
}

fn all_fragments(count: u8) -> u128 {
    let total = u32::from(fragment_count(count));
    if total == 128 { u128::MAX } else { (1u128 << total) - 1 }
}

/// Bit i: block i is covered by fragments in `have`.
fn whole_blocks(count: u8, have: u128) -> u16 {
    let frag = size::VIDEO_MAX - 25;
    (0..count).fold(0, |acc, b| {
        let first = usize::from(b) * BLOCK_LEN / frag;
        let last = ((usize::from(b) + 1) * BLOCK_LEN - 1) / frag;
        let whole = (first..=last).all(|f| have & (1u128 << f) != 0);
        acc | (u16::from(whole) << b)
    })
}

struct Harness {
    r: Reassembler<u8>,
    slots: usize,
    now: u64,
    model: HashMap<(u8, u32), Entry>,
    /// Responses that received a packet whose header was mutated: their bytes are not checked.
    tainted: HashSet<(u8, u32)>,
    /// Responses completed or given up, oldest first.
    recent: VecDeque<(u8, u32)>,
    buf: Vec<u8>,
}

impl Harness {
    fn remember(&mut self, id: (u8, u32)) {
        if self.recent.len() >= RECENT_PER_SLOT * self.slots {
            self.recent.pop_front();
        }
        self.recent.push_back(id);
        self.tainted.remove(&id);
    }

    /// Checks a response given up (evicted, expired, taken) and forgets it.
    fn check_report(&mut self, inc: &Incomplete<u8>, bytes: Option<&[u8]>) {
        let e = self.model.remove(&(inc.key, inc.request)).expect("reported response was in progress");
        assert_eq!((inc.first_block, inc.count), (e.first_block, e.count));
        assert_eq!(inc.complete, whole_blocks(e.count, e.have), "complete blocks of {inc:?}");
        if let Some(bytes) = bytes
            && !self.tainted.contains(&(inc.key, inc.request))
        {
            let want = expected(e.first_block, e.count);
            for b in inc.complete_blocks() {
                let i = (b - e.first_block) as usize * BLOCK_LEN;
                assert!(bytes[i..i + BLOCK_LEN] == want[i..i + BLOCK_LEN], "block {b} of {inc:?}");
            }
        }
        self.remember((inc.key, inc.request));
    }

    /// Emits `v`, optionally mutates a header byte, parses it back and inserts it.
    fn send(&mut self, key: u8, v: &Video<'_>, mutate: Option<(usize, u8)>) {
        let len = v.buffer_len();
        v.emit(self.now as u32, &mut self.buf);
        let mut dgram = self.buf[..len].to_vec();
        if let Some((at, x)) = mutate {
            dgram[at % 25] ^= x;
        }
        let parsed = match Repr::parse(&dgram) {
            Ok(Repr { message: Message::Video(p), .. }) => p,
            Ok(other) => panic!("video datagram parsed as {other:?}"),
            Err(e) => {
                assert!(mutate.is_some(), "emitted video packet rejected: {e}");
                return;
            }
        };
        if mutate.is_none() {
            assert_eq!(&parsed, v);
        } else if parsed != *v {
            self.tainted.insert((key, parsed.request));
        }
        let id = (key, parsed.request);
        let before = self.model.len();
        let oldest = self.model.values().map(|e| e.started).min();
        let conflict =
            self.model.get(&id).is_some_and(|e| (e.first_block, e.count) != (parsed.first_block, parsed.count));
        let recent = self.recent.contains(&id);
        let bit = 1u128 << parsed.index;
        let result = self.r.insert(key, self.now, &parsed);
        match result {
            Ok(Insert::Duplicate) if recent => assert!(!self.model.contains_key(&id)),
            _ if recent => panic!("packet of recent response {id:?} not a duplicate: {result:?}"),
            Err(_) => assert!(conflict, "insert rejected a parsed packet {parsed:?}"),
            Ok(Insert::Duplicate) => {
                assert!(!conflict);
                assert!(self.model.get(&id).is_some_and(|e| e.have & bit != 0), "false duplicate");
            }
            Ok(Insert::Complete(done)) => {
                assert!(!conflict);
                assert_eq!(
                    (done.request, done.first_block, done.count),
                    (parsed.request, parsed.first_block, parsed.count)
                );
                let have = self.model.get(&id).map_or(0, |e| e.have);
                assert_eq!(have & bit, 0, "completed by a duplicate");
                assert_eq!(have | bit, all_fragments(parsed.count), "completed early");
                if !self.tainted.contains(&id) {
                    assert!(done.data == expected(parsed.first_block, parsed.count), "wrong bytes in {id:?}");
                }
                self.model.remove(&id);
                self.remember(id);
            }
            Ok(Insert::Stored { evicted }) => {
                assert!(!conflict);
                let new = !self.model.contains_key(&id);
                match evicted {
                    Some(inc) => {
                        assert!(new && before == self.slots, "eviction with a free slot");
                        let started = self.model[&(inc.key, inc.request)].started;
                        assert_eq!(Some(started), oldest, "evicted a response that is not the oldest");
                        self.check_report(&inc, None);
                    }
                    None => assert!(!new || before < self.slots, "no eviction with every slot busy"),
                }
                let e = self.model.entry(id).or_insert(Entry {
                    first_block: parsed.first_block,
                    count: parsed.count,
                    have: 0,
                    started: self.now,
                });
                assert_eq!(e.have & bit, 0);
                e.have |= bit;
                assert_ne!(e.have, all_fragments(e.count), "complete but reported stored");
            }
        }
        assert_eq!(self.r.in_progress(), self.model.len());
        assert!(self.model.len() <= self.slots);
    }

    fn expire(&mut self, older_than: u64) {
        let mut reports = Vec::new();
        self.r.expire(older_than, |inc, bytes| reports.push((inc, bytes.to_vec())));
        for (inc, bytes) in reports {
            assert!(self.model[&(inc.key, inc.request)].started < older_than);
            self.check_report(&inc, Some(&bytes));
        }
        assert!(self.model.values().all(|e| e.started >= older_than), "expire left an old response");
        assert_eq!(self.r.in_progress(), self.model.len());
    }

    fn take(&mut self, key: u8, request: u32) {
        match self.r.take(key, request) {
            Some((inc, bytes)) => {
                assert_eq!((inc.key, inc.request), (key, request));
                let bytes = bytes.to_vec();
                self.check_report(&inc, Some(&bytes));
            }
            None => assert!(!self.model.contains_key(&(key, request)), "take missed {key}/{request}"),
        }
        assert_eq!(self.r.in_progress(), self.model.len());
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, mut prog)) = data.split_first() else { return };
    let slots = 1 + usize::from(first % 4);
    let mut h = Harness {
        r: Reassembler::new(slots),
        slots,
        now: 0,
        model: HashMap::new(),
        tainted: HashSet::new(),
        recent: VecDeque::new(),
        buf: vec![0; size::VIDEO_MAX],
    };
    let mut ops = 0;
    while let [op, k, q, fb, c, x, y, rest @ ..] = prog {
        prog = rest;
        ops += 1;
        if ops > MAX_OPS {
            break;
        }
        let key = k % KEYS;
        let request = u32::from(q % REQUESTS);
        // Mostly small block ids; with the top bit set, ids next to the u32::MAX sentinel.
        let first_block = if fb & 0x80 != 0 { u32::MAX - u32::from(fb & 0x7f) } else { u32::from(*fb) };
        let count = 1 + c % MAX_BLOCKS_PER_REQUEST;
        let fits = first_block.checked_add(u32::from(count) - 1).is_some_and(|last| last < u32::MAX);
        let segments = segment(request, first_block, expected(first_block, count));
        assert_eq!(segments.is_ok(), fits, "segment({first_block}, {count})");
        let Ok(segments) = segments else { continue };
        let packets: Vec<Video<'_>> = segments.collect();
        assert_eq!(packets.len(), usize::from(fragment_count(count)));
        assert_eq!(packets.iter().map(|v| v.payload.len()).sum::<usize>(), usize::from(count) * BLOCK_LEN);
        let n = packets.len();
        match op % 7 {
            // One packet.
            0 | 1 => h.send(key, &packets[usize::from(*x) % n], None),
            // A run of packets: start x, stride y (coprime strides visit every packet).
            2 => {
                let stride = 1 + usize::from(*y) % n;
                for i in 0..usize::from(*y % 32) + 1 {
                    h.send(key, &packets[(usize::from(*x) + i * stride) % n], None);
                }
            }
            // One packet with a header byte flipped.
            3 => h.send(key, &packets[usize::from(*x) % n], Some((usize::from(*y), *c | 1))),
            // Time passes.
            4 => h.now += u64::from(*x) + 1,
            // Give up one response.
            5 => h.take(key, request),
            // Expire what started more than x ticks ago.
            _ => h.expire(h.now.saturating_sub(u64::from(*x))),
        }
    }
    h.expire(u64::MAX);
    assert_eq!(h.r.in_progress(), 0);
});
