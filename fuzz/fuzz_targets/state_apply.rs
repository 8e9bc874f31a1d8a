#![no_main]

// gcsd's replicated state machine, compiled in from its source (gcsd is a binary crate): the
// same file, so the same `apply`.
#[path = "../../crates/gcsd/src/state.rs"]
#[allow(dead_code)]
mod state;

libfuzzer_sys::fuzz_target!(|data: &[u8]| state::check_commands(data));
