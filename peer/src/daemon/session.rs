//! The hosted peers' lives: each runs as its own task, waits for its start, runs one fresh
//! core per session on its socket (vanishing silently at each session's end, ignoring what
//! arrives while it is off) until the daemon stops, and hands back its counters.

use std::io::{self, Write};
use std::time::Duration;

use anyhow::anyhow;
use soplab_node::Media;
use soplab_shell as shell;
use tokio::net::UdpSocket;
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::config::session_config;
use super::host::Host;
use crate::{Peer, PeerStats};

/// What a peer task hands back: its index, its final counters and why it failed, if it did.
type Outcome = (usize, PeerStats, Option<anyhow::Error>);

/// Instants this far ahead stand for "never" (as tokio's own far future does).
const FAR: Duration = Duration::from_secs(86_400 * 365 * 30);

/// `d` after `at`, or [`FAR`] after it when that would not fit.
fn later(at: Instant, d: Duration) -> Instant {
    at.checked_add(d).unwrap_or_else(|| at + FAR)
}

/// The instant of `schedule_epoch_us` (µs since the Unix epoch) on tokio's clock; now if none.
pub(super) fn epoch(schedule_epoch_us: Option<u64>) -> Instant {
    let now = Instant::now();
    let Some(us) = schedule_epoch_us else { return now };
    let ahead = i128::from(us) - i128::from(shell::realtime_us());
    let by = Duration::from_micros(u64::try_from(ahead.unsigned_abs()).unwrap_or(u64::MAX));
    if ahead >= 0 { later(now, by) } else { now.checked_sub(by).unwrap_or(now) }
}

/// Runs every host as its own task until `stop` is cancelled (by a signal, the duration, or
/// here when a peer fails), then returns each peer's counters, in host order, and the failures.
pub(super) async fn run_all(
    hosts: Vec<Host>,
    epoch: Instant,
    stop: &CancellationToken,
) -> (Vec<PeerStats>, Vec<anyhow::Error>) {
    let mut stats: Vec<Option<PeerStats>> = vec![None; hosts.len()];
    let mut tasks = JoinSet::new();
    for h in hosts {
        tasks.spawn(run_peer(h, epoch, stop.clone()));
    }
    let mut errors: Vec<anyhow::Error> = Vec::new();
    let mut record = |r: Result<Outcome, JoinError>| match r {
        Ok((i, s, err)) => {
            if let Some(e) = err {
                tracing::error!(peer = %s.addr, "{e:#}");
                errors.push(e);
            }
            stats[i] = Some(s);
        }
        Err(e) => errors.push(anyhow!("a peer task failed: {e}")),
    };
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            // A churned peer ends early when its last session is over; any peer ends early on
            // an error, and then the others stop too.
            r = tasks.join_next() => match r {
                Some(r) => {
                    let failed = !matches!(&r, Ok((_, _, None)));
                    record(r);
                    if failed {
                        tracing::error!("a peer failed; stopping all peers");
                        break;
                    }
                }
                None => {
                    // Every peer's schedule is over: wait for the stop all the same.
                    stop.cancelled().await;
                    break;
                }
            },
        }
    }
    stop.cancel();
    while let Some(r) = tasks.join_next().await {
        record(r);
    }
    (stats.into_iter().flatten().collect(), errors)
}

/// Runs one peer: waits its start delay, then the shell until `stop` (or a failure writing its
/// played stream). A scheduled peer instead runs one session after another.
async fn run_peer(mut h: Host, epoch: Instant, stop: CancellationToken) -> Outcome {
    // Cancelled with the daemon, or alone when this peer cannot write its played stream.
    let stop = stop.child_token();
    let mut stats = Peer::new(h.cfg.clone(), None).stats();
    let mut played_error = None;
    let mut result = Ok(());
    let mut buf = vec![0u8; shell::RECV_BUF_LEN];
    for (k, (start, end)) in plan(&h, epoch).into_iter().enumerate() {
        if !idle_until(&h.socket, start, &stop, &mut buf).await {
            break;
        }
        // An empty session never plays; one that ended well before this process could start
        // it (a late start) is skipped; a short one that is just due still runs, however
        // briefly, so that the ground truth shows every scheduled session.
        if end.is_some_and(|e| e <= start || e + Duration::from_millis(500) < Instant::now()) {
            continue;
        }
        let (r, session) = run_session(&mut h, k, end, &stop, &mut played_error).await;
        if k == 0 {
            stats = session;
        } else {
            stats.merge(&session);
        }
        match r {
            Ok(shell::Stop::Silent) if played_error.is_none() => {}
            Ok(_) => break,
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    let index = h.index;
    (index, stats, finish(h, result, played_error))
}

/// When each session starts and ends ([`super::HostedPeer::spans_us`]): a whole-run peer is one
/// session from its start delay (from now) to the stop; a scheduled one's are from `epoch`.
fn plan(h: &Host, epoch: Instant) -> Vec<(Instant, Option<Instant>)> {
    let zero = if h.peer.sessions.is_empty() { Instant::now() } else { epoch };
    let at = |us: u64| later(zero, Duration::from_micros(us));
    h.peer.spans_us().into_iter().map(|(start, end)| (at(start), end.map(at))).collect()
}

/// Waits for `start` while the peer is off: datagrams still arrive (partners keep sending for
/// a while) and are discarded, as a host whose client is closed would. False if `stop` comes
/// first.
async fn idle_until(socket: &UdpSocket, start: Instant, stop: &CancellationToken, buf: &mut [u8]) -> bool {
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(start) => return true,
            () = stop.cancelled() => return false,
            _ = socket.recv_from(buf) => {}
        }
    }
}

/// Runs session `k` of the peer, a fresh core with a seed of its own, until `stop` (graceful)
/// or `end` (silent); a failure to write the played stream cancels `stop`.
async fn run_session(
    h: &mut Host,
    k: usize,
    end: Option<Instant>,
    stop: &CancellationToken,
    played_error: &mut Option<io::Error>,
) -> (io::Result<shell::Stop>, PeerStats) {
    tracing::debug!(peer = %h.cfg.addr, session = k, "peer session starting");
    let mut peer = Peer::new(session_config(&h.cfg, k), None).with_secret(soplab_node::Secret::from_os());
    let (played, http) = (&mut h.played, &h.http);
    let mut player = |m: Media| {
        if let Some((file, _)) = played.as_mut()
            && played_error.is_none()
            && let Err(e) = file.write_all(&m.data).and_then(|()| file.flush())
        {
            *played_error = Some(e);
            stop.cancel();
        }
        if let Some(tx) = http {
            // No players connected is not an error.
            let _ = tx.send(m.data);
        }
    };
    let stopped = async {
        let vanish = async {
            match end {
                Some(e) => tokio::time::sleep_until(e).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = stop.cancelled() => shell::Stop::Graceful,
            () = vanish => shell::Stop::Silent,
        }
    };
    let r = shell::run_with_options(&mut peer, &h.socket, stopped, &mut h.truth, &mut player, &mut h.opts).await;
    (r, peer.stats())
}

/// Closes the peer's outputs and says why it failed, if it did.
fn finish(h: Host, mut result: io::Result<()>, played_error: Option<io::Error>) -> Option<anyhow::Error> {
    let Host { cfg, truth, mut opts, played, .. } = h;
    let addr = cfg.addr;
    drop(truth);
    if let Some(tap) = opts.tap.as_mut()
        && let Err(e) = tap.finish()
        && result.is_ok()
    {
        result = Err(e);
    }
    if let Err(e) = result {
        // A ground-truth or capture error names its file already.
        let why = if shell::process::OutputError::is(&e) { "stopped" } else { "stopped on a socket error" };
        Some(anyhow!(e).context(format!("peer {addr} {why}")))
    } else if let (Some(e), Some((_, path))) = (played_error, &played) {
        Some(anyhow!(e).context(format!(
            "peer {addr} cannot write its played stream to {}; check the disk and --played-dir",
            path.display()
        )))
    } else {
        None
    }
}
