//! A peer (or source) core driven through `Node` by a program of datagrams and timers in
//! virtual time; see `src/peer/mod.rs` for the operations and the invariants.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: soplab_fuzz::alloc::Counting = soplab_fuzz::alloc::Counting;

fuzz_target!(|data: &[u8]| soplab_fuzz::peer::run(data));
