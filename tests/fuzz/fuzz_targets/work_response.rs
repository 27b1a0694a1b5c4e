//! libFuzzer entry of [`hypha_fuzz::work_response`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hypha_fuzz::work_response(data));
