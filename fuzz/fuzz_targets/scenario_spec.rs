#![no_main]
//! Fuzz target `scenario_spec`: see `plume_cc::fuzz::scenario_spec`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| plume_cc::fuzz::scenario_spec(data));
