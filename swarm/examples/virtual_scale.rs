//! The protocol cores alone, without sockets: N peers streaming for S seconds in virtual time.
//!
//! cargo run --release -p soplab --example virtual_scale -- 500 60

use soplab::virtual_swarm::VirtualSwarm;
use soplab_node::SECOND;
fn main() {
    let peers: usize = std::env::args().nth(1).map_or(500, |s| s.parse().expect("a number"));
    let secs: u64 = std::env::args().nth(2).map_or(60, |s| s.parse().expect("a number"));
    let t = std::time::Instant::now();
    let out = VirtualSwarm::new(peers, secs * SECOND, 7).run();
    let mut c: Vec<f64> = out.summary.peers.iter().map(|p| p.continuity.unwrap_or(0.0)).collect();
    c.sort_by(|a, b| a.partial_cmp(b).expect("a number"));
    println!(
        "{peers} peers {secs}s in {:.1}s wall: continuity min {:.3} median {:.3}; {:?}",
        t.elapsed().as_secs_f64(),
        c[0],
        c[c.len() / 2],
        out.net
    );
    println!("dropped {:?} src children {}", out.summary.dropped, out.summary.source.max_children);
}
