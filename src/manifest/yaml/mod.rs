//! Reading YAML manifests into JSON values while keeping where every node was written, so
//! validation errors can say `file:line:column`.
//!
//! A file may hold several documents (`---`). Each becomes a [`Document`]: its value as
//! [`serde_json::Value`] and its [`Positions`], a table from JSON pointer to the line and
//! column of the value (and of the key, for map entries). [`parse_documents`] returns all
//! the documents or every error; [`parse_stream`] returns the sound documents *and* the
//! errors of the others, so a caller can validate what it can and report everything at once.
//! After a syntax error, reading resumes at the next line that starts with `---`.
//!
//! # What the values look like
//!
//! - Scalars follow the YAML 1.2 core schema as serde_yaml resolves them: plain `true`/`false`
//!   (also `True`, `TRUE`, ...), `null`/`~`/empty, integers (decimal, `0x`, `0o`, `0b`) and
//!   floats. So `tag: 4.2` is the *number* 4.2 and `1.10` the number 1.1; quoted and block
//!   scalars stay strings, and `0123` (leading zero) is a string. [`Positions::scalar_source`]
//!   keeps each scalar's text and [`Positions::is_plain`] whether it was unquoted, so a
//!   validator can say "4.2 is a number; quote it: \"4.2\"".
//! - Differences from serde_yaml, on purpose: `.inf`/`.nan` are errors (serde_json would turn
//!   them into `null`), integers beyond 64 bits are errors, and tags other than the core
//!   schema's (`!!str`, `!!int`, `!!float`, `!!bool`, `!!null`, `!!seq`, `!!map`) are errors.
//!   The non-specific tag `!` makes a string.
//! - Map keys become their text, as serde_yaml does when reading into JSON: `1: x`, `true: y`
//!   and `~: z` give the keys `"1"`, `"true"` and `"~"`. Lists and maps used as keys are errors.
//! - Duplicate keys are errors at the second key, naming the key and where it was first.
//! - `<<` merge keys are not applied (serde_yaml does not either): a plain `<<` key is an
//!   error, so a merge is never silently read as a key named `<<`. A quoted `"<<"` is a key.
//! - Anchors and aliases work; an alias is a copy of its anchor's node. Anchors do not cross
//!   documents. Nodes inside an expanded alias have no positions of their own:
//!   [`Positions::nearest`] gives the alias.
//! - Tabs may not indent a line (outside flow collections, so JSON indented with tabs reads):
//!   the error names the tab's line. A tab where a space is needed is an error too.
//! - Empty documents (`---` alone, only comments, an empty file) are skipped; they still
//!   count in [`Document::index`].
//! - A UTF-8 byte order mark at the start is accepted; other non-UTF-8 input is an error
//!   giving the byte offset, line and column of the first bad byte.
//!
//! # Limits
//!
//! [`Limits::default`] bounds what one file may cost, so a hostile or broken file fails fast:
//!
//! | limit | default | counts |
//! | --- | --- | --- |
//! | [`Limits::max_bytes`] | 8 MiB | size of the input, checked before anything else |
//! | [`Limits::max_depth`] | 128 | nesting of lists and maps, aliases expanded |
//! | [`Limits::max_nodes`] | 1,000,000 | value nodes in the whole file, aliases expanded and anchored nodes counted twice (they are kept for their aliases) |
//! | [`Limits::max_text_bytes`] | 32 MiB | scalar text (keys included) in the whole file, counted like nodes |
//! | [`Limits::max_documents`] | 10,000 | documents in the file, empty ones included |
//!
//! An alias bomb ("billion laughs") thus stops at [`Limits::max_nodes`] after about that much
//! work. Nesting is built without recursion, and the parser (saphyr-parser) keeps its own
//! state on the heap and refuses flow nesting deeper than 255 itself, so a million `[` is an
//! error, not a stack overflow. No input makes this module panic.

mod builder;
mod error;
mod fast;
#[cfg(test)]
pub(crate) mod fast_tests;
mod positions;
mod scalar;
mod source;
#[cfg(test)]
mod tests;
pub(crate) mod tree;

pub use error::{Position, YamlError};
pub(crate) use fast::FastDocument;
pub use positions::Positions;

use serde_json::Value;

/// One YAML document of a file, as JSON, with the position of every node, so validation
/// errors can point at `file:line:column`.
#[derive(Debug, Clone)]
pub struct Document {
    /// Place of the document in its file, from 0, empty documents counted, for "document N" in messages.
    pub index: usize,
    /// The document as JSON (core schema, see the module documentation).
    pub value: Value,
    /// Where each node of `value` was written.
    pub positions: Positions,
    /// The line where the document starts (its `---` line when it has one), to name it in messages.
    pub start_line: usize,
}

/// Bounds on what reading one file may cost, so a hostile or broken file fails fast instead
/// of exhausting memory or time (see the module documentation for the defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest input accepted, in bytes.
    pub max_bytes: usize,
    /// Deepest nesting of lists and maps, aliases expanded.
    pub max_depth: usize,
    /// Most value nodes in the whole file, aliases expanded (bounds alias bombs).
    pub max_nodes: usize,
    /// Most bytes of scalar text in the whole file, aliases expanded (bounds alias bombs of long strings).
    pub max_text_bytes: usize,
    /// Most documents in one file, empty ones included.
    pub max_documents: usize,
}

impl Limits {
    /// The defaults: 8 MiB of input, depth 128, 1,000,000 nodes, 32 MiB of text, 10,000 documents.
    pub const DEFAULT: Limits = Limits {
        max_bytes: 8 * 1024 * 1024,
        max_depth: 128,
        max_nodes: 1_000_000,
        max_text_bytes: 32 * 1024 * 1024,
        max_documents: 10_000,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// Everything read from one file: the sound documents and every error, so a caller can
/// validate what it can and report all problems at once.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    /// Documents that read without error, in file order (empty ones skipped).
    pub documents: Vec<Document>,
    /// Every error found, in file order; a document with an error is not in `documents`.
    pub errors: Vec<YamlError>,
}

/// Reads every document of `text` with the default [`Limits`]: all documents, or every error.
pub fn parse_documents(text: &[u8]) -> Result<Vec<Document>, Vec<YamlError>> {
    parse_documents_with(text, &Limits::default())
}

/// Reads every document of `text` within `limits`: all documents, or every error.
pub fn parse_documents_with(text: &[u8], limits: &Limits) -> Result<Vec<Document>, Vec<YamlError>> {
    let parsed = parse_stream(text, limits);
    if parsed.errors.is_empty() {
        Ok(parsed.documents)
    } else {
        Err(parsed.errors)
    }
}

/// Reads every document of `text` within `limits`, keeping the sound documents alongside the
/// errors of the others.
pub fn parse_stream(text: &[u8], limits: &Limits) -> Parsed {
    if text.len() > limits.max_bytes {
        return Parsed {
            documents: Vec::new(),
            errors: vec![YamlError::TooLarge {
                position: Position::START,
                size: text.len(),
                limit: limits.max_bytes,
            }],
        };
    }
    let text = match std::str::from_utf8(text) {
        Ok(text) => text,
        Err(error) => {
            let offset = error.valid_up_to();
            return Parsed {
                documents: Vec::new(),
                errors: vec![YamlError::InvalidUtf8 {
                    position: source::position_of_offset(text, offset),
                    offset,
                }],
            };
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    builder::read_stream(text, limits)
}

/// Reads every document of `text` with the fast reader for plain block-style YAML, which
/// keeps no positions: `Some` only when every document is in the subset it knows and would
/// read without error, with exactly the values [`parse_stream`] gives; `None` means "ask
/// [`parse_stream`]", never "invalid". For callers that only need the values of files that
/// are usually fine (`kargo validate` over a large tree).
pub fn parse_fast(text: &[u8], limits: &Limits) -> Option<Vec<Document>> {
    let documents = parse_fast_trees(text, limits)?;
    Some(
        documents
            .into_iter()
            .map(|d| Document {
                index: d.index,
                value: d.tree.to_value(),
                positions: Positions::default(),
                start_line: d.start_line,
            })
            .collect(),
    )
}

/// [`parse_fast`] without building values: each document as the fast reader's [`tree::Tree`],
/// whose strings borrow from `text`.
pub(crate) fn parse_fast_trees<'s>(
    text: &'s [u8],
    limits: &Limits,
) -> Option<Vec<FastDocument<'s>>> {
    if text.len() > limits.max_bytes {
        return None;
    }
    let text = std::str::from_utf8(text).ok()?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    fast::read(text, limits)
}
