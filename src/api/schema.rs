//! JSON Schemas of the four kinds, generated from the Rust types (docs/design.md).
//!
//! The types in this module's siblings derive [`schemars::JsonSchema`]; their doc comments
//! become the `description`s that editors show and `kargo explain` prints. This module turns
//! schemars' output into the schemas kargo publishes in `schemas/` and validates with:
//!
//! - **Draft-07** (`SchemaSettings::draft07()`), the draft yaml-language-server handles best
//!   and the `jsonschema` crate supports fully. Every subschema is inlined (no `$ref` inside a
//!   kind), so an error's schema path leads straight to the field's schema.
//! - Only standard keywords and no `format` (ajv's strict mode rejects schemars' `uint32`
//!   and friends): integer ranges are `minimum`/`maximum`, enums are `enum`, and the meaning
//!   of each enum value is written into the field's `description`.
//! - Names are DNS-1123 labels (pattern and `maxLength: 63`) wherever a field names an
//!   object; durations, memory sizes, CPU counts, file modes and placement constraints have
//!   patterns; ports are 1–65535.
//! - `schemas/kargo.json`, the umbrella schema, picks the kind with `if`/`then` on the
//!   `kind` constant (never `oneOf`, whose errors editors report at the document's root).
//!
//! # Two modes ([`Mode`])
//!
//! A user Service may overlay a catalog entry (docs/design.md, "The three configurations"), so the **stored** mode (the
//! manifest format, what `schemas/` holds) lets every field of a Service's `spec` be left
//! out or set to `null` (a JSON Merge Patch deletes with `null`), maps included, and lets a
//! string hold a `${VAR}` reference where it would otherwise need a pattern (interpolation
//! happens after the merge). Lists replace whole in a merge patch, so list items stay
//! complete: a port still needs its `target`. The **merged** mode checks the result of
//! merge and interpolation: no `null`s, patterns strictly, and `image` required.
//! Configurations, Environments and Stacks are the same in both modes.

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use super::{
    API_VERSION, ConfigurationSpec, ConfigurationStatus, Document, EnvironmentSpec,
    EnvironmentStatus, Kind, ServiceSpec, ServiceStatus, StackSpec, StackStatus,
};

/// The draft-07 meta-schema URI every published schema declares.
pub const DRAFT07: &str = "http://json-schema.org/draft-07/schema#";

/// Pattern of a DNS-1123 label: an object name (used with `maxLength` 63).
pub const NAME_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// Longest object name.
pub const NAME_MAX_LENGTH: u64 = 63;
/// Pattern of a Configuration file name (it becomes part of a Swarm config's name).
pub const FILE_NAME_PATTERN: &str = "^[A-Za-z0-9]([-_.A-Za-z0-9]*[A-Za-z0-9])?$";
/// Longest Configuration file name: Swarm allows 64 characters for `<file>-<10 hex>`.
pub const FILE_NAME_MAX_LENGTH: u64 = 53;
/// Pattern of a Swarm placement constraint such as `node.role==manager`.
pub const CONSTRAINT_PATTERN: &str = r"^\s*(node\.(id|hostname|role|platform\.os|platform\.arch|labels\.[^\s=!]+)|engine\.labels\.[^\s=!]+)\s*(==|!=)\s*[^\s=!]\S*\s*$";
/// Pattern of a network name: a logical `front`/`back` or a real Docker network name.
pub const NETWORK_PATTERN: &str = r"^[A-Za-z0-9][-_.A-Za-z0-9]*$";
/// Pattern of an image reference: at least one character, no whitespace.
pub const IMAGE_PATTERN: &str = r"^\S+$";
/// Pattern of an Environment variable name, as `${VAR}` references it.
pub const VARIABLE_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_]*$";
/// Pattern of a container path (absolute).
pub const PATH_PATTERN: &str = "^/";
/// What a stored-mode pattern also accepts: a string with a `${VAR}` reference, checked after interpolation.
pub const INTERPOLATION_ALTERNATIVE: &str = r"|\$\{";

/// Which rules a schema enforces (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Objects as users write and the store keeps them: a Service may be a partial overlay.
    Stored,
    /// The merged, interpolated result the controller deploys: required fields enforced.
    Merged,
}

/// The schema of one whole document of `kind` (apiVersion, kind, metadata, spec, status), standalone.
pub fn kind_schema(kind: Kind, mode: Mode) -> Value {
    let mut schema = document_schema(kind, mode);
    if let Value::Object(map) = &mut schema {
        let mut out = Map::new();
        out.insert("$schema".into(), json!(DRAFT07));
        out.insert(
            "title".into(),
            json!(format!("kargo {} ({API_VERSION})", kind.as_str())),
        );
        out.append(map);
        return Value::Object(out);
    }
    schema
}

/// The umbrella schema of any kargo document (`schemas/kargo.json`): picks the kind's schema
/// with `if`/`then` on `kind`, so a multi-document file validates whole and errors point at
/// the field, not the document.
pub fn umbrella_schema(mode: Mode) -> Value {
    let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
    let mut definitions = Map::new();
    let mut branches = Vec::new();
    for kind in Kind::ALL {
        definitions.insert(kind.as_str().into(), document_schema(kind, mode));
        branches.push(json!({
            "if": {
                "properties": {"kind": {"const": kind.as_str()}},
                "required": ["kind"]
            },
            "then": {"$ref": format!("#/definitions/{}", kind.as_str())}
        }));
    }
    json!({
        "$schema": DRAFT07,
        "title": format!("kargo manifest ({API_VERSION})"),
        "description": "Any kargo document: a Configuration, Environment, Stack or Service. The `kind` picks which schema applies.",
        "type": "object",
        "required": ["apiVersion", "kind"],
        "properties": {
            "apiVersion": {
                "description": format!("Always `{API_VERSION}`."),
                "type": "string",
                "const": API_VERSION
            },
            "kind": {
                "description": "The kind of object: Configuration, Environment, Stack or Service.",
                "type": "string",
                "enum": kinds
            }
        },
        "allOf": branches,
        "definitions": definitions
    })
}

/// The schema of `kind`'s `spec` alone in `mode`, for checking a merged spec.
pub fn spec_schema(kind: Kind, mode: Mode) -> Value {
    let mut doc = document_schema(kind, mode);
    let spec = doc
        .pointer_mut("/properties/spec")
        .map(Value::take)
        .unwrap_or_else(|| json!({}));
    let mut out = Map::new();
    out.insert("$schema".into(), json!(DRAFT07));
    if let Value::Object(mut map) = spec {
        out.append(&mut map);
    }
    Value::Object(out)
}

/// Every file of `schemas/`: `(file name, pretty JSON text ending in a newline)`, in a fixed
/// order. `kargo schema --out DIR` writes these; a test checks the committed ones match.
pub fn schema_files() -> Vec<(String, String)> {
    let mut files = vec![("kargo.json".to_string(), umbrella_schema(Mode::Stored))];
    for kind in Kind::ALL {
        files.push((file_name(kind), kind_schema(kind, Mode::Stored)));
    }
    files
        .into_iter()
        .map(|(name, value)| (name, pretty(&value)))
        .collect()
}

/// The file of `schemas/` holding `kind`'s schema, e.g. `service.json`.
pub fn file_name(kind: Kind) -> String {
    format!("{}.json", kind.singular())
}

/// JSON text as written to `schemas/`: two-space indentation and a final newline.
pub fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    text.push('\n');
    text
}

/// schemars' schema of `Document<S, T>`, draft-07, every subschema inlined.
fn generated<S: JsonSchema, T: JsonSchema>() -> Value {
    let generator = SchemaSettings::draft07()
        .with(|s| s.inline_subschemas = true)
        .into_generator();
    serde_json::to_value(generator.into_root_schema_for::<Document<S, T>>())
        .unwrap_or_else(|_| json!({}))
}

/// One kind's document schema in `mode`, without `$schema` or `title`.
fn document_schema(kind: Kind, mode: Mode) -> Value {
    let mut schema = match kind {
        Kind::Configuration => generated::<ConfigurationSpec, ConfigurationStatus>(),
        Kind::Environment => generated::<EnvironmentSpec, EnvironmentStatus>(),
        Kind::Stack => generated::<StackSpec, StackStatus>(),
        Kind::Service => generated::<ServiceSpec, ServiceStatus>(),
    };
    if let Value::Object(map) = &mut schema {
        map.remove("$schema");
        map.remove("title");
    }
    normalize(&mut schema);
    decorate_envelope(&mut schema, kind);
    match kind {
        Kind::Configuration => decorate_configuration(&mut schema),
        Kind::Environment => decorate_environment(&mut schema, mode),
        Kind::Stack => decorate_stack(&mut schema),
        Kind::Service => decorate_service(&mut schema, mode),
    }
    schema
}

/// Rewrites schemars' output into plain draft-07 that strict validators accept: no `format`,
/// no `null` (added back where a mode allows it), enums as `enum`.
fn normalize(node: &mut Value) {
    let Value::Object(map) = node else {
        return;
    };
    // Option<T> as `anyOf: [T, {type: null}]`: keep T, with the field's own description.
    if let Some(Value::Array(any)) = map.get("anyOf")
        && any.len() == 2
        && any.iter().any(is_null_schema)
    {
        let inner = any.iter().find(|s| !is_null_schema(s)).cloned();
        map.remove("anyOf");
        if let Some(Value::Object(inner)) = inner {
            for (key, value) in inner {
                map.entry(key).or_insert(value);
            }
        }
    }
    // Unit enums with documented variants: `oneOf` of consts.
    if let Some(Value::Array(one)) = map.get("oneOf")
        && !one.is_empty()
        && one.iter().all(|s| s.get("const").is_some())
    {
        let values: Vec<Value> = one.iter().filter_map(|s| s.get("const").cloned()).collect();
        let meanings: Vec<String> = one
            .iter()
            .filter_map(|s| {
                let value = s.get("const")?.as_str()?;
                let text = s.get("description")?.as_str()?;
                Some(format!("`{value}`: {}", text.trim_end_matches('.')))
            })
            .collect();
        map.remove("oneOf");
        map.insert("type".into(), json!("string"));
        map.insert("enum".into(), Value::Array(values));
        if !meanings.is_empty() {
            let base = map
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let text = format!("{base}\n\nValues: {}.", meanings.join("; "));
            map.insert("description".into(), json!(text.trim_start()));
        }
    }
    if let Some(ty) = map.get_mut("type") {
        strip_null_type(ty);
    }
    if let Some(Value::Array(values)) = map.get_mut("enum") {
        values.retain(|v| !v.is_null());
    }
    if let Some(Value::String(format)) = map.remove("format") {
        let max = match format.as_str() {
            "uint8" => Some(u64::from(u8::MAX)),
            "uint16" => Some(u64::from(u16::MAX)),
            "uint32" => Some(u64::from(u32::MAX)),
            _ => None,
        };
        if format.starts_with("uint") {
            map.entry("minimum").or_insert(json!(0));
        }
        if let Some(max) = max {
            map.entry("maximum").or_insert(json!(max));
        }
    }
    for key in ["properties", "definitions"] {
        if let Some(Value::Object(children)) = map.get_mut(key) {
            children.values_mut().for_each(normalize);
        }
    }
    for key in ["additionalProperties", "items", "propertyNames"] {
        if let Some(child) = map.get_mut(key) {
            match child {
                Value::Array(items) => items.iter_mut().for_each(normalize),
                other => normalize(other),
            }
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(children)) = map.get_mut(key) {
            children.iter_mut().for_each(normalize);
        }
    }
}

/// Whether `schema` is `{type: "null"}`.
fn is_null_schema(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("null")
}

/// `["string", "null"]` → `"string"`.
fn strip_null_type(ty: &mut Value) {
    if let Value::Array(types) = ty {
        types.retain(|t| t.as_str() != Some("null"));
        if types.len() == 1 {
            *ty = types.remove(0);
        }
    }
}

/// The schema at `path` (property names; `*` for a map's values, `[]` for list items).
fn at<'a>(schema: &'a mut Value, path: &[&str]) -> Option<&'a mut Value> {
    let mut node = schema;
    for segment in path {
        node = match *segment {
            "*" => node.get_mut("additionalProperties")?,
            "[]" => node.get_mut("items")?,
            name => node.get_mut("properties")?.get_mut(name)?,
        };
    }
    Some(node)
}

/// Sets `key` to `value` in the schema at `path`, if there is one.
fn set(schema: &mut Value, path: &[&str], key: &str, value: Value) {
    if let Some(Value::Object(map)) = at(schema, path) {
        map.insert(key.into(), value);
    }
}

/// Makes the string schema at `path` a DNS-1123 object name.
fn name_at(schema: &mut Value, path: &[&str]) {
    set(schema, path, "pattern", json!(NAME_PATTERN));
    set(schema, path, "maxLength", json!(NAME_MAX_LENGTH));
}

/// apiVersion, kind, the document's description.
fn decorate_envelope(schema: &mut Value, kind: Kind) {
    let about = match kind {
        Kind::Configuration => {
            "A kargo Configuration: names the Environment in force, whether the built-in catalog is layered under user Services, and the files Services mount."
        }
        Kind::Environment => {
            "A kargo Environment: variables for `${VAR}` interpolation, the Stacks to deploy in order, and per-service settings (Kargo's `.env`)."
        }
        Kind::Stack => {
            "A kargo Stack: an ordered group of Services deployed together as one Swarm stack."
        }
        Kind::Service => {
            "A kargo Service: one Swarm service, in the shape of the compose file's long syntax. It may overlay a built-in catalog entry of the same name."
        }
    };
    set(schema, &[], "description", json!(about));
    set(
        schema,
        &["apiVersion"],
        "const",
        Value::String(API_VERSION.into()),
    );
    set(
        schema,
        &["apiVersion"],
        "description",
        json!(format!("Always `{API_VERSION}`.")),
    );
    set(schema, &["kind"], "const", json!(kind.as_str()));
    set(
        schema,
        &["kind"],
        "description",
        json!(format!(
            "Always `{}` for this kind of object.",
            kind.as_str()
        )),
    );
}

/// Configuration: the Environment's name, file names.
fn decorate_configuration(schema: &mut Value) {
    name_at(schema, &["spec", "environment"]);
    set(
        schema,
        &["spec", "files"],
        "propertyNames",
        json!({"pattern": FILE_NAME_PATTERN, "maxLength": FILE_NAME_MAX_LENGTH}),
    );
}

/// Environment: Stack and service names, variable names, constraints.
fn decorate_environment(schema: &mut Value, mode: Mode) {
    name_at(schema, &["spec", "stacks", "[]"]);
    set(
        schema,
        &["spec", "services"],
        "propertyNames",
        json!({"pattern": NAME_PATTERN, "maxLength": NAME_MAX_LENGTH}),
    );
    set(
        schema,
        &["spec", "variables"],
        "propertyNames",
        json!({"pattern": VARIABLE_PATTERN}),
    );
    set(
        schema,
        &["spec", "services", "*", "constraints", "[]"],
        "pattern",
        json!(CONSTRAINT_PATTERN),
    );
    if mode == Mode::Stored
        && let Some(settings) = at(schema, &["spec", "services", "*"])
    {
        allow_interpolation(settings);
    }
}

/// Stack: member and dependency names.
fn decorate_stack(schema: &mut Value) {
    name_at(schema, &["spec", "services", "[]"]);
    name_at(schema, &["spec", "dependsOn", "[]"]);
}

/// Service: names, patterns, and the overlay rules of the stored mode.
fn decorate_service(schema: &mut Value, mode: Mode) {
    let spec = ["spec"];
    name_at(schema, &["spec", "dependsOn", "[]"]);
    set(schema, &["spec", "image"], "pattern", json!(IMAGE_PATTERN));
    set(
        schema,
        &["spec", "networks", "[]"],
        "pattern",
        json!(NETWORK_PATTERN),
    );
    for list in ["configs", "secrets"] {
        set(
            schema,
            &["spec", list, "[]", "file"],
            "pattern",
            json!(FILE_NAME_PATTERN),
        );
        set(
            schema,
            &["spec", list, "[]", "file"],
            "maxLength",
            json!(FILE_NAME_MAX_LENGTH),
        );
    }
    set(
        schema,
        &["spec", "volumes", "[]", "target"],
        "pattern",
        json!(PATH_PATTERN),
    );
    set(
        schema,
        &["spec", "deploy", "placement", "constraints", "[]"],
        "pattern",
        json!(CONSTRAINT_PATTERN),
    );
    set(
        schema,
        &["spec", "healthcheck", "test"],
        "minItems",
        json!(1),
    );
    match mode {
        Mode::Stored => {
            if let Some(spec) = at(schema, &spec) {
                overlay(spec);
                allow_interpolation(spec);
                let text = spec
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                if let Value::Object(map) = spec {
                    map.insert(
                        "description".into(),
                        json!(format!(
                            "{text} Every field may be left out or set to null (to delete a catalog entry's value); `image` is required once merged."
                        )),
                    );
                }
            }
        }
        Mode::Merged => set(schema, &spec, "required", json!(["image"])),
    }
}

/// Stored mode of a merge-patched map: no required fields, and every field (map values
/// included) may be `null`, recursively through maps but not into list items, which a merge
/// patch replaces whole.
fn overlay(node: &mut Value) {
    let Value::Object(map) = node else {
        return;
    };
    map.remove("required");
    if let Some(Value::Object(properties)) = map.get_mut("properties") {
        for child in properties.values_mut() {
            nullable(child);
            if is_object_schema(child) {
                overlay(child);
            }
        }
    }
    if let Some(child @ Value::Object(_)) = map.get_mut("additionalProperties") {
        nullable(child);
        if is_object_schema(child) {
            overlay(child);
        }
    }
}

/// Whether the schema describes a map (possibly nullable).
fn is_object_schema(schema: &Value) -> bool {
    match schema.get("type") {
        Some(Value::String(t)) => t == "object",
        Some(Value::Array(types)) => types.iter().any(|t| t.as_str() == Some("object")),
        _ => false,
    }
}

/// Lets the schema accept `null` too.
fn nullable(schema: &mut Value) {
    let Value::Object(map) = schema else {
        return;
    };
    match map.get_mut("type") {
        Some(Value::String(t)) => {
            let t = std::mem::take(t);
            map.insert("type".into(), json!([t, "null"]));
        }
        Some(Value::Array(types)) if !types.iter().any(|t| t.as_str() == Some("null")) => {
            types.push(json!("null"));
        }
        _ => {}
    }
    if let Some(Value::Array(values)) = map.get_mut("enum")
        && !values.iter().any(Value::is_null)
    {
        values.push(Value::Null);
    }
    if let Some(Value::Array(branches)) = map.get_mut("anyOf")
        && !branches
            .iter()
            .any(|b| b.get("type") == Some(&json!("null")))
    {
        branches.push(json!({"type": "null"}));
    }
}

/// Lets every pattern below `node` also accept a string holding a `${VAR}` reference.
fn allow_interpolation(node: &mut Value) {
    let Value::Object(map) = node else {
        return;
    };
    if let Some(Value::String(pattern)) = map.get_mut("pattern")
        && !pattern.ends_with(INTERPOLATION_ALTERNATIVE)
    {
        *pattern = format!("(?:{pattern}){INTERPOLATION_ALTERNATIVE}");
    }
    if let Some(Value::Object(properties)) = map.get_mut("properties") {
        properties.values_mut().for_each(allow_interpolation);
    }
    for key in ["additionalProperties", "items"] {
        if let Some(child) = map.get_mut(key) {
            allow_interpolation(child);
        }
    }
}

/// The schema node of a field, found by `kargo explain`.
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    /// The kind.
    pub kind: Kind,
    /// The path as asked, normalised (`spec.ports.target`).
    pub path: Vec<String>,
    /// The field's schema (inlined).
    pub schema: Value,
    /// Whether its parent map requires it.
    pub required: bool,
}

/// A field path that does not name a field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExplainError {
    /// The path names no field of the kind.
    #[error("{kind} has no field `{path}`{}", hint(.known))]
    UnknownField {
        /// The kind.
        kind: Kind,
        /// The path up to and including the unknown segment.
        path: String,
        /// The fields that exist at that level.
        known: Vec<String>,
    },
}

/// ", expected one of: a, b" for an error message.
fn hint(known: &[String]) -> String {
    if known.is_empty() {
        " (it has no sub-fields)".into()
    } else {
        format!("; fields there: {}", known.join(", "))
    }
}

/// Finds the field `path` (dot-separated, e.g. `spec.deploy.placement`) of `kind` in the
/// stored-mode schema. List items are entered implicitly (`spec.ports.target`), and any key
/// enters a map's values (`spec.files.app.content`). An empty path is the whole document.
pub fn field(kind: Kind, path: &str) -> Result<Field, ExplainError> {
    let schema = document_schema(kind, Mode::Stored);
    let mut node = &schema;
    let mut walked: Vec<String> = Vec::new();
    let mut required = false;
    for segment in path.split('.').filter(|s| !s.is_empty()) {
        node = enter_items(node);
        walked.push(segment.to_string());
        let properties = node.get("properties").and_then(Value::as_object);
        if let Some(child) = properties.and_then(|p| p.get(segment)) {
            required = node
                .get("required")
                .and_then(Value::as_array)
                .is_some_and(|r| r.iter().any(|v| v.as_str() == Some(segment)));
            node = child;
            continue;
        }
        if let Some(values @ Value::Object(_)) = node.get("additionalProperties") {
            node = values;
            required = false;
            continue;
        }
        return Err(ExplainError::UnknownField {
            kind,
            path: walked.join("."),
            known: properties
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default(),
        });
    }
    Ok(Field {
        kind,
        path: walked,
        schema: node.clone(),
        required,
    })
}

/// The item schema of a list schema, or the schema itself.
fn enter_items(node: &Value) -> &Value {
    match node.get("items") {
        Some(items @ Value::Object(_)) if has_type(node, "array") => items,
        _ => node,
    }
}

/// Whether the schema's `type` is or includes `ty`.
pub fn has_type(schema: &Value, ty: &str) -> bool {
    match schema.get("type") {
        Some(Value::String(t)) => t == ty,
        Some(Value::Array(types)) => types.iter().any(|t| t.as_str() == Some(ty)),
        _ => false,
    }
}

/// A short type name in kubectl's style: `string`, `integer`, `[]string`, `map[string]string`, `Object`, `[]Object`.
pub fn type_name(schema: &Value) -> String {
    if has_type(schema, "array") {
        let items = schema.get("items").cloned().unwrap_or(Value::Null);
        return format!("[]{}", type_name(&items));
    }
    if has_type(schema, "object") {
        if schema.get("properties").is_some() {
            return "Object".into();
        }
        if let Some(values @ Value::Object(_)) = schema.get("additionalProperties") {
            return format!("map[string]{}", type_name(values));
        }
        return "Object".into();
    }
    for ty in ["string", "integer", "number", "boolean"] {
        if has_type(schema, ty) {
            return ty.into();
        }
    }
    // A number that may be written as a string to interpolate: `integer or string`.
    if let Some(Value::Array(branches)) = schema.get("anyOf") {
        let names: Vec<String> = branches
            .iter()
            .filter(|b| !has_type(b, "null"))
            .map(type_name)
            .collect();
        return names.join(" or ");
    }
    "any".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_are_draft07_without_formats_or_one_of() {
        for (name, text) in schema_files() {
            assert!(text.contains(DRAFT07), "{name}");
            assert!(!text.contains("\"format\""), "{name} has a format");
            assert!(!text.contains("\"oneOf\""), "{name} has a oneOf");
            assert!(!text.contains("\"$defs\""), "{name}");
        }
    }

    #[test]
    fn stored_service_allows_null_and_no_image_merged_requires_image() {
        let stored = kind_schema(Kind::Service, Mode::Stored);
        let image = stored.pointer("/properties/spec/properties/image/type");
        assert_eq!(image, Some(&json!(["string", "null"])));
        let env_values =
            stored.pointer("/properties/spec/properties/env/additionalProperties/type");
        assert_eq!(env_values, Some(&json!(["string", "null"])));
        // List items stay complete: a port needs its target.
        let port_required = stored.pointer("/properties/spec/properties/ports/items/required");
        assert_eq!(port_required, Some(&json!(["target"])));
        let merged = kind_schema(Kind::Service, Mode::Merged);
        assert_eq!(
            merged.pointer("/properties/spec/required"),
            Some(&json!(["image"]))
        );
        assert_eq!(
            merged.pointer("/properties/spec/properties/image/type"),
            Some(&json!("string"))
        );
    }

    #[test]
    fn enums_become_enum_with_value_meanings() {
        let stored = kind_schema(Kind::Service, Mode::Merged);
        let mode = stored
            .pointer("/properties/spec/properties/deploy/properties/mode")
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            mode.get("enum"),
            Some(&json!([
                "replicated",
                "global",
                "replicated-job",
                "global-job"
            ]))
        );
        let text = mode
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or("");
        assert!(
            text.contains("`global-job`: One task per eligible node"),
            "{text}"
        );
    }

    #[test]
    fn umbrella_picks_kind_with_if_then() {
        let umbrella = umbrella_schema(Mode::Stored);
        let branches = umbrella.get("allOf").and_then(Value::as_array).cloned();
        assert_eq!(branches.map(|b| b.len()), Some(4));
        assert!(
            umbrella
                .pointer("/definitions/Service/properties/spec")
                .is_some()
        );
    }

    #[test]
    fn explain_walks_lists_and_maps() {
        let port = field(Kind::Service, "spec.ports.published").expect("field");
        assert_eq!(type_name(&port.schema), "integer or string");
        let content = field(Kind::Configuration, "spec.files.app.content").expect("field");
        // Not required on its own: a sensitive file may hold `sealed` instead.
        assert!(!content.required);
        let name = field(Kind::Configuration, "metadata.name").expect("field");
        assert!(name.required);
        let err = field(Kind::Service, "spec.imag").err();
        assert!(matches!(err, Some(ExplainError::UnknownField { .. })));
        assert_eq!(
            type_name(&field(Kind::Service, "spec.env").expect("env").schema),
            "map[string]string"
        );
    }
}
