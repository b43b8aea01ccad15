//! `soplab-node`: the protocol contract the tracker, the source and the peers share, with no
//! I/O in it.
//!
//! Each daemon's protocol logic is a sans-IO state machine (after quinn-proto): it takes the
//! current time and a datagram or a timer, and hands back datagrams to send, the time it next
//! wants to be woken, and ground-truth events. It owns no socket and reads no clock, so the same
//! core runs under the tokio UDP shell (`soplab-shell`) and in the deterministic virtual-time
//! [`sim`] network. Both apply the same [`impair`] model of loss, delay and jitter.
//!
//! Nothing here depends on tokio, sockets or a logger: a core built on this crate can be
//! fuzzed, simulated and tested without any runtime.

use std::net::SocketAddr;

pub mod impair;
pub mod secret;
pub mod sim;

pub use secret::Secret;

/// Ground-truth events, whose JSON lines belong to the run directory's formats.
pub use soplab_rundir::truth;
pub use truth::{DropReason, Event};

/// Microseconds on the caller's monotonic clock (virtual time in tests).
pub type Micros = u64;

/// One microsecond-based second, for readability.
pub const SECOND: Micros = 1_000_000;

/// A datagram a core wants sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub dst: SocketAddr,
    pub payload: Vec<u8>,
}

/// The sans-IO interface every daemon core implements.
pub trait Node: std::any::Any {
    /// The address this node is bound to (what others see as its source address).
    fn local_addr(&self) -> SocketAddr;

    /// Feeds one received datagram.
    fn handle_datagram(&mut self, now: Micros, from: SocketAddr, data: &[u8]);

    /// Tells the core that `now` has come; it runs whatever timers are due.
    fn handle_timeout(&mut self, now: Micros);

    /// The next datagram to send, if any. Call until `None` after every input.
    fn poll_transmit(&mut self, now: Micros) -> Option<Transmit>;

    /// When the core next needs [`Node::handle_timeout`], if ever.
    fn poll_timeout(&self) -> Option<Micros>;

    /// The next ground-truth event, if any. Call until `None` after every input.
    fn poll_event(&mut self) -> Option<Event>;

    /// Tells the core its daemon is stopping cleanly, so it can announce it (a peer sends the
    /// tracker a leave and logs the end of its session). A peer that crashes or, like a SopCast
    /// client that quits, just goes silent never gets this call.
    fn handle_shutdown(&mut self, _now: Micros) {}

    /// The client vanishes without a word, as SopCast users do when they close the player:
    /// the core ends its session and sends nothing more (the shell discards anything it still
    /// queues). By default nothing happens.
    fn handle_vanish(&mut self, _now: Micros) {}

    /// The next piece of media handed to the player (peers only), if any. Call until `None`
    /// after every input; a core keeps at most a few seconds of it.
    fn poll_media(&mut self) -> Option<Media> {
        None
    }
}

/// A played block, in playback order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    pub block: u32,
    pub data: bytes::Bytes,
}
