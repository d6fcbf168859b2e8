//! A document as the fast reader ([`super::fast`]) reads it: one flat vector of nodes whose
//! keys and most strings borrow from the text, so reading a valid file allocates a handful
//! of times instead of once per key and string. The validator walks it in place (see
//! `manifest::validate::tree_json`); [`Tree::to_value`] builds the `serde_json` value for
//! callers that keep the document.

use std::borrow::Cow;

use serde_json::{Map, Number, Value};

/// The nodes of one document in pre-order: a container's first child, if any, follows it;
/// the other children are linked by [`Entry::next`].
#[derive(Clone, Debug, Default)]
pub(crate) struct Tree<'s> {
    entries: Vec<Entry<'s>>,
}

/// One node, with the key it has in its map (empty for list items and the root).
#[derive(Clone, Debug)]
pub(crate) struct Entry<'s> {
    key: &'s str,
    /// The next child of the same parent (0: none; 0 is the root, never a child).
    next: u32,
    slot: Slot<'s>,
}

/// A node's value; containers hold their number of children.
#[derive(Clone, Debug)]
pub(crate) enum Slot<'s> {
    /// `null`, `~` or nothing.
    Null,
    /// `true` or `false` (core schema spellings).
    Bool(bool),
    /// An integer or a float, as the core schema reads it.
    Number(Number),
    /// A string: a slice of the text, or built when escapes or a block scalar needed it.
    Str(Cow<'s, str>),
    /// A map of this many members.
    Map(u32),
    /// A list of this many items.
    Seq(u32),
}

impl<'s> Tree<'s> {
    /// An empty tree with room for about `nodes` nodes.
    pub(crate) fn with_capacity(nodes: usize) -> Self {
        Tree {
            entries: Vec::with_capacity(nodes),
        }
    }

    /// Appends a node (its key set later by [`Tree::set_key`]); `None` past `u32` nodes.
    pub(crate) fn push(&mut self, slot: Slot<'s>) -> Option<u32> {
        let index = u32::try_from(self.entries.len()).ok()?;
        self.entries.push(Entry {
            key: "",
            next: 0,
            slot,
        });
        Some(index)
    }

    /// Names the node at `index` by its key in the parent map.
    pub(crate) fn set_key(&mut self, index: u32, key: &'s str) {
        if let Some(e) = self.entries.get_mut(index as usize) {
            e.key = key;
        }
    }

    /// Links `next` as the sibling after `index`.
    pub(crate) fn link(&mut self, index: u32, next: u32) {
        if let Some(e) = self.entries.get_mut(index as usize) {
            e.next = next;
        }
    }

    /// Sets the slot of a container once its children are known.
    pub(crate) fn close(&mut self, index: u32, slot: Slot<'s>) {
        if let Some(e) = self.entries.get_mut(index as usize) {
            e.slot = slot;
        }
    }

    /// The node at `index`.
    pub(crate) fn node(&self, index: u32) -> Node<'_> {
        Node {
            tree: self,
            at: index,
        }
    }

    /// The root node.
    pub(crate) fn root(&self) -> Node<'_> {
        self.node(0)
    }

    /// The document as a `serde_json` value (what the full reader would give).
    pub(crate) fn to_value(&self) -> Value {
        self.root().to_value()
    }
}

/// The children of a container, as indices.
#[derive(Clone, Debug)]
struct Children {
    next: u32,
    left: u32,
}

impl Children {
    fn new(tree: &Tree<'_>, index: u32) -> Self {
        let left = match tree.entries.get(index as usize).map(|e| &e.slot) {
            Some(Slot::Map(n) | Slot::Seq(n)) => *n,
            _ => 0,
        };
        Children {
            next: index.saturating_add(1),
            left,
        }
    }

    /// The next child, given the tree it walks.
    fn step(&mut self, tree: &Tree<'_>) -> Option<u32> {
        if self.left == 0 {
            return None;
        }
        let at = self.next;
        self.left -= 1;
        self.next = tree.entries.get(at as usize)?.next;
        Some(at)
    }
}

/// A node of a [`Tree`], cheap to copy.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Node<'a> {
    tree: &'a Tree<'a>,
    at: u32,
}

impl<'a> Node<'a> {
    /// The tree and the node's index in it (for identities).
    pub(crate) fn tree_and_index(self) -> (&'a Tree<'a>, u32) {
        (self.tree, self.at)
    }

    /// The node's slot.
    pub(crate) fn slot(self) -> &'a Slot<'a> {
        match self.tree.entries.get(self.at as usize) {
            Some(e) => &e.slot,
            None => &Slot::Null,
        }
    }

    /// The number of children of a map or list (0 for a scalar).
    pub(crate) fn len(self) -> usize {
        match self.slot() {
            Slot::Map(n) | Slot::Seq(n) => *n as usize,
            _ => 0,
        }
    }

    /// The node's children with their keys (empty for list items).
    pub(crate) fn children(self) -> ChildNodes<'a> {
        ChildNodes {
            tree: self.tree,
            children: Children::new(self.tree, self.at),
        }
    }

    /// The member `key` of a map.
    pub(crate) fn get(self, key: &str) -> Option<Node<'a>> {
        if !matches!(self.slot(), Slot::Map(_)) {
            return None;
        }
        self.children().find(|(k, _)| *k == key).map(|(_, n)| n)
    }

    /// The text of a string.
    pub(crate) fn as_str(self) -> Option<&'a str> {
        match self.slot() {
            Slot::Str(s) => Some(s.as_ref()),
            _ => None,
        }
    }

    /// Whether the node is a map.
    pub(crate) fn is_map(self) -> bool {
        matches!(self.slot(), Slot::Map(_))
    }

    /// Whether the node is a list.
    pub(crate) fn is_seq(self) -> bool {
        matches!(self.slot(), Slot::Seq(_))
    }

    /// The node (and what is under it) as a `serde_json` value.
    pub(crate) fn to_value(self) -> Value {
        match self.slot() {
            Slot::Null => Value::Null,
            Slot::Bool(b) => Value::Bool(*b),
            Slot::Number(n) => Value::Number(n.clone()),
            Slot::Str(s) => Value::String(s.to_string()),
            Slot::Map(_) => Value::Object(
                self.children()
                    .map(|(k, n)| (k.to_string(), n.to_value()))
                    .collect::<Map<String, Value>>(),
            ),
            Slot::Seq(_) => Value::Array(self.children().map(|(_, n)| n.to_value()).collect()),
        }
    }
}

/// The children of a node with their keys (empty for list items), in order.
#[derive(Clone, Debug)]
pub(crate) struct ChildNodes<'a> {
    tree: &'a Tree<'a>,
    children: Children,
}

impl<'a> Iterator for ChildNodes<'a> {
    type Item = (&'a str, Node<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let tree = self.tree;
        let at = self.children.step(tree)?;
        let key = tree.entries.get(at as usize).map_or("", |e| e.key);
        Some((key, Node { tree, at }))
    }
}
