//! Where each node of a document was written, looked up by JSON pointer.

use std::borrow::Cow;
use std::collections::HashMap;

use super::error::Position;

/// Where every node of one document was written, looked up by JSON pointer (RFC 6901), so a
/// validation error on `/spec/ports/0/published` can point at its line and column.
///
/// Nodes inside an expanded alias are not recorded one by one: they resolve to the alias
/// itself (through [`Positions::nearest`]), which keeps the table as small as the text.
#[derive(Debug, Clone, Default)]
pub struct Positions {
    /// Node 0 is the document's root; the others hang from it through `children`.
    nodes: Vec<Node>,
}

/// One node: where its value starts, where its key starts (map entries), its scalar text.
#[derive(Debug, Clone)]
struct Node {
    at: Position,
    key: Option<Position>,
    scalar: Option<ScalarSource>,
    children: Children,
}

/// The text of a scalar as the parser read it, and whether it was written without quotes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScalarSource {
    pub(crate) text: String,
    pub(crate) plain: bool,
}

/// The children of a node, by index or by key.
#[derive(Debug, Clone)]
pub(crate) enum Children {
    Leaf,
    Seq(Vec<usize>),
    Map(HashMap<String, usize>),
}

impl Positions {
    /// Whether any position was recorded (the fast reader records none).
    pub fn is_known(&self) -> bool {
        !self.nodes.is_empty()
    }

    /// Records a node and returns its id (the first node recorded is the root).
    pub(crate) fn add(
        &mut self,
        at: Position,
        scalar: Option<ScalarSource>,
        children: Children,
    ) -> usize {
        self.nodes.push(Node {
            at,
            key: None,
            scalar,
            children,
        });
        self.nodes.len() - 1
    }

    /// Appends `child` as the next item of the list `parent`.
    pub(crate) fn push_item(&mut self, parent: usize, child: usize) {
        if let Some(Node {
            children: Children::Seq(items),
            ..
        }) = self.nodes.get_mut(parent)
        {
            items.push(child);
        }
    }

    /// Records `child` as the value of `key` in the map `parent`, with the key's position.
    pub(crate) fn insert_entry(
        &mut self,
        parent: usize,
        key: String,
        key_at: Position,
        child: usize,
    ) {
        if let Some(node) = self.nodes.get_mut(child) {
            node.key = Some(key_at);
        }
        if let Some(Node {
            children: Children::Map(entries),
            ..
        }) = self.nodes.get_mut(parent)
        {
            entries.insert(key, child);
        }
    }

    /// Where node `id` starts.
    pub(crate) fn value_of(&self, id: usize) -> Option<Position> {
        self.nodes.get(id).map(|node| node.at)
    }

    /// The position of `key` in the map `parent`, if that key was already recorded.
    pub(crate) fn entry_key(&self, parent: usize, key: &str) -> Option<Position> {
        match self.nodes.get(parent) {
            Some(Node {
                children: Children::Map(entries),
                ..
            }) => entries
                .get(key)
                .and_then(|&child| self.nodes.get(child))
                .and_then(|node| node.key),
            _ => None,
        }
    }

    /// Where the value at `pointer` starts, or `None` when no node was recorded there.
    pub fn value(&self, pointer: &str) -> Option<Position> {
        self.find(pointer).map(|node| node.at)
    }

    /// Where the key of the map entry at `pointer` starts, for errors about the key itself
    /// (unknown field, duplicate); `None` for list items, the root and unknown pointers.
    pub fn key(&self, pointer: &str) -> Option<Position> {
        self.find(pointer).and_then(|node| node.key)
    }

    /// Where the node at `pointer` starts, or else its nearest recorded ancestor (a missing
    /// required field points at the map that lacks it); the start of the file when nothing is known.
    pub fn nearest(&self, pointer: &str) -> Position {
        let (_, deepest) = self.walk(pointer);
        deepest
            .and_then(|id| self.nodes.get(id))
            .map_or(Position::START, |node| node.at)
    }

    /// The text of the scalar at `pointer` as written (unquoted, escapes resolved), so an
    /// error can say "4.2 is a number; quote it: \"4.2\"".
    pub fn scalar_source(&self, pointer: &str) -> Option<&str> {
        self.find(pointer)
            .and_then(|node| node.scalar.as_ref())
            .map(|scalar| scalar.text.as_str())
    }

    /// Whether the scalar at `pointer` was written plain (unquoted), which is when YAML gives
    /// it a type of its own (number, boolean, null); `None` for collections and unknown pointers.
    pub fn is_plain(&self, pointer: &str) -> Option<bool> {
        self.find(pointer)
            .and_then(|node| node.scalar.as_ref())
            .map(|scalar| scalar.plain)
    }

    /// The positions of the node at `pointer` and everything under it, rooted there (an item
    /// of a `List` checked as a document of its own keeps its places in the file); empty when
    /// nothing was recorded at `pointer`.
    pub fn subtree(&self, pointer: &str) -> Positions {
        let mut out = Positions::default();
        if let (Some(root), _) = self.walk(pointer) {
            self.copy_into(root, &mut out);
        }
        out
    }

    /// Copies node `id` and its descendants into `out`; returns the copy's id there.
    fn copy_into(&self, id: usize, out: &mut Positions) -> usize {
        let Some(node) = self.nodes.get(id) else {
            return out.add(Position::START, None, Children::Leaf);
        };
        let children = match &node.children {
            Children::Leaf => Children::Leaf,
            Children::Seq(_) => Children::Seq(Vec::new()),
            Children::Map(_) => Children::Map(HashMap::new()),
        };
        let copy = out.add(node.at, node.scalar.clone(), children);
        if let Some(copied) = out.nodes.get_mut(copy) {
            copied.key = node.key;
        }
        match &node.children {
            Children::Leaf => {}
            Children::Seq(items) => {
                for &item in items {
                    let child = self.copy_into(item, out);
                    out.push_item(copy, child);
                }
            }
            Children::Map(entries) => {
                for (key, &value) in entries {
                    let key_at = self
                        .nodes
                        .get(value)
                        .and_then(|n| n.key)
                        .unwrap_or(Position::START);
                    let child = self.copy_into(value, out);
                    out.insert_entry(copy, key.clone(), key_at, child);
                }
            }
        }
        copy
    }

    /// The node at `pointer` when it was recorded.
    fn find(&self, pointer: &str) -> Option<&Node> {
        let (found, _) = self.walk(pointer);
        found.and_then(|id| self.nodes.get(id))
    }

    /// Follows `pointer` from the root: (the node itself if found, the deepest node reached).
    fn walk(&self, pointer: &str) -> (Option<usize>, Option<usize>) {
        if self.nodes.is_empty() {
            return (None, None);
        }
        let mut current = 0;
        if pointer.is_empty() {
            return (Some(current), Some(current));
        }
        let Some(rest) = pointer.strip_prefix('/') else {
            return (None, Some(current));
        };
        for raw in rest.split('/') {
            let next = unescape(raw).and_then(|segment| self.child(current, &segment));
            match next {
                Some(child) => current = child,
                None => return (None, Some(current)),
            }
        }
        (Some(current), Some(current))
    }

    /// The child of `parent` named by one pointer segment.
    fn child(&self, parent: usize, segment: &str) -> Option<usize> {
        match &self.nodes.get(parent)?.children {
            Children::Leaf => None,
            Children::Map(entries) => entries.get(segment).copied(),
            Children::Seq(items) => {
                let canonical = !segment.is_empty()
                    && segment.bytes().all(|b| b.is_ascii_digit())
                    && (segment.len() == 1 || !segment.starts_with('0'));
                if !canonical {
                    return None;
                }
                items.get(segment.parse::<usize>().ok()?).copied()
            }
        }
    }
}

/// Decodes one RFC 6901 segment (`~1` is `/`, `~0` is `~`); `None` for a malformed escape.
fn unescape(raw: &str) -> Option<Cow<'_, str>> {
    if !raw.contains('~') {
        return Some(Cow::Borrowed(raw));
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(Cow::Owned(out))
}
