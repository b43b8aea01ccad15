//! `soplab-tracker`: runs the [`soplab_tracker::Tracker`] core on a UDP socket.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Parser;
use soplab_node::{Micros, shell};
use soplab_tracker::{Config, Tracker};
use tracing_subscriber::EnvFilter;

const ABOUT: &str = "soplab's bootstrap tracker: peers register on a channel and get back a random \
subset of the other peers registered there.";

const LONG_ABOUT: &str =
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
the tracker stops and prints its counters as one JSON object on stdout. Logs go to stderr; set
RUST_LOG (e.g. RUST_LOG=debug) for more.

Durations take a number of seconds or units: 900, 90s, 15m, 1h30m, 500ms.

Examples:
  soplab-tracker
  soplab-tracker --listen 0.0.0.0:3900 --ttl 15m --truth tracker.jsonl
  soplab-tracker --listen 127.0.0.1:0 --ttl 30s --duration 5m --seed 7";

#[derive(Debug, Parser)]
#[command(name = "soplab-tracker", version, about = ABOUT, long_about = LONG_ABOUT)]
struct Args {
    /// UDP address to listen on (port 0: any free port, logged at start-up).
    #[arg(long, value_name = "ADDR", default_value_t = soplab_tracker::DEFAULT_LISTEN)]
    listen: SocketAddr,

    /// How long an entry stays listed after its last registration (seconds, or 15m, 1h30m).
    #[arg(long, value_name = "DURATION", default_value = "900", value_parser = parse_positive_duration)]
    ttl: Duration,

    /// Most peers in one list (also capped by what the peer asks for, and by 200).
    #[arg(long, value_name = "N", default_value_t = soplab_tracker::DEFAULT_LIST_SIZE)]
    list_size: usize,

    /// Most entries per channel; new registrations beyond it are dropped.
    #[arg(long, value_name = "N", default_value_t = soplab_tracker::DEFAULT_MAX_ENTRIES)]
    max_entries: usize,

    /// Most channels; registrations for a new channel beyond it are dropped.
    #[arg(long, value_name = "N", default_value_t = soplab_tracker::DEFAULT_MAX_CHANNELS)]
    max_channels: usize,

    /// Datagrams per second allowed from one source IP (0: no limit).
    #[arg(long, value_name = "PER_SEC", default_value_t = soplab_tracker::DEFAULT_RATE)]
    rate: u32,

    /// Datagrams one source IP may send at once after a quiet spell.
    #[arg(long, value_name = "N", default_value_t = soplab_tracker::DEFAULT_BURST)]
    burst: u32,

    /// Most source IPs the rate limiter remembers (least recently seen are forgotten first).
    #[arg(long, value_name = "N", default_value_t = soplab_tracker::DEFAULT_MAX_RATE_SOURCES)]
    max_rate_sources: usize,

    /// Seed of the random peer-list choice (default: from the clock, logged at start-up).
    #[arg(long, value_name = "N")]
    seed: Option<u64>,

    /// Write ground-truth events to FILE as JSON Lines (default: no ground truth).
    #[arg(long, value_name = "FILE")]
    truth: Option<PathBuf>,

    /// Stop by itself after this long, e.g. 300 or 5m (default: run until Ctrl-C or SIGTERM).
    #[arg(long, value_name = "DURATION", value_parser = parse_positive_duration)]
    duration: Option<Duration>,
}

fn main() -> ExitCode {
    match try_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, causes included, no backtrace: the message says what to do.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn try_main() -> Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .init();
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the tokio runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: Args) -> Result<()> {
    let socket = shell::bind_udp(args.listen).map_err(|e| explain_bind_error(e, args.listen))?;
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
    let mut truth: Box<dyn Write + Send> = match &args.truth {
        Some(path) => Box::new(BufWriter::new(File::create(path).with_context(|| {
            format!(
                "cannot create the ground-truth file {}; check that its folder exists and is writable",
                path.display()
            )
        })?)),
        None => Box::new(io::sink()),
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

    let stop = stop_signal(args.duration)?;
    let mut tracker = Tracker::new(config);
    let result = shell::run(&mut tracker, socket, stop, &mut truth).await;

    let stats = serde_json::to_string(&tracker.stats()).context("cannot serialise the stats")?;
    println!("{stats}");
    result.with_context(|| match &args.truth {
        Some(path) => {
            format!("the tracker stopped on an I/O error (socket, or the ground-truth file {})", path.display())
        }
        None => "the tracker stopped on a socket error".to_owned(),
    })
}

/// Resolves on Ctrl-C, SIGTERM, or after `duration`. The SIGTERM handler is installed now; the
/// Ctrl-C handler and the `duration` timer start when the shell first polls the future, which
/// it does at once.
fn stop_signal(duration: Option<Duration>) -> Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install the SIGTERM handler")?;
    Ok(async move {
        let ctrl_c = async {
            if let Err(e) = tokio::signal::ctrl_c().await {
                tracing::warn!(error = %e, "cannot listen for Ctrl-C; running until SIGTERM or --duration");
                std::future::pending::<()>().await;
            }
        };
        #[cfg(unix)]
        let term = term.recv();
        #[cfg(not(unix))]
        let term = std::future::pending::<Option<()>>();
        let timer = async {
            match duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        let why = tokio::select! {
            () = ctrl_c => "Ctrl-C",
            _ = term => "SIGTERM",
            () = timer => "--duration elapsed",
        };
        tracing::info!("{why}: stopping");
    })
}

fn explain_bind_error(e: io::Error, addr: SocketAddr) -> anyhow::Error {
    let hint = match e.kind() {
        io::ErrorKind::AddrInUse => format!(
            "another program (another soplab-tracker?) already uses UDP port {}; stop it, or pick another \
             port with --listen {}:PORT (port 0 picks a free one)",
            addr.port(),
            addr.ip()
        ),
        io::ErrorKind::AddrNotAvailable => format!(
            "{} is not an address of this machine; use 127.0.0.1 (this machine only), 0.0.0.0 (all \
             interfaces) or an address that `ip addr` lists",
            addr.ip()
        ),
        io::ErrorKind::PermissionDenied => {
            "ports below 1024 need root; use a port of 1024 or more, e.g. --listen 127.0.0.1:3900".to_owned()
        }
        _ => "check the --listen address".to_owned(),
    };
    anyhow::Error::new(e).context(format!("cannot listen on UDP {addr}: {hint}"))
}

fn micros(d: Duration) -> Micros {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn seed_from_clock() -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}

/// Parses `900`, `90s`, `15m`, `1h30m`, `1.5h`, `500ms`, `2d`: a bare number is seconds.
fn parse_duration(text: &str) -> Result<Duration> {
    let s = text.trim();
    if s.is_empty() {
        bail!("empty duration; write seconds (900) or use units (15m, 1h30m, 500ms)");
    }
    if let Ok(secs) = s.parse::<f64>() {
        return seconds(secs, text);
    }
    let mut total = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let unit_len = rest[num_len..].find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len() - num_len);
        let (num, unit) = (&rest[..num_len], rest[num_len..num_len + unit_len].trim());
        let value: f64 = num.parse().map_err(|_| {
            anyhow::anyhow!("`{text}` is not a duration; write seconds (900) or use units (15m, 1h30m)")
        })?;
        let scale = match unit {
            "ms" => 0.001,
            "s" | "sec" | "secs" => 1.0,
            "m" | "min" | "mins" => 60.0,
            "h" | "hr" | "hrs" => 3600.0,
            "d" => 86400.0,
            other => bail!("unknown unit `{other}` in `{text}`; use ms, s, m, h or d"),
        };
        total += value * scale;
        rest = &rest[num_len + unit_len..];
    }
    seconds(total, text)
}

fn seconds(secs: f64, text: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(secs).map_err(|_| anyhow::anyhow!("`{text}` is not a usable duration"))
}

fn parse_positive_duration(text: &str) -> Result<Duration> {
    let d = parse_duration(text)?;
    if d.is_zero() {
        bail!("the duration must be more than zero");
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("900").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("2.5").unwrap(), Duration::from_millis(2500));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("15x").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("-5").is_err());
        assert!(parse_positive_duration("0s").is_err());
    }

    #[test]
    fn cli_defaults() {
        use clap::CommandFactory;
        Args::command().debug_assert();
        let a = Args::parse_from(["soplab-tracker"]);
        assert_eq!(a.listen, soplab_tracker::DEFAULT_LISTEN);
        assert_eq!(a.ttl, Duration::from_secs(900));
        assert_eq!((a.list_size, a.max_entries, a.max_channels, a.rate, a.burst), (50, 10_000, 64, 20, 40));
        assert!(a.truth.is_none() && a.duration.is_none() && a.seed.is_none());
    }
}
