//! Issue 3, test (b): tracker, source and 20 peers over real UDP on loopback for 60 s (set
//! SOPLAB_LOOPBACK_SECS to change): every peer plays exactly the source file's bytes with
//! continuity >= 0.99.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use soplab_peer::{Peer, PeerConfig};
use soplab_shell as shell;
use soplab_source::Content;
use soplab_tracker::{Config as TrackerConfig, Tracker};

const PEERS: usize = 20;

fn addr(last: u8) -> SocketAddr {
    // A /24 of loopback for this test; every node has its own address, port chosen by the kernel.
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 77, std::process::id() as u8, last)), 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_peers_stream_a_file_over_udp() {
    let secs: u64 = std::env::var("SOPLAB_LOOPBACK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    // The "media file": 1.5 MB of pseudo-random bytes, looped by the source.
    let path = std::env::temp_dir().join(format!("soplab-loopback-{}.bin", std::process::id()));
    let media: Vec<u8> = (0..1_500_000u64).map(|i| (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 57) as u8).collect();
    std::fs::write(&path, &media).unwrap();
    let content = Content::file(&path).unwrap();
    std::fs::remove_file(&path).ok();

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };

    let tracker_sock = shell::bind_udp(addr(1)).unwrap();
    let tracker_addr = tracker_sock.local_addr().unwrap();
    let mut tracker = Tracker::new(TrackerConfig { seed: 1, ..TrackerConfig::new(tracker_addr) });
    let s = stop();
    let tracker_task = tokio::spawn(async move {
        shell::run(&mut tracker, tracker_sock, s, &mut std::io::sink()).await.unwrap();
        tracker
    });

    let source_sock = shell::bind_udp(addr(2)).unwrap();
    let source_addr = source_sock.local_addr().unwrap();
    let mut source = soplab_source::source(PeerConfig::source(source_addr, tracker_addr, 1, 2), content.clone());
    let s = stop();
    let source_task = tokio::spawn(async move {
        shell::run(&mut source, source_sock, s, &mut std::io::sink()).await.unwrap();
        source
    });

    let mismatches = Arc::new(Mutex::new(vec![(0u64, 0u64); PEERS]));
    let mut peers = Vec::new();
    for i in 0..PEERS {
        let sock = shell::bind_udp(addr(10 + i as u8)).unwrap();
        let cfg = PeerConfig::peer(sock.local_addr().unwrap(), tracker_addr, 1, 100 + i as u64);
        let mut peer = Peer::new(cfg, None);
        let s = stop();
        let (content, mismatches) = (content.clone(), mismatches.clone());
        peers.push(tokio::spawn(async move {
            let mut check = move |m: soplab_node::Media| {
                let mut mm = mismatches.lock().unwrap();
                mm[i].0 += 1;
                if content.block(m.block) != m.data {
                    mm[i].1 += 1;
                }
            };
            let mut opts = shell::Options::default();
            shell::run_with_options(&mut peer, &sock, s, &mut std::io::sink(), &mut check, &mut opts).await.unwrap();
            peer
        }));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop_tx.send(true).unwrap();
    let mut stats = Vec::new();
    for p in peers {
        stats.push(p.await.unwrap().stats());
    }
    let source = source_task.await.unwrap().stats();
    tracker_task.await.unwrap();

    let mm = mismatches.lock().unwrap();
    for (i, s) in stats.iter().enumerate() {
        let c = s.continuity.unwrap_or(0.0);
        eprintln!(
            "{} continuity {c:.4} played {} of {} blocks, parents <= {}, neighbours {}",
            s.addr, s.blocks_played, s.blocks_due, s.max_parents, s.neighbors
        );
        assert!(s.blocks_due as f64 >= (secs as f64 - 20.0) * 5.0, "{} played too little: {}", s.addr, s.blocks_due);
        assert!(c >= 0.99, "{} continuity {c:.4}", s.addr);
        assert_eq!(mm[i].0, s.blocks_played, "{}: every played block reached the player", s.addr);
        assert_eq!(mm[i].1, 0, "{} played {} blocks that differ from the source file", s.addr, mm[i].1);
        assert!(s.max_parents <= 4, "{} had {} parents at once", s.addr, s.max_parents);
    }
    assert!(source.max_children <= 11 && source.max_children >= 1, "source children {}", source.max_children);
}
