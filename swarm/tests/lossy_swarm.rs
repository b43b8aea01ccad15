//! A swarm over a lossy, jittery network in virtual time: 20 peers for 120 s with 1% of all
//! datagrams lost (control and video alike) and up to 20 ms of jitter still play every block
//! they are due (continuity >= 0.99) with exactly the source's bytes; and 10 peers for 30 s
//! with 5% lost in bursts of 4 datagrams on average (`--loss 5% --loss-burst 4`) do too.

use soplab::virtual_swarm::VirtualSwarm;
use soplab_node::SECOND;
use soplab_node::impair::Impairment;
use soplab_testkit::assert_continuity;

///
/// Fails today (seed 5: 15 of 20 peers below 0.99, worst 0.771; every peer's bytes are right).
/// Two causes in peer/src/core.rs: a response missing one packet (27% of 4-block responses at
/// 1% loss) is only given up after `request_timeout` (3 s), blocks that did arrive whole
/// included; and peers that join a stream younger than `lag` start at block 0 and play only
/// about 2.7 s behind the source, less than that timeout.
#[test]
fn twenty_peers_with_one_percent_loss() {
    let link = Impairment { delay: 20_000, jitter: 20_000, loss: 0.01, loss_burst: None };
    let out = VirtualSwarm { link, ..VirtualSwarm::new(20, 120 * SECOND, 5) }.run();
    let net = out.net;
    eprintln!("{net:?}; drops: {:?}", out.summary.dropped);
    let loss = net.lost as f64 / net.sent as f64;
    assert!((0.008..0.012).contains(&loss), "the network lost {loss:.4} of datagrams, not 1%");
    assert_eq!(out.summary.peers.len(), 20);
    let mut worst = (1.0f64, String::new());
    for p in &out.summary.peers {
        let c = p.continuity.expect("every peer started playback");
        eprintln!(
            "{}: continuity {c:.4} ({} of {} blocks), {} neighbours",
            p.address, p.blocks_played, p.blocks_due, p.neighbors
        );
        if c < worst.0 {
            worst = (c, p.address.clone());
        }
        assert!(p.played_matches_source, "peer {} played bytes that are not the source's", p.address);
        assert!(p.blocks_due > 500, "peer {} was due only {} blocks", p.address, p.blocks_due);
    }
    for p in &out.summary.peers {
        assert_continuity(p, 0.99, &format!("; worst {:.4} at {}", worst.0, worst.1));
    }
    // Losses show up as given-up requests, re-requested elsewhere, not as bad input.
    let timed_out: u64 = out.peer_stats.iter().map(|s| s.requests_timed_out).sum();
    assert!(timed_out > 0, "1% loss and not one request timed out");
}

/// The burst-loss swarm of the netns test (netns-tests/tests/faults.rs) in virtual time, where
/// every datagram, the source's and the tracker's included, goes through one Gilbert-Elliott
/// chain: 5% lost in bursts of 4 on average, and every peer still plays >= 0.99 of its blocks
/// with the default lag.
#[test]
fn ten_peers_with_five_percent_lost_in_bursts() {
    let link = Impairment { delay: 20_000, jitter: 10_000, loss: 0.05, loss_burst: Some(4.0) };
    let out = VirtualSwarm { link, ..VirtualSwarm::new(10, 30 * SECOND, 2) }.run();
    let net = out.net;
    let loss = net.lost as f64 / net.sent as f64;
    eprintln!("{net:?}: lost {loss:.4}");
    assert!((0.035..0.065).contains(&loss), "the network lost {loss:.4} of datagrams, not 5%");
    assert_eq!(out.summary.peers.len(), 10);
    let worst = out.summary.peers.iter().filter_map(|p| p.continuity).fold(1.0, f64::min);
    for p in &out.summary.peers {
        assert!(p.played_matches_source, "peer {} played bytes that are not the source's", p.address);
        assert_continuity(p, 0.99, &format!("; worst {worst:.4}"));
    }
}
