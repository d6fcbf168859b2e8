//! Unit tests: one per rule of the module documentation.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;

/// Parses one document that must read cleanly.
fn one(text: &str) -> Document {
    match parse_documents(text.as_bytes()) {
        Ok(mut docs) if docs.len() == 1 => docs.remove(0),
        other => panic!("expected one document from {text:?}, got {other:?}"),
    }
}

/// Parses text that must fail, returning its errors.
fn errors(text: &[u8]) -> Vec<YamlError> {
    match parse_documents(text) {
        Err(errors) => errors,
        Ok(docs) => panic!(
            "expected errors from {:?}, got {docs:?}",
            String::from_utf8_lossy(text)
        ),
    }
}

fn pos(line: usize, column: usize) -> Position {
    Position { line, column }
}

#[test]
fn plain_scalars_follow_the_core_schema() {
    let doc = one(concat!(
        "t: true\nf: False\nn: null\ntilde: ~\nempty:\n",
        "int: 42\nneg: -7\nplus: +3\nhex: 0x1F\noct: 0o17\nbin: 0b101\n",
        "float: 2.5\nexp: 1e3\nzero_lead: 0123\nword: hello\nyes: yes\n",
    ));
    assert_eq!(
        doc.value,
        json!({
            "t": true, "f": false, "n": null, "tilde": null, "empty": null,
            "int": 42, "neg": -7, "plus": 3, "hex": 31, "oct": 15, "bin": 5,
            "float": 2.5, "exp": 1000.0, "zero_lead": "0123", "word": "hello", "yes": "yes",
        })
    );
}

#[test]
fn quoted_and_block_scalars_stay_strings() {
    let doc = one("a: \"true\"\nb: '42'\nc: \"4.2\"\nd: |\n  null\ne: ! 12\n");
    assert_eq!(
        doc.value,
        json!({"a": "true", "b": "42", "c": "4.2", "d": "null\n", "e": "12"})
    );
    assert_eq!(doc.positions.is_plain("/c"), Some(false));
}

#[test]
fn unquoted_version_tag_is_a_number_and_keeps_its_source_text() {
    let doc = one("spec:\n  tag: 4.2\n  other: 1.10\n");
    assert_eq!(doc.value, json!({"spec": {"tag": 4.2, "other": 1.1}}));
    assert!(doc.value["spec"]["tag"].is_number());
    assert_eq!(doc.positions.scalar_source("/spec/tag"), Some("4.2"));
    assert_eq!(doc.positions.is_plain("/spec/tag"), Some(true));
    assert_eq!(doc.positions.scalar_source("/spec/other"), Some("1.10"));
    assert_eq!(doc.positions.value("/spec/tag"), Some(pos(2, 8)));
    assert_eq!(doc.positions.scalar_source("/spec"), None);
}

#[test]
fn one_point_ten_is_the_number_one_point_one() {
    assert_eq!(one("v: 1.10\n").value, json!({"v": 1.1}));
}

#[test]
fn core_tags_are_honoured() {
    let doc = one("a: !!str 4.2\nb: !!int \"12\"\nc: !!float 1\nd: !!bool true\ne: !!null ~\n");
    assert_eq!(
        doc.value,
        json!({"a": "4.2", "b": 12, "c": 1.0, "d": true, "e": null})
    );
    let errs = errors(b"a: !!int abc\n");
    assert!(
        matches!(&errs[..], [YamlError::InvalidTaggedValue { position, .. }] if *position == pos(1, 4))
    );
}

#[test]
fn unknown_tags_are_errors() {
    let errs = errors(b"a: !secret hunter2\nb: !!binary aGk=\n");
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        matches!(&errs[0], YamlError::UnsupportedTag { tag, position } if tag == "!secret" && *position == pos(1, 4))
    );
    assert!(matches!(&errs[1], YamlError::UnsupportedTag { tag, .. } if tag == "!!binary"));
}

#[test]
fn non_finite_floats_are_errors() {
    let errs = errors(b"a: .inf\nb: -.Inf\nc: .nan\n");
    assert_eq!(errs.len(), 3);
    assert!(
        errs.iter()
            .all(|e| matches!(e, YamlError::NonFiniteNumber { .. }))
    );
    assert!(errs[0].to_string().contains("quote it"));
}

#[test]
fn integers_beyond_64_bits_are_errors() {
    let errs = errors(b"a: 18446744073709551616\n");
    assert!(
        matches!(&errs[..], [YamlError::IntegerOutOfRange { text, .. }] if text == "18446744073709551616")
    );
    assert_eq!(
        one("a: 18446744073709551615\nb: -9223372036854775808\n").value,
        json!({"a": u64::MAX, "b": i64::MIN})
    );
}

#[test]
fn duplicate_key_is_an_error_at_the_second_key() {
    let errs = errors(b"metadata:\n  name: a\n  labels: {}\n  name: b\n");
    assert_eq!(
        errs,
        vec![YamlError::DuplicateKey {
            position: pos(4, 3),
            key: "name".into(),
            first: pos(2, 3),
        }]
    );
    assert!(errs[0].to_string().contains("\"name\""));
    assert_eq!(errors(b"{a: 1, a: 2}").len(), 1);
}

#[test]
fn non_string_keys_become_their_source_text() {
    let doc = one("1: x\ntrue: y\n~: z\n1.10: w\n\"q\": v\n");
    assert_eq!(
        doc.value,
        json!({"1": "x", "true": "y", "~": "z", "1.10": "w", "q": "v"})
    );
    assert_eq!(doc.positions.key("/1.10"), Some(pos(4, 1)));
}

#[test]
fn collection_keys_are_errors() {
    let errs = errors(b"? [a, b]\n: 1\nc: 2\n");
    assert!(matches!(&errs[..], [YamlError::NonScalarKey { position }] if *position == pos(1, 3)));
}

#[test]
fn merge_keys_are_errors() {
    let errs = errors(b"base: &b {x: 1}\nthing:\n  <<: *b\n  y: 2\n");
    assert_eq!(
        errs,
        vec![YamlError::MergeKey {
            position: pos(3, 3)
        }]
    );
    assert!(
        errs[0]
            .to_string()
            .contains("merge keys (<<) are not supported")
    );
    assert_eq!(one("\"<<\": 1\n").value, json!({"<<": 1}));
}

#[test]
fn aliases_expand_to_copies() {
    let doc = one("env: &env {A: \"1\", B: two}\nx: *env\nk: &k key\n*k : v\nn: &n 5\nm: *n\n");
    assert_eq!(
        doc.value,
        json!({
            "env": {"A": "1", "B": "two"}, "x": {"A": "1", "B": "two"},
            "k": "key", "key": "v", "n": 5, "m": 5,
        })
    );
    // An alias has its own position; the nodes inside it resolve to the alias.
    assert_eq!(doc.positions.value("/x"), Some(pos(2, 4)));
    assert_eq!(doc.positions.value("/x/A"), None);
    assert_eq!(doc.positions.nearest("/x/A"), pos(2, 4));
    assert_eq!(doc.positions.scalar_source("/m"), Some("5"));
}

#[test]
fn recursive_and_cross_document_aliases_are_errors() {
    let errs = errors(b"x: &a [1, *a]\n");
    assert!(
        matches!(&errs[..], [YamlError::RecursiveAlias { position }] if *position == pos(1, 11))
    );
    let errs = errors(b"a: &x 1\n---\nb: *x\n");
    assert!(matches!(&errs[..], [YamlError::UnknownAlias { position }] if *position == pos(3, 4)));
    // The parser itself refuses an anchor that was never defined.
    let errs = errors(b"a: *nope\n");
    assert!(matches!(&errs[..], [YamlError::Syntax { position, .. }] if position.line == 1));
}

/// The classic nine-level "billion laughs" document.
fn billion_laughs() -> String {
    let mut text = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for pair in names.windows(2) {
        let refs = vec![format!("*{}", pair[0]); 9].join(",");
        text.push_str(&format!("{}: &{} [{}]\n", pair[1], pair[1], refs));
    }
    text
}

#[test]
fn billion_laughs_is_refused_within_bounded_time() {
    let start = Instant::now();
    let errs = errors(billion_laughs().as_bytes());
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "took {:?}",
        start.elapsed()
    );
    assert!(
        matches!(
            &errs[..],
            [YamlError::TooManyNodes {
                limit: 1_000_000,
                ..
            }]
        ),
        "{errs:?}"
    );
    assert!(
        errs[0]
            .to_string()
            .contains("expands to more than 1000000 nodes")
    );
    // A long string repeated by aliases is bounded by the text limit.
    let limits = Limits {
        max_text_bytes: 1000,
        ..Limits::default()
    };
    let text = format!("a: &a {}\nb: [*a, *a, *a]\n", "x".repeat(400));
    let parsed = parse_stream(text.as_bytes(), &limits);
    assert!(matches!(
        &parsed.errors[..],
        [YamlError::TooMuchText { limit: 1000, .. }]
    ));
}

#[test]
fn node_limit_counts_every_node() {
    let limits = Limits {
        max_nodes: 10,
        ..Limits::default()
    };
    assert!(parse_documents_with(b"[1, 2, 3, 4, 5, 6, 7, 8]", &limits).is_ok());
    let errs = parse_documents_with(b"[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]", &limits).unwrap_err();
    assert!(matches!(
        &errs[..],
        [YamlError::TooManyNodes { limit: 10, .. }]
    ));
}

#[test]
fn deep_flow_nesting_is_an_error_not_a_crash() {
    let text = "[".repeat(1_000_000);
    let errs = errors(text.as_bytes());
    assert!(
        matches!(&errs[..], [YamlError::TooDeep { limit: 128, .. }]),
        "{errs:?}"
    );
    let text = "{a: ".repeat(100_000);
    assert!(matches!(
        &errors(text.as_bytes())[..],
        [YamlError::TooDeep { .. }]
    ));
}

#[test]
fn deep_block_nesting_is_an_error_not_a_crash() {
    let text = format!("{}x\n", "- ".repeat(100_000));
    let errs = errors(text.as_bytes());
    assert!(
        matches!(&errs[..], [YamlError::TooDeep { limit: 128, .. }]),
        "{errs:?}"
    );
    let limits = Limits {
        max_depth: 3,
        ..Limits::default()
    };
    assert!(parse_documents_with(b"a: {b: [1]}", &limits).is_ok());
    assert!(parse_documents_with(b"a: {b: [[1]]}", &limits).is_err());
    // The documents after a too-deep one are still read.
    let text = format!("{}x\n---\nafter: 1\n", "- ".repeat(1000));
    let parsed = parse_stream(text.as_bytes(), &Limits::default());
    assert!(matches!(&parsed.errors[..], [YamlError::TooDeep { .. }]));
    assert_eq!(parsed.documents.len(), 1);
    assert_eq!(
        (parsed.documents[0].index, &parsed.documents[0].value),
        (1, &json!({"after": 1}))
    );
}

#[test]
fn depth_limit_counts_alias_expansion() {
    let limits = Limits {
        max_depth: 3,
        ..Limits::default()
    };
    assert!(parse_documents_with(b"a: &x [[1]]\n", &limits).is_ok());
    let errs = parse_documents_with(b"a: &x [[1]]\nb: [*x]\n", &limits).unwrap_err();
    assert!(
        matches!(&errs[..], [YamlError::TooDeep { position, limit: 3 }] if *position == pos(2, 5))
    );
}

#[test]
fn invalid_utf8_reports_byte_offset_line_and_column() {
    let errs = errors(b"a: 1\nb: caf\xe9\n");
    assert_eq!(
        errs,
        vec![YamlError::InvalidUtf8 {
            position: pos(2, 7),
            offset: 11,
        }]
    );
    assert!(errs[0].to_string().contains("byte offset 11"));
}

#[test]
fn binary_input_is_an_error_not_a_panic() {
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    assert!(matches!(
        &errors(png)[..],
        [YamlError::InvalidUtf8 { offset: 0, .. }]
    ));
    let nuls = b"\0\0\0\0";
    let errs = errors(nuls);
    assert!(errs[0].to_string().contains("U+0000"), "{errs:?}");
}

#[test]
fn utf8_bom_is_accepted() {
    let doc = one("\u{feff}kind: Service\n");
    assert_eq!(doc.value, json!({"kind": "Service"}));
    assert_eq!(doc.positions.key("/kind"), Some(pos(1, 1)));
}

#[test]
fn tab_indentation_is_an_error_at_the_tab_line() {
    for (text, line) in [
        ("a:\n\tb: 1\n", 2),
        ("a:\n  b: 1\n\tc: 2\n", 3),
        ("\tkey: v\n", 1),
        ("a:\n\t- 1\n", 2),
        ("a: foo\n\tbar\n", 2),
        ("ok: 1\nlist:\n  - x\n\t- y\n", 4),
    ] {
        let errs = errors(text.as_bytes());
        assert!(
            matches!(&errs[..], [YamlError::TabIndentation { position }] if position.line == line),
            "{text:?}: {errs:?}"
        );
        assert_eq!(
            errs[0].to_string(),
            "tabs are not allowed for indentation; use spaces"
        );
    }
    let errs = errors(b"a:\t1\n");
    assert!(
        matches!(&errs[..], [YamlError::Tab { position }] if *position == pos(1, 3)),
        "{errs:?}"
    );
}

#[test]
fn tabs_inside_flow_collections_and_block_scalars_are_fine() {
    assert_eq!(
        one("{\n\t\"a\": 1,\n\t\"b\": [\n\t\t2\n\t]\n}\n").value,
        json!({"a": 1, "b": [2]})
    );
    assert_eq!(one("a: |\n  x\n  \ty\n").value, json!({"a": "x\n\ty\n"}));
    assert_eq!(one("- a\n-\tb\n").value, json!(["a", "b"]));
    assert_eq!(one("a: 1\n\t# a comment\n").value, json!({"a": 1}));
}

#[test]
fn empty_documents_are_skipped() {
    assert_eq!(parse_documents(b"").map(|d| d.len()), Ok(0));
    assert_eq!(parse_documents(b"---\n").map(|d| d.len()), Ok(0));
    assert_eq!(
        parse_documents(b"# only a comment\n\n").map(|d| d.len()),
        Ok(0)
    );
    let docs = parse_documents(b"---\n---\na: 1\n---\n# nothing\n---\nb: 2\n").unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!((docs[0].index, docs[0].start_line), (1, 2));
    assert_eq!((docs[1].index, docs[1].start_line), (3, 6));
    // An explicit null is not empty.
    assert_eq!(one("--- ~\n").value, Value::Null);
}

#[test]
fn multi_document_files_keep_indices_and_positions() {
    let docs = parse_documents(
        b"kind: Stack\nspec: {}\n---\nkind: Service\nspec:\n  ports:\n    - published: 80\n",
    )
    .unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!((docs[0].index, docs[0].start_line), (0, 1));
    assert_eq!((docs[1].index, docs[1].start_line), (1, 3));
    let p = &docs[1].positions;
    assert_eq!(p.value("/spec/ports/0/published"), Some(pos(7, 18)));
    assert_eq!(p.key("/spec/ports/0/published"), Some(pos(7, 7)));
    assert_eq!(p.key("/spec/ports/0"), None);
    assert_eq!(p.value(""), Some(pos(4, 1)));
}

#[test]
fn nearest_falls_back_to_the_closest_known_ancestor() {
    let doc = one("spec:\n  deploy:\n    replicas: 2\n");
    let p = &doc.positions;
    assert_eq!(p.value("/spec/deploy/mode"), None);
    assert_eq!(p.nearest("/spec/deploy/mode"), pos(3, 5));
    assert_eq!(p.nearest("/spec/deploy/replicas"), pos(3, 15));
    assert_eq!(p.nearest("/nothing/here"), pos(1, 1));
    assert_eq!(p.nearest("not-a-pointer"), pos(1, 1));
    assert_eq!(p.value("/spec/deploy/replicas/0"), None);
}

#[test]
fn json_pointers_are_unescaped_and_indices_canonical() {
    let doc = one("labels:\n  a/b: 1\n  c~d: 2\nlist: [x, y]\n");
    let p = &doc.positions;
    assert_eq!(p.value("/labels/a~1b"), Some(pos(2, 8)));
    assert_eq!(p.value("/labels/c~0d"), Some(pos(3, 8)));
    assert_eq!(p.value("/labels/a/b"), None);
    assert_eq!(p.value("/labels/c~2d"), None);
    assert_eq!(p.value("/list/1"), Some(pos(4, 11)));
    assert_eq!(p.value("/list/01"), None);
    assert_eq!(p.value("/list/+1"), None);
    assert_eq!(p.value("/list/2"), None);
}

#[test]
fn size_limit_is_enforced() {
    let limits = Limits {
        max_bytes: 10,
        ..Limits::default()
    };
    let errs = parse_documents_with(b"a: 12345678901", &limits).unwrap_err();
    assert_eq!(
        errs,
        vec![YamlError::TooLarge {
            position: Position::START,
            size: 14,
            limit: 10,
        }]
    );
    assert_eq!(
        errs[0].to_string(),
        "the file is 14 bytes; the limit is 10 bytes"
    );
    assert!(parse_documents_with(b"a: 1", &limits).is_ok());
}

#[test]
fn document_count_limit_is_enforced() {
    let limits = Limits {
        max_documents: 2,
        ..Limits::default()
    };
    assert!(parse_documents_with(b"a: 1\n---\nb: 2\n", &limits).is_ok());
    let errs = parse_documents_with(b"a: 1\n---\nb: 2\n---\nc: 3\n", &limits).unwrap_err();
    assert!(
        matches!(&errs[..], [YamlError::TooManyDocuments { position, limit: 2 }] if position.line == 4)
    );
}

#[test]
fn parser_errors_carry_line_and_column() {
    let errs = errors(b"a: 1\nb: [x, y\n");
    assert!(
        matches!(&errs[..], [YamlError::Syntax { position, message }] if position.line == 3 && !message.is_empty()),
        "{errs:?}"
    );
    let errs = errors(b"a: b: c\n");
    assert!(
        matches!(&errs[..], [YamlError::Syntax { position, .. }] if *position == pos(1, 5)),
        "{errs:?}"
    );
}

#[test]
fn errors_of_every_document_are_reported() {
    let text = b"a: 1\n---\nb: [oops\n---\nc: 3\nc: 4\n---\nd: {x: 1, x: 2}\n---\ne: fine\n";
    let parsed = parse_stream(text, &Limits::default());
    let lines: Vec<usize> = parsed.errors.iter().map(|e| e.position().line).collect();
    assert_eq!(lines, vec![4, 6, 8], "{:?}", parsed.errors);
    assert!(matches!(parsed.errors[0], YamlError::Syntax { .. }));
    let kept: Vec<(usize, Value)> = parsed
        .documents
        .into_iter()
        .map(|d| (d.index, d.value))
        .collect();
    assert_eq!(kept, vec![(0, json!({"a": 1})), (4, json!({"e": "fine"}))]);
}

/// A small deterministic generator (xorshift64*), so the fuzz test needs no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const SAMPLE: &str = "\u{feff}apiVersion: kargo.dev/v1alpha1\nkind: Service\nmetadata:\n  name: web # c\n  labels: {a: \"1\", b: '2'}\nspec:\n  image: &img nginx:1.25\n  tag: 4.2\n  env:\n    A: *img\n  ports:\n    - target: 80\n      published: 0x50\n  command: [\"sh\", \"-c\", \"echo ${X}\"]\n  text: |\n    line\n  folded: >-\n    a\n    b\n  ? key\n  : value\n---\n- !!str 1\n- ~\n...\n";

#[test]
fn random_bytes_and_mutated_yaml_never_panic() {
    const ALPHABET: &[u8] = b"-:[]{},#&*!|>'\"%@`?~ \t\n\r\\abxyz019.e+<\x00\xc3\xa9\xff";
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let small = Limits {
        max_bytes: 4096,
        max_depth: 8,
        max_nodes: 200,
        max_text_bytes: 2000,
        max_documents: 5,
    };
    for round in 0..800 {
        let input: Vec<u8> = if round % 2 == 0 {
            let len = rng.below(120);
            (0..len)
                .map(|_| {
                    if rng.below(8) == 0 {
                        (rng.next() & 0xff) as u8
                    } else {
                        ALPHABET[rng.below(ALPHABET.len())]
                    }
                })
                .collect()
        } else {
            let mut bytes = SAMPLE.as_bytes().to_vec();
            for _ in 0..1 + rng.below(6) {
                let at = rng.below(bytes.len() + 1);
                match rng.below(3) {
                    0 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    1 if at < bytes.len() => bytes[at] = ALPHABET[rng.below(ALPHABET.len())],
                    _ => bytes.insert(at, ALPHABET[rng.below(ALPHABET.len())]),
                }
            }
            bytes
        };
        for limits in [Limits::default(), small] {
            let parsed = parse_stream(&input, &limits);
            for doc in &parsed.documents {
                for pointer in ["", "/spec/tag", "/0", "/spec/ports/0/published", "/~", "x"] {
                    let _ = doc.positions.nearest(pointer);
                    let _ = doc.positions.value(pointer);
                    let _ = doc.positions.key(pointer);
                    let _ = doc.positions.scalar_source(pointer);
                }
            }
            for error in &parsed.errors {
                assert!(error.position().line >= 1 && error.position().column >= 1);
                assert!(!error.to_string().is_empty());
            }
        }
    }
}

#[test]
fn the_sample_manifest_reads_as_expected() {
    let docs = parse_documents(SAMPLE.as_bytes()).unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0].value["spec"]["env"]["A"], json!("nginx:1.25"));
    assert_eq!(docs[0].value["spec"]["ports"][0]["published"], json!(80));
    assert_eq!(docs[0].value["spec"]["key"], json!("value"));
    assert_eq!(docs[1].value, json!(["1", null]));
}

#[test]
fn crlf_line_endings_and_leading_comments_keep_positions() {
    let docs = parse_documents(b"# header\r\nkind: Stack\r\nspec:\r\n  suspend: true\r\n").unwrap();
    assert_eq!(
        docs[0].value,
        json!({"kind": "Stack", "spec": {"suspend": true}})
    );
    assert_eq!(docs[0].start_line, 2);
    assert_eq!(docs[0].positions.value("/spec/suspend"), Some(pos(4, 12)));
}
