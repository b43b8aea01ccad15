//! `soplab`: swarms of soplab's tracker, source and peers — in virtual time, on loopback, and
//! (later) in network namespaces — and the summaries that say how they did.

pub mod loopback;
pub mod summary;
pub mod virtual_swarm;
pub mod workload;
