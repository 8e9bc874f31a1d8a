#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| proto::checks::check_admin_json(data));
