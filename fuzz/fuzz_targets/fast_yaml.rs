//! The fast YAML reader against the full one, on any bytes: whenever the fast reader takes
//! an input, the full reader must read it without error and to the same documents. (The
//! fast reader may decline anything; it may never disagree.)
#![no_main]

use kargo::manifest::yaml::{Limits, parse_fast, parse_stream};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(fast) = parse_fast(data, &Limits::DEFAULT) else {
        return;
    };
    let full = parse_stream(data, &Limits::DEFAULT);
    assert!(
        full.errors.is_empty(),
        "fast reader took what the full reader refuses: {:?}",
        full.errors
    );
    let fast: Vec<_> = fast.iter().map(|d| (d.index, &d.value)).collect();
    let full: Vec<_> = full.documents.iter().map(|d| (d.index, &d.value)).collect();
    assert_eq!(fast, full);
});
