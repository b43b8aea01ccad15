//! One capture file, pcap or pcapng, read as a stream of UDP [`Datagram`]s with bounded memory.
//!
//! pcap-parser does the framing in a circular buffer of [`BUFFER`] bytes (less for a smaller
//! file; grown only for a larger block, up to [`MAX_BUFFER`]). Nothing in a file stops the reading except its end: a
//! truncated last record, a record header full of garbage (the reader looks for the next
//! plausible record and goes on), frames that are not UDP are all counted in [`FileStats`].

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{PcapBlockOwned, PcapError};
use serde::Serialize;

use super::decode::{Datagram, Frame, Link, decode};
use crate::error::{Error, Result};

/// Initial read buffer (for a file of at least this size).
pub const BUFFER: usize = 1 << 20;
/// Smallest initial read buffer.
const MIN_BUFFER: usize = 16 << 10;
/// Largest buffer (one block must fit); a record claiming more is garbage.
pub const MAX_BUFFER: usize = 16 << 20;
/// The latest time the reader takes, in microseconds since 1970 (2^62 - 1: the year 146,000).
/// With every time in `0..=MAX_TS_US`, the difference and the sum of any two fit an `i64`, so
/// nothing after the reader can overflow on a timestamp. A record outside is dropped and
/// counted in [`FileStats::bad_timestamps`].
pub const MAX_TS_US: i64 = (1 << 62) - 1;
/// A legacy pcap record longer than this (and longer than the file's snapshot length) is
/// treated as garbage. 262,144 is tcpdump's default snapshot length.
const MAX_RECORD: u32 = 262_144;

/// The container format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Pcap,
    Pcapng,
}

/// What one file held, record by record.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FileStats {
    #[serde(serialize_with = "crate::output::path_text")]
    pub path: PathBuf,
    pub format: Option<Format>,
    /// Link types seen (pcap header or pcapng interfaces).
    pub link_types: Vec<i32>,
    pub file_bytes: u64,
    /// Packet records (pcap records, pcapng enhanced and simple packet blocks).
    pub records: u64,
    pub udp: u64,
    pub not_ip: u64,
    pub not_udp: u64,
    /// Non-first IP fragments (no UDP header); first fragments are analysed as datagrams.
    pub ip_fragments: u64,
    /// First fragments of fragmented datagrams (analysed with the UDP header's length).
    pub fragmented_datagrams: u64,
    /// Frames cut by the snapshot length before the end of the UDP header (unusable).
    pub cut_headers: u64,
    /// UDP datagrams whose payload was cut by the snapshot length (still analysed: the length
    /// comes from the UDP header).
    pub cut_payloads: u64,
    pub malformed: u64,
    pub unsupported_link: u64,
    /// pcapng simple packet blocks (no timestamp: skipped) and packets of unknown interfaces.
    pub no_timestamp: u64,
    /// Records dropped for their time: before 1970 or after [`MAX_TS_US`] once the interface's
    /// offset is applied, or on a pcapng interface whose if_tsresol is not a 64-bit unit.
    pub bad_timestamps: u64,
    /// Times the reader met a garbage record header and searched for the next good record.
    pub garbage_records: u64,
    /// Bytes skipped while searching.
    pub garbage_bytes: u64,
    /// The file ended inside a record.
    pub truncated: bool,
    /// An I/O error ended the file early.
    pub read_error: Option<String>,
    pub first_ts_us: Option<i64>,
    pub last_ts_us: Option<i64>,
    /// Records whose time is earlier than the record before them.
    pub out_of_order: u64,
}

#[derive(Clone, Copy)]
struct Iface {
    link: Link,
    /// Timestamp units per second (`None`: if_tsresol gives no 64-bit unit).
    units: Option<u64>,
    /// if_tsoffset in microseconds (`None`: it does not fit).
    offset_us: Option<i64>,
}

/// The units per second of a pcapng if_tsresol: 10^k, or 2^k with the top bit set (pcap-parser
/// 0.17 rejects every power of two).
fn tsresol_units(tsresol: u8) -> Option<u64> {
    let k = u32::from(tsresol & 0x7f);
    if tsresol & 0x80 == 0 { 10u64.checked_pow(k) } else { 1u64.checked_shl(k) }
}

/// A pcapng time in microseconds since 1970, or `None` when it is out of range.
fn pcapng_time(raw: u64, iface: &Iface) -> Option<i64> {
    let us = u128::from(raw) * 1_000_000 / u128::from(iface.units?);
    let ts = i64::try_from(us).ok()?.checked_add(iface.offset_us?)?;
    (0..=MAX_TS_US).contains(&ts).then_some(ts)
}

enum Kind {
    Legacy {
        big_endian: bool,
        header_len: usize,
        nanos: bool,
        snaplen: u32,
        link: Link,
    },
    /// `big_endian`: the byte order of the current section.
    Ng {
        ifaces: Vec<Iface>,
        big_endian: bool,
    },
}

/// A capture file being read.
pub struct CaptureFile {
    reader: Box<dyn PcapReaderIterator + Send>,
    kind: Kind,
    started: bool,
    done: bool,
    input: u16,
    last_ts: i64,
    last_sec: Option<u32>,
    capacity: usize,
    pub stats: FileStats,
}

fn read_error(path: &Path, e: std::io::Error) -> Error {
    Error::Read { path: path.to_path_buf(), cause: e }
}

impl CaptureFile {
    /// Opens `path` (input number `input`). A file that is neither pcap nor pcapng, or is
    /// empty, is an error that says so.
    pub fn open(path: &Path, input: u16) -> Result<CaptureFile> {
        let file = File::open(path).map_err(|e| read_error(path, e))?;
        let meta = file.metadata().map_err(|e| read_error(path, e))?;
        if meta.is_dir() {
            return Err(Error::NotACapture { path: path.into(), why: "it is a directory".into() });
        }
        CaptureFile::from_reader(file, path, meta.len(), input)
    }

    /// Reads a capture from any byte stream: a file, a pipe, bytes in memory
    /// (`std::io::Cursor`). `name` stands for it in the counts and the errors, `bytes` is its
    /// size if known (for the progress bar; 0 otherwise).
    pub fn from_reader<R: Read + Send + 'static>(
        mut reader: R,
        name: &Path,
        bytes: u64,
        input: u16,
    ) -> Result<CaptureFile> {
        // The first buffer's worth up front: pcap-parser reads the file header from what one
        // `read` returns.
        let mut head = Vec::new();
        // A file smaller than the buffer gets a smaller one, but never smaller than itself.
        let capacity = match usize::try_from(bytes) {
            Ok(n) if n > 0 => n.next_power_of_two().clamp(MIN_BUFFER, BUFFER),
            _ => BUFFER,
        };
        (&mut reader).take(capacity as u64).read_to_end(&mut head).map_err(|e| read_error(name, e))?;
        let not = |why: &str| Error::NotACapture { path: name.into(), why: why.into() };
        let format = match head.get(..4) {
            None if head.is_empty() => return Err(not("the file is empty")),
            Some([0x0a, 0x0d, 0x0d, 0x0a]) => Format::Pcapng,
            Some(
                [0xd4, 0xc3, 0xb2, 0xa1]
                | [0xa1, 0xb2, 0xc3, 0xd4]
                | [0x4d, 0x3c, 0xb2, 0xa1]
                | [0xa1, 0xb2, 0x3c, 0x4d]
                // Kuznetzov's modified pcap.
                | [0x34, 0xcd, 0xb2, 0xa1]
                | [0xa1, 0xb2, 0xcd, 0x34],
            ) => Format::Pcap,
            _ => return Err(not("no pcap or pcapng magic number at the start")),
        };
        let stream = std::io::Cursor::new(head).chain(reader);
        let reader = pcap_parser::create_reader(capacity, stream).map_err(|e| match e {
            PcapError::ReadError => not("it cannot be read"),
            PcapError::Incomplete(_) | PcapError::Eof | PcapError::UnexpectedEof => {
                not("the file ends inside its header")
            }
            other => not(&format!("its header is invalid ({other:?})")),
        })?;
        let stats = FileStats { path: name.into(), format: Some(format), file_bytes: bytes, ..FileStats::default() };
        let kind = match format {
            Format::Pcap => {
                Kind::Legacy { big_endian: false, header_len: 16, nanos: false, snaplen: 0, link: Link::Ethernet }
            }
            Format::Pcapng => Kind::Ng { ifaces: Vec::new(), big_endian: false },
        };
        Ok(CaptureFile {
            reader,
            kind,
            started: false,
            done: false,
            input,
            last_ts: i64::MIN,
            last_sec: None,
            capacity,
            stats,
        })
    }

    /// Bytes of the file consumed so far.
    pub fn consumed(&self) -> u64 {
        self.reader.consumed() as u64
    }

    /// Reads up to the next UDP datagram and writes it into `out`; false at the end of the file.
    /// Every turn of the loop consumes or reads bytes, grows the buffer (up to [`MAX_BUFFER`])
    /// or ends the file, so it ends on any input.
    pub fn next_datagram(&mut self, out: &mut Datagram) -> bool {
        while !self.done {
            if self.legacy_garbage_ahead() || self.ng_garbage_ahead() {
                self.resync(1);
                continue;
            }
            let r = self.reader.next();
            match r {
                Ok((off, block)) => {
                    let got = handle_block(block, &mut self.kind, &mut self.stats, out);
                    // No shift here: `refill` moves the unread tail to the front, once per fill
                    // (`consume` would move half the buffer every time it passes the middle).
                    self.reader.consume_noshift(off);
                    self.started = true;
                    if let Got::Packet { ts, udp } = got
                        && self.packet(ts, udp, out)
                    {
                        return true;
                    }
                }
                Err(PcapError::Eof) => self.done = true,
                Err(PcapError::Incomplete(_)) => {
                    if self.reader.reader_exhausted() {
                        self.stats.truncated = !self.reader.data().is_empty();
                        self.done = true;
                    } else if self.refill() == Refill::Full {
                        self.too_small();
                    }
                }
                // Nothing left is the end (pcap-parser says Eof only if it saw the end itself).
                Err(PcapError::UnexpectedEof) => {
                    self.stats.truncated = !self.reader.data().is_empty();
                    self.done = true;
                }
                Err(PcapError::BufferTooSmall) => self.too_small(),
                Err(PcapError::ReadError) => {
                    self.stats.read_error = Some("read error".into());
                    self.done = true;
                }
                Err(_) => self.resync(1),
            }
        }
        false
    }

    /// Counts a packet record at `ts`; true when `out` holds a UDP datagram to pass on.
    fn packet(&mut self, ts: i64, udp: bool, out: &mut Datagram) -> bool {
        self.last_sec = Some(u32::try_from(ts / 1_000_000).unwrap_or(u32::MAX));
        if ts < self.last_ts {
            self.stats.out_of_order += 1;
        }
        self.last_ts = self.last_ts.max(ts);
        self.stats.first_ts_us.get_or_insert(ts);
        self.stats.last_ts_us = Some(self.last_ts);
        if udp {
            out.ts_us = ts;
            out.input = self.input;
        }
        udp
    }

    /// The block ahead does not fit the buffer: a larger buffer, or garbage beyond the largest.
    /// A buffer not yet full is filled first, and a block longer than what is left of the file
    /// is garbage (so that a garbage length costs no buffer growth).
    fn too_small(&mut self) {
        if self.reader.data().len() < self.capacity {
            match self.refill() {
                Refill::Failed => return,
                Refill::Read if !self.reader.reader_exhausted() => return,
                Refill::Read => return self.resync(1),
                Refill::Full => {}
            }
        }
        if self.capacity < MAX_BUFFER {
            self.grow_to(self.capacity * 2);
        } else {
            self.resync(1);
        }
    }

    fn grow_to(&mut self, bytes: usize) {
        self.capacity = bytes.next_power_of_two().clamp(self.capacity, MAX_BUFFER);
        self.reader.grow(self.capacity);
    }

    /// Reads more of the file into the buffer.
    fn refill(&mut self) -> Refill {
        let before = self.reader.data().len();
        if let Err(e) = self.reader.refill() {
            self.stats.read_error = Some(format!("{e:?}"));
            self.done = true;
            return Refill::Failed;
        }
        if self.reader.data().len() > before || self.reader.reader_exhausted() { Refill::Read } else { Refill::Full }
    }

    /// For legacy pcap: whether the record header at the front of the buffer is garbage.
    fn legacy_garbage_ahead(&mut self) -> bool {
        if !self.started {
            return false;
        }
        let Kind::Legacy { big_endian, nanos, snaplen, .. } = self.kind else { return false };
        let data = self.reader.data();
        data.len() >= 16 && !plausible_record(&data[..16], big_endian, nanos, snaplen, self.last_sec)
    }

    /// For pcapng: whether the block at the front of the buffer is shorter than a block's
    /// type and two lengths (pcap-parser 0.17 subtracts past zero on a process information
    /// block of 4 to 11 bytes).
    fn ng_garbage_ahead(&mut self) -> bool {
        let Kind::Ng { big_endian, .. } = self.kind else { return false };
        let data = self.reader.data();
        data.len() >= 8 && read_u32(data, 0, false) != SHB && read_u32(data, 4, big_endian) < 12
    }

    /// Skips garbage: looks for the next offset where a record starts (legacy: a plausible
    /// header followed by another plausible header, or by the end of the file; pcapng: a known
    /// block type whose leading and trailing lengths agree), from `from` (at least 1) on.
    /// Every turn consumes or reads bytes, grows the buffer or moves the search on.
    fn resync(&mut self, from: usize) {
        self.stats.garbage_records += 1;
        let mut start = from;
        while !self.done {
            let data = self.reader.data();
            let found = match self.kind {
                Kind::Legacy { big_endian, header_len, nanos, snaplen, .. } => {
                    find_legacy(data, start, big_endian, header_len, nanos, snaplen, self.last_sec)
                }
                Kind::Ng { big_endian, .. } => find_ng(data, start, MAX_BUFFER / 2, big_endian),
            };
            let exhausted = self.reader.reader_exhausted();
            match found {
                Search::Found(at) => return self.skip(at),
                Search::NeedMore(at, _) if exhausted => return self.skip(at),
                // A record longer than half the buffer: room for twice it (so that the search
                // confirms or rejects it without a refill per byte), or garbage if none has.
                Search::NeedMore(at, need) if need > self.capacity / 2 => {
                    if need <= MAX_BUFFER / 2 {
                        self.grow_to(2 * need);
                        start = at;
                    } else {
                        start = at + 1;
                    }
                }
                Search::NeedMore(at, _) | Search::NotFound(at) => {
                    self.skip(at);
                    start = 0;
                    if exhausted {
                        // Garbage to the end of the file.
                        let rest = self.reader.data().len();
                        self.skip(rest);
                        self.done = true;
                    } else {
                        // Full is impossible here: the search consumed all but a candidate
                        // shorter than half the buffer.
                        self.refill();
                    }
                }
            }
        }
    }

    /// Consumes `n` bytes of garbage (at most what the buffer holds).
    fn skip(&mut self, n: usize) {
        let n = n.min(self.reader.data().len());
        self.reader.consume(n);
        self.stats.garbage_bytes += n as u64;
    }
}

#[derive(PartialEq, Eq)]
enum Refill {
    /// Bytes were read, or the file is known to be at its end.
    Read,
    /// The buffer is full: nothing could be read.
    Full,
    /// A read error ended the file.
    Failed,
}

enum Search {
    Found(usize),
    /// A candidate at this offset that needs more data to confirm: this many bytes from it.
    NeedMore(usize, usize),
    /// Nothing before this offset can start a record.
    NotFound(usize),
}

enum Got {
    NotPacket,
    Packet { ts: i64, udp: bool },
}

#[inline]
fn read_u32(b: &[u8], at: usize, big_endian: bool) -> u32 {
    let w: [u8; 4] = b[at..at + 4].try_into().expect("4 bytes");
    if big_endian { u32::from_be_bytes(w) } else { u32::from_le_bytes(w) }
}

/// A legacy record header that could be real: sub-second field in range, captured length
/// within the snapshot length and not above the original length, time within a day of the
/// previous record.
fn plausible_record(h: &[u8], big_endian: bool, nanos: bool, snaplen: u32, last_sec: Option<u32>) -> bool {
    let sec = read_u32(h, 0, big_endian);
    let frac = read_u32(h, 4, big_endian);
    let caplen = read_u32(h, 8, big_endian);
    let origlen = read_u32(h, 12, big_endian);
    let frac_ok = frac < if nanos { 1_000_000_000 } else { 1_000_000 };
    let len_ok = caplen <= snaplen.max(MAX_RECORD) && caplen <= origlen && origlen <= (1 << 24);
    let time_ok = last_sec.is_none_or(|l| sec.abs_diff(l) <= 86_400);
    frac_ok && len_ok && time_ok
}

fn find_legacy(
    data: &[u8],
    start: usize,
    big_endian: bool,
    header_len: usize,
    nanos: bool,
    snaplen: u32,
    last_sec: Option<u32>,
) -> Search {
    let mut at = start;
    while at + 16 <= data.len() {
        if plausible_record(&data[at..at + 16], big_endian, nanos, snaplen, last_sec) {
            let caplen = read_u32(data, at + 8, big_endian) as usize;
            let next = at + header_len + caplen;
            if next + 16 <= data.len() {
                if plausible_record(&data[next..next + 16], big_endian, nanos, snaplen, last_sec) {
                    return Search::Found(at);
                }
            } else {
                return Search::NeedMore(at, header_len + caplen + 16);
            }
        }
        at += 1;
    }
    Search::NotFound(at)
}

/// A pcapng section header block's type: the same in both byte orders.
const SHB: u32 = 0x0a0d_0d0a;

/// The next offset from `start` where a pcapng block could start: a known type whose leading
/// and trailing lengths agree, in the section's byte order (a section header's own: its byte
/// order magic says).
fn find_ng(data: &[u8], start: usize, max_len: usize, big_endian: bool) -> Search {
    const KNOWN: [u32; 6] = [1, 2, 3, 4, 5, 6];
    let mut at = start;
    while at + 12 <= data.len() {
        let be = match read_u32(data, at + 8, false) {
            _ if read_u32(data, at, false) != SHB => {
                Some(big_endian).filter(|&be| KNOWN.contains(&read_u32(data, at, be)))
            }
            0x1a2b_3c4d => Some(false),
            0x4d3c_2b1a => Some(true),
            _ => None,
        };
        if let Some(be) = be {
            let len = read_u32(data, at + 4, be) as usize;
            if len >= 12 && len.is_multiple_of(4) && len <= max_len {
                if at + len > data.len() {
                    return Search::NeedMore(at, len);
                }
                if read_u32(data, at + len - 4, be) as usize == len {
                    return Search::Found(at);
                }
            }
        }
        at += 1;
    }
    Search::NotFound(at)
}

/// Handles one block: a packet record (with its time, and whether `out` now holds a UDP
/// datagram) or another block.
fn handle_block(block: PcapBlockOwned<'_>, kind: &mut Kind, stats: &mut FileStats, out: &mut Datagram) -> Got {
    match block {
        PcapBlockOwned::LegacyHeader(h) => {
            let link = Link::from_linktype(h.network.0);
            stats.link_types.push(h.network.0);
            *kind = Kind::Legacy {
                big_endian: h.is_bigendian(),
                header_len: if h.is_modified_format() { 24 } else { 16 },
                nanos: h.is_nanosecond_precision(),
                snaplen: h.snaplen,
                link,
            };
            Got::NotPacket
        }
        PcapBlockOwned::Legacy(b) => {
            let Kind::Legacy { nanos, link, .. } = *kind else { return Got::NotPacket };
            stats.records += 1;
            let frac = if nanos { i64::from(b.ts_usec) / 1000 } else { i64::from(b.ts_usec) };
            let ts = i64::from(b.ts_sec) * 1_000_000 + frac;
            let data = &b.data[..(b.caplen as usize).min(b.data.len())];
            Got::Packet { ts, udp: frame(link, data, stats, out) }
        }
        PcapBlockOwned::NG(Block::SectionHeader(shb)) => {
            if let Kind::Ng { ifaces, big_endian } = kind {
                ifaces.clear();
                *big_endian = shb.big_endian();
            }
            Got::NotPacket
        }
        PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
            if let Kind::Ng { ifaces, .. } = kind {
                stats.link_types.push(idb.linktype.0);
                ifaces.push(Iface {
                    link: Link::from_linktype(idb.linktype.0),
                    units: tsresol_units(idb.if_tsresol),
                    offset_us: idb.if_tsoffset.checked_mul(1_000_000),
                });
            }
            Got::NotPacket
        }
        PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
            stats.records += 1;
            let Kind::Ng { ifaces, .. } = kind else { return Got::NotPacket };
            let Some(iface) = ifaces.get(epb.if_id as usize).copied() else {
                stats.no_timestamp += 1;
                return Got::NotPacket;
            };
            let raw = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
            let Some(ts) = pcapng_time(raw, &iface) else {
                stats.bad_timestamps += 1;
                return Got::NotPacket;
            };
            let data = &epb.data[..(epb.caplen as usize).min(epb.data.len())];
            Got::Packet { ts, udp: frame(iface.link, data, stats, out) }
        }
        PcapBlockOwned::NG(Block::SimplePacket(_)) => {
            stats.records += 1;
            stats.no_timestamp += 1;
            Got::NotPacket
        }
        PcapBlockOwned::NG(_) => Got::NotPacket,
    }
}

#[inline]
fn frame(link: Link, data: &[u8], stats: &mut FileStats, out: &mut Datagram) -> bool {
    match decode(link, data, out) {
        Frame::Udp => {
            stats.udp += 1;
            stats.cut_payloads += u64::from(out.cut);
            stats.fragmented_datagrams += u64::from(out.fragmented);
            true
        }
        Frame::NotIp => {
            stats.not_ip += 1;
            false
        }
        Frame::NotUdp => {
            stats.not_udp += 1;
            false
        }
        Frame::Fragment => {
            stats.ip_fragments += 1;
            false
        }
        Frame::Cut => {
            stats.cut_headers += 1;
            false
        }
        Frame::Malformed => {
            stats.malformed += 1;
            false
        }
        Frame::UnsupportedLink => {
            stats.unsupported_link += 1;
            false
        }
    }
}
