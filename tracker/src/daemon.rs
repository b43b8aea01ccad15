//! The tracker daemon: the [`Tracker`] core on a UDP socket until Ctrl-C, SIGTERM or
//! `--duration`. Run by the `soplab-tracker` binary and by `soplab tracker`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use soplab_node::Micros;
use soplab_shell as shell;
use soplab_shell::process::{bind_error, seed_from_clock, serve};
use soplab_shell::units::parse_positive_duration;

use crate::{Config, Tracker};

/// One line on what the tracker does (`-h`).
pub const ABOUT: &str = "soplab's bootstrap tracker: peers register on a channel and get back a random \
subset of the other peers registered there.";

/// What `--help` says before the options.
pub const LONG_ABOUT: &str =
    "soplab's bootstrap tracker, the server a SopCast client asks for peers when it joins a channel.

A peer (or the source provider) sends a 20-byte Register for its channel and gets back a peer
list: a uniformly random subset of the OTHER peers registered on that channel (at most
--list-size, and never more than the peer asked for or 200). A Query gets the same answer
without registering; a Leave removes the sender's entry at once. Entries are keyed by the
sender's IP address and the listening port in its message.

Departures are not announced in SopCast, so the server forgets peers slowly: an entry lives
--ttl after its last registration (15 minutes by default), and a peer that crashed stays in
other peers' lists until then. Peers that stay re-register to stay listed.

Memory is bounded: --max-channels channels of --max-entries entries each (registrations beyond
that are dropped), and each source IP may send --rate datagrams per second (bursts of --burst);
the excess is dropped. Datagrams that are not tracker requests are dropped and counted.

With --truth FILE every registration, reply, expiry and drop is written to FILE as one JSON
object per line (ground truth for the analyzers). On Ctrl-C, SIGTERM or the end of --duration
the tracker stops and prints its counters as one JSON object on stdout (and writes them to
--stats FILE if given). Logs go to stderr; set RUST_LOG (e.g. RUST_LOG=debug) for more.

Durations take a number of seconds or units: 900, 90s, 15m, 1h30m, 500ms.

Examples (`soplab tracker` takes the same options):
  soplab-tracker
  soplab-tracker --listen 0.0.0.0:3900 --ttl 15m --truth tracker.jsonl
  soplab-tracker --listen 127.0.0.1:0 --ttl 30s --duration 5m --seed 7 --stats tracker.stats.json";

/// The tracker's command-line options.
#[derive(clap::Args, Debug, Clone)]
#[command(about = ABOUT, long_about = LONG_ABOUT)]
pub struct Args {
    /// UDP address to listen on (port 0: any free port, logged at start-up).
    #[arg(long, value_name = "ADDR", default_value_t = crate::DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// How long an entry stays listed after its last registration (seconds, or 15m, 1h30m).
    #[arg(long, value_name = "DURATION", default_value = "900", value_parser = parse_positive_duration)]
    pub ttl: Duration,

    /// Most peers in one list (also capped by what the peer asks for, and by 200).
    #[arg(long, value_name = "N", default_value_t = crate::DEFAULT_LIST_SIZE)]
    pub list_size: usize,

    /// Most entries per channel; new registrations beyond it are dropped.
    #[arg(long, value_name = "N", default_value_t = crate::DEFAULT_MAX_ENTRIES)]
    pub max_entries: usize,

    /// Most channels; registrations for a new channel beyond it are dropped.
    #[arg(long, value_name = "N", default_value_t = crate::DEFAULT_MAX_CHANNELS)]
    pub max_channels: usize,

    /// Datagrams per second allowed from one source IP (0: no limit).
    #[arg(long, value_name = "PER_SEC", default_value_t = crate::DEFAULT_RATE)]
    pub rate: u32,

    /// Datagrams one source IP may send at once after a quiet spell.
    #[arg(long, value_name = "N", default_value_t = crate::DEFAULT_BURST)]
    pub burst: u32,

    /// Most source IPs the rate limiter remembers (least recently seen are forgotten first).
    #[arg(long, value_name = "N", default_value_t = crate::DEFAULT_MAX_RATE_SOURCES)]
    pub max_rate_sources: usize,

    /// Seed of the random peer-list choice (default: from the clock, logged at start-up).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// Write ground-truth events to FILE as JSON Lines (default: no ground truth).
    #[arg(long, value_name = "FILE")]
    pub truth: Option<PathBuf>,

    /// Write the final counters to FILE as JSON when the tracker stops (default: stdout only).
    #[arg(long, value_name = "FILE")]
    pub stats: Option<PathBuf>,

    /// Stop by itself after this long, e.g. 300 or 5m (default: run until Ctrl-C or SIGTERM).
    #[arg(long, value_name = "DURATION", value_parser = parse_positive_duration)]
    pub duration: Option<Duration>,
}

/// Runs the tracker until Ctrl-C, SIGTERM or `--duration`, then prints its counters on stdout
/// and writes them to `--stats`.
///
/// # Errors
/// When the socket cannot be bound, an output file cannot be created or written, or the socket
/// fails; each message says what to check.
pub async fn run(args: Args) -> Result<()> {
    let socket = shell::bind_udp(args.listen).map_err(|e| bind_error(e, "UDP", args.listen, "--listen"))?;
    let addr = socket.local_addr().context("cannot read the bound address")?;
    let seed = args.seed.unwrap_or_else(seed_from_clock);
    let config = Config {
        addr,
        ttl: micros(args.ttl),
        list_size: args.list_size,
        max_entries: args.max_entries,
        max_channels: args.max_channels,
        rate: args.rate,
        burst: args.burst,
        max_rate_sources: args.max_rate_sources,
        seed,
        ..Config::new(addr)
    };
    tracing::info!(
        listen = %addr,
        ttl_s = args.ttl.as_secs_f64(),
        list_size = config.list_size,
        max_entries = config.max_entries,
        max_channels = config.max_channels,
        rate = config.rate,
        burst = config.burst,
        seed,
        truth = ?args.truth,
        "soplab-tracker listening (Ctrl-C to stop)"
    );

    let mut tracker = Tracker::new(config);
    serve(&mut tracker, socket, args.truth.as_deref(), args.stats.as_deref(), args.duration, Tracker::stats)
        .await
        .context("the tracker stopped")
}

fn micros(d: Duration) -> Micros {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
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
        let a = Cli::parse_from(["soplab-tracker"]).args;
        assert_eq!(a.listen, crate::DEFAULT_LISTEN);
        assert_eq!(a.ttl, Duration::from_secs(900));
        assert_eq!((a.list_size, a.max_entries, a.max_channels, a.rate, a.burst), (50, 10_000, 64, 20, 40));
        assert!(a.truth.is_none() && a.duration.is_none() && a.seed.is_none() && a.stats.is_none());
    }

    #[test]
    fn cli_durations() {
        let a = Cli::parse_from(["soplab-tracker", "--ttl", "1h30m", "--duration", "500ms"]).args;
        assert_eq!(a.ttl, Duration::from_secs(5400));
        assert_eq!(a.duration, Some(Duration::from_millis(500)));
        assert!(Cli::try_parse_from(["soplab-tracker", "--ttl", "0s"]).is_err());
        assert!(Cli::try_parse_from(["soplab-tracker", "--duration", "15x"]).is_err());
    }
}
