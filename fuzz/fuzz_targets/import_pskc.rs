#![no_main]
// cargo fuzz run import_pskc — PSKC (RFC 6030) files are outside input: any bytes must give
// tokens or an error, never a panic, a hang or unbounded memory (DTDs refused, size, node
// count and depth bounded). Tried without a key and with a fixed AES-128 key, so the
// encrypted paths (MAC check, CBC, key wrap) are reached too.
use libfuzzer_sys::fuzz_target;
use radmfa::import::{pskc, Decryption};
use radmfa::secret::Secret;

fuzz_target!(|data: &[u8]| {
    let _ = pskc::need(data);
    let _ = pskc::parse(data, &Decryption::None);
    let _ = pskc::parse(data, &Decryption::Key(Secret::new(vec![0x42; 16])));
});
