//! Harnesses for the `peer` and `tracker` fuzz targets: each reads its input as a program of
//! operations on one sans-IO core (driven only through [`soplab_node::Node`]) in virtual time
//! — datagrams from a few addresses, raw or built with the wire crate so that handshakes,
//! requests and video get through, timers, clock jumps — and checks invariants after every
//! step. A failed invariant panics, which libFuzzer reports as a crash.
//!
//! [`check::invariant`] names each invariant; `SOPLAB_FUZZ_LAX=name,name` turns the named ones
//! into a warning printed once (for invariants a core is known to break while its fix is
//! pending). Heap use is measured by [`alloc::Counting`], which each target installs as its
//! global allocator.

pub mod alloc;
pub mod check;
pub mod drive;
pub mod peer;
pub mod tracker;

/// Ends a program early: operations past this many are ignored.
pub const MAX_OPS: usize = 256;

/// The harness's own tests measure the heap as the fuzz targets do.
#[cfg(test)]
#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;
