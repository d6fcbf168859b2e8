//! Strict validation of manifests, with every error at its `file:line:column`.
//!
//! One file goes: bytes → [`crate::manifest::yaml`] (documents with positions, YAML errors
//! such as duplicate keys and tabs, and the [`Limits`] that bound hostile input) → the kind's
//! JSON Schema ([`crate::api::schema`], stored mode) through the `jsonschema` crate → each
//! error's instance path mapped back to the YAML node, worded in plain terms (unknown fields
//! with a suggestion, numbers that should be quoted strings, the values an enum allows, what
//! a duration looks like). Then checks across the objects of all the inputs
//! (`validate::cross`): a Stack's members exist, `dependsOn` has no cycle, and so on.
//!
//! Most files are valid, so a file is first tried the quick way: the fast reader
//! ([`yaml::parse_fast`], no positions) and each document's schema as a yes/no. Only when
//! that declines or finds a problem is the file read again as above, so every error still
//! has its position; the answer is the same either way.
//!
//! The strings the controller interpolates (a Service's spec, an Environment's service
//! settings, a Configuration's `template: true` files) are checked for interpolation
//! syntax, which is wrong whatever the variables hold (`validate::bounds`).
//!
//! Every error of every file is reported, not only the first; files are checked in
//! parallel. `kargo validate` and `kargo apply` both call [`validate_inputs`] /
//! [`validate_sources`], so they accept and refuse the same manifests. Nothing here does
//! network I/O.
//!
//! # Cross-object checks
//!
//! A reference is checked only when the input holds objects of the referenced kind, so a
//! file validated alone is not blamed for objects that live elsewhere: a Stack's `services`
//! must be Services of the input or built-in catalog entries (when the input has any
//! Service); its `dependsOn` must name Stacks of the input (when it has any Stack); an
//! Environment's `stacks` likewise, and its `services` settings must name Services or
//! catalog entries; a Configuration's `environment` must be an Environment of the input
//! (when it has any); a Service's `configs`/`secrets` must name files of a Configuration of
//! the input (when it has any). Always checked: `dependsOn` cycles among the input's Stacks
//! and among its Services, an object defined twice, and the Swarm service name
//! `kargo-<stack>_<service>` fitting in 63 characters.

mod bounds;
mod build_context;
mod cross;
mod messages;
mod report;
mod schema_errors;
#[cfg(test)]
mod tests;
mod tree_json;
mod workers;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

pub use build_context::check_build_contexts;
pub(crate) use cross::View;
use cross::{Facts, InFile};
pub use messages::pattern_text;
pub use report::{OutputFormat, render};
pub(crate) use schema_errors::{escape, push_key};

use super::limits::{MAX_OBJECT_BYTES, check_object_size};
use super::load::Source;
use super::yaml::{self, Document, Limits, Position, Positions};
use crate::api::schema::Mode;
use crate::api::{API_VERSION, DynamicObject, Kind, ObjectMeta};
use tree_json::TreeNode;

/// The kind of a document that holds other objects in `items`, as `kargo get` prints them.
const LIST_KIND: &str = "List";

/// What kind of problem a [`Diagnostic`] reports (the `rule` field of JSON output).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// The file could not be read.
    Io,
    /// The YAML itself: syntax, duplicate keys, tabs, limits, encoding.
    Yaml,
    /// A document that is not a kargo object (not a map, no or unknown kind).
    Document,
    /// A field the schema does not know.
    UnknownField,
    /// A required field is missing.
    Required,
    /// A value of the wrong type.
    Type,
    /// A value an enum does not allow.
    Enum,
    /// A string of the wrong shape: name, duration, memory, constraint...
    Pattern,
    /// A number out of range.
    Range,
    /// A string or list of the wrong length.
    Length,
    /// Another wrong value.
    Value,
    /// A reference to an object that is not in the input.
    Reference,
    /// A `dependsOn` cycle.
    Cycle,
    /// The same object twice in the input.
    Duplicate,
    /// A sensitive variable where `get` or `docker service inspect` would show it.
    Sensitive,
}

impl Rule {
    /// The rule as written in JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Io => "io",
            Rule::Yaml => "yaml",
            Rule::Document => "document",
            Rule::UnknownField => "unknown-field",
            Rule::Required => "required",
            Rule::Type => "type",
            Rule::Enum => "enum",
            Rule::Pattern => "pattern",
            Rule::Range => "range",
            Rule::Length => "length",
            Rule::Value => "value",
            Rule::Reference => "reference",
            Rule::Cycle => "cycle",
            Rule::Duplicate => "duplicate",
            Rule::Sensitive => "sensitive",
        }
    }
}

/// One problem in one input, at the line and column of the offending node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(rename_all = "camelCase")]
pub struct Diagnostic {
    /// The input, as the user named it (`-` for stdin).
    pub file: String,
    /// Line, from 1.
    pub line: usize,
    /// Column in characters, from 1.
    pub column: usize,
    /// The document's place in its file, from 0 (empty documents counted); none for file-wide problems.
    pub document: Option<usize>,
    /// The object, as `kind/name`, when known.
    pub object: Option<String>,
    /// The field, as `spec.ports[0].published`; empty for the document or file as a whole.
    pub path: String,
    /// What kind of problem.
    pub rule: Rule,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if let Some(object) = &self.object {
            write!(f, "{object}: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// A schema violation without a file: a field and what is wrong with it (from
/// [`validate_spec`], or before it is placed in a file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// JSON pointer of the offending node.
    pub pointer: String,
    /// The field, as `spec.ports[0].published`.
    pub path: String,
    /// Where it was written (the start of the input when unknown).
    pub position: Position,
    /// What kind of problem.
    pub rule: Rule,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// How much validation may cost and how it runs.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Bounds on reading each file (size, depth, nodes, documents).
    pub limits: Limits,
    /// Worker threads (0: one per core).
    pub threads: usize,
    /// Most errors reported for one document; the rest are counted in one last message.
    pub max_errors_per_document: usize,
    /// Keep the objects of valid documents in [`Report::objects`] (`kargo apply` needs
    /// them; `kargo validate` does not, and saves their memory).
    pub keep_objects: bool,
    /// Try each file with the fast reader first (off: every file through the full reader,
    /// which gives the same report more slowly; the fuzz target compares the two).
    pub fast_path: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            limits: Limits::default(),
            threads: 0,
            max_errors_per_document: 50,
            keep_objects: true,
            fast_path: true,
        }
    }
}

/// One input to validate.
#[derive(Clone, Debug)]
pub enum Input {
    /// A file, read by a worker (at most [`Limits::max_bytes`] of it).
    File(PathBuf),
    /// Bytes already read (stdin, tests, `kargo apply`).
    Source(Source),
    /// An input that could not even be listed: reported as an I/O error.
    Unreadable {
        /// The input as named.
        name: String,
        /// Why.
        error: String,
    },
}

impl Input {
    /// The input as the user named it.
    pub fn name(&self) -> String {
        match self {
            Input::File(path) => match path.to_str() {
                Some(name) => name.to_string(),
                None => path.display().to_string(),
            },
            Input::Source(source) => source.name.clone(),
            Input::Unreadable { name, .. } => name.clone(),
        }
    }

    /// The bytes of its path (or name), for sorting.
    pub fn path_bytes(&self) -> &[u8] {
        match self {
            Input::File(path) => path.as_os_str().as_encoded_bytes(),
            Input::Source(source) => source.name.as_bytes(),
            Input::Unreadable { name, .. } => name.as_bytes(),
        }
    }
}

/// What validation found in one file.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileReport {
    /// The input, as named.
    pub file: String,
    /// Documents read (empty ones not counted).
    pub documents: usize,
    /// Documents read with no error.
    pub valid: usize,
    /// Documents read that have errors.
    pub invalid: usize,
    /// Documents that could not be read (YAML errors), or 1 for an unreadable file.
    pub unreadable: usize,
    /// Every problem in the file, sorted by position.
    pub diagnostics: Vec<Diagnostic>,
    /// The documents' objects with their place: `(document index, kind/name)`, for reports.
    #[serde(skip)]
    pub objects: Vec<(usize, String)>,
}

/// What validation found in all the inputs.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// One entry per file, in input order (folders expanded).
    pub files: Vec<FileReport>,
    /// The objects of the valid documents, in input order; complete only when [`Report::is_valid`].
    pub objects: Vec<DynamicObject>,
}

/// Totals of a [`Report`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Files checked.
    pub files: usize,
    /// Documents read.
    pub documents: usize,
    /// Documents without error.
    pub valid: usize,
    /// Documents with errors.
    pub invalid: usize,
    /// Documents or files that could not be read.
    pub unreadable: usize,
    /// Problems reported.
    pub errors: usize,
}

impl Report {
    /// True when no input has any problem.
    pub fn is_valid(&self) -> bool {
        self.files.iter().all(|f| f.diagnostics.is_empty())
    }

    /// True when some input could not be read at all (exit 2 for `kargo validate`).
    pub fn has_io_errors(&self) -> bool {
        self.diagnostics().any(|d| d.rule == Rule::Io)
    }

    /// Every diagnostic, file by file, each file's sorted by position.
    pub fn diagnostics(&self) -> impl Iterator<Item = &Diagnostic> {
        self.files.iter().flat_map(|f| f.diagnostics.iter())
    }

    /// The totals.
    pub fn summary(&self) -> Summary {
        let mut s = Summary {
            files: self.files.len(),
            ..Summary::default()
        };
        for f in &self.files {
            s.documents += f.documents;
            s.valid += f.valid;
            s.invalid += f.invalid;
            s.unreadable += f.unreadable;
            s.errors += f.diagnostics.len();
        }
        s
    }
}

/// Validates sources already read (as `kargo apply` has them), in parallel.
pub fn validate_sources(sources: &[Source], options: &Options) -> Report {
    validate_inputs(
        sources.iter().cloned().map(Input::Source).collect(),
        options,
    )
}

/// Validates every input (files read by the workers, in parallel), then checks across the
/// objects of all of them. Never fails: unreadable inputs become [`Rule::Io`] diagnostics.
pub fn validate_inputs(inputs: Vec<Input>, options: &Options) -> Report {
    let checked = workers::run_parallel(&inputs, options, Reader::first(options));
    finish(&inputs, checked, options)
}

/// Lists `paths` (as [`crate::manifest::load::expand_paths`] does) and validates what it
/// finds, the workers starting on the first files while large folders are still being
/// listed: the same report as `validate_inputs(expand_paths(paths, recursive), options)`.
pub fn validate_paths(paths: &[PathBuf], recursive: bool, options: &Options) -> Report {
    let (inputs, checked) = workers::run_listed(paths, recursive, options);
    finish(&inputs, checked, options)
}

/// Each document's facts with the name of its file.
fn in_files<'a>(files: &'a [FileReport], facts: &'a [Vec<Facts>]) -> Vec<InFile<'a>> {
    files
        .iter()
        .zip(facts)
        .flat_map(|(file, facts)| {
            facts.iter().map(move |facts| InFile {
                file: &file.file,
                facts,
            })
        })
        .collect()
}

/// Adds the checks across objects to what the workers found, and counts.
fn finish(inputs: &[Input], checked: Vec<Checked>, options: &Options) -> Report {
    let mut files: Vec<FileReport> = Vec::with_capacity(checked.len());
    let mut facts: Vec<Vec<Facts>> = Vec::with_capacity(checked.len());
    let mut objects: Vec<DynamicObject> = Vec::new();
    for file in checked {
        files.push(file.report);
        facts.push(file.facts);
        objects.extend(file.objects);
    }
    let mut found = cross::check(&in_files(&files, &facts));
    if !found.is_empty() {
        // The problems need positions the fast reader did not keep: read the files it
        // took again with the full reader (their values and schema results are the same).
        let again: Vec<usize> = (0..facts.len())
            .filter(|&i| facts[i].iter().any(|f| !f.is_located()))
            .collect();
        if !again.is_empty() {
            let inputs: Vec<Input> = again.iter().map(|&i| inputs[i].clone()).collect();
            for (i, file) in
                again
                    .into_iter()
                    .zip(workers::run_parallel(&inputs, options, Reader::Full))
            {
                facts[i] = file.facts;
            }
            found = cross::check(&in_files(&files, &facts));
        }
    }
    if !found.is_empty() {
        let by_name: HashMap<&str, usize> = files
            .iter()
            .enumerate()
            .map(|(i, f)| (f.file.as_str(), i))
            .collect();
        let placed: Vec<(usize, Diagnostic)> = found
            .into_iter()
            .filter_map(|d| by_name.get(d.file.as_str()).map(|&i| (i, d)))
            .collect();
        drop(by_name);
        for (i, diagnostic) in placed {
            if let Some(f) = files.get_mut(i) {
                f.diagnostics.push(diagnostic);
            }
        }
    }
    for f in &mut files {
        finish_counts(f);
    }
    Report { files, objects }
}

/// Which YAML reader a worker tries first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reader {
    /// The fast reader ([`yaml::parse_fast`]), and the full one when it declines or the
    /// file has a problem to report.
    Fast,
    /// The full reader only (positions for every node).
    Full,
}

impl Reader {
    /// The reader `options` ask to try first.
    fn first(options: &Options) -> Reader {
        if options.fast_path {
            Reader::Fast
        } else {
            Reader::Full
        }
    }
}

/// What a worker returns for one file.
#[derive(Default)]
struct Checked {
    report: FileReport,
    facts: Vec<Facts>,
    objects: Vec<DynamicObject>,
}

/// Reads (if needed, into `buffer`) and checks one input.
fn check_input(input: &Input, options: &Options, reader: Reader, buffer: &mut Vec<u8>) -> Checked {
    let name = input.name();
    let bytes: &[u8] = match input {
        Input::File(path) => match read_bounded(path, options.limits.max_bytes, buffer) {
            Ok(true) => buffer,
            Ok(false) => {
                return Checked {
                    report: too_large(&name, options.limits.max_bytes),
                    ..Checked::default()
                };
            }
            Err(error) => {
                return Checked {
                    report: unreadable(&name, &error),
                    ..Checked::default()
                };
            }
        },
        Input::Source(source) => &source.bytes,
        Input::Unreadable { error, .. } => {
            return Checked {
                report: unreadable(&name, error),
                ..Checked::default()
            };
        }
    };
    if reader == Reader::Fast
        && let Some(checked) = check_fast(&name, bytes, options)
    {
        return checked;
    }
    check_bytes(&name, bytes, options)
}

/// Checks a file the quick way, when it can: the fast reader, then each document's schema
/// as a yes/no on the reader's tree. `None` when the fast reader declines the file or any
/// document is invalid; the full check then finds and places every problem.
fn check_fast(name: &str, bytes: &[u8], options: &Options) -> Option<Checked> {
    // A document's JSON may be a few times its YAML: past this, let the full check measure it.
    if bytes.len() > MAX_OBJECT_BYTES / 4 {
        return None;
    }
    let documents = yaml::parse_fast_trees(bytes, &options.limits)?;
    let schemas = schema_errors::schemas();
    let mut checked = Checked {
        report: FileReport {
            file: name.to_string(),
            documents: documents.len(),
            ..FileReport::default()
        },
        ..Checked::default()
    };
    let unknown = Positions::default();
    let mut kinds = Vec::with_capacity(documents.len());
    for doc in &documents {
        let root = doc.tree.root();
        let kind = root
            .get("kind")
            .and_then(|k| k.as_str())
            .and_then(|k| Kind::ALL.into_iter().find(|x| x.as_str() == k))?;
        let object_name = root
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(|n| n.as_str())?;
        if !schemas
            .tree_document(kind)
            .ok()?
            .is_valid(TreeNode::root(&doc.tree))
        {
            return None;
        }
        if !bounds::check(kind, root).is_empty() {
            return None;
        }
        checked
            .report
            .objects
            .push((doc.index, format!("{}/{object_name}", kind.singular())));
        checked
            .facts
            .push(Facts::extract(root, doc.index, &unknown, kind, object_name));
        kinds.push(kind);
    }
    if options.keep_objects {
        for (doc, kind) in documents.iter().zip(kinds) {
            checked.objects.push(to_object(kind, doc.tree.to_value())?);
        }
    }
    Some(checked)
}

/// Reads at most `max + 1` bytes into `buffer` (cleared first, reused from file to file by
/// a worker), so a huge file costs no more memory than the limit and a small one costs no
/// allocation and no `stat`. `Ok(false)`: the file is larger than `max`.
fn read_bounded(path: &std::path::Path, max: usize, buffer: &mut Vec<u8>) -> Result<bool, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    super::load::read_bounded(file, max, buffer).map_err(|e| e.to_string())
}

/// The report of a file larger than the limit: the YAML size error, without the size,
/// which is unknown (only `max + 1` bytes were read).
fn too_large(name: &str, max: usize) -> FileReport {
    file_problem(name, Rule::Yaml, super::load::too_large_message(max))
}

/// The report of a file that could not be read.
fn unreadable(name: &str, error: &str) -> FileReport {
    file_problem(name, Rule::Io, format!("cannot read: {error}"))
}

/// The report of a file with one problem of the file as a whole (no document read).
fn file_problem(name: &str, rule: Rule, message: String) -> FileReport {
    FileReport {
        file: name.to_string(),
        unreadable: 1,
        diagnostics: vec![Diagnostic {
            file: name.to_string(),
            line: 1,
            column: 1,
            document: None,
            object: None,
            path: String::new(),
            rule,
            message,
        }],
        ..FileReport::default()
    }
}

/// Checks the documents of one file on their own (no cross-object checks), keeping what
/// the cross-object checks need and, with [`Options::keep_objects`], the objects.
fn check_bytes(name: &str, bytes: &[u8], options: &Options) -> Checked {
    let parsed = yaml::parse_stream(bytes, &options.limits);
    let mut report = FileReport {
        file: name.to_string(),
        documents: parsed.documents.len(),
        ..FileReport::default()
    };
    // A document with a YAML error is left out of `documents`; count the gaps it leaves.
    let starts: Vec<usize> = parsed.documents.iter().map(|d| d.start_line).collect();
    let mut gaps: Vec<usize> = parsed
        .errors
        .iter()
        .map(|e| starts.partition_point(|&s| s <= e.position().line))
        .collect();
    gaps.dedup();
    report.unreadable = gaps.len();
    for error in &parsed.errors {
        let position = error.position();
        report.diagnostics.push(Diagnostic {
            file: name.to_string(),
            line: position.line,
            column: position.column,
            document: None,
            object: None,
            path: String::new(),
            rule: Rule::Yaml,
            message: error.to_string(),
        });
    }
    let schemas = schema_errors::schemas();
    let mut checked = Checked::default();
    for doc in expand_lists(name, parsed.documents, &mut report.diagnostics) {
        let (mut violations, kind, object_name) =
            check_document(schemas, &doc, options.max_errors_per_document);
        let reference = match (kind, &object_name) {
            (Some(k), Some(n)) => Some(format!("{}/{n}", k.singular())),
            _ => None,
        };
        if let Some(k) = kind {
            violations.extend(bound_violations(k, &doc, reference.as_deref()));
        }
        if let (Some(k), Some(n), Some(r)) = (kind, &object_name, &reference) {
            report.objects.push((doc.index, r.clone()));
            checked
                .facts
                .push(Facts::extract(&doc.value, doc.index, &doc.positions, k, n));
        }
        if violations.len() > options.max_errors_per_document {
            let more = violations.len() - options.max_errors_per_document;
            violations.truncate(options.max_errors_per_document);
            violations.push(Violation {
                pointer: String::new(),
                path: String::new(),
                position: violations.last().map_or(Position::START, |v| v.position),
                rule: Rule::Document,
                message: format!("and more errors in this document ({more}+ not shown)"),
            });
        }
        let index = doc.index;
        if violations.is_empty()
            && options.keep_objects
            && let Some(object) = kind.and_then(|k| to_object(k, doc.value))
        {
            checked.objects.push(object);
        }
        for v in violations {
            report.diagnostics.push(Diagnostic {
                file: name.to_string(),
                line: v.position.line,
                column: v.position.column,
                document: Some(index),
                object: reference.clone(),
                path: v.path,
                rule: v.rule,
                message: v.message,
            });
        }
    }
    checked.report = report;
    checked
}

/// Replaces each `List` document (how `kargo get` and kubectl print several objects) by its
/// items, each checked as a document of its own at its place in the file, with the index of
/// the List; what the store owns in them (status, uid, resourceVersion...) is left out when
/// they become objects, as for any document. A List without a list of `items` is a problem.
fn expand_lists(
    name: &str,
    documents: Vec<Document>,
    problems: &mut Vec<Diagnostic>,
) -> Vec<Document> {
    let mut out = Vec::with_capacity(documents.len());
    for doc in documents {
        let is_list = doc.value.get("kind").and_then(Value::as_str) == Some(LIST_KIND);
        if !is_list {
            out.push(doc);
            continue;
        }
        let Some(Value::Array(items)) = doc.value.get("items") else {
            problems.push(Diagnostic {
                file: name.to_string(),
                line: doc.start_line,
                column: 1,
                document: Some(doc.index),
                object: None,
                path: "items".into(),
                rule: Rule::Document,
                message: "a List needs `items`: a list of objects".into(),
            });
            continue;
        };
        let items: Vec<Document> = items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let positions = doc.positions.subtree(&format!("/items/{i}"));
                let start_line = positions.value("").map_or(doc.start_line, |p| p.line);
                Document {
                    index: doc.index,
                    value: item.clone(),
                    positions,
                    start_line,
                }
            })
            .collect();
        out.extend(expand_lists(name, items, problems));
    }
    out
}

/// Sorts a file's diagnostics and counts its valid and invalid documents (also after a
/// later check — policy, build contexts — added diagnostics of its own).
pub(crate) fn finish_counts(report: &mut FileReport) {
    report
        .diagnostics
        .sort_by(|a, b| (a.line, a.column, &a.message).cmp(&(b.line, b.column, &b.message)));
    report.diagnostics.dedup();
    let mut bad: Vec<usize> = report
        .diagnostics
        .iter()
        .filter_map(|d| d.document)
        .collect();
    bad.sort_unstable();
    bad.dedup();
    report.invalid = bad.len();
    report.valid = report.documents.saturating_sub(report.invalid);
}

/// Line and column of the node at `pointer` (or its nearest ancestor) in document
/// `document` of `file`, read again; the file's start when it cannot be (stdin).
pub(crate) fn position_in_file(file: &str, document: usize, pointer: &str) -> (usize, usize) {
    let docs = match file {
        "-" => None,
        path => std::fs::read(path)
            .ok()
            .and_then(|bytes| crate::manifest::yaml::parse_documents(&bytes).ok()),
    };
    docs.and_then(|docs| docs.into_iter().find(|d| d.index == document))
        .map(|d| {
            let at = d.positions.nearest(pointer);
            (at.line, at.column)
        })
        .unwrap_or((1, 1))
}

/// The bounds `doc` passes although its schema may hold: its size as JSON, variables that
/// resolve too large, quantities past 64 bits (see `bounds`).
fn bound_violations(kind: Kind, doc: &Document, reference: Option<&str>) -> Vec<Violation> {
    let root = doc.positions.value("").unwrap_or(Position {
        line: doc.start_line,
        column: 1,
    });
    let mut out = Vec::new();
    if let Err(too_large) = check_object_size(reference.unwrap_or(kind.singular()), &doc.value) {
        out.push(Violation {
            pointer: String::new(),
            path: String::new(),
            position: root,
            rule: Rule::Length,
            message: too_large.detail(),
        });
    }
    for passed in bounds::check(kind, &doc.value) {
        out.push(Violation {
            path: schema_errors::display_path(&doc.value, &passed.pointer),
            position: doc.positions.value(&passed.pointer).unwrap_or(root),
            pointer: passed.pointer,
            rule: passed.rule,
            message: passed.message,
        });
    }
    out
}

/// Checks one document against its kind's schema: the violations, its kind and its name.
fn check_document(
    schemas: &schema_errors::Schemas,
    doc: &Document,
    max: usize,
) -> (Vec<Violation>, Option<Kind>, Option<String>) {
    let value = &doc.value;
    let root = doc.positions.value("").unwrap_or(Position {
        line: doc.start_line,
        column: 1,
    });
    let Value::Object(map) = value else {
        let what = messages::describe(value, doc.positions.scalar_source(""));
        return (
            vec![Violation {
                pointer: String::new(),
                path: String::new(),
                position: root,
                rule: Rule::Document,
                message: format!(
                    "a document must be a map with apiVersion, kind, metadata and spec; got {what}"
                ),
            }],
            None,
            None,
        );
    };
    let name = map
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let kind_value = map.get("kind");
    let kind = kind_value
        .and_then(Value::as_str)
        .and_then(|k| Kind::ALL.into_iter().find(|x| x.as_str() == k));
    let Some(kind) = kind else {
        // Not a known kind: the umbrella schema words apiVersion and kind problems.
        let mut violations = match schemas.umbrella() {
            Ok(umbrella) => schema_errors::check(umbrella, value, Some(&doc.positions), max),
            Err(internal) => vec![internal_violation(internal)],
        };
        let names: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        for v in violations.iter_mut().filter(|v| v.pointer == "/kind") {
            if let Some(given) = kind_value.and_then(Value::as_str) {
                v.message = format!(
                    "unknown kind {}: expected {}{}",
                    messages::quote(given),
                    messages::one_of(names.iter().copied()),
                    messages::did_you_mean(messages::closest(given, names.iter().copied()))
                );
            }
        }
        for v in violations
            .iter_mut()
            .filter(|v| v.rule == Rule::Required && v.path == "kind")
        {
            v.message = format!(
                "missing required field `kind`: one of {}",
                messages::one_of(names.iter().copied())
            );
        }
        return (violations, None, name);
    };
    let violations = match schemas.document(kind, Mode::Stored) {
        Ok(compiled) => schema_errors::check(compiled, value, Some(&doc.positions), max),
        Err(internal) => vec![internal_violation(internal)],
    };
    (violations, Some(kind), name)
}

/// The object a valid document describes: its spec as given (nulls kept), its name, labels
/// and annotations (the store owns the rest of metadata), no status.
fn to_object(kind: Kind, value: Value) -> Option<DynamicObject> {
    let Value::Object(mut map) = value else {
        return None;
    };
    let metadata: ObjectMeta = serde_json::from_value(map.remove("metadata")?).ok()?;
    Some(DynamicObject {
        api_version: API_VERSION.to_string(),
        kind,
        metadata: ObjectMeta {
            name: metadata.name,
            labels: metadata.labels,
            annotations: metadata.annotations,
            ..ObjectMeta::default()
        },
        spec: map
            .remove("spec")
            .unwrap_or_else(|| Value::Object(Default::default())),
        status: None,
    })
}

/// Checks a spec alone against `kind`'s schema in `mode`: [`Mode::Merged`] for the result
/// of merge and interpolation (required fields enforced, no nulls), as the controller and
/// `kargo render` need. Positions are unknown, so violations name fields only.
pub fn validate_spec(kind: Kind, mode: Mode, spec: &Value) -> Vec<Violation> {
    match schema_errors::schemas().spec(kind, mode) {
        Ok(compiled) => schema_errors::check(compiled, spec, None, usize::MAX),
        Err(internal) => vec![internal_violation(internal)],
    }
}

/// A violation standing for a bug: kargo's own schema did not compile.
fn internal_violation(message: &str) -> Violation {
    Violation {
        pointer: String::new(),
        path: String::new(),
        position: Position::START,
        rule: Rule::Document,
        message: message.to_string(),
    }
}
