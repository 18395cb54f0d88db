//! The root package of the flatrpc workspace. It holds the cross-crate integration
//! tests (`tests/`) and the benchmarks (`benches/`); the code lives in `dataplane`,
//! `specgen` and `dpdk-sys`.

pub use dataplane;
