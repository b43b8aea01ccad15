//! The `soplab` command line: swarms of SopCast-like daemons, and the daemons themselves.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};
use soplab::loopback::LoopbackSwarm;
use soplab_node::duration;

/// soplab: an open emulation of the SopCast P2PTV system.
///
/// A tracker, a source provider and peers speak a reconstructed SopCast wire format over real
/// UDP (HELLO 52, reply 80, ACK 28, keep-alive 42, request 46 bytes, video packets of at most
/// 1320 bytes), and every daemon logs what it really did as ground truth.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run a swarm: a tracker, a source and N peers, then write DIR/summary.json.
    ///
    /// With --loopback every daemon is a process on its own 127.x.y.z address. The run
    /// directory gets truth/*.jsonl (ground truth of every daemon), played/*.ts (what each peer
    /// played), logs/ (daemon logs and final stats) and summary.json (per-peer continuity,
    /// played bytes and whether they equal the source's, parents, neighbours; the source's
    /// children; dropped input by reason).
    ///
    /// Example: soplab swarm --loopback --peers 20 --duration 60s --out runs/first
    Swarm(SwarmArgs),
    #[command(about = "Run the tracker (what `soplab-tracker` runs)", long_about = soplab_tracker::daemon::LONG_ABOUT)]
    Tracker(soplab_tracker::daemon::Args),
    #[command(about = "Run the source provider (what `soplab-source` runs)", long_about = soplab_source::daemon::LONG_ABOUT)]
    Source(soplab_source::daemon::Args),
    #[command(about = "Run one or many peers in this process (what `soplab-peer` runs)", long_about = soplab_peer::daemon::LONG_ABOUT)]
    Peer(soplab_peer::daemon::Args),
}

#[derive(clap::Args, Debug)]
struct SwarmArgs {
    /// Run the daemons as processes on loopback addresses (127.0.0.0/8).
    #[arg(long)]
    loopback: bool,
    /// Number of peers.
    #[arg(long, default_value_t = 20)]
    peers: usize,
    /// How long the swarm streams, e.g. 60s, 5m.
    #[arg(long, default_value = "60s", value_parser = duration::parse_duration)]
    duration: Duration,
    /// Run directory (created if missing).
    #[arg(long, default_value = "runs/latest")]
    out: PathBuf,
    /// Stream bitrate in bits/s (500k = 500,000).
    #[arg(long, default_value = "500k", value_parser = duration::parse_rate)]
    bitrate: u64,
    /// Seed of every random choice in the run (content, peer choice, nonces).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Media file the source streams in a loop (any bytes); synthetic bytes if not given.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Peer processes to spread the peers over.
    #[arg(long, default_value_t = 1)]
    processes: usize,
    /// Peers join over this long at the start (a crowd arriving).
    #[arg(long, default_value = "5s", value_parser = duration::parse_duration)]
    stagger: Duration,
    /// Port on each peer's address where it serves its stream over HTTP, as SopCast does for
    /// its player (0: off). Play it with: ffplay http://ADDRESS:PORT/
    #[arg(long, default_value_t = 8902)]
    http_port: u16,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    soplab_node::daemon::main(async move {
        match cli.command {
            Cmd::Swarm(a) => swarm(a).await,
            Cmd::Tracker(a) => soplab_tracker::daemon::run(a).await,
            Cmd::Source(a) => soplab_source::daemon::run(a).await,
            Cmd::Peer(a) => soplab_peer::daemon::run(a).await,
        }
    })
}

async fn swarm(a: SwarmArgs) -> Result<()> {
    if !a.loopback {
        anyhow::bail!("only --loopback swarms exist so far: add --loopback");
    }
    let run = LoopbackSwarm {
        peers: a.peers,
        duration: a.duration,
        out: a.out.clone(),
        bitrate: a.bitrate,
        seed: a.seed,
        file: a.file,
        processes: a.processes,
        stagger: a.stagger,
        http_port: a.http_port,
    };
    eprintln!("soplab: loopback swarm of {} peers for {:?}, writing {}", a.peers, a.duration, a.out.display());
    let s = run.run().await?;
    let cont: Vec<f64> = s.peers.iter().filter_map(|p| p.continuity).collect();
    let min = cont.iter().copied().fold(f64::INFINITY, f64::min);
    let mean = cont.iter().sum::<f64>() / cont.len().max(1) as f64;
    let matches = s.peers.iter().filter(|p| p.played_matches_source).count();
    let max_parents = s.peers.iter().map(|p| p.max_parents).max().unwrap_or(0);
    println!(
        "{} peers: continuity mean {mean:.4}, min {min:.4}; {matches}/{} played exactly the source's bytes; \
         max parents {max_parents}; source max children {}; dropped inputs {}",
        s.peers.len(),
        s.peers.len(),
        s.source.max_children,
        s.dropped.values().sum::<u64>()
    );
    println!("summary: {}", a.out.join("summary.json").display());
    println!("ground truth: {}", a.out.join("truth").display());
    Ok(())
}
