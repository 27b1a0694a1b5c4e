//! libFuzzer entry of [`hypha_fuzz::node_envelope`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hypha_fuzz::node_envelope(data));
