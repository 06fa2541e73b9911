//! Benchmarks live beside this file as `[[bench]]` targets of `benches/Cargo.toml`; results and the
//! commands that produce them are in `docs/PERFORMANCE.md`.
