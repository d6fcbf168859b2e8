//! Positions in the source text and the errors reading YAML can produce.

use std::fmt;

/// A place in the source text (1-based line and column), so messages can read `file:line:column`.
///
/// Columns count characters (Unicode scalar values), not bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// Line number, counting from 1.
    pub line: usize,
    /// Column number in characters, counting from 1.
    pub column: usize,
}

impl Position {
    /// The start of the file, for errors about the file as a whole.
    pub const START: Position = Position { line: 1, column: 1 };

    /// Converts a parser marker of a chunk that starts `line_offset` lines into the file.
    pub(crate) fn at(marker: &saphyr_parser::Marker, line_offset: usize) -> Position {
        Position {
            line: marker.line().saturating_add(line_offset).max(1),
            column: marker.col().saturating_add(1),
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Why a YAML file could not be read, with where, so the user can fix every problem in one pass.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum YamlError {
    /// The file is larger than [`super::Limits::max_bytes`]; refused before parsing to bound memory.
    #[error("the file is {size} bytes; the limit is {limit} bytes")]
    TooLarge {
        /// Always the start of the file.
        position: Position,
        /// Size of the input in bytes.
        size: usize,
        /// The limit in force.
        limit: usize,
    },
    /// The bytes are not UTF-8 (often a binary file given by mistake).
    #[error(
        "invalid UTF-8 at byte offset {offset}: YAML files must be UTF-8 text (is this a binary file?)"
    )]
    InvalidUtf8 {
        /// Line and column of the first bad byte.
        position: Position,
        /// Offset of the first bad byte from the start of the input.
        offset: usize,
    },
    /// The YAML parser rejected the text; `message` is its explanation.
    #[error("{message}")]
    Syntax {
        /// Where the parser stopped.
        position: Position,
        /// The parser's description of the problem.
        message: String,
    },
    /// A line is indented with a tab, which YAML forbids.
    #[error("tabs are not allowed for indentation; use spaces")]
    TabIndentation {
        /// The first tab of the offending line.
        position: Position,
    },
    /// A tab stands where the parser needs a space (for example right after `key:`).
    #[error("a tab is not allowed here; use spaces")]
    Tab {
        /// The tab.
        position: Position,
    },
    /// A map has the same key twice; YAML forbids it and silently keeping one would hide a mistake.
    #[error("duplicate key \"{key}\" (first defined at line {}, column {})", .first.line, .first.column)]
    DuplicateKey {
        /// The second occurrence of the key.
        position: Position,
        /// The key.
        key: String,
        /// The first occurrence of the key.
        first: Position,
    },
    /// A `<<` merge key; kargo does not apply merges, so it refuses them rather than misread them.
    #[error("merge keys (<<) are not supported; write the keys out in full")]
    MergeKey {
        /// The `<<` key.
        position: Position,
    },
    /// A list or map used as a map key; JSON objects only have string keys.
    #[error("map keys must be scalars (strings, numbers, booleans), not lists or maps")]
    NonScalarKey {
        /// The key node.
        position: Position,
    },
    /// An alias names an anchor of another document; anchors only apply within their own document.
    #[error(
        "this alias refers to an anchor defined in another document; anchors apply only within their own document"
    )]
    UnknownAlias {
        /// The alias.
        position: Position,
    },
    /// An alias refers to a node that contains the alias itself, which would be infinite.
    #[error("this alias refers to a node that contains it (a recursive alias)")]
    RecursiveAlias {
        /// The alias.
        position: Position,
    },
    /// A tag other than the core schema's (`!!str`, `!!int`, `!!float`, `!!bool`, `!!null`, `!!seq`, `!!map`).
    #[error(
        "tag {tag} is not supported; only !!str, !!int, !!float, !!bool, !!null, !!seq and !!map are"
    )]
    UnsupportedTag {
        /// The tagged node.
        position: Position,
        /// The tag as written (`!!binary`, `!custom`, ...).
        tag: String,
    },
    /// A scalar whose core tag does not fit its text, such as `!!int abc`.
    #[error("\"{text}\" is not a valid {tag} value")]
    InvalidTaggedValue {
        /// The scalar.
        position: Position,
        /// The tag (`!!int`, ...).
        tag: String,
        /// The scalar's text.
        text: String,
    },
    /// `.inf` or `.nan`, which JSON cannot hold.
    #[error(
        "{text} is an infinite or not-a-number float, which JSON cannot hold; quote it if it is meant as a string: \"{text}\""
    )]
    NonFiniteNumber {
        /// The scalar.
        position: Position,
        /// The scalar's text.
        text: String,
    },
    /// An integer outside the 64-bit range, which JSON tools cannot hold exactly.
    #[error(
        "the integer {text} does not fit in 64 bits; quote it if it is meant as a string: \"{text}\""
    )]
    IntegerOutOfRange {
        /// The scalar.
        position: Position,
        /// The scalar's text.
        text: String,
    },
    /// Lists and maps nest deeper than [`super::Limits::max_depth`].
    #[error("lists and maps nest deeper than {limit} levels (aliases expanded)")]
    TooDeep {
        /// The collection (or alias) that went past the limit.
        position: Position,
        /// The limit in force.
        limit: usize,
    },
    /// More nodes than [`super::Limits::max_nodes`], typically an alias bomb ("billion laughs").
    #[error(
        "document expands to more than {limit} nodes (aliases expanded, counted over the whole file)"
    )]
    TooManyNodes {
        /// The node that went past the limit.
        position: Position,
        /// The limit in force.
        limit: usize,
    },
    /// More scalar text than [`super::Limits::max_text_bytes`] once aliases are expanded.
    #[error(
        "document expands to more than {limit} bytes of text (aliases expanded, counted over the whole file)"
    )]
    TooMuchText {
        /// The node that went past the limit.
        position: Position,
        /// The limit in force.
        limit: usize,
    },
    /// More documents than [`super::Limits::max_documents`] in one file.
    #[error("the file has more than {limit} documents")]
    TooManyDocuments {
        /// The document that went past the limit.
        position: Position,
        /// The limit in force.
        limit: usize,
    },
}

impl YamlError {
    /// Where the problem is, for `file:line:column` prefixes and for sorting errors.
    pub fn position(&self) -> Position {
        match self {
            YamlError::TooLarge { position, .. }
            | YamlError::InvalidUtf8 { position, .. }
            | YamlError::Syntax { position, .. }
            | YamlError::TabIndentation { position }
            | YamlError::Tab { position }
            | YamlError::DuplicateKey { position, .. }
            | YamlError::MergeKey { position }
            | YamlError::NonScalarKey { position }
            | YamlError::UnknownAlias { position }
            | YamlError::RecursiveAlias { position }
            | YamlError::UnsupportedTag { position, .. }
            | YamlError::InvalidTaggedValue { position, .. }
            | YamlError::NonFiniteNumber { position, .. }
            | YamlError::IntegerOutOfRange { position, .. }
            | YamlError::TooDeep { position, .. }
            | YamlError::TooManyNodes { position, .. }
            | YamlError::TooMuchText { position, .. }
            | YamlError::TooManyDocuments { position, .. } => *position,
        }
    }
}
