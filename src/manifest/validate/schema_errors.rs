//! Compiled schemas, and the validator's errors turned into [`Diagnostic`]s at YAML positions.

use std::sync::OnceLock;

use jsonschema::error::ValidationErrorKind;
use jsonschema::json::Json;
use jsonschema::{Draft, PatternOptions, ValidationError, Validator};
use serde_json::Value;

use super::messages::{
    closest, describe, did_you_mean, expected_type, one_of, pattern_meaning, quote,
};
use super::tree_json::TreeJson;
use super::{Rule, Violation};
use crate::api::Kind;
use crate::api::schema::{self, Mode};
use crate::manifest::yaml::{Position, Positions};

/// The schemas of every kind in both modes, their spec-only variants, and the umbrella,
/// each compiled on first use and kept for the life of the process: `kargo validate` of a
/// few files pays for the kinds it meets, not for all seventeen schemas.
pub(crate) struct Schemas {
    documents: [Slot; 8],
    specs: [Slot; 8],
    umbrella: Slot,
    /// Each kind's stored-mode document schema for the fast reader's trees.
    trees: [TreeSlot; 4],
}

/// A schema compiled for the fast reader's trees (see [`super::tree_json`]).
type TreeSlot = OnceLock<Result<Validator<TreeJson>, String>>;

/// One schema, compiled on first use; `Err` only if kargo's own schema does not compile (a
/// bug the unit tests catch).
type Slot = OnceLock<Result<Compiled, String>>;

/// A schema and its compiled validator (the schema is kept to word errors).
pub(crate) struct Compiled {
    pub(crate) schema: Value,
    pub(crate) validator: Validator,
}

/// The schema set (each schema compiled when first asked for).
pub(crate) fn schemas() -> &'static Schemas {
    static SCHEMAS: Schemas = Schemas {
        documents: [const { OnceLock::new() }; 8],
        specs: [const { OnceLock::new() }; 8],
        umbrella: OnceLock::new(),
        trees: [const { OnceLock::new() }; 4],
    };
    &SCHEMAS
}

/// The place of `kind` in [`Kind::ALL`] (and so in a per-kind slot array).
fn kind_index(kind: Kind) -> usize {
    Kind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
}

/// The place of `(kind, mode)` in a slot array.
fn slot_index(kind: Kind, mode: Mode) -> usize {
    kind_index(kind) * 2 + usize::from(mode == Mode::Merged)
}

fn get(slot: &Slot, schema: impl FnOnce() -> Value) -> Result<&Compiled, &str> {
    slot.get_or_init(|| compile(schema()))
        .as_ref()
        .map_err(String::as_str)
}

fn compile(schema: Value) -> Result<Compiled, String> {
    let validator = build(&schema)?;
    Ok(Compiled { schema, validator })
}

/// The validator of `schema` for values of representation `F`: draft 7, patterns by the
/// `regex` crate, formats not asserted (as ajv and yaml-language-server default to).
fn build<F: Json>(schema: &Value) -> Result<Validator<F>, String> {
    jsonschema::options_for::<F>()
        .with_draft(Draft::Draft7)
        .should_validate_formats(false)
        .with_pattern_options(PatternOptions::regex())
        .build(schema)
        .map_err(|e| format!("kargo's own schema does not compile: {e}"))
}

impl Schemas {
    /// The schema of a whole document of `kind`.
    pub(crate) fn document(&self, kind: Kind, mode: Mode) -> Result<&Compiled, &str> {
        let slot = &self.documents[slot_index(kind, mode)];
        get(slot, || schema::kind_schema(kind, mode))
    }

    /// The schema of `kind`'s spec alone.
    pub(crate) fn spec(&self, kind: Kind, mode: Mode) -> Result<&Compiled, &str> {
        let slot = &self.specs[slot_index(kind, mode)];
        get(slot, || schema::spec_schema(kind, mode))
    }

    /// The yes/no check of a stored document of `kind` that the fast reader read.
    pub(crate) fn tree_document(&self, kind: Kind) -> Result<&Validator<TreeJson>, &str> {
        let Some(slot) = self.trees.get(kind_index(kind)) else {
            return Err("no schema slot for this kind");
        };
        slot.get_or_init(|| build(&schema::kind_schema(kind, Mode::Stored)))
            .as_ref()
            .map_err(String::as_str)
    }

    /// The umbrella schema (any kind).
    pub(crate) fn umbrella(&self) -> Result<&Compiled, &str> {
        get(&self.umbrella, || schema::umbrella_schema(Mode::Stored))
    }
}

/// Checks `value` against `compiled`, every error worded, at most `max` of them.
pub(crate) fn check(
    compiled: &Compiled,
    value: &Value,
    positions: Option<&Positions>,
    max: usize,
) -> Vec<Violation> {
    if compiled.validator.is_valid(value) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for error in compiled.validator.iter_errors(value) {
        word(&error, &compiled.schema, value, positions, &mut out);
        if out.len() > max {
            break;
        }
    }
    out
}

/// Turns one validator error into violations (an unknown-fields error may name several).
fn word(
    error: &ValidationError<'_>,
    schema: &Value,
    document: &Value,
    positions: Option<&Positions>,
    out: &mut Vec<Violation>,
) {
    let pointer = error.instance_path().as_str().to_string();
    let schema_path = error.schema_path().as_str();
    // The schema holding the failed keyword.
    let node = schema
        .pointer(parent_pointer(schema_path))
        .unwrap_or(&Value::Null);
    let instance = error.instance();
    let source = positions.and_then(|p| p.scalar_source(&pointer));
    let value_at = |ptr: &str| -> Position {
        positions.map_or(Position::START, |p| {
            p.value(ptr).unwrap_or_else(|| p.nearest(ptr))
        })
    };
    let key_at = |ptr: &str| -> Position {
        positions.map_or(Position::START, |p| {
            p.key(ptr)
                .or_else(|| p.value(ptr))
                .unwrap_or_else(|| p.nearest(ptr))
        })
    };
    let shown = display_path(document, &pointer);
    let violation = |rule: Rule, position: Position, path: String, message: String| Violation {
        pointer: pointer.clone(),
        path,
        position,
        rule,
        message,
    };
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let known: Vec<&str> = node
                .get("properties")
                .and_then(Value::as_object)
                .map(|p| p.keys().map(String::as_str).collect())
                .unwrap_or_default();
            let place = if shown.is_empty() {
                "at the top level".to_string()
            } else {
                format!("in {shown}")
            };
            for key in unexpected {
                let child = format!("{pointer}/{}", escape(key));
                let hint = match closest(key, known.iter().copied()) {
                    Some(s) => did_you_mean(Some(s)),
                    None => format!("; expected one of {}", one_of(known.iter().copied())),
                };
                out.push(Violation {
                    pointer: child.clone(),
                    path: join_path(&shown, key),
                    position: key_at(&child),
                    rule: Rule::UnknownField,
                    message: format!("unknown field `{key}` {place}{hint}"),
                });
            }
        }
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            let place = if shown.is_empty() {
                String::new()
            } else {
                format!(" in {shown}")
            };
            out.push(violation(
                Rule::Required,
                key_at(&pointer),
                join_path(&shown, name),
                format!("missing required field `{name}`{place}"),
            ));
        }
        ValidationErrorKind::Type { .. } => {
            let expected = expected_type(node);
            let mut message = format!("expected {expected}, got {}", describe(instance, source));
            let wants_string = schema::has_type(node, "string");
            let plain = positions.and_then(|p| p.is_plain(&pointer)) == Some(true);
            if wants_string && plain && matches!(**instance, Value::Number(_) | Value::Bool(_)) {
                let text = source
                    .map(str::to_string)
                    .unwrap_or_else(|| instance.to_string());
                message.push_str(&format!("; quote it: \"{text}\""));
            }
            // A block list or map starts on the line after its key: point at the key.
            let at = if matches!(**instance, Value::Array(_) | Value::Object(_)) {
                key_at(&pointer)
            } else {
                value_at(&pointer)
            };
            out.push(violation(Rule::Type, at, shown, message));
        }
        ValidationErrorKind::Enum { options } => {
            let allowed: Vec<&str> = options
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let given = instance.as_str();
            let hint = given.and_then(|g| closest(g, allowed.iter().copied()));
            let message = format!(
                "unknown value {}: expected {}{}",
                given.map_or_else(|| describe(instance, source), quote),
                one_of(allowed.iter().copied()),
                did_you_mean(hint)
            );
            out.push(violation(Rule::Enum, value_at(&pointer), shown, message));
        }
        ValidationErrorKind::Constant { expected_value } => {
            let message = format!(
                "expected {}, got {}",
                expected_value,
                describe(instance, source)
            );
            out.push(violation(Rule::Value, value_at(&pointer), shown, message));
        }
        ValidationErrorKind::Pattern { pattern } => {
            let message = format!(
                "{} {}",
                instance
                    .as_str()
                    .map_or_else(|| instance.to_string(), quote),
                pattern_meaning(pattern)
            );
            out.push(violation(Rule::Pattern, value_at(&pointer), shown, message));
        }
        ValidationErrorKind::Minimum { .. }
        | ValidationErrorKind::Maximum { .. }
        | ValidationErrorKind::ExclusiveMinimum { .. }
        | ValidationErrorKind::ExclusiveMaximum { .. } => {
            let range = match (node.get("minimum"), node.get("maximum")) {
                (Some(min), Some(max)) => format!("from {min} to {max}"),
                (Some(min), None) => format!("of at least {min}"),
                (None, Some(max)) => format!("of at most {max}"),
                (None, None) => "in range".into(),
            };
            let message = format!("{instance} is out of range: expected a number {range}");
            out.push(violation(Rule::Range, value_at(&pointer), shown, message));
        }
        ValidationErrorKind::AnyOf { .. } if node.get("anyOf").is_some() => {
            // A number that may be written as a string to interpolate (`replicas`, ports):
            // say what the number branch wants.
            let number = node
                .get("anyOf")
                .and_then(Value::as_array)
                .and_then(|b| b.iter().find(|b| schema::has_type(b, "integer")))
                .unwrap_or(&Value::Null);
            let (rule, message) = match (&**instance, instance.as_i64()) {
                (Value::Number(_), Some(n)) => {
                    let range = match (number.get("minimum"), number.get("maximum")) {
                        (Some(min), Some(max)) => format!("from {min} to {max}"),
                        (Some(min), None) => format!("of at least {min}"),
                        (None, Some(max)) => format!("of at most {max}"),
                        (None, None) => "in range".into(),
                    };
                    (
                        Rule::Range,
                        format!("{n} is out of range: expected a number {range}"),
                    )
                }
                _ => (
                    Rule::Type,
                    format!(
                        "expected a whole number, or a string with a ${{VAR}} reference, got {}",
                        describe(instance, source)
                    ),
                ),
            };
            out.push(violation(rule, value_at(&pointer), shown, message));
        }
        ValidationErrorKind::MaxLength { limit } => {
            let length = instance.as_str().map_or(0, |s| s.chars().count());
            let message = format!(
                "{} is {length} characters long; at most {limit} are allowed",
                instance
                    .as_str()
                    .map_or_else(|| instance.to_string(), quote)
            );
            out.push(violation(Rule::Length, value_at(&pointer), shown, message));
        }
        ValidationErrorKind::MinLength { limit } => {
            let message = format!("must be at least {limit} characters long");
            out.push(violation(Rule::Length, value_at(&pointer), shown, message));
        }
        ValidationErrorKind::MinItems { limit } => {
            let message = format!("expected at least {limit} item(s), got none");
            out.push(violation(Rule::Length, value_at(&pointer), shown, message));
        }
        ValidationErrorKind::PropertyNames { error: inner } => {
            let key = inner.instance().as_str().unwrap_or_default().to_string();
            let child = format!("{pointer}/{}", escape(&key));
            let meaning = match inner.kind() {
                ValidationErrorKind::Pattern { pattern } => pattern_meaning(pattern),
                ValidationErrorKind::MaxLength { limit } => {
                    format!("is longer than {limit} characters")
                }
                _ => inner.to_string(),
            };
            out.push(Violation {
                pointer: child.clone(),
                path: join_path(&shown, &key),
                position: key_at(&child),
                rule: Rule::Pattern,
                message: format!("key {} {meaning}", quote(&key)),
            });
        }
        _ => {
            out.push(violation(
                Rule::Value,
                value_at(&pointer),
                shown,
                error.to_string(),
            ));
        }
    }
}

/// The pointer of the schema node that holds the keyword at the end of `schema_path`.
fn parent_pointer(schema_path: &str) -> &str {
    schema_path.rfind('/').map_or("", |i| &schema_path[..i])
}

/// Escapes a key for a JSON pointer (RFC 6901).
pub(crate) fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// `spec.ports[0].published` for `/spec/ports/0/published`, walking the document to tell
/// list indexes from keys; keys that are not identifiers are quoted: `labels["a.b"]`.
pub(crate) fn display_path(document: &Value, pointer: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(pointer.len() + 8);
    let mut node = Some(document);
    for raw in pointer.split('/').skip(1) {
        let segment: std::borrow::Cow<'_, str> = if raw.contains('~') {
            raw.replace("~1", "/").replace("~0", "~").into()
        } else {
            raw.into()
        };
        match node {
            Some(Value::Array(items)) => {
                let _ = write!(out, "[{segment}]");
                node = segment.parse::<usize>().ok().and_then(|i| items.get(i));
            }
            other => {
                push_key(&mut out, &segment);
                node = other.and_then(|n| n.get(segment.as_ref()));
            }
        }
    }
    out
}

/// Appends `.key` (or `key` at the start), or `["odd key"]`, to a display path.
pub(crate) fn push_key(out: &mut String, key: &str) {
    use std::fmt::Write as _;
    let plain = !key.is_empty()
        && key
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-');
    if !plain {
        let _ = write!(out, "[{key:?}]");
        return;
    }
    if !out.is_empty() {
        out.push('.');
    }
    out.push_str(key);
}

/// `parent.key`, or `parent["odd key"]`.
pub(crate) fn join_path(parent: &str, key: &str) -> String {
    let mut out = parent.to_string();
    push_key(&mut out, key);
    out
}
