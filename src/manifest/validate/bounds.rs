//! The bounds a document may pass although its schema holds: an Environment's variables
//! that resolve past [`crate::manifest::limits`]' bounds (the interpolation bomb), and
//! quantities (durations, memory sizes, CPU counts) past what 64 bits of their unit hold,
//! and the Service settings Swarm refuses together (`global` with `replicas`, `dnsrr` with
//! a port published through the ingress mesh), which would otherwise fail only at deploy.
//! The same walk runs on the full reader's values and on the fast reader's tree
//! ([`Doc`]), so the fast path declines exactly the documents the full path reports.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::Value;

use super::Rule;
use super::messages::pattern_core;
use crate::api::quantity::{
    QuantityError, parse_duration_nanos, parse_memory_bytes, parse_nano_cpus,
};
use crate::api::schema::{self, Mode};
use crate::api::{CPUS_PATTERN, DURATION_PATTERN, Kind, MEMORY_PATTERN};
use crate::manifest::interpolate::{
    InterpolationError, has_interpolation, interpolate_str, pointer_push, resolve_variables_partial,
};
use crate::manifest::yaml::tree;

/// A document as the walk reads it: a `serde_json` value or a fast reader's node.
pub(super) trait Doc<'a>: Copy {
    /// The member `key` of a map.
    fn member(self, key: &str) -> Option<Self>;
    /// The text of a string.
    fn text(self) -> Option<&'a str>;
    /// The value of a boolean.
    fn flag(self) -> Option<bool>;
    /// Calls `f` with each member of a map (nothing for other nodes).
    fn each_member(self, f: &mut dyn FnMut(&'a str, Self));
    /// Calls `f` with each item of a list (nothing for other nodes).
    fn each_item(self, f: &mut dyn FnMut(usize, Self));
}

impl<'a> Doc<'a> for &'a Value {
    fn member(self, key: &str) -> Option<Self> {
        self.get(key)
    }

    fn text(self) -> Option<&'a str> {
        self.as_str()
    }

    fn flag(self) -> Option<bool> {
        self.as_bool()
    }

    fn each_member(self, f: &mut dyn FnMut(&'a str, Self)) {
        if let Value::Object(map) = self {
            for (k, v) in map {
                f(k, v);
            }
        }
    }

    fn each_item(self, f: &mut dyn FnMut(usize, Self)) {
        if let Value::Array(items) = self {
            for (i, v) in items.iter().enumerate() {
                f(i, v);
            }
        }
    }
}

impl<'a> Doc<'a> for tree::Node<'a> {
    fn member(self, key: &str) -> Option<Self> {
        self.get(key)
    }

    fn text(self) -> Option<&'a str> {
        self.as_str()
    }

    fn flag(self) -> Option<bool> {
        match self.slot() {
            tree::Slot::Bool(b) => Some(*b),
            _ => None,
        }
    }

    fn each_member(self, f: &mut dyn FnMut(&'a str, Self)) {
        if self.is_map() {
            for (k, v) in self.children() {
                f(k, v);
            }
        }
    }

    fn each_item(self, f: &mut dyn FnMut(usize, Self)) {
        if self.is_seq() {
            for (i, (_, v)) in self.children().enumerate() {
                f(i, v);
            }
        }
    }
}

/// One bound passed: the JSON pointer of the offending value, and what is wrong.
#[derive(Debug)]
pub(super) struct Passed {
    /// JSON pointer of the value.
    pub(super) pointer: String,
    /// The rule it breaks.
    pub(super) rule: Rule,
    /// The message, without the field.
    pub(super) message: String,
}

/// Every bound the document `root` of `kind` passes (none for a sound document), and the
/// interpolation syntax errors its interpolated strings hold (known without any variable).
pub(super) fn check<'a, D: Doc<'a>>(kind: Kind, root: D) -> Vec<Passed> {
    let mut out = Vec::new();
    if kind == Kind::Environment {
        variables(root, &mut out);
    }
    interpolated(kind, root, &mut out);
    if kind == Kind::Service {
        refused_together(root, &mut out);
    }
    if let Some(schema) = stored_schema(kind) {
        quantities(schema, root, &mut Vec::new(), &mut out);
    }
    out
}

/// The part of each kind's stored schema that leads to a quantity (none for a kind
/// without any), built once: the walk never enters maps such as `env` or `labels`.
fn stored_schema(kind: Kind) -> Option<&'static Value> {
    static SCHEMAS: OnceLock<Vec<(Kind, Option<Value>)>> = OnceLock::new();
    SCHEMAS
        .get_or_init(|| {
            Kind::ALL
                .into_iter()
                .map(|k| (k, quantity_paths(&schema::kind_schema(k, Mode::Stored))))
                .collect()
        })
        .iter()
        .find(|(k, _)| *k == kind)
        .and_then(|(_, v)| v.as_ref())
}

/// Whether a schema pattern is one of the quantities.
fn is_quantity(pattern: &str) -> bool {
    let core = pattern_core(pattern);
    core == DURATION_PATTERN || core == MEMORY_PATTERN || core == CPUS_PATTERN
}

/// `schema` keeping only `properties`, `additionalProperties` and `items` that lead to a
/// quantity pattern, and those patterns; `None` when nothing under it is a quantity.
fn quantity_paths(schema: &Value) -> Option<Value> {
    let mut out = serde_json::Map::new();
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
        && is_quantity(pattern)
    {
        out.insert("pattern".into(), Value::String(pattern.to_string()));
    }
    if let Some(Value::Object(properties)) = schema.get("properties") {
        let kept: serde_json::Map<String, Value> = properties
            .iter()
            .filter_map(|(k, v)| quantity_paths(v).map(|v| (k.clone(), v)))
            .collect();
        if !kept.is_empty() {
            out.insert("properties".into(), Value::Object(kept));
        }
    }
    for key in ["additionalProperties", "items"] {
        if let Some(sub) = schema.get(key).and_then(quantity_paths) {
            out.insert(key.into(), sub);
        }
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

/// An Environment's variables that would resolve past a bound.
fn variables<'a, D: Doc<'a>>(root: D, out: &mut Vec<Passed>) {
    let Some(vars) = root.member("spec").and_then(|s| s.member("variables")) else {
        return;
    };
    let mut map = BTreeMap::new();
    vars.each_member(&mut |k, v| {
        if let Some(text) = v.text() {
            map.insert(k.to_string(), text.to_string());
        }
    });
    if map.is_empty() {
        return;
    }
    let (_, errors) = resolve_variables_partial(&map);
    for error in errors {
        match &error {
            InterpolationError::TooLarge { path, .. } => out.push(Passed {
                pointer: path.clone(),
                rule: Rule::Length,
                message: error.message(),
            }),
            InterpolationError::Syntax { path, .. } => out.push(Passed {
                pointer: path.clone(),
                rule: Rule::Pattern,
                message: error.message(),
            }),
            _ => {}
        }
    }
}

/// Service settings valid one by one that Swarm refuses together (the renderer refuses
/// them too, with the same reasons).
fn refused_together<'a, D: Doc<'a>>(root: D, out: &mut Vec<Passed>) {
    let Some(spec) = root.member("spec") else {
        return;
    };
    if let Some(deploy) = spec.member("deploy")
        && matches!(
            deploy.member("mode").and_then(Doc::text),
            Some("global" | "global-job")
        )
        && deploy.member("replicas").is_some()
    {
        out.push(Passed {
            pointer: "/spec/deploy/replicas".into(),
            rule: Rule::Value,
            message: "deploy.replicas is for replicated modes: a global service runs one task per node (remove replicas)".into(),
        });
    }
    if spec.member("endpointMode").and_then(Doc::text) == Some("dnsrr")
        && let Some(ports) = spec.member("ports")
    {
        let mut ingress = None;
        ports.each_item(&mut |i, port| {
            let mode = port.member("mode").and_then(Doc::text);
            if ingress.is_none() && mode.is_none_or(|m| m == "ingress") {
                ingress = Some(i);
            }
        });
        if let Some(i) = ingress {
            out.push(Passed {
                pointer: format!("/spec/ports/{i}"),
                rule: Rule::Value,
                message: "endpointMode dnsrr cannot publish through the ingress routing mesh: publish with mode: host, or use vip".into(),
            });
        }
    }
}

/// The strings the controller interpolates — a Service's whole spec, an Environment's
/// per-service settings, a Configuration's `template: true` files — checked for what is
/// wrong whatever the variables hold: a `$` that starts no reference (the shell's `$((`).
/// Variables that are not set are the controller's (and `kargo apply`'s) to report.
fn interpolated<'a, D: Doc<'a>>(kind: Kind, root: D, out: &mut Vec<Passed>) {
    let Some(spec) = root.member("spec") else {
        return;
    };
    let mut path = vec![Step::Key("spec")];
    match kind {
        Kind::Service => syntax(spec, &mut path, out),
        Kind::Environment => {
            if let Some(services) = spec.member("services") {
                path.push(Step::Key("services"));
                syntax(services, &mut path, out);
            }
        }
        Kind::Configuration => {
            let Some(files) = spec.member("files") else {
                return;
            };
            path.push(Step::Key("files"));
            files.each_member(&mut |name, file| {
                if file.member("template").and_then(Doc::flag) != Some(true) {
                    return;
                }
                if let Some(content) = file.member("content") {
                    path.push(Step::Key(name));
                    path.push(Step::Key("content"));
                    if file.member("sensitive").and_then(Doc::flag) == Some(true) {
                        // A sensitive file's content is never quoted, not even in an error.
                        let mut found = Vec::new();
                        syntax(content, &mut path, &mut found);
                        if let Some(first) = found.into_iter().next() {
                            out.push(Passed {
                                message: "invalid interpolation in a sensitive file (its content \
                                          is not quoted): write `$$` for a literal dollar sign, \
                                          `${NAME}` for a variable"
                                    .to_string(),
                                ..first
                            });
                        }
                    } else {
                        syntax(content, &mut path, out);
                    }
                    path.truncate(path.len() - 2);
                }
            });
        }
        Kind::Stack => {}
    }
}

/// Reports the interpolation syntax errors of every string under `node`.
fn syntax<'a, D: Doc<'a>>(node: D, path: &mut Vec<Step<'a>>, out: &mut Vec<Passed>) {
    if let Some(text) = node.text() {
        if !has_interpolation(text) {
            return;
        }
        let pointer = pointer_of(path);
        let errors = interpolate_str(text, &BTreeMap::new(), &pointer).err();
        for error in errors.into_iter().flatten() {
            if matches!(error, InterpolationError::Syntax { .. }) {
                out.push(Passed {
                    pointer: pointer.clone(),
                    rule: Rule::Pattern,
                    message: error.message(),
                });
            }
        }
        return;
    }
    node.each_member(&mut |key, child| {
        path.push(Step::Key(key));
        syntax(child, path, out);
        path.pop();
    });
    node.each_item(&mut |i, child| {
        path.push(Step::Index(i));
        syntax(child, path, out);
        path.pop();
    });
}

/// One step of the path to a node: a map key or a list index.
#[derive(Clone, Copy)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// The JSON pointer of a path (built only for a value to report).
fn pointer_of(path: &[Step<'_>]) -> String {
    path.iter().fold(String::new(), |out, step| match step {
        Step::Key(k) => pointer_push(&out, k),
        Step::Index(i) => format!("{out}/{i}"),
    })
}

/// Walks `node` along its schema and reports the quantities past 64 bits.
fn quantities<'a, D: Doc<'a>>(
    schema: &Value,
    node: D,
    path: &mut Vec<Step<'a>>,
    out: &mut Vec<Passed>,
) {
    if let Some(text) = node.text() {
        let Some(pattern) = schema.get("pattern").and_then(Value::as_str) else {
            return;
        };
        let parsed = match pattern_core(pattern) {
            p if p == DURATION_PATTERN => parse_duration_nanos(text),
            p if p == MEMORY_PATTERN => parse_memory_bytes(text),
            p if p == CPUS_PATTERN => parse_nano_cpus(text),
            _ => return,
        };
        // A malformed quantity is the schema's to report (or a `${VAR}`, checked later).
        if let Err(error @ QuantityError::TooLarge { .. }) = parsed {
            out.push(Passed {
                pointer: pointer_of(path),
                rule: Rule::Range,
                message: error.to_string(),
            });
        }
        return;
    }
    let properties = schema.get("properties");
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    if properties.is_some() || additional.is_some() {
        node.each_member(&mut |key, child| {
            let Some(sub) = properties.and_then(|p| p.get(key)).or(additional) else {
                return;
            };
            path.push(Step::Key(key));
            quantities(sub, child, path, out);
            path.pop();
        });
    }
    if let Some(items) = schema.get("items").filter(|i| i.is_object()) {
        node.each_item(&mut |i, child| {
            path.push(Step::Index(i));
            quantities(items, child, path, out);
            path.pop();
        });
    }
}
