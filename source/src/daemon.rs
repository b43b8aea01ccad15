//! The source-provider daemon: the [`crate::source`] core on a UDP socket until Ctrl-C,
//! SIGTERM or `--duration`. Run by the `soplab-source` binary and by `soplab source`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use soplab_peer::PeerConfig;
use soplab_shell as shell;
use soplab_shell::process::{bind_error, seed_from_clock, serve};
use soplab_shell::units::{parse_positive_duration, parse_rate};

use crate::Content;

/// Address the source listens on by default.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 3901);
/// Where the source looks for the tracker by default (`soplab-tracker`'s default).
pub const DEFAULT_TRACKER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 3900);

/// One line on what the source does (`-h`).
pub const ABOUT: &str = "soplab's source provider: publishes a stream (a media file in a loop, or synthetic \
bytes) as 10,240-byte blocks and serves them to at most 11 peers.";

/// What `--help` says before the options.
pub const LONG_ABOUT: &str = "soplab's source provider (SP), where a SopCast channel's stream enters the swarm.

The source cuts its content into 10,240-byte blocks with increasing ids and publishes one every
10,240 * 8 / --bitrate seconds (about 6 blocks a second at the default 500k): block k is bytes
k*10240.. of --file played in a loop, or, without --file, pseudo-random bytes derived from
--synthetic-seed and k (seed 1 by default). Both are deterministic, so a peer's played stream
can be checked byte for byte against the source's content.

It registers on --channel with the tracker at --tracker (and re-registers every 30 s), accepts
links from peers (HELLO, reply, ACK, then a keep-alive with its buffer map about every second)
and serves requested blocks only, never pushing, to at most --max-children children at a time
(11, as Tang et al. observed of SopCast's SP); further requests are refused and the peers turn
to each other. --upload caps its video upload in bits per second (default: no cap).

With --truth FILE every link, request served and drop is written to FILE as one JSON object per
line (ground truth for the analyzers). On Ctrl-C, SIGTERM or the end of --duration the source
leaves the tracker, stops, and prints its counters as one JSON object on stdout (and writes
them to --stats FILE if given). Logs go to stderr; set RUST_LOG (e.g. RUST_LOG=debug) for more.

Rates take bits per second with k, M or G: 500000, 500k, 1M, 1.5Mbps. Durations take seconds
or units: 300, 90s, 5m, 1h30m.

Examples (`soplab source` takes the same options):
  soplab-source
  soplab-source --file cartoon.ts --bitrate 500k --truth source.jsonl --stats source.stats.json
  soplab-source --listen 127.0.0.2:3901 --tracker 127.0.0.1:3900 --synthetic-seed 7 --duration 5m";

/// The source's command-line options.
#[derive(clap::Args, Debug, Clone)]
#[command(about = ABOUT, long_about = LONG_ABOUT)]
pub struct Args {
    /// UDP address to listen on; peers reach the source here (port 0: any free port, logged).
    #[arg(long, value_name = "ADDR", default_value_t = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// The tracker's UDP address (the default is soplab-tracker's default).
    #[arg(long, value_name = "ADDR", default_value_t = DEFAULT_TRACKER)]
    pub tracker: SocketAddr,

    /// Channel to publish on; peers join the same number.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub channel: u32,

    /// Media file to stream in a loop (any bytes, e.g. an MPEG-TS file; read whole at start-up).
    #[arg(long, value_name = "PATH", conflicts_with = "synthetic_seed")]
    pub file: Option<PathBuf>,

    /// Stream synthetic pseudo-random bytes made from this seed (the default, with seed 1, when
    /// no --file is given).
    #[arg(long, value_name = "N")]
    pub synthetic_seed: Option<u64>,

    /// Stream bitrate in bits/s (500k = 500,000; 1M = 1,000,000): sets how fast blocks appear.
    /// Peers must use the same bitrate.
    #[arg(long, value_name = "BPS", default_value = "500k", value_parser = parse_rate)]
    pub bitrate: u64,

    /// Most peers served at once (SopCast's SP serves 11).
    #[arg(long, value_name = "N", default_value_t = 11, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_children: u64,

    /// Cap on video upload in bits/s, e.g. 5M (default: no cap).
    #[arg(long, value_name = "BPS", value_parser = parse_rate)]
    pub upload: Option<u64>,

    /// Seed of the source's random choices: nonces, which peers to link with (default: from
    /// the clock, logged at start-up).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// Write ground-truth events to FILE as JSON Lines (default: no ground truth).
    #[arg(long, value_name = "FILE")]
    pub truth: Option<PathBuf>,

    /// Write the final counters to FILE as JSON when the source stops (default: stdout only).
    #[arg(long, value_name = "FILE")]
    pub stats: Option<PathBuf>,

    /// Stop by itself after this long, e.g. 300 or 5m (default: run until Ctrl-C or SIGTERM).
    #[arg(long, value_name = "DURATION", value_parser = parse_positive_duration)]
    pub duration: Option<Duration>,
}

/// Runs the source until Ctrl-C, SIGTERM or `--duration`, then prints its [`soplab_peer::PeerStats`]
/// on stdout and writes them to `--stats`.
///
/// # Errors
/// When the content cannot be loaded, the socket cannot be bound, an output file cannot be
/// created or written, or the socket fails; each message says what to check.
pub async fn run(args: Args) -> Result<()> {
    if !args.listen.is_ipv4() {
        bail!("--listen {} is IPv6; soplab speaks IPv4 only: give an IPv4 address such as 127.0.0.1:3901", args.listen);
    }
    let content = match &args.file {
        Some(path) => Content::file(path)?,
        None => Content::Synthetic { seed: args.synthetic_seed.unwrap_or(1) },
    };
    let socket = shell::bind_udp(args.listen).map_err(|e| bind_error(e, "UDP", args.listen, "--listen"))?;
    let addr = socket.local_addr().context("cannot read the bound address")?;
    let seed = args.seed.unwrap_or_else(seed_from_clock);
    let cfg = PeerConfig {
        bitrate_bps: args.bitrate,
        max_children: usize::try_from(args.max_children).unwrap_or(usize::MAX),
        upload_bps: args.upload,
        ..PeerConfig::source(addr, args.tracker, args.channel, seed)
    };
    let what = match (&args.file, &content) {
        (Some(path), Content::File(data)) => format!("file {} ({} bytes, looped)", path.display(), data.len()),
        _ => format!("synthetic bytes, seed {}", args.synthetic_seed.unwrap_or(1)),
    };
    tracing::info!(
        listen = %addr,
        tracker = %args.tracker,
        channel = args.channel,
        bitrate = args.bitrate,
        max_children = args.max_children,
        upload = ?args.upload,
        seed,
        content = %what,
        truth = ?args.truth,
        "soplab-source publishing (Ctrl-C to stop)"
    );

    let mut source = crate::source(cfg, content);
    serve(&mut source, socket, args.truth.as_deref(), args.stats.as_deref(), args.duration, soplab_peer::Peer::stats)
        .await
        .context("the source stopped")
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn cli_defaults() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let a = Cli::parse_from(["soplab-source"]).args;
        assert_eq!(a.listen, DEFAULT_LISTEN);
        assert_eq!(a.tracker, DEFAULT_TRACKER);
        assert_eq!((a.channel, a.bitrate, a.max_children), (1, 500_000, 11));
        assert!(a.file.is_none() && a.synthetic_seed.is_none() && a.upload.is_none() && a.seed.is_none());
        assert!(a.truth.is_none() && a.stats.is_none() && a.duration.is_none());
    }

    #[test]
    fn cli_rates_and_conflicts() {
        let a = Cli::parse_from(["soplab-source", "--bitrate", "1M", "--upload", "5M", "--synthetic-seed", "7"]).args;
        assert_eq!((a.bitrate, a.upload, a.synthetic_seed), (1_000_000, Some(5_000_000), Some(7)));
        assert!(Cli::try_parse_from(["soplab-source", "--file", "x.ts", "--synthetic-seed", "7"]).is_err());
        assert!(Cli::try_parse_from(["soplab-source", "--bitrate", "0"]).is_err());
        assert!(Cli::try_parse_from(["soplab-source", "--max-children", "0"]).is_err());
    }
}
