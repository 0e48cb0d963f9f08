#![no_main]
//! Fuzz target `duration`: see `plume_cc::fuzz::duration`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| plume_cc::fuzz::duration(data));
