//! `soplab-peer`: a SopCast-like peer, as a sans-IO core ([`Peer`], driven through
//! [`soplab_node::Node`]) and a UDP daemon.
//!
//! A peer joins through the tracker, opens links with HELLO -> reply -> ACK, sends each
//! neighbour a keep-alive with its buffer map about every second, pulls missing blocks ahead of
//! its playback point from at most gamma parents at once (preferring the ones that deliver
//! fastest), serves its neighbours' requests up to an upload cap with no tit-for-tat, and plays
//! the stream with a start-up buffer and a deadline per block. The source provider is the same
//! core with an [`Origin`] of blocks and a limit of 11 children.
//!
//! [`daemon`] runs peers over UDP: the `soplab-peer` binary and `soplab peer` host one or many
//! in a process.

pub mod config;
mod core;
pub mod daemon;
mod store;

pub use config::{PeerConfig, Profile};
pub use core::{Origin, Peer, PeerStats};
pub use store::BlockStore;
