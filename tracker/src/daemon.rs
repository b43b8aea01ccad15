//! The tracker daemon: the [`Tracker`] core on a UDP socket until Ctrl-C, SIGTERM or
//! `--duration`. Run by the `soplab-tracker` binary and by `soplab tracker`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use soplab_node::Micros;
use soplab_shell as shell;
use soplab_shell::flags::{CommonArgs, Outputs, load_config, micros};
use soplab_shell::process::{bind_error, serve};
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

UDP does not authenticate a sender's address, so every peer list carries a cookie made from the
asker's address, channel and port with a secret key (from the OS) and the time (--cookie-epoch).
A peer proves it receives what is sent to its address by sending the cookie back as the sequence
number of its next request. Only such registrations are listed, only such leaves remove an entry,
and a request without one is answered with at most 6 peers (57 bytes, under three times the
20-byte request), so spoofed requests fill nothing and amplify little.

Memory is bounded: --max-channels channels of --max-entries entries each, of which one IP
address holds at most --max-entries-per-ip entries in at most --max-channels-per-ip channels
(registrations beyond that are dropped), and each source IP may send --rate datagrams per second
(bursts of --burst); the excess is dropped. Datagrams that are not tracker requests are dropped
and counted.

With --truth FILE every registration, reply, expiry and drop is written to FILE as one JSON
object per line (ground truth for the analyzers). On Ctrl-C, SIGTERM or the end of --duration
the tracker stops and prints its counters as one JSON object on stdout (and writes them to
--stats FILE if given). Logs go to stderr; set RUST_LOG (e.g. RUST_LOG=debug) for more.

Durations take a number of seconds or units: 900, 90s, 15m, 1h30m, 500ms.

--config FILE takes all of these settings from a JSON file instead of flags (and no other flag):
{\"tracker\": {\"addr\": \"127.0.0.1:3900\", \"ttl\": 900000000, ... every key of the core's Config,
\"seed\": 7}, \"outputs\": {\"truth\": \"tracker.jsonl\", \"stats\": null}, \"duration_us\": null}.
Times in it are in microseconds.

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

    /// Most entries one IP address holds, all channels together (several peers behind one
    /// address); its registrations beyond it are dropped.
    #[arg(long, value_name = "N", default_value_t = crate::DEFAULT_MAX_ENTRIES_PER_IP)]
    pub max_entries_per_ip: usize,

    /// Most channels one IP address holds entries in.
    #[arg(long, value_name = "N", default_value_t = crate::DEFAULT_MAX_CHANNELS_PER_IP)]
    pub max_channels_per_ip: usize,

    /// How long a cookie epoch lasts: a cookie is accepted in its epoch and the next, so
    /// peers must register more often than this (they do every 30 s).
    #[arg(long, value_name = "DURATION", default_value = "60", value_parser = parse_positive_duration)]
    pub cookie_epoch: Duration,

    #[command(flatten)]
    pub common: CommonArgs,
}

/// Everything a tracker run needs: what `--config FILE` holds, and what the flags build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// The core's settings; `addr` is where the daemon listens (port 0: any free port).
    pub tracker: Config,
    pub outputs: Outputs,
    /// Stop by itself after this many microseconds (none: run until Ctrl-C or SIGTERM).
    pub duration_us: Option<Micros>,
}

impl Args {
    /// The configuration these flags say, or the one `--config` names: the daemon runs either
    /// the same way.
    ///
    /// # Errors
    /// When the `--config` file cannot be read or parsed.
    pub fn into_config(self) -> Result<DaemonConfig> {
        if let Some(path) = &self.common.config {
            return Ok(load_config(path, "tracker")?);
        }
        let tracker = Config {
            ttl: micros(self.ttl),
            list_size: self.list_size,
            max_entries: self.max_entries,
            max_channels: self.max_channels,
            rate: self.rate,
            burst: self.burst,
            max_rate_sources: self.max_rate_sources,
            max_entries_per_ip: self.max_entries_per_ip,
            max_channels_per_ip: self.max_channels_per_ip,
            cookie_epoch: micros(self.cookie_epoch),
            seed: self.common.seed(),
            ..Config::new(self.listen)
        };
        Ok(DaemonConfig { tracker, outputs: self.common.outputs(), duration_us: self.common.duration_us() })
    }
}

/// Runs the tracker until Ctrl-C, SIGTERM or the configured duration, then prints its counters
/// on stdout and writes them to the stats file.
///
/// # Errors
/// When the socket cannot be bound, an output file cannot be created or written, or the socket
/// fails; each message says what to check.
pub async fn run(config: DaemonConfig) -> Result<()> {
    let DaemonConfig { tracker: mut config, outputs, duration_us } = config;
    let socket = shell::bind_udp(config.addr).map_err(|e| bind_error(e, "UDP", config.addr, "--listen"))?;
    config.addr = socket.local_addr().context("cannot read the bound address")?;
    tracing::info!(
        listen = %config.addr,
        ttl_s = Duration::from_micros(config.ttl).as_secs_f64(),
        list_size = config.list_size,
        max_entries = config.max_entries,
        max_channels = config.max_channels,
        max_entries_per_ip = config.max_entries_per_ip,
        max_channels_per_ip = config.max_channels_per_ip,
        cookie_epoch_s = Duration::from_micros(config.cookie_epoch).as_secs_f64(),
        rate = config.rate,
        burst = config.burst,
        seed = config.seed,
        truth = ?outputs.truth,
        "soplab-tracker listening (Ctrl-C to stop)"
    );

    let mut tracker = Tracker::new(config).with_secret(soplab_node::Secret::from_os());
    serve(&mut tracker, socket, &outputs, duration_us.map(Duration::from_micros), Tracker::stats)
        .await
        .context("the tracker stopped")
}

#[cfg(test)]
mod tests {
    use soplab_shell::flags::parse_args;

    use super::*;

    #[test]
    fn cli_defaults() {
        let a = parse_args::<Args>(["soplab-tracker"]).unwrap();
        assert_eq!(a.listen, crate::DEFAULT_LISTEN);
        assert_eq!(a.ttl, Duration::from_secs(900));
        assert_eq!((a.list_size, a.max_entries, a.max_channels, a.rate, a.burst), (50, 10_000, 64, 20, 40));
        assert_eq!((a.max_entries_per_ip, a.max_channels_per_ip, a.cookie_epoch), (16, 4, Duration::from_secs(60)));
        let config = a.clone().into_config().unwrap().tracker;
        assert_eq!(
            config,
            crate::Config { seed: config.seed, ..crate::Config::default() },
            "flags' defaults are the core's"
        );
        assert_eq!(a.common, CommonArgs::default());
    }

    #[test]
    fn cli_durations() {
        let a = parse_args::<Args>(["soplab-tracker", "--ttl", "1h30m", "--duration", "500ms"]).unwrap();
        assert_eq!(a.ttl, Duration::from_secs(5400));
        assert_eq!(a.common.duration, Some(Duration::from_millis(500)));
        assert!(parse_args::<Args>(["soplab-tracker", "--ttl", "0s"]).is_err());
        assert!(parse_args::<Args>(["soplab-tracker", "--duration", "15x"]).is_err());
    }

    #[test]
    fn flags_and_config_file_give_one_config() {
        let argv = ["soplab-tracker", "--listen", "127.0.0.9:0", "--ttl", "30s", "--rate", "0", "--seed", "7"];
        let more = ["--truth", "t.jsonl", "--duration", "5m", "--max-entries-per-ip", "2", "--cookie-epoch", "2m"];
        let flags = parse_args::<Args>(argv.iter().chain(&more)).unwrap();
        let config = flags.into_config().unwrap();
        assert_eq!((config.tracker.ttl, config.tracker.rate, config.tracker.seed), (30_000_000, 0, 7));
        assert_eq!((config.tracker.max_entries_per_ip, config.tracker.cookie_epoch), (2, 120_000_000));
        assert_eq!(
            (config.outputs.truth.as_deref(), config.duration_us),
            (Some("t.jsonl".as_ref()), Some(300_000_000))
        );
        let json = serde_json::to_string_pretty(&config).unwrap();
        assert_eq!(serde_json::from_str::<DaemonConfig>(&json).unwrap(), config);

        let path = std::env::temp_dir().join(format!("soplab-tracker-config-{}.json", std::process::id()));
        std::fs::write(&path, &json).unwrap();
        let loaded = parse_args::<Args>(["soplab-tracker".as_ref(), "--config".as_ref(), path.as_os_str()]).unwrap();
        assert_eq!(loaded.into_config().unwrap(), config);
        std::fs::remove_file(&path).ok();
    }

    #[test]
    fn config_files_written_before_the_per_address_bounds_still_load() {
        let mut v = serde_json::to_value(DaemonConfig {
            tracker: crate::Config::default(),
            outputs: Outputs::default(),
            duration_us: None,
        })
        .unwrap();
        for key in ["max_entries_per_ip", "max_channels_per_ip", "cookie_epoch"] {
            v["tracker"].as_object_mut().unwrap().remove(key);
        }
        let old: DaemonConfig = serde_json::from_value(v).unwrap();
        assert_eq!(old.tracker, crate::Config::default());
    }
}
