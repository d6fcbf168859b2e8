//! `kargo env import`: Kargo's `.env` files (bash syntax) turned into an Environment and
//! its Stacks (kargo-reference.md, "The environment file").
//!
//! The files are read in the order given (`.env.default` then `.env`); a later assignment
//! wins, as it does when bash sources them. The mapping:
//!
//! | Kargo | kargo |
//! | --- | --- |
//! | `STACKS="a b"` | `spec.stacks` |
//! | `<STACK>_STACK="s1 s2"` | a Stack document with `spec.services` |
//! | `<S>_IMAGE`, `<S>_TAG` | `spec.services.<s>.image`, `.tag` (strings) |
//! | `<S>_REPLICAS` | `spec.services.<s>.replicas` (a number) |
//! | `<S>_CONSTRAINTS` (space separated) | `spec.services.<s>.constraints` |
//! | `<HOST>_LABELS="k=v k2=v2"` | `spec.nodes.<host>.labels` |
//! | `DOCKER_FRONT_NETWORK`, `DOCKER_BACK_NETWORK` (or the older `DOCKER_NETWORK`) | `spec.networks.front`, `.back`, and kept as variables (the catalog's Traefik labels name the front network through `${DOCKER_FRONT_NETWORK}`; the older `DOCKER_NETWORK` also gets `DOCKER_FRONT_NETWORK: "${DOCKER_NETWORK}"`) |
//! | anything else | `spec.variables` |
//!
//! `<S>` is a service named in some `<STACK>_STACK`, upper-cased with `-` → `_`. A
//! `_LABELS` key whose prefix is not such a service names a node: `WORKER_0_LABELS` →
//! node `worker-0` (lower-cased, `_` → `-`).
//!
//! **References are kept, not expanded.** `SUBDOMAIN=kargo.$DOMAIN` becomes the variable
//! `SUBDOMAIN: "kargo.${DOMAIN}"`, so changing `DOMAIN` in the Environment changes
//! `SUBDOMAIN` too, as the Kargo user expects of an environment; the Environment resolves
//! it (and reports a reference to a variable no file sets). Only where bash would read a
//! value that changes later (`A=$B` before `B` is assigned again, or `PATH=$PATH:x`) is
//! the value of that moment written in. Fields that must be literal (the stack lists,
//! replicas, constraints, node labels) are resolved at import. Single-quoted text and
//! other literal `$` become `$$`.
//!
//! Whatever cannot be carried over is a [`Warning`] naming the file and line, never
//! dropped silently: command substitution (`$(...)`, backticks), bash-only expansions
//! (`${A/x/y}`, `$1`...), arrays, commands, `source`, and Kargo's `<S>_EXTENSION`
//! (compose files layered over a service: convert them with `kargo import compose`).
//! `<S>_VOLUME_PATH` and `<S>_DATA_PATH` are kept as variables; a non-empty
//! `_VOLUME_PATH` is also a warning, because Kargo used it to turn named volumes into
//! host folders, which the catalog's Services do not do. `export` is accepted.
//!
//! `dotenvy` is not used: it expands `$VAR` at load time (from the process environment
//! too, which would leak the importing shell's variables into the manifest), keeps no line
//! numbers for warnings, and does not follow bash's quoting closely enough to say what it
//! could not carry over.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use serde_json::Value;

use crate::api::{
    DynamicObject, EnvironmentSpec, Kind, NetworkNames, NodeSettings, StackSpec, UnsetVariables,
};
use crate::manifest::interpolate::{self, InterpolationError};
use crate::manifest::load::{MAX_FILE_BYTES, read_text_bounded};

/// Something in an env file that was not carried over as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// The file, as given.
    pub file: String,
    /// The line (from 1) where the assignment or command starts.
    pub line: usize,
    /// What was not carried over, and what to do about it.
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// What `kargo env import` produces.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportResult {
    /// A whole Environment document (apiVersion, kind, metadata, spec).
    pub environment: Value,
    /// One Stack document per `<STACK>_STACK`, in `STACKS` order, then the others by name.
    pub stacks: Vec<Value>,
    /// What was not carried over, by file and line.
    pub warnings: Vec<Warning>,
}

/// Why an import could not be done at all.
#[derive(Debug, thiserror::Error)]
pub enum EnvImportError {
    /// No file was given.
    #[error("no env file given")]
    NoFiles,
    /// A file could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The Environment's name is not a DNS-1123 label.
    #[error(
        "invalid Environment name {name:?}: use lowercase letters, digits and '-', at most 63 characters"
    )]
    InvalidName {
        /// The name given.
        name: String,
    },
}

/// Reads Kargo env files in order (later assignments win) and maps them to an Environment
/// named `name` and its Stacks.
pub fn import_env_files(files: &[PathBuf], name: &str) -> Result<ImportResult, EnvImportError> {
    let mut sources = Vec::with_capacity(files.len());
    for path in files {
        let text =
            read_text_bounded(path, MAX_FILE_BYTES).map_err(|source| EnvImportError::Read {
                path: path.clone(),
                source,
            })?;
        sources.push((path.display().to_string(), text));
    }
    import_env_sources(&sources, name)
}

/// Like [`import_env_files`], over `(file label, content)` pairs already read.
pub fn import_env_sources(
    sources: &[(String, String)],
    name: &str,
) -> Result<ImportResult, EnvImportError> {
    if sources.is_empty() {
        return Err(EnvImportError::NoFiles);
    }
    if !is_dns_label(name) {
        return Err(EnvImportError::InvalidName {
            name: name.to_string(),
        });
    }
    let mut notes = Notes::default();
    let mut assignments = Vec::new();
    for (index, (_, text)) in sources.iter().enumerate() {
        assignments.extend(Lexer::new(index, text, &mut notes).file());
    }
    let (templates, places) = build_templates(&assignments, &mut notes);
    let (mut spec, stacks) = map_environment(&templates, &places, &mut notes);
    // Kargo deployed through `docker stack deploy`, which makes an unset variable empty.
    spec.unset_variables = Some(UnsetVariables::Empty);

    let environment = document(Kind::Environment, name, &spec);
    let stacks = stacks
        .iter()
        .map(|(stack, spec)| document(Kind::Stack, stack, spec))
        .collect();
    let mut warnings = notes.0;
    warnings.sort_by_key(|w| (w.file, w.line));
    let warnings = warnings
        .into_iter()
        .map(|w| Warning {
            file: sources
                .get(w.file)
                .map(|(f, _)| f.clone())
                .unwrap_or_default(),
            line: w.line,
            message: w.message,
        })
        .collect();
    Ok(ImportResult {
        environment,
        stacks,
        warnings,
    })
}

/// One line of a compose `env_file`, as the service's environment takes it: `(KEY, value)`
/// with the value escaped for interpolation (env files are read literally: no quotes, no
/// expansion, so `$` is written `$$`); a line `KEY` alone takes the variable `${KEY}`, as
/// Docker takes it from the environment. A leading `export ` is dropped (`export KEY=v` is
/// `KEY=v`), as compose reads env files. Blank lines and `#` comments give `None`.
pub fn env_file_entry(line: &str) -> Option<(String, String)> {
    let line = line.trim_start();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let line = line
        .strip_prefix("export")
        .filter(|rest| rest.starts_with([' ', '\t']))
        .map_or(line, str::trim_start);
    match line.split_once('=') {
        Some((k, v)) => Some((k.trim().to_string(), interpolate::escape(v))),
        None => {
            let k = line.trim();
            Some((k.to_string(), format!("${{{k}}}")))
        }
    }
}

/// Whether `s` is a DNS-1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub(crate) fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn document<T: serde::Serialize>(kind: Kind, name: &str, spec: &T) -> Value {
    let spec = serde_json::to_value(spec).unwrap_or(Value::Null);
    serde_json::to_value(DynamicObject::new(kind, name, spec)).unwrap_or(Value::Null)
}

/// A warning before it is given its file's name.
struct Note {
    file: usize,
    line: usize,
    message: String,
}

#[derive(Default)]
struct Notes(Vec<Note>);

impl Notes {
    fn add(&mut self, file: usize, line: usize, message: impl Into<String>) {
        self.0.push(Note {
            file,
            line,
            message: message.into(),
        });
    }
}

/// A piece of an assigned value.
#[derive(Clone, Debug, PartialEq)]
enum Part {
    /// Literal text, already escaped for interpolation (`$` → `$$`).
    Lit(String),
    /// A reference to a variable, written as interpolation syntax.
    Ref {
        /// The variable.
        name: String,
        /// The reference as kargo writes it: `${NAME}` or `${NAME:-default}`.
        raw: String,
        /// True for `$NAME` and `${NAME}`, false when an operator follows the name.
        plain: bool,
    },
}

/// One `NAME=value` of a file.
#[derive(Clone, Debug)]
struct Assignment {
    name: String,
    parts: Vec<Part>,
    file: usize,
    line: usize,
}

/// A bash-like reader of assignments, keeping line numbers.
struct Lexer<'a, 'n> {
    file: usize,
    chars: Vec<char>,
    lines: Vec<&'a str>,
    pos: usize,
    line: usize,
    notes: &'n mut Notes,
}

fn is_name_start(c: char) -> bool {
    c == '_' || c.is_ascii_alphabetic()
}

fn is_name_char(c: char) -> bool {
    c == '_' || c.is_ascii_alphanumeric()
}

/// Appends one literal character, escaping `$` for interpolation.
fn push_lit(parts: &mut Vec<Part>, c: char) {
    if !matches!(parts.last(), Some(Part::Lit(_))) {
        parts.push(Part::Lit(String::new()));
    }
    if let Some(Part::Lit(s)) = parts.last_mut() {
        if c == '$' {
            s.push_str("$$");
        } else {
            s.push(c);
        }
    }
}

impl<'a, 'n> Lexer<'a, 'n> {
    fn new(file: usize, text: &'a str, notes: &'n mut Notes) -> Self {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        Lexer {
            file,
            chars: text.chars().collect(),
            lines: text.lines().collect(),
            pos: 0,
            line: 1,
            notes,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\r')) {
            self.pos += 1;
        }
    }

    fn skip_to_eol(&mut self) {
        while let Some(c) = self.peek() {
            if c == '\n' {
                break;
            }
            self.pos += 1;
        }
    }

    fn line_text(&self, line: usize) -> String {
        let text = self
            .lines
            .get(line.saturating_sub(1))
            .map(|l| l.trim())
            .unwrap_or_default();
        if text.chars().count() > 60 {
            format!("{}...", text.chars().take(60).collect::<String>())
        } else {
            text.to_string()
        }
    }

    fn note(&mut self, line: usize, message: impl Into<String>) {
        self.notes.add(self.file, line, message);
    }

    /// The name of an assignment starting here (`NAME=`), if one does.
    fn assignment_name(&self) -> Option<(String, usize)> {
        let first = self.peek()?;
        if !is_name_start(first) {
            return None;
        }
        let mut i = self.pos;
        while i < self.chars.len() && is_name_char(self.chars[i]) {
            i += 1;
        }
        match self.chars.get(i) {
            Some('=') => Some((self.chars[self.pos..i].iter().collect(), i + 1)),
            Some('+') if self.chars.get(i + 1) == Some(&'=') => {
                Some((self.chars[self.pos..i].iter().collect(), i + 2))
            }
            _ => None,
        }
    }

    /// The bare word starting here (up to a blank or an operator).
    fn word_here(&self) -> String {
        self.chars[self.pos..]
            .iter()
            .take_while(|c| !matches!(c, ' ' | '\t' | '\r' | '\n' | ';' | '&' | '|'))
            .collect()
    }

    /// Reads the whole file into assignments.
    fn file(mut self) -> Vec<Assignment> {
        let mut out = Vec::new();
        loop {
            self.skip_blanks();
            match self.peek() {
                None => break,
                Some('\n' | ';') => {
                    self.bump();
                    continue;
                }
                Some('#') => {
                    self.skip_to_eol();
                    continue;
                }
                Some(_) => {}
            }
            self.command(&mut out);
        }
        out
    }

    /// Reads one simple command: assignments, possibly after `export`.
    fn command(&mut self, out: &mut Vec<Assignment>) {
        let start_line = self.line;
        let mut pending: Vec<Assignment> = Vec::new();
        let mut keyword: Option<String> = None;
        loop {
            self.skip_blanks();
            match self.peek() {
                None | Some('\n') | Some(';') => break,
                Some('#') => {
                    self.skip_to_eol();
                    break;
                }
                Some('&' | '|' | '<' | '>' | '(' | ')' | '{' | '}') => {
                    let line_text = self.line_text(start_line);
                    self.note(
                        start_line,
                        format!("`{line_text}` uses shell operators: ignored"),
                    );
                    self.skip_to_eol();
                    return;
                }
                Some(_) => {}
            }
            if let Some((name, value_start)) = self.assignment_name() {
                let line = self.line;
                let append = self.chars.get(value_start - 2) == Some(&'+');
                self.pos = value_start;
                if self.peek() == Some('(') {
                    self.note(
                        line,
                        format!("{name}: bash arrays cannot be carried over: ignored"),
                    );
                    self.skip_to_eol();
                    return;
                }
                let (parts, problem) = self.value();
                if append {
                    self.note(
                        line,
                        format!("{name}+=...: appending cannot be carried over: write the whole value; ignored"),
                    );
                } else if let Some(problem) = problem {
                    self.note(
                        line,
                        format!("{name}: {problem} cannot be carried over: set {name} in the Environment by hand; ignored"),
                    );
                } else {
                    pending.push(Assignment {
                        name,
                        parts,
                        file: self.file,
                        line,
                    });
                }
                continue;
            }
            let word = self.word_here();
            if keyword.is_none()
                && pending.is_empty()
                && matches!(
                    word.as_str(),
                    "export" | "readonly" | "declare" | "typeset" | "local"
                )
            {
                self.pos += word.chars().count();
                keyword = Some(word);
                continue;
            }
            if let Some(kw) = &keyword {
                if word.starts_with('-') && kw != "export" && kw != "readonly" {
                    let line_text = self.line_text(start_line);
                    self.note(
                        start_line,
                        format!("`{line_text}`: {kw} options cannot be carried over: ignored"),
                    );
                    self.skip_to_eol();
                    return;
                }
                if !word.is_empty() && (word.starts_with('-') || word.chars().all(is_name_char)) {
                    // `export -n`, `export NAME`: no value to carry over.
                    self.pos += word.chars().count();
                    continue;
                }
            }
            let line_text = self.line_text(start_line);
            let message = match word.as_str() {
                "source" | "." => format!(
                    "`{line_text}` reads another file: not followed; import that file too (list it before this one)"
                ),
                _ if !pending.is_empty() => format!(
                    "`{line_text}` runs a command (assignments before a command apply to that command only): ignored"
                ),
                _ => format!("`{line_text}` is not a variable assignment: ignored"),
            };
            self.note(start_line, message);
            self.skip_to_eol();
            return;
        }
        out.append(&mut pending);
    }

    /// Reads a value (one shell word); returns its parts, or the first construct that
    /// cannot be carried over.
    fn value(&mut self) -> (Vec<Part>, Option<String>) {
        let mut parts = Vec::new();
        let mut problem: Option<String> = None;
        let line = self.line;
        if self.peek() == Some('~') {
            self.note(
                line,
                "`~` is not expanded to a home folder: kept as a literal `~`",
            );
        }
        loop {
            match self.peek() {
                None => break,
                Some(' ' | '\t' | '\r' | '\n' | ';' | '&' | '|' | '<' | '>' | '(' | ')') => break,
                Some('\'') => {
                    self.bump();
                    loop {
                        match self.bump() {
                            None => {
                                problem.get_or_insert_with(|| {
                                    "an unterminated ' (bash reads the rest of the file into it)"
                                        .to_string()
                                });
                                break;
                            }
                            Some('\'') => break,
                            Some(c) => push_lit(&mut parts, c),
                        }
                    }
                }
                Some('"') => {
                    self.bump();
                    self.double_quoted(&mut parts, &mut problem);
                }
                Some('\\') => {
                    self.bump();
                    match self.bump() {
                        None => push_lit(&mut parts, '\\'),
                        Some('\n') => {}
                        Some(c) => push_lit(&mut parts, c),
                    }
                }
                Some('$') => self.dollar(&mut parts, &mut problem, false),
                Some('`') => {
                    self.skip_backticks();
                    problem.get_or_insert_with(|| "command substitution `...`".to_string());
                }
                Some(c) => {
                    self.bump();
                    push_lit(&mut parts, c);
                }
            }
        }
        (parts, problem)
    }

    fn double_quoted(&mut self, parts: &mut Vec<Part>, problem: &mut Option<String>) {
        loop {
            match self.peek() {
                None => {
                    problem.get_or_insert_with(|| {
                        "an unterminated \" (bash reads the rest of the file into it)".to_string()
                    });
                    return;
                }
                Some('"') => {
                    self.bump();
                    return;
                }
                Some('\\') => {
                    self.bump();
                    match self.peek() {
                        Some(c @ ('$' | '`' | '"' | '\\')) => {
                            self.bump();
                            push_lit(parts, c);
                        }
                        Some('\n') => {
                            self.bump();
                        }
                        _ => push_lit(parts, '\\'),
                    }
                }
                Some('$') => self.dollar(parts, problem, true),
                Some('`') => {
                    self.skip_backticks();
                    problem.get_or_insert_with(|| "command substitution `...`".to_string());
                }
                Some(c) => {
                    self.bump();
                    push_lit(parts, c);
                }
            }
        }
    }

    fn skip_backticks(&mut self) {
        self.bump();
        while let Some(c) = self.bump() {
            if c == '`' {
                break;
            }
        }
    }

    /// Reads what follows a `$`.
    fn dollar(&mut self, parts: &mut Vec<Part>, problem: &mut Option<String>, quoted: bool) {
        self.bump();
        match self.peek() {
            Some('(') => {
                let mut depth = 0usize;
                while let Some(c) = self.bump() {
                    match c {
                        '(' => depth += 1,
                        ')' => {
                            depth = depth.saturating_sub(1);
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                problem.get_or_insert_with(|| "command substitution $(...)".to_string());
            }
            Some('{') => {
                self.bump();
                let start = self.pos;
                let mut depth = 0usize;
                let mut end = None;
                let mut i = self.pos;
                while i < self.chars.len() {
                    match self.chars[i] {
                        '$' if self.chars.get(i + 1) == Some(&'{') => {
                            depth += 1;
                            i += 2;
                            continue;
                        }
                        '}' if depth == 0 => {
                            end = Some(i);
                            break;
                        }
                        '}' => depth -= 1,
                        _ => {}
                    }
                    i += 1;
                }
                let Some(end) = end else {
                    problem.get_or_insert_with(|| "an unterminated ${".to_string());
                    self.skip_to_eol();
                    return;
                };
                let inner: String = self.chars[start..end].iter().collect();
                while self.pos <= end {
                    self.bump();
                }
                match braced_reference(&inner) {
                    Ok(part) => parts.push(part),
                    Err(what) => {
                        problem.get_or_insert(what);
                    }
                }
            }
            Some(c) if is_name_start(c) => {
                let mut name = String::new();
                while let Some(c) = self.peek() {
                    if !is_name_char(c) {
                        break;
                    }
                    name.push(c);
                    self.bump();
                }
                parts.push(Part::Ref {
                    raw: format!("${{{name}}}"),
                    name,
                    plain: true,
                });
            }
            Some(c) if c.is_ascii_digit() || "?@*#$!-".contains(c) => {
                self.bump();
                problem.get_or_insert_with(|| format!("the special parameter ${c}"));
            }
            Some('\'') if !quoted => {
                problem.get_or_insert_with(|| "ANSI-C quoting $'...'".to_string());
            }
            _ => push_lit(parts, '$'),
        }
    }
}

/// Turns the inside of a bash `${...}` into a reference kargo's interpolation reads the
/// same way, or names the bash feature it cannot.
fn braced_reference(inner: &str) -> Result<Part, String> {
    let name: String = inner.chars().take_while(|c| is_name_char(*c)).collect();
    let unsupported = || format!("the bash expansion ${{{inner}}}");
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(unsupported());
    }
    let rest = &inner[name.len()..];
    if rest.is_empty() {
        return Ok(Part::Ref {
            raw: format!("${{{name}}}"),
            name,
            plain: true,
        });
    }
    let word = [":-", ":?", ":+", "-", "?", "+"]
        .iter()
        .find_map(|op| rest.strip_prefix(op));
    match word {
        Some(word) if !word.contains(['\'', '"', '`', '\\']) && !word.contains("$(") => {
            // The word is read again by kargo's interpolation: check it reads there.
            let probe = format!("${{{inner}}}");
            let vars = BTreeMap::new();
            match interpolate::interpolate_str(&probe, &vars, "") {
                Err(errors)
                    if errors
                        .iter()
                        .any(|e| matches!(e, InterpolationError::Syntax { .. })) =>
                {
                    Err(unsupported())
                }
                _ => Ok(Part::Ref {
                    raw: probe,
                    name,
                    plain: false,
                }),
            }
        }
        _ => Err(unsupported()),
    }
}

/// Where a variable's final value was assigned.
#[derive(Clone, Copy)]
struct Place {
    file: usize,
    line: usize,
}

/// Builds each variable's final template, following bash's order of evaluation.
fn build_templates(
    assignments: &[Assignment],
    notes: &mut Notes,
) -> (BTreeMap<String, String>, BTreeMap<String, Place>) {
    let mut last: HashMap<&str, usize> = HashMap::new();
    for (i, a) in assignments.iter().enumerate() {
        last.insert(a.name.as_str(), i);
    }
    let mut current: BTreeMap<String, String> = BTreeMap::new();
    let mut places: BTreeMap<String, Place> = BTreeMap::new();
    for (i, a) in assignments.iter().enumerate() {
        let mut template = String::new();
        let mut dropped = false;
        for part in &a.parts {
            match part {
                Part::Lit(s) => template.push_str(s),
                Part::Ref { name, raw, plain } => {
                    let Some(&last_i) = last.get(name.as_str()) else {
                        template.push_str(raw);
                        if !plain {
                            // `${NAME:-default}`: the default covers it.
                            continue;
                        }
                        notes.add(
                            a.file,
                            a.line,
                            format!(
                                "{}: references {name}, which none of the files sets (bash read it from the shell's environment): set {name} in the Environment's variables",
                                a.name
                            ),
                        );
                        continue;
                    };
                    let self_reference = *name == a.name;
                    if !self_reference && last_i <= i {
                        template.push_str(raw);
                        continue;
                    }
                    // Bash reads the value of this moment, which changes later: write it in.
                    match (current.get(name), plain) {
                        (Some(value), true) => template.push_str(value),
                        (None, true) => {
                            notes.add(
                                a.file,
                                a.line,
                                format!(
                                    "{}: references {name} before any file sets it (bash read the shell's value, or nothing): taken as empty",
                                    a.name
                                ),
                            );
                        }
                        (_, false) if self_reference => {
                            notes.add(
                                a.file,
                                a.line,
                                format!(
                                    "{}: {raw} refers to the previous value of {name}, which cannot be carried over: set {name} in the Environment by hand; ignored",
                                    a.name
                                ),
                            );
                            dropped = true;
                        }
                        (_, false) => {
                            notes.add(
                                a.file,
                                a.line,
                                format!(
                                    "{}: bash reads {name} as it is at this line, but a later line sets it again: {raw} now refers to the final value",
                                    a.name
                                ),
                            );
                            template.push_str(raw);
                        }
                    }
                }
            }
        }
        if !dropped {
            current.insert(a.name.clone(), template);
            places.insert(
                a.name.clone(),
                Place {
                    file: a.file,
                    line: a.line,
                },
            );
        }
    }
    (current, places)
}

/// The suffixes of Kargo's per-service settings.
const SERVICE_SUFFIXES: [&str; 6] = [
    "_REPLICAS",
    "_CONSTRAINTS",
    "_IMAGE",
    "_TAG",
    "_EXTENSION",
    "_VOLUME_PATH",
];

/// One per-service setting read from the env files.
enum Setting {
    Image(String),
    Tag(String),
    Replicas(u64),
    Constraints(Vec<String>),
}

/// `mongo-express` → `MONGO_EXPRESS`.
fn prefix_of(name: &str) -> String {
    name.to_ascii_uppercase().replace('-', "_")
}

/// Maps the final variables onto an Environment spec and Stack specs.
fn map_environment(
    vars: &BTreeMap<String, String>,
    places: &BTreeMap<String, Place>,
    notes: &mut Notes,
) -> (EnvironmentSpec, Vec<(String, StackSpec)>) {
    let (resolved, errors) = interpolate::resolve_variables_partial(vars);
    let place = |key: &str| {
        places
            .get(key)
            .copied()
            .unwrap_or(Place { file: 0, line: 0 })
    };
    let note_at = |notes: &mut Notes, key: &str, message: String| {
        let p = place(key);
        notes.add(p.file, p.line, message);
    };
    // The literal value of a key, or a warning saying why there is none.
    let literal = |notes: &mut Notes, key: &str| -> Option<String> {
        if let Some(v) = resolved.get(key) {
            return Some(v.clone());
        }
        let why: Vec<String> = errors
            .iter()
            .filter(|e| match e {
                InterpolationError::UnresolvedReference { referenced_by, .. } => {
                    referenced_by == key
                }
                InterpolationError::Cycle { variables } => variables.iter().any(|v| v == key),
                InterpolationError::Syntax { path, .. } => {
                    *path == interpolate::pointer_push("/spec/variables", key)
                }
                _ => false,
            })
            .map(ToString::to_string)
            .collect();
        let why = if why.is_empty() {
            "a variable it references does not resolve".to_string()
        } else {
            why.join("; ")
        };
        note_at(
            notes,
            key,
            format!(
                "{key}: its value must be known at import but does not resolve ({why}): ignored"
            ),
        );
        None
    };

    let mut spec = EnvironmentSpec::default();
    let mut consumed: BTreeSet<String> = BTreeSet::new();

    // Stacks.
    if vars.contains_key("STACKS") {
        consumed.insert("STACKS".into());
        if let Some(list) = literal(notes, "STACKS") {
            for stack in list.split_whitespace() {
                if is_dns_label(stack) {
                    if !spec.stacks.iter().any(|s| s == stack) {
                        spec.stacks.push(stack.to_string());
                    }
                } else {
                    note_at(
                        notes,
                        "STACKS",
                        format!(
                            "STACKS: {stack:?} is not a valid Stack name (lowercase letters, digits and '-'): left out"
                        ),
                    );
                }
            }
        }
    }
    let mut stacks: Vec<(String, StackSpec)> = Vec::new();
    let mut stack_keys: Vec<(String, String)> = Vec::new();
    for key in vars.keys() {
        if let Some(prefix) = key.strip_suffix("_STACK").filter(|p| !p.is_empty()) {
            let name = spec
                .stacks
                .iter()
                .find(|s| prefix_of(s) == prefix)
                .cloned()
                .unwrap_or_else(|| prefix.to_ascii_lowercase().replace('_', "-"));
            stack_keys.push((name, key.clone()));
        }
    }
    // STACKS order first, then the other stacks by name.
    stack_keys.sort_by_key(|(name, _)| {
        (
            spec.stacks
                .iter()
                .position(|s| s == name)
                .unwrap_or(usize::MAX),
            name.clone(),
        )
    });
    for (name, key) in stack_keys {
        consumed.insert(key.clone());
        if !is_dns_label(&name) {
            note_at(
                notes,
                &key,
                format!("{key}: {name:?} is not a valid Stack name: left out"),
            );
            continue;
        }
        let Some(list) = literal(notes, &key) else {
            continue;
        };
        let mut services = Vec::new();
        for service in list.split_whitespace() {
            if is_dns_label(service) {
                if !services.iter().any(|s| s == service) {
                    services.push(service.to_string());
                }
            } else {
                note_at(
                    notes,
                    &key,
                    format!(
                        "{key}: {service:?} is not a valid Service name (lowercase letters, digits and '-'): left out"
                    ),
                );
            }
        }
        stacks.push((
            name,
            StackSpec {
                services,
                ..StackSpec::default()
            },
        ));
    }
    for stack in &spec.stacks {
        if !stacks.iter().any(|(s, _)| s == stack) {
            note_at(
                notes,
                "STACKS",
                format!(
                    "STACKS names {stack} but no {}_STACK lists its services: its Stack is empty",
                    prefix_of(stack)
                ),
            );
            stacks.push((stack.clone(), StackSpec::default()));
        }
    }
    if spec.stacks.is_empty() && !stacks.is_empty() && !vars.contains_key("STACKS") {
        let first = stacks
            .first()
            .map(|(s, _)| format!("{}_STACK", prefix_of(s)))
            .unwrap_or_default();
        note_at(
            notes,
            &first,
            "no STACKS: the Stacks are imported but the Environment deploys none; set spec.stacks"
                .to_string(),
        );
    }

    // Services named in a stack, by prefix.
    let mut services: BTreeMap<String, String> = BTreeMap::new();
    for (_, stack) in &stacks {
        for service in &stack.services {
            services.insert(prefix_of(service), service.clone());
        }
    }

    let mut variables: BTreeMap<String, String> = BTreeMap::new();
    let mut keep_too: BTreeSet<String> = BTreeSet::new();
    for (key, template) in vars {
        if consumed.contains(key) {
            continue;
        }
        let service_setting = SERVICE_SUFFIXES.iter().find_map(|suffix| {
            key.strip_suffix(suffix)
                .and_then(|p| services.get(p))
                .map(|s| (*suffix, s.clone()))
        });
        if let Some((suffix, service)) = service_setting {
            let setting = match suffix {
                "_IMAGE" => Setting::Image(template.clone()),
                "_TAG" => Setting::Tag(template.clone()),
                "_REPLICAS" => match literal(notes, key).map(|v| (v.trim().parse::<u64>(), v)) {
                    Some((Ok(n), _)) => Setting::Replicas(n),
                    Some((Err(_), value)) => {
                        note_at(
                            notes,
                            key,
                            format!(
                                "{key}: {value:?} is not a number of replicas: kept as a variable only"
                            ),
                        );
                        variables.insert(key.clone(), template.clone());
                        continue;
                    }
                    None => {
                        variables.insert(key.clone(), template.clone());
                        continue;
                    }
                },
                "_CONSTRAINTS" => match literal(notes, key) {
                    Some(value) => Setting::Constraints(
                        value.split_whitespace().map(interpolate::escape).collect(),
                    ),
                    None => {
                        variables.insert(key.clone(), template.clone());
                        continue;
                    }
                },
                "_EXTENSION" => {
                    note_at(
                        notes,
                        key,
                        format!(
                            "{key}: Kargo layered the compose file {template:?} over {service}; kargo does not read compose files at deploy: convert it with `kargo import compose FILE --stack STACK` and apply the result as an overlay of {service}; not carried over"
                        ),
                    );
                    continue;
                }
                _ => {
                    // _VOLUME_PATH
                    if !template.is_empty() {
                        note_at(
                            notes,
                            key,
                            format!(
                                "{key}: Kargo prefixed {service}'s volume names with it (a host folder turned them into bind mounts); the catalog's {service} uses named volumes: kept as a variable only, write a bind mount in an overlay of {service} to keep the data where it is"
                            ),
                        );
                    }
                    variables.insert(key.clone(), template.clone());
                    continue;
                }
            };
            let settings = spec.services.entry(service).or_default();
            match setting {
                Setting::Image(v) => settings.image = Some(v),
                Setting::Tag(v) => settings.tag = Some(v),
                Setting::Replicas(n) => settings.replicas = Some(n),
                Setting::Constraints(c) => settings.constraints = Some(c),
            }
            keep_too.insert(key.clone());
            continue;
        }
        if let Some(prefix) = key.strip_suffix("_LABELS").filter(|p| !p.is_empty()) {
            if let Some(service) = services.get(prefix) {
                note_at(
                    notes,
                    key,
                    format!(
                        "{key}: Kargo read <HOST>_LABELS for node labels, but {service} is a service: kept as a variable; if a node is named {service}, move it to spec.nodes"
                    ),
                );
                variables.insert(key.clone(), template.clone());
                continue;
            }
            let host = prefix.to_ascii_lowercase().replace('_', "-");
            let Some(value) = literal(notes, key) else {
                continue;
            };
            let mut labels = BTreeMap::new();
            for item in value.split_whitespace() {
                match item.split_once('=') {
                    Some((k, v)) if !k.is_empty() => {
                        labels.insert(k.to_string(), v.to_string());
                    }
                    _ => note_at(
                        notes,
                        key,
                        format!("{key}: {item:?} is not a label (key=value): left out"),
                    ),
                }
            }
            spec.nodes.insert(host, NodeSettings { labels });
            keep_too.insert(key.clone());
            continue;
        }
        match key.as_str() {
            "DOCKER_FRONT_NETWORK" | "DOCKER_BACK_NETWORK" | "DOCKER_NETWORK" => {
                let front = key != "DOCKER_BACK_NETWORK";
                if key == "DOCKER_NETWORK" && vars.contains_key("DOCKER_FRONT_NETWORK") {
                    variables.insert(key.clone(), template.clone());
                    continue;
                }
                if let Some(value) = literal(notes, key) {
                    let networks = spec.networks.get_or_insert_with(NetworkNames::default);
                    if front {
                        networks.front = Some(value);
                    } else {
                        networks.back = Some(value);
                    }
                }
                // Kept as a variable too: Services name the network in labels
                // (the catalog's traefik.docker.network=${DOCKER_FRONT_NETWORK}).
                variables.insert(key.clone(), template.clone());
                if key == "DOCKER_NETWORK" {
                    variables.insert(
                        "DOCKER_FRONT_NETWORK".to_string(),
                        "${DOCKER_NETWORK}".to_string(),
                    );
                }
            }
            _ => {
                variables.insert(key.clone(), template.clone());
            }
        }
    }
    // A setting that a remaining variable references stays a variable as well.
    let referenced: BTreeSet<String> = variables
        .values()
        .flat_map(|t| interpolate::referenced_variables(t))
        .collect();
    for key in keep_too.intersection(&referenced) {
        if let Some(t) = vars.get(key) {
            variables.insert(key.clone(), t.clone());
        }
    }
    spec.variables = variables;
    (spec, stacks)
}

/// Reads a file's assignments as `(name, template)` pairs, for tests and callers that want
/// the raw variables of one file (warnings are returned with file index 0).
#[cfg(test)]
fn parse_one(text: &str) -> (Vec<(String, String)>, Vec<String>) {
    let mut notes = Notes::default();
    let assignments = Lexer::new(0, text, &mut notes).file();
    let (templates, _) = build_templates(&assignments, &mut notes);
    (
        templates.into_iter().collect(),
        notes
            .0
            .into_iter()
            .map(|n| format!("{}: {}", n.line, n.message))
            .collect(),
    )
}

#[cfg(test)]
mod env_file_tests {
    use super::env_file_entry;

    #[test]
    fn export_lines_are_plain_assignments() {
        assert_eq!(
            env_file_entry("export DB_URL=mongodb://db:27017"),
            Some(("DB_URL".into(), "mongodb://db:27017".into()))
        );
        assert_eq!(
            env_file_entry("  export\tA=1"),
            Some(("A".into(), "1".into()))
        );
        // A key that merely starts with "export" is a key.
        assert_eq!(
            env_file_entry("exported=yes"),
            Some(("exported".into(), "yes".into()))
        );
    }

    #[test]
    fn values_are_literal_and_bare_keys_reference_the_variable() {
        assert_eq!(
            env_file_entry("HASH=$2y$05$abc"),
            Some(("HASH".into(), "$$2y$$05$$abc".into()))
        );
        assert_eq!(
            env_file_entry("TOKEN"),
            Some(("TOKEN".into(), "${TOKEN}".into()))
        );
        assert_eq!(env_file_entry("# comment"), None);
        assert_eq!(env_file_entry("   "), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Document, EnvironmentStatus, StackStatus};
    use serde_json::json;

    const REFERENCE_EXAMPLE: &str = r#"DOMAIN=kalisio.xyz
SUBDOMAIN=kargo.$DOMAIN
STACKS="dbs services apps"
DBS_STACK="mongodb postgis"
SERVICES_STACK="redis"
APPS_STACK="maputnik kano"
KANO_REPLICAS=2
KANO_CONSTRAINTS="node.role==worker"
WORKER_0_LABELS="mongodb=true tileservergl=true"
"#;

    fn import(files: &[(&str, &str)]) -> ImportResult {
        let sources: Vec<(String, String)> = files
            .iter()
            .map(|(f, t)| (f.to_string(), t.to_string()))
            .collect();
        match import_env_sources(&sources, "production") {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        }
    }

    fn vars_of(text: &str) -> BTreeMap<String, String> {
        parse_one(text).0.into_iter().collect()
    }

    #[test]
    fn reference_example_maps_to_an_environment_and_stacks() {
        let r = import(&[(".env", REFERENCE_EXAMPLE)]);
        assert_eq!(
            r.environment,
            json!({
                "apiVersion": "kargo.dev/v1alpha1",
                "kind": "Environment",
                "metadata": {"name": "production"},
                "spec": {
                    "variables": {"DOMAIN": "kalisio.xyz", "SUBDOMAIN": "kargo.${DOMAIN}"},
                    "stacks": ["dbs", "services", "apps"],
                    "services": {
                        "kano": {"replicas": 2, "constraints": ["node.role==worker"]}
                    },
                    "nodes": {
                        "worker-0": {"labels": {"mongodb": "true", "tileservergl": "true"}}
                    },
                    "unsetVariables": "empty"
                }
            })
        );
        assert_eq!(
            r.stacks,
            vec![
                json!({"apiVersion": "kargo.dev/v1alpha1", "kind": "Stack",
                       "metadata": {"name": "dbs"}, "spec": {"services": ["mongodb", "postgis"]}}),
                json!({"apiVersion": "kargo.dev/v1alpha1", "kind": "Stack",
                       "metadata": {"name": "services"}, "spec": {"services": ["redis"]}}),
                json!({"apiVersion": "kargo.dev/v1alpha1", "kind": "Stack",
                       "metadata": {"name": "apps"}, "spec": {"services": ["maputnik", "kano"]}}),
            ]
        );
        assert_eq!(r.warnings, vec![]);
    }

    #[test]
    fn imported_documents_deserialize_into_the_kinds() {
        let r = import(&[(".env", REFERENCE_EXAMPLE)]);
        let env: Result<Document<EnvironmentSpec, EnvironmentStatus>, _> =
            serde_json::from_value(r.environment.clone());
        if let Err(e) = env {
            panic!("{e}");
        }
        for stack in r.stacks {
            let s: Result<Document<StackSpec, StackStatus>, _> = serde_json::from_value(stack);
            if let Err(e) = s {
                panic!("{e}");
            }
        }
    }

    #[test]
    fn the_imported_variables_resolve_in_the_environment() {
        let r = import(&[(".env", REFERENCE_EXAMPLE)]);
        let vars: BTreeMap<String, String> =
            serde_json::from_value(r.environment["spec"]["variables"].clone()).unwrap_or_default();
        let resolved = interpolate::resolve_variables(&vars).unwrap_or_default();
        assert_eq!(
            resolved.get("SUBDOMAIN").map(String::as_str),
            Some("kargo.kalisio.xyz")
        );
    }

    #[test]
    fn later_files_and_later_lines_win() {
        let r = import(&[
            (
                ".env.default",
                "KANO_TAG=1.0\nKANO_IMAGE=kalisio/kano\nAPPS_STACK=kano\nLOG=info\n",
            ),
            (".env", "KANO_TAG=\"2.0\"\nLOG=debug\nLOG=trace\n"),
        ]);
        let spec = &r.environment["spec"];
        assert_eq!(
            spec["services"]["kano"],
            json!({"image": "kalisio/kano", "tag": "2.0"})
        );
        assert_eq!(spec["variables"], json!({"LOG": "trace"}));
    }

    #[test]
    fn tags_stay_strings_and_references_in_images_are_kept() {
        let r = import(&[(
            ".env",
            "APPS_STACK=kano\nVERSION=4.2\nKANO_TAG=$VERSION\nKANO_IMAGE=${REGISTRY:-docker.io}/kano\n",
        )]);
        let spec = &r.environment["spec"];
        assert_eq!(
            spec["services"]["kano"],
            json!({"image": "${REGISTRY:-docker.io}/kano", "tag": "${VERSION}"})
        );
        // VERSION stays: the tag refers to it.
        assert_eq!(spec["variables"]["VERSION"], json!("4.2"));
    }

    #[test]
    fn quoting_follows_bash() {
        let v = vars_of(concat!(
            "A='$literal \"x\"'\n",
            "B=\"quoted $A and \\$HOME\"\n",
            "C=unquoted\\ space # comment\n",
            "D=\"multi\nline\"\n",
            "export E=exported\n",
            "F=  \n",
            "G=a'b'\"c\"\n",
            "H=cost$\n",
        ));
        assert_eq!(v["A"], "$$literal \"x\"");
        assert_eq!(v["B"], "quoted ${A} and $$HOME");
        assert_eq!(v["C"], "unquoted space");
        assert_eq!(v["D"], "multi\nline");
        assert_eq!(v["E"], "exported");
        assert_eq!(v["F"], "");
        assert_eq!(v["G"], "abc");
        assert_eq!(v["H"], "cost$$");
    }

    #[test]
    fn single_quoted_hashes_survive_interpolation() {
        let v = vars_of("AUTH_PASSWORD='$apr1$x$y'\n");
        let resolved = interpolate::resolve_variables(&v).unwrap_or_default();
        assert_eq!(resolved["AUTH_PASSWORD"], "$apr1$x$y");
    }

    #[test]
    fn bash_defaults_are_kept_as_interpolation() {
        let v = vars_of("A=${B:-fallback}\nC=\"${D:?set D}\"\n");
        assert_eq!(v["A"], "${B:-fallback}");
        assert_eq!(v["C"], "${D:?set D}");
    }

    #[test]
    fn command_substitution_is_a_warning_naming_the_line() {
        let r = import(&[(
            ".env",
            "OK=1\nNOW=$(date +%s)\nWHO=`whoami`\nX=\"a $(echo b)\"\nOK2=2\n",
        )]);
        let lines: Vec<(String, usize)> = r
            .warnings
            .iter()
            .map(|w| (w.file.clone(), w.line))
            .collect();
        assert_eq!(
            lines,
            vec![(".env".into(), 2), (".env".into(), 3), (".env".into(), 4)]
        );
        assert!(r.warnings[0].message.contains("command substitution"));
        assert!(r.warnings[0].to_string().starts_with(".env:2: NOW:"));
        assert_eq!(
            r.environment["spec"]["variables"],
            json!({"OK": "1", "OK2": "2"})
        );
    }

    #[test]
    fn unsupported_lines_are_warnings_not_silence() {
        let (v, warnings) = parse_one(concat!(
            "source ./other.env\n",
            "if [ -z \"$X\" ]; then\n",
            "A=1\n",
            "fi\n",
            "ARR=(a b)\n",
            "B=${A/1/2}\n",
            "C=$1\n",
            "D+=x\n",
            "E=1 some-command\n",
            "F=1 G=2\n",
            "export H\n",
        ));
        assert_eq!(
            v.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            vec!["A", "F", "G"]
        );
        let lines: Vec<&str> = warnings
            .iter()
            .map(|w| w.split(':').next().unwrap_or_default())
            .collect();
        assert_eq!(
            lines,
            vec!["1", "2", "4", "5", "6", "7", "8", "9"],
            "{warnings:#?}"
        );
        assert!(warnings[0].contains("reads another file"));
    }

    #[test]
    fn self_references_take_the_value_of_that_moment() {
        let (v, warnings) = parse_one("P=/bin\nP=$P:/usr/bin\nQ=${P}/x\nP=\"$P:/opt\"\n");
        let v: BTreeMap<_, _> = v.into_iter().collect();
        assert_eq!(v["P"], "/bin:/usr/bin:/opt");
        // Q was assigned when P was /bin:/usr/bin, and P changes after it.
        assert_eq!(v["Q"], "/bin:/usr/bin/x");
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn references_no_file_sets_are_kept_and_warned() {
        let r = import(&[(".env", "DATA=$HOME/data\n")]);
        assert_eq!(
            r.environment["spec"]["variables"]["DATA"],
            json!("${HOME}/data")
        );
        assert_eq!(r.warnings.len(), 1);
        assert!(r.warnings[0].message.contains("none of the files sets"));
    }

    #[test]
    fn extension_and_volume_path_are_warned() {
        let r = import(&[(
            ".env",
            "STACKS=dbs\nDBS_STACK=mongodb\nMONGODB_EXTENSION=mongodb-rs.yml\nMONGODB_VOLUME_PATH=/mnt/data/\nMONGODB_DATA_PATH=/mnt/dump\n",
        )]);
        let messages: Vec<(usize, &str)> = r
            .warnings
            .iter()
            .map(|w| (w.line, w.message.as_str()))
            .collect();
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert_eq!(messages[0].0, 3);
        assert!(messages[0].1.contains("kargo import compose"));
        assert_eq!(messages[1].0, 4);
        let vars = &r.environment["spec"]["variables"];
        assert_eq!(vars.get("MONGODB_EXTENSION"), None);
        assert_eq!(vars["MONGODB_VOLUME_PATH"], json!("/mnt/data/"));
        assert_eq!(vars["MONGODB_DATA_PATH"], json!("/mnt/dump"));
    }

    #[test]
    fn labels_of_a_service_prefix_are_not_taken_for_a_node() {
        let r = import(&[(
            ".env",
            "STACKS=dbs\nDBS_STACK=mongodb\nMONGODB_LABELS=\"a=b\"\nNODE_1_LABELS=\"x=y bad\"\n",
        )]);
        let spec = &r.environment["spec"];
        assert_eq!(spec["nodes"], json!({"node-1": {"labels": {"x": "y"}}}));
        assert_eq!(spec["variables"]["MONGODB_LABELS"], json!("a=b"));
        assert_eq!(r.warnings.len(), 2, "{:?}", r.warnings);
    }

    #[test]
    fn networks_map_to_front_and_back_and_stay_variables() {
        let r = import(&[(
            ".env",
            "DOCKER_FRONT_NETWORK=kaabah\nDOCKER_BACK_NETWORK=kaabah-back\n",
        )]);
        let spec = &r.environment["spec"];
        assert_eq!(
            spec["networks"],
            json!({"front": "kaabah", "back": "kaabah-back"})
        );
        assert_eq!(spec["variables"]["DOCKER_FRONT_NETWORK"], json!("kaabah"));
        let old = import(&[(".env", "DOCKER_NETWORK=kaabah\n")]);
        assert_eq!(
            old.environment["spec"]["networks"],
            json!({"front": "kaabah"})
        );
    }

    #[test]
    fn structural_values_resolve_references_at_import() {
        let r = import(&[(
            ".env",
            "BASE=\"dbs\"\nSTACKS=\"$BASE apps\"\nAPPS_STACK=kano\nN=3\nKANO_REPLICAS=$N\nDBS_STACK=mongodb\n",
        )]);
        let spec = &r.environment["spec"];
        assert_eq!(spec["stacks"], json!(["dbs", "apps"]));
        assert_eq!(spec["services"]["kano"]["replicas"], json!(3));
    }

    #[test]
    fn bad_replicas_and_unknown_stacks_are_warned() {
        let r = import(&[(
            ".env",
            "STACKS=\"apps extra\"\nAPPS_STACK=\"kano Bad_Name\"\nKANO_REPLICAS=two\n",
        )]);
        assert_eq!(r.stacks.len(), 2);
        assert_eq!(r.stacks[0]["spec"]["services"], json!(["kano"]));
        assert_eq!(r.stacks[1]["metadata"]["name"], json!("extra"));
        assert_eq!(
            r.environment["spec"]["variables"]["KANO_REPLICAS"],
            json!("two")
        );
        assert_eq!(r.warnings.len(), 3, "{:?}", r.warnings);
    }

    #[test]
    fn an_invalid_environment_name_is_an_error() {
        let sources = vec![(".env".to_string(), String::new())];
        assert!(matches!(
            import_env_sources(&sources, "Prod"),
            Err(EnvImportError::InvalidName { .. })
        ));
        assert!(matches!(
            import_env_sources(&[], "prod"),
            Err(EnvImportError::NoFiles)
        ));
    }

    #[test]
    fn files_are_read_from_disk_in_order() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let a = dir.path().join(".env.default");
        let b = dir.path().join(".env");
        std::fs::write(&a, "A=1\nB=1\n").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&b, "B=2\n").unwrap_or_else(|e| panic!("{e}"));
        let r = import_env_files(&[a, b], "main").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            r.environment["spec"]["variables"],
            json!({"A": "1", "B": "2"})
        );
        let missing = import_env_files(&[dir.path().join("nope")], "main");
        assert!(matches!(missing, Err(EnvImportError::Read { .. })));
    }

    #[test]
    fn an_unterminated_brace_loses_only_its_line() {
        let (v, warnings) = parse_one("A=${B\nC=1\nD='open\nE=2\n");
        assert_eq!(
            v,
            vec![("C".to_string(), "1".to_string())],
            "the open quote takes the rest of the file, as in bash"
        );
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[1].starts_with("3: D: an unterminated '"));
    }

    #[test]
    fn hostile_input_does_not_panic() {
        for text in [
            "A=\"unterminated\n",
            "A='unterminated",
            "A=${",
            "A=$(",
            "A=`",
            "A=\\",
            "=",
            "A=$",
            "\u{feff}A=1",
            "A=${B:-${C:-",
            "export",
            "A=é$é",
        ] {
            let _ = parse_one(text);
        }
    }
}
