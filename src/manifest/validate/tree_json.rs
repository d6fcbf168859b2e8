//! The fast reader's [`Tree`] as a JSON representation the `jsonschema` validator walks in
//! place (its `json::Json` trait), so a valid file is checked without building a
//! `serde_json::Value` for every key and string. Only the yes/no check runs on it: a document
//! that fails is read again by the full reader, whose errors are worded and placed.

use std::borrow::Cow;

use jsonschema::json::{Array, Json, Node, NodeIdentity, Object};
use jsonschema::types::JsonType;
use serde_json::{Number, Value};

use crate::manifest::yaml::tree::{self, Slot, Tree};

/// The representation: nodes of a [`Tree`].
pub(crate) struct TreeJson;

/// A node: one in a tree, or a free-standing string (a property name `propertyNames` checks).
#[derive(Clone, Copy, Debug)]
pub(crate) enum TreeNode<'a> {
    /// A node of a document.
    In(tree::Node<'a>),
    /// A string that is no node of a document.
    Name(&'a str),
}

impl<'a> TreeNode<'a> {
    /// The root of `tree`.
    pub(crate) fn root(tree: &'a Tree<'a>) -> Self {
        TreeNode::In(tree.root())
    }

    fn slot(&self) -> Option<&'a Slot<'a>> {
        match self {
            TreeNode::In(node) => Some(node.slot()),
            TreeNode::Name(_) => None,
        }
    }
}

impl Json for TreeJson {
    type Node<'a> = TreeNode<'a>;
    type PreparedKey = Box<str>;
    type StringBuffer = ();

    // A lookup scans the members, so one pass over them never costs more than lookups do.
    const KEYS_PER_LOOKUP: usize = 64;
    const ACYCLIC: bool = true;

    fn prepare_key(key: &str) -> Box<str> {
        key.into()
    }

    fn with_string_node<T>((): &mut (), string: &str, f: impl FnOnce(TreeNode<'_>) -> T) -> T {
        f(TreeNode::Name(string))
    }
}

impl<'a> Node<'a, TreeJson> for TreeNode<'a> {
    type Object = TreeMembers<'a>;
    type Array = TreeItems<'a>;
    type Number = &'a Number;

    fn as_object(&self) -> Option<TreeMembers<'a>> {
        match self {
            TreeNode::In(node) if node.is_map() => Some(TreeMembers(*node)),
            _ => None,
        }
    }

    fn as_array(&self) -> Option<TreeItems<'a>> {
        match self {
            TreeNode::In(node) if node.is_seq() => Some(TreeItems(*node)),
            _ => None,
        }
    }

    fn as_string(&self) -> Option<Cow<'a, str>> {
        match self {
            TreeNode::In(node) => node.as_str().map(Cow::Borrowed),
            TreeNode::Name(name) => Some(Cow::Borrowed(name)),
        }
    }

    fn as_number(&self) -> Option<&'a Number> {
        match self.slot() {
            Some(Slot::Number(n)) => Some(n),
            _ => None,
        }
    }

    fn as_boolean(&self) -> Option<bool> {
        match self.slot() {
            Some(Slot::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    fn is_null(&self) -> bool {
        matches!(self.slot(), Some(Slot::Null))
    }

    fn json_type(&self) -> JsonType {
        match self.slot() {
            None | Some(Slot::Str(_)) => JsonType::String,
            Some(Slot::Null) => JsonType::Null,
            Some(Slot::Bool(_)) => JsonType::Boolean,
            Some(Slot::Number(_)) => JsonType::Number,
            Some(Slot::Map(_)) => JsonType::Object,
            Some(Slot::Seq(_)) => JsonType::Array,
        }
    }

    fn equals_value(&self, expected: &Value) -> bool {
        // `enum` and `const` on scalars are common in kargo's schemas: compare them without
        // building a value.
        match (self.slot(), expected) {
            (None | Some(Slot::Str(_)), Value::String(e)) => {
                self.as_string().is_some_and(|s| s == e.as_str())
            }
            (None | Some(Slot::Str(_)), _) => false,
            (Some(Slot::Null), e) => e.is_null(),
            (Some(Slot::Bool(b)), e) => e.as_bool() == Some(*b),
            _ => jsonschema::json::cmp::equal(&self.to_value(), expected),
        }
    }

    fn to_value(&self) -> Cow<'a, Value> {
        match self {
            TreeNode::In(node) => Cow::Owned(node.to_value()),
            TreeNode::Name(name) => Cow::Owned(Value::String((*name).to_string())),
        }
    }

    fn identity(&self) -> Option<NodeIdentity> {
        match self {
            TreeNode::In(node) => {
                let (tree, at) = node.tree_and_index();
                Some(NodeIdentity::tagged(std::ptr::from_ref(tree) as usize, at))
            }
            // A name lives only while it is checked; it is never a container.
            TreeNode::Name(_) => None,
        }
    }
}

/// A map node's members.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TreeMembers<'a>(tree::Node<'a>);

impl<'a> Object<'a, TreeJson> for TreeMembers<'a> {
    type Node = TreeNode<'a>;
    type MemberName = &'a str;
    type MembersIter = Members<'a>;

    fn len(&self) -> usize {
        self.0.len()
    }

    fn get(&self, key: &Box<str>) -> Option<TreeNode<'a>> {
        self.0.get(key).map(TreeNode::In)
    }

    fn members(&self) -> Self::MembersIter {
        Members(self.0.children())
    }
}

/// A list node's items.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TreeItems<'a>(tree::Node<'a>);

impl<'a> Array<'a, TreeJson> for TreeItems<'a> {
    type Node = TreeNode<'a>;
    type ElementsIter = Items<'a>;

    fn len(&self) -> usize {
        self.0.len()
    }

    fn elements(&self) -> Self::ElementsIter {
        Items(self.0.children())
    }
}

/// The members of a map node.
pub(crate) struct Members<'a>(tree::ChildNodes<'a>);

impl<'a> Iterator for Members<'a> {
    type Item = (&'a str, TreeNode<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(k, n)| (k, TreeNode::In(n)))
    }
}

/// The items of a list node.
pub(crate) struct Items<'a>(tree::ChildNodes<'a>);

impl<'a> Iterator for Items<'a> {
    type Item = TreeNode<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(_, n)| TreeNode::In(n))
    }
}
