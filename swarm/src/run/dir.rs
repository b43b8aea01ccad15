//! The run directory: this run's alone, so it is cleared of what an earlier run or its analysis
//! left before the run writes into it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;
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

/// Files at the top that belong to one run (or its analysis): stale ones would mix into the
/// analysis of the next.
const RUN_FILES: [&str; 4] = ["run.json", "summary.json", "workload.csv", "validation.json"];

impl RunDir {
    /// Empties (or creates) truth/, played/, logs/ and pcap/ under `cfg.out`, removes an earlier
    /// run's files and analysis, and writes the effective scenario.toml.
    pub fn prepare(cfg: &SwarmConfig) -> Result<RunDir> {
        let out = cfg.out.clone();
        let dir = RunDir {
            truth: out.join("truth"),
            played: out.join("played"),
            logs: out.join("logs"),
            pcap: out.join("pcap"),
            out,
        };
        for d in [&dir.truth, &dir.played, &dir.logs, &dir.pcap] {
            if d.exists() {
                std::fs::remove_dir_all(d).with_context(|| format!("cannot clear {}", d.display()))?;
            }
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}: check --out", d.display()))?;
        }
        for f in RUN_FILES {
            let _ = std::fs::remove_file(dir.out.join(f));
        }
        let _ = std::fs::remove_dir_all(dir.out.join("analysis"));
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
