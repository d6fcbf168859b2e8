//! All command output: tables, YAML, JSON, names, JSONPath, diffs and progress lines.
//! Data goes to stdout, notes and progress to stderr. Sensitive file contents are
//! redacted here. A closed stdout (`kargo get ... | head`) ends the command quietly.

use std::fmt::Display;
use std::io::{IsTerminal, Write};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::api::conditions::types;
use crate::api::{API_VERSION, DynamicObject, Kind};

use super::jsonpath::Template;
use super::{CliError, ExitStatus};

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

/// What `-o` asks for: a plain format or a JSONPath template.
#[derive(Clone, Debug)]
pub enum OutputFormat {
    /// Table, wide, YAML, JSON or name.
    Plain(Format),
    /// `jsonpath=TEMPLATE`.
    JsonPath(Template),
}

impl OutputFormat {
    /// Parses `-o`: `table`, `wide`, `yaml`, `json`, `name` or `jsonpath=TEMPLATE`.
    pub fn parse(s: &str) -> Result<OutputFormat, String> {
        if let Some(t) = s.strip_prefix("jsonpath=") {
            let t = t.trim_matches('\'');
            return Template::parse(t)
                .map(OutputFormat::JsonPath)
                .map_err(|e| e.to_string());
        }
        let f = match s {
            "table" | "" => Format::Table,
            "wide" => Format::Wide,
            "yaml" => Format::Yaml,
            "json" => Format::Json,
            "name" => Format::Name,
            other => {
                return Err(format!(
                    "unknown output format {other:?}: expected table, wide, yaml, json, name or jsonpath=TEMPLATE"
                ));
            }
        };
        Ok(OutputFormat::Plain(f))
    }

    /// True for the table formats.
    pub fn is_table(&self) -> bool {
        matches!(self, OutputFormat::Plain(Format::Table | Format::Wide))
    }
}

/// Options of the table printer.
#[derive(Clone, Copy, Debug, Default)]
pub struct TableOptions {
    /// Add a LABELS column.
    pub show_labels: bool,
    /// Leave the header out (rows after the first during `get -w`).
    pub no_header: bool,
    /// Name objects as `kind/name`, as kubectl does when several kinds are asked for.
    pub kind_prefix: bool,
}

fn closed_pipe(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::BrokenPipe
}

/// Writes to stdout; a closed pipe becomes a quiet success, other failures exit 2.
fn emit(f: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    match f(&mut out).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if closed_pipe(&e) => Err(CliError {
            message: String::new(),
            status: ExitStatus::Success,
        }),
        Err(e) => Err(CliError::io("writing output", e)),
    }
}

/// Prints one line of data on stdout.
pub fn out(line: impl Display) -> Result<(), CliError> {
    emit(|w| writeln!(w, "{line}"))
}

/// Prints text on stdout as it is (no newline added).
pub fn out_text(text: &str) -> Result<(), CliError> {
    emit(|w| w.write_all(text.as_bytes()))
}

/// Prints bytes on stdout as they are (log lines).
pub fn out_bytes(bytes: &[u8]) -> Result<(), CliError> {
    emit(|w| w.write_all(bytes))
}

/// Prints bytes on stderr as they are (a container's stderr, in `logs`).
pub fn err_bytes(bytes: &[u8]) {
    let mut e = std::io::stderr().lock();
    // stderr gone: nothing sensible is left to report it on.
    let _ = e.write_all(bytes).and_then(|()| e.flush());
}

/// Prints a note for a person on stderr (not data: scripts read stdout).
pub fn note(line: impl Display) {
    let mut e = std::io::stderr().lock();
    // stderr gone: nothing sensible is left to report it on.
    let _ = writeln!(e, "{line}");
}

/// Progress of a wait on stderr. On a terminal: a block of lines (a header, then one line
/// per object) redrawn in place. Not on a terminal: each line that changed, once (a log a
/// CI job can read). Quiet: nothing.
#[derive(Debug)]
pub struct Progress {
    tty: bool,
    quiet: bool,
    /// Lines of the block on screen (terminal), or the lines last printed (not a terminal).
    shown: Vec<String>,
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new(false)
    }
}

impl Progress {
    /// Progress for this stderr; `quiet` shows nothing.
    pub fn new(quiet: bool) -> Self {
        Progress {
            tty: std::io::stderr().is_terminal(),
            quiet,
            shown: Vec::new(),
        }
    }

    /// Shows where things are: `header` (a countdown, terminal only) and `lines`.
    pub fn show(&mut self, header: &str, lines: &[String]) {
        if self.quiet {
            return;
        }
        let mut e = std::io::stderr().lock();
        if self.tty {
            // A line that wraps would throw the redraw off: each is cut to the width.
            let width = std::env::var("COLUMNS")
                .ok()
                .and_then(|c| c.parse::<usize>().ok())
                .unwrap_or(120)
                .max(20);
            let block: Vec<String> = std::iter::once(header)
                .chain(lines.iter().map(String::as_str))
                .map(|l| l.chars().take(width - 1).collect())
                .collect();
            let mut text = Self::erase(self.shown.len());
            for l in &block {
                text.push_str(l);
                text.push('\n');
            }
            let _ = e.write_all(text.as_bytes()).and_then(|()| e.flush());
            self.shown = block;
        } else {
            for l in lines.iter().filter(|l| !self.shown.contains(l)) {
                let _ = writeln!(e, "{l}");
            }
            self.shown = lines.to_vec();
        }
    }

    /// Removes the block from a terminal (a log off a terminal stays).
    pub fn clear(&mut self) {
        if self.tty && !self.shown.is_empty() {
            let mut e = std::io::stderr().lock();
            let _ = e
                .write_all(Self::erase(self.shown.len()).as_bytes())
                .and_then(|()| e.flush());
            self.shown.clear();
        }
    }

    /// Escape codes that move up over `lines` lines and erase them and what follows.
    fn erase(lines: usize) -> String {
        match lines {
            0 => "\r\x1b[J".to_string(),
            n => format!("\x1b[{n}F\x1b[J"),
        }
    }
}

/// The object as shown to users: sensitive contents replaced.
pub fn redacted(obj: &DynamicObject) -> DynamicObject {
    let mut o = obj.clone();
    o.spec = crate::store::redact_spec(o.kind, &o.spec);
    o
}

/// A value as YAML text.
pub fn to_yaml(value: &Value) -> String {
    serde_yaml::to_string(value).unwrap_or_else(|e| format!("# cannot show as YAML: {e}\n"))
}

/// The JSON of objects as `get` shows them: one bare object, or a List.
pub fn objects_json(objects: &[DynamicObject], single: bool) -> Value {
    let shown: Vec<Value> = objects
        .iter()
        .map(|o| serde_json::to_value(redacted(o)).unwrap_or(Value::Null))
        .collect();
    match (single, shown.as_slice()) {
        (true, [one]) => one.clone(),
        _ => json!({"apiVersion": API_VERSION, "kind": "List", "items": shown}),
    }
}

/// Prints objects in a format; a single named object prints bare, else as a List.
pub fn print_objects(
    objects: &[DynamicObject],
    format: &OutputFormat,
    single: bool,
    table: TableOptions,
) -> Result<(), CliError> {
    match format {
        OutputFormat::Plain(Format::Json) => {
            let value = objects_json(objects, single);
            let text = serde_json::to_string_pretty(&value).unwrap_or_default();
            out(text)
        }
        OutputFormat::Plain(Format::Yaml) => out_text(&to_yaml(&objects_json(objects, single))),
        OutputFormat::Plain(Format::Name) => {
            let names: Vec<String> = objects.iter().map(DynamicObject::reference).collect();
            if names.is_empty() {
                return Ok(());
            }
            out(names.join("\n"))
        }
        OutputFormat::JsonPath(t) => {
            let root = objects_json(objects, single);
            out_text(&t.render(&root))
        }
        OutputFormat::Plain(f @ (Format::Table | Format::Wide)) => {
            let wide = *f == Format::Wide;
            // A table per kind (the columns differ), a blank line between, as kubectl does.
            let mut text = String::new();
            for group in objects.chunk_by(|a, b| a.kind == b.kind) {
                let Some(first) = group.first() else {
                    continue;
                };
                let mut header = header(first.kind, wide);
                if table.show_labels {
                    header.push("LABELS");
                }
                let rows: Vec<Vec<String>> = group
                    .iter()
                    .map(|o| {
                        let mut r = row(&redacted(o), wide);
                        if table.kind_prefix
                            && let Some(name) = r.first_mut()
                        {
                            *name = o.reference();
                        }
                        if table.show_labels {
                            r.push(labels_text(o));
                        }
                        r
                    })
                    .collect();
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(&render_table(&header, &rows, !table.no_header));
            }
            if text.is_empty() {
                return Ok(());
            }
            out_text(&text)
        }
    }
}

fn labels_text(o: &DynamicObject) -> String {
    if o.metadata.labels.is_empty() {
        return "<none>".into();
    }
    o.metadata
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn header(kind: Kind, wide: bool) -> Vec<&'static str> {
    let mut h = match kind {
        // As `kubectl get deployments`, with the Ready condition's reason as STATUS.
        Kind::Service => vec![
            "NAME",
            "STACK",
            "IMAGE",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "STATUS",
            "AGE",
        ],
        Kind::Stack => vec!["NAME", "SERVICES", "READY", "STATUS", "AGE"],
        Kind::Environment => vec!["NAME", "STACKS", "VARIABLES", "READY", "AGE"],
        Kind::Configuration => vec!["NAME", "ENVIRONMENT", "STACKS", "READY", "AGE"],
    };
    if wide {
        match kind {
            // STATUS already shows the reason.
            Kind::Service => h.extend(["SWARM NAME", "UPDATE", "MESSAGE"]),
            Kind::Stack => h.extend(["SWARM STACK", "DEPENDS ON", "MESSAGE"]),
            Kind::Environment | Kind::Configuration => h.extend(["REASON", "MESSAGE"]),
        }
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

/// The object's Ready condition, if the controller wrote one.
pub fn ready_condition(o: &DynamicObject) -> Option<&Value> {
    o.status
        .as_ref()?
        .get("conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(types::READY))
}

fn count(v: Option<&Value>) -> u64 {
    v.and_then(Value::as_u64).unwrap_or(0)
}

fn joined(v: Option<&Value>) -> String {
    let items: Vec<&str> = v
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if items.is_empty() {
        "<none>".into()
    } else {
        items.join(",")
    }
}

fn row(o: &DynamicObject, wide: bool) -> Vec<String> {
    let status = o.status.clone().unwrap_or(Value::Null);
    let ready = ready_condition(o);
    let ready_word = ready
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str)
        .unwrap_or("Unknown")
        .to_string();
    let field = |f: &str| {
        ready
            .and_then(|c| c.get(f))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    // The Ready condition's reason: `Converged`, `UpdatePaused`, `Suspended`...
    let status_word = match field("reason") {
        r if r.is_empty() => "Unknown".to_string(),
        r => r,
    };
    let mut r = vec![o.metadata.name.clone()];
    match o.kind {
        Kind::Service => {
            let image = status.get("image").or_else(|| o.spec.get("image")).cloned();
            r.push(s(status.get("stack")));
            r.push(s(image.as_ref()));
            // A status written before readyReplicas existed has runningTasks, the same count.
            let ready = status
                .get("readyReplicas")
                .or_else(|| status.get("runningTasks"));
            r.push(format!(
                "{}/{}",
                count(ready),
                count(status.get("desiredTasks"))
            ));
            r.push(count(status.get("updatedReplicas")).to_string());
            r.push(count(status.get("availableReplicas")).to_string());
            r.push(status_word.clone());
        }
        Kind::Stack => {
            let total = o
                .spec
                .get("services")
                .and_then(Value::as_array)
                .map(|a| a.len() as u64)
                .unwrap_or(0);
            r.push(format!("{}/{total}", count(status.get("servicesReady"))));
        }
        Kind::Environment => {
            r.push(joined(o.spec.get("stacks")));
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
    match o.kind {
        Kind::Service => {}
        Kind::Stack => {
            r.push(ready_word);
            r.push(status_word);
        }
        Kind::Environment | Kind::Configuration => r.push(ready_word),
    }
    r.push(
        o.metadata
            .creation_timestamp
            .map(age)
            .unwrap_or_else(|| "<unknown>".into()),
    );
    if wide {
        match o.kind {
            Kind::Service => {
                r.push(s(status.get("swarmName")));
                r.push(s(status.get("updateState")));
            }
            Kind::Stack => {
                r.push(s(status.get("swarmStack")));
                r.push(joined(o.spec.get("dependsOn")));
            }
            Kind::Environment | Kind::Configuration => r.push(field("reason")),
        }
        r.push(field("message"));
    }
    r
}

/// Age like kubectl: `45s`, `12m`, `3h`, `5d`.
pub fn age(since: DateTime<Utc>) -> String {
    let secs = (Utc::now() - since).num_seconds().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// Age of an RFC 3339 time; `<unknown>` when it does not parse.
pub fn age_of(rfc3339: &str) -> String {
    DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| age(t.with_timezone(&Utc)))
        .unwrap_or_else(|_| "<unknown>".into())
}

/// Lays out a table: columns padded to their widest cell, three spaces apart.
pub fn render_table(header: &[&str], rows: &[Vec<String>], with_header: bool) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: &[&str]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                let w = widths.get(i).copied().unwrap_or(0);
                s.push_str(&format!("{c:<w$}   "));
            }
        }
        s.trim_end().to_string()
    };
    let mut text = String::new();
    if with_header {
        text.push_str(&line(header));
        text.push('\n');
    }
    for r in rows {
        let cells: Vec<&str> = r.iter().map(String::as_str).collect();
        text.push_str(&line(&cells));
        text.push('\n');
    }
    text
}

/// A unified diff (`diff -u` style) of two texts; `None` when they are equal.
pub fn unified_diff(old: &str, new: &str, old_label: &str, new_label: &str) -> Option<String> {
    if old == new {
        return None;
    }
    let diff = similar::TextDiff::from_lines(old, new);
    Some(
        diff.unified_diff()
            .context_radius(3)
            .header(old_label, new_label)
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::REDACTED;

    #[test]
    fn output_formats_parse() {
        assert!(matches!(
            OutputFormat::parse("wide"),
            Ok(OutputFormat::Plain(Format::Wide))
        ));
        assert!(matches!(
            OutputFormat::parse("jsonpath={.metadata.name}"),
            Ok(OutputFormat::JsonPath(_))
        ));
        assert!(OutputFormat::parse("xml").is_err());
        assert!(OutputFormat::parse("jsonpath={.a").is_err());
    }

    #[test]
    fn tables_align_columns() {
        let t = render_table(
            &["NAME", "READY"],
            &[vec!["a-long-name".into(), "True".into()]],
            true,
        );
        assert_eq!(t, "NAME          READY\na-long-name   True\n");
    }

    #[test]
    fn sensitive_content_is_redacted() {
        let o = DynamicObject::new(
            Kind::Configuration,
            "main",
            json!({"files": {"pw": {"content": "s3cret", "sensitive": true}, "c": {"content": "plain"}}}),
        );
        let shown = serde_json::to_string(&objects_json(&[o], true)).unwrap_or_default();
        assert!(!shown.contains("s3cret") && shown.contains(REDACTED) && shown.contains("plain"));
    }

    fn table_of(o: &DynamicObject) -> String {
        render_table(&header(o.kind, false), &[row(o, false)], true)
    }

    fn with_status(kind: Kind, name: &str, spec: Value, status: Value) -> DynamicObject {
        let mut o = DynamicObject::new(kind, name, spec);
        o.status = Some(status);
        o
    }

    #[test]
    fn services_show_ready_up_to_date_and_available_as_kubectl_deployments() {
        // A paused update: no task of the new spec runs, the old one still serves.
        let o = with_status(
            Kind::Service,
            "web",
            json!({"image": "a:2"}),
            json!({
                "stack": "shop", "image": "a:2", "runningTasks": 0, "desiredTasks": 2,
                "readyReplicas": 0, "updatedReplicas": 1, "availableReplicas": 1,
                "conditions": [{"type": "Ready", "status": "False", "reason": "UpdatePaused", "message": "paused"}],
            }),
        );
        let t = table_of(&o);
        let lines: Vec<Vec<&str>> = t.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(
            lines[0],
            [
                "NAME",
                "STACK",
                "IMAGE",
                "READY",
                "UP-TO-DATE",
                "AVAILABLE",
                "STATUS",
                "AGE"
            ],
            "{t}"
        );
        assert_eq!(
            &lines[1][..7],
            ["web", "shop", "a:2", "0/2", "1", "1", "UpdatePaused"],
            "{t}"
        );
        // A status written before readyReplicas existed: runningTasks is the same count.
        let old = with_status(
            Kind::Service,
            "db",
            json!({}),
            json!({"runningTasks": 1, "desiredTasks": 1}),
        );
        assert!(table_of(&old).contains("1/1"), "{}", table_of(&old));
    }

    #[test]
    fn a_suspended_stack_says_so() {
        let o = with_status(
            Kind::Stack,
            "shop",
            json!({"services": ["web"], "suspend": true}),
            json!({"servicesReady": 0, "conditions": [
                {"type": "Ready", "status": "False", "reason": "Suspended", "message": "suspended: its Swarm objects are removed"}
            ]}),
        );
        let t = table_of(&o);
        let lines: Vec<Vec<&str>> = t.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(
            lines[0],
            ["NAME", "SERVICES", "READY", "STATUS", "AGE"],
            "{t}"
        );
        assert_eq!(&lines[1][..4], ["shop", "0/1", "False", "Suspended"], "{t}");
    }

    #[test]
    fn diffs_are_unified() {
        let d = unified_diff("a\nb\n", "a\nc\n", "old", "new").unwrap_or_default();
        assert!(
            d.contains("--- old") && d.contains("-b") && d.contains("+c"),
            "{d}"
        );
        assert_eq!(unified_diff("x\n", "x\n", "old", "new"), None);
    }
}
