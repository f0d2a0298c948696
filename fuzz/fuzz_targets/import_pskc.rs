#![no_main]
#![allow(dead_code)]
// cargo fuzz run import_pskc — the body lives in fuzz/common/bodies.rs, shared with the
// stable-toolchain corpus test (tests/fuzz_corpus.rs).
use libfuzzer_sys::fuzz_target;

include!("../common/bodies.rs");

fuzz_target!(|data: &[u8]| import_pskc(data));
