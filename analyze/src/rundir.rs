//! A run directory as `soplab swarm` writes it: `pcap/*.pcap` (or `*.pcapng`), `truth/*.jsonl`
//! and, from netns runs, `run.json` naming the hosts and which capture was taken where.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// `run.json` (only the fields the analyzer uses; others are ignored).
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct RunJson {
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub started_us: Option<i64>,
    #[serde(default)]
    pub ended_us: Option<i64>,
    #[serde(default)]
    pub hosts: Vec<Host>,
    #[serde(default)]
    pub pcaps: Vec<PcapEntry>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Host {
    pub name: String,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub vantage: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct PcapEntry {
    pub file: String,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub address: Option<String>,
}

/// One capture of a run and where it was taken.
#[derive(Debug, Clone, Serialize)]
pub struct Capture {
    pub path: PathBuf,
    /// The host it was taken at ("bridge", "lo", a peer's name), if known.
    pub host: Option<String>,
    /// The vantage peer's address when the capture is at one peer; `None` for a capture that
    /// sees the whole network (bridge, loopback).
    pub address: Option<SocketAddr>,
}

/// What was found in a run directory.
#[derive(Debug, Clone, Serialize)]
pub struct RunDir {
    pub root: PathBuf,
    pub captures: Vec<Capture>,
    pub run: Option<RunJson>,
    pub tracker: Option<SocketAddr>,
    pub source: Option<SocketAddr>,
    /// Where the tracker and source names come from: "run.json", "truth" or "none".
    pub named_by: &'static str,
    pub has_truth: bool,
}

fn parse_addr(s: &Option<String>) -> Option<SocketAddr> {
    s.as_deref().and_then(|s| s.parse().ok())
}

/// The address in a capture file name `peer-<ip>-<port>.pcap`.
fn address_from_name(name: &str) -> Option<SocketAddr> {
    let stem = name.strip_suffix(".pcapng").or_else(|| name.strip_suffix(".pcap"))?;
    let rest = stem.strip_prefix("peer-")?;
    let (ip, port) = rest.rsplit_once('-')?;
    format!("{ip}:{port}").parse().ok()
}

/// The `node` of the first line of a truth file.
fn truth_node(path: &Path) -> Option<SocketAddr> {
    use std::io::BufRead;
    let f = std::fs::File::open(path).ok()?;
    let mut line = String::new();
    std::io::BufReader::new(f).read_line(&mut line).ok()?;
    let v: serde_json::Value = serde_json::from_str(&line).ok()?;
    v.get("node")?.as_str()?.parse().ok()
}

impl RunDir {
    /// True when `path` looks like a run directory (has `pcap/`, `truth/` or `run.json`).
    pub fn is_run_dir(path: &Path) -> bool {
        path.is_dir() && (path.join("pcap").is_dir() || path.join("truth").is_dir() || path.join("run.json").is_file())
    }

    /// Reads a run directory. Captures come from `run.json` when it lists them, otherwise from
    /// `pcap/*.pcap` and `pcap/*.pcapng`.
    pub fn open(root: &Path) -> Result<RunDir> {
        let run_path = root.join("run.json");
        let run: Option<RunJson> = if run_path.is_file() {
            let text =
                std::fs::read_to_string(&run_path).map_err(|e| Error::Read { path: run_path.clone(), cause: e })?;
            Some(serde_json::from_str(&text).map_err(|e| Error::Truth {
                path: run_path.clone(),
                line: e.line(),
                why: e.to_string(),
            })?)
        } else {
            None
        };
        let mut captures = Vec::new();
        if let Some(r) = run.as_ref().filter(|r| !r.pcaps.is_empty()) {
            for p in &r.pcaps {
                let path = root.join(&p.file);
                if path.is_file() {
                    captures.push(Capture { path, host: p.host.clone(), address: parse_addr(&p.address) });
                } else {
                    tracing::warn!(file = %path.display(), "run.json lists a capture that does not exist; skipped");
                }
            }
        } else {
            let dir = root.join("pcap");
            if let Ok(rd) = std::fs::read_dir(&dir) {
                let mut names: Vec<PathBuf> = rd
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
                    .collect();
                names.sort();
                for path in names {
                    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                    let host = name.rsplit_once('.').map(|(s, _)| s.to_string());
                    captures.push(Capture { address: address_from_name(&name), host, path });
                }
            }
        }
        let truth = root.join("truth");
        let has_truth = truth.is_dir();
        let (mut tracker, mut source, mut named_by) = (None, None, "none");
        if let Some(r) = &run {
            for h in &r.hosts {
                match h.role.as_deref() {
                    Some("tracker") => tracker = parse_addr(&h.address),
                    Some("source") => source = parse_addr(&h.address),
                    _ => {}
                }
            }
            if tracker.is_some() || source.is_some() {
                named_by = "run.json";
            }
        }
        if named_by == "none" && has_truth {
            tracker = truth_node(&truth.join("tracker.jsonl"));
            source = truth_node(&truth.join("source.jsonl"));
            if tracker.is_some() || source.is_some() {
                named_by = "truth";
            }
        }
        Ok(RunDir { root: root.to_path_buf(), captures, run, tracker, source, named_by, has_truth })
    }

    /// The capture paths, or an error saying how to get some.
    pub fn capture_paths(&self) -> Result<Vec<PathBuf>> {
        if self.captures.is_empty() {
            return Err(Error::NoCaptures {
                path: self.root.clone(),
                hint: "expected pcap/*.pcap or pcap/*.pcapng (netns runs write them; for a loopback run, capture \
                       alongside it: tcpdump -i lo -w RUN_DIR/pcap/lo.pcap -U udp)"
                    .into(),
            });
        }
        Ok(self.captures.iter().map(|c| c.path.clone()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vantage_address_from_file_name() {
        assert_eq!(address_from_name("peer-198.18.1.1-3908.pcap"), Some("198.18.1.1:3908".parse().unwrap()));
        assert_eq!(address_from_name("bridge.pcap"), None);
        assert_eq!(address_from_name("peer-x.pcapng"), None);
    }
}
