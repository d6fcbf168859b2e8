//! The fast reader against the full one: whatever the fast reader accepts, the full reader
//! reads without error and to the same values; and the manifests people write take the fast path.

use std::path::Path;

use super::{Limits, parse_fast, parse_stream};

/// Compares the readers on `text`; true when the fast reader took it.
fn agree(text: &str) -> bool {
    let Some(fast) = parse_fast(text.as_bytes(), &Limits::DEFAULT) else {
        return false;
    };
    let full = parse_stream(text.as_bytes(), &Limits::DEFAULT);
    assert!(
        full.errors.is_empty(),
        "the fast reader accepted what the full reader refuses:\n{text}\n{:?}",
        full.errors
    );
    let fast: Vec<_> = fast.iter().map(|d| (d.index, &d.value)).collect();
    let full: Vec<_> = full.documents.iter().map(|d| (d.index, &d.value)).collect();
    assert_eq!(fast, full, "the readers disagree on:\n{text}");
    true
}

/// The YAML files of the repository: examples, the default catalog, the invalid corpus.
pub(crate) fn repository_yaml() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in ["manifests", "defaults", "tests/invalid", "tests/fixtures"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            ) && let Ok(text) = std::fs::read_to_string(&path)
            {
                out.push((path.display().to_string(), text));
            }
        }
    }
    out.sort();
    out
}

/// Variations of `text` a hand might make: a line dropped, a line indented one more or one
/// less, a line cut short, the file cut at a line.
pub(crate) fn variations(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut out = Vec::new();
    for i in 0..lines.len() {
        let join = |replacement: Option<String>| {
            let mut v: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
            match replacement {
                Some(r) => v[i] = r,
                None => {
                    v.remove(i);
                }
            }
            v.join("\n")
        };
        out.push(join(None));
        out.push(join(Some(format!(" {}", lines[i]))));
        if let Some(rest) = lines[i].strip_prefix(' ') {
            out.push(join(Some(rest.to_string())));
        }
        if lines[i].len() > 2 {
            out.push(join(Some(lines[i][..lines[i].len() / 2].to_string())));
        }
        out.push(lines[..i].join("\n"));
    }
    out
}

#[test]
fn the_fast_reader_agrees_with_the_full_reader_on_the_repository_and_its_variations() {
    let mut taken = 0;
    let mut tried = 0;
    for (_, text) in repository_yaml() {
        for variant in std::iter::once(text.clone()).chain(variations(&text)) {
            tried += 1;
            if agree(&variant) {
                taken += 1;
            }
        }
    }
    assert!(tried > 5000, "only {tried} inputs");
    assert!(
        taken > tried / 4,
        "the fast reader took only {taken} of {tried}"
    );
}

#[test]
fn the_example_workspace_and_the_catalog_take_the_fast_path() {
    for (name, text) in repository_yaml() {
        if name.contains("/manifests/") || name.contains("/defaults/") {
            assert!(agree(&text), "{name} did not take the fast path");
        }
    }
}

#[test]
fn the_fast_reader_agrees_on_the_corners_of_its_subset() {
    // (text, whether the fast reader should take it)
    let cases: &[(&str, bool)] = &[
        ("a: 1\n", true),
        ("a: 1", true),
        ("a:\n- x\n- y\nb: 2\n", true),
        ("a:\n  - x\n  - {}\n", true),
        ("args:\n  - --flag=1\n  - -v\n- x: [-a, --b]\n", false),
        ("args:\n  - --flag=1\n  - -v\n  - [-a, --b]\n", true),
        ("- a: 1\n  b:\n  - x\n  c: 2\n- d\n", true),
        ("- - x\n  - y\n- z\n", true),
        ("-\n  a: 1\n-\n", true),
        ("a: |\n  one\n\n  two\n   three\nb: x\n", true),
        ("a: |-\n  one\n  two\n", true),
        ("a: |\n  one\n  # not a comment\n# a comment\nb: 1\n", true),
        ("a: |\n  end of file without a line break", false),
        // Found by the fuzz target: a last line of spaces alone, no final line break.
        ("$: | # c\n   x\n   ", false),
        ("a: |\n  x\n  \n  y\n", false),
        ("a: |\n  x\n\n  y\n\nb: 1\n", true),
        ("a: |\n  x\n---\nb: |\n  y\n", true),
        ("a: |2\n   x\n", false),
        ("a: >\n  x\n", false),
        ("a: [x, \"y\", 'z''s', 1, -2, 0x1f, ~, true, 1.5e3]\n", true),
        ("a: []\nb: {}\n", true),
        ("a: [x, ]\n", false),
        // Found by the fuzz target: saphyr refuses `-` starting a word in a flow scalar.
        ("a: [a  -]\n", false),
        ("a: [a b]\n", false),
        ("a: [x, [y]]\n", false),
        ("a: [x\n", false),
        ("a: \"q \\\"x\\\" \\\\ \\n \\t\" # c\n", true),
        ("a: \"q\\u0041\"\n", false),
        ("a: 'x' y\n", false),
        ("a: 'x'#y\n", false),
        ("a: x#y\n", true),
        ("a: x #y\n", true),
        ("a: x: y\n", false),
        ("a: x:y\n", true),
        (
            "a: 4.2\nb: 1.10\nc: 0123\nd: +1\ne: -1\nf: .5\ng: 1e3\nh: 0o17\n",
            true,
        ),
        ("a: .inf\n", false),
        ("a: 99999999999999999999999\n", false),
        ("a: True\nb: NULL\nc: ~\nd:\n", true),
        ("a: 1\na: 2\n", false),
        ("<<: x\n", false),
        ("a: &x 1\nb: *x\n", false),
        ("a: !!str 1\n", false),
        ("a:\tb\n", false),
        ("a: 1\r\n", false),
        ("a: é\n", false),
        ("# only a comment\n", false),
        ("", false),
        ("a: 1\n---\n", false),
        ("---\na: 1\n", true),
        ("# modeline\n---\na: 1\n---\nb: 2\n", true),
        ("a: 1\n---\nb: 2\n...\n", false),
        ("--- x\n", false),
        ("%YAML 1.2\n---\na: 1\n", false),
        ("a: 1\n  b: 2\n", false),
        ("a: x\n  y\n", false),
        ("a:\n  b: 1\n c: 2\n", false),
        ("  a: 1\n  b: 2\n", true),
        ("a b: 1\n", false),
        ("\"a\": 1\n", false),
        ("a:b: 1\n", false),
        ("-x: 1\n.y: 2\nz/w$: 3\n", true),
        ("a: -\n", false),
        ("a: ---\n", false),
        ("- ---\n", false),
        ("a: - x\n", false),
        ("a: ?x\n", false),
        ("a: @x\n", false),
        ("a:\n  - b: 1\n    c:\n      - 2\n  - e\n", true),
    ];
    for (text, taken) in cases {
        assert_eq!(agree(text), *taken, "fast reader on {text:?}");
    }
}
