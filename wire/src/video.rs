//! Video packets, and cutting a response of n blocks into them and back (eq. 1 of Tang et al.:
//! `n x 10240 = x x 1320 + y`).
//!
//! Every video datagram carries a 25-byte header (8 datagram + 4 message + 13 video fields), so
//! a full packet holds 1295 bytes of video and the tail of an n-block response is
//! `25 + (n x 10240 mod 1295)` bytes: 1200, 1080, 960, 840, 720, 600, 480, 360 for n = 1..8,
//! stepping by 120 bytes like the fragment sizes in Table 1 (1201, 1081, 617, 497, 377).

use crate::packet::{HEADER_LEN, Packet, put_msg_header};
use std::collections::VecDeque;

use crate::{Error, Result, class, flags, msg, size};

/// Bytes in one video block ("10 kbyte").
pub const BLOCK_LEN: usize = 10_240;
/// Bytes before the video payload in every video datagram.
pub const VIDEO_HEADER_LEN: usize = 25;
/// Video bytes in a full (1320-byte) packet.
pub const FRAGMENT_PAYLOAD: usize = size::VIDEO_MAX - VIDEO_HEADER_LEN;
/// Most blocks one request may ask for; keeps a response's fragment set in a `u128`.
pub const MAX_BLOCKS_PER_REQUEST: u8 = 16;

/// Bytes of video in a response of `count` blocks.
pub const fn response_len(count: u8) -> usize {
    count as usize * BLOCK_LEN
}

/// Packets a response of `count` blocks is cut into.
pub const fn fragment_count(count: u8) -> u16 {
    response_len(count).div_ceil(FRAGMENT_PAYLOAD) as u16
}

/// Video bytes in packet `index` of a `count`-block response (0 if `index` is out of range).
pub const fn fragment_payload_len(count: u8, index: u16) -> usize {
    let total = fragment_count(count) as u32;
    let next = index as u32 + 1;
    if next < total {
        FRAGMENT_PAYLOAD
    } else if next == total {
        response_len(count) - (total as usize - 1) * FRAGMENT_PAYLOAD
    } else {
        0
    }
}

/// UDP payload size of the last (tail) packet of a `count`-block response.
pub const fn tail_size(count: u8) -> usize {
    VIDEO_HEADER_LEN + fragment_payload_len(count, fragment_count(count) - 1)
}

pub(crate) fn check_count(count: u8) -> Result<()> {
    if (1..=MAX_BLOCKS_PER_REQUEST).contains(&count) {
        Ok(())
    } else {
        Err(Error::BadField { field: "block count", value: count.into() })
    }
}

/// The last block id of the range must stay below `u32::MAX`, the "no block" sentinel.
pub(crate) fn check_range(first_block: u32, count: u8) -> Result<()> {
    match first_block.checked_add(u32::from(count) - 1) {
        Some(last) if last < u32::MAX => Ok(()),
        _ => Err(Error::BadField { field: "first block", value: first_block }),
    }
}

/// One video datagram: packet `index` of `total` of the response to request `request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Video<'a> {
    pub request: u32,
    pub first_block: u32,
    pub count: u8,
    pub index: u16,
    pub total: u16,
    pub payload: &'a [u8],
}

impl<'a> Video<'a> {
    // Offsets: 12 request, 16 first block, 20 count, 21 index, 23 total, 25 payload.
    pub(crate) fn parse(p: &Packet<&'a [u8]>) -> Result<Video<'a>> {
        let d: &'a [u8] = p.into_inner();
        if d.len() < VIDEO_HEADER_LEN {
            return Err(Error::TooShort { len: d.len(), need: VIDEO_HEADER_LEN });
        }
        if d.len() > size::VIDEO_MAX {
            return Err(Error::BadSize { what: "video packet (maximum)", len: d.len(), expected: size::VIDEO_MAX });
        }
        if p.flags() != flags::LINKED {
            return Err(Error::BadFlag { offset: 4, found: p.flags(), expected: flags::LINKED });
        }
        if p.count() != 1 {
            return Err(Error::BadCount { declared: p.count(), found: 1 });
        }
        if d[8] != msg::VIDEO {
            return Err(Error::UnknownType { found: d[8], expected: msg::VIDEO });
        }
        if d[9] != 0x01 {
            return Err(Error::BadFlag { offset: 9, found: d[9], expected: 0x01 });
        }
        let count = d[20];
        check_count(count)?;
        let first_block = u32::from_be_bytes([d[16], d[17], d[18], d[19]]);
        check_range(first_block, count)?;
        let index = u16::from_be_bytes([d[21], d[22]]);
        let total = u16::from_be_bytes([d[23], d[24]]);
        if total != fragment_count(count) {
            return Err(Error::BadField { field: "fragment total", value: total.into() });
        }
        if index >= total {
            return Err(Error::BadField { field: "fragment index", value: index.into() });
        }
        let expected = VIDEO_HEADER_LEN + fragment_payload_len(count, index);
        if d.len() != expected {
            return Err(Error::BadSize { what: "video fragment", len: d.len(), expected });
        }
        Ok(Video {
            request: u32::from_be_bytes([d[12], d[13], d[14], d[15]]),
            first_block,
            count,
            index,
            total,
            payload: &d[VIDEO_HEADER_LEN..],
        })
    }

    /// Encoded size: header plus payload.
    pub fn buffer_len(&self) -> usize {
        VIDEO_HEADER_LEN + self.payload.len()
    }

    /// Writes the 25 header bytes only, for gather I/O that sends the payload from where it is.
    pub fn emit_header(&self, seq: u32, h: &mut [u8; VIDEO_HEADER_LEN]) {
        Packet::new_unchecked(&mut h[..]).set_header(class::VIDEO, 1, flags::LINKED, seq);
        put_msg_header(h, HEADER_LEN, msg::VIDEO, 0x01, self.buffer_len() - HEADER_LEN);
        h[12..16].copy_from_slice(&self.request.to_be_bytes());
        h[16..20].copy_from_slice(&self.first_block.to_be_bytes());
        h[20] = self.count;
        h[21..23].copy_from_slice(&self.index.to_be_bytes());
        h[23..25].copy_from_slice(&self.total.to_be_bytes());
    }

    /// Writes the whole datagram into `d[..self.buffer_len()]`.
    pub fn emit(&self, seq: u32, d: &mut [u8]) {
        let (h, rest) = d.split_at_mut(VIDEO_HEADER_LEN);
        self.emit_header(seq, h.try_into().expect("split at header length"));
        rest[..self.payload.len()].copy_from_slice(self.payload);
    }
}

/// Cuts a response into video packets without copying: each item borrows its payload from the
/// response's bytes. Build it with [`segment`].
#[derive(Debug, Clone)]
pub struct Segments<'a> {
    request: u32,
    first_block: u32,
    count: u8,
    data: &'a [u8],
    next: u16,
    total: u16,
}

/// Segments `data` (exactly `count x` [`BLOCK_LEN`] bytes of blocks `first_block..`) into the
/// packets of the response to `request`.
pub fn segment(request: u32, first_block: u32, data: &[u8]) -> Result<Segments<'_>> {
    if data.is_empty() || !data.len().is_multiple_of(BLOCK_LEN) {
        return Err(Error::BadField { field: "response length (whole blocks)", value: data.len() as u32 });
    }
    let count = u8::try_from(data.len() / BLOCK_LEN)
        .map_err(|_| Error::BadField { field: "block count", value: (data.len() / BLOCK_LEN) as u32 })?;
    check_count(count)?;
    check_range(first_block, count)?;
    Ok(Segments { request, first_block, count, data, next: 0, total: fragment_count(count) })
}

impl<'a> Segments<'a> {
    /// Packet `index` of the response, without walking the ones before it (a sender that
    /// paces packets keeps only the index between sends).
    pub fn get(&self, index: u16) -> Option<Video<'a>> {
        if index >= self.total {
            return None;
        }
        let start = usize::from(index) * FRAGMENT_PAYLOAD;
        let end = (start + FRAGMENT_PAYLOAD).min(self.data.len());
        Some(Video {
            request: self.request,
            first_block: self.first_block,
            count: self.count,
            index,
            total: self.total,
            payload: &self.data[start..end],
        })
    }
}

impl<'a> Iterator for Segments<'a> {
    type Item = Video<'a>;

    fn next(&mut self) -> Option<Video<'a>> {
        let v = self.get(self.next)?;
        self.next += 1;
        Some(v)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::from(self.total - self.next);
        (n, Some(n))
    }
}

impl ExactSizeIterator for Segments<'_> {}

/// A whole response, reassembled.
#[derive(Debug, PartialEq, Eq)]
pub struct Complete<'r> {
    pub request: u32,
    pub first_block: u32,
    pub count: u8,
    /// `count x BLOCK_LEN` bytes.
    pub data: &'r [u8],
}

/// A response given up on (expired or evicted) before all its packets came, with which of its
/// blocks did arrive whole so that they need not be fetched again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incomplete<K> {
    pub key: K,
    pub request: u32,
    pub first_block: u32,
    pub count: u8,
    /// Bit i set: block `first_block + i` arrived whole.
    pub complete: u16,
}

impl<K> Incomplete<K> {
    /// Ids of the blocks that arrived whole.
    pub fn complete_blocks(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.count).filter(|i| self.complete & (1 << i) != 0).map(|i| self.first_block + u32::from(i))
    }

    /// Ids of the blocks that are missing at least one packet.
    pub fn incomplete_blocks(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.count).filter(|i| self.complete & (1 << i) == 0).map(|i| self.first_block + u32::from(i))
    }
}

/// What [`Reassembler::insert`] did with a packet.
#[derive(Debug, PartialEq, Eq)]
pub enum Insert<'r, K> {
    /// Stored; the response still misses packets. If every slot was busy, the oldest response
    /// was given up to make room and is reported here.
    Stored { evicted: Option<Incomplete<K>> },
    /// This packet was already there, or belongs to a response recently completed or given up
    /// (duplicated or replayed); nothing changed.
    Duplicate,
    /// This packet completed the response.
    Complete(Complete<'r>),
}

#[derive(Debug)]
struct Slot<K> {
    key: K,
    request: u32,
    first_block: u32,
    count: u8,
    total: u16,
    have: u128,
    got: u16,
    started: u64,
    buf: Vec<u8>,
}

/// Reassembles responses from video packets that arrive out of order, duplicated or not at all.
///
/// Memory is bounded: at most `slots` responses are in progress, each with one buffer of at most
/// `MAX_BLOCKS_PER_REQUEST x BLOCK_LEN` bytes, reused from response to response. `K` tells
/// responses apart (a daemon uses the parent's address and the request id); time (`now`) is
/// whatever monotonic unit the caller uses.
#[derive(Debug)]
pub struct Reassembler<K> {
    slots: Vec<Option<Slot<K>>>,
    spare: Vec<Vec<u8>>,
    /// Responses recently completed or given up, so that late or replayed packets of them are
    /// reported as duplicates instead of opening a slot that could never complete.
    recent: VecDeque<(K, u32)>,
}

fn block_fragments(count: u8, block: u8) -> u128 {
    let first = usize::from(block) * BLOCK_LEN / FRAGMENT_PAYLOAD;
    let last = ((usize::from(block) + 1) * BLOCK_LEN - 1) / FRAGMENT_PAYLOAD;
    debug_assert!(last < usize::from(fragment_count(count)));
    let hi = if last >= 127 { u128::MAX } else { (1u128 << (last + 1)) - 1 };
    hi & !((1u128 << first) - 1)
}

impl<K: Copy + Eq> Reassembler<K> {
    /// A reassembler holding at most `slots` (at least 1) responses in progress.
    pub fn new(slots: usize) -> Reassembler<K> {
        let slots = slots.max(1);
        Reassembler { slots: (0..slots).map(|_| None).collect(), spare: Vec::new(), recent: VecDeque::new() }
    }

    /// Responses in progress.
    pub fn in_progress(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    /// Adds one packet of the response identified by `key`. A packet whose request matches a
    /// response in progress but disagrees on its blocks is an error and changes nothing.
    pub fn insert(&mut self, key: K, now: u64, v: &Video<'_>) -> Result<Insert<'_, K>> {
        check_count(v.count)?;
        check_range(v.first_block, v.count)?;
        if v.total != fragment_count(v.count) {
            return Err(Error::BadField { field: "fragment total", value: v.total.into() });
        }
        if v.index >= v.total {
            return Err(Error::BadField { field: "fragment index", value: v.index.into() });
        }
        if v.payload.len() != fragment_payload_len(v.count, v.index) {
            return Err(Error::BadSize {
                what: "video fragment payload",
                len: v.payload.len(),
                expected: fragment_payload_len(v.count, v.index),
            });
        }
        let mut evicted = None;
        let at = match self.slots.iter().position(|s| matches!(s, Some(s) if s.key == key && s.request == v.request)) {
            Some(i) => {
                let s = self.slots[i].as_ref().expect("position found a slot");
                if s.first_block != v.first_block || s.count != v.count {
                    return Err(Error::BadField {
                        field: "first block (conflicts with earlier packets)",
                        value: v.first_block,
                    });
                }
                i
            }
            None => {
                // Only a packet that would open a slot can belong to a recent response (a response
                // in progress is never in `recent`), so the scan is skipped for the others.
                if self.recent.contains(&(key, v.request)) {
                    return Ok(Insert::Duplicate);
                }
                let i = match self.slots.iter().position(Option::is_none) {
                    Some(i) => i,
                    None => {
                        let oldest = (0..self.slots.len())
                            .min_by_key(|&i| self.slots[i].as_ref().map_or(0, |s| s.started))
                            .expect("at least one slot");
                        evicted = self.release(oldest);
                        oldest
                    }
                };
                let mut buf = self.spare.pop().unwrap_or_default();
                // No clear(): only blocks the reports mark complete are read, so stale bytes
                // from the previous response may stay; only growth is zero-filled.
                buf.resize(response_len(v.count), 0);
                self.slots[i] = Some(Slot {
                    key,
                    request: v.request,
                    first_block: v.first_block,
                    count: v.count,
                    total: v.total,
                    have: 0,
                    got: 0,
                    started: now,
                    buf,
                });
                i
            }
        };
        let s = self.slots[at].as_mut().expect("slot filled above");
        let bit = 1u128 << v.index;
        if s.have & bit != 0 {
            return Ok(Insert::Duplicate);
        }
        s.have |= bit;
        s.got += 1;
        let off = usize::from(v.index) * FRAGMENT_PAYLOAD;
        s.buf[off..off + v.payload.len()].copy_from_slice(v.payload);
        if s.got < s.total {
            return Ok(Insert::Stored { evicted });
        }
        // Complete: the slot's buffer goes back to the spare list once the caller is done.
        let s = self.slots[at].take().expect("slot filled above");
        self.remember(s.key, s.request);
        self.spare.push(s.buf);
        let data = self.spare.last().expect("just pushed");
        Ok(Insert::Complete(Complete { request: s.request, first_block: s.first_block, count: s.count, data }))
    }

    fn remember(&mut self, key: K, request: u32) {
        if self.recent.len() >= 4 * self.slots.len() {
            self.recent.pop_front();
        }
        self.recent.push_back((key, request));
    }

    fn release(&mut self, i: usize) -> Option<Incomplete<K>> {
        let s = self.slots[i].take()?;
        self.remember(s.key, s.request);
        let complete = (0..s.count)
            .filter(|&b| {
                let m = block_fragments(s.count, b);
                s.have & m == m
            })
            .fold(0u16, |acc, b| acc | (1 << b));
        self.spare.push(s.buf);
        Some(Incomplete { key: s.key, request: s.request, first_block: s.first_block, count: s.count, complete })
    }

    /// Gives up the response `key` is assembling, if any, returning its report and its bytes
    /// (blocks the report marks complete are valid there).
    pub fn take(&mut self, key: K, request: u32) -> Option<(Incomplete<K>, &[u8])> {
        let i = self.slots.iter().position(|s| matches!(s, Some(s) if s.key == key && s.request == request))?;
        let report = self.release(i)?;
        Some((report, self.spare.last().map_or(&[][..], |b| &b[..])))
    }

    /// Gives up every response started before `older_than`, calling `f` with its report and
    /// its bytes (blocks the report marks complete are valid there).
    pub fn expire(&mut self, older_than: u64, mut f: impl FnMut(Incomplete<K>, &[u8])) {
        for i in 0..self.slots.len() {
            if matches!(&self.slots[i], Some(s) if s.started < older_than)
                && let Some(report) = self.release(i)
            {
                f(report, self.spare.last().map_or(&[][..], |b| &b[..]));
            }
        }
        // Keep at most one spare buffer per slot.
        self.spare.truncate(self.slots.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_match_the_documented_table() {
        let tails: Vec<usize> = (1..=8).map(tail_size).collect();
        assert_eq!(tails, [1200, 1080, 960, 840, 720, 600, 480, 360]);
    }

    #[test]
    fn get_matches_iteration() {
        let data: Vec<u8> = (0..3 * BLOCK_LEN).map(|i| i as u8).collect();
        let segs = segment(9, 100, &data).unwrap();
        let all: Vec<Video<'_>> = segs.clone().collect();
        assert_eq!(all.len(), usize::from(fragment_count(3)));
        for (i, v) in all.iter().enumerate() {
            assert_eq!(segs.get(i as u16).as_ref(), Some(v));
        }
        assert_eq!(segs.get(fragment_count(3)), None);
    }

    #[test]
    fn block_fragment_masks_cover_each_block() {
        for count in 1..=MAX_BLOCKS_PER_REQUEST {
            let all = (0..count).fold(0u128, |a, b| a | block_fragments(count, b));
            let total = fragment_count(count);
            assert_eq!(all, if total == 128 { u128::MAX } else { (1u128 << total) - 1 });
        }
    }
}
