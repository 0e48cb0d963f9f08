#![no_main]
//! Fuzz target `policy_file`: see `plume_cc::fuzz::policy_file`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| plume_cc::fuzz::policy_file(data));
