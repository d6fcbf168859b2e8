//! All command output: tables, YAML and JSON, on stdout. Sensitive file contents are redacted here.

use std::io::Write;

use chrono::Utc;
use serde_json::{Value, json};

use crate::api::{API_VERSION, DynamicObject, Kind};

/// Printed in place of a sensitive file's content.
pub const REDACTED: &str = "<redacted>";

/// Output formats of `get`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table.
    Table,
    /// A table with more columns.
    Wide,
    /// YAML.
    Yaml,
    /// JSON.
    Json,
    /// `kind/name` per line.
    Name,
}

/// The object as shown to users: sensitive contents replaced.
pub fn redacted(obj: &DynamicObject) -> DynamicObject {
    let mut o = obj.clone();
    if o.kind == Kind::Configuration
        && let Some(files) = o.spec.get_mut("files").and_then(Value::as_object_mut)
    {
        for file in files.values_mut() {
            if file.get("sensitive").and_then(Value::as_bool) == Some(true)
                && let Some(c) = file.get_mut("content")
            {
                *c = json!(REDACTED);
            }
        }
    }
    o
}

/// Prints objects in a format; a single named object prints bare, else as a List.
pub fn print_objects(
    objects: &[DynamicObject],
    format: Format,
    single: bool,
) -> std::io::Result<()> {
    let shown: Vec<DynamicObject> = objects.iter().map(redacted).collect();
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json | Format::Yaml => {
            let value = if single && shown.len() == 1 {
                serde_json::to_value(&shown[0])?
            } else {
                json!({"apiVersion": API_VERSION, "kind": "List", "items": shown})
            };
            if format == Format::Json {
                serde_json::to_writer_pretty(&mut out, &value)?;
                writeln!(out)?;
            } else {
                let text = serde_yaml::to_string(&value).map_err(std::io::Error::other)?;
                write!(out, "{text}")?;
            }
        }
        Format::Name => {
            for o in &shown {
                writeln!(out, "{}", o.reference())?;
            }
        }
        Format::Table | Format::Wide => {
            let wide = format == Format::Wide;
            let rows: Vec<Vec<String>> = shown.iter().map(|o| row(o, wide)).collect();
            let Some(first) = shown.first() else {
                return Ok(());
            };
            print_table(&mut out, &header(first.kind, wide), &rows)?;
        }
    }
    Ok(())
}

fn header(kind: Kind, wide: bool) -> Vec<&'static str> {
    let mut h = match kind {
        Kind::Service => vec!["NAME", "STACK", "IMAGE", "REPLICAS", "READY", "AGE"],
        Kind::Stack => vec!["NAME", "SERVICES", "READY", "AGE"],
        Kind::Environment => vec!["NAME", "STACKS", "VARIABLES", "READY", "AGE"],
        Kind::Configuration => vec!["NAME", "ENVIRONMENT", "STACKS", "READY", "AGE"],
    };
    if wide {
        h.extend(["REASON", "MESSAGE"]);
    }
    h
}

fn s(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "<none>".into(),
        Some(other) => other.to_string(),
    }
}

fn ready_condition(o: &DynamicObject) -> Option<&Value> {
    o.status
        .as_ref()?
        .get("conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
}

fn row(o: &DynamicObject, wide: bool) -> Vec<String> {
    let status = o.status.clone().unwrap_or(Value::Null);
    let ready = ready_condition(o);
    let ready_word = ready
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str)
        .unwrap_or("Unknown")
        .to_string();
    let age = age(o);
    let mut r = vec![o.metadata.name.clone()];
    match o.kind {
        Kind::Service => {
            let image = status.get("image").or_else(|| o.spec.get("image")).cloned();
            r.push(s(status.get("stack")));
            r.push(s(image.as_ref()));
            let running = status
                .get("runningTasks")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let desired = status
                .get("desiredTasks")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            r.push(format!("{running}/{desired}"));
        }
        Kind::Stack => {
            let ready_n = status
                .get("servicesReady")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let total = o
                .spec
                .get("services")
                .and_then(Value::as_array)
                .map(|a| a.len() as u64)
                .unwrap_or(0);
            r.push(format!("{ready_n}/{total}"));
        }
        Kind::Environment => {
            let stacks = o
                .spec
                .get("stacks")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            r.push(if stacks.is_empty() {
                "<none>".into()
            } else {
                stacks
            });
            let n = o
                .spec
                .get("variables")
                .and_then(Value::as_object)
                .map(|m| m.len())
                .unwrap_or(0);
            r.push(n.to_string());
        }
        Kind::Configuration => {
            r.push(s(o.spec.get("environment")));
            let stacks = status
                .get("stacks")
                .and_then(Value::as_array)
                .map(|a| a.len())
                .unwrap_or(0);
            r.push(stacks.to_string());
        }
    }
    r.push(ready_word);
    r.push(age);
    if wide {
        r.push(
            ready
                .and_then(|c| c.get("reason"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        );
        r.push(
            ready
                .and_then(|c| c.get("message"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        );
    }
    r
}

/// Age like kubectl: `45s`, `12m`, `3h`, `5d`.
fn age(o: &DynamicObject) -> String {
    let Some(created) = o.metadata.creation_timestamp else {
        return "<unknown>".into();
    };
    let secs = (Utc::now() - created).num_seconds().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn print_table(out: &mut impl Write, header: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{:<w$}   ", c, w = widths[i]));
            }
        }
        s.trim_end().to_string()
    };
    writeln!(out, "{}", line(header.to_vec()))?;
    for r in rows {
        writeln!(out, "{}", line(r.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}
