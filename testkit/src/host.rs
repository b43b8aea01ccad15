//! What the machine offers a test: tools on PATH, root, network namespaces, built binaries, and
//! what a run may have left on it (namespaces, processes).
//!
//! A test that lacks a tool skips with a message saying what to install, unless CI asks for
//! every test to run (`SOPLAB_REQUIRE_TOOLS=1`, `SOPLAB_REQUIRE_NETNS=1`): then a skip would pass
//! for a success, so it fails instead.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The executable file `program` on PATH, if there is one.
pub fn find_on_path(program: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(program))
        .find(|p| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// Whether `program` is an executable on PATH.
pub fn on_path(program: &str) -> bool {
    find_on_path(program).is_some()
}

fn env_is_one(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v == "1")
}

/// Whether `SOPLAB_REQUIRE_TOOLS=1` forbids skipping for want of a tool (CI sets it).
pub fn require_tools() -> bool {
    env_is_one("SOPLAB_REQUIRE_TOOLS")
}

/// The tool `name`'s path, or `None` after saying how to install it (`package`): the caller
/// skips that part. Under `SOPLAB_REQUIRE_TOOLS=1` a missing tool fails the test instead.
pub fn tool_available(name: &str, package: &str) -> Option<PathBuf> {
    let found = find_on_path(name);
    if found.is_none() {
        assert!(!require_tools(), "{name} not found on PATH and SOPLAB_REQUIRE_TOOLS=1 (apt-get install -y {package})");
        eprintln!("skipping: {name} not found (apt-get install -y {package})");
    }
    found
}

/// Whether this test runs as root with every one of `programs` on PATH. If not, it says what is
/// missing and the test should return early; under `SOPLAB_REQUIRE_TOOLS=1` it fails instead.
pub fn root_and_tools_available(test: &str, programs: &[&str]) -> bool {
    let mut missing: Vec<String> = programs.iter().filter(|p| !on_path(p)).map(|p| p.to_string()).collect();
    if !nix::unistd::geteuid().is_root() {
        missing.push("root".into());
    }
    if missing.is_empty() {
        return true;
    }
    let msg = format!("{test}: needs {} (apt-get install -y tcpdump iproute2; run as root)", missing.join(", "));
    assert!(!require_tools(), "{msg}; SOPLAB_REQUIRE_TOOLS=1 makes this an error");
    eprintln!("skipped {msg}");
    false
}

/// Whether this machine can run netns tests (root, iproute2, tcpdump, ndpiReader). If not, the
/// test should return early: this prints why, and panics instead when
/// `SOPLAB_REQUIRE_NETNS=1` (CI sets it, so that a skip cannot pass for a success).
pub fn netns_available(test: &str) -> bool {
    let missing: Vec<&str> = [
        (!nix::unistd::geteuid().is_root()).then_some("root"),
        (!on_path("ip")).then_some("ip (iproute2)"),
        (!on_path("tcpdump")).then_some("tcpdump"),
        (!on_path("ndpiReader")).then_some("ndpiReader (libndpi-bin)"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if missing.is_empty() {
        return true;
    }
    let msg = format!("{test}: needs {}", missing.join(", "));
    if env_is_one("SOPLAB_REQUIRE_NETNS") {
        panic!("{msg}, and SOPLAB_REQUIRE_NETNS=1 forbids skipping");
    }
    eprintln!("SKIPPED {msg} (run as root with iproute2, tcpdump and libndpi-bin installed)");
    false
}

/// The binary `name` of package `package` next to this test binary (`target/<profile>/name`),
/// for tests of another package than the binary's (those use `env!("CARGO_BIN_EXE_name")`).
pub fn built_binary(name: &str, package: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps");
    let bin = dir.join(name);
    assert!(
        bin.is_file(),
        "{} is missing: build it with `cargo build -p {package} --profile test` (cargo test --workspace does)",
        bin.display()
    );
    bin
}

/// The `soplab` binary next to this test binary.
pub fn soplab_exe() -> PathBuf {
    built_binary("soplab", "soplab")
}

/// Names of the network namespaces on the machine starting with `prefix`.
pub fn namespaces(prefix: &str) -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

/// Processes whose command line mentions `needle` (a run directory, say), other than this one.
pub fn processes_mentioning(needle: &str) -> Vec<String> {
    let me = std::process::id().to_string();
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let pid = e.file_name().to_string_lossy().to_string();
        if !pid.chars().all(|c| c.is_ascii_digit()) || pid == me {
            continue;
        }
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) {
                v.push(format!("{pid}: {cmd}"));
            }
        }
    }
    v
}

/// Fails the test unless nothing of a run is left within 10 s: no namespace whose name starts
/// with `<prefix>-`, no process whose command line mentions its directory `dir`.
pub fn assert_nothing_left(prefix: &str, dir: &Path) {
    // Processes get SIGTERM from the kernel when their parent dies; give them a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (ns, procs) = (namespaces(&format!("{prefix}-")), processes_mentioning(&dir.display().to_string()));
        if ns.is_empty() && procs.is_empty() {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "left behind: namespaces {ns:?}, processes {procs:?}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_executables_on_path_only() {
        assert!(on_path("sh"));
        assert!(!on_path("soplab-no-such-program"));
        assert!(find_on_path("sh").is_some_and(|p| p.is_absolute()));
    }
}
