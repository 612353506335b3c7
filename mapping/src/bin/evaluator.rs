//! `hookplane-evaluator`: an evaluator process on its own, for this crate's tests, the fuzz
//! target and the benchmarks (the server runs `hookplane evaluator`, the same loop).

fn main() -> std::process::ExitCode {
    hookplane_mapping::sandbox::serve()
}
