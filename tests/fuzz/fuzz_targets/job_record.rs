//! libFuzzer entry of [`hypha_fuzz::job_record`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hypha_fuzz::job_record(data));
