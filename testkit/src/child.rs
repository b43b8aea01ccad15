//! Child processes a test starts: killed when the test fails (a failed assertion must not leave
//! a daemon running), waited for within a bound (a hung daemon must fail the test, not hang it).

use std::ffi::OsStr;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A running child process, killed (and reaped) when dropped.
pub struct Guard {
    child: Child,
    name: String,
}

impl Guard {
    /// Starts `cmd`; `name` stands for it in failure messages.
    pub fn spawn(name: &str, cmd: &mut Command) -> Guard {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Guard { child, name: name.to_string() }
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The child itself, to take its pipes.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Whether the child has not exited yet.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("cannot check on a child process").is_none()
    }

    /// Waits (bounded) for the child to exit by itself; fails the test after `limit`.
    pub fn exit_within(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("cannot check on a child process") {
                return status;
            }
            assert!(Instant::now() < deadline, "{} did not stop by itself within {limit:?}", self.name);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM, as `kill` or a service manager would.
    pub fn terminate(&self) {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).expect("a pid fits in i32"));
        kill(pid, Signal::SIGTERM).unwrap_or_else(|e| panic!("cannot send SIGTERM to {}: {e}", self.name));
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Runs `cmd` to its end within `limit`, with no input, capturing what it prints.
pub fn output_within(cmd: &mut Command, limit: Duration) -> Output {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let name = cmd.get_program().to_string_lossy().into_owned();
    let mut guard = Guard::spawn(&name, cmd);
    // Read both pipes while waiting, so a chatty child cannot block on a full pipe.
    let stdout = guard.child_mut().stdout.take().map(read_all);
    let stderr = guard.child_mut().stderr.take().map(read_all);
    let status = guard.exit_within(limit);
    let collect = |h: Option<JoinHandle<Vec<u8>>>| h.map(|h| h.join().unwrap_or_default()).unwrap_or_default();
    Output { status, stdout: collect(stdout), stderr: collect(stderr) }
}

fn read_all(mut from: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = from.read_to_end(&mut v);
        v
    })
}

/// Runs `program` with `args` to its end and fails the test, with everything it printed, unless
/// it succeeds. For long runs (swarms of minutes): it sets no time limit.
pub fn run_ok<S: AsRef<OsStr>>(program: &Path, args: &[S]) -> Output {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("cannot run {program:?}: {e}"));
    let name = program.file_name().unwrap_or(program.as_os_str()).to_string_lossy();
    let shown: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
    assert!(
        out.status.success(),
        "{name} {} failed:\n{}\n{}",
        shown.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Checks a daemon binary's command line as a user meets it: `--help` succeeds and lists
/// `flags`; an unknown flag fails with clap's usage status (2), naming the flag and the usage.
pub fn check_help_and_bad_flag(exe: &str, flags: &[&str]) {
    let name = Path::new(exe).file_name().expect("a binary path").to_string_lossy().into_owned();
    let limit = Duration::from_secs(20);
    let help = output_within(Command::new(exe).arg("--help"), limit);
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(help.status.success(), "{name} --help exited with {}: {text}", help.status);
    for flag in flags {
        assert!(text.contains(flag), "{name} --help does not list {flag}:\n{text}");
    }
    let bad = output_within(Command::new(exe).arg("--no-such-flag"), limit);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{name} --no-such-flag: {err}");
    assert!(err.contains("unexpected argument '--no-such-flag'"), "names the bad flag: {err}");
    assert!(err.contains(&format!("Usage: {name}")) && err.contains("--help"), "shows the usage: {err}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_guard_kills_its_child() {
        let mut g = Guard::spawn("sleep", Command::new("sleep").arg("30"));
        assert!(g.is_running());
        let pid = Pid::from_raw(g.id() as i32);
        drop(g);
        // Reaped: the pid no longer names our child.
        assert!(kill(pid, None).is_err());
    }

    #[test]
    fn exit_within_returns_the_status_and_output_within_the_output() {
        let mut g = Guard::spawn("sh", Command::new("sh").args(["-c", "exit 3"]));
        assert_eq!(g.exit_within(Duration::from_secs(10)).code(), Some(3));
        let out = output_within(Command::new("sh").args(["-c", "echo out; echo err >&2"]), Duration::from_secs(10));
        assert!(out.status.success());
        assert_eq!((&out.stdout[..], &out.stderr[..]), (&b"out\n"[..], &b"err\n"[..]));
    }

    #[test]
    #[should_panic(expected = "did not stop by itself within")]
    fn exit_within_fails_a_hung_child() {
        let mut g = Guard::spawn("sleep", Command::new("sleep").arg("30"));
        g.exit_within(Duration::from_millis(200));
    }

    #[test]
    fn terminate_sends_sigterm() {
        let mut g = Guard::spawn("sleep", Command::new("sleep").arg("30"));
        g.terminate();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(g.exit_within(Duration::from_secs(10)).signal(), Some(15));
    }
}
