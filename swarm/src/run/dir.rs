//! The run directory: claimed before anything is written there (locked for the run's life,
//! marked as soplab's, cleared of what an earlier soplab run wrote and of nothing else; see
//! [`soplab_rundir::claim`]), then given its folders and scenario.toml.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;
use soplab_rundir::claim::{self, Claimed, Layout};
use soplab_rundir::stem::host_stem;

use crate::scenario::SwarmConfig;

/// The folders of a run directory.
pub(super) struct RunDir {
    pub out: PathBuf,
    pub truth: PathBuf,
    pub played: PathBuf,
    pub logs: PathBuf,
    pub pcap: PathBuf,
}

/// Claims `out` as the run directory of `command` (`soplab swarm`, `soplab demo`) and says
/// what it left there because soplab did not write it. The run directory is the caller's until
/// the returned claim is dropped.
///
/// # Errors
/// When another run holds `out`, when `out` holds files soplab did not write and has no
/// marker, or when it cannot be written; each message says what to do.
pub fn claim_out(out: &Path, command: &str) -> Result<Claimed> {
    let claimed = claim::claim(out, Layout::Run, command)?;
    if let Some(note) = claimed.kept_note() {
        eprintln!("soplab: {note}");
    }
    Ok(claimed)
}

impl RunDir {
    /// Creates truth/, played/, logs/ and pcap/ in the claimed directory `out` and writes the
    /// effective scenario.toml there.
    pub fn prepare(cfg: &SwarmConfig, out: &Claimed) -> Result<RunDir> {
        let out = out.dir.clone();
        let dir = RunDir {
            truth: out.join("truth"),
            played: out.join("played"),
            logs: out.join("logs"),
            pcap: out.join("pcap"),
            out,
        };
        for d in [&dir.truth, &dir.played, &dir.logs, &dir.pcap] {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}: check --out", d.display()))?;
        }
        let scenario = dir.out.join("scenario.toml");
        std::fs::write(&scenario, toml::to_string(&cfg.to_scenario())?)
            .with_context(|| format!("cannot write {}", scenario.display()))?;
        Ok(dir)
    }

    /// Writes `value` as pretty JSON to `name` at the top of the run directory.
    pub fn write_json(&self, name: &str, value: &impl Serialize) -> Result<()> {
        let path = self.out.join(name);
        std::fs::write(&path, serde_json::to_vec_pretty(value)?)
            .with_context(|| format!("cannot write {}: check that --out is writable", path.display()))
    }

    /// A peer's ground-truth file.
    pub fn truth_of(&self, peer: SocketAddr) -> PathBuf {
        self.truth.join(format!("{}.jsonl", host_stem(peer)))
    }

    /// A peer's played stream.
    pub fn played_of(&self, peer: SocketAddr) -> PathBuf {
        self.played.join(format!("{}.ts", host_stem(peer)))
    }

    /// A host's pcap, relative to the run directory as run.json names it.
    pub fn pcap_of(host: &str) -> String {
        format!("pcap/{host}.pcap")
    }

    /// `rel` (as run.json names files) under the run directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.out.join(Path::new(rel))
    }
}
