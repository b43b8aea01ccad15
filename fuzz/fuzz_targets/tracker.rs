//! The tracker core driven through `Node` by a program of registrations, queries, leaves and
//! garbage from many addresses in virtual time; see `src/tracker.rs` for the invariants.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: soplab_fuzz::alloc::Counting = soplab_fuzz::alloc::Counting;

fuzz_target!(|data: &[u8]| soplab_fuzz::tracker::run(data));
