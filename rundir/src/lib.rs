//! `soplab-rundir`: the files of a soplab run directory, one owner for each format, shared by
//! the programs that write them (the daemons, the swarm) and those that read them (the swarm's
//! progress line and summary, the analyzer, tests, users' scripts).
//!
//! | file | module |
//! |---|---|
//! | `truth/*.jsonl`: what every daemon really did | [`truth`] |
//! | `run.json`: hosts, addresses, namespaces, captures | [`run`] |
//! | `summary.json`: how each peer played | [`summary`] |
//! | continuity over time windows, from the truth's play lines | [`continuity`] |
//! | `workload.csv` and the peers' schedules | [`schedule`] |
//! | `peer-<ip>-<port>.*`: per-host file names | [`stem`] |
//! | the address plan of a run | [`plan`] |
//! | `.soplab-run`: the marker and lock of a directory soplab writes, and what it may clear | [`claim`] |
//! | the file locks of output directories and loopback blocks | [`lock`] |
//!
//! It depends on serde and nothing of soplab's, so the analyzer can read run directories
//! without depending on the daemons.

pub mod claim;
pub mod continuity;
pub mod lock;
pub mod plan;
pub mod run;
pub mod schedule;
pub mod stem;
pub mod summary;
pub mod truth;
