#![no_main]
// cargo fuzz run import_csv — CSV token files: any bytes must give entries (tokens or problems
// naming a line), never a panic; every token returned passed the shared checks.
use libfuzzer_sys::fuzz_target;
use radmfa::import::{check_token, csv, CsvDefaults, Entry};

fuzz_target!(|data: &[u8]| {
    for entry in csv::parse(data, &CsvDefaults::default()) {
        if let Entry::Token(t) = entry {
            assert!(check_token(&t.token).is_ok());
            assert!(t.origin.starts_with("line "));
        }
    }
});
