//! Files tests write and read: scratch directories, netns run directories, JSON files and
//! ground-truth files (parsed with [`soplab_rundir::truth::Line`], the format's one owner).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use std::collections::BTreeMap;

use soplab_rundir::schedule::Schedule;
use soplab_rundir::truth::Line;

/// A fresh directory under the system temp dir, removed when dropped, except when the test is
/// failing (it stays for a look, and says where, unless made with [`TempDir::removed_even_on_failure`])
/// or `SOPLAB_KEEP_RUNS` is set.
pub struct TempDir(PathBuf, Keep);

/// Whether a failing test keeps its directory.
#[derive(Clone, Copy, PartialEq)]
enum Keep {
    OnFailure,
    Never,
}

impl TempDir {
    /// `soplab-<name>-<pid>-<n>`: unique to this process and this call.
    pub fn new(name: &str) -> TempDir {
        TempDir(fresh(name), Keep::OnFailure)
    }

    /// Like [`TempDir::new`], but removed even when the test fails (unless `SOPLAB_KEEP_RUNS` is
    /// set): for runs whose captures take gigabytes, which must not pile up on a CI machine. The
    /// test's failure messages must then say all there is to see.
    pub fn removed_even_on_failure(name: &str) -> TempDir {
        TempDir(fresh(name), Keep::Never)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `name` inside the directory.
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.0.join(name)
    }

    /// Writes `contents` to `name` inside the directory (creating its parents) and returns its path.
    pub fn file(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.0.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
        }
        std::fs::write(&p, contents).unwrap_or_else(|e| panic!("cannot write {}: {e}", p.display()));
        p
    }
}

/// `soplab-<name>-<pid>-<n>` under the temp dir, created empty: unique to this process and call.
fn fresh(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("soplab-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("SOPLAB_KEEP_RUNS").is_some() {
            eprintln!("kept {} (SOPLAB_KEEP_RUNS is set)", self.0.display());
        } else if std::thread::panicking() && self.1 == Keep::OnFailure {
            eprintln!("kept {} for a look at the failure", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A fresh directory for one netns test's run, `target/netns-tests/<name>`.
pub fn run_dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/netns-tests").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create the run directory");
    d
}

/// Removes a passing test's run directory (hundreds of MB of streams and captures); a failing
/// test never gets here, so its directory stays for a look (set SOPLAB_KEEP_RUNS=1 to keep all).
pub fn remove_run_dir(dir: &Path) {
    if std::env::var_os("SOPLAB_KEEP_RUNS").is_none() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A JSON file (run.json, summary.json, a daemon's stats, ...); fails the test, naming the file,
/// if it cannot be read or parsed.
pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every line of a ground-truth file, each a documented event with a time and a node; fails
/// the test if the file is missing, empty or holds anything else.
pub fn truth_lines(path: &Path) -> Vec<Line> {
    let lines = parse_truth(path);
    assert!(!lines.is_empty(), "{} is empty", path.display());
    lines
}

/// Every event in a run directory's truth files (`<run>/truth/*.jsonl`), with its file's stem.
/// (A file may be empty: a churned peer that never ran.)
pub fn truth_events(run: &Path) -> Vec<(String, Line)> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(run.join("truth")).expect("truth dir").flatten() {
        let stem = e.path().file_stem().unwrap().to_string_lossy().to_string();
        v.extend(parse_truth(&e.path()).into_iter().map(|l| (stem.clone(), l)));
    }
    v
}

/// What a churned run's peers play of its `workload.csv`: per client, each session that starts
/// before `duration_s` and lasts at all, as (start, end) in seconds from the run's time zero,
/// cut at `duration_s` (when the run stops everyone).
pub fn played_sessions(run: &Path, duration_s: f64) -> BTreeMap<u32, Vec<(f64, f64)>> {
    let file = run.join("workload.csv");
    let schedule = Schedule::read_csv(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let mut played: BTreeMap<u32, Vec<(f64, f64)>> = BTreeMap::new();
    for s in schedule.sessions.iter().filter(|s| s.start < duration_s && s.end > s.start) {
        played.entry(s.client).or_default().push((s.start, s.end.min(duration_s)));
    }
    played
}

fn parse_truth(path: &Path) -> Vec<Line> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let lines: Vec<Line> = text
        .lines()
        .map(|l| Line::parse(l).unwrap_or_else(|e| panic!("{}: bad line {l}: {e}", path.display())))
        .collect();
    for l in &lines {
        assert!(l.ts_us >= 0, "{}: a time before 1970: {l:?}", path.display());
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_dirs_are_fresh_apart_and_removed() {
        let (a, b) = (TempDir::new("testkit"), TempDir::new("testkit"));
        assert_ne!(a.path(), b.path());
        let f = a.file("sub/x.txt", "hi");
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "hi");
        let p = a.path().to_path_buf();
        drop(a);
        assert_eq!(p.exists(), std::env::var_os("SOPLAB_KEEP_RUNS").is_some());
    }

    /// The directory's path after a test holding it failed.
    fn left_by_a_failing_test(dir: TempDir) -> PathBuf {
        let p = dir.path().to_path_buf();
        let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _held = dir;
            panic!("a failing test (expected)");
        }));
        assert!(failed.is_err());
        p
    }

    #[test]
    fn a_failing_test_keeps_its_temp_dir_unless_made_to_remove_it() {
        let kept = left_by_a_failing_test(TempDir::new("testkit-kept"));
        assert!(kept.is_dir());
        std::fs::remove_dir_all(&kept).unwrap();
        let gone = left_by_a_failing_test(TempDir::removed_even_on_failure("testkit-gone"));
        assert_eq!(gone.exists(), std::env::var_os("SOPLAB_KEEP_RUNS").is_some());
    }

    #[test]
    fn truth_lines_parse_with_the_format_owner() {
        let d = TempDir::new("testkit-truth");
        let f = d
            .file("t.jsonl", "{\"ts_us\":5,\"node\":\"127.0.0.1:3900\",\"event\":\"session_end\",\"graceful\":true}\n");
        let lines = truth_lines(&f);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].event, soplab_rundir::truth::Event::SessionEnd { graceful: true });
        let empty = d.file("empty.jsonl", "");
        assert!(std::panic::catch_unwind(|| truth_lines(&empty)).is_err());
    }
}
