//! Child processes of a swarm (daemons and tcpdump): started in a chosen network namespace,
//! tied to the orchestrator's life, stopped with SIGTERM then SIGKILL.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::process::{Child, Command};

/// A child process with its name and log file, killed if dropped.
pub struct Daemon {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
}

/// Starts `program args` with stdout and stderr to `logs/<name>.log`, inside network namespace
/// `netns` if given, in folder `cwd` if given. The child gets SIGTERM if the orchestrator dies,
/// even by SIGKILL. Arguments are OS strings: paths go as they are, UTF-8 or not.
pub fn spawn(
    name: &str,
    program: impl AsRef<OsStr>,
    args: &[OsString],
    logs: &Path,
    netns: Option<&str>,
    cwd: Option<&Path>,
) -> Result<Daemon> {
    let log = logs.join(format!("{name}.log"));
    let file = std::fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
    let mut cmd = Command::new(program);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .env("SOPLAB_RUN_ROLE", name)
        .kill_on_drop(true);
    let ns: Option<OwnedFd> = netns.map(|n| soplab_shell::netns::open(n).map(OwnedFd::from)).transpose()?;
    let ns_fd = ns.as_ref().map(|f| f.as_raw_fd());
    // SAFETY: between fork and exec the closure only makes system calls (prctl, setpgid, setns), which
    // are async-signal-safe; the descriptor stays open in the parent until spawn returns.
    unsafe {
        cmd.pre_exec(move || {
            // If the orchestrator dies (even by SIGKILL), its children get SIGTERM.
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
                .map_err(|e| std::io::Error::from_raw_os_error(e as i32))?;
            // A process group of its own: Ctrl-C in a terminal reaches only the orchestrator,
            // which stops the daemons first and tcpdump last, so no packet goes uncaptured.
            nix::unistd::setpgid(nix::unistd::Pid::from_raw(0), nix::unistd::Pid::from_raw(0))
                .map_err(|e| std::io::Error::from_raw_os_error(e as i32))?;
            if let Some(fd) = ns_fd {
                let fd = std::os::fd::BorrowedFd::borrow_raw(fd);
                nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| std::io::Error::from_raw_os_error(e as i32))?;
            }
            Ok(())
        });
    }
    let child = cmd.spawn().with_context(|| match netns {
        Some(n) => format!("cannot start {name} in network namespace {n}"),
        None => format!("cannot start {name}"),
    })?;
    drop(ns);
    Ok(Daemon { name: name.to_string(), child, log })
}

/// Starts the `soplab` executable itself with `args` (a daemon subcommand) in the run
/// directory `run_dir`, which relative paths in `args` and in its configuration start from.
pub fn spawn_soplab(name: &str, args: &[OsString], logs: &Path, netns: Option<&str>, run_dir: &Path) -> Result<Daemon> {
    let exe = std::env::current_exe().context("cannot find the soplab executable to start daemons")?;
    spawn(name, exe, args, logs, netns, Some(run_dir))
}

impl Daemon {
    /// Sends `signal`, then waits up to `grace` for an exit, then SIGKILL. Returns whether it
    /// exited with status 0.
    pub async fn stop_with(&mut self, signal: nix::sys::signal::Signal, grace: Duration) -> Result<bool> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(status.success());
        }
        if let Some(pid) = self.child.id() {
            let pid = nix::unistd::Pid::from_raw(pid as i32);
            let _ = nix::sys::signal::kill(pid, signal);
            // A stopped process (a `stop-source` fault) handles the signal only once continued.
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT);
        }
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => Ok(status?.success()),
            Err(_) => {
                tracing::warn!(daemon = %self.name, "did not stop within {grace:?}; killing it");
                self.child.kill().await?;
                Ok(false)
            }
        }
    }

    /// Sends `signal` and returns at once (SIGSTOP, SIGCONT: the process lives on).
    ///
    /// # Errors
    /// When the process has already exited, or the signal cannot be sent.
    pub fn signal(&mut self, signal: nix::sys::signal::Signal) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            anyhow::bail!("{} had already exited ({status})", self.name);
        }
        let pid = self.child.id().with_context(|| format!("{} has no process id", self.name))?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal)
            .with_context(|| format!("cannot send {signal} to {}", self.name))
    }

    /// SIGKILL, and waits until the process is gone: no chance to clean up or write anything.
    ///
    /// # Errors
    /// When the process had already exited, or cannot be killed or waited for.
    pub async fn kill_now(&mut self) -> Result<()> {
        self.signal(nix::sys::signal::Signal::SIGKILL)?;
        self.child.wait().await.with_context(|| format!("cannot wait for {} after SIGKILL", self.name))?;
        Ok(())
    }

    /// SIGTERM, then up to `grace` for a clean exit, then SIGKILL.
    pub async fn stop(&mut self, grace: Duration) -> Result<bool> {
        self.stop_with(nix::sys::signal::Signal::SIGTERM, grace).await
    }
}
