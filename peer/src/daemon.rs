//! The peer daemon: one process hosting `--count` peers, each a [`Peer`] core on its own UDP
//! socket and address, run as its own tokio task, until Ctrl-C, SIGTERM or `--duration`. Run
//! by the `soplab-peer` binary and by `soplab peer`.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use soplab_node::Media;
use soplab_node::impair::{Impairer, Impairment};
use soplab_shell as shell;
use soplab_shell::process::{bind_error, create_output, seed_from_clock, stop_signal, write_json};
use soplab_shell::units::{parse_duration, parse_positive_duration, parse_rate};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{Notify, broadcast, watch};
use tokio::task::JoinSet;

use crate::{Peer, PeerConfig, PeerStats};

pub mod http;

/// Where the first peer listens by default (3908 is SopCast's usual UDP port).
pub const DEFAULT_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 3908);
/// Where the peers look for the tracker by default (`soplab-tracker`'s default).
pub const DEFAULT_TRACKER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 3900);
/// Port each peer serves its stream on over HTTP by default (SopCast's player port).
pub const DEFAULT_HTTP_PORT: u16 = 8902;

/// The address blocks soplab binds peers in: loopback, and the benchmark test range used for
/// network namespaces.
const RANGES: [(Ipv4Addr, u8, &str); 2] = [
    (Ipv4Addr::new(127, 0, 0, 0), 8, "127.0.0.0/8 (loopback)"),
    (Ipv4Addr::new(198, 18, 0, 0), 15, "198.18.0.0/15 (the benchmarking test range soplab uses for namespaces)"),
];

/// One line on what the daemon does (`-h`).
pub const ABOUT: &str = "soplab's peer: runs one or many SopCast-like peers in this process, each on its own \
address, that join a channel, pull its stream from each other and play it.";

/// What `--help` says before the options.
pub const LONG_ABOUT: &str = "soplab's peer, the SopCast client: joins a channel through the tracker, links with other
peers, pulls the stream's blocks and plays them.

This process hosts --count peers (1 by default). Peer i (from 0) listens on --addr's IPv4 address
plus i, on --addr's port: with --addr 127.0.0.1:3908 --count 3, on 127.0.0.1:3908,
127.0.0.2:3908 and 127.0.0.3:3908. Addresses must stay inside 127.0.0.0/8 (loopback; every
127.x.y.z is this machine on Linux) or 198.18.0.0/15 (soplab's test range for network
namespaces). Each peer has its own socket and task, and uses seed --seed + i. With --stagger
the peers join spread over that time (peer i after i * STAGGER / COUNT); by default all at once.

Each peer registers with the tracker every 30 s, links with up to --max-neighbors others (HELLO,
reply, ACK; a keep-alive with its buffer map about every second), pulls the blocks it misses
from at most --gamma parents at once (preferring the fastest), serves its neighbours' requests
(up to --upload bits per second if given; no tit-for-tat) and plays the stream 4 s behind the
newest block it has seen, at --bitrate, which must be the source's.

Outputs: --truth-dir DIR gets one ground-truth file per peer, peer-<ip>-<port>.jsonl (one JSON
object per event: links, requests, responses, plays, drops), or --truth FILE takes all peers'
events in one file. --played-dir DIR gets peer-<ip>-<port>.ts per peer: the blocks handed to the
player, in order, appended as they are played. With --http-port (8902 by default, 0 = off)
each peer also serves its stream on its own address as SopCast does for its player: play it
with `ffplay http://127.0.0.1:8902/` (new blocks from connection on; at most 8 players per
peer; a player that falls behind is dropped).

On Ctrl-C, SIGTERM or the end of --duration every peer leaves the tracker and stops, and the
process prints a JSON array of the peers' counters (continuity, blocks played, parents,
neighbours, bytes up and down, drops) on stdout, and writes it to --stats FILE if given. Logs
go to stderr; set RUST_LOG (e.g. RUST_LOG=debug) for more.

Rates take bits per second with k, M or G: 500000, 500k, 1M. Durations take seconds or units:
300, 90s, 5m, 1h30m, 500ms.

Examples (`soplab peer` takes the same options):
  soplab-peer
  soplab-peer --addr 127.0.1.1:3908 --count 20 --stagger 10s --truth-dir truth --played-dir played
  soplab-peer --addr 127.0.1.1:3908 --tracker 127.0.0.1:3900 --duration 5m --stats peers.stats.json";

fn defaults() -> PeerConfig {
    PeerConfig::peer(DEFAULT_ADDR, DEFAULT_TRACKER, 1, 0)
}

/// The peer daemon's command-line options.
#[derive(clap::Args, Debug, Clone)]
#[command(about = ABOUT, long_about = LONG_ABOUT)]
pub struct Args {
    /// How many peers this process runs, on consecutive IPv4 addresses from --addr.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub count: u32,

    /// UDP address of the first peer; peer i gets this IPv4 address plus i, same port (port 0:
    /// a free port each, logged).
    #[arg(long, value_name = "IP:PORT", default_value_t = DEFAULT_ADDR)]
    pub addr: SocketAddr,

    /// The tracker's UDP address (the default is soplab-tracker's default).
    #[arg(long, value_name = "ADDR", default_value_t = DEFAULT_TRACKER)]
    pub tracker: SocketAddr,

    /// Channel to join (the source's --channel).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub channel: u32,

    /// Stream bitrate in bits/s (500k = 500,000), the source's --bitrate: sets the playback pace.
    #[arg(long, value_name = "BPS", default_value = "500k", value_parser = parse_rate)]
    pub bitrate: u64,

    /// Seed of peer 0's random choices (nonces, which neighbours, which parents); peer i uses
    /// SEED + i (default: from the clock, logged at start-up).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// Cap on each peer's video upload in bits/s, e.g. 1M (default: no cap).
    #[arg(long, value_name = "BPS", value_parser = parse_rate)]
    pub upload: Option<u64>,

    /// Most neighbours per peer, established or handshaking.
    #[arg(long, value_name = "N", default_value_t = defaults().max_neighbors)]
    pub max_neighbors: usize,

    /// Most parents a peer has requests outstanding with at once (gamma).
    #[arg(long, value_name = "N", default_value_t = defaults().gamma)]
    pub gamma: usize,

    /// A neighbour silent this long is dropped until it is chosen again, e.g. 6s.
    #[arg(long, value_name = "DURATION", default_value = "6s", value_parser = parse_positive_duration)]
    pub neighbor_timeout: std::time::Duration,

    /// Write every peer's ground-truth events to FILE as JSON Lines (each line names its peer).
    #[arg(long, value_name = "FILE", conflicts_with = "truth_dir")]
    pub truth: Option<PathBuf>,

    // (`help` rather than a doc comment: rustdoc would take `<ip>` for HTML.)
    #[arg(
        long,
        value_name = "DIR",
        help = "Write each peer's ground-truth events to DIR/peer-<ip>-<port>.jsonl (DIR is created)"
    )]
    pub truth_dir: Option<PathBuf>,

    #[arg(
        long,
        value_name = "DIR",
        help = "Write each peer's played stream to DIR/peer-<ip>-<port>.ts (DIR is created)"
    )]
    pub played_dir: Option<PathBuf>,

    /// TCP port where each peer serves its played stream over HTTP on its own address (0: off).
    #[arg(long, value_name = "PORT", default_value_t = DEFAULT_HTTP_PORT)]
    pub http_port: u16,

    /// Spread the peers' start over this long: peer i starts at i * STAGGER / COUNT (0: all at once).
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    pub stagger: Duration,

    /// Write the peers' final counters to FILE as a JSON array when they stop (default: stdout only).
    #[arg(long, value_name = "FILE")]
    pub stats: Option<PathBuf>,

    /// Stop by itself after this long, e.g. 300 or 5m (default: run until Ctrl-C or SIGTERM).
    #[arg(long, value_name = "DURATION", value_parser = parse_positive_duration)]
    pub duration: Option<Duration>,

    /// Network namespaces to bind the peers in (made with `ip netns add`; needs root): one name
    /// for all peers, or a comma-separated list with one name per peer.
    #[arg(long, value_name = "NAME[,NAME...]", value_delimiter = ',')]
    pub netns: Vec<String>,

    /// Extra delay on every datagram a peer sends, e.g. 20ms. Emulated in the peer's I/O shell
    /// (seeded), so it works on kernels without sch_netem.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    pub delay: Duration,

    /// Uniform random extra delay of up to this much per datagram (reorders, as real jitter does).
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    pub jitter: Duration,

    /// Share of the datagrams each peer sends that are lost, from 0 to 1 (e.g. 0.01), seeded.
    #[arg(long, value_name = "SHARE", default_value_t = 0.0, value_parser = parse_share)]
    pub loss: f64,

    // (`help` rather than a doc comment: rustdoc would take `<ip>` for HTML.)
    #[arg(
        long,
        value_name = "DIR",
        help = "Write each peer's own capture of what it sends and receives to DIR/peer-<ip>-<port>.pcap \
                (IPv4/UDP, link type RAW; for runs without tcpdump)"
    )]
    pub pcap_dir: Option<PathBuf>,

    /// Churn schedule, a CSV file with the header `client,session,start,end` (times in seconds
    /// from --schedule-epoch-ms): client i is peer i of this process, which runs only during its
    /// sessions and vanishes at each end without telling anyone, as SopCast clients do. Peers
    /// without rows run the whole time. `soplab workload` writes such files.
    #[arg(long, value_name = "FILE")]
    pub schedule: Option<PathBuf>,

    /// Wall-clock time zero of --schedule, in milliseconds since the Unix epoch (default: now),
    /// so that several processes follow one schedule.
    #[arg(long, value_name = "UNIX_MS", requires = "schedule")]
    pub schedule_epoch_ms: Option<u64>,
}

fn parse_share(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a share from 0 to 1 (e.g. 0.01 for 1%)")),
    }
}

/// One client session of a schedule: seconds from the schedule's time zero.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Session {
    pub start: f64,
    pub end: f64,
}

/// Reads a churn schedule (`client,session,start,end`) into each client's sessions, in order.
///
/// # Errors
/// When the file cannot be read, the header differs, or a line has a bad number or ends
/// before it starts; the message names the line.
pub fn read_schedule(path: &std::path::Path) -> Result<std::collections::BTreeMap<usize, Vec<Session>>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the schedule {}; check --schedule", path.display()))?;
    let mut lines = text.lines().enumerate();
    let header = lines.next().map(|(_, l)| l.trim().replace(' ', ""));
    if header.as_deref() != Some("client,session,start,end") {
        bail!("{}: the first line must be `client,session,start,end` (as `soplab workload` writes)", path.display());
    }
    let mut out: std::collections::BTreeMap<usize, Vec<Session>> = std::collections::BTreeMap::new();
    for (n, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let bad =
            || anyhow!("{} line {}: expected `client,session,start,end` numbers, got {line:?}", path.display(), n + 1);
        if f.len() != 4 {
            return Err(bad());
        }
        let client: usize = f[0].parse().map_err(|_| bad())?;
        let start: f64 = f[2].parse().map_err(|_| bad())?;
        let end: f64 = f[3].parse().map_err(|_| bad())?;
        if !(start.is_finite() && end.is_finite() && start >= 0.0 && end >= start) {
            bail!("{} line {}: a session needs 0 <= start <= end, got {line:?}", path.display(), n + 1);
        }
        out.entry(client).or_default().push(Session { start, end });
    }
    for v in out.values_mut() {
        v.sort_by(|a, b| a.start.total_cmp(&b.start));
    }
    Ok(out)
}

/// The addresses of `count` peers from `first`: its IPv4 address plus 0, 1, ..., same port,
/// all inside 127.0.0.0/8 or 198.18.0.0/15.
///
/// # Errors
/// When `first` is IPv6 or outside those blocks, or the last address would fall past the end
/// of the block `first` is in.
pub fn peer_addrs(first: SocketAddr, count: u32) -> Result<Vec<SocketAddrV4>> {
    let SocketAddr::V4(first) = first else {
        bail!("--addr {first} is IPv6; soplab peers speak IPv4 only: use e.g. --addr 127.0.0.1:3908");
    };
    let ip = u32::from(*first.ip());
    let Some((net, prefix, name)) =
        RANGES.iter().find(|(net, prefix, _)| ip >> (32 - u32::from(*prefix)) == u32::from(*net) >> (32 - prefix))
    else {
        bail!(
            "--addr {} is outside 127.0.0.0/8 and 198.18.0.0/15: soplab only ever binds peers to loopback or \
             its test range; use e.g. --addr 127.0.0.1:3908",
            first.ip()
        );
    };
    let end = u32::from(*net) | (u32::MAX >> prefix); // last address of the block
    let last = ip.checked_add(count.saturating_sub(1)).filter(|&l| l <= end);
    if last.is_none() {
        let room = end - ip + 1;
        bail!(
            "--count {count} from --addr {} would need addresses past {}, the end of {name}; start lower \
             (e.g. --addr {}:{}) or run at most {room} peers from there",
            first.ip(),
            Ipv4Addr::from(end),
            Ipv4Addr::from(u32::from(*net) + 1),
            first.port()
        );
    }
    Ok((0..count).map(|i| SocketAddrV4::new(Ipv4Addr::from(ip + i), first.port())).collect())
}

/// The file stem of a peer's outputs: `peer-<ip>-<port>`.
pub fn file_stem(addr: SocketAddr) -> String {
    format!("peer-{}-{}", addr.ip(), addr.port())
}

/// One hosted peer, ready to start.
struct Hosted {
    index: usize,
    cfg: PeerConfig,
    socket: UdpSocket,
    opts: shell::Options,
    /// Sessions relative to `epoch` (empty: run the whole time).
    sessions: Vec<Session>,
    epoch: tokio::time::Instant,
    truth: Box<dyn Write + Send>,
    truth_path: Option<PathBuf>,
    played: Option<(BufWriter<File>, PathBuf)>,
    http: Option<broadcast::Sender<Bytes>>,
    delay: Duration,
}

/// What a peer task hands back: its index, its final counters and why it failed, if it did.
type Outcome = (usize, PeerStats, Option<anyhow::Error>);

/// Runs `--count` peers until Ctrl-C, SIGTERM or `--duration`, then prints their
/// [`PeerStats`] as a JSON array on stdout and writes it to `--stats`.
///
/// # Errors
/// When an address is outside soplab's ranges or cannot be bound, an output file cannot be
/// created or written, or a socket fails; each message says what to check. A failing peer
/// stops the others.
pub async fn run(args: Args) -> Result<()> {
    let addrs = peer_addrs(args.addr, args.count)?;
    let count = addrs.len();
    raise_fd_limit(count, &args)?;
    for dir in [&args.truth_dir, &args.played_dir].into_iter().flatten() {
        std::fs::create_dir_all(dir).with_context(|| {
            format!("cannot create the folder {}; check that its parent exists and is writable", dir.display())
        })?;
    }
    let shared_truth = match &args.truth {
        Some(path) => Some(Arc::new(Mutex::new(create_output(path, "ground-truth file")?))),
        None => None,
    };
    let stats_out = args.stats.as_deref().map(|p| create_output(p, "stats file")).transpose()?;
    let seed = args.seed.unwrap_or_else(seed_from_clock);
    let (stop_tx, stop_rx) = watch::channel(false);

    // Bind everything and open every file first, so that a mistake fails before any peer starts.
    let mut hosted = Vec::with_capacity(count);
    let mut http_servers = JoinSet::new();
    if !(args.netns.len() <= 1 || args.netns.len() == count) {
        bail!("--netns takes one namespace for all peers or one per peer: {count} peers, {} names", args.netns.len());
    }
    let schedule = match &args.schedule {
        Some(p) => read_schedule(p)?,
        None => Default::default(),
    };
    if let Some((&c, _)) = schedule.range(count..).next() {
        bail!("the schedule names client {c}, but this process runs peers 0 to {}", count - 1);
    }
    let epoch = match args.schedule_epoch_ms {
        Some(ms) => {
            let ahead = i128::from(ms) * 1000 - i128::from(shell::realtime_us());
            let now = tokio::time::Instant::now();
            if ahead >= 0 {
                now + Duration::from_micros(ahead as u64)
            } else {
                now.checked_sub(Duration::from_micros(ahead.unsigned_abs() as u64)).unwrap_or(now)
            }
        }
        None => tokio::time::Instant::now(),
    };
    if let Some(dir) = &args.pcap_dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the folder {}; check --pcap-dir", dir.display()))?;
    }
    for (i, addr) in addrs.iter().enumerate() {
        let netns = args.netns.get(if args.netns.len() == 1 { 0 } else { i });
        let at = SocketAddr::V4(*addr);
        let socket = match netns {
            Some(ns) => soplab_shell::netns::run_in(ns, || shell::bind_udp_std(at)),
            None => shell::bind_udp_std(at),
        }
        .and_then(UdpSocket::from_std)
        .map_err(|e| {
            anyhow!(bind_error(e, "UDP", at, "--addr")).context(match netns {
                Some(ns) => format!("peer {i} of {count}, in network namespace {ns}"),
                None => format!("peer {i} of {count}"),
            })
        })?;
        let local = socket.local_addr().context("cannot read a bound address")?;
        let cfg = PeerConfig {
            bitrate_bps: args.bitrate,
            upload_bps: args.upload,
            max_neighbors: args.max_neighbors,
            gamma: args.gamma,
            neighbor_timeout: u64::try_from(args.neighbor_timeout.as_micros()).unwrap_or(u64::MAX),
            ..PeerConfig::peer(local, args.tracker, args.channel, seed.wrapping_add(i as u64))
        };
        let stem = file_stem(local);
        let (truth, truth_path): (Box<dyn Write + Send>, _) = match (&args.truth_dir, &shared_truth) {
            (Some(dir), _) => {
                let path = dir.join(format!("{stem}.jsonl"));
                (Box::new(create_output(&path, "ground-truth file")?), Some(path))
            }
            (None, Some(shared)) => (Box::new(SharedLines::new(shared.clone())), args.truth.clone()),
            (None, None) => (Box::new(io::sink()), None),
        };
        let played = match &args.played_dir {
            Some(dir) => {
                let path = dir.join(format!("{stem}.ts"));
                Some((create_output(&path, "played-stream file")?, path))
            }
            None => None,
        };
        let http = if args.http_port == 0 {
            None
        } else {
            let at = SocketAddr::new(local.ip(), args.http_port);
            let bind = move || {
                let l = std::net::TcpListener::bind(at)?;
                l.set_nonblocking(true)?;
                Ok(l)
            };
            let listener = match netns {
                Some(ns) => soplab_shell::netns::run_in(ns, bind),
                None => bind(),
            }
            .and_then(TcpListener::from_std)
            .map_err(|e| {
                anyhow!(bind_error(e, "TCP", at, "--http-port"))
                    .context(format!("peer {local} cannot serve its stream over HTTP (--http-port 0 turns that off)"))
            })?;
            let (tx, _) = broadcast::channel(http::QUEUE_BLOCKS);
            http_servers.spawn(http::serve(listener, tx.downgrade(), stop_rx.clone(), local));
            Some(tx)
        };
        let delay = args.stagger.mul_f64(i as f64 / count as f64);
        let opts = shell::Options {
            impairment: Some(Impairer::new(
                Impairment { delay: micros(args.delay), jitter: micros(args.jitter), loss: args.loss },
                cfg.seed ^ 0x5eed_1055,
            )),
            tap: match &args.pcap_dir {
                Some(dir) => Some(soplab_shell::tap::PcapTap::create(&dir.join(format!("{stem}.pcap")))?),
                None => None,
            },
            ..shell::Options::default()
        };
        let sessions = schedule.get(&i).cloned().unwrap_or_default();
        hosted.push(Hosted { index: i, cfg, socket, opts, sessions, epoch, truth, truth_path, played, http, delay });
    }
    tracing::info!(
        peers = count,
        first = %hosted[0].cfg.addr,
        last = %hosted[count - 1].cfg.addr,
        netns = ?args.netns.first(),
        scheduled = schedule.len(),
        delay = ?args.delay,
        jitter = ?args.jitter,
        loss = args.loss,
        tracker = %args.tracker,
        channel = args.channel,
        bitrate = args.bitrate,
        upload = ?args.upload,
        max_neighbors = args.max_neighbors,
        gamma = args.gamma,
        seed,
        stagger_s = args.stagger.as_secs_f64(),
        http_port = args.http_port,
        truth = ?args.truth.as_ref().or(args.truth_dir.as_ref()),
        played_dir = ?args.played_dir,
        "soplab-peer starting (Ctrl-C to stop)"
    );

    let stop = stop_signal(args.duration)?;
    let mut tasks = JoinSet::new();
    for h in hosted {
        tasks.spawn(run_peer(h, stop_rx.clone()));
    }
    let mut stats: Vec<Option<PeerStats>> = vec![None; count];
    let mut errors: Vec<anyhow::Error> = Vec::new();
    let mut record = |r: std::result::Result<Outcome, tokio::task::JoinError>| match r {
        Ok((i, s, err)) => {
            if let Some(e) = err {
                tracing::error!(peer = %s.addr, "{e:#}");
                errors.push(e);
            }
            stats[i] = Some(s);
        }
        Err(e) => errors.push(anyhow!("a peer task failed: {e}")),
    };
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            // A churned peer ends early when its last session is over; any peer ends early on
            // an error, and then the others stop too.
            r = tasks.join_next() => match r {
                Some(r) => {
                    let failed = !matches!(&r, Ok((_, _, None)));
                    record(r);
                    if failed {
                        tracing::error!("a peer failed; stopping all peers");
                        break;
                    }
                }
                None => {
                    // Every peer's schedule is over: wait for the stop all the same.
                    (&mut stop).await;
                    break;
                }
            },
        }
    }
    let _ = stop_tx.send(true);
    while let Some(r) = tasks.join_next().await {
        record(r);
    }
    http_servers.shutdown().await;
    if let Some(shared) = &shared_truth {
        let mut w = shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Err(e) = w.flush() {
            errors.push(anyhow!("cannot write the ground-truth file: {e}"));
        }
    }

    let stats: Vec<PeerStats> = stats.into_iter().flatten().collect();
    let cont: Vec<f64> = stats.iter().filter_map(|s| s.continuity).collect();
    tracing::info!(
        peers = stats.len(),
        playing = cont.len(),
        continuity_mean = (!cont.is_empty()).then(|| cont.iter().sum::<f64>() / cont.len() as f64),
        continuity_min = cont.iter().copied().reduce(f64::min),
        "peers stopped"
    );
    println!("{}", serde_json::to_string(&stats).context("cannot serialise the stats")?);
    if let (Some(out), Some(path)) = (stats_out, &args.stats) {
        write_json(out, &stats, path)?;
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        n => Err(errors.remove(0).context(format!("{n} peers failed; the first error"))),
    }
}

/// Runs one peer: waits its stagger delay, then the shell until `stop` (or a failure writing
/// its played stream). A scheduled peer instead runs one fresh core per session on the same
/// socket, vanishing silently at each session's end and ignoring what arrives while it is off.
async fn run_peer(h: Hosted, mut stop: watch::Receiver<bool>) -> Outcome {
    let Hosted { index, cfg, socket, mut opts, sessions, epoch, mut truth, truth_path, mut played, http, delay } = h;
    let addr = cfg.addr;
    let mut stats = Peer::new(cfg.clone(), None).stats();
    // Whole-run peers are one session from their stagger delay to the stop.
    let plan: Vec<(tokio::time::Instant, Option<tokio::time::Instant>)> = if sessions.is_empty() {
        vec![(tokio::time::Instant::now() + delay, None)]
    } else {
        sessions
            .iter()
            .map(|s| (epoch + Duration::from_secs_f64(s.start), Some(epoch + Duration::from_secs_f64(s.end))))
            .collect()
    };
    let failed = Notify::new();
    let mut played_error: Option<io::Error> = None;
    let mut result = Ok(());
    let mut buf = vec![0u8; shell::RECV_BUF_LEN];
    'sessions: for (k, (start, end)) in plan.into_iter().enumerate() {
        // Off: datagrams still arrive (partners keep sending for a while) and are discarded,
        // as a host whose client is closed would.
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(start) => break,
                () = stopped(&mut stop) => break 'sessions,
                _ = socket.recv_from(&mut buf) => {}
            }
        }
        // An empty session never plays; one that ended well before this process could start
        // it (a late start) is skipped; a short one that is just due still runs, however
        // briefly, so that the ground truth shows every scheduled session.
        if end.is_some_and(|e| e <= start || e + Duration::from_millis(500) < tokio::time::Instant::now()) {
            continue;
        }
        tracing::debug!(peer = %addr, session = k, "peer session starting");
        let mut peer =
            Peer::new(PeerConfig { seed: cfg.seed.wrapping_add(k as u64 * 0x9e37_79b9), ..cfg.clone() }, None);
        let mut player = |m: Media| {
            if let Some((file, _)) = played.as_mut()
                && played_error.is_none()
                && let Err(e) = file.write_all(&m.data).and_then(|()| file.flush())
            {
                played_error = Some(e);
                failed.notify_one();
            }
            if let Some(tx) = &http {
                // No players connected is not an error.
                let _ = tx.send(m.data);
            }
        };
        let stop_fut = async {
            let vanish = async {
                match end {
                    Some(e) => tokio::time::sleep_until(e).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = stopped(&mut stop) => shell::Stop::Graceful,
                () = failed.notified() => shell::Stop::Graceful,
                () = vanish => shell::Stop::Silent,
            }
        };
        let r = shell::run_with_options(&mut peer, &socket, stop_fut, &mut truth, &mut player, &mut opts).await;
        if k == 0 {
            stats = peer.stats();
        } else {
            stats.merge(&peer.stats());
        }
        match r {
            Ok(shell::Stop::Silent) if played_error.is_none() => {}
            Ok(_) => break,
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    drop(truth);
    if let Some(tap) = opts.tap.as_mut()
        && let Err(e) = tap.finish()
        && result.is_ok()
    {
        result = Err(e);
    }

    let err = if let Err(e) = result {
        Some(anyhow!(e).context(match &truth_path {
            Some(p) => format!(
                "peer {addr} stopped on an I/O error (its socket, its capture or the ground-truth file {})",
                p.display()
            ),
            None => format!("peer {addr} stopped on a socket or capture error"),
        }))
    } else if let (Some(e), Some((_, path))) = (played_error, &played) {
        Some(anyhow!(e).context(format!(
            "peer {addr} cannot write its played stream to {}; check the disk and --played-dir",
            path.display()
        )))
    } else {
        None
    };
    (index, stats, err)
}

fn micros(d: Duration) -> soplab_node::Micros {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Ground-truth lines of many peers into one file: each writer buffers up to its last newline,
/// so lines from different peers never interleave.
struct SharedLines {
    out: Arc<Mutex<BufWriter<File>>>,
    pending: Vec<u8>,
}

impl SharedLines {
    fn new(out: Arc<Mutex<BufWriter<File>>>) -> SharedLines {
        SharedLines { out, pending: Vec::new() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BufWriter<File>> {
        self.out.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Write for SharedLines {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        if let Some(end) = self.pending.iter().rposition(|&b| b == b'\n') {
            self.lock().write_all(&self.pending[..=end])?;
            self.pending.drain(..=end);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.lock().flush()
    }
}

/// Makes sure the process may open the descriptors `count` peers need (a socket and up to two
/// files each, an HTTP listener and its players), raising the soft limit up to the hard one.
fn raise_fd_limit(count: usize, args: &Args) -> Result<()> {
    #[cfg(unix)]
    {
        use nix::sys::resource::{Resource, getrlimit, setrlimit};
        let per_peer = 1
            + usize::from(args.truth_dir.is_some())
            + usize::from(args.played_dir.is_some())
            + if args.http_port == 0 { 0 } else { 1 + http::MAX_CLIENTS / 2 };
        let need = (count * per_peer + 64) as u64;
        let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else { return Ok(()) };
        if soft >= need {
            return Ok(());
        }
        let want = need.max(soft).min(hard);
        if want > soft && setrlimit(Resource::RLIMIT_NOFILE, want, hard).is_ok() {
            tracing::debug!(from = soft, to = want, "raised the open-file limit");
        }
        if want < need {
            bail!(
                "{count} peers need about {need} open files but this process may open only {hard}; raise the \
                 limit (ulimit -n {need}, as root if needed) or spread the peers over several processes"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = (count, args);
    Ok(())
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
    fn cli_defaults_follow_peer_config() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let a = Cli::parse_from(["soplab-peer"]).args;
        let d = defaults();
        assert_eq!((a.count, a.addr, a.tracker, a.channel), (1, DEFAULT_ADDR, DEFAULT_TRACKER, 1));
        assert_eq!((a.bitrate, a.max_neighbors, a.gamma), (d.bitrate_bps, d.max_neighbors, d.gamma));
        assert_eq!((a.http_port, a.stagger), (8902, Duration::ZERO));
        assert!(a.seed.is_none() && a.upload.is_none() && a.stats.is_none() && a.duration.is_none());
        assert!(a.truth.is_none() && a.truth_dir.is_none() && a.played_dir.is_none());
        let a = Cli::parse_from(["soplab-peer", "--stagger", "2500ms", "--upload", "1M", "--count", "3"]).args;
        assert_eq!((a.stagger, a.upload, a.count), (Duration::from_millis(2500), Some(1_000_000), 3));
        assert!(Cli::try_parse_from(["soplab-peer", "--count", "0"]).is_err());
        assert!(Cli::try_parse_from(["soplab-peer", "--truth", "a", "--truth-dir", "b"]).is_err());
    }

    #[test]
    fn addresses_count_up_and_stay_in_range() {
        let a = peer_addrs("127.0.0.254:3908".parse().unwrap(), 3).unwrap();
        let want: Vec<SocketAddrV4> =
            ["127.0.0.254:3908", "127.0.0.255:3908", "127.0.1.0:3908"].iter().map(|s| s.parse().unwrap()).collect();
        assert_eq!(a, want);
        assert_eq!(peer_addrs("198.19.255.255:1".parse().unwrap(), 1).unwrap().len(), 1);
        assert_eq!(peer_addrs("127.255.255.250:1".parse().unwrap(), 6).unwrap().len(), 6);

        let e = peer_addrs("127.255.255.250:1".parse().unwrap(), 7).unwrap_err().to_string();
        assert!(e.contains("past 127.255.255.255") && e.contains("at most 6 peers"), "{e}");
        let e = peer_addrs("198.19.255.255:1".parse().unwrap(), 2).unwrap_err().to_string();
        assert!(e.contains("198.18.0.0/15"), "{e}");
        let e = peer_addrs("10.0.0.1:1".parse().unwrap(), 1).unwrap_err().to_string();
        assert!(e.contains("outside 127.0.0.0/8 and 198.18.0.0/15"), "{e}");
        assert!(peer_addrs("198.20.0.1:1".parse().unwrap(), 1).is_err());
        assert!(peer_addrs("[::1]:1".parse().unwrap(), 1).is_err());
    }

    #[test]
    fn schedules_are_read_per_client_and_bad_lines_are_named() {
        let dir = std::env::temp_dir().join(format!("soplab-schedule-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("s.csv");
        std::fs::write(&p, "client,session,start,end\n1,0,5.5,9\n0,0,1,2\n1,1,20,30.25\n").unwrap();
        let s = read_schedule(&p).unwrap();
        assert_eq!(s[&0], vec![Session { start: 1.0, end: 2.0 }]);
        assert_eq!(s[&1], vec![Session { start: 5.5, end: 9.0 }, Session { start: 20.0, end: 30.25 }]);
        for (text, want) in [
            ("c,s,a,b\n", "first line"),
            ("client,session,start,end\n0,0,x,1\n", "line 2"),
            ("client,session,start,end\n0,0,1,1\n0,1,5,4\n", "line 3"),
            ("client,session,start,end\n0,0,-1,4\n", "0 <= start"),
        ] {
            std::fs::write(&p, text).unwrap();
            let e = read_schedule(&p).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn file_stems() {
        assert_eq!(file_stem("127.88.1.10:3908".parse().unwrap()), "peer-127.88.1.10-3908");
    }

    #[test]
    fn shared_lines_never_interleave() {
        let path = std::env::temp_dir().join(format!("soplab-shared-lines-{}.jsonl", std::process::id()));
        let out = Arc::new(Mutex::new(create_output(&path, "ground-truth file").unwrap()));
        let (mut a, mut b) = (SharedLines::new(out.clone()), SharedLines::new(out.clone()));
        a.write_all(b"{\"a\":").unwrap();
        b.write_all(b"{\"b\":1}").unwrap();
        a.write_all(b"1}").unwrap();
        b.write_all(b"\n").unwrap();
        a.write_all(b"\n").unwrap();
        a.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"b\":1}\n{\"a\":1}\n");
        std::fs::remove_file(&path).ok();
    }
}
