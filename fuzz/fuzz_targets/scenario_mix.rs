#![no_main]
//! Fuzz target `scenario_mix`: see `plume_cc::fuzz::scenario_mix`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| plume_cc::fuzz::scenario_mix(data));
