//! Issue 3, test (a): 50 peers for 10 simulated minutes in virtual time.

use soplab::virtual_swarm::{Outcome, VirtualSwarm};
use soplab_node::SECOND;
use soplab_testkit::assert_continuity;

fn run(seed: u64, peers: usize, secs: u64) -> Outcome {
    VirtualSwarm::new(peers, secs * SECOND, seed).run()
}

#[test]
fn fifty_peers_ten_minutes() {
    let wall = std::time::Instant::now();
    let out = run(7, 50, 600);
    eprintln!("50 peers x 600 s simulated in {:.1} s wall; {:?}", wall.elapsed().as_secs_f64(), out.net);
    assert_eq!(out.summary.peers.len(), 50);
    for p in &out.summary.peers {
        assert_continuity(p, 0.99, "");
        assert!(p.played_matches_source, "peer {} played bytes that are not the source's", p.address);
        assert!(p.max_parents <= 4, "peer {} had {} parents at once", p.address, p.max_parents);
        assert!(p.blocks_due > 3000, "peer {} played only {} blocks", p.address, p.blocks_due);
    }
    assert!(out.summary.source.max_children <= 11, "source had {} children", out.summary.source.max_children);
    assert!(out.summary.source.max_children >= 1, "source served nobody");
    // Neighbour graph accumulated over [0, 300 s], source left out: near a full mesh.
    let n = out.summary.peers.len();
    let pairs = n * (n - 1) / 2;
    let by_300 = out.links.iter().filter(|(t, _, _)| *t <= 300 * SECOND).count();
    let density = by_300 as f64 / pairs as f64;
    eprintln!("neighbour graph by 300 s: {by_300} of {pairs} pairs ({density:.3})");
    assert!(density >= 0.95, "neighbour graph by 300 s has density {density:.3}");
}

#[test]
fn same_seed_same_log() {
    let a = run(11, 12, 60);
    let b = run(11, 12, 60);
    assert!(a.log.len() > 1000, "too few events: {}", a.log.len());
    if let Some(i) = (0..a.log.len().min(b.log.len())).find(|&i| a.log[i] != b.log[i]) {
        panic!("two runs with the same seed diverged at event {i}:\n{}\n{}", a.log[i], b.log[i]);
    }
    assert_eq!(a.log.len(), b.log.len(), "two runs with the same seed logged different numbers of events");
    let c = run(12, 12, 60);
    assert_ne!(a.log, c.log, "another seed gave the same log");
}
