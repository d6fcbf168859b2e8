//! Printing a [`Report`]: text for people, JSON and JUnit XML for tools.
//!
//! # The JSON envelope (`-o json`)
//!
//! ```json
//! {
//!   "apiVersion": "kargo.dev/v1alpha1",
//!   "kind": "ValidationReport",
//!   "valid": false,
//!   "summary": {"files": 2, "documents": 5, "valid": 4, "invalid": 1, "unreadable": 0, "errors": 1},
//!   "files": [
//!     {"file": "a.yaml", "documents": 3, "valid": 2, "invalid": 1, "unreadable": 0,
//!      "diagnostics": [
//!        {"file": "a.yaml", "line": 12, "column": 5, "document": 1, "object": "service/web",
//!         "path": "spec.imag", "rule": "unknown-field",
//!         "message": "unknown field `imag` in spec; did you mean `image`?"}
//!      ]}
//!   ]
//! }
//! ```
//!
//! `document` counts from 0 in its file (empty documents included) and is `null` for
//! file-wide problems (I/O, YAML syntax); `object` is `kind/name` or `null`; `rule` is one
//! of `io`, `yaml`, `document`, `unknown-field`, `required`, `type`, `enum`, `pattern`,
//! `range`, `length`, `value`, `reference`, `cycle`, `duplicate`. Fields may be added;
//! none will be removed or change meaning within `v1alpha1`.

use std::fmt::Write as _;

use serde_json::json;

use super::{Report, Summary};
use crate::api::API_VERSION;

/// How `kargo validate` prints its report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// `file:line:column: object: field: message`, one problem per line.
    #[default]
    Text,
    /// One JSON document (see the module documentation for the envelope).
    Json,
    /// JUnit XML: a test suite per file, a test case per document.
    Junit,
}

/// The report as text in `format`; `summary` adds the totals line to text output.
pub fn render(report: &Report, format: OutputFormat, summary: bool) -> String {
    match format {
        OutputFormat::Text => text(report, summary),
        OutputFormat::Json => json_text(report),
        OutputFormat::Junit => junit(report),
    }
}

fn text(report: &Report, summary: bool) -> String {
    let mut out = String::new();
    for d in report.diagnostics() {
        let _ = writeln!(out, "{d}");
    }
    if summary {
        let _ = writeln!(out, "{}", summary_line(&report.summary()));
    }
    out
}

/// `Summary: 12 documents in 5 files: 11 valid, 1 invalid, 0 unreadable; 3 errors`.
pub(crate) fn summary_line(s: &Summary) -> String {
    format!(
        "Summary: {} document{} in {} file{}: {} valid, {} invalid, {} unreadable; {} error{}",
        s.documents,
        plural(s.documents),
        s.files,
        plural(s.files),
        s.valid,
        s.invalid,
        s.unreadable,
        s.errors,
        plural(s.errors)
    )
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn json_text(report: &Report) -> String {
    let value = json!({
        "apiVersion": API_VERSION,
        "kind": "ValidationReport",
        "valid": report.is_valid(),
        "summary": report.summary(),
        "files": report.files,
    });
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_else(|_| value.to_string());
    text.push('\n');
    text
}

fn junit(report: &Report) -> String {
    let s = report.summary();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"kargo validate\" tests=\"{}\" failures=\"{}\" errors=\"{}\">",
        s.documents + s.unreadable,
        s.invalid,
        s.unreadable
    );
    for f in &report.files {
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\">",
            xml(&f.file),
            f.documents + f.unreadable,
            f.invalid,
            f.unreadable
        );
        // Documents with an object, failing or not.
        for (index, object) in &f.objects {
            let _ = write!(
                out,
                "    <testcase classname=\"{}\" name=\"{}\"",
                xml(&f.file),
                xml(&format!("{object} (document {index})"))
            );
            let failures: Vec<String> = f
                .diagnostics
                .iter()
                .filter(|d| d.document == Some(*index))
                .map(ToString::to_string)
                .collect();
            if failures.is_empty() {
                out.push_str("/>\n");
            } else {
                let _ = writeln!(
                    out,
                    ">\n      <failure message=\"{}\" type=\"validation\">{}</failure>\n    </testcase>",
                    xml(failures.first().map_or("", String::as_str)),
                    xml(&failures.join("\n"))
                );
            }
        }
        // Problems not tied to a named object: YAML errors, I/O, documents without kind/name.
        let named: Vec<usize> = f.objects.iter().map(|(i, _)| *i).collect();
        let loose: Vec<String> = f
            .diagnostics
            .iter()
            .filter(|d| d.document.is_none_or(|i| !named.contains(&i)))
            .map(ToString::to_string)
            .collect();
        if !loose.is_empty() {
            let _ = writeln!(
                out,
                "    <testcase classname=\"{}\" name=\"{}\">\n      <error message=\"{}\" type=\"read\">{}</error>\n    </testcase>",
                xml(&f.file),
                xml(&f.file),
                xml(loose.first().map_or("", String::as_str)),
                xml(&loose.join("\n"))
            );
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// Escapes text for XML attributes and content; drops characters XML 1.0 cannot hold.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' | '\r' => out.push(c),
            c if (c as u32) < 0x20 => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}
