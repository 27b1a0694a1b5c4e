//! libFuzzer entry of [`hypha_fuzz::gossip_seal`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hypha_fuzz::gossip_seal(data));
