//! `soplab-benches`: criterion benchmarks (`benches/`) and benchmark scripts for soplab. The
//! library itself is empty; run `cargo bench -p soplab-benches` and see `docs/PERFORMANCE.md`.
