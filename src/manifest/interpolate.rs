//! Compose-style `${VAR}` interpolation over an Environment's variables (docs/design.md, "The three configurations").
//!
//! The syntax is the compose file's:
//!
//! | form | value |
//! | --- | --- |
//! | `${VAR}`, `$VAR` | the variable; when it is not set, an error or an empty string ([`UnsetVariables`]) |
//! | `${VAR:-default}` | the variable, or `default` when it is not set or empty |
//! | `${VAR-default}` | the variable, or `default` when it is not set |
//! | `${VAR:?message}` | the variable; an error carrying `message` when it is not set or empty |
//! | `${VAR?message}` | the variable; an error carrying `message` when it is not set |
//! | `${VAR:+other}` | `other` when the variable is set and not empty, else empty |
//! | `${VAR+other}` | `other` when the variable is set, else empty |
//! | `$$` | a literal `$` |
//!
//! A default (or `other`) may itself hold references: `${A:-${B}}`. A `$` followed by
//! anything else (`$5`, `$(`, a `$` at the end) is an error that says to write `$$`, as
//! compose's is; a default may hold `$$` (`${HASH:-$$2y$$05$$x}` is `$2y$05$x`). What a
//! plain `${VAR}` naming a variable that is not set becomes is the Environment's choice
//! ([`UnsetVariables`]): an error naming it (the default: kargo would rather refuse than
//! deploy `image: ":"`), or an empty string and a warning, as compose and Kargo do (the
//! `_mode` functions). `${VAR:?message}` is an error either way.
//!
//! Interpolation is done in two steps. [`resolve_variables`] turns the Environment's
//! variables, which may reference each other, into literal values (a cycle or a reference
//! to a variable that is not set is an error). [`interpolate_value`] and
//! [`interpolate_str`] then substitute those literal values into manifests and file
//! contents; what is substituted is never scanned again. Every function collects all the
//! errors it finds rather than stopping at the first.
//!
//! Every function here bounds what it builds (see [`crate::manifest::limits`]): one value at
//! most [`MAX_VALUE_BYTES`] (so `V1: "${V0}${V0}"` ... `V40: "${V39}${V39}"` is an error
//! naming the first variable past the bound, not 16 TB of memory), an Environment's
//! variables together at most [`MAX_VARIABLES_BYTES`], and the strings of one value given
//! to [`interpolate_value`] together at most [`MAX_OBJECT_BYTES`]. The length is checked
//! before each piece is appended, so nothing past a bound is ever allocated.

use std::collections::BTreeMap;
use std::fmt;

pub use crate::api::UnsetVariables;

use super::limits::{MAX_OBJECT_BYTES, MAX_VALUE_BYTES, MAX_VARIABLES_BYTES, describe_bytes};

/// How deeply `${A:-${B:-...}}` may nest before the text is refused.
const MAX_NESTING: usize = 32;

/// One problem found while interpolating.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InterpolationError {
    /// A value references a variable that is not set.
    #[error("{path}: variable {variable} is not set")]
    Unset {
        /// JSON pointer of the value (e.g. `/spec/env/DB_URL`).
        path: String,
        /// The variable.
        variable: String,
    },
    /// A value requires (`${VAR:?message}`) a variable that is not set.
    #[error("{path}: variable {variable} is not set: {message}")]
    Required {
        /// JSON pointer of the value.
        path: String,
        /// The variable.
        variable: String,
        /// The message written after `?`.
        message: String,
    },
    /// A value is not valid interpolation syntax.
    #[error("{path}: invalid interpolation at byte {offset}: {reason}")]
    Syntax {
        /// JSON pointer of the value.
        path: String,
        /// Byte offset of the offending `$` in the value.
        offset: usize,
        /// What is wrong and how to write it.
        reason: String,
    },
    /// Variables reference each other in a loop.
    #[error("variables reference each other in a cycle: {}", .variables.join(" -> "))]
    Cycle {
        /// The variables of the loop, the first one repeated at the end.
        variables: Vec<String>,
    },
    /// An interpolated value would pass one of the bounds (what [`Bound`] says).
    #[error("{path}: {}", too_large_text(.variable.as_deref(), *.bound))]
    TooLarge {
        /// JSON pointer of the value (`/spec/variables/NAME` for a variable).
        path: String,
        /// The variable whose substitution would have passed the bound (none: literal text).
        variable: Option<String>,
        /// Which bound.
        bound: Bound,
    },
    /// A variable references another that is not set.
    #[error(
        "variable {referenced_by} references {variable}, which is not set{}",
        .message.as_ref().map(|m| format!(": {m}")).unwrap_or_default()
    )]
    UnresolvedReference {
        /// The variable that is not set.
        variable: String,
        /// The variable whose value references it.
        referenced_by: String,
        /// The message of a `${VAR:?message}` reference, if any.
        message: Option<String>,
    },
}

/// Which bound an interpolated value would have passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// One value: [`MAX_VALUE_BYTES`].
    Value,
    /// An Environment's variables together: [`MAX_VARIABLES_BYTES`].
    Variables,
    /// The strings of one object together: [`MAX_OBJECT_BYTES`].
    Object,
}

impl Bound {
    /// The bound in bytes.
    pub fn limit(self) -> usize {
        match self {
            Bound::Value => MAX_VALUE_BYTES,
            Bound::Variables => MAX_VARIABLES_BYTES,
            Bound::Object => MAX_OBJECT_BYTES,
        }
    }
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let limit = describe_bytes(self.limit());
        match self {
            Bound::Value => write!(
                f,
                "one value may hold at most {limit}, Swarm's limit on a config or secret"
            ),
            Bound::Variables => write!(
                f,
                "an Environment's variables together may hold at most {limit} once resolved"
            ),
            Bound::Object => write!(
                f,
                "the strings of one object together may hold at most {limit}, etcd's limit on a request"
            ),
        }
    }
}

/// The message of [`InterpolationError::TooLarge`], after its path.
fn too_large_text(variable: Option<&str>, bound: Bound) -> String {
    let at = variable.map_or_else(
        || " (its text alone)".to_string(),
        |v| format!(" once ${{{v}}} is substituted"),
    );
    format!(
        "the value would be more than {}{at}; {bound}",
        describe_bytes(bound.limit())
    )
}

impl InterpolationError {
    /// The variable the error is about (the first of a cycle); none for a syntax error.
    pub fn variable(&self) -> Option<&str> {
        match self {
            InterpolationError::Unset { variable, .. }
            | InterpolationError::Required { variable, .. }
            | InterpolationError::UnresolvedReference { variable, .. } => Some(variable),
            InterpolationError::Cycle { variables } => variables.first().map(String::as_str),
            InterpolationError::TooLarge { variable, .. } => variable.as_deref(),
            InterpolationError::Syntax { .. } => None,
        }
    }

    /// The JSON pointer of the value the error is in, when it is about one value.
    pub fn path(&self) -> Option<&str> {
        match self {
            InterpolationError::Unset { path, .. }
            | InterpolationError::Required { path, .. }
            | InterpolationError::Syntax { path, .. }
            | InterpolationError::TooLarge { path, .. } => Some(path),
            InterpolationError::Cycle { .. } | InterpolationError::UnresolvedReference { .. } => {
                None
            }
        }
    }

    /// The message without the pointer it starts with, for reports that place the error
    /// themselves.
    pub fn message(&self) -> String {
        let text = self.to_string();
        match self.path() {
            Some(path) => text
                .strip_prefix(path)
                .and_then(|t| t.strip_prefix(": "))
                .map_or_else(|| text.clone(), str::to_string),
            None => text,
        }
    }

    /// The entry for an Environment's `status.unresolved`: `VAR` or `VAR (in OTHER)`.
    pub fn unresolved_entry(&self) -> Option<String> {
        match self {
            InterpolationError::UnresolvedReference {
                variable,
                referenced_by,
                ..
            } => Some(format!("{variable} (in {referenced_by})")),
            InterpolationError::Unset { variable, .. }
            | InterpolationError::Required { variable, .. } => Some(variable.clone()),
            InterpolationError::Cycle { .. }
            | InterpolationError::Syntax { .. }
            | InterpolationError::TooLarge { .. } => None,
        }
    }
}

/// Appends one key to a JSON pointer, escaping `~` and `/` as RFC 6901 says.
pub fn pointer_push(path: &str, key: &str) -> String {
    format!("{path}/{}", key.replace('~', "~0").replace('/', "~1"))
}

/// Resolves variables that may reference each other into literal values.
///
/// Each value is a template (`SUBDOMAIN: "kargo.${DOMAIN}"`); the result holds every
/// variable with its references substituted and `$$` turned into `$`. Errors: a cycle
/// (named once, with its members in order), a reference to a variable that is not set
/// (naming both variables), and syntax errors (with the pointer `/spec/variables/NAME`).
/// A variable that fails only because one it references failed is not reported again.
pub fn resolve_variables(
    vars: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, Vec<InterpolationError>> {
    let (resolved, errors) = resolve_variables_partial(vars);
    if errors.is_empty() {
        Ok(resolved)
    } else {
        Err(errors)
    }
}

/// Like [`resolve_variables`], but returns the variables that did resolve along with the
/// errors, so a caller can go on with what it has.
pub fn resolve_variables_partial(
    vars: &BTreeMap<String, String>,
) -> (BTreeMap<String, String>, Vec<InterpolationError>) {
    let (resolved, errors, _) = resolve_variables_mode(vars, UnsetVariables::Error);
    (resolved, errors)
}

/// Like [`resolve_variables_partial`], with `unset` saying what a reference to a variable
/// that is not set becomes. Under [`UnsetVariables::Empty`] it is an empty string, listed in
/// the third part as [`InterpolationError::UnresolvedReference`]s (warnings, not errors).
pub fn resolve_variables_mode(
    vars: &BTreeMap<String, String>,
    unset: UnsetVariables,
) -> (
    BTreeMap<String, String>,
    Vec<InterpolationError>,
    Vec<InterpolationError>,
) {
    let mut warnings = Vec::new();
    #[derive(Clone)]
    enum State {
        Pending,
        InProgress,
        Done(Option<String>),
    }

    let mut state: BTreeMap<&str, State> =
        vars.keys().map(|k| (k.as_str(), State::Pending)).collect();
    let mut errors = Vec::new();
    // What the resolved values hold together, so many variables each under the bound of
    // one value cannot add up to more memory than an Environment may take.
    let mut total = 0usize;

    for root in vars.keys() {
        if !matches!(state.get(root.as_str()), Some(State::Pending)) {
            continue;
        }
        // Explicit stack instead of recursion: a long chain of references cannot
        // overflow the call stack.
        let mut stack: Vec<&str> = vec![root.as_str()];
        while let Some(&current) = stack.last() {
            state.insert(current, State::InProgress);
            let template = vars.get(current).map(String::as_str).unwrap_or_default();
            let left = MAX_VARIABLES_BYTES.saturating_sub(total);
            let bound = if left < MAX_VALUE_BYTES {
                Bound::Variables
            } else {
                Bound::Value
            };
            let mut need: Option<&str> = None;
            let mut cycle: Option<Vec<String>> = None;
            let outcome = {
                let mut lookup = |name: &str| -> Lookup {
                    let Some((key, _)) = vars.get_key_value(name) else {
                        return Lookup::Unset;
                    };
                    match state.get(name) {
                        Some(State::Done(Some(v))) => Lookup::Value(v.clone()),
                        Some(State::Done(None)) => Lookup::Failed,
                        Some(State::InProgress) => {
                            if cycle.is_none() {
                                let start = stack.iter().position(|s| *s == name).unwrap_or(0);
                                let mut members: Vec<String> =
                                    stack[start..].iter().map(|s| s.to_string()).collect();
                                members.push(name.to_string());
                                cycle = Some(members);
                            }
                            Lookup::Failed
                        }
                        Some(State::Pending) | None => {
                            if need.is_none() {
                                need = Some(key.as_str());
                            }
                            Lookup::Failed
                        }
                    }
                };
                let (outcome, empty) =
                    evaluate_mode(template, &mut lookup, bound.limit().min(left), unset);
                (outcome, empty)
            };
            let (outcome, empty) = outcome;
            if let Some(next) = need {
                // Resolve the dependency first, then evaluate `current` again.
                stack.push(next);
                continue;
            }
            let path = pointer_push("/spec/variables", current);
            warnings.extend(empty.into_iter().map(|variable| {
                InterpolationError::UnresolvedReference {
                    variable,
                    referenced_by: current.to_string(),
                    message: None,
                }
            }));
            let value = match outcome {
                Ok(v) => Some(v),
                Err(issues) => {
                    for issue in issues {
                        errors.push(match issue {
                            Issue::Unset(variable) => InterpolationError::UnresolvedReference {
                                variable,
                                referenced_by: current.to_string(),
                                message: None,
                            },
                            Issue::Required(variable, message) => {
                                InterpolationError::UnresolvedReference {
                                    variable,
                                    referenced_by: current.to_string(),
                                    message: Some(message),
                                }
                            }
                            Issue::Syntax(offset, reason) => InterpolationError::Syntax {
                                path: path.clone(),
                                offset,
                                reason,
                            },
                            Issue::TooLarge(variable) => InterpolationError::TooLarge {
                                path: path.clone(),
                                variable,
                                bound,
                            },
                        });
                    }
                    if let Some(variables) = cycle {
                        errors.push(InterpolationError::Cycle { variables });
                    }
                    None
                }
            };
            total = total.saturating_add(value.as_ref().map_or(0, String::len));
            state.insert(current, State::Done(value));
            stack.pop();
        }
    }

    let resolved = state
        .into_iter()
        .filter_map(|(k, s)| match s {
            State::Done(Some(v)) => Some((k.to_string(), v)),
            _ => None,
        })
        .collect();
    (resolved, errors, warnings)
}

/// Interpolates every string value in `value`, recursively through maps and lists.
///
/// `vars` are literal values (the output of [`resolve_variables`]). Map keys, numbers,
/// booleans and nulls are left as they are. `path` is the JSON pointer of `value` itself
/// (`""` for a whole document, `/spec` for a spec); each error names the pointer of the
/// string it is in and the variable. All errors are returned, not only the first.
pub fn interpolate_value(
    value: &serde_json::Value,
    vars: &BTreeMap<String, String>,
    path: &str,
) -> Result<serde_json::Value, Vec<InterpolationError>> {
    interpolate_value_mode(value, vars, path, UnsetVariables::Error).map(|(v, _)| v)
}

/// [`interpolate_value`] with `unset` saying what a reference to a variable that is not set
/// becomes. Under [`UnsetVariables::Empty`] it is an empty string, and the second part of
/// the result lists each such reference as an [`InterpolationError::Unset`] (a warning:
/// the value was interpolated).
pub fn interpolate_value_mode(
    value: &serde_json::Value,
    vars: &BTreeMap<String, String>,
    path: &str,
    unset: UnsetVariables,
) -> Result<(serde_json::Value, Vec<InterpolationError>), Vec<InterpolationError>> {
    let mut errors = Vec::new();
    let mut ctx = Walk {
        vars,
        unset,
        left: MAX_OBJECT_BYTES,
        errors: &mut errors,
        warnings: Vec::new(),
    };
    let out = ctx.walk(value, path);
    let warnings = ctx.warnings;
    if errors.is_empty() {
        Ok((out, warnings))
    } else {
        Err(errors)
    }
}

/// State of one [`interpolate_value_mode`] walk.
struct Walk<'a> {
    vars: &'a BTreeMap<String, String>,
    unset: UnsetVariables,
    /// What the strings may still hold together.
    left: usize,
    errors: &'a mut Vec<InterpolationError>,
    warnings: Vec<InterpolationError>,
}

impl Walk<'_> {
    fn walk(&mut self, value: &serde_json::Value, path: &str) -> serde_json::Value {
        use serde_json::Value;
        match value {
            Value::String(s) => {
                let bound = if self.left < MAX_VALUE_BYTES {
                    Bound::Object
                } else {
                    Bound::Value
                };
                let limit = self.left.min(MAX_VALUE_BYTES);
                match interpolate_mode(s, self.vars, path, bound, limit, self.unset) {
                    Ok((v, empty)) => {
                        self.left = self.left.saturating_sub(v.len());
                        self.warnings.extend(empty.into_iter().map(|variable| {
                            InterpolationError::Unset {
                                path: path.to_string(),
                                variable,
                            }
                        }));
                        Value::String(v)
                    }
                    Err(mut e) => {
                        self.errors.append(&mut e);
                        value.clone()
                    }
                }
            }
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| self.walk(v, &format!("{path}/{i}")))
                    .collect(),
            ),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), self.walk(v, &pointer_push(path, k))))
                    .collect(),
            ),
            Value::Null | Value::Bool(_) | Value::Number(_) => value.clone(),
        }
    }
}

/// Interpolates one string (a value, or a whole file's content); `path` names it in errors.
/// The result holds at most [`MAX_VALUE_BYTES`].
pub fn interpolate_str(
    text: &str,
    vars: &BTreeMap<String, String>,
    path: &str,
) -> Result<String, Vec<InterpolationError>> {
    interpolate_within(text, vars, path, Bound::Value, MAX_VALUE_BYTES)
}

/// [`interpolate_str`] with `unset` saying what a reference to a variable that is not set
/// becomes; also returns the variables substituted as empty strings, once each.
pub fn interpolate_str_mode(
    text: &str,
    vars: &BTreeMap<String, String>,
    path: &str,
    unset: UnsetVariables,
) -> Result<(String, Vec<String>), Vec<InterpolationError>> {
    interpolate_mode(text, vars, path, Bound::Value, MAX_VALUE_BYTES, unset)
}

/// [`interpolate_str`] with at most `limit` bytes of result, `bound` naming the limit.
fn interpolate_within(
    text: &str,
    vars: &BTreeMap<String, String>,
    path: &str,
    bound: Bound,
    limit: usize,
) -> Result<String, Vec<InterpolationError>> {
    interpolate_mode(text, vars, path, bound, limit, UnsetVariables::Error).map(|(v, _)| v)
}

/// [`interpolate_within`] under `unset`, returning the variables substituted as empty.
fn interpolate_mode(
    text: &str,
    vars: &BTreeMap<String, String>,
    path: &str,
    bound: Bound,
    limit: usize,
    unset: UnsetVariables,
) -> Result<(String, Vec<String>), Vec<InterpolationError>> {
    let mut lookup = |name: &str| match vars.get(name) {
        Some(v) => Lookup::Value(v.clone()),
        None => Lookup::Unset,
    };
    let (outcome, empty) = evaluate_mode(text, &mut lookup, limit, unset);
    outcome.map(|v| (v, empty)).map_err(|issues| {
        issues
            .into_iter()
            .map(|issue| match issue {
                Issue::Unset(variable) => InterpolationError::Unset {
                    path: path.to_string(),
                    variable,
                },
                Issue::Required(variable, message) => InterpolationError::Required {
                    path: path.to_string(),
                    variable,
                    message,
                },
                Issue::Syntax(offset, reason) => InterpolationError::Syntax {
                    path: path.to_string(),
                    offset,
                    reason,
                },
                Issue::TooLarge(variable) => InterpolationError::TooLarge {
                    path: path.to_string(),
                    variable,
                    bound,
                },
            })
            .collect()
    })
}

/// The names of the variables a template references (defaults' references included), in
/// order of appearance, each once. Syntax errors are ignored.
pub fn referenced_variables(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut names: Vec<String> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        let start = match bytes.get(i + 1) {
            Some(b'$') => {
                i += 2;
                continue;
            }
            Some(b'{') => i + 2,
            _ => i + 1,
        };
        let mut j = start;
        if j < bytes.len() && is_name_start(bytes[j]) {
            while j < bytes.len() && is_name_char(bytes[j]) {
                j += 1;
            }
            let name = &text[start..j];
            if !names.iter().any(|n| n == name) {
                names.push(name.to_string());
            }
        }
        i = j.max(i + 1);
    }
    names
}

/// Whether a string holds anything interpolation would change (`$` anywhere).
pub fn has_interpolation(text: &str) -> bool {
    text.contains('$')
}

/// Escapes a literal so interpolation gives it back unchanged (`$` → `$$`).
pub fn escape(text: &str) -> String {
    text.replace('$', "$$")
}

/// What a variable lookup found.
pub(crate) enum Lookup {
    /// The variable's literal value.
    Value(String),
    /// No such variable.
    Unset,
    /// The variable exists but could not be resolved; the cause was reported elsewhere.
    Failed,
}

/// A problem found by [`evaluate_mode`], before it is given a path.
#[derive(Debug)]
enum Issue {
    Unset(String),
    Required(String, String),
    Syntax(usize, String),
    /// The output would pass its limit: at this variable's substitution (none: literal text).
    TooLarge(Option<String>),
}

/// The operator of a braced reference.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    /// `:-`
    DefaultIfEmpty,
    /// `-`
    DefaultIfUnset,
    /// `:?`
    RequireNonEmpty,
    /// `?`
    RequireSet,
    /// `:+`
    AlternativeIfNonEmpty,
    /// `+`
    AlternativeIfSet,
}

/// Evaluates a template into at most `limit` bytes; returns the text or every issue found,
/// and the variables substituted as empty strings (`unset` says what a reference to a
/// variable that is not set becomes). Past the limit evaluation stops at once (one
/// [`Issue::TooLarge`]).
fn evaluate_mode(
    text: &str,
    lookup: &mut dyn FnMut(&str) -> Lookup,
    limit: usize,
    unset: UnsetVariables,
) -> (Result<String, Vec<Issue>>, Vec<String>) {
    let mut eval = Evaluator {
        lookup,
        unset,
        empty: Vec::new(),
        issues: Vec::new(),
        failed: false,
        over: None,
    };
    let out = eval.run(text, 0, 0, limit);
    if let Some(variable) = eval.over {
        eval.issues.push(Issue::TooLarge(variable));
    }
    let result = if eval.issues.is_empty() && !eval.failed {
        Ok(out)
    } else {
        Err(eval.issues)
    };
    (result, eval.empty)
}

struct Evaluator<'l> {
    lookup: &'l mut dyn FnMut(&str) -> Lookup,
    /// What a plain reference to a variable that is not set becomes.
    unset: UnsetVariables,
    /// Variables substituted as empty strings ([`UnsetVariables::Empty`]), in order, once each.
    empty: Vec<String>,
    issues: Vec<Issue>,
    failed: bool,
    /// Set when the output would have passed its limit: the variable being substituted then.
    over: Option<Option<String>>,
}

fn is_name_start(b: u8) -> bool {
    b == b'_' || b.is_ascii_alphabetic()
}

fn is_name_char(b: u8) -> bool {
    b == b'_' || b.is_ascii_alphanumeric()
}

/// The index of the `}` closing a `${` whose content starts at `from`, skipping `$$` and
/// nested `${...}`.
fn find_closing(bytes: &[u8], from: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'$') => i += 2,
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 2;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => {
                depth -= 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    None
}

/// A short quote of the text at a byte offset, for error messages.
fn snippet(text: &str, at: usize) -> String {
    let rest = text.get(at..).unwrap_or_default();
    let s: String = rest.chars().take(12).collect();
    if rest.chars().count() > 12 {
        format!("{s}...")
    } else {
        s
    }
}

impl Evaluator<'_> {
    /// Appends `piece` to `out` when `out` stays within `limit` bytes; otherwise records
    /// that the output is too large (at `variable`) and appends nothing.
    fn append(&mut self, out: &mut String, piece: &str, limit: usize, variable: Option<&str>) {
        if self.over.is_some() {
            return;
        }
        if out.len().saturating_add(piece.len()) > limit {
            self.over = Some(variable.map(str::to_string));
            return;
        }
        out.push_str(piece);
    }

    /// Evaluates `text` into at most `limit` bytes; `base` is its byte offset in the
    /// outermost text (for errors).
    fn run(&mut self, text: &str, base: usize, depth: usize, limit: usize) -> String {
        let bytes = text.as_bytes();
        let mut out = String::with_capacity(text.len().min(limit));
        let mut i = 0;
        let mut literal_start = 0;
        while i < bytes.len() && self.over.is_none() {
            if bytes[i] != b'$' {
                i += 1;
                continue;
            }
            self.append(&mut out, &text[literal_start..i], limit, None);
            let dollar = i;
            match bytes.get(i + 1).copied() {
                Some(b'$') => {
                    self.append(&mut out, "$", limit, None);
                    i += 2;
                }
                Some(b'{') => {
                    i = self.braced(text, dollar, base, depth, limit, &mut out);
                }
                Some(b) if is_name_start(b) => {
                    let mut j = i + 1;
                    while j < bytes.len() && is_name_char(bytes[j]) {
                        j += 1;
                    }
                    let name = &text[i + 1..j];
                    self.substitute(name, None, "", base + i, depth, limit, &mut out);
                    i = j;
                }
                Some(b'(') => {
                    // The shell's `$(cmd)` and `$((i+1))`: say how to pass them through.
                    let opening = if bytes.get(i + 2) == Some(&b'(') {
                        "(("
                    } else {
                        "("
                    };
                    self.issues.push(Issue::Syntax(
                        base + dollar,
                        format!(
                            "`${opening}` is not interpolation: write `$${opening}` so the command gets a literal `${opening}`"
                        ),
                    ));
                    i += 1;
                }
                Some(_) => {
                    self.issues.push(Issue::Syntax(
                        base + dollar,
                        format!(
                            "`$` is followed by {:?}: write `$$` for a literal dollar sign, or `${{NAME}}` for a variable",
                            snippet(text, dollar + 1)
                        ),
                    ));
                    i += 1;
                }
                None => {
                    self.issues.push(Issue::Syntax(
                        base + dollar,
                        "a `$` ends the text: write `$$` for a literal dollar sign".to_string(),
                    ));
                    i += 1;
                }
            }
            literal_start = i;
        }
        if let Some(rest) = text.get(literal_start..) {
            self.append(&mut out, rest, limit, None);
        }
        out
    }

    /// Handles `${...}` starting at `dollar`; returns the index after it.
    fn braced(
        &mut self,
        text: &str,
        dollar: usize,
        base: usize,
        depth: usize,
        limit: usize,
        out: &mut String,
    ) -> usize {
        let bytes = text.as_bytes();
        let content = dollar + 2;
        let Some(close) = find_closing(bytes, content) else {
            self.issues.push(Issue::Syntax(
                base + dollar,
                format!("{:?} has no closing `}}`", snippet(text, dollar)),
            ));
            return bytes.len();
        };
        let mut j = content;
        if j < close && is_name_start(bytes[j]) {
            j += 1;
            while j < close && is_name_char(bytes[j]) {
                j += 1;
            }
        }
        let name = &text[content..j];
        if name.is_empty() {
            self.issues.push(Issue::Syntax(
                base + dollar,
                format!(
                    "{:?} does not start with a variable name (letters, digits and `_`, not starting with a digit)",
                    &text[dollar..=close]
                ),
            ));
            return close + 1;
        }
        let rest = &text[j..close];
        let (op, word_start) = if rest.is_empty() {
            (None, j)
        } else if rest.starts_with(":-") {
            (Some(Op::DefaultIfEmpty), j + 2)
        } else if rest.starts_with(":?") {
            (Some(Op::RequireNonEmpty), j + 2)
        } else if rest.starts_with(":+") {
            (Some(Op::AlternativeIfNonEmpty), j + 2)
        } else if rest.starts_with('-') {
            (Some(Op::DefaultIfUnset), j + 1)
        } else if rest.starts_with('?') {
            (Some(Op::RequireSet), j + 1)
        } else if rest.starts_with('+') {
            (Some(Op::AlternativeIfSet), j + 1)
        } else {
            self.issues.push(Issue::Syntax(
                base + dollar,
                format!(
                    "{:?}: after the name expected `}}`, `:-`, `-`, `:?`, `?`, `:+` or `+`",
                    &text[dollar..=close]
                ),
            ));
            return close + 1;
        };
        let word = &text[word_start..close];
        self.substitute(name, op, word, base + word_start, depth, limit, out);
        close + 1
    }

    /// Substitutes one reference; `word` (at `word_base`) is the text after the operator.
    #[allow(clippy::too_many_arguments)]
    fn substitute(
        &mut self,
        name: &str,
        op: Option<Op>,
        word: &str,
        word_base: usize,
        depth: usize,
        limit: usize,
        out: &mut String,
    ) {
        let found = (self.lookup)(name);
        let (set, non_empty, value) = match found {
            Lookup::Failed => {
                self.failed = true;
                return;
            }
            Lookup::Unset => (false, false, String::new()),
            Lookup::Value(v) => (true, !v.is_empty(), v),
        };
        match op {
            None => {
                if set {
                    self.append(out, &value, limit, Some(name));
                } else if self.unset == UnsetVariables::Empty {
                    if !self.empty.iter().any(|n| n == name) {
                        self.empty.push(name.to_string());
                    }
                } else {
                    self.issues.push(Issue::Unset(name.to_string()));
                }
            }
            Some(Op::DefaultIfEmpty) | Some(Op::DefaultIfUnset) => {
                let use_value = if op == Some(Op::DefaultIfEmpty) {
                    non_empty
                } else {
                    set
                };
                if use_value {
                    self.append(out, &value, limit, Some(name));
                } else {
                    let room = limit.saturating_sub(out.len());
                    let w = self.nested(word, word_base, depth, room);
                    self.append(out, &w, limit, None);
                }
            }
            Some(Op::RequireNonEmpty) | Some(Op::RequireSet) => {
                let ok = if op == Some(Op::RequireNonEmpty) {
                    non_empty
                } else {
                    set
                };
                if ok {
                    self.append(out, &value, limit, Some(name));
                } else {
                    let message = if word.is_empty() {
                        "required".to_string()
                    } else {
                        word.to_string()
                    };
                    self.issues.push(Issue::Required(name.to_string(), message));
                }
            }
            Some(Op::AlternativeIfNonEmpty) | Some(Op::AlternativeIfSet) => {
                let use_word = if op == Some(Op::AlternativeIfNonEmpty) {
                    non_empty
                } else {
                    set
                };
                if use_word {
                    let room = limit.saturating_sub(out.len());
                    let w = self.nested(word, word_base, depth, room);
                    self.append(out, &w, limit, None);
                }
            }
        }
    }

    fn nested(&mut self, word: &str, word_base: usize, depth: usize, limit: usize) -> String {
        if depth + 1 >= MAX_NESTING {
            self.issues.push(Issue::Syntax(
                word_base,
                format!("references nest more than {MAX_NESTING} deep"),
            ));
            return String::new();
        }
        self.run(word, word_base, depth + 1, limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn interp(text: &str, pairs: &[(&str, &str)]) -> Result<String, Vec<InterpolationError>> {
        interpolate_str(text, &vars(pairs), "/x")
    }

    #[test]
    fn braced_and_bare_references_are_substituted() {
        let v = [("DOMAIN", "kalisio.xyz"), ("S", "kargo")];
        assert_eq!(
            interp("${S}.$DOMAIN/x", &v).ok().as_deref(),
            Some("kargo.kalisio.xyz/x")
        );
        // A bare name stops at the first character that cannot be part of a name.
        assert_eq!(interp("$S-1", &v).ok().as_deref(), Some("kargo-1"));
    }

    #[test]
    fn double_dollar_is_a_literal_dollar_and_is_not_rescanned() {
        let v = [("A", "$B")];
        assert_eq!(interp("$$A", &v).ok().as_deref(), Some("$A"));
        assert_eq!(interp("${A}", &v).ok().as_deref(), Some("$B"));
        assert_eq!(interp("($$|/)", &v).ok().as_deref(), Some("($|/)"));
    }

    #[test]
    fn colon_dash_default_applies_when_unset_or_empty() {
        assert_eq!(interp("${A:-d}", &[]).ok().as_deref(), Some("d"));
        assert_eq!(interp("${A:-d}", &[("A", "")]).ok().as_deref(), Some("d"));
        assert_eq!(interp("${A:-d}", &[("A", "a")]).ok().as_deref(), Some("a"));
    }

    #[test]
    fn dash_default_applies_only_when_unset() {
        assert_eq!(interp("${A-d}", &[]).ok().as_deref(), Some("d"));
        assert_eq!(interp("${A-d}", &[("A", "")]).ok().as_deref(), Some(""));
    }

    #[test]
    fn defaults_may_hold_references() {
        let v = [("B", "b")];
        assert_eq!(interp("${A:-x${B}y}", &v).ok().as_deref(), Some("xby"));
        assert_eq!(interp("${A:-${C:-${B}}}", &v).ok().as_deref(), Some("b"));
        // The default is not evaluated when the variable is set.
        assert_eq!(interp("${B:-${MISSING}}", &v).ok().as_deref(), Some("b"));
    }

    #[test]
    fn question_forms_fail_with_the_message() {
        let e = interp("${PASSWORD:?set PASSWORD please}", &[]).err();
        assert_eq!(
            e,
            Some(vec![InterpolationError::Required {
                path: "/x".into(),
                variable: "PASSWORD".into(),
                message: "set PASSWORD please".into(),
            }])
        );
        assert!(interp("${P:?m}", &[("P", "")]).is_err());
        assert_eq!(interp("${P?m}", &[("P", "")]).ok().as_deref(), Some(""));
        assert!(interp("${P?m}", &[]).is_err());
    }

    #[test]
    fn plus_forms_give_the_alternative_when_set() {
        assert_eq!(
            interp("${A:+yes}", &[("A", "1")]).ok().as_deref(),
            Some("yes")
        );
        assert_eq!(interp("${A:+yes}", &[("A", "")]).ok().as_deref(), Some(""));
        assert_eq!(
            interp("${A+yes}", &[("A", "")]).ok().as_deref(),
            Some("yes")
        );
        assert_eq!(interp("${A+yes}", &[]).ok().as_deref(), Some(""));
    }

    #[test]
    fn unset_variable_is_an_error_naming_path_and_variable() {
        let e = interp("${NOPE}", &[]).err().unwrap_or_default();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].to_string(), "/x: variable NOPE is not set");
    }

    #[test]
    fn every_error_in_a_string_is_reported() {
        let e = interp("$A ${B} ${C:?c} $", &[]).err().unwrap_or_default();
        assert_eq!(e.len(), 4, "{e:?}");
        assert_eq!(e[0].variable(), Some("A"));
        assert_eq!(e[1].variable(), Some("B"));
        assert_eq!(e[2].variable(), Some("C"));
        assert!(matches!(
            e[3],
            InterpolationError::Syntax { offset: 16, .. }
        ));
    }

    #[test]
    fn malformed_references_are_syntax_errors() {
        for bad in [
            "${", "${A", "${}", "${1A}", "${A B}", "$(date)", "cost: 5$", "${A:=x}",
        ] {
            let e = interp(bad, &[("A", "a")]).err().unwrap_or_default();
            assert!(
                matches!(e.first(), Some(InterpolationError::Syntax { .. })),
                "{bad}: {e:?}"
            );
        }
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing() {
        let text = format!("{}x{}", "${A:-".repeat(10_000), "}".repeat(10_000));
        let e = interp(&text, &[]).err().unwrap_or_default();
        assert!(matches!(e.first(), Some(InterpolationError::Syntax { .. })));
    }

    #[test]
    fn values_interpolate_strings_only_and_keep_keys() {
        let v = vars(&[("TAG", "4.2"), ("K", "nope")]);
        let value = json!({
            "image": "mongo:${TAG}",
            "${K}": "key untouched",
            "deploy": {"replicas": 2, "x": true, "n": null},
            "args": ["a", "${TAG}"]
        });
        let out = interpolate_value(&value, &v, "/spec").ok();
        assert_eq!(
            out,
            Some(json!({
                "image": "mongo:4.2",
                "${K}": "key untouched",
                "deploy": {"replicas": 2, "x": true, "n": null},
                "args": ["a", "4.2"]
            }))
        );
    }

    #[test]
    fn value_errors_name_json_pointers_and_are_all_collected() {
        let value = json!({
            "env": {"DB_URL": "${DB}", "a/b": "${X}"},
            "args": ["ok", "${Y}"]
        });
        let e = interpolate_value(&value, &BTreeMap::new(), "/spec")
            .err()
            .unwrap_or_default();
        let rendered: Vec<String> = e.iter().map(ToString::to_string).collect();
        assert_eq!(
            rendered,
            vec![
                "/spec/args/1: variable Y is not set",
                "/spec/env/DB_URL: variable DB is not set",
                "/spec/env/a~1b: variable X is not set",
            ]
        );
    }

    #[test]
    fn variables_resolve_through_each_other() {
        let v = vars(&[
            ("DOMAIN", "kalisio.xyz"),
            ("SUBDOMAIN", "kargo.$DOMAIN"),
            ("URL", "https://api.${SUBDOMAIN}"),
            ("HASH", "$$apr1$$x"),
        ]);
        let r = resolve_variables(&v).unwrap_or_default();
        assert_eq!(r["SUBDOMAIN"], "kargo.kalisio.xyz");
        assert_eq!(r["URL"], "https://api.kargo.kalisio.xyz");
        assert_eq!(r["HASH"], "$apr1$x");
    }

    #[test]
    fn a_cycle_is_one_error_naming_its_members() {
        let v = vars(&[
            ("A", "${B}"),
            ("B", "x${C}"),
            ("C", "$A"),
            ("D", "${A}"),
            ("E", "e"),
        ]);
        let (ok, errors) = resolve_variables_partial(&v);
        assert_eq!(
            errors,
            vec![InterpolationError::Cycle {
                variables: vec!["A".into(), "B".into(), "C".into(), "A".into()]
            }]
        );
        assert_eq!(
            errors[0].to_string(),
            "variables reference each other in a cycle: A -> B -> C -> A"
        );
        assert_eq!(ok.keys().collect::<Vec<_>>(), vec!["E"]);
    }

    #[test]
    fn a_self_reference_is_a_cycle() {
        let e = resolve_variables(&vars(&[("PATH", "$PATH:/x")]))
            .err()
            .unwrap_or_default();
        assert_eq!(
            e,
            vec![InterpolationError::Cycle {
                variables: vec!["PATH".into(), "PATH".into()]
            }]
        );
    }

    #[test]
    fn an_unset_reference_names_the_variable_and_who_referenced_it() {
        let v = vars(&[("A", "${MISSING}"), ("B", "$A"), ("C", "${GONE:?set GONE}")]);
        let e = resolve_variables(&v).err().unwrap_or_default();
        assert_eq!(
            e.iter().map(ToString::to_string).collect::<Vec<_>>(),
            vec![
                "variable A references MISSING, which is not set",
                "variable C references GONE, which is not set: set GONE",
            ]
        );
        assert_eq!(e[0].unresolved_entry().as_deref(), Some("MISSING (in A)"));
    }

    #[test]
    fn defaults_in_variables_cover_unset_references() {
        let v = vars(&[("A", "${NOPE:-fallback}"), ("B", "${A:+on}")]);
        let r = resolve_variables(&v).unwrap_or_default();
        assert_eq!(r["A"], "fallback");
        assert_eq!(r["B"], "on");
    }

    #[test]
    fn long_reference_chains_resolve_without_recursion() {
        let mut v = BTreeMap::new();
        for i in 0..20_000 {
            v.insert(format!("V{i:05}"), format!("${{V{:05}}}", i + 1));
        }
        v.insert("V20000".to_string(), "end".to_string());
        let r = resolve_variables(&v).unwrap_or_default();
        assert_eq!(r.get("V00000").map(String::as_str), Some("end"));
    }

    #[test]
    fn syntax_errors_in_variables_name_their_pointer() {
        let e = resolve_variables(&vars(&[("A", "5$")]))
            .err()
            .unwrap_or_default();
        assert!(matches!(
            &e[0],
            InterpolationError::Syntax { path, .. } if path == "/spec/variables/A"
        ));
    }

    #[test]
    fn referenced_variables_lists_nested_names_once() {
        assert_eq!(
            referenced_variables("$A ${B:-${C}} ${A} $$D ${E+$F}"),
            vec![
                "A".to_string(),
                "B".into(),
                "C".into(),
                "E".into(),
                "F".into()
            ]
        );
    }

    /// The Environment of the "1 KB manifest exhausts memory" report: each variable twice
    /// the one before, 16 bytes doubled 40 times.
    fn doubling(n: usize) -> BTreeMap<String, String> {
        let mut v = BTreeMap::new();
        v.insert("V0".to_string(), "x".repeat(16));
        for i in 1..=n {
            v.insert(format!("V{i}"), format!("${{V{}}}${{V{}}}", i - 1, i - 1));
        }
        v
    }

    #[test]
    fn a_doubling_bomb_stops_at_the_first_variable_past_500_kb() {
        let started = std::time::Instant::now();
        let (resolved, errors) = resolve_variables_partial(&doubling(40));
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        // 16 * 2^14 = 256 KiB fits; V15 would be 512 KiB.
        assert_eq!(resolved.get("V14").map(String::len), Some(16 << 14));
        assert!(!resolved.contains_key("V15"));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(
            errors[0].to_string(),
            "/spec/variables/V15: the value would be more than 500 KB (512000 bytes) once ${V14} is substituted; one value may hold at most 500 KB (512000 bytes), Swarm's limit on a config or secret"
        );
        assert_eq!(errors[0].variable(), Some("V14"));
    }

    #[test]
    fn a_value_just_under_the_bound_resolves_and_interpolates() {
        let big = "y".repeat(MAX_VALUE_BYTES - 2);
        let v = vars(&[("BIG", &big), ("B", "${BIG}ab")]);
        let r = resolve_variables(&v).unwrap_or_default();
        assert_eq!(r.get("B").map(String::len), Some(MAX_VALUE_BYTES));
        assert_eq!(
            interpolate_str("${B}", &r, "/x").map(|s| s.len()),
            Ok(MAX_VALUE_BYTES)
        );
        let e = interpolate_str("${B}!", &r, "/x").err().unwrap_or_default();
        assert!(matches!(
            &e[..],
            [InterpolationError::TooLarge {
                bound: Bound::Value,
                variable: None,
                ..
            }]
        ));
    }

    #[test]
    fn many_values_each_under_the_bound_cannot_add_up_past_8_mib() {
        let mut v = BTreeMap::new();
        v.insert("A".to_string(), "z".repeat(400 * 1024));
        for i in 0..40 {
            v.insert(format!("C{i:02}"), "${A}".to_string());
        }
        let (resolved, errors) = resolve_variables_partial(&v);
        let total: usize = resolved.values().map(String::len).sum();
        assert!(total <= MAX_VARIABLES_BYTES);
        assert!(errors.iter().all(|e| matches!(
            e,
            InterpolationError::TooLarge {
                bound: Bound::Variables,
                ..
            }
        )));
        assert!(!errors.is_empty());
    }

    #[test]
    fn a_spec_whose_strings_add_up_past_one_and_a_half_mib_is_refused() {
        let r = vars(&[("BIG", &"q".repeat(400 * 1024))]);
        let spec = json!({"env": {"A": "${BIG}", "B": "${BIG}", "C": "${BIG}", "D": "${BIG}"}});
        let e = interpolate_value(&spec, &r, "/spec")
            .err()
            .unwrap_or_default();
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].path(), Some("/spec/env/D"));
        assert!(
            e[0].message()
                .contains("1.5 MiB (1572864 bytes), etcd's limit"),
            "{}",
            e[0]
        );
    }

    #[test]
    fn a_default_cannot_grow_past_the_bound_either() {
        let r = vars(&[("K", &"k".repeat(300 * 1024))]);
        let e = interp_with("${NOPE:-${K}${K}}", &r)
            .err()
            .unwrap_or_default();
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].variable(), Some("K"));
    }

    #[test]
    fn double_dollars_in_defaults_are_literal_dollars() {
        assert_eq!(
            interp("${HASH:-$$2y$$05$$abc}", &[]).ok().as_deref(),
            Some("$2y$05$abc")
        );
        assert_eq!(
            interp("${HASH:-$$2y$$05}", &[("HASH", "set")])
                .ok()
                .as_deref(),
            Some("set")
        );
        // A reference in a default is substituted, as compose does.
        assert_eq!(
            interp("${WEACAST_DB_URL:-$DB_URL}", &[("DB_URL", "mongodb://db")])
                .ok()
                .as_deref(),
            Some("mongodb://db")
        );
        // A lone `$` in a default is the same error as anywhere else.
        assert!(interp("${HASH:-$2y}", &[]).is_err());
    }

    #[test]
    fn an_unset_variable_is_empty_with_a_warning_when_the_environment_says_so() {
        let r = interpolate_str_mode(
            "${IMAGE}:${TAG} $NOPE ${IMAGE}",
            &vars(&[("TAG", "1")]),
            "/x",
            UnsetVariables::Empty,
        );
        assert_eq!(
            r,
            Ok((
                ":1  ".to_string(),
                vec!["IMAGE".to_string(), "NOPE".to_string()]
            ))
        );
        // The default mode is today's: an error naming the variable.
        let e = interpolate_str_mode("${IMAGE}", &BTreeMap::new(), "/x", UnsetVariables::Error)
            .err()
            .unwrap_or_default();
        assert_eq!(e[0].to_string(), "/x: variable IMAGE is not set");
        // `:?` stays an error: it asks for the variable.
        assert!(
            interpolate_str_mode(
                "${P:?give P}",
                &BTreeMap::new(),
                "/x",
                UnsetVariables::Empty
            )
            .is_err()
        );
    }

    #[test]
    fn empty_mode_values_warn_by_pointer() {
        let value = json!({"env": {"A": "${X}", "B": "b"}, "deploy": {"replicas": "${R:-2}"}});
        let (out, warnings) =
            interpolate_value_mode(&value, &BTreeMap::new(), "/spec", UnsetVariables::Empty)
                .unwrap_or_default();
        assert_eq!(out["env"]["A"], "");
        assert_eq!(out["deploy"]["replicas"], "2");
        let shown: Vec<String> = warnings.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["/spec/env/A: variable X is not set"]);
    }

    #[test]
    fn empty_mode_variables_resolve_references_to_unset_ones() {
        let v = vars(&[("URL", "https://${HOST}/x"), ("B", "${URL}")]);
        let (r, errors, warnings) = resolve_variables_mode(&v, UnsetVariables::Empty);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(r["URL"], "https:///x");
        assert_eq!(r["B"], "https:///x");
        assert_eq!(
            warnings
                .iter()
                .filter_map(InterpolationError::unresolved_entry)
                .collect::<Vec<_>>(),
            ["HOST (in URL)"]
        );
        let (_, errors, _) = resolve_variables_mode(&v, UnsetVariables::Error);
        assert_eq!(errors.len(), 1);
    }

    fn interp_with(
        text: &str,
        vars: &BTreeMap<String, String>,
    ) -> Result<String, Vec<InterpolationError>> {
        interpolate_str(text, vars, "/x")
    }
}
