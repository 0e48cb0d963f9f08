#![no_main]
//! Fuzz target `mahimahi_trace`: see `plume_cc::fuzz::mahimahi_trace`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| plume_cc::fuzz::mahimahi_trace(data));
