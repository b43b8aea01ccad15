//! A tokio shell that drives any sans-IO [`Node`] over a real UDP socket.
//!
//! [`run`] owns the I/O the core is kept free of: a monotonic clock (the [`Micros`] handed to
//! the core count from the moment `run` starts), one receive buffer, the core's timer, sending
//! its datagrams and writing its ground-truth events as JSON Lines. One call drives one node, so
//! a process runs many nodes by spawning one task per node, each with its own socket (see the
//! example below). [`bind_udp`] makes a socket with large kernel buffers, which a swarm of
//! busy nodes on one machine needs.
//!
//! The loop, per iteration:
//!
//! 1. collect everything the core has to say: its events (written to `truth`), its datagrams
//!    (sent), and any events raised while sending;
//! 2. wait for the first of: `stop` resolving, the core's deadline ([`Node::poll_timeout`])
//!    passing, a datagram arriving; the matching input goes to the core.
//!
//! Before the first iteration the core gets [`Node::handle_timeout`] at time 0, as in
//! [`soplab_node::sim::Network::add`], so that it can start (register, say hello). When `stop`
//! resolves, the shell collects the core's last datagrams and events, flushes `truth` and
//! returns `Ok(())`.
//!
//! Per-packet work allocates nothing in the shell itself: the receive buffer is reused, the
//! timer is one [`tokio::time::Sleep`] reset in place, and the wall-clock stamp is read once per
//! batch of events. (The core's [`soplab_node::Transmit`] payloads and [`Event::to_json_line`](soplab_node::Event::to_json_line) still
//! allocate.)
//!
//! # Sending
//!
//! A send that would block (`WouldBlock`) waits for the socket to become writable; a send that
//! fails for lack of kernel buffers (`ENOBUFS`, which epoll does not signal) backs off with
//! short sleeps (0.5 ms doubling, about 64 ms in all) and then drops the datagram. Any other send
//! error (no route, ...) drops the datagram with a `tracing` warning; repeated warnings are
//! thinned to the 1st, 2nd, 4th, 8th, ... occurrence so that a dead destination cannot flood
//! the log.
//!
//! # Ground truth
//!
//! Each event is one line: [`Event::to_json_line`](soplab_node::Event::to_json_line) with the CLOCK_REALTIME time in microseconds
//! and the node's [`Node::local_addr`], written through a [`LineWriter`], which caps `dropped`
//! lines per reason and second and counts the rest into `dropped_summary` lines (so a flood of
//! garbage cannot fill the disk). `truth` is written with blocking `std::io` calls: wrap a
//! file in a [`std::io::BufWriter`] (the shell flushes it at most a second after the last
//! write and on stop), or pass [`std::io::sink`] to discard events. A write error ends `run`
//! with that error: a daemon whose ground truth is incomplete should say so.
//!
//! # Example: many nodes in one process
//!
//! ```no_run
//! # use soplab_node::Node;
//! # use soplab_shell as shell;
//! # async fn demo<N: Node + Send + 'static>(nodes: Vec<N>) -> std::io::Result<()> {
//! let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
//! let mut tasks = Vec::new();
//! for mut node in nodes {
//!     let socket = shell::bind_udp(node.local_addr())?;
//!     let mut stop = stop_rx.clone();
//!     tasks.push(tokio::spawn(async move {
//!         let stop = async move {
//!             let _ = stop.wait_for(|s| *s).await;
//!         };
//!         let mut truth = std::io::BufWriter::new(std::fs::File::create("node.jsonl")?);
//!         shell::run(&mut node, socket, stop, &mut truth).await?;
//!         Ok::<_, std::io::Error>(node)
//!     }));
//! }
//! // ... later:
//! let _ = stop_tx.send(true);
//! for t in tasks {
//!     let _node = t.await.expect("node task panicked")?;
//! }
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::time::Instant;

use soplab_node::impair::{DelayQueue, Impairer};
use soplab_node::truth::LineWriter;
use soplab_node::{Media, Micros, Node};

/// Size of the receive buffer: larger than any soplab datagram (at most 1320 bytes). A longer
/// datagram is truncated by the kernel and then fails to decode in the core.
pub const RECV_BUF_LEN: usize = 2048;

/// Kernel socket buffer size [`bind_udp`] asks for (receive and send).
pub const SOCKET_BUF_LEN: usize = 4 << 20;

/// Longest time ground-truth lines may sit unflushed in `truth`.
pub const TRUTH_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// First back-off after `ENOBUFS`; it doubles up to [`ENOBUFS_MAX_BACKOFF`].
const ENOBUFS_FIRST_BACKOFF: Duration = Duration::from_micros(500);
const ENOBUFS_MAX_BACKOFF: Duration = Duration::from_millis(32);

/// Farthest ahead the shell sleeps at once; a later core deadline is re-armed on waking.
const MAX_SLEEP: Duration = Duration::from_secs(24 * 3600);

/// Binds a non-blocking UDP socket at `addr` (port 0 picks a free port; read it back with
/// [`UdpSocket::local_addr`]) and asks for [`SOCKET_BUF_LEN`]-byte kernel receive and send
/// buffers. The buffer sizes are best effort: Linux caps them at `net.core.rmem_max` and
/// `net.core.wmem_max` (raise those with `sysctl` for large swarms); a shortfall is logged at
/// debug level, never an error.
///
/// # Errors
/// Those of `socket(2)` and `bind(2)`: `AddrInUse` when another socket holds the address,
/// `AddrNotAvailable` when `addr` is not an address of this machine, `PermissionDenied` for a
/// privileged port.
///
/// # Panics
/// When called outside a tokio runtime with I/O enabled (as [`UdpSocket::from_std`] does).
pub fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    UdpSocket::from_std(bind_udp_std(addr)?)
}

/// [`bind_udp`] without tokio: a non-blocking std socket, for threads that bind in another
/// network namespace ([`crate::netns::run_in`]) and hand the socket to tokio afterwards.
///
/// # Errors
/// As [`bind_udp`].
pub fn bind_udp_std(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let Err(e) = socket.set_recv_buffer_size(SOCKET_BUF_LEN) {
        tracing::debug!(%addr, error = %e, "could not set SO_RCVBUF");
    }
    if let Err(e) = socket.set_send_buffer_size(SOCKET_BUF_LEN) {
        tracing::debug!(%addr, error = %e, "could not set SO_SNDBUF");
    }
    // Linux reports twice the usable size it granted; a value below the request means a cap.
    if let (Ok(rcv), Ok(snd)) = (socket.recv_buffer_size(), socket.send_buffer_size())
        && (rcv < SOCKET_BUF_LEN || snd < SOCKET_BUF_LEN)
    {
        tracing::debug!(
            %addr,
            rcvbuf = rcv,
            sndbuf = snd,
            wanted = SOCKET_BUF_LEN,
            "kernel capped the socket buffers (raise net.core.rmem_max / wmem_max)"
        );
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Drives `node` over `socket` until `stop` resolves; see the [module docs](self).
///
/// `socket` should be bound to `node.local_addr()` (the shell does not check it: behind a
/// wildcard bind the two differ on purpose). Ground-truth events go to `truth` as JSON Lines.
///
/// # Errors
/// A receive error other than the transient ones (`ConnectionRefused`, `ConnectionReset`,
/// `Interrupted`, `WouldBlock`, which are skipped), or a write error on `truth`. Send errors
/// never end the loop: the datagram is dropped and logged.
pub async fn run<N, W>(node: &mut N, socket: UdpSocket, stop: impl Future<Output = ()>, truth: &mut W) -> io::Result<()>
where
    N: Node + ?Sized,
    W: Write + ?Sized,
{
    run_with_options(node, &socket, stop, truth, &mut |_| {}, &mut Options::default()).await.map(|_| ())
}

/// How a session run by the shell ends: what the `stop` future of [`run_with_options`] yields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The daemon is stopping: the core says goodbye ([`Node::handle_shutdown`]; a peer leaves
    /// the tracker) and its last datagrams are sent.
    Graceful,
    /// The client vanishes as SopCast users do when they close the player: the core ends its
    /// session ([`Node::handle_vanish`]) and nothing more is sent.
    Silent,
}

impl From<()> for Stop {
    fn from((): ()) -> Stop {
        Stop::Graceful
    }
}

/// Optional extras of [`run_with_options`].
#[derive(Debug, Default)]
pub struct Options {
    /// Loss, delay and jitter on the way out, for kernels without `sch_netem` (its random
    /// stream goes on across the runs that share these options).
    pub impairment: Option<Impairer>,
    /// Write every datagram sent and received to this pcap.
    pub tap: Option<crate::tap::PcapTap>,
    /// Datagrams the impairment dropped (counted across runs with the same options).
    pub impaired_drops: u64,
}

/// [`run`] with [`Options`], also handing every played block ([`Node::poll_media`]) to
/// `player` in order, on a borrowed socket (so that a churned peer keeps
/// its address between sessions); returns how it stopped.
///
/// # Errors
/// As [`run`], plus a write error on the tap.
pub async fn run_with_options<N, W, S>(
    node: &mut N,
    socket: &UdpSocket,
    stop: impl Future<Output = S>,
    truth: &mut W,
    player: &mut (dyn FnMut(Media) + Send),
    opts: &mut Options,
) -> io::Result<Stop>
where
    N: Node + ?Sized,
    W: Write + ?Sized,
    S: Into<Stop>,
{
    let clock = Clock { start: Instant::now() };
    let impair = opts.impairment.take().filter(|i| i.model().is_active());
    let mut out = Output {
        local: node.local_addr(),
        dirty_since: None,
        send_errors: 0,
        batch: Vec::new(),
        impair,
        delayed: DelayQueue::default(),
        tap: opts.tap.take(),
        impaired_drops: 0,
        lines: LineWriter::new(node.local_addr()),
    };
    let result = drive(node, socket, stop, truth, player, &clock, &mut out).await;
    opts.tap = out.tap.take();
    opts.impairment = opts.impairment.take().or(out.impair.take());
    opts.impaired_drops += out.impaired_drops;
    if let Some(tap) = opts.tap.as_mut() {
        // Readers (the live progress line, a user's tcpdump -r) see complete records.
        tap.flush()?;
    }
    result
}

async fn drive<N, W, S>(
    node: &mut N,
    socket: &UdpSocket,
    stop: impl Future<Output = S>,
    truth: &mut W,
    player: &mut (dyn FnMut(Media) + Send),
    clock: &Clock,
    out: &mut Output,
) -> io::Result<Stop>
where
    N: Node + ?Sized,
    W: Write + ?Sized,
    S: Into<Stop>,
{
    let mut buf = vec![0u8; RECV_BUF_LEN];
    let sleep = tokio::time::sleep_until(clock.start + MAX_SLEEP);
    tokio::pin!(sleep, stop);

    node.handle_timeout(clock.now());
    let how = loop {
        out.collect(node, socket, clock, truth, player).await?;

        let node_deadline = node.poll_timeout();
        let flush_at = out.dirty_since.map(|t| t + TRUTH_FLUSH_INTERVAL);
        let wake = [node_deadline.map(|t| clock.at(t)), flush_at, out.next_delayed(clock)].into_iter().flatten().min();
        if let Some(w) = wake
            && sleep.deadline() != w
        {
            sleep.as_mut().reset(w);
        }

        tokio::select! {
            biased;
            s = &mut stop => break s.into(),
            () = &mut sleep, if wake.is_some() => {
                let now = clock.now();
                // Tokio rounds deadlines up to the millisecond, so a due timer has `t <= now`;
                // `max` keeps a core that re-arms for exactly `now` from spinning regardless.
                if let Some(t) = node_deadline
                    && clock.at(t) <= Instant::now()
                {
                    node.handle_timeout(now.max(t));
                }
                if flush_at.is_some_and(|f| f <= Instant::now()) {
                    out.lines.tick(truth, realtime_us())?;
                    truth.flush()?;
                    out.dirty_since = None;
                }
                out.send_due(socket, clock).await;
            }
            r = socket.recv_from(&mut buf) => match r {
                Ok((len, from)) => {
                    if let Some(tap) = out.tap.as_mut() {
                        tap.record(realtime_us(), from, out.local, &buf[..len])?;
                    }
                    node.handle_datagram(clock.now(), from, &buf[..len]);
                }
                Err(e) if is_transient_recv_error(&e) => {
                    tracing::debug!(node = %out.local, error = %e, "transient receive error, ignored");
                }
                Err(e) => {
                    tracing::error!(node = %out.local, error = %e, "receive failed; node stops");
                    return Err(e);
                }
            },
        }
    };

    match how {
        Stop::Graceful => {
            // Let the core say goodbye (a peer leaves the tracker), then send what it said,
            // including what the impairment still holds.
            node.handle_shutdown(clock.now());
            out.collect(node, socket, clock, truth, player).await?;
            out.send_all_delayed(socket).await;
        }
        Stop::Silent => {
            // The client is gone: its last events are written, nothing more is sent.
            node.handle_vanish(clock.now());
            while node.poll_transmit(clock.now()).is_some() {}
            while node.poll_media().is_some() {}
            out.write_events(node, truth)?;
        }
    }
    out.lines.close(truth)?;
    truth.flush()?;
    Ok(how)
}

/// The shell's monotonic clock: [`Micros`] since `start`.
struct Clock {
    start: Instant,
}

impl Clock {
    fn now(&self) -> Micros {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// The instant of core time `t`, capped at [`MAX_SLEEP`] from now.
    fn at(&self, t: Micros) -> Instant {
        let cap = Instant::now() + MAX_SLEEP;
        self.start.checked_add(Duration::from_micros(t)).map_or(cap, |i| i.min(cap))
    }
}

/// What the shell keeps between batches of output.
struct Output {
    local: SocketAddr,
    /// When `truth` got its first unflushed line.
    dirty_since: Option<Instant>,
    /// Send errors other than back-pressure, for thinning the warnings.
    send_errors: u64,
    /// Datagrams collected from the core, sent together with sendmmsg(2).
    batch: Vec<soplab_node::Transmit>,
    impair: Option<Impairer>,
    /// Datagrams the impairment holds back, due at core times.
    delayed: DelayQueue<soplab_node::Transmit>,
    tap: Option<crate::tap::PcapTap>,
    impaired_drops: u64,
    /// Writes the truth lines, folding floods of drops.
    lines: LineWriter,
}

impl Output {
    /// Writes the core's pending events, sends its pending datagrams, then writes the events
    /// raised while sending (the order [`soplab_node::sim::Network`] uses).
    async fn collect<N, W>(
        &mut self,
        node: &mut N,
        socket: &UdpSocket,
        clock: &Clock,
        truth: &mut W,
        player: &mut (dyn FnMut(Media) + Send),
    ) -> io::Result<()>
    where
        N: Node + ?Sized,
        W: Write + ?Sized,
    {
        while let Some(m) = node.poll_media() {
            player(m);
        }
        self.write_events(node, truth)?;
        let now = clock.now();
        let mut batch = std::mem::take(&mut self.batch);
        let mut sent_any = false;
        loop {
            let t = node.poll_transmit(now);
            let more = t.is_some();
            batch.extend(t);
            if batch.len() >= MAX_BATCH || (!more && !batch.is_empty()) {
                self.impair_batch(&mut batch, clock);
                self.send_batch(socket, &batch).await;
                batch.clear();
                sent_any = true;
            }
            if !more {
                break;
            }
        }
        self.batch = batch;
        if sent_any {
            self.write_events(node, truth)?;
        }
        Ok(())
    }

    /// Applies the impairment to `batch`: drops the lost datagrams and moves the delayed ones
    /// to the queue, leaving in `batch` what goes out now.
    fn impair_batch(&mut self, batch: &mut Vec<soplab_node::Transmit>, clock: &Clock) {
        let Some(imp) = self.impair.as_mut() else { return };
        let now = clock.now();
        let mut kept = Vec::with_capacity(batch.len());
        for t in batch.drain(..) {
            match imp.fate() {
                None => self.impaired_drops += 1,
                Some(0) => kept.push(t),
                Some(wait) => self.delayed.push(now.saturating_add(wait), t),
            }
        }
        *batch = kept;
    }

    /// When the earliest held-back datagram is due.
    fn next_delayed(&self, clock: &Clock) -> Option<Instant> {
        self.delayed.next_due().map(|t| clock.at(t))
    }

    /// Sends the held-back datagrams that are due.
    async fn send_due(&mut self, socket: &UdpSocket, clock: &Clock) {
        let now = clock.now();
        let mut due = Vec::new();
        while let Some((_, t)) = self.delayed.pop_due(now) {
            due.push(t);
        }
        if !due.is_empty() {
            self.send_batch(socket, &due).await;
        }
    }

    /// Sends everything still held back, in due order (at shutdown).
    async fn send_all_delayed(&mut self, socket: &UdpSocket) {
        let mut all = Vec::new();
        while let Some((_, t)) = self.delayed.pop() {
            all.push(t);
        }
        if !all.is_empty() {
            self.send_batch(socket, &all).await;
        }
    }

    fn write_events<N, W>(&mut self, node: &mut N, truth: &mut W) -> io::Result<()>
    where
        N: Node + ?Sized,
        W: Write + ?Sized,
    {
        let mut ts_us = None;
        while let Some(event) = node.poll_event() {
            let ts = *ts_us.get_or_insert_with(realtime_us);
            self.lines.write(truth, &event, ts)?;
            self.dirty_since.get_or_insert_with(Instant::now);
        }
        Ok(())
    }

    async fn send(&mut self, socket: &UdpSocket, payload: &[u8], dst: SocketAddr) {
        let mut backoff = ENOBUFS_FIRST_BACKOFF;
        loop {
            let err = match socket.try_send_to(payload, dst) {
                Ok(_) => return,
                Err(e) => e,
            };
            match err.kind() {
                io::ErrorKind::WouldBlock => {
                    // `try_send_to` cleared the readiness, so this waits for real.
                    if let Err(e) = socket.writable().await {
                        self.warn_send(dst, payload.len(), &e);
                        return;
                    }
                }
                io::ErrorKind::Interrupted => {}
                _ if is_no_buffer_space(&err) && backoff <= ENOBUFS_MAX_BACKOFF => {
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
                _ => {
                    self.warn_send(dst, payload.len(), &err);
                    return;
                }
            }
        }
    }

    /// Sends `batch` in order with as few sendmmsg(2) calls as the socket allows; a video
    /// response of 32 packets is one system call instead of 32. (UDP GSO would save more, but
    /// tcpdump on a veth sees a GSO send as one large packet, so captures would no longer show
    /// SopCast's packet sizes.) Errors are handled per datagram as in [`Output::send`].
    async fn send_batch(&mut self, socket: &UdpSocket, batch: &[soplab_node::Transmit]) {
        if let Some(tap) = self.tap.as_mut() {
            let ts = realtime_us();
            for t in batch {
                if let Err(e) = tap.record(ts, self.local, t.dst, &t.payload) {
                    tracing::error!(node = %self.local, "{e}; capture stopped");
                    let _ = tap.finish();
                    self.tap = None;
                    break;
                }
            }
        }
        let mut i = 0;
        let mut backoff = ENOBUFS_FIRST_BACKOFF;
        while i < batch.len() {
            if batch.len() - i == 1 {
                self.send(socket, &batch[i].payload, batch[i].dst).await;
                return;
            }
            let chunk = &batch[i..];
            let err = match socket.try_io(tokio::io::Interest::WRITABLE, || sendmmsg(socket, chunk)) {
                Ok(n) => {
                    i += n.max(1);
                    backoff = ENOBUFS_FIRST_BACKOFF;
                    continue;
                }
                Err(e) => e,
            };
            match err.kind() {
                io::ErrorKind::WouldBlock => {
                    if let Err(e) = socket.writable().await {
                        self.warn_send(batch[i].dst, batch[i].payload.len(), &e);
                        i += 1;
                    }
                }
                io::ErrorKind::Interrupted => {}
                _ if is_no_buffer_space(&err) && backoff <= ENOBUFS_MAX_BACKOFF => {
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
                _ => {
                    // The first datagram of the chunk failed: drop it, go on with the rest.
                    self.warn_send(batch[i].dst, batch[i].payload.len(), &err);
                    i += 1;
                    backoff = ENOBUFS_FIRST_BACKOFF;
                }
            }
        }
    }

    fn warn_send(&mut self, dst: SocketAddr, len: usize, e: &io::Error) {
        self.send_errors += 1;
        if self.send_errors.is_power_of_two() {
            tracing::warn!(
                node = %self.local,
                %dst,
                len,
                error = %e,
                send_errors = self.send_errors,
                "send failed; datagram dropped (further failures are logged at powers of two)"
            );
        }
    }
}

/// Most datagrams handed to one sendmmsg(2) call.
const MAX_BATCH: usize = 64;

/// One sendmmsg(2) over `batch` (at most [`MAX_BATCH`] of it); returns how many were sent.
fn sendmmsg(socket: &UdpSocket, batch: &[soplab_node::Transmit]) -> io::Result<usize> {
    use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage};
    use std::os::fd::AsRawFd;
    let batch = &batch[..batch.len().min(MAX_BATCH)];
    let iovs: Vec<[io::IoSlice<'_>; 1]> = batch.iter().map(|t| [io::IoSlice::new(&t.payload)]).collect();
    let addrs: Vec<Option<SockaddrStorage>> = batch.iter().map(|t| Some(SockaddrStorage::from(t.dst))).collect();
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(batch.len(), None);
    let sent = nix::sys::socket::sendmmsg(socket.as_raw_fd(), &mut headers, &iovs, &addrs, [], MsgFlags::empty())
        .map_err(io::Error::from)?;
    Ok(sent.count())
}

/// CLOCK_REALTIME in microseconds since the Unix epoch (0 if the clock is before 1970).
pub fn realtime_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn is_transient_recv_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// `ENOBUFS`: the kernel (or the interface queue) had no buffer for the datagram.
fn is_no_buffer_space(e: &io::Error) -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    const ENOBUFS: i32 = 105;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    const ENOBUFS: i32 = 55; // macOS and the BSDs
    e.raw_os_error() == Some(ENOBUFS)
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::net::{Ipv4Addr, SocketAddr};

    use super::*;
    use soplab_node::{DropReason, Event, SECOND, Transmit};

    /// Echoes every datagram back, raises one event per datagram, and ticks once a second.
    struct Echo {
        addr: SocketAddr,
        out: VecDeque<Transmit>,
        events: VecDeque<Event>,
        next_tick: Micros,
        ticks: u32,
        inputs: Vec<Micros>,
    }

    impl Node for Echo {
        fn local_addr(&self) -> SocketAddr {
            self.addr
        }
        fn handle_datagram(&mut self, now: Micros, from: SocketAddr, data: &[u8]) {
            self.inputs.push(now);
            self.out.push_back(Transmit { dst: from, payload: data.to_vec() });
            self.events.push_back(Event::Dropped { from, reason: DropReason::Undecodable });
        }
        fn handle_timeout(&mut self, now: Micros) {
            self.inputs.push(now);
            if now >= self.next_tick {
                self.ticks += 1;
                self.next_tick = now + SECOND / 10;
            }
        }
        fn poll_transmit(&mut self, _now: Micros) -> Option<Transmit> {
            self.out.pop_front()
        }
        fn poll_timeout(&self) -> Option<Micros> {
            Some(self.next_tick)
        }
        fn poll_event(&mut self) -> Option<Event> {
            self.events.pop_front()
        }
    }

    #[tokio::test]
    async fn echoes_ticks_and_writes_truth() {
        let socket = bind_udp((Ipv4Addr::LOCALHOST, 0).into()).unwrap();
        let addr = socket.local_addr().unwrap();
        let mut node =
            Echo { addr, out: VecDeque::new(), events: VecDeque::new(), next_tick: 0, ticks: 0, inputs: Vec::new() };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut truth = Vec::new();
            let stop = async {
                let _ = stop_rx.await;
            };
            run(&mut node, socket, stop, &mut truth).await.unwrap();
            (node, truth)
        });

        let client = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let mut buf = [0u8; 64];
        for i in 0..3u8 {
            client.send_to(&[i; 5], addr).await.unwrap();
            let (n, from) =
                tokio::time::timeout(Duration::from_secs(2), client.recv_from(&mut buf)).await.unwrap().unwrap();
            assert_eq!((&buf[..n], from), (&[i; 5][..], addr));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        stop_tx.send(()).unwrap();
        let (node, truth) = tokio::time::timeout(Duration::from_secs(2), task).await.unwrap().unwrap();

        assert!(node.ticks >= 2, "timer ran {} times", node.ticks);
        assert!(node.inputs.windows(2).all(|w| w[0] <= w[1]), "clock is monotonic");
        let text = String::from_utf8(truth).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        let client_addr = client.local_addr().unwrap().to_string();
        for l in lines {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["event"], "dropped");
            assert_eq!(v["node"], addr.to_string());
            assert_eq!(v["from"], client_addr);
            assert!(v["ts_us"].as_u64().unwrap() > 1_600_000_000_000_000);
        }
    }

    #[tokio::test]
    async fn stop_returns_at_once_and_send_errors_do_not_end_the_loop() {
        let socket = bind_udp((Ipv4Addr::LOCALHOST, 0).into()).unwrap();
        let addr = socket.local_addr().unwrap();
        let mut out = VecDeque::new();
        // Port 0 is not a valid destination: the send fails and is dropped.
        out.push_back(Transmit { dst: (Ipv4Addr::LOCALHOST, 0).into(), payload: vec![1, 2, 3] });
        let mut node = Echo { addr, out, events: VecDeque::new(), next_tick: u64::MAX, ticks: 0, inputs: Vec::new() };
        let stop = tokio::time::sleep(Duration::from_millis(50));
        tokio::time::timeout(Duration::from_secs(2), run(&mut node, socket, stop, &mut io::sink()))
            .await
            .expect("stopped in time")
            .unwrap();
        assert!(node.out.is_empty());
    }

    #[tokio::test]
    async fn bind_reports_address_in_use() {
        let a = bind_udp((Ipv4Addr::LOCALHOST, 0).into()).unwrap();
        let err = bind_udp(a.local_addr().unwrap()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }

    #[test]
    fn clock_caps_far_deadlines() {
        let clock = Clock { start: Instant::now() };
        assert!(clock.at(u64::MAX) <= Instant::now() + MAX_SLEEP);
        assert_eq!(clock.at(5), clock.start + Duration::from_micros(5));
    }
}
