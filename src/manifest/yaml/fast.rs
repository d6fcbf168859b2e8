//! A fast reader for the plain block style most manifests are written in, tried before the
//! full reader ([`super::builder`] over saphyr-parser) when only a yes/no is needed.
//!
//! It reads one narrow, common subset of YAML — block maps and lists, plain and one-line
//! quoted scalars, one-line flow lists of scalars, `{}`, literal block scalars (`|`, `|-`),
//! comments, `---` between documents — in a single pass over the lines, without events,
//! tokens or positions. Anything else, and anything doubtful, makes it give up (`None`):
//! non-ASCII or control characters, tabs, CR, anchors, aliases, tags, flow maps,
//! multi-line plain or quoted scalars, folded scalars, quoted keys, keys outside
//! `[A-Za-z0-9_./$-]`, duplicate keys, empty documents, nesting past 64, any syntax error.
//! The caller then runs the full reader, which reports positions and errors.
//!
//! So the contract is one-sided: when this returns `Some`, the values are exactly those the
//! full reader gives (scalars go through the same [`super::scalar::resolve`]); a unit test
//! and a fuzz target (`fuzz/fuzz_targets/fast_yaml.rs`) compare the two readers on every
//! input they find. Documents come back without positions: a caller that needs a position
//! (to report an error) reads the file again with the full reader.

use std::borrow::Cow;

use super::Limits;
use super::scalar::{self, Plain};
use super::tree::{Slot, Tree};

/// Deepest nesting this reader follows; deeper documents go to the full reader.
const MAX_DEPTH: usize = 64;

/// A document as this reader returns it: no positions, its nodes in a [`Tree`].
#[derive(Clone, Debug)]
pub(crate) struct FastDocument<'s> {
    /// Place of the document in its file, from 0.
    pub(crate) index: usize,
    /// The line where the document starts (its `---` line when it has one).
    pub(crate) start_line: usize,
    /// The document.
    pub(crate) tree: Tree<'s>,
}

/// The documents of `text` (UTF-8, BOM already removed) if every one is in the subset this
/// reader knows, else `None`.
pub(crate) fn read<'s>(text: &'s str, limits: &Limits) -> Option<Vec<FastDocument<'s>>> {
    // Other limits than the defaults (tests of the limits) are the full reader's business.
    if *limits != Limits::DEFAULT {
        return None;
    }
    if !printable_ascii(text.as_bytes()) {
        return None;
    }
    // Line breaks found with memchr's vector search (the text is ASCII, so every slice
    // between breaks is on character boundaries).
    let bytes = text.as_bytes();
    let breaks = memchr::memchr_iter(b'\n', bytes).count();
    let mut lines: Vec<Line<'_>> = Vec::with_capacity(breaks + 1);
    let mut from = 0;
    let ends = memchr::memchr_iter(b'\n', bytes).chain(std::iter::once(bytes.len()));
    for (n, end) in ends.enumerate() {
        let raw = text.get(from..end)?;
        from = end + 1;
        let content = raw.trim_start_matches(' ');
        lines.push(Line {
            number: n + 1,
            indent: raw.len() - content.len(),
            content,
        });
    }
    // A final line break leaves an empty last "line" that is not one.
    if text.ends_with('\n') {
        lines.pop();
    }
    let ends_with_break = text.ends_with('\n');
    let total = lines.len();
    let mut documents = Vec::with_capacity(1);
    let mut nodes = 0usize;
    let mut start = 0;
    let mut seen = 0usize;
    let mut first = true;
    loop {
        let end = lines[start..]
            .iter()
            .position(|l| l.indent == 0 && l.content.starts_with("---"))
            .map_or(lines.len(), |i| start + i);
        let segment = &mut lines[start..end];
        // `...` ends a document; directives and document-end markers go to the full reader.
        if segment
            .iter()
            .any(|l| l.indent == 0 && (l.content.starts_with("...") || l.content.starts_with('%')))
        {
            return None;
        }
        let has_content = segment.iter().any(Line::is_content);
        // Text before the first `---` that holds only comments is no document; any other
        // empty document goes to the full reader, which knows how to count it.
        if has_content {
            let start_line = if first {
                segment
                    .iter()
                    .find(|l| l.is_content())
                    .map_or(1, |l| l.number)
            } else {
                segment.first().map_or(1, |l| l.number.saturating_sub(1))
            };
            let mut reader = Reader {
                tree: Tree::with_capacity(segment.len() + 1),
                lines: segment,
                next: 0,
                nodes: 0,
                breaks_at_end: ends_with_break || end != total,
            };
            reader.document()?;
            nodes = nodes.saturating_add(reader.nodes);
            if nodes > limits.max_nodes {
                return None;
            }
            documents.push(FastDocument {
                index: seen,
                tree: reader.tree,
                start_line,
            });
            seen += 1;
        } else if !first {
            return None;
        }
        if end == lines.len() {
            break;
        }
        if lines[end].content.trim_end_matches(' ') != "---" {
            return None;
        }
        first = false;
        start = end + 1;
        if seen >= limits.max_documents {
            return None;
        }
    }
    if documents.is_empty() {
        return None;
    }
    Some(documents)
}

/// One line of the text: where it is, how far it is indented, what follows the indent.
#[derive(Clone, Copy, Debug)]
struct Line<'a> {
    number: usize,
    indent: usize,
    content: &'a str,
}

impl Line<'_> {
    /// Neither blank nor a comment.
    fn is_content(&self) -> bool {
        !self.content.is_empty() && !self.content.starts_with('#')
    }

    /// A list item: `-` alone or followed by a space.
    fn is_item(&self) -> bool {
        self.content == "-" || self.content.starts_with("- ")
    }
}

/// Reads the lines of one document.
struct Reader<'a, 's> {
    /// The document read so far.
    tree: Tree<'a>,
    lines: &'s mut [Line<'a>],
    next: usize,
    nodes: usize,
    /// The document's last line ends with a line break (a literal scalar's last line needs one).
    breaks_at_end: bool,
}

impl<'a> Reader<'a, '_> {
    /// The document's root, which must be a map or a list, and nothing after it.
    fn document(&mut self) -> Option<()> {
        let first = self.peek()?;
        if first.is_item() {
            self.list(first.indent, 0)?;
        } else {
            self.map(first.indent, 0)?;
        }
        match self.peek() {
            None => Some(()),
            Some(_) => None,
        }
    }

    /// The next content line, skipping blank lines and comments.
    fn peek(&mut self) -> Option<Line<'a>> {
        while let Some(line) = self.lines.get(self.next) {
            if line.is_content() {
                return Some(*line);
            }
            self.next += 1;
        }
        None
    }

    /// Counts one more value node (for [`Limits::max_nodes`]).
    fn count(&mut self) {
        self.nodes += 1;
    }

    /// Appends a scalar or a container still to be filled.
    fn push(&mut self, slot: Slot<'a>) -> Option<u32> {
        self.tree.push(slot)
    }

    /// A block map whose keys are at column `indent`.
    fn map(&mut self, indent: usize, depth: usize) -> Option<u32> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.count();
        let at = self.push(Slot::Map(0))?;
        let mut children = Siblings::default();
        while let Some(line) = self.peek() {
            if line.indent < indent {
                break;
            }
            if line.indent > indent || line.is_item() {
                return None;
            }
            let (key, rest) = split_entry(line.content)?;
            self.next += 1;
            let child = self.value_after_key(rest, indent, depth)?;
            self.tree.set_key(child, key);
            children.add(&mut self.tree, child);
        }
        self.tree.close(at, Slot::Map(children.count));
        let keys = self.tree.node(at).children().map(|(key, _)| key);
        if has_duplicate(keys, children.count) {
            return None;
        }
        Some(at)
    }

    /// A block list whose `-` are at column `indent`.
    fn list(&mut self, indent: usize, depth: usize) -> Option<u32> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.count();
        let at = self.push(Slot::Seq(0))?;
        let mut items = Siblings::default();
        while let Some(line) = self.peek() {
            if line.indent < indent || (line.indent == indent && !line.is_item()) {
                break;
            }
            if line.indent > indent {
                return None;
            }
            let rest = line.content[1..].trim_start_matches(' ');
            let column = indent + (line.content.len() - rest.len());
            let item = if rest.is_empty() || rest.starts_with('#') {
                self.next += 1;
                self.nested(indent, false, depth)?
            } else if rest == "-" || rest.starts_with("- ") {
                // `- - x`: a list in a list, read as if its line started at the inner `-`.
                self.lines[self.next] = Line {
                    indent: column,
                    content: rest,
                    ..line
                };
                self.list(column, depth + 1)?
            } else if split_entry(rest).is_some() {
                // `- key: value`: a map whose keys line up with this first key.
                self.lines[self.next] = Line {
                    indent: column,
                    content: rest,
                    ..line
                };
                self.map(column, depth + 1)?
            } else {
                self.next += 1;
                self.inline(rest, indent)?
            };
            items.add(&mut self.tree, item);
        }
        self.tree.close(at, Slot::Seq(items.count));
        Some(at)
    }

    /// The value of a map entry whose key is at column `indent`, given the text after `key:`.
    fn value_after_key(&mut self, rest: &'a str, indent: usize, depth: usize) -> Option<u32> {
        if rest.is_empty() || rest.starts_with('#') {
            return self.nested(indent, true, depth);
        }
        self.inline(rest, indent)
    }

    /// The value on the lines below a node at column `indent` that has none on its own line:
    /// a deeper map or list, a list at the same column (only for map values), or null.
    fn nested(&mut self, indent: usize, same_column_list: bool, depth: usize) -> Option<u32> {
        match self.peek() {
            Some(next) if next.indent > indent => {
                if next.is_item() {
                    self.list(next.indent, depth + 1)
                } else {
                    self.map(next.indent, depth + 1)
                }
            }
            Some(next) if same_column_list && next.indent == indent && next.is_item() => {
                self.list(indent, depth + 1)
            }
            _ => {
                self.count();
                self.push(Slot::Null)
            }
        }
    }

    /// A value written on the line of its key or `-`: a scalar, a literal block scalar, a
    /// one-line flow list or `{}`. `indent` is the column of its key or `-`.
    fn inline(&mut self, text: &'a str, indent: usize) -> Option<u32> {
        self.count();
        let first = text.as_bytes().first().copied()?;
        match first {
            b'|' => self.literal(&text[1..], indent),
            b'"' | b'\'' => {
                let (value, after) = quoted(text)?;
                ends_clean(after)?;
                self.push(Slot::Str(value))
            }
            b'[' => self.flow_list(text),
            b'{' => {
                let after = text.strip_prefix("{}")?;
                ends_clean(after)?;
                self.push(Slot::Map(0))
            }
            _ => {
                let slot = plain_slot(plain_block(text)?)?;
                self.push(slot)
            }
        }
    }

    /// A one-line flow list of scalars: `[a, "b", 3]`.
    fn flow_list(&mut self, text: &'a str) -> Option<u32> {
        let mut rest = text.strip_prefix('[')?.trim_start_matches(' ');
        let at = self.push(Slot::Seq(0))?;
        let mut items = Siblings::default();
        if let Some(after) = rest.strip_prefix(']') {
            ends_clean(after)?;
            return Some(at);
        }
        loop {
            self.count();
            let (item, after) = match rest.as_bytes().first()? {
                b'"' | b'\'' => {
                    let (value, after) = quoted(rest)?;
                    (Slot::Str(value), after)
                }
                _ => {
                    let end = rest.find([',', ']'])?;
                    let plain = rest[..end].trim_end_matches(' ');
                    if plain.is_empty() || !plain_flow_ok(plain) {
                        return None;
                    }
                    (plain_slot(plain)?, &rest[end..])
                }
            };
            let item = self.push(item)?;
            items.add(&mut self.tree, item);
            let after = after.trim_start_matches(' ');
            if let Some(more) = after.strip_prefix(',') {
                rest = more.trim_start_matches(' ');
                if rest.starts_with(']') || rest.is_empty() {
                    return None;
                }
            } else {
                let after = after.strip_prefix(']')?;
                ends_clean(after)?;
                self.tree.close(at, Slot::Seq(items.count));
                return Some(at);
            }
        }
    }

    /// A literal block scalar (`|` or `|-`, the header's rest in `header`) under a node at
    /// column `indent`: the following lines indented deeper, as written.
    fn literal(&mut self, header: &str, indent: usize) -> Option<u32> {
        let (strip, after) = match header.strip_prefix('-') {
            Some(after) => (true, after),
            None => (false, header),
        };
        if !after.is_empty() && !after.starts_with(' ') {
            return None;
        }
        ends_clean(after)?;
        let first = self.lines.get(self.next)?;
        // Leading blank lines and empty blocks are left to the full reader.
        if first.content.is_empty() || first.indent <= indent {
            return None;
        }
        let block_indent = first.indent;
        let mut text = String::new();
        let mut pending_breaks = 0usize;
        while let Some(line) = self.lines.get(self.next) {
            if line.content.is_empty() {
                // Lines of spaces alone are read differently by saphyr at the end of a
                // block (found by the fuzz target): only truly empty lines here.
                if line.indent > 0 {
                    return None;
                }
                pending_breaks += 1;
            } else if line.indent >= block_indent {
                if !text.is_empty() || pending_breaks > 0 {
                    text.push('\n');
                }
                for _ in 0..pending_breaks {
                    text.push('\n');
                }
                pending_breaks = 0;
                for _ in block_indent..line.indent {
                    text.push(' ');
                }
                text.push_str(line.content);
            } else {
                break;
            }
            self.next += 1;
        }
        // A block that runs to the end of a text without a final line break is left to the
        // full reader (its last line has no break to keep or clip).
        if self.next == self.lines.len() && !self.breaks_at_end {
            return None;
        }
        if !strip {
            text.push('\n');
        }
        self.push(Slot::Str(Cow::Owned(text)))
    }
}

/// Splits `key: rest` (or `key:` at the end of the line) when the key is a plain key this
/// reader accepts; `rest` has its leading spaces removed.
fn split_entry(content: &str) -> Option<(&str, &str)> {
    let bytes = content.as_bytes();
    let mut end = 0;
    while end < bytes.len() && is_key_byte(bytes[end]) {
        end += 1;
    }
    if end == 0 || bytes.get(end) != Some(&b':') {
        return None;
    }
    let key = &content[..end];
    // YAML bounds implicit keys (1024 characters); long keys are left to the full reader.
    if key.len() > 256 {
        return None;
    }
    // A key that starts like a number, `-`, `.` or `/` is fine as text, but `-` alone is a list item.
    if key.starts_with('-') && key.len() == 1 {
        return None;
    }
    let rest = &content[end + 1..];
    if rest.is_empty() {
        return Some((key, rest));
    }
    let trimmed = rest.trim_start_matches(' ');
    if trimmed.len() == rest.len() {
        return None;
    }
    Some((key, trimmed))
}

/// A byte a plain key may hold here.
fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'/' | b'$' | b'-')
}

/// A plain scalar in block context that is the whole rest of its line: its text, without a
/// trailing comment or spaces; `None` for anything the full reader should judge.
fn plain_block(text: &str) -> Option<&str> {
    let bytes = text.as_bytes();
    let first = *bytes.first()?;
    if matches!(
        first,
        b'?' | b':'
            | b'-'
            | b','
            | b'['
            | b']'
            | b'{'
            | b'}'
            | b'#'
            | b'&'
            | b'*'
            | b'!'
            | b'|'
            | b'>'
            | b'\''
            | b'"'
            | b'%'
            | b'@'
            | b'`'
    ) {
        // `-1` and `--flag` are plain scalars (a `-` not followed by a space); `:x` and
        // `?x` are too, but rare enough to leave to the full reader.
        if !(first == b'-' && bytes.get(1).is_some_and(|b| *b != b' ')) {
            return None;
        }
    }
    if text.starts_with("---") || text.starts_with("...") {
        return None;
    }
    let bytes = text.as_bytes();
    let mut end = bytes.len();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            // ` #` starts a comment.
            b'#' if i > 0 && bytes[i - 1] == b' ' => {
                end = i;
                break;
            }
            // `: ` (or `:` at the end) would make the line a map entry: an error here.
            b':' if bytes.get(i + 1).is_none_or(|n| *n == b' ') => return None,
            _ => {}
        }
    }
    let body = text[..end].trim_end_matches(' ');
    if body.is_empty() {
        return None;
    }
    Some(body)
}

/// Only printable ASCII and line feeds: what the fast reader reads (checked in wide steps).
fn printable_ascii(bytes: &[u8]) -> bool {
    bytes.chunks(64).all(|chunk| {
        chunk.iter().fold(true, |ok, &b| {
            ok & ((b' '..=b'~').contains(&b) | (b == b'\n'))
        })
    })
}

/// Whether a plain scalar inside a flow list is one this reader vouches for.
fn plain_flow_ok(text: &str) -> bool {
    let first = text.as_bytes().first().copied().unwrap_or(b'#');
    let starts_ok = first.is_ascii_alphanumeric()
        || matches!(first, b'_' | b'.' | b'/' | b'$' | b'+' | b'(' | b'=' | b'~')
        || (first == b'-' && text.as_bytes().get(1).is_some_and(|b| *b != b' '));
    starts_ok
        && !text.bytes().any(|b| {
            // A space is allowed in YAML, but saphyr reads a word after it like the start of
            // a scalar (`[a -]` is an error there): no spaces here.
            matches!(
                b,
                b' ' | b':'
                    | b'#'
                    | b'['
                    | b']'
                    | b'{'
                    | b'}'
                    | b','
                    | b'"'
                    | b'\''
                    | b'&'
                    | b'*'
                    | b'!'
            )
        })
}

/// A one-line quoted scalar at the start of `text`: its value (borrowed when it has no
/// escapes) and the text after the closing quote.
fn quoted(text: &str) -> Option<(Cow<'_, str>, &str)> {
    let quote = text.as_bytes().first().copied()?;
    let body = &text[1..];
    if let Some(close) = body.find(quote as char) {
        let inner = &body[..close];
        let doubled = quote == b'\'' && body[close + 1..].starts_with('\'');
        let escapes = doubled || (quote == b'"' && inner.contains('\\'));
        if !escapes {
            return Some((Cow::Borrowed(inner), &body[close + 1..]));
        }
    }
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' if quote == b'"' => return Some((Cow::Owned(out), &body[i + 1..])),
            '\'' if quote == b'\'' => {
                // `''` inside single quotes is one quote.
                if body[i + 1..].starts_with('\'') {
                    out.push('\'');
                    chars.next();
                } else {
                    return Some((Cow::Owned(out), &body[i + 1..]));
                }
            }
            '\\' if quote == b'"' => {
                let (_, escaped) = chars.next()?;
                out.push(match escaped {
                    '\\' => '\\',
                    '"' => '"',
                    'n' => '\n',
                    't' => '\t',
                    _ => return None,
                });
            }
            _ => out.push(c),
        }
    }
    None
}

/// The value of a plain scalar (as [`scalar::resolve`] gives it), its text borrowed.
fn plain_slot(text: &str) -> Option<Slot<'_>> {
    Some(match scalar::plain(text).ok()? {
        Plain::Null => Slot::Null,
        Plain::Bool(b) => Slot::Bool(b),
        Plain::Number(n) => Slot::Number(n),
        Plain::Str(s) => Slot::Str(Cow::Borrowed(s)),
    })
}

/// The children of a container being read: how many, and the last (to link the next to).
#[derive(Default)]
struct Siblings {
    count: u32,
    last: Option<u32>,
}

impl Siblings {
    /// Links `child` after the previous child.
    fn add(&mut self, tree: &mut Tree<'_>, child: u32) {
        if let Some(last) = self.last {
            tree.link(last, child);
        }
        self.last = Some(child);
        self.count += 1;
    }
}

/// Whether any of the `count` keys repeats: pairwise for the usual small map, sorted for a
/// large one (so a map of many keys costs n log n, not n²).
fn has_duplicate<'k>(keys: impl Iterator<Item = &'k str> + Clone, count: u32) -> bool {
    if count <= 16 {
        let mut rest = keys;
        while let Some(key) = rest.next() {
            if rest.clone().any(|other| other == key) {
                return true;
            }
        }
        false
    } else {
        let mut all: Vec<&str> = keys.collect();
        all.sort_unstable();
        all.windows(2).any(|w| w[0] == w[1])
    }
}

/// What may follow a complete value on its line: nothing, or spaces and a comment.
fn ends_clean(after: &str) -> Option<()> {
    let trimmed = after.trim_start_matches(' ');
    if trimmed.is_empty() || (trimmed.starts_with('#') && trimmed.len() < after.len()) {
        Some(())
    } else {
        None
    }
}
