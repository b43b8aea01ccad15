//! Issue 11, "Never lose a user's data": the directories soplab writes runs and analyses into.
//!
//! - `a_directory_with_someone_elses_files_is_refused_and_left_as_it_was`: `soplab swarm`
//!   (loopback and virtual), `soplab demo` and `soplab analyze` on a directory holding a user's
//!   `pcap/capture-from-field.pcap` and `logs/thesis.tex` refuse it, say how to proceed, and
//!   leave every file as it was (no marker, no lock file).
//! - `a_rerun_replaces_what_soplab_wrote_and_keeps_the_rest`: a second run on a soplab run
//!   directory clears the earlier run's files and its analysis, keeps the files soplab did not
//!   write, and says which.
//! - `the_demo_reruns_without_flags`: `soplab demo` twice in one working directory.
//! - `a_second_run_on_a_live_directory_is_refused`: while a loopback run is going, another run
//!   on its directory is refused, naming the first's pid, and the first completes.
//! - `a_killed_runs_directory_is_free_for_the_next_run`: a run killed with SIGKILL leaves no
//!   lock behind that blocks the next run on its directory.
//! - `concurrent_loopback_runs_take_disjoint_addresses`: two loopback runs at once, each in a
//!   pid namespace of its own where it can be (so both have the same pid), both complete on
//!   disjoint addresses.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use soplab_testkit::{Guard, TempDir, output_within, read_json, serial};

const SOPLAB: &str = env!("CARGO_BIN_EXE_soplab");

/// Every file under `dir` (relative path, contents), hidden ones included.
fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())).flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                v.push((p.strip_prefix(dir).unwrap().to_path_buf(), std::fs::read(&p).unwrap()));
            }
        }
    }
    v.sort();
    v
}

fn soplab_within(args: &[&str], out: &Path, limit: Duration) -> Output {
    let mut cmd = Command::new(SOPLAB);
    // No `ip` or tcpdump on this PATH: `demo` picks loopback even as root.
    cmd.args(args).arg(out).env("PATH", "/nonexistent");
    output_within(&mut cmd, limit)
}

fn text(out: &Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn a_directory_with_someone_elses_files_is_refused_and_left_as_it_was() {
    let dir = TempDir::new("user-files");
    dir.file("pcap/capture-from-field.pcap", b"\xd4\xc3\xb2\xa1 a capture from the field");
    dir.file("logs/thesis.tex", "\\chapter{Results}");
    let before = files(dir.path());
    let d = dir.path().to_str().unwrap();
    let commands: [&[&str]; 4] = [
        &["swarm", "--loopback", "--peers", "2", "--duration", "5s", "--http-port", "0", "--out"],
        &["swarm", "--mode", "virtual", "--peers", "2", "--duration", "5s", "--out"],
        &["demo", "--peers", "2", "--duration", "5s", "--out"],
        &["analyze", d, "--out"],
    ];
    for args in commands {
        let out = soplab_within(args, dir.path(), Duration::from_secs(60));
        let said = text(&out);
        assert!(!out.status.success(), "{args:?} used a directory with a user's files:\n{said}");
        for words in ["soplab did not write", "pcap/", "logs/", "another --out", "remove"] {
            assert!(said.contains(words), "{args:?}: the refusal does not say `{words}`:\n{said}");
        }
        assert_eq!(files(dir.path()), before, "{args:?} changed the directory:\n{said}");
    }
}

#[test]
fn a_rerun_replaces_what_soplab_wrote_and_keeps_the_rest() {
    let dir = TempDir::new("rerun");
    let virtual_run = ["swarm", "--mode", "virtual", "--peers", "3", "--duration", "10s", "--out"];
    let first = soplab_within(&virtual_run, dir.path(), Duration::from_secs(60));
    assert!(first.status.success(), "{}", text(&first));
    let marker = read_json(&dir.join(".soplab-run"));
    assert_eq!((marker["version"].as_u64(), marker["command"].as_str()), (Some(1), Some("soplab swarm")), "{marker}");
    assert!(marker["created"].as_str().is_some_and(|c| c.ends_with('Z')), "{marker}");
    let analysis = soplab_within(&["analyze", dir.path().to_str().unwrap(), "--out"], &dir.join("analysis"), LIMIT);
    assert!(analysis.status.success(), "{}", text(&analysis));
    assert!(dir.join("analysis/report.json").is_file() && dir.join("analysis/fig7_throughput.png").is_file());
    // A file soplab would write, which this run does not: an earlier run's peer.
    let stale = dir.file("truth/peer-198.18.9.9-3908.jsonl", "{}\n");
    let mine = ["notes.txt", "pcap/mine.pcap", "logs/thesis.tex", "analysis/my-figure.png", "own/data.csv"];
    for f in mine {
        dir.file(f, f);
    }

    let second = soplab_within(&virtual_run, dir.path(), Duration::from_secs(60));
    let said = text(&second);
    assert!(second.status.success(), "{said}");
    for f in mine {
        assert_eq!(std::fs::read_to_string(dir.join(f)).ok().as_deref(), Some(f), "{f} was not kept:\n{said}");
        // A directory of the user's own is named as a whole.
        let named = if f.starts_with("own/") { "own/" } else { f };
        assert!(said.contains(named), "{named} is not named as kept:\n{said}");
    }
    assert!(!stale.exists(), "the earlier run's file is still there");
    let analysis: Vec<_> = files(&dir.join("analysis")).into_iter().map(|(f, _)| f).collect();
    assert_eq!(analysis, [PathBuf::from("my-figure.png")], "the earlier run's analysis is still there");
    assert!(
        dir.join("pcap/bridge.pcap").is_file() && dir.join("run.json").is_file() && dir.join(".soplab-run").is_file()
    );
}

const LIMIT: Duration = Duration::from_secs(120);

#[test]
fn the_demo_reruns_without_flags() {
    let _one = serial();
    let dir = TempDir::new("demo-rerun");
    for round in 1..=2 {
        let out = output_within(
            Command::new(SOPLAB)
                .args(["demo", "--peers", "3", "--duration", "4s"])
                .current_dir(dir.path())
                .env("PATH", "/nonexistent"),
            LIMIT,
        );
        assert!(out.status.success(), "demo run {round}:\n{}", text(&out));
        // Everything the first demo wrote (its analysis and figures too) is soplab's own.
        assert!(!text(&out).contains("soplab did not write"), "demo run {round}:\n{}", text(&out));
    }
    let marker = read_json(&dir.join("runs/demo/.soplab-run"));
    assert_eq!(marker["command"], "soplab demo");
    assert!(dir.join("runs/demo/analysis/report.json").is_file());
}

/// Starts a loopback run of two peers for `duration` into `dir` and waits (bounded) until its
/// daemons are going: the tracker has written its truth.
fn live_run(dir: &Path, duration: &str) -> Guard {
    let run = Guard::spawn(
        "a loopback run",
        Command::new(SOPLAB)
            .args(["swarm", "--loopback", "--peers", "2", "--duration", duration, "--http-port", "0", "--out"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let (tracker, deadline) = (dir.join("truth/tracker.jsonl"), Instant::now() + Duration::from_secs(20));
    while !tracker.exists() {
        assert!(Instant::now() < deadline, "{} did not appear within 20 s", tracker.display());
        std::thread::sleep(Duration::from_millis(50));
    }
    run
}

#[test]
fn a_second_run_on_a_live_directory_is_refused() {
    let _one = serial();
    let dir = TempDir::new("live");
    let mut first = live_run(dir.path(), "6s");
    assert!(first.is_running(), "the first run ended early");
    for args in [
        &["swarm", "--mode", "virtual", "--peers", "2", "--duration", "5s", "--out"][..],
        &["demo", "--peers", "2", "--duration", "5s", "--out"][..],
    ] {
        let second = soplab_within(args, dir.path(), Duration::from_secs(60));
        let said = text(&second);
        assert!(!second.status.success(), "{args:?} ran on a live run's directory:\n{said}");
        assert!(said.contains("in use") && said.contains(&format!("pid {}", first.id())), "{args:?}: {said}");
    }
    assert!(first.is_running(), "the first run ended while the second was refused");
    assert!(first.exit_within(Duration::from_secs(60)).success(), "the first run failed");
    let run = read_json(&dir.join("run.json"));
    assert_eq!(run["mode"], "loopback");
    assert_eq!(run["hosts"].as_array().unwrap().len(), 4, "{run}");
}

#[test]
fn a_killed_runs_directory_is_free_for_the_next_run() {
    let _one = serial();
    let dir = TempDir::new("killed");
    let mut first = live_run(dir.path(), "60s");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(first.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("kill the first run");
    assert!(!first.exit_within(Duration::from_secs(10)).success());
    let next = soplab_within(
        &["swarm", "--mode", "virtual", "--peers", "2", "--duration", "5s", "--out"],
        dir.path(),
        Duration::from_secs(60),
    );
    assert!(next.status.success(), "the killed run's lock outlived it:\n{}", text(&next));
    assert_eq!(read_json(&dir.join("run.json"))["mode"], "virtual");
}

/// `unshare --pid --fork --kill-child`, when this machine lets us: the runs then share a pid.
fn pid_namespace_prefix() -> Option<Vec<&'static str>> {
    let prefix = vec!["--pid", "--fork", "--kill-child"];
    let ok = Command::new("unshare").args(&prefix).arg("true").stderr(Stdio::null()).status();
    if ok.is_ok_and(|s| s.success()) {
        return Some(prefix);
    }
    let user = vec!["--user", "--map-root-user", "--pid", "--fork", "--kill-child"];
    let ok = Command::new("unshare").args(&user).arg("true").stderr(Stdio::null()).status();
    ok.is_ok_and(|s| s.success()).then_some(user)
}

#[test]
fn concurrent_loopback_runs_take_disjoint_addresses() {
    let _one = serial();
    let dirs = [TempDir::new("concurrent-a"), TempDir::new("concurrent-b")];
    let prefix = pid_namespace_prefix();
    if prefix.is_none() {
        eprintln!("no pid namespaces here (unshare failed): the two runs have their own pids");
    }
    let runs: Vec<Guard> = dirs
        .iter()
        .map(|d| {
            let mut cmd = match &prefix {
                Some(p) => {
                    let mut c = Command::new("unshare");
                    c.args(p).arg(SOPLAB);
                    c
                }
                None => Command::new(SOPLAB),
            };
            cmd.args(["swarm", "--loopback", "--peers", "3", "--duration", "3s", "--stagger", "500ms"])
                .args(["--http-port", "0", "--out"])
                .arg(d.path())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            Guard::spawn("a loopback run", &mut cmd)
        })
        .collect();
    let mut addresses = Vec::new();
    for (mut run, dir) in runs.into_iter().zip(&dirs) {
        let status = run.exit_within(Duration::from_secs(60));
        let mut err = String::new();
        std::io::Read::read_to_string(&mut run.child_mut().stderr.take().unwrap(), &mut err).unwrap();
        assert!(status.success(), "a run failed: {err}");
        let info = read_json(&dir.join("run.json"));
        let hosts: BTreeSet<String> =
            info["hosts"].as_array().unwrap().iter().map(|h| h["address"].as_str().unwrap().to_string()).collect();
        assert_eq!(hosts.len(), 5, "{info}");
        for p in read_json(&dir.join("summary.json"))["peers"].as_array().unwrap() {
            assert!(p["downloaded_bytes"].as_u64().unwrap() > 0 && p["neighbors"].as_u64().unwrap() > 0, "{p}");
        }
        addresses.push(hosts);
    }
    let ips =
        |s: &BTreeSet<String>| s.iter().map(|a| a.rsplit_once(':').unwrap().0.to_string()).collect::<BTreeSet<_>>();
    let shared: Vec<_> = ips(&addresses[0]).intersection(&ips(&addresses[1])).cloned().collect();
    assert!(shared.is_empty(), "both runs used {shared:?}");
}
