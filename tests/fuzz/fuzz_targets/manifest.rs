//! libFuzzer entry of [`hypha_fuzz::manifest`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hypha_fuzz::manifest(data));
