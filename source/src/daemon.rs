//! The source-provider daemon: the [`crate::source`] core on a UDP socket until Ctrl-C,
//! SIGTERM or `--duration`. Run by the `soplab-source` binary and by `soplab source`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use soplab_node::Micros;
use soplab_peer::PeerConfig;
use soplab_rundir::plan::SOURCE_PORT;
use soplab_shell as shell;
use soplab_shell::flags::{CommonArgs, Outputs, load_config};
use soplab_shell::process::{bind_error, serve};
use soplab_shell::units::parse_rate;

use crate::{Content, ContentError};

/// Address the source listens on by default.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), SOURCE_PORT);
/// Where the source looks for the tracker by default (`soplab-tracker`'s default).
pub const DEFAULT_TRACKER: SocketAddr = soplab_peer::daemon::DEFAULT_TRACKER;

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

--config FILE takes all of these settings from a JSON file instead of flags (and no other flag):
{\"source\": {\"addr\": \"127.0.0.1:3901\", \"tracker\": \"127.0.0.1:3900\", \"channel\": 1, \"role\":
\"source\", \"seed\": 7, \"bitrate_bps\": 500000, ... every key of the peer core's PeerConfig},
\"content\": {\"file\": \"cartoon.ts\"} or {\"synthetic_seed\": 1}, \"outputs\": {\"truth\":
\"source.jsonl\", \"stats\": null}, \"duration_us\": null}. Times in it are in microseconds.

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
    #[arg(long, value_name = "BPS", default_value = soplab_peer::daemon::default_bitrate(), value_parser = parse_rate)]
    pub bitrate: u64,

    /// Most peers served at once (SopCast's SP serves 11).
    #[arg(long, value_name = "N", default_value_t = defaults().max_children as u64, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_children: u64,

    /// Cap on video upload in bits/s, e.g. 5M (default: no cap).
    #[arg(long, value_name = "BPS", value_parser = parse_rate)]
    pub upload: Option<u64>,

    #[command(flatten)]
    pub common: CommonArgs,
}

fn defaults() -> PeerConfig {
    PeerConfig::source(DEFAULT_LISTEN, DEFAULT_TRACKER, 1, 0)
}

/// Everything a source run needs: what `--config FILE` holds, and what the flags build.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// The core's settings ([`PeerConfig::source`] and the flags); `addr` is where the daemon
    /// listens (port 0: any free port).
    pub source: PeerConfig,
    pub content: ContentSpec,
    pub outputs: Outputs,
    /// Stop by itself after this many microseconds (none: run until Ctrl-C or SIGTERM).
    pub duration_us: Option<Micros>,
}

/// What the source streams: `{"file": PATH}` or `{"synthetic_seed": N}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ContentSpec {
    /// A media file played in a loop (read whole at start-up).
    File(PathBuf),
    /// Pseudo-random bytes made from this seed.
    SyntheticSeed(u64),
}

impl ContentSpec {
    /// Loads the content, and says in a few words what it is, for the start-up log line.
    fn load(&self) -> Result<(Content, String), ContentError> {
        let content = match self {
            ContentSpec::File(path) => Content::file(path)?,
            &ContentSpec::SyntheticSeed(seed) => Content::Synthetic { seed },
        };
        let what = match &content {
            Content::File(data) => format!("{self} ({} bytes, looped)", data.len()),
            Content::Synthetic { .. } => self.to_string(),
        };
        Ok((content, what))
    }
}

impl std::fmt::Display for ContentSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ContentSpec::File(path) => write!(f, "file {}", path.display()),
            ContentSpec::SyntheticSeed(seed) => write!(f, "synthetic bytes, seed {seed}"),
        }
    }
}

impl Args {
    /// The configuration these flags say, or the one `--config` names: the daemon runs either
    /// the same way.
    ///
    /// # Errors
    /// When the `--config` file cannot be read or parsed.
    pub fn into_config(self) -> Result<DaemonConfig> {
        if let Some(path) = &self.common.config {
            return Ok(load_config(path, "source")?);
        }
        let source = PeerConfig {
            bitrate_bps: self.bitrate,
            max_children: usize::try_from(self.max_children).unwrap_or(usize::MAX),
            upload_bps: self.upload,
            ..PeerConfig::source(self.listen, self.tracker, self.channel, self.common.seed())
        };
        let content = match self.file {
            Some(path) => ContentSpec::File(path),
            None => ContentSpec::SyntheticSeed(self.synthetic_seed.unwrap_or(1)),
        };
        Ok(DaemonConfig { source, content, outputs: self.common.outputs(), duration_us: self.common.duration_us() })
    }
}

/// Runs the source until Ctrl-C, SIGTERM or the configured duration, then prints its
/// [`soplab_peer::PeerStats`] on stdout and writes them to the stats file.
///
/// # Errors
/// When the content cannot be loaded, the socket cannot be bound, an output file cannot be
/// created or written, or the socket fails; each message says what to check.
pub async fn run(config: DaemonConfig) -> Result<()> {
    let DaemonConfig { source: mut cfg, content, outputs, duration_us } = config;
    if !cfg.addr.is_ipv4() {
        bail!("--listen {} is IPv6; soplab speaks IPv4 only: give an IPv4 address such as 127.0.0.1:3901", cfg.addr);
    }
    let (content, what) = content.load()?;
    let socket = shell::bind_udp(cfg.addr).map_err(|e| bind_error(e, "UDP", cfg.addr, "--listen"))?;
    cfg.addr = socket.local_addr().context("cannot read the bound address")?;
    tracing::info!(
        listen = %cfg.addr,
        tracker = %cfg.tracker,
        channel = cfg.channel,
        bitrate = cfg.bitrate_bps,
        max_children = cfg.max_children,
        upload = ?cfg.upload_bps,
        seed = cfg.seed,
        content = %what,
        truth = ?outputs.truth,
        "soplab-source publishing (Ctrl-C to stop)"
    );

    let mut source = crate::source(cfg, content).with_secret(soplab_node::Secret::from_os());
    serve(&mut source, socket, &outputs, duration_us.map(Duration::from_micros), soplab_peer::Peer::stats)
        .await
        .context("the source stopped")
}

#[cfg(test)]
mod tests {
    use soplab_wire::Role;

    use soplab_shell::flags::parse_args;

    use super::*;

    #[test]
    fn cli_defaults() {
        let a = parse_args::<Args>(["soplab-source"]).unwrap();
        assert_eq!(a.listen, DEFAULT_LISTEN);
        assert_eq!(a.tracker, DEFAULT_TRACKER);
        assert_eq!((a.channel, a.bitrate, a.max_children), (1, 500_000, 11));
        assert!(a.file.is_none() && a.synthetic_seed.is_none() && a.upload.is_none() && a.common.seed.is_none());
        assert!(a.common.truth.is_none() && a.common.stats.is_none() && a.common.duration.is_none());
    }

    #[test]
    fn cli_rates_and_conflicts() {
        let a = parse_args::<Args>(["soplab-source", "--bitrate", "1M", "--upload", "5M", "--synthetic-seed", "7"])
            .unwrap();
        assert_eq!((a.bitrate, a.upload, a.synthetic_seed), (1_000_000, Some(5_000_000), Some(7)));
        assert!(parse_args::<Args>(["soplab-source", "--file", "x.ts", "--synthetic-seed", "7"]).is_err());
        assert!(parse_args::<Args>(["soplab-source", "--bitrate", "0"]).is_err());
        assert!(parse_args::<Args>(["soplab-source", "--max-children", "0"]).is_err());
    }

    #[test]
    fn flags_and_config_file_give_one_config() {
        let argv = ["soplab-source", "--listen", "127.0.0.9:0", "--file", "x.ts", "--upload", "5M", "--seed", "7"];
        let config = parse_args::<Args>(argv.iter().chain(&["--stats", "s.json", "--duration", "90s"])).unwrap();
        let config = config.into_config().unwrap();
        assert_eq!((config.source.role, config.source.max_children, config.source.seed), (Role::Source, 11, 7));
        assert_eq!((config.content.clone(), config.duration_us), (ContentSpec::File("x.ts".into()), Some(90_000_000)));
        let json = serde_json::to_value(&config).unwrap();
        assert_eq!(serde_json::to_value(serde_json::from_value::<DaemonConfig>(json.clone()).unwrap()).unwrap(), json);

        let path = std::env::temp_dir().join(format!("soplab-source-config-{}.json", std::process::id()));
        std::fs::write(&path, json.to_string()).unwrap();
        let loaded = parse_args::<Args>(["soplab-source".as_ref(), "--config".as_ref(), path.as_os_str()]).unwrap();
        assert_eq!(serde_json::to_value(loaded.into_config().unwrap()).unwrap(), json);
        std::fs::remove_file(&path).ok();
        let synthetic = parse_args::<Args>(["soplab-source"]).unwrap().into_config().unwrap().content;
        assert_eq!(serde_json::to_string(&synthetic).unwrap(), r#"{"synthetic_seed":1}"#);
    }
}
