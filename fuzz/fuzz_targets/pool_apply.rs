#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pool::checks::check_pool_commands(data));
