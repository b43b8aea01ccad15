//! The peer daemon: one process hosting one or many peers, each a [`Peer`](crate::Peer) core on
//! its own UDP socket and address, run as its own tokio task, until Ctrl-C, SIGTERM or the
//! configured duration. Run by the `soplab-peer` binary and by `soplab peer`.
//!
//! [`cli`] turns the flags into a [`DaemonConfig`] (or `--config` reads one); [`run`] runs it
//! in phases: check it, open the shared outputs, ready every peer ([`host`]), run them
//! ([`session`]) until the stop, report their counters.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow};
use soplab_rundir::plan::{PEER_PORT, TRACKER_PORT};
use soplab_shell::process::{stop_signal, write_json};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::PeerStats;

pub mod cli;
pub mod config;
mod host;
pub mod http;
mod limits;
mod session;
mod shared_lines;

pub use cli::{ABOUT, Args, LONG_ABOUT, default_bitrate};
pub use config::{DaemonConfig, HostedPeer, Outputs, Truth, peer_addrs, read_sessions};

/// Where the first peer listens by default (SopCast's usual UDP port).
pub const DEFAULT_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), PEER_PORT);
/// Where the peers look for the tracker by default (`soplab-tracker`'s default).
pub const DEFAULT_TRACKER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), TRACKER_PORT);
/// Port each peer serves its stream on over HTTP by default (SopCast's player port).
pub const DEFAULT_HTTP_PORT: u16 = 8902;

/// Runs the configured peers until Ctrl-C, SIGTERM or the configured duration, then prints
/// their [`PeerStats`] as a JSON array on stdout and writes it to the stats file.
///
/// # Errors
/// When the configuration is not usable, an address cannot be bound, an output file cannot be
/// created or written, or a socket fails; each message says what to check. A failing peer
/// stops the others.
pub async fn run(config: DaemonConfig) -> Result<()> {
    config.check()?;
    limits::raise_fd_limit(&config)?;
    let shared = host::Shared::open(&config.outputs)?;
    let epoch = session::epoch(config.schedule_epoch_us);
    let stop = CancellationToken::new();
    let mut http_servers = JoinSet::new();
    // Bind everything and open every file first, so that a mistake fails before any peer starts.
    let hosts = host::ready_all(&config, &shared, &stop, &mut http_servers)?;
    log_start(&config, &hosts);

    stop_signal(&stop, config.duration())?;
    let (stats, mut errors) = session::run_all(hosts, epoch, &stop).await;
    http_servers.shutdown().await;

    if errors.is_empty() {
        // (After a peer's error the shared file's is the same one again.)
        errors.extend(flush(shared.truth, config.outputs.truth.as_ref()));
    }
    report(&stats, shared.stats, config.outputs.stats.as_deref())?;
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        n => Err(errors.remove(0).context(format!("{n} peers failed; the first error"))),
    }
}

/// The start-up log line: what runs, where, with which settings.
fn log_start(config: &DaemonConfig, hosts: &[host::Host]) {
    let (t, out, count) = (&config.template, &config.outputs, config.peers.len());
    let (first, last) = (&hosts[0], &hosts[count - 1]);
    // What `--stagger` gave: peer i starts at i * STAGGER / COUNT.
    let stagger_us = if count > 1 { last.peer.start_delay_us as f64 * count as f64 / (count - 1) as f64 } else { 0.0 };
    let micros = std::time::Duration::from_micros;
    tracing::info!(
        peers = count,
        first = %first.cfg.addr,
        last = %last.cfg.addr,
        netns = ?config.peers[0].netns,
        scheduled = config.peers.iter().filter(|p| !p.sessions.is_empty()).count(),
        delay = ?micros(config.impairment.delay),
        jitter = ?micros(config.impairment.jitter),
        loss = config.impairment.loss,
        tracker = %t.tracker,
        channel = t.channel,
        bitrate = t.bitrate_bps,
        upload = ?t.upload_bps,
        max_neighbors = t.max_neighbors,
        gamma = t.gamma,
        seed = first.cfg.seed,
        stagger_s = stagger_us / 1e6,
        http_port = out.http_port,
        truth = ?out.truth.as_ref().map(Truth::path),
        played_dir = ?out.played_dir,
        "soplab-peer starting (Ctrl-C to stop)"
    );
}

/// Flushes the shared ground-truth file, if there is one.
fn flush(shared: Option<Arc<Mutex<BufWriter<File>>>>, truth: Option<&Truth>) -> Option<anyhow::Error> {
    let shared = shared?;
    let mut w = shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let path = truth.map_or_else(String::new, |t| t.path().display().to_string());
    w.flush().err().map(|e| anyhow!("cannot write the ground-truth file {path}: {e}; check the disk's free space"))
}

/// Logs how the peers did, prints their counters as a JSON array on stdout, and writes it to
/// the stats file (`out`, created for `path`).
fn report(stats: &[PeerStats], out: Option<BufWriter<File>>, path: Option<&Path>) -> Result<()> {
    let cont: Vec<f64> = stats.iter().filter_map(|s| s.continuity).collect();
    tracing::info!(
        peers = stats.len(),
        playing = cont.len(),
        continuity_mean = (!cont.is_empty()).then(|| cont.iter().sum::<f64>() / cont.len() as f64),
        continuity_min = cont.iter().copied().reduce(f64::min),
        "peers stopped"
    );
    println!("{}", serde_json::to_string(stats).context("cannot serialise the stats")?);
    if let (Some(out), Some(path)) = (out, path) {
        write_json(out, stats, path)?;
    }
    Ok(())
}
