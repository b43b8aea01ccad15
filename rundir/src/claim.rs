//! The directories soplab writes runs and analyses into, and what it may clear there.
//!
//! A run (or an analysis) claims its output directory before it writes anything there: it
//! takes the directory's lock ([`LOCK`]) for its whole life, so that a second run cannot clear a
//! live one; it writes the marker [`MARKER`] first, so that a later run knows the directory is
//! soplab's; and it clears only the files soplab writes, by name, leaving everything else where
//! it is. A directory that is not empty and has no marker is refused: soplab cannot tell its
//! files from the user's there.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::lock::{self, Lock, Taken};
use crate::stem::{host_stem, parse_host_stem};

/// The marker file: JSON, a [`Marker`].
pub const MARKER: &str = ".soplab-run";
/// The lock file: flock, the holder's pid inside.
pub const LOCK: &str = ".soplab-run.lock";
/// The marker's format version.
pub const MARKER_VERSION: u32 = 1;

/// The files at the top of a run directory.
pub const RUN_FILES: [&str; 5] = ["scenario.toml", "run.json", "summary.json", "workload.csv", "validation.json"];
/// The CSV tables of an analysis (`<name>.csv`).
const ANALYSIS_TABLES: [&str; 22] = [
    "classification",
    "activation_gaps",
    "neighbor_snapshot_outdegree",
    "neighbor_snapshot_series",
    "neighbor_accumulated_outdegree",
    "neighbor_mean_outdegree",
    "video_degree",
    "peers",
    "source_children",
    "inputs",
    "paper_comparison",
    "clients_inter_arrival_s",
    "clients_on_percent",
    "clients_off_percent",
    "clients_partners",
    "clients_partnership_fraction",
    "clients_inter_activity_s",
    "clients_sessions_per_client",
    "clients_coverage",
    "clients_overlap",
    "clients_paper_comparison",
    "clients_fits",
];
/// The figures of an analysis (`<name>.png` and `<name>.svg`).
const ANALYSIS_FIGURES: [&str; 15] = [
    "fig2_activation",
    "fig3_neighbor_accumulated",
    "fig4_neighbor_mean_outdegree",
    "neighbor_snapshot_outdegree",
    "fig5_video_indegree",
    "fig6_video_outdegree",
    "fig7_throughput",
    "source_children",
    "clients_inter_activity",
    "clients_inter_arrival_s",
    "clients_sessions_per_client",
    "clients_on_percent",
    "clients_off_percent",
    "clients_partners",
    "clients_partnership_fraction",
];

/// What the marker says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    pub version: u32,
    /// When the directory was last claimed: UTC, RFC 3339 (`2025-06-01T12:00:00Z`).
    pub created: String,
    /// The command that claimed it: `soplab swarm`, `soplab demo`, `soplab analyze`.
    pub command: String,
}

/// What a claimed directory is for, which says what soplab writes (and may clear) there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// A run directory: scenario.toml, run.json, summary.json, workload.csv, validation.json,
    /// the daemons' files in truth/, played/, logs/ and pcap/, and an analysis in analysis/.
    Run,
    /// An analysis (`soplab analyze --out`): report.json, the CSV tables and the figures.
    Analysis,
}

/// A claimed directory, locked until dropped.
#[derive(Debug)]
pub struct Claimed {
    pub dir: PathBuf,
    /// How many files of an earlier soplab run were removed.
    pub cleared: usize,
    /// What was left because soplab did not write it, relative to `dir`; directories end in `/`.
    pub kept: Vec<String>,
    _lock: Lock,
}

impl Claimed {
    /// What was left because soplab did not write it, as a sentence naming at most ten entries;
    /// `None` when nothing was.
    pub fn kept_note(&self) -> Option<String> {
        (!self.kept.is_empty()).then(|| {
            format!(
                "kept {} entries in {} that soplab did not write: {}",
                self.kept.len(),
                self.dir.display(),
                shortened(self.kept.clone(), 10).join(", ")
            )
        })
    }
}

/// Why a directory cannot be claimed; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error(
        "{} is in use by another soplab run{}: wait for it to end, or choose another --out",
        dir.display(),
        holder.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    Busy { dir: PathBuf, holder: Option<u32> },
    #[error(
        "{} holds files soplab did not write ({}): choose another --out, or move them away or remove the \
         directory yourself (soplab clears only directories it marked with {MARKER})",
        dir.display(),
        entries.join(", ")
    )]
    NotOurs { dir: PathBuf, entries: Vec<String> },
    #[error("cannot {what} {}: {cause}; check --out and its permissions", path.display())]
    Io { what: &'static str, path: PathBuf, cause: io::Error },
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ClaimError {
    let path = path.to_path_buf();
    move |cause| ClaimError::Io { what, path, cause }
}

/// Claims `dir` (created if missing) for `command`: locks it, refuses it if it holds anything
/// but soplab has not marked it, marks it, and clears what an earlier soplab run or analysis
/// wrote there. The lock is held until the returned [`Claimed`] is dropped.
///
/// # Errors
/// [`ClaimError::Busy`] while another process holds the directory, [`ClaimError::NotOurs`] for
/// an unmarked directory that is not empty, [`ClaimError::Io`] when it cannot be read or written.
pub fn claim(dir: &Path, layout: Layout, command: &str) -> Result<Claimed, ClaimError> {
    std::fs::create_dir_all(dir).map_err(io_err("create", dir))?;
    let lock_path = dir.join(LOCK);
    let had_lock_file = lock_path.exists();
    let lock = match lock::try_take(&lock_path).map_err(io_err("lock", &lock_path))? {
        Taken::Got(lock) => lock,
        Taken::Held { holder } => return Err(ClaimError::Busy { dir: dir.into(), holder }),
    };
    if read_marker(dir).is_none() {
        let entries = listing(dir)?;
        if !entries.is_empty() {
            if !had_lock_file {
                let _ = std::fs::remove_file(&lock_path);
            }
            return Err(ClaimError::NotOurs { dir: dir.into(), entries: shortened(entries, 5) });
        }
    }
    let marker = Marker { version: MARKER_VERSION, created: utc_now(), command: command.into() };
    let path = dir.join(MARKER);
    let text = serde_json::to_string_pretty(&marker).expect("a marker serialises");
    std::fs::write(&path, text + "\n").map_err(io_err("write", &path))?;
    let mut sweep = Sweep::default();
    let top = match layout {
        Layout::Run => Kind::Run,
        Layout::Analysis => Kind::Analysis,
    };
    sweep.clear(dir, top, "")?;
    Ok(Claimed { dir: dir.into(), cleared: sweep.cleared, kept: sweep.kept, _lock: lock })
}

/// The marker of `dir`, if it has one soplab can read.
pub fn read_marker(dir: &Path) -> Option<Marker> {
    serde_json::from_slice(&std::fs::read(dir.join(MARKER)).ok()?).ok()
}

/// The entries of `dir` but the lock file, sorted; directories end in `/`.
fn listing(dir: &Path) -> Result<Vec<String>, ClaimError> {
    let read = std::fs::read_dir(dir).map_err(io_err("read", dir))?;
    let mut v: Vec<String> = read
        .flatten()
        .filter(|e| e.file_name() != LOCK)
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.path().is_dir() { name + "/" } else { name }
        })
        .collect();
    v.sort();
    Ok(v)
}

/// At most `n` names, then how many more.
fn shortened(mut entries: Vec<String>, n: usize) -> Vec<String> {
    if entries.len() > n {
        let more = entries.len() - n;
        entries.truncate(n);
        entries.push(format!("and {more} more"));
    }
    entries
}

/// The kinds of directories soplab writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Run,
    Analysis,
    Truth,
    Played,
    Pcap,
    Logs,
}

/// What an entry of a directory is to soplab.
enum Entry {
    /// A file soplab writes: cleared.
    File,
    /// A directory soplab writes: cleared of what soplab writes there.
    Dir(Kind),
    /// A nested analysis's lock: removed after the folder is cleared.
    Lock,
}

impl Kind {
    /// What `name` in a directory of this kind is, if soplab writes it.
    fn holds(self, name: &str) -> Option<Entry> {
        let file = |ours: bool| ours.then_some(Entry::File);
        match self {
            Kind::Run => match name {
                "truth" => Some(Entry::Dir(Kind::Truth)),
                "played" => Some(Entry::Dir(Kind::Played)),
                "pcap" => Some(Entry::Dir(Kind::Pcap)),
                "logs" => Some(Entry::Dir(Kind::Logs)),
                "analysis" => Some(Entry::Dir(Kind::Analysis)),
                _ => file(RUN_FILES.contains(&name)),
            },
            Kind::Analysis => match name {
                MARKER => Some(Entry::File),
                LOCK => Some(Entry::Lock),
                _ => file(is_analysis_file(name)),
            },
            Kind::Truth => file(name == "tracker.jsonl" || name == "source.jsonl" || is_host_file(name, ".jsonl")),
            Kind::Played => file(is_host_file(name, ".ts")),
            Kind::Pcap => file(name == "bridge.pcap" || is_host_file(name, ".pcap")),
            Kind::Logs => file(is_log(name)),
        }
    }
}

/// `peer-<ip>-<port><ext>`, exactly as [`host_stem`] names it.
fn is_host_file(name: &str, ext: &str) -> bool {
    name.strip_suffix(ext).is_some_and(|stem| parse_host_stem(stem).is_some_and(|a| host_stem(a) == stem))
}

fn is_analysis_file(name: &str) -> bool {
    let named = |ext: &str, names: &[&str]| name.strip_suffix(ext).is_some_and(|s| names.contains(&s));
    name == "report.json"
        || named(".csv", &ANALYSIS_TABLES)
        || named(".png", &ANALYSIS_FIGURES)
        || named(".svg", &ANALYSIS_FIGURES)
}

/// A daemon's log, configuration or stats (`tracker`, `source`, `peers-<k>`), or a tcpdump's log.
fn is_log(name: &str) -> bool {
    if let Some(host) = name.strip_prefix("tcpdump-").and_then(|r| r.strip_suffix(".log")) {
        return host == "bridge" || is_host_file(host, "");
    }
    let daemon = [".log", ".config.json", ".stats.json"].iter().find_map(|ext| name.strip_suffix(ext));
    daemon.is_some_and(|d| {
        let peers = d.strip_prefix("peers-").is_some_and(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()));
        d == "tracker" || d == "source" || peers
    })
}

/// What clearing a claimed directory did.
#[derive(Default)]
struct Sweep {
    cleared: usize,
    kept: Vec<String>,
}

impl Sweep {
    /// Removes what soplab writes in `dir`, a directory of `kind` shown as `rel`, and notes the rest.
    fn clear(&mut self, dir: &Path, kind: Kind, rel: &str) -> Result<(), ClaimError> {
        let read = std::fs::read_dir(dir).map_err(io_err("read", dir))?;
        let mut entries: Vec<_> = read.flatten().collect();
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for e in entries {
            let (path, name) = (e.path(), e.file_name());
            let Some(name) = name.to_str() else {
                self.kept.push(format!("{rel}{}", name.to_string_lossy()));
                continue;
            };
            if rel.is_empty() && (name == MARKER || name == LOCK) {
                continue;
            }
            match (kind.holds(name), path.is_dir()) {
                (Some(Entry::File), false) => {
                    std::fs::remove_file(&path).map_err(io_err("remove", &path))?;
                    self.cleared += 1;
                }
                (Some(Entry::Dir(sub)), true) => self.clear_folder(&path, sub, &format!("{rel}{name}/"))?,
                (Some(Entry::Lock), false) => {}
                (_, is_dir) => self.kept.push(format!("{rel}{name}{}", if is_dir { "/" } else { "" })),
            }
        }
        Ok(())
    }

    /// Clears a folder of a run directory, then removes it if nothing is left. A nested analysis
    /// is locked while it is cleared: an analysis writing there is live.
    fn clear_folder(&mut self, dir: &Path, kind: Kind, rel: &str) -> Result<(), ClaimError> {
        let lock_path = dir.join(LOCK);
        let lock = match kind {
            Kind::Analysis if lock_path.exists() => {
                match lock::try_take(&lock_path).map_err(io_err("lock", &lock_path))? {
                    Taken::Got(lock) => Some(lock),
                    Taken::Held { holder } => return Err(ClaimError::Busy { dir: dir.into(), holder }),
                }
            }
            _ => None,
        };
        self.clear(dir, kind, rel)?;
        if lock.is_some() {
            let _ = std::fs::remove_file(&lock_path);
        }
        // Fails, as it should, when something is left.
        let _ = std::fs::remove_dir(dir);
        Ok(())
    }
}

/// Now, UTC, RFC 3339 to the second.
fn utc_now() -> String {
    utc(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
}

/// `secs` after the Unix epoch, UTC, RFC 3339 to the second (the proleptic Gregorian calendar,
/// from the count of days as in Howard Hinnant's `civil_from_days`).
fn utc(secs: u64) -> String {
    let (days, rem) = ((secs / 86_400) as i64 + 719_468, secs % 86_400);
    let (era, doe) = (days.div_euclid(146_097), days.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory for one test.
    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("soplab-claim-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn put(dir: &Path, rel: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, rel).unwrap();
    }

    #[test]
    fn times_are_utc_rfc3339() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(utc(4_107_542_399), "2100-02-28T23:59:59Z");
    }

    #[test]
    fn names_soplab_writes() {
        for (kind, name) in [
            (Kind::Truth, "peer-198.18.1.1-3908.jsonl"),
            (Kind::Truth, "tracker.jsonl"),
            (Kind::Played, "peer-127.100.1.9-3908.ts"),
            (Kind::Pcap, "bridge.pcap"),
            (Kind::Logs, "peers-12.stats.json"),
            (Kind::Logs, "tcpdump-peer-198.18.1.1-3908.log"),
            (Kind::Analysis, "fig7_throughput.svg"),
            (Kind::Analysis, "paper_comparison.csv"),
            (Kind::Run, "validation.json"),
        ] {
            assert!(matches!(kind.holds(name), Some(Entry::File)), "{kind:?} {name}");
        }
        for (kind, name) in [
            (Kind::Pcap, "capture-from-field.pcap"),
            (Kind::Pcap, "peer-198.18.1.1-3908.pcap.bak"),
            (Kind::Logs, "thesis.tex"),
            (Kind::Logs, "peers-.log"),
            (Kind::Logs, "tcpdump-eth0.log"),
            (Kind::Analysis, "notes.csv"),
            (Kind::Run, "notes.txt"),
        ] {
            assert!(kind.holds(name).is_none(), "{kind:?} {name}");
        }
    }

    #[test]
    fn an_unmarked_directory_with_files_is_refused_untouched() {
        let d = scratch("refused");
        put(&d, "pcap/capture-from-field.pcap");
        put(&d, "logs/thesis.tex");
        let err = claim(&d, Layout::Run, "soplab swarm").unwrap_err();
        assert!(matches!(&err, ClaimError::NotOurs { entries, .. } if entries == &["logs/", "pcap/"]), "{err}");
        assert!(err.to_string().contains("choose another --out"), "{err}");
        let mut left: Vec<_> = std::fs::read_dir(&d).unwrap().flatten().map(|e| e.file_name()).collect();
        left.sort();
        assert_eq!(left, ["logs", "pcap"], "no marker, no lock file left behind");
        assert!(d.join("pcap/capture-from-field.pcap").is_file() && d.join("logs/thesis.tex").is_file());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_marked_directory_is_cleared_of_soplabs_files_only_and_locked() {
        let d = scratch("rerun");
        let first = claim(&d, Layout::Run, "soplab swarm").unwrap();
        assert_eq!((first.cleared, first.kept.len()), (0, 0));
        assert_eq!(read_marker(&d).unwrap().command, "soplab swarm");
        match claim(&d, Layout::Run, "soplab demo") {
            Err(ClaimError::Busy { holder, .. }) => assert_eq!(holder, Some(std::process::id())),
            other => panic!("claimed twice: {other:?}"),
        }
        drop(first);
        let ours = ["run.json", "truth/tracker.jsonl", "pcap/bridge.pcap", "logs/peers-0.log", "analysis/report.json"];
        let theirs = ["notes.txt", "pcap/capture-from-field.pcap", "logs/thesis.tex", "analysis/mine.png"];
        for f in ours.iter().chain(&theirs) {
            put(&d, f);
        }
        std::fs::create_dir_all(d.join("own")).unwrap();
        let again = claim(&d, Layout::Run, "soplab demo").unwrap();
        assert_eq!(again.cleared, ours.len());
        assert_eq!(
            again.kept,
            ["analysis/mine.png", "logs/thesis.tex", "notes.txt", "own/", "pcap/capture-from-field.pcap"]
        );
        assert!(again.kept_note().unwrap().starts_with("kept 5 entries in "), "{:?}", again.kept_note());
        assert!(ours.iter().all(|f| !d.join(f).exists()) && theirs.iter().all(|f| d.join(f).is_file()));
        assert!(!d.join("truth").exists(), "emptied folders are removed");
        assert_eq!(read_marker(&d).unwrap().command, "soplab demo");
        drop(again);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_new_or_empty_directory_is_claimed() {
        let d = scratch("new");
        let sub = d.join("a/b");
        let c = claim(&sub, Layout::Analysis, "soplab analyze").unwrap();
        assert!(sub.join(MARKER).is_file() && sub.join(LOCK).is_file());
        let m = read_marker(&sub).unwrap();
        assert_eq!((m.version, m.command.as_str()), (1, "soplab analyze"));
        drop(c);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
