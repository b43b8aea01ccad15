//! Makes a long capture from a short one, for benchmarks: writes `COPIES` copies of a legacy
//! pcap's records one after the other, each shifted in time by the capture's length (plus one
//! second), so the result reads like one long run of the same swarm.
//!
//! ```text
//! cargo run --release -p soplab-analyze --example replicate -- IN.pcap OUT.pcap COPIES
//! ```
//!
//! Only legacy pcap (as `tcpdump -w` writes it) is supported, in either byte order; records are
//! copied byte for byte apart from their timestamps.

use std::fs::File;
use std::io::{BufWriter, Read, Write};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        return Err("usage: replicate IN.pcap OUT.pcap COPIES".into());
    }
    let copies: u32 = args[3].parse().map_err(|_| "COPIES must be a number")?;
    let mut data = Vec::new();
    File::open(&args[1])?.read_to_end(&mut data)?;
    if data.len() < 24 {
        return Err("input too short for a pcap header".into());
    }
    let magic = u32::from_le_bytes(data[..4].try_into()?);
    let (be, nanos) = match magic {
        0xa1b2_c3d4 => (false, false),
        0xa1b2_3c4d => (false, true),
        0xd4c3_b2a1 => (true, false),
        0x4d3c_b2a1 => (true, true),
        _ => return Err("not a legacy pcap file (pcapng is not supported here)".into()),
    };
    let rd = |b: &[u8]| -> u32 {
        let w: [u8; 4] = b[..4].try_into().expect("4 bytes");
        if be { u32::from_be_bytes(w) } else { u32::from_le_bytes(w) }
    };
    let wr = |x: u32| if be { x.to_be_bytes() } else { x.to_le_bytes() };
    // Index the records.
    let mut recs = Vec::new();
    let mut at = 24;
    while at + 16 <= data.len() {
        let caplen = rd(&data[at + 8..]) as usize;
        if at + 16 + caplen > data.len() {
            break;
        }
        recs.push(at);
        at += 16 + caplen;
    }
    if recs.is_empty() {
        return Err("no records".into());
    }
    let sec = |r: usize| rd(&data[r..]);
    let span = sec(*recs.last().expect("records")) - sec(recs[0]) + 2;
    let mut out = BufWriter::with_capacity(1 << 20, File::create(&args[2])?);
    out.write_all(&data[..24])?;
    for k in 0..copies {
        for &r in &recs {
            let caplen = rd(&data[r + 8..]) as usize;
            out.write_all(&wr(sec(r) + k * span))?;
            out.write_all(&data[r + 4..r + 16 + caplen])?;
        }
    }
    out.flush()?;
    eprintln!(
        "{} records x {copies} = {} records, {} s per copy ({} timestamps)",
        recs.len(),
        recs.len() as u64 * u64::from(copies),
        span,
        if nanos { "ns" } else { "us" }
    );
    Ok(())
}
