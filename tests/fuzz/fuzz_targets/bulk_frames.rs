//! libFuzzer entry of [`hypha_fuzz::bulk_frames`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hypha_fuzz::bulk_frames(data));
