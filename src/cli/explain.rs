//! `kargo explain`: the documentation of a kind or field, from the same schema validation uses.

use std::fmt::Write as _;

use serde_json::Value;

use crate::api::schema::{self, Field};
use crate::api::{API_VERSION, Kind};
use crate::manifest::validate::pattern_text;

use super::{CliError, ExitStatus, output};

const EXAMPLES: &str = "Examples:
  kargo explain service
  kargo explain service.spec.deploy.placement
  kargo explain svc.spec.ports.mode
  kargo explain stack --recursive";

/// Describe a kind or one of its fields: type, allowed values and description.
///
/// The path follows the manifest: `service.spec.ports.published` (list items are entered
/// implicitly; any key enters a map, as in `configuration.spec.files.NAME.content`). The
/// text comes from the schema that `kargo validate` checks against (stored mode).
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// KIND or KIND.field.path, e.g. `service.spec.healthcheck.interval`.
    field: String,
    /// Show every field below, as an indented tree with types.
    #[arg(long)]
    recursive: bool,
}

pub(super) fn run(args: Args) -> Result<ExitStatus, CliError> {
    let text = explain(&args.field, args.recursive)?;
    output::out_text(&text)?;
    Ok(ExitStatus::Success)
}

/// The explanation of `KIND[.field.path]` as text.
fn explain(target: &str, recursive: bool) -> Result<String, CliError> {
    let (kind_word, path) = target.split_once('.').unwrap_or((target, ""));
    let kind: Kind = kind_word
        .parse()
        .map_err(|e: crate::api::UnknownKind| CliError::usage(e.to_string()))?;
    let field = schema::field(kind, path).map_err(|e| CliError::usage(e.to_string()))?;
    Ok(render(&field, recursive))
}

fn render(field: &Field, recursive: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "KIND:     {}", field.kind);
    let _ = writeln!(out, "VERSION:  {API_VERSION}");
    let node = &field.schema;
    if let Some(name) = field.path.last() {
        let _ = writeln!(
            out,
            "\nFIELD:    {name} <{}>{}",
            schema::type_name(node),
            required(field.required)
        );
        let _ = writeln!(out, "PATH:     {}", field.path.join("."));
    }
    if let Some(text) = node.get("description").and_then(Value::as_str) {
        let _ = writeln!(out, "\nDESCRIPTION:");
        for line in text.lines() {
            let _ = writeln!(out, "    {line}");
        }
    }
    let rules = constraints(leaf(node));
    if !rules.is_empty() {
        let _ = writeln!(out, "\nALLOWED:");
        for rule in rules {
            let _ = writeln!(out, "    {rule}");
        }
    }
    let fields = children(node);
    if !fields.is_empty() {
        let _ = writeln!(out, "\nFIELDS:");
        write_fields(&mut out, node, 1, recursive);
    }
    out
}

fn required(yes: bool) -> &'static str {
    if yes { " -required-" } else { "" }
}

/// The schema whose fields are listed: a map's, a list's items', or a map's values' (as
/// `spec.files.NAME` are), through lists of maps and maps of lists.
fn leaf(node: &Value) -> &Value {
    let mut node = node;
    loop {
        node = match (node.get("items"), node.get("additionalProperties")) {
            (Some(items @ Value::Object(_)), _) if schema::has_type(node, "array") => items,
            (_, Some(values @ Value::Object(_)))
                if schema::has_type(node, "object") && node.get("properties").is_none() =>
            {
                values
            }
            _ => return node,
        };
    }
}

/// The fields of a map (or of a list's items), with whether each is required.
fn children(node: &Value) -> Vec<(&str, &Value, bool)> {
    let node = leaf(node);
    let required: Vec<&str> = node
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    node.get("properties")
        .and_then(Value::as_object)
        .map(|p| {
            p.iter()
                .map(|(k, v)| (k.as_str(), v, required.contains(&k.as_str())))
                .collect()
        })
        .unwrap_or_default()
}

fn write_fields(out: &mut String, node: &Value, depth: usize, recursive: bool) {
    let indent = "    ".repeat(depth);
    for (name, child, is_required) in children(node) {
        let _ = writeln!(
            out,
            "{indent}{name}\t<{}>{}",
            schema::type_name(child),
            required(is_required)
        );
        if recursive {
            write_fields(out, child, depth + 1, true);
        } else {
            let first = child
                .get("description")
                .and_then(Value::as_str)
                .and_then(|d| d.lines().next())
                .unwrap_or("");
            let _ = writeln!(out, "{indent}  {first}");
        }
    }
}

/// The value rules of a leaf: enum values, range, pattern meaning, length.
fn constraints(node: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(Value::Array(values)) = node.get("enum") {
        let shown: Vec<String> = values
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        out.push(format!("one of: {}", shown.join(", ")));
    }
    if let Some(c) = node.get("const") {
        out.push(format!("exactly {c}"));
    }
    match (node.get("minimum"), node.get("maximum")) {
        (Some(min), Some(max)) => out.push(format!("from {min} to {max}")),
        (Some(min), None) => out.push(format!("at least {min}")),
        (None, Some(max)) => out.push(format!("at most {max}")),
        _ => {}
    }
    if let Some(pattern) = node.get("pattern").and_then(Value::as_str) {
        match pattern_text(pattern) {
            Some((what, expected)) => out.push(format!("{what}: {expected}")),
            None => out.push(format!("matching {pattern}")),
        }
        if pattern.ends_with(schema::INTERPOLATION_ALTERNATIVE) {
            out.push("or a string with a ${VAR} reference, checked after interpolation".into());
        }
    }
    if let Some(max) = node.get("maxLength") {
        out.push(format!("at most {max} characters"));
    }
    if schema::has_type(node, "null") {
        out.push("null: deletes the value of the catalog entry this Service overlays".into());
    }
    // A number that may be written as a string to interpolate (`replicas`, ports).
    if let Some(Value::Array(branches)) = node.get("anyOf") {
        for branch in branches.iter().filter(|b| !schema::has_type(b, "string")) {
            out.extend(constraints(branch));
        }
        if branches.iter().any(|b| schema::has_type(b, "string")) {
            out.push(
                "or a string of digits, or with a ${VAR} reference, checked after interpolation"
                    .into(),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explains_a_leaf_with_its_rules() {
        let text = explain("svc.spec.ports.published", false).expect("explain");
        assert!(
            text.contains("FIELD:    published <integer or string>"),
            "{text}"
        );
        assert!(text.contains("from 1 to 65535"), "{text}");
        let text = explain("service.spec.endpointMode", false).expect("explain");
        assert!(text.contains("one of: vip, dnsrr"), "{text}");
        let text = explain("service.spec.healthcheck.interval", false).expect("explain");
        assert!(text.contains("a duration"), "{text}");
    }

    #[test]
    fn explains_a_kind_with_its_fields() {
        let text = explain("stack", false).expect("explain");
        assert!(text.contains("spec\t<Object> -required-"), "{text}");
        let text = explain("stack", true).expect("explain");
        assert!(text.contains("dependsOn\t<[]string>"), "{text}");
    }

    #[test]
    fn recursive_goes_into_the_values_of_maps() {
        let text = explain("configuration", true).expect("explain");
        let files = text
            .lines()
            .position(|l| l.trim_start().starts_with("files\t<map[string]Object>"))
            .expect("files");
        let next = text.lines().nth(files + 1).unwrap_or_default();
        assert!(
            next.starts_with(&"    ".repeat(3)) && next.contains('<'),
            "a field of a file under files:\n{text}"
        );
        let text = explain("configuration.spec.files", false).expect("explain");
        assert!(text.contains("FIELDS:"), "{text}");
    }

    #[test]
    fn unknown_fields_and_kinds_are_usage_errors() {
        let err = explain("service.spec.imag", false).err().map(|e| e.message);
        assert!(err.is_some_and(|m| m.contains("no field `spec.imag`") && m.contains("image")));
        assert!(explain("pod.spec", false).is_err());
    }
}
