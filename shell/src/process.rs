//! What the daemon binaries (`soplab-tracker`, `soplab-source`, `soplab-peer`, and the same
//! daemons under `soplab`) share around the [`crate::udp`] shell: when to stop, how to explain a
//! failed bind, output files, seeds.

use std::fs::File;
use std::future::Future;
use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use crate::flags::Outputs;

/// Cancels `stop` on Ctrl-C, SIGTERM, or `duration` from now, logging the reason ("Ctrl-C",
/// "SIGTERM", "--duration elapsed") at info level. The one way a daemon is told to stop: its
/// tasks wait on `stop` (or on child tokens of it, which a single failing part cancels alone).
///
/// The SIGTERM handler is installed before this returns, so a SIGTERM arriving at once is not
/// lost; the Ctrl-C handler and the timer start in a watching task, which ends when `stop` is
/// cancelled for another reason.
///
/// # Errors
/// When the SIGTERM handler cannot be installed.
///
/// # Panics
/// When called outside a tokio runtime with signal handling enabled.
pub fn stop_signal(stop: &CancellationToken, duration: Option<Duration>) -> io::Result<()> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| io::Error::new(e.kind(), format!("cannot install the SIGTERM handler: {e}")))?;
    let stop = stop.clone();
    tokio::spawn(async move {
        let ctrl_c = async {
            if let Err(e) = tokio::signal::ctrl_c().await {
                tracing::warn!(error = %e, "cannot listen for Ctrl-C; running until SIGTERM or --duration");
                std::future::pending::<()>().await;
            }
        };
        #[cfg(unix)]
        let term = term.recv();
        #[cfg(not(unix))]
        let term = std::future::pending::<Option<()>>();
        let timer = async {
            match duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        let why = tokio::select! {
            () = stop.cancelled() => return,
            () = ctrl_c => "Ctrl-C",
            _ = term => "SIGTERM",
            () = timer => "--duration elapsed",
        };
        tracing::info!("{why}: stopping");
        stop.cancel();
    });
    Ok(())
}

/// Explains a failed bind of `addr` (`proto` is "UDP" or "TCP") given with option `flag`, with
/// what to do about it: an `io::Error` of the same kind whose message reads, e.g., "cannot
/// listen on UDP 127.0.0.1:3900: another program ... already uses UDP port 3900 ...".
pub fn bind_error(e: io::Error, proto: &str, addr: SocketAddr, flag: &str) -> io::Error {
    let hint = match e.kind() {
        io::ErrorKind::AddrInUse => format!(
            "another program (another soplab daemon?) already uses {proto} port {port} on {ip}; stop it, or \
             pick another port with {flag} {ip}:PORT",
            port = addr.port(),
            ip = addr.ip()
        ),
        io::ErrorKind::AddrNotAvailable => format!(
            "{} is not an address of this machine; use 127.0.0.1 (or any 127.x.y.z: this machine only), \
             0.0.0.0 (all interfaces) or an address that `ip addr` lists",
            addr.ip()
        ),
        io::ErrorKind::PermissionDenied => {
            format!("ports below 1024 need root; give {flag} a port of 1024 or more")
        }
        _ => format!("check {flag}"),
    };
    io::Error::new(e.kind(), format!("cannot listen on {proto} {addr}: {e}; {hint}"))
}

/// Creates (truncates) the output file `path` for writing through a [`BufWriter`]; `what`
/// names it in the error ("ground-truth file", "stats file", ...).
///
/// # Errors
/// When the file cannot be created; the message names the file and what to check.
pub fn create_output(path: &Path, what: &str) -> io::Result<BufWriter<File>> {
    File::create(path).map(BufWriter::new).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot create the {what} {}: {e}; check that its folder exists and is writable", path.display()),
        )
    })
}

/// An output a daemon writes as it runs (its ground truth): a [`BufWriter`] whose write and
/// flush errors name the file, so that the error the daemon stops on says which file and why
/// ("cannot write the ground-truth file /data/t.jsonl: No space left on device (os error 28)").
pub struct NamedOutput<W: Write> {
    out: W,
    path: PathBuf,
    what: &'static str,
}

impl NamedOutput<BufWriter<File>> {
    /// Creates `path` as [`create_output`] does.
    ///
    /// # Errors
    /// As [`create_output`].
    pub fn create(path: &Path, what: &'static str) -> io::Result<Self> {
        Ok(Self::new(create_output(path, what)?, path, what))
    }
}

impl<W: Write> NamedOutput<W> {
    /// `out`, whose errors name `path` as the `what` ("ground-truth file").
    pub fn new(out: W, path: &Path, what: &'static str) -> Self {
        NamedOutput { out, path: path.to_path_buf(), what }
    }

    fn name(&self, error: io::Error) -> io::Error {
        io::Error::new(error.kind(), OutputError { what: self.what, path: self.path.clone(), error })
    }
}

/// A write error on a [`NamedOutput`]: which file, and the OS's error.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the {what} {}: {error}; check the disk's free space", path.display())]
pub struct OutputError {
    pub what: &'static str,
    pub path: PathBuf,
    pub error: io::Error,
}

impl OutputError {
    /// Whether `e` is a [`NamedOutput`]'s error (so it names its file already).
    pub fn is(e: &io::Error) -> bool {
        e.get_ref().is_some_and(|inner| inner.is::<OutputError>())
    }
}

impl<W: Write> Write for NamedOutput<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf).map_err(|e| self.name(e))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush().map_err(|e| self.name(e))
    }
}

/// Writes `value` as one line of JSON to `out` (made by [`create_output`] for `path`) and
/// flushes it.
///
/// # Errors
/// When serialising or writing fails; the message names `path`.
pub fn write_json<T: serde::Serialize + ?Sized>(out: BufWriter<File>, value: &T, path: &Path) -> io::Result<()> {
    write_json_with(out, path, |w| serde_json::to_writer(w, value))
}

/// [`write_json`], indented for people to read and edit.
///
/// # Errors
/// As [`write_json`].
pub fn write_json_pretty<T: serde::Serialize + ?Sized>(out: BufWriter<File>, value: &T, path: &Path) -> io::Result<()> {
    write_json_with(out, path, |w| serde_json::to_writer_pretty(w, value))
}

fn write_json_with(
    mut out: BufWriter<File>,
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> serde_json::Result<()>,
) -> io::Result<()> {
    let wrap = |e: io::Error| io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display()));
    write(&mut out).map_err(io::Error::from).map_err(wrap)?;
    out.write_all(b"\n").map_err(wrap)?;
    out.flush().map_err(wrap)?;
    out.into_inner().map_err(|e| wrap(e.into_error()))?.sync_all().map_err(wrap)
}

/// Runs one node the way the single-node daemons (tracker, source) do: until Ctrl-C, SIGTERM
/// or `duration`, writing its ground truth to `outputs.truth` (if given); then prints
/// `stats(node)` as one line of JSON on stdout and writes it to `outputs.stats` (if given).
/// Both files are created before the node starts, so a bad path fails at once.
///
/// # Errors
/// When an output file cannot be created or written, or the socket or the ground-truth file
/// fails while running (the stats are still written first); messages name the file.
pub async fn serve<N, S>(
    node: &mut N,
    socket: tokio::net::UdpSocket,
    outputs: &Outputs,
    duration: Option<Duration>,
    stats: impl FnOnce(&N) -> S,
) -> io::Result<()>
where
    N: soplab_node::Node,
    S: serde::Serialize,
{
    let mut truth_out: Box<dyn Write + Send> = match outputs.truth.as_deref() {
        Some(path) => Box::new(NamedOutput::create(path, "ground-truth file")?),
        None => Box::new(io::sink()),
    };
    let stats_out = outputs.stats.as_deref().map(|p| create_output(p, "stats file")).transpose()?;
    let stop = CancellationToken::new();
    stop_signal(&stop, duration)?;
    let result = crate::run(node, socket, stop.cancelled(), &mut truth_out).await;
    stop.cancel(); // ends the signal watcher if the node stopped by itself
    let stats = stats(node);
    println!("{}", serde_json::to_string(&stats).map_err(io::Error::from)?);
    if let (Some(out), Some(path)) = (stats_out, &outputs.stats) {
        write_json(out, &stats, path)?;
    }
    // A ground-truth error names its file already ([`NamedOutput`]); anything else is the socket's.
    result.map_err(|e| if OutputError::is(&e) { e } else { io::Error::new(e.kind(), format!("socket error: {e}")) })
}

/// A seed from the clock and the process id, for daemons started without `--seed` (they log
/// it, so a run can be repeated).
pub fn seed_from_clock() -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}

/// The whole `main` of a daemon binary called `name`: parses its flags `A` (with the about
/// texts `A` carries), turns them into its configuration and runs it under [`main`].
pub fn daemon_main<A, C, E, Fut>(
    name: &'static str,
    into_config: impl FnOnce(A) -> Result<C, E>,
    run: impl FnOnce(C) -> Fut,
) -> std::process::ExitCode
where
    A: clap::Args + clap::FromArgMatches,
    E: std::fmt::Display,
    Fut: Future<Output = Result<(), E>>,
{
    let command = A::augment_args(clap::Command::new(name).version(env!("CARGO_PKG_VERSION")));
    let args = A::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit());
    main(async move { run(into_config(args)?).await })
}

/// The body of every daemon binary's `main` (and of `soplab`'s): logs to stderr (`RUST_LOG`,
/// `info` by default, colours only on a terminal), runs `work` on a multi-thread tokio
/// runtime, and prints a failure as one line with its causes (`{:#}`), no backtrace: the
/// message says what to do.
pub fn main<F, E>(work: F) -> std::process::ExitCode
where
    F: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .init();
    let result = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(work),
        Err(e) => {
            eprintln!("error: cannot start the tokio runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_errors_say_what_to_do() {
        let addr: SocketAddr = "127.0.0.1:3900".parse().unwrap();
        let e = bind_error(io::Error::from(io::ErrorKind::AddrInUse), "UDP", addr, "--listen");
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        let msg = e.to_string();
        assert!(msg.starts_with("cannot listen on UDP 127.0.0.1:3900"), "{msg}");
        assert!(msg.contains("--listen 127.0.0.1:PORT"), "{msg}");
    }

    #[test]
    fn output_files_name_their_path() {
        let path = Path::new("/nonexistent-soplab-dir/x/stats.json");
        let msg = create_output(path, "stats file").unwrap_err().to_string();
        assert!(msg.contains("stats file /nonexistent-soplab-dir/x/stats.json"), "{msg}");
        assert!(msg.contains("folder exists"), "{msg}");
    }

    #[test]
    fn json_is_written_and_flushed() {
        let path = std::env::temp_dir().join(format!("soplab-node-json-{}.json", std::process::id()));
        let out = create_output(&path, "stats file").unwrap();
        write_json(out, &serde_json::json!({"a": 1}), &path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\":1}\n");
        std::fs::remove_file(&path).ok();
    }
}
