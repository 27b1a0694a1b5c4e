//! libFuzzer entry of [`hypha_fuzz::api_token`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hypha_fuzz::api_token(data));
