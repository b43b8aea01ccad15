//! A run directory as `soplab swarm` writes it: `pcap/*.pcap` (or `*.pcapng`), `truth/*.jsonl`
//! and `run.json` naming the hosts and which capture was taken where. The formats belong to
//! `soplab-rundir`; this module only finds the analyzer's inputs in them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Serialize;
use soplab_rundir::run::RunInfo;
use soplab_rundir::stem::parse_host_stem;
use soplab_rundir::truth::{Line, Role};

use crate::error::{Error, Result};

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
    pub run: Option<RunInfo>,
    pub tracker: Option<SocketAddr>,
    pub source: Option<SocketAddr>,
    /// Where the tracker and source names come from: "run.json", "truth" or "none".
    pub named_by: &'static str,
    pub has_truth: bool,
}

impl RunDir {
    /// True when `path` looks like a run directory (has `pcap/`, `truth/` or `run.json`).
    pub fn is_run_dir(path: &Path) -> bool {
        path.is_dir() && (path.join("pcap").is_dir() || path.join("truth").is_dir() || path.join("run.json").is_file())
    }

    /// Reads a run directory. Captures come from `run.json` when it lists them, otherwise from
    /// `pcap/*.pcap` and `pcap/*.pcapng`.
    pub fn open(root: &Path) -> Result<RunDir> {
        let run = read_run_json(&root.join("run.json"))?;
        let captures = match run.as_ref().filter(|r| !r.pcaps.is_empty()) {
            Some(r) => listed_captures(root, r),
            None => pcap_dir_captures(&root.join("pcap")),
        };
        let truth = root.join("truth");
        let has_truth = truth.is_dir();
        let (mut tracker, mut source, mut named_by) = run.as_ref().map_or((None, None, "none"), named_by_run);
        if named_by == "none" && has_truth {
            tracker = first_node(&truth.join("tracker.jsonl"));
            source = first_node(&truth.join("source.jsonl"));
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

    /// When the run started and ended (µs since the Unix epoch) as run.json tells, each `None`
    /// when not recorded (no run.json, or a zero from a file without the field).
    pub fn span_us(&self) -> (Option<i64>, Option<i64>) {
        let known = |t: u64| i64::try_from(t).ok().filter(|&t| t > 0);
        match &self.run {
            Some(r) => (known(r.started_us), known(r.ended_us)),
            None => (None, None),
        }
    }
}

/// `run.json`, if the directory has one.
fn read_run_json(path: &Path) -> Result<Option<RunInfo>> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::Read { path: path.into(), cause: e })?;
    let run = serde_json::from_str(&text).map_err(|e| Error::Truth {
        path: path.into(),
        line: e.line(),
        why: e.to_string(),
    })?;
    Ok(Some(run))
}

/// The captures run.json lists that exist.
fn listed_captures(root: &Path, run: &RunInfo) -> Vec<Capture> {
    let mut captures = Vec::new();
    for p in &run.pcaps {
        let path = root.join(&p.file);
        if path.is_file() {
            let host = Some(p.host.clone()).filter(|h| !h.is_empty());
            let address = p.address.as_deref().and_then(|a| a.parse().ok());
            captures.push(Capture { path, host, address });
        } else {
            tracing::warn!(file = %path.display(), "run.json lists a capture that does not exist; skipped");
        }
    }
    captures
}

/// `*.pcap` and `*.pcapng` in `dir`, in name order; a `peer-<ip>-<port>` name gives the vantage
/// address.
fn pcap_dir_captures(dir: &Path) -> Vec<Capture> {
    let Ok(rd) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut names: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|path| {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let host = name.rsplit_once('.').map(|(s, _)| s.to_string());
            Capture { address: parse_host_stem(&name), host, path }
        })
        .collect()
}

/// The tracker and the source as run.json's hosts name them, and whether it named either.
fn named_by_run(run: &RunInfo) -> (Option<SocketAddr>, Option<SocketAddr>, &'static str) {
    let (mut tracker, mut source) = (None, None);
    for h in &run.hosts {
        match h.role {
            Role::Tracker => tracker = h.address.parse().ok(),
            Role::Source => source = h.address.parse().ok(),
            Role::Peer => {}
        }
    }
    let named_by = if tracker.is_some() || source.is_some() { "run.json" } else { "none" };
    (tracker, source, named_by)
}

/// The `node` of the first line of a truth file.
fn first_node(path: &Path) -> Option<SocketAddr> {
    use std::io::BufRead;
    let f = std::fs::File::open(path).ok()?;
    let mut line = String::new();
    std::io::BufReader::new(f).read_line(&mut line).ok()?;
    Line::parse(&line).ok().map(|l| l.node)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vantage_address_from_file_name() {
        assert_eq!(parse_host_stem("peer-198.18.1.1-3908.pcap"), Some("198.18.1.1:3908".parse().unwrap()));
        assert_eq!(parse_host_stem("bridge.pcap"), None);
        assert_eq!(parse_host_stem("peer-x.pcapng"), None);
    }

    #[test]
    fn a_hand_written_run_json_names_roles_captures_and_span() {
        let root = std::env::temp_dir().join(format!("soplab-rundir-{}", std::process::id()));
        std::fs::create_dir_all(root.join("pcap")).unwrap();
        std::fs::write(root.join("pcap/at-one.pcap"), b"").unwrap();
        std::fs::write(
            root.join("run.json"),
            r#"{"started_us": 5, "hosts": [{"name": "t", "role": "tracker", "address": "10.0.0.1:3900"},
                {"name": "p"}], "pcaps": [{"file": "pcap/at-one.pcap", "address": "10.0.1.1:3908"},
                {"file": "pcap/gone.pcap"}]}"#,
        )
        .unwrap();
        let run = RunDir::open(&root).unwrap();
        assert_eq!((run.tracker, run.source, run.named_by), (Some("10.0.0.1:3900".parse().unwrap()), None, "run.json"));
        assert_eq!(run.captures.len(), 1);
        assert_eq!(
            (run.captures[0].host.clone(), run.captures[0].address),
            (None, Some("10.0.1.1:3908".parse().unwrap()))
        );
        assert_eq!(run.span_us(), (Some(5), None));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
