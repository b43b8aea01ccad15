//! Reads captures through the analyzer's reader and one-pass collector and prints counts and
//! the rate: `cargo run --release -p soplab-analyze --example scan -- FILE...`

use std::path::PathBuf;
use std::time::Instant;

use soplab_analyze::capture::{Datagram, Dedup, Inputs};
use soplab_analyze::classify::Kind;
use soplab_analyze::trace::{Trace, TraceOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let paths: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let t0 = Instant::now();
    let mut inputs = Inputs::open(&paths, Dedup::Auto, 50_000)?;
    let mut trace = Trace::new(TraceOptions::default());
    let mut d = Datagram::default();
    while inputs.next_datagram(&mut d) {
        trace.add(&d);
    }
    let secs = t0.elapsed().as_secs_f64();
    let records: u64 = inputs.file_stats().iter().map(|f| f.records).sum();
    println!(
        "{records} records, {} datagrams in {secs:.3} s: {:.0} records/s",
        inputs.stats.datagrams,
        records as f64 / secs
    );
    for k in Kind::ALL {
        println!("{:>16} {}", k.name(), trace.packets[k as usize]);
    }
    println!(
        "endpoints {} pairs {} activity {} KiB",
        trace.endpoints.len(),
        trace.pairs.len(),
        trace.activity_bytes() / 1024
    );
    Ok(())
}
