#![no_main]
//! Fuzz target `scripted_policy`: see `plume_cc::fuzz::scripted_policy`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| plume_cc::fuzz::scripted_policy(data));
