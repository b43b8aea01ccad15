//! `soplab`: swarms of soplab's tracker, source and peers — in virtual time, on loopback, and
//! in network namespaces captured by tcpdump, churned by the client-behaviour model — and the
//! summaries that say how they did.

pub mod capture;
pub mod loopback;
pub mod netns;
pub mod process;
pub mod run;
pub mod scenario;
pub mod summary;
pub mod virtual_swarm;
pub mod workload;
