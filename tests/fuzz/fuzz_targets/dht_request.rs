//! libFuzzer entry of [`hypha_fuzz::dht_request`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hypha_fuzz::dht_request(data));
