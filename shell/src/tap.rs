//! A pcap of what one node sends and receives, written by the node's own I/O shell.
//!
//! Where tcpdump cannot run (no root, no namespaces), a loopback swarm still owes its users
//! traces: each peer's shell records every datagram it sends and receives as an IPv4/UDP packet
//! (link type RAW, 101) with the CLOCK_REALTIME time, so `tcpdump -r`, tshark, ndpiReader and
//! `soplab analyze` read it like a capture taken on the host. What it cannot show is what the
//! kernel did: datagrams the shell's own loss emulation dropped are not written as sent, and
//! datagrams that never reached the socket are not written as received.
//!
//! A virtual-time swarm (`soplab swarm --mode virtual`) writes its bridge capture with the same
//! tap, cut to a snapshot length ([`PcapTap::create_snapped`]).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// IPv4 (20 bytes) plus UDP (8 bytes).
const HEADERS: usize = 28;

/// The snapshot length of a capture that keeps whole packets.
pub const WHOLE: u32 = 65535;

/// The classic pcap file header: magic (microsecond timestamps, written in this machine's byte
/// order, which readers detect), version 2.4, no time zone correction, the snapshot length,
/// link type RAW (101: packets start with the IP header).
fn file_header(snaplen: u32) -> [u8; 24] {
    let mut h = [0u8; 24];
    h[0..4].copy_from_slice(&0xa1b2_c3d4u32.to_ne_bytes());
    h[4..6].copy_from_slice(&2u16.to_ne_bytes());
    h[6..8].copy_from_slice(&4u16.to_ne_bytes());
    h[16..20].copy_from_slice(&snaplen.to_ne_bytes());
    h[20..24].copy_from_slice(&101u32.to_ne_bytes());
    h
}

/// One node's capture file, or (cut to a snapshot length) the capture of a whole virtual
/// network. (Written by hand rather than with pcap-file, whose writer cannot be flushed
/// without being consumed; the format is a 24-byte header and a 16-byte header per record.)
pub struct PcapTap {
    writer: Option<BufWriter<File>>,
    path: PathBuf,
    buf: Vec<u8>,
    ip_id: u16,
    snaplen: u32,
    /// Packets written so far.
    pub packets: u64,
}

impl std::fmt::Debug for PcapTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcapTap").field("path", &self.path).field("packets", &self.packets).finish()
    }
}

fn write_err(path: &Path, error: io::Error) -> io::Error {
    let kind = error.kind();
    io::Error::new(kind, crate::process::OutputError { what: "capture", path: path.to_path_buf(), error })
}

impl PcapTap {
    /// Creates (truncates) `path` and writes the pcap file header.
    ///
    /// # Errors
    /// When the file cannot be created.
    pub fn create(path: &Path) -> io::Result<PcapTap> {
        PcapTap::open(path, WHOLE, 8 << 10)
    }

    /// Like [`PcapTap::create`], but each record keeps only the first `snaplen` bytes of its
    /// packet (IPv4 header first) and the packet's true length, as `tcpdump -s SNAPLEN` writes:
    /// readers still get every size from the length fields. For one busy capture: the file is
    /// written in large chunks.
    ///
    /// # Errors
    /// When the file cannot be created.
    pub fn create_snapped(path: &Path, snaplen: u32) -> io::Result<PcapTap> {
        PcapTap::open(path, snaplen.clamp(HEADERS as u32, WHOLE), 1 << 20)
    }

    fn open(path: &Path, snaplen: u32, buffer: usize) -> io::Result<PcapTap> {
        let file = File::create(path)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot create the capture file {}: {e}", path.display())))?;
        let mut writer = BufWriter::with_capacity(buffer, file);
        writer.write_all(&file_header(snaplen)).map_err(|e| write_err(path, e))?;
        Ok(PcapTap {
            writer: Some(writer),
            path: path.to_path_buf(),
            buf: Vec::with_capacity(1400),
            ip_id: 0,
            snaplen,
            packets: 0,
        })
    }

    /// Where the capture goes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one UDP datagram from `src` to `dst` seen at `ts_us` (µs since the Unix epoch).
    /// IPv6 pairs are skipped: soplab speaks IPv4 only.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn record(&mut self, ts_us: u64, src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> io::Result<()> {
        let (SocketAddr::V4(s), SocketAddr::V4(d)) = (src, dst) else { return Ok(()) };
        let Some(writer) = self.writer.as_mut() else { return Ok(()) };
        let total = HEADERS + payload.len();
        let Ok(total16) = u16::try_from(total) else { return Ok(()) };
        self.ip_id = self.ip_id.wrapping_add(1);
        let b = &mut self.buf;
        b.clear();
        b.extend_from_slice(&[0x45, 0, 0, 0]);
        b[2..4].copy_from_slice(&total16.to_be_bytes());
        b.extend_from_slice(&self.ip_id.to_be_bytes());
        b.extend_from_slice(&[0x40, 0, 64, 17, 0, 0]); // don't fragment, TTL 64, UDP, checksum below
        b.extend_from_slice(&s.ip().octets());
        b.extend_from_slice(&d.ip().octets());
        let sum = ipv4_checksum(&b[..20]);
        b[10..12].copy_from_slice(&sum.to_be_bytes());
        b.extend_from_slice(&s.port().to_be_bytes());
        b.extend_from_slice(&d.port().to_be_bytes());
        b.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        b.extend_from_slice(&[0, 0]); // UDP checksum 0: "not computed", valid for IPv4
        let captured = total.min(self.snaplen as usize);
        b.extend_from_slice(&payload[..captured - HEADERS]);
        let mut rec = [0u8; 16];
        rec[0..4].copy_from_slice(&((ts_us / 1_000_000) as u32).to_ne_bytes());
        rec[4..8].copy_from_slice(&((ts_us % 1_000_000) as u32).to_ne_bytes());
        rec[8..12].copy_from_slice(&(captured as u32).to_ne_bytes());
        rec[12..16].copy_from_slice(&(total as u32).to_ne_bytes());
        writer.write_all(&rec).and_then(|()| writer.write_all(b)).map_err(|e| write_err(&self.path, e))?;
        self.packets += 1;
        Ok(())
    }

    /// Pushes buffered records to the file.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn flush(&mut self) -> io::Result<()> {
        match self.writer.as_mut() {
            Some(w) => w.flush().map_err(|e| write_err(&self.path, e)),
            None => Ok(()),
        }
    }

    /// Flushes and closes the file; later records are ignored.
    ///
    /// # Errors
    /// When the last buffered packets cannot be written.
    pub fn finish(&mut self) -> io::Result<()> {
        match self.writer.take() {
            Some(mut w) => w.flush().map_err(|e| write_err(&self.path, e)),
            None => Ok(()),
        }
    }
}

impl Drop for PcapTap {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use pcap_file::DataLink;

    use super::*;

    #[test]
    fn writes_a_pcap_that_pcap_file_reads_back() {
        let path = std::env::temp_dir().join(format!("soplab-tap-{}.pcap", std::process::id()));
        let mut tap = PcapTap::create(&path).unwrap();
        let (a, b): (SocketAddr, SocketAddr) = ("127.0.0.1:3908".parse().unwrap(), "127.0.0.2:3908".parse().unwrap());
        tap.record(1_700_000_000_123_456, a, b, &[7u8; 42]).unwrap();
        tap.record(1_700_000_000_223_456, b, a, &[1u8; 52]).unwrap();
        tap.record(1, "[::1]:1".parse().unwrap(), b, &[0]).unwrap();
        assert_eq!(tap.packets, 2);
        tap.finish().unwrap();
        let mut r = pcap_file::pcap::PcapReader::new(File::open(&path).unwrap()).unwrap();
        assert_eq!(r.header().datalink, DataLink::RAW);
        let p = r.next_packet().unwrap().unwrap();
        assert_eq!(p.timestamp, Duration::from_micros(1_700_000_000_123_456));
        assert_eq!(p.data.len(), 28 + 42);
        assert_eq!(&p.data[12..16], &[127, 0, 0, 1]);
        assert_eq!(ipv4_checksum(&p.data[..20]), 0, "a valid header sums to zero");
        assert_eq!(u16::from_be_bytes([p.data[24], p.data[25]]), 50);
        let p = r.next_packet().unwrap().unwrap();
        assert_eq!(p.data.len(), 28 + 52);
        assert!(r.next_packet().is_none());
        std::fs::remove_file(&path).ok();
    }

    #[test]
    fn a_snapped_capture_keeps_the_head_and_the_true_length() {
        let path = std::env::temp_dir().join(format!("soplab-tap-snap-{}.pcap", std::process::id()));
        let mut tap = PcapTap::create_snapped(&path, 128).unwrap();
        let (a, b): (SocketAddr, SocketAddr) = ("198.18.1.1:3908".parse().unwrap(), "198.18.1.2:3908".parse().unwrap());
        tap.record(5_000_001, a, b, &[9u8; 1320]).unwrap();
        tap.record(5_000_002, b, a, &[1u8; 42]).unwrap();
        tap.finish().unwrap();
        // pcap-parser, as the analyzer reads (pcap-file 2.0 refuses records longer than the
        // snapshot length, which is what a cut capture is made of).
        let bytes = std::fs::read(&path).unwrap();
        let cap = pcap_parser::PcapCapture::from_file(&bytes).unwrap();
        assert_eq!(cap.header.snaplen, 128);
        let [p, q] = &cap.blocks[..] else { panic!("two records, not {}", cap.blocks.len()) };
        assert_eq!((p.caplen, p.origlen, p.data.len()), (128, 28 + 1320, 128));
        assert_eq!((p.ts_sec, p.ts_usec), (5, 1));
        assert_eq!(u16::from_be_bytes([p.data[2], p.data[3]]), 28 + 1320, "IPv4 total length");
        assert_eq!(u16::from_be_bytes([p.data[24], p.data[25]]), 8 + 1320, "UDP length");
        assert_eq!(ipv4_checksum(&p.data[..20]), 0);
        assert_eq!((q.caplen, q.origlen), (28 + 42, 28 + 42), "short packets are whole");
        std::fs::remove_file(&path).ok();
    }
}
