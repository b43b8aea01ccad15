//! Readying each hosted peer before any starts, so that a mistake fails at once: its UDP
//! socket and HTTP listener, bound in its network namespace, and its output files, named by its
//! address (`peer-<ip>-<port>`, [`host_stem`]).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow};
use bytes::Bytes;
use soplab_node::impair::Impairer;
use soplab_rundir::stem::host_stem;
use soplab_shell as shell;
use soplab_shell::process::{NamedOutput, bind_error, create_output};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::broadcast;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::config::{DaemonConfig, HostedPeer, Outputs, Truth};
use super::http;
use super::shared_lines::SharedLines;
use crate::PeerConfig;

/// The outputs all peers share, opened once.
pub(super) struct Shared {
    /// The one ground-truth file (`--truth FILE`), if every peer writes there.
    pub truth: Option<Arc<Mutex<BufWriter<File>>>>,
    /// The stats file, created now so that a bad path fails before the run.
    pub stats: Option<BufWriter<File>>,
}

impl Shared {
    /// Creates the output folders and the shared files.
    pub fn open(outputs: &Outputs) -> Result<Shared> {
        let truth_dir = match &outputs.truth {
            Some(Truth::Dir(dir)) => Some(dir),
            _ => None,
        };
        for dir in [truth_dir, outputs.played_dir.as_ref(), outputs.pcap_dir.as_ref()].into_iter().flatten() {
            std::fs::create_dir_all(dir).with_context(|| {
                format!("cannot create the folder {}; check that its parent exists and is writable", dir.display())
            })?;
        }
        let truth = match &outputs.truth {
            Some(Truth::File(path)) => Some(Arc::new(Mutex::new(create_output(path, TRUTH)?))),
            _ => None,
        };
        let stats = outputs.stats.as_deref().map(|p| create_output(p, "stats file")).transpose()?;
        Ok(Shared { truth, stats })
    }
}

/// One hosted peer, bound and with its outputs open: ready to start.
pub(super) struct Host {
    pub index: usize,
    pub cfg: PeerConfig,
    pub socket: UdpSocket,
    pub opts: shell::Options,
    /// Its place in the configuration: when it runs ([`HostedPeer::spans_us`]).
    pub peer: HostedPeer,
    pub truth: Box<dyn Write + Send>,
    pub played: Option<(BufWriter<File>, PathBuf)>,
    /// Where its played blocks go to its HTTP players.
    pub http: Option<broadcast::Sender<Bytes>>,
}

/// Readies every peer of `config`; their HTTP servers join `servers` and stop with `stop`.
///
/// # Errors
/// When a socket cannot be bound or a file cannot be created; the message names the peer.
pub(super) fn ready_all(
    config: &DaemonConfig,
    shared: &Shared,
    stop: &CancellationToken,
    servers: &mut JoinSet<()>,
) -> Result<Vec<Host>> {
    let count = config.peers.len();
    let mut hosts = Vec::with_capacity(count);
    for (index, peer) in config.peers.iter().enumerate() {
        let socket = bind_udp(peer).map_err(|e| {
            anyhow!(e).context(match &peer.netns {
                Some(ns) => format!("peer {index} of {count}, in network namespace {ns}"),
                None => format!("peer {index} of {count}"),
            })
        })?;
        let local = socket.local_addr().context("cannot read a bound address")?;
        let cfg = PeerConfig { addr: local, ..peer.config(&config.template) };
        let out = &config.outputs;
        let truth = open_truth(out, shared, local)?;
        let played = match &out.played_dir {
            Some(dir) => Some(open_in(dir, local, "ts", "played-stream file")?),
            None => None,
        };
        let http = match out.http_port {
            0 => None,
            port => Some(serve_http(peer, local, port, stop, servers)?),
        };
        let opts = shell::Options {
            impairment: Some(Impairer::new(peer.impairment_or(config.impairment), cfg.seed ^ 0x5eed_1055)),
            tap: match &out.pcap_dir {
                Some(dir) => Some(soplab_shell::tap::PcapTap::create(&output_path(dir, local, "pcap"))?),
                None => None,
            },
            ..shell::Options::default()
        };
        hosts.push(Host { index, cfg, socket, opts, peer: peer.clone(), truth, played, http });
    }
    Ok(hosts)
}

/// Where a peer at `addr` writes its `ext` output in `dir`: `dir/peer-<ip>-<port>.<ext>`.
fn output_path(dir: &Path, addr: SocketAddr, ext: &str) -> PathBuf {
    dir.join(format!("{}.{ext}", host_stem(addr)))
}

/// Creates the peer's `ext` output in `dir`; `what` names it in errors.
fn open_in(dir: &Path, addr: SocketAddr, ext: &str, what: &str) -> io::Result<(BufWriter<File>, PathBuf)> {
    let path = output_path(dir, addr, ext);
    Ok((create_output(&path, what)?, path))
}

/// What errors call a ground-truth file.
const TRUTH: &str = "ground-truth file";

/// The peer's ground-truth writer: its own file, its share of the common one, or nothing.
fn open_truth(out: &Outputs, shared: &Shared, addr: SocketAddr) -> io::Result<Box<dyn Write + Send>> {
    Ok(match (&out.truth, &shared.truth) {
        (Some(Truth::Dir(dir)), _) => {
            let (file, path) = open_in(dir, addr, "jsonl", TRUTH)?;
            Box::new(NamedOutput::new(file, &path, TRUTH))
        }
        (Some(Truth::File(path)), Some(file)) => {
            Box::new(NamedOutput::new(SharedLines::new(file.clone()), path, TRUTH))
        }
        _ => Box::new(io::sink()),
    })
}

/// Runs `bind` in the peer's network namespace, if it has one.
fn in_netns<T: Send>(peer: &HostedPeer, bind: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
    match &peer.netns {
        Some(ns) => soplab_shell::netns::run_in(ns, bind),
        None => bind(),
    }
}

fn bind_udp(peer: &HostedPeer) -> io::Result<UdpSocket> {
    let at = SocketAddr::V4(peer.addr);
    in_netns(peer, || shell::bind_udp_std(at))
        .and_then(UdpSocket::from_std)
        .map_err(|e| bind_error(e, "UDP", at, "--addr"))
}

/// Binds the HTTP listener of the peer at `local` on `port` of its address and starts serving
/// its played stream there.
fn serve_http(
    peer: &HostedPeer,
    local: SocketAddr,
    port: u16,
    stop: &CancellationToken,
    servers: &mut JoinSet<()>,
) -> Result<broadcast::Sender<Bytes>> {
    let at = SocketAddr::new(local.ip(), port);
    let bind = move || {
        let l = std::net::TcpListener::bind(at)?;
        l.set_nonblocking(true)?;
        Ok(l)
    };
    let listener = in_netns(peer, bind).and_then(TcpListener::from_std).map_err(|e| {
        anyhow!(bind_error(e, "TCP", at, "--http-port"))
            .context(format!("peer {local} cannot serve its stream over HTTP (--http-port 0 turns that off)"))
    })?;
    let (tx, _) = broadcast::channel(http::QUEUE_BLOCKS);
    servers.spawn(http::serve(listener, tx.downgrade(), stop.clone(), local));
    Ok(tx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_stems() {
        let path = output_path(Path::new("out"), "127.88.1.10:3908".parse().unwrap(), "jsonl");
        assert_eq!(path, Path::new("out/peer-127.88.1.10-3908.jsonl"));
    }
}
