//! `soplab-peer`: a SopCast-like peer, as a sans-IO core ([`Peer`], driven through
//! [`soplab_node::Node`]) and a UDP daemon.
//!
//! A peer joins through the tracker, opens links with HELLO -> reply -> ACK to a bounded list
//! of neighbours that it refreshes now and then (peers never met first), sends each neighbour
//! a keep-alive with its buffer map about every second (jittered, now and then late; on time
//! and twice as often to its children), pulls the stream as sub-streams each from a parent it
//! keeps while it delivers (at most gamma at once), serves its neighbours' requests up to an
//! upload cap with no tit-for-tat, and plays the stream with a start-up buffer and a deadline
//! per block. The source provider is the same core with an [`Origin`] of blocks and a limit of
//! 11 children. [`Profile`] names the behaviour: SopCast as Tang et al. measured it (the
//! default), or the full mesh soplab had before, to compare; docs/FIDELITY.md says which knob
//! drives which measurement.
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
