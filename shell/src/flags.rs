//! The flags every daemon takes (`--seed`, `--truth`, `--stats`, `--duration`, `--config`),
//! defined once, and their typed form in a daemon's JSON configuration.
//!
//! Each daemon flattens [`CommonArgs`] into its own `clap::Args` and turns the flags into its
//! serde configuration; `--config FILE` ([`load_config`]) reads that configuration instead.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use soplab_node::Micros;

use crate::process::seed_from_clock;
use crate::units::parse_positive_duration;

/// The flags the tracker, the source and the peer daemon share.
#[derive(clap::Args, Debug, Clone, Default, PartialEq)]
pub struct CommonArgs {
    /// Seed of the random choices (the tracker's peer lists; a peer's or the source's nonces,
    /// neighbours and parents; peer i of a peer process uses SEED + i) (default: from the clock,
    /// logged at start-up).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// Write ground-truth events to FILE as JSON Lines, each naming its node (default: no ground
    /// truth).
    #[arg(long, value_name = "FILE")]
    pub truth: Option<PathBuf>,

    /// Write the final counters to FILE as JSON when the daemon stops (a peer process writes an
    /// array, one per peer) (default: stdout only).
    #[arg(long, value_name = "FILE")]
    pub stats: Option<PathBuf>,

    /// Stop by itself after this long, e.g. 300 or 5m (default: run until Ctrl-C or SIGTERM).
    #[arg(long, value_name = "DURATION", value_parser = parse_positive_duration)]
    pub duration: Option<Duration>,

    /// Read the whole run's settings from FILE, a JSON configuration (see above), instead of
    /// from flags; takes no other flag.
    #[arg(long, value_name = "FILE", exclusive = true)]
    pub config: Option<PathBuf>,
}

impl CommonArgs {
    /// `--seed`, or one from the clock: a configuration always holds the seed it runs with, so
    /// that the run can be repeated from it.
    pub fn seed(&self) -> u64 {
        self.seed.unwrap_or_else(seed_from_clock)
    }

    /// `--duration` in microseconds, as configurations hold it.
    pub fn duration_us(&self) -> Option<Micros> {
        self.duration.map(micros)
    }

    /// `--truth` and `--stats`.
    pub fn outputs(&self) -> Outputs {
        Outputs { truth: self.truth.clone(), stats: self.stats.clone() }
    }
}

/// Where a single-node daemon (tracker, source) writes: the typed `--truth` and `--stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outputs {
    /// Ground-truth events, as JSON Lines (none: no ground truth).
    pub truth: Option<PathBuf>,
    /// The final counters, as JSON (none: stdout only).
    pub stats: Option<PathBuf>,
}

/// Why `--config FILE` could not be used. The messages carry the cause (not a `source`), so
/// that a `{:#}` chain does not say it twice.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration {}: {error}; check --config", path.display())]
    Read { path: PathBuf, error: std::io::Error },
    #[error("the configuration {} is not a valid {what} configuration: {error}; fix that key", path.display())]
    Parse { path: PathBuf, what: &'static str, error: serde_json::Error },
}

/// Reads a daemon's JSON configuration (`--config FILE`); `what` names the daemon in errors.
///
/// # Errors
/// When the file cannot be read or is not JSON of that shape; the message names the file, and
/// serde's the line and the key.
pub fn load_config<T: DeserializeOwned>(path: &Path, what: &'static str) -> Result<T, ConfigError> {
    let text = std::fs::read(path).map_err(|error| ConfigError::Read { path: path.to_path_buf(), error })?;
    serde_json::from_slice(&text).map_err(|error| ConfigError::Parse { path: path.to_path_buf(), what, error })
}

/// Writes `config` to `path` as pretty JSON, what `--config` reads: for programs that start
/// daemons with a configuration instead of flags.
///
/// # Errors
/// When the file cannot be written; the message names it.
pub fn save_config<T: Serialize>(config: &T, path: &Path) -> std::io::Result<()> {
    let out = crate::process::create_output(path, "configuration")?;
    crate::process::write_json_pretty(out, config, path)
}

/// Parses `argv` (the program's name first) into a daemon's flags `A` as its binary would, for
/// tests and for programs that turn a command line into a configuration.
///
/// # Errors
/// When clap refuses the command line; the error renders as clap's usual message.
pub fn parse_args<A: clap::Args + clap::FromArgMatches>(
    argv: impl IntoIterator<Item = impl Into<std::ffi::OsString> + Clone>,
) -> Result<A, clap::Error> {
    let mut command = A::augment_args(clap::Command::new("daemon"));
    A::from_arg_matches(&command.try_get_matches_from_mut(argv)?)
}

/// `d` in whole microseconds (saturating), the unit of every time in a configuration.
pub fn micros(d: Duration) -> Micros {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// A rate as the flags' defaults show it: `500k` for 500,000 bits/s, `2M`, `1G`, or plain bits.
pub fn rate_text(bps: u64) -> String {
    match bps {
        0 => "0".to_string(),
        b if b % 1_000_000_000 == 0 => format!("{}G", b / 1_000_000_000),
        b if b % 1_000_000 == 0 => format!("{}M", b / 1_000_000),
        b if b % 1_000 == 0 => format!("{}k", b / 1_000),
        b => b.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::parse_rate;

    /// A daemon's flags: its own and the common ones.
    #[derive(Debug, clap::Args)]
    struct Flags {
        #[arg(long, default_value_t = 1)]
        count: u32,
        #[command(flatten)]
        common: CommonArgs,
    }

    #[test]
    fn common_flags_parse_and_config_takes_no_other() {
        let a = parse_args::<Flags>(["d"]).unwrap().common;
        assert_eq!(a, CommonArgs::default());
        let a = parse_args::<Flags>(["d", "--seed", "7", "--truth", "t.jsonl", "--duration", "1m30s"]).unwrap().common;
        assert_eq!((a.seed(), a.duration_us()), (7, Some(90_000_000)));
        assert_eq!(a.outputs(), Outputs { truth: Some("t.jsonl".into()), stats: None });
        assert!(parse_args::<Flags>(["d", "--duration", "0s"]).is_err());
        assert!(parse_args::<Flags>(["d", "--config", "c.json"]).is_ok());
        for other in [["--count", "2"], ["--seed", "1"]] {
            assert!(parse_args::<Flags>(["d", "--config", "c.json", other[0], other[1]]).is_err(), "{other:?}");
        }
    }

    #[test]
    fn configs_load_or_say_what_is_wrong() {
        let path = std::env::temp_dir().join(format!("soplab-flags-config-{}.json", std::process::id()));
        let o = Outputs { truth: Some("t.jsonl".into()), stats: None };
        save_config(&o, &path).unwrap();
        assert_eq!(load_config::<Outputs>(&path, "test").unwrap(), o);
        std::fs::write(&path, r#"{"truht": "t.jsonl"}"#).unwrap();
        let e = load_config::<Outputs>(&path, "test").unwrap_err().to_string();
        assert!(e.contains("not a valid test configuration") && e.contains("truht"), "{e}");
        std::fs::remove_file(&path).ok();
        let e = load_config::<Outputs>(&path, "test").unwrap_err().to_string();
        assert!(e.starts_with("cannot read the configuration") && e.contains("check --config"), "{e}");
    }

    #[test]
    fn rates_read_back() {
        for bps in [500_000, 1_000_000, 2_000_000_000, 1_500_000, 800, 1] {
            assert_eq!(parse_rate(&rate_text(bps)).unwrap(), bps);
        }
        assert_eq!(rate_text(500_000), "500k");
    }
}
