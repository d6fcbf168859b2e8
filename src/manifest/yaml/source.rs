//! An index of the source text: line starts and tab-indented lines, for error positions,
//! the tab rule and resuming after a syntax error.

use std::collections::HashMap;

use super::error::{Position, YamlError};

/// A line whose indentation contains a tab (columns are 0-based characters).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TabLine {
    /// Column of the first tab.
    pub(crate) tab_col: usize,
    /// Column of the first character after the indentation.
    pub(crate) content_col: usize,
}

/// Line starts and tab-indented lines of one input.
pub(crate) struct SourceIndex<'a> {
    text: &'a str,
    /// Byte offset where each line starts; line `n` (1-based) starts at `line_starts[n - 1]`.
    line_starts: Vec<usize>,
    /// Tab-indented lines with content, by 1-based line number (usually empty).
    tab_lines: HashMap<usize, TabLine>,
}

impl<'a> SourceIndex<'a> {
    /// Indexes `text` in one pass.
    pub(crate) fn new(text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(
            text.bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i + 1),
        );
        let mut index = SourceIndex {
            text,
            line_starts,
            tab_lines: HashMap::new(),
        };
        for line in 1..=index.line_starts.len() {
            let text = index.line(line);
            let indent = text
                .bytes()
                .take_while(|&b| b == b' ' || b == b'\t')
                .count();
            let Some(tab_col) = text.bytes().take(indent).position(|b| b == b'\t') else {
                continue;
            };
            let rest = text
                .get(indent..)
                .unwrap_or("")
                .trim_end_matches(['\r', '\n']);
            if !rest.is_empty() && !rest.starts_with('#') {
                index.tab_lines.insert(
                    line,
                    TabLine {
                        tab_col,
                        content_col: indent,
                    },
                );
            }
        }
        index
    }

    /// The text of 1-based line `line`, without its line break; empty past the end.
    pub(crate) fn line(&self, line: usize) -> &'a str {
        let Some(&start) = line.checked_sub(1).and_then(|i| self.line_starts.get(i)) else {
            return "";
        };
        let end = self
            .line_starts
            .get(line)
            .map_or(self.text.len(), |&next| next.saturating_sub(1));
        self.text.get(start..end).unwrap_or("")
    }

    /// The rest of the text from the start of 1-based line `line`.
    pub(crate) fn rest_from_line(&self, line: usize) -> Option<&'a str> {
        let start = *self.line_starts.get(line.checked_sub(1)?)?;
        self.text.get(start..)
    }

    /// The tab-indentation facts of 1-based line `line`, if it is tab-indented.
    pub(crate) fn tab_line(&self, line: usize) -> Option<TabLine> {
        if self.tab_lines.is_empty() {
            return None;
        }
        self.tab_lines.get(&line).copied()
    }

    /// The first line at or after `from` (and after `after`) that starts a document (`---`),
    /// where reading can resume after a syntax error.
    pub(crate) fn next_document_marker(&self, from: usize, after: usize) -> Option<usize> {
        let first = from.max(after.saturating_add(1));
        (first..=self.line_starts.len()).find(|&line| {
            let text = self.line(line);
            text.strip_prefix("---")
                .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r']))
        })
    }

    /// Turns a parser error into a [`YamlError`], recognising tabs and control characters.
    pub(crate) fn scan_error(
        &self,
        error: &saphyr_parser::ScanError,
        line_offset: usize,
        max_depth: usize,
    ) -> YamlError {
        let position = Position::at(error.marker(), line_offset);
        let info = error.info();
        if info == "recursion limit exceeded" {
            // The parser's own bound on flow nesting (255), met before our depth limit can be.
            return YamlError::TooDeep {
                position,
                limit: max_depth.min(255),
            };
        }
        let line_text = self.line(position.line);
        let at_char = line_text.chars().nth(position.column.saturating_sub(1));
        let mentions_tab = info
            .split(|c: char| !c.is_ascii_alphabetic())
            .any(|word| word.eq_ignore_ascii_case("tab") || word.eq_ignore_ascii_case("tabs"));
        // The parser reports a tab after `key:` one character late, so look back one too.
        let before = position
            .column
            .checked_sub(2)
            .and_then(|i| line_text.chars().nth(i));
        if mentions_tab || at_char == Some('\t') || before == Some('\t') {
            for line in [position.line, position.line + 1] {
                if let Some(tab) = self.tab_line(line) {
                    return YamlError::TabIndentation {
                        position: Position {
                            line,
                            column: tab.tab_col + 1,
                        },
                    };
                }
            }
            let column = line_text
                .chars()
                .enumerate()
                .skip(position.column.saturating_sub(2))
                .find(|&(_, c)| c == '\t')
                .map_or(position.column, |(i, _)| i + 1);
            return YamlError::Tab {
                position: Position {
                    line: position.line,
                    column,
                },
            };
        }
        if let Some(c) = at_char.filter(|&c| c.is_control() && c != '\r' && c != '\n') {
            return YamlError::Syntax {
                position,
                message: format!(
                    "control character U+{:04X} is not allowed in YAML text (is this a binary file?)",
                    u32::from(c)
                ),
            };
        }
        YamlError::Syntax {
            position,
            message: info.to_owned(),
        }
    }
}

/// The line and column of byte `offset` in `bytes`, whose prefix up to `offset` is UTF-8.
pub(crate) fn position_of_offset(bytes: &[u8], offset: usize) -> Position {
    let prefix = bytes.get(..offset).unwrap_or(bytes);
    let line_start = prefix
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let line = prefix.iter().filter(|&&b| b == b'\n').count() + 1;
    let before = prefix.get(line_start..).unwrap_or(&[]);
    let before = if line == 1 {
        before.strip_prefix("\u{feff}".as_bytes()).unwrap_or(before)
    } else {
        before
    };
    let column = match std::str::from_utf8(before) {
        Ok(text) => text.chars().count() + 1,
        Err(_) => before.len() + 1,
    };
    Position { line, column }
}
