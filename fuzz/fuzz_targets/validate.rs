//! Any bytes through the whole of `kargo validate`'s library path: YAML with positions and
//! limits, schema validation and error wording, cross-object checks, and every report
//! format. It must never panic, whatever the input.
#![no_main]

use kargo::manifest::load::Source;
use kargo::manifest::validate::{Options, OutputFormat, render, validate_sources};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Two copies: the cross-object checks then see duplicates and references across files.
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
    let options = Options {
        threads: 1,
        ..Options::default()
    };
    let report = validate_sources(&sources, &options);
    for format in [OutputFormat::Text, OutputFormat::Json, OutputFormat::Junit] {
        let _ = render(&report, format, true);
    }
    let _ = report.summary();
});
