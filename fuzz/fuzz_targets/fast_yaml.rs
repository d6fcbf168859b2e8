//! The fast path of `kargo validate` against the full one, on any bytes: whenever the fast
//! reader takes an input, the full reader must read it without error and to the same
//! documents, and validation with the fast path (the reader's tree checked in place) must
//! give the same report and objects as validation through the full reader alone. (The fast
//! reader may decline anything; it may never disagree.)
#![no_main]

use kargo::manifest::load::Source;
use kargo::manifest::validate::{Options, OutputFormat, render, validate_sources};
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

    let sources = [
        Source {
            name: "a.yaml".into(),
            bytes: data.to_vec(),
        },
        Source {
            name: "b.yaml".into(),
            bytes: data.to_vec(),
        },
    ];
    let with_fast = Options {
        threads: 1,
        ..Options::default()
    };
    let without = Options {
        fast_path: false,
        ..with_fast
    };
    let one = validate_sources(&sources, &with_fast);
    let other = validate_sources(&sources, &without);
    assert_eq!(
        render(&one, OutputFormat::Json, false),
        render(&other, OutputFormat::Json, false)
    );
    assert_eq!(
        serde_json::to_string(&one.objects).ok(),
        serde_json::to_string(&other.objects).ok()
    );
});
