//! `soplab`: swarms of soplab's tracker, source and peers — in virtual time, on loopback, and
//! in network namespaces captured by tcpdump, churned by the client-behaviour model — and the
//! summaries that say how they did.
//!
//! | module | what it is for |
//! |---|---|
//! | [`scenario`] | a run's settings, from flags, a TOML file or a preset, resolved with their defaults |
//! | [`dist`] | the distributions hosts draw their link rates and delays from |
//! | [`fault`] | faults injected into a running swarm: peer processes killed, the tracker restarted, the source stopped |
//! | [`run`] | `soplab swarm`: a run in phases, from the run directory to summary.json |
//! | [`netns`] | the hosts' network namespaces on a bridge, and sweeping what killed runs left |
//! | [`tcpdump`] | capture with tcpdump in a namespace, and live packet counts of pcaps |
//! | [`process`] | child processes in a namespace, tied to the orchestrator's life |
//! | [`played`] | the check of each peer's played stream against the source's content |
//! | [`summary`] | building summary.json from the daemons' stats |
//! | [`workload`] | the churn model of Borges et al. and its schedules |
//! | [`virtual_swarm`] | a whole swarm in virtual time: the engine of `--mode virtual`, and a builder for tests |
//!
//! The files of a run directory (truth, run.json, summary.json, schedules, the address plan)
//! are defined once, in `soplab_rundir`.

pub mod dist;
pub mod fault;
pub mod netns;
pub mod played;
pub mod process;
pub mod run;
pub mod scenario;
pub mod summary;
pub mod tcpdump;
pub mod virtual_swarm;
pub mod workload;
