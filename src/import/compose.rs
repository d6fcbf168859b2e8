//! `kargo import compose FILE --stack NAME`: a compose file (version 3, as
//! `docker stack deploy` reads it) turned into kargo documents.
//!
//! The result is one Service document per compose service, a Stack listing them in file
//! order, and the files of the compose `configs:` and `secrets:` (read from disk, relative
//! to the compose file) as a Configuration fragment. Shapes map one to one where kargo has
//! the field (kargo's Service follows the compose long syntax); compose `entrypoint`
//! becomes `command` and compose `command` becomes `args`, as in Kubernetes.
//!
//! Whatever kargo cannot carry over is a [`ComposeWarning`] naming the key path (e.g.
//! `services.web.container_name`), never dropped silently: what Swarm ignores anyway
//! (`container_name`, `links`, `restart`...), what kargo's model has no field for
//! (volume drivers, build settings other than those [`build`] reads...). The `build`
//! section becomes the Service's `build` (for `kargo build`), its context made absolute. `replicas` and port numbers given as `${VAR}` are
//! kept as written: kargo interpolates them at deploy, as Docker does. `depends_on`, which
//! `docker stack deploy` ignores, becomes
//! `dependsOn`, which kargo honours (the service waits until those are Ready); a warning
//! says so, since the behaviour changes. Extension keys (`x-...`) are skipped, as compose
//! skips them; `<<` merge keys are applied.
//!
//! `${VAR}` references in strings are kept: kargo interpolates them at deploy with the
//! Environment's variables, with the same syntax (`$$` is a literal `$` in both).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Value};

use super::envfile::is_dns_label;
use crate::api::{
    BindOptions, ConfigFile, DefaultsMode, Deploy, DeployMode, DynamicObject, EndpointMode,
    FailureAction, FileMount, Healthcheck, Kind, Logging, Placement, PlacementPreference, Port,
    Protocol, PublishMode, ResourceAmounts, Resources, RestartCondition, RestartPolicy,
    ServiceSpec, StackNetwork, StackSpec, StackVolume, TmpfsOptions, Ulimit, UpdateOrder,
    UpdatePolicy, Volume, VolumeOptions, VolumeType,
};
use crate::manifest::interpolate::has_interpolation;
use crate::manifest::load::{
    MAX_FILE_BYTES as MAX_MANIFEST_BYTES, read_file_bounded, read_text_bounded,
};

/// The Configuration the fragment is named after: the one the controller uses by default.
pub const CONFIGURATION_NAME: &str = "main";

/// The largest content Swarm accepts for a config or secret.
const MAX_FILE_BYTES: usize = 500 * 1024;

/// Something in a compose file that was not carried over as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComposeWarning {
    /// The key path in the compose file, e.g. `services.web.build`.
    pub path: String,
    /// What was not carried over, and what to do about it.
    pub message: String,
}

impl std::fmt::Display for ComposeWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// What `kargo import compose` produces.
#[derive(Clone, Debug, PartialEq)]
pub struct ComposeImport {
    /// One Service document per compose service, in file order.
    pub services: Vec<Value>,
    /// The Stack document listing the services in file order.
    pub stack: Value,
    /// The files of the compose `configs:` and `secrets:` (secrets are `sensitive`).
    pub files: BTreeMap<String, ConfigFile>,
    /// A Configuration document named [`CONFIGURATION_NAME`] holding only `files`, when
    /// there are any: a fragment to merge into the Configuration in force, not to apply
    /// over one that has other settings.
    pub configuration: Option<Value>,
    /// What was not carried over, by key path.
    pub warnings: Vec<ComposeWarning>,
}

/// Why a compose file could not be imported at all.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// The compose file could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        /// The compose file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The compose file is not valid YAML.
    #[error("{}: invalid YAML: {source}", .path.display())]
    Parse {
        /// The compose file.
        path: PathBuf,
        /// The parser's error.
        source: serde_yaml::Error,
    },
    /// The compose file is YAML but not a compose file.
    #[error("{}: not a compose file: {reason}", .path.display())]
    NotCompose {
        /// The compose file.
        path: PathBuf,
        /// What is missing or wrong.
        reason: String,
    },
    /// The Stack name is not a DNS-1123 label.
    #[error(
        "invalid Stack name {name:?}: use lowercase letters, digits and '-', at most 63 characters"
    )]
    InvalidStackName {
        /// The name given.
        name: String,
    },
}

/// Imports a compose file; files it names are read relative to its folder.
pub fn import_compose_file(path: &Path, stack: &str) -> Result<ComposeImport, ComposeError> {
    let text =
        read_text_bounded(path, MAX_MANIFEST_BYTES).map_err(|source| ComposeError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let base_dir = std::fs::canonicalize(parent).unwrap_or_else(|_| parent.to_path_buf());
    convert(&text, path, &base_dir, stack)
}

/// Imports compose text; `base_dir` is the folder relative paths are read from (make it
/// absolute: relative bind mounts are made absolute against it).
pub fn import_compose_str(
    text: &str,
    base_dir: &Path,
    stack: &str,
) -> Result<ComposeImport, ComposeError> {
    convert(text, Path::new("<compose>"), base_dir, stack)
}

fn convert(
    text: &str,
    path: &Path,
    base_dir: &Path,
    stack: &str,
) -> Result<ComposeImport, ComposeError> {
    if !is_dns_label(stack) {
        return Err(ComposeError::InvalidStackName {
            name: stack.to_string(),
        });
    }
    let not_compose = |reason: &str| ComposeError::NotCompose {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let mut yaml: serde_yaml::Value = serde_yaml::from_str(
        &super::kargo::docker_yaml_escapes(text).unwrap_or_else(|| text.to_string()),
    )
    .map_err(|source| ComposeError::Parse {
        path: path.to_path_buf(),
        source,
    })?;
    yaml.apply_merge().map_err(|source| ComposeError::Parse {
        path: path.to_path_buf(),
        source,
    })?;
    // serde_json maps are sorted: take the services' order from the YAML mapping.
    let order: Vec<String> = match yaml.get("services") {
        Some(serde_yaml::Value::Mapping(m)) => m
            .keys()
            .filter_map(|k| match k {
                serde_yaml::Value::String(s) => Some(s.clone()),
                serde_yaml::Value::Number(n) => Some(n.to_string()),
                serde_yaml::Value::Bool(b) => Some(b.to_string()),
                _ => None,
            })
            .collect(),
        _ => return Err(not_compose("it has no `services` map")),
    };
    let doc = serde_json::to_value(&yaml).map_err(|e| not_compose(&e.to_string()))?;
    let Value::Object(top) = doc else {
        return Err(not_compose("the document is not a map"));
    };

    let mut w = Warnings::default();
    let mut t = Tables::default();
    for key in top.keys() {
        match key.as_str() {
            "services" | "networks" | "volumes" | "configs" | "secrets" => {}
            "version" => {
                let version = top.get("version").and_then(scalar).unwrap_or_default();
                if version.starts_with('1') || version.starts_with('2') {
                    w.add(
                        "version",
                        format!("version {version}: docker stack deploy reads version 3 files; read as one"),
                    );
                }
            }
            "name" => w.add(
                "name",
                "the project name is not used: the Stack is named by --stack",
            ),
            k if k.starts_with("x-") => {}
            _ => w.add(key, "not a compose key kargo knows: dropped"),
        }
    }
    let empty = Map::new();
    let section = |name: &str| top.get(name).and_then(Value::as_object).unwrap_or(&empty);
    t.read_networks(section("networks"), &mut w);
    t.read_volumes(section("volumes"), &mut w);
    t.read_files(section("configs"), false, base_dir, &mut w);
    t.read_files(section("secrets"), true, base_dir, &mut w);

    let services = section("services");
    let mut names: Vec<(String, String)> = Vec::new();
    for compose_name in &order {
        let path = format!("services.{compose_name}");
        let name = kargo_name(compose_name);
        if !is_dns_label(&name) {
            w.add(
                &path,
                format!("{compose_name:?} cannot be made a valid Service name (lowercase letters, digits and '-'): the service is dropped"),
            );
            continue;
        }
        if name != *compose_name {
            w.add(
                &path,
                format!("renamed {name}: kargo names are lowercase letters, digits and '-'"),
            );
        }
        if names.iter().any(|(_, n)| *n == name) {
            w.add(
                &path,
                format!("another service is already named {name}: the service is dropped"),
            );
            continue;
        }
        let swarm = format!("kargo-{stack}_{name}");
        if swarm.len() > 63 {
            w.add(
                &path,
                format!("the Swarm service name {swarm} is longer than 63 characters: shorten the Stack or the Service name"),
            );
        }
        t.services
            .insert(compose_name.clone(), format!("{stack}-{name}"));
        names.push((compose_name.clone(), name));
    }

    let mut documents = Vec::new();
    for (compose_name, name) in &names {
        let path = format!("services.{compose_name}");
        let def = services.get(compose_name).unwrap_or(&Value::Null);
        let mut kept = Kept::default();
        let mut spec = t.service(def, &path, base_dir, &mut kept, &mut w);
        // Scoped by the Stack, as docker stack deploy scopes it (docs/compose.md).
        spec.service_name = Some(name.clone());
        spec.defaults = Some(DefaultsMode::None);
        if spec.networks.is_none() {
            spec.networks = Some(vec!["default".into()]);
        }
        for n in spec.networks.iter().flatten() {
            if n == "default" && !t.networks.contains_key("default") {
                t.stack_networks.entry(n.clone()).or_default();
            }
        }
        let mut doc = document(Kind::Service, &format!("{stack}-{name}"), &spec);
        if let Some(spec) = doc.get_mut("spec") {
            kept.apply(spec);
        }
        documents.push(doc);
    }
    let stack_doc = document(
        Kind::Stack,
        stack,
        &StackSpec {
            services: names
                .into_iter()
                .map(|(_, n)| format!("{stack}-{n}"))
                .collect(),
            networks: t.stack_networks.clone(),
            volumes: t.stack_volumes.clone(),
            files: t.files.clone(),
            ..StackSpec::default()
        },
    );
    Ok(ComposeImport {
        services: documents,
        stack: stack_doc,
        files: t.files,
        configuration: None,
        warnings: w.0,
    })
}

fn document<T: serde::Serialize>(kind: Kind, name: &str, spec: &T) -> Value {
    let spec = serde_json::to_value(spec).unwrap_or(Value::Null);
    serde_json::to_value(DynamicObject::new(kind, name, spec)).unwrap_or(Value::Null)
}

/// `Web_App` → `web-app`.
fn kargo_name(compose: &str) -> String {
    compose.to_ascii_lowercase().replace(['_', '.'], "-")
}

#[derive(Default)]
struct Warnings(Vec<ComposeWarning>);

impl Warnings {
    fn add(&mut self, path: &str, message: impl Into<String>) {
        self.0.push(ComposeWarning {
            path: path.to_string(),
            message: message.into(),
        });
    }
}

/// Numbers written as `${VAR}` strings (`replicas: ${X:-3}`, `"${PORT:-8080}:80"`), kept as
/// written: the typed spec cannot hold them, so they are set into the Service document
/// after it is serialised (the schema takes a number or an interpolated string there).
#[derive(Default)]
struct Kept(Vec<(String, String)>);

impl Kept {
    /// Keeps `value` at `pointer`, a JSON pointer under the Service's `spec`.
    fn add(&mut self, pointer: String, value: &str) {
        self.0.push((pointer, value.to_string()));
    }

    /// Sets the kept strings into `spec` (`deploy` is made when `replicas` was its only
    /// setting).
    fn apply(self, spec: &mut Value) {
        for (pointer, value) in self.0 {
            let Some((parent, key)) = pointer.rsplit_once('/') else {
                continue;
            };
            if parent == "/deploy"
                && let Some(m) = spec.as_object_mut()
            {
                m.entry("deploy")
                    .or_insert_with(|| Value::Object(Map::new()));
            }
            if let Some(Value::Object(m)) = spec.pointer_mut(parent) {
                m.insert(key.to_string(), Value::String(value));
            }
        }
    }
}

/// A string a number is written as that interpolation will fill (`${X:-3}`).
fn interpolated_number(v: &Value) -> Option<&str> {
    v.as_str().filter(|s| has_interpolation(s))
}

/// What the top-level sections declare, as the services refer to it.
#[derive(Default)]
struct Tables {
    /// Compose network name → the network kargo joins.
    networks: BTreeMap<String, String>,
    /// The networks the Stack declares.
    stack_networks: BTreeMap<String, StackNetwork>,
    /// Declared volume names.
    volumes: BTreeSet<String>,
    /// The volumes the Stack declares.
    stack_volumes: BTreeMap<String, StackVolume>,
    /// Compose config name → the Stack file or external config; `None` when it could not be carried.
    configs: BTreeMap<String, Option<Carried>>,
    /// Compose secret name → the Stack file or external secret; `None` when it could not be carried.
    secrets: BTreeMap<String, Option<Carried>>,
    /// Compose service name → kargo Service name.
    services: BTreeMap<String, String>,
    /// The Configuration files read.
    files: BTreeMap<String, ConfigFile>,
}

/// Where a compose config or secret went.
#[derive(Clone)]
enum Carried {
    /// A file of the Stack, by name.
    File(String),
    /// An existing Swarm object, by its real name.
    External(String),
}

/// `prom/alertmanager` → `prom/alertmanager:latest`, as the Docker CLI normalises it.
fn tagged(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') || last.contains(':') || image.contains('$') || image.is_empty() {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

/// Docker's memory units (go-units RAMInBytes: 1024-based, fractions allowed) as an exact
/// kargo size; `None` when it is not one.
fn memory_size(s: &str) -> Option<String> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let t = t.strip_suffix('i').unwrap_or(t);
    let (num, mult): (&str, u128) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 1 << 10),
        'm' => (&t[..t.len() - 1], 1 << 20),
        'g' => (&t[..t.len() - 1], 1 << 30),
        't' => (&t[..t.len() - 1], 1 << 40),
        'p' => (&t[..t.len() - 1], 1 << 50),
        _ => (t, 1),
    };
    let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 12
    {
        return None;
    }
    let scale = 10u128.pow(frac.len() as u32);
    let n: u128 = format!("{whole}{frac}").parse().ok()?;
    // go-units truncates the fraction of a byte.
    let bytes = n.checked_mul(mult)? / scale;
    Some(bytes.to_string())
}

/// `None` for an empty list, so nothing empty is written.
fn non_empty<T>(items: Vec<T>) -> Option<Vec<T>> {
    (!items.is_empty()).then_some(items)
}

/// A scalar as text: strings as they are, numbers and booleans written out.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A whole number, from a number or a string of digits.
fn whole(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Reads a whole number, or warns (naming `${VAR}` values, which kargo cannot carry).
fn number(v: &Value, path: &str, w: &mut Warnings) -> Option<u64> {
    let n = whole(v);
    if n.is_none() {
        let hint = match v {
            Value::String(s) if s.contains('$') => {
                " (kargo interpolates strings only: set it in the Service, or in the Environment's services settings)"
            }
            _ => "",
        };
        w.add(path, format!("{v} is not a whole number{hint}: dropped"));
    }
    n
}

/// Reads a string (numbers written out), or warns.
fn text(v: &Value, path: &str, w: &mut Warnings) -> Option<String> {
    let s = scalar(v);
    if s.is_none() {
        w.add(path, format!("expected a string, found {v}: dropped"));
    }
    s
}

/// Warns about every key of `map` not in `known`, except extension keys.
fn unknown_keys(map: &Map<String, Value>, known: &[&str], path: &str, w: &mut Warnings) {
    for key in map.keys() {
        if !known.contains(&key.as_str()) && !key.starts_with("x-") {
            w.add(&format!("{path}.{key}"), "not supported by kargo: dropped");
        }
    }
}

/// The compose `build` section (a context path, or the mapping) as the Service's `build`.
///
/// A relative context is made absolute against the compose file's folder, as relative bind
/// mounts are: the Service then builds the same wherever its manifest is saved or stored
/// (`kargo build` reads a stored context relative to its working directory). A context
/// written with `${VAR}` is kept as written (the Environment's variables fill it); a
/// remote one (a Git or HTTP URL) is kept with a warning, since `kargo build` sends local
/// folders only. Args without a value (compose takes them from the shell) are dropped with a
/// warning naming the Environment's `buildArgs`, which give them.
fn build(
    value: &Value,
    path: &str,
    base_dir: &Path,
    w: &mut Warnings,
) -> Option<crate::api::Build> {
    let context_of = |raw: &str, p: &str, w: &mut Warnings| -> String {
        let remote =
            raw.contains("://") || raw.starts_with("git@") || raw.starts_with("github.com/");
        if remote {
            w.add(
                p,
                format!(
                    "{raw} is a remote context: kept, but kargo build sends local folders only"
                ),
            );
            raw.to_string()
        } else if raw.starts_with('/') || has_interpolation(raw) {
            raw.to_string()
        } else {
            normalize(base_dir, raw).display().to_string()
        }
    };
    let map = match value {
        Value::Object(map) => map,
        Value::Null => return None,
        other => {
            let raw = text(other, path, w)?;
            return Some(crate::api::Build {
                context: context_of(&raw, path, w),
                ..crate::api::Build::default()
            });
        }
    };
    unknown_keys(
        map,
        &[
            "context",
            "dockerfile",
            "args",
            "target",
            "labels",
            "cache_from",
        ],
        path,
        w,
    );
    let field = |key: &str| map.get(key).filter(|v| !v.is_null());
    let context_path = format!("{path}.context");
    let context = match field("context").and_then(|v| text(v, &context_path, w)) {
        Some(raw) => context_of(&raw, &context_path, w),
        // Compose's default context is the compose file's folder.
        None => base_dir.display().to_string(),
    };
    let args_path = format!("{path}.args");
    let mut unset = Vec::new();
    let mut args = BTreeMap::new();
    if let Some(v) = field("args") {
        const UNSET: &str = "\u{0}";
        for (k, v) in key_values(v, &args_path, &|_| UNSET.to_string(), w) {
            if v == UNSET {
                unset.push(k);
            } else {
                args.insert(k, v);
            }
        }
    }
    if !unset.is_empty() {
        w.add(
            &args_path,
            format!(
                "{} {} no value (compose takes it from the shell): dropped; give it in the Environment's services.<name>.buildArgs",
                unset.join(", "),
                if unset.len() == 1 { "has" } else { "have" }
            ),
        );
    }
    Some(crate::api::Build {
        context,
        dockerfile: field("dockerfile").and_then(|v| text(v, &format!("{path}.dockerfile"), w)),
        args,
        target: field("target").and_then(|v| text(v, &format!("{path}.target"), w)),
        labels: field("labels")
            .map(|v| key_values(v, &format!("{path}.labels"), &|_| String::new(), w))
            .unwrap_or_default(),
        cache_from: field("cache_from")
            .map(|v| string_list(v, &format!("{path}.cache_from"), w))
            .unwrap_or_default(),
    })
}

/// `KEY=VALUE` items (a list) or a map, as compose writes labels and environments.
/// `missing` gives the value of a list item without `=` or a map entry that is null.
fn key_values(
    v: &Value,
    path: &str,
    missing: &dyn Fn(&str) -> String,
    w: &mut Warnings,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    match v {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let Some(item) = scalar(item) else {
                    w.add(&format!("{path}[{i}]"), "expected KEY=VALUE: dropped");
                    continue;
                };
                match item.split_once('=') {
                    Some((k, v)) => out.insert(k.trim().to_string(), v.to_string()),
                    None => out.insert(item.trim().to_string(), missing(item.trim())),
                };
            }
        }
        Value::Object(map) => {
            for (k, value) in map {
                let value = match value {
                    Value::Null => missing(k),
                    other => match scalar(other) {
                        Some(s) => s,
                        None => {
                            w.add(&format!("{path}.{k}"), "expected a string: dropped");
                            continue;
                        }
                    },
                };
                out.insert(k.clone(), value);
            }
        }
        Value::Null => {}
        _ => w.add(path, "expected a list of KEY=VALUE or a map: dropped"),
    }
    out
}

/// Splits a command line as a POSIX shell would (quotes and backslashes, no expansion).
fn shell_split(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        None => return Err("an unterminated '".into()),
                        Some('\'') => break,
                        Some(c) => word.push(c),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        None => return Err("an unterminated \"".into()),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("an unterminated \"".into()),
                        },
                        Some(c) => word.push(c),
                    }
                }
            }
            // Docker interpolates before it splits: a `${...}` reference stays one piece
            // (its default or message may hold spaces).
            '$' if chars.clone().next() == Some('{') => {
                in_word = true;
                word.push('$');
                let mut depth = 0;
                for c in chars.by_ref() {
                    word.push(c);
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(c) => word.push(c),
                    None => word.push('\\'),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// A command as a list: a string is split as a shell would, a list is taken as it is.
fn command_list(v: &Value, path: &str, w: &mut Warnings) -> Option<Vec<String>> {
    match v {
        Value::Null => None,
        Value::String(s) => match shell_split(s) {
            Ok(words) => Some(words),
            Err(problem) => {
                w.add(
                    path,
                    format!("{problem}: split at blanks instead; check the result"),
                );
                Some(s.split_whitespace().map(str::to_string).collect())
            }
        },
        Value::Array(items) => Some(
            items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| text(item, &format!("{path}[{i}]"), w))
                .collect(),
        ),
        _ => {
            w.add(path, "expected a string or a list: dropped");
            None
        }
    }
}

/// A list of strings, or one string as a list of one.
fn string_list(v: &Value, path: &str, w: &mut Warnings) -> Vec<String> {
    match v {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| text(item, &format!("{path}[{i}]"), w))
            .collect(),
        Value::Null => Vec::new(),
        other => text(other, path, w).into_iter().collect(),
    }
}

/// `base/./a/../b` → `base/b`, without touching the file system.
fn normalize(base: &Path, relative: &str) -> PathBuf {
    let mut out = PathBuf::new();
    for component in base.join(relative).components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// A file mode: a number is the mode's value (YAML `0o440` or `288`), written in octal; a
/// string (`"0440"`) is taken as it is.
fn file_mode(v: &Value, path: &str, w: &mut Warnings) -> Option<String> {
    match v {
        Value::Number(n) => match n.as_u64() {
            Some(m) if m <= 0o7777 => Some(format!("0{m:o}")),
            _ => {
                w.add(path, format!("{n} is not a file mode: dropped"));
                None
            }
        },
        Value::String(s) => Some(s.clone()),
        _ => {
            w.add(path, "expected a file mode such as \"0440\": dropped");
            None
        }
    }
}

fn parse_enum<T: serde::de::DeserializeOwned>(
    v: &Value,
    path: &str,
    expected: &str,
    w: &mut Warnings,
) -> Option<T> {
    match serde_json::from_value::<T>(v.clone()) {
        Ok(x) => Some(x),
        Err(_) => {
            w.add(path, format!("{v} is not one of {expected}: dropped"));
            None
        }
    }
}

/// One end of a port mapping: a number or a range `a-b`.
fn port_range(s: &str) -> Option<(u16, u16)> {
    let parse = |p: &str| p.trim().parse::<u16>().ok().filter(|n| *n > 0);
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (parse(a)?, parse(b)?);
            (a <= b).then_some((a, b))
        }
        None => parse(s).map(|n| (n, n)),
    }
}

impl Tables {
    fn read_networks(&mut self, networks: &Map<String, Value>, w: &mut Warnings) {
        for (key, def) in networks {
            let path = format!("networks.{key}");
            let def = def.as_object().cloned().unwrap_or_default();
            let external = match def.get("external") {
                Some(Value::Bool(b)) => *b,
                Some(Value::Object(_)) => true,
                _ => false,
            };
            let legacy_name = def
                .get("external")
                .and_then(|e| e.get("name"))
                .and_then(Value::as_str);
            let name = def.get("name").and_then(Value::as_str).or(legacy_name);
            // Kargo's compose files name the shared networks through its variables.
            let shared = name.and_then(|real| {
                if real.contains("DOCKER_BACK_NETWORK") {
                    Some("back")
                } else if real.contains("DOCKER_FRONT_NETWORK") || real.contains("DOCKER_NETWORK") {
                    Some("front")
                } else {
                    None
                }
            });
            if let Some(logical) = shared {
                self.networks.insert(key.clone(), logical.to_string());
                continue;
            }
            unknown_keys(
                &def,
                &[
                    "external",
                    "name",
                    "driver",
                    "driver_opts",
                    "internal",
                    "attachable",
                    "labels",
                    "ipam",
                    "enable_ipv6",
                ],
                &path,
                w,
            );
            for k in ["ipam", "enable_ipv6"] {
                if def.get(k).is_some_and(|v| !v.is_null()) {
                    w.add(&format!("{path}.{k}"), "not supported by kargo: dropped");
                }
            }
            let labels = def
                .get("labels")
                .map(|v| key_values(v, &format!("{path}.labels"), &|_| String::new(), w));
            let driver_opts = def
                .get("driver_opts")
                .map(|v| key_values(v, &format!("{path}.driver_opts"), &|_| String::new(), w));
            let declared = StackNetwork {
                name: name
                    .map(str::to_string)
                    .or_else(|| external.then(|| key.clone())),
                external: external.then_some(true),
                internal: def.get("internal").and_then(Value::as_bool),
                attachable: def.get("attachable").and_then(Value::as_bool),
                driver: def
                    .get("driver")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                driver_opts,
                labels,
            };
            self.stack_networks.insert(key.clone(), declared);
            self.networks.insert(key.clone(), key.clone());
        }
    }

    fn read_volumes(&mut self, volumes: &Map<String, Value>, w: &mut Warnings) {
        for (key, def) in volumes {
            let path = format!("volumes.{key}");
            self.volumes.insert(key.clone());
            let Some(def) = def.as_object() else {
                continue;
            };
            unknown_keys(
                def,
                &["external", "name", "driver", "driver_opts", "labels"],
                &path,
                w,
            );
            let external = match def.get("external") {
                Some(Value::Bool(b)) => *b,
                Some(Value::Object(_)) => true,
                _ => false,
            };
            let legacy_name = def
                .get("external")
                .and_then(|e| e.get("name"))
                .and_then(Value::as_str);
            let name = def.get("name").and_then(Value::as_str).or(legacy_name);
            let declared = StackVolume {
                name: name
                    .map(str::to_string)
                    .or_else(|| external.then(|| key.clone())),
                external: external.then_some(true),
                driver: def
                    .get("driver")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                driver_opts: def
                    .get("driver_opts")
                    .map(|v| key_values(v, &format!("{path}.driver_opts"), &|_| String::new(), w)),
                labels: def
                    .get("labels")
                    .map(|v| key_values(v, &format!("{path}.labels"), &|_| String::new(), w)),
            };
            if declared != StackVolume::default() {
                self.stack_volumes.insert(key.clone(), declared);
            }
        }
    }

    /// Reads the top-level `configs:` or `secrets:` into Configuration files.
    fn read_files(
        &mut self,
        defs: &Map<String, Value>,
        sensitive: bool,
        base_dir: &Path,
        w: &mut Warnings,
    ) {
        let section = if sensitive { "secrets" } else { "configs" };
        for (key, def) in defs {
            let path = format!("{section}.{key}");
            let empty = Map::new();
            let def = def.as_object().unwrap_or(&empty);
            unknown_keys(
                def,
                &[
                    "file",
                    "content",
                    "external",
                    "name",
                    "labels",
                    "environment",
                    "template_driver",
                    "driver",
                ],
                &path,
                w,
            );
            for k in ["labels", "template_driver", "driver"] {
                if def.contains_key(k) {
                    w.add(&format!("{path}.{k}"), "not supported by kargo: dropped");
                }
            }
            let content = if def
                .get("external")
                .is_some_and(|e| e != &Value::Bool(false))
            {
                let legacy = def
                    .get("external")
                    .and_then(|e| e.get("name"))
                    .and_then(Value::as_str);
                let real = def
                    .get("name")
                    .and_then(Value::as_str)
                    .or(legacy)
                    .unwrap_or(key)
                    .to_string();
                let carried = Some(Carried::External(real));
                if sensitive {
                    self.secrets.insert(key.clone(), carried);
                } else {
                    self.configs.insert(key.clone(), carried);
                }
                continue;
            } else if let Some(file) = def.get("file").and_then(Value::as_str) {
                let full = normalize(base_dir, file);
                match read_file_bounded(&full, MAX_MANIFEST_BYTES) {
                    Ok(bytes) => {
                        match String::from_utf8(bytes) {
                            Ok(s) => Some(s),
                            Err(_) => {
                                w.add(
                                &format!("{path}.file"),
                                format!("{} is not UTF-8 text: Configuration files are text; dropped", full.display()),
                            );
                                None
                            }
                        }
                    }
                    Err(e) => {
                        w.add(
                            &format!("{path}.file"),
                            format!("cannot read {}: {e}; dropped", full.display()),
                        );
                        None
                    }
                }
            } else if let Some(content) = def.get("content").and_then(Value::as_str) {
                Some(content.to_string())
            } else if def.contains_key("environment") {
                w.add(
                    &format!("{path}.environment"),
                    "content taken from the deploying shell's environment is not carried over: add it to the Configuration's files; dropped",
                );
                None
            } else {
                w.add(&path, "no `file` or `content`: dropped");
                None
            };
            if def.contains_key("name") && content.is_some() {
                w.add(
                    &format!("{path}.name"),
                    "kargo names Swarm configs and secrets <file>-<hash of the content>: the name is not used (docs/compose.md)",
                );
            }
            let Some(content) = content else {
                if sensitive {
                    self.secrets.insert(key.clone(), None);
                } else {
                    self.configs.insert(key.clone(), None);
                }
                continue;
            };
            if content.len() > MAX_FILE_BYTES {
                w.add(
                    &path,
                    format!(
                        "{} bytes: Swarm refuses configs and secrets over {MAX_FILE_BYTES} bytes",
                        content.len()
                    ),
                );
            }
            let mut name = key.clone();
            if self.files.contains_key(&name) {
                name = format!("{key}-secret");
                w.add(
                    &path,
                    format!("a config is also named {key}: the secret's file is named {name}"),
                );
            }
            self.files.insert(
                name.clone(),
                ConfigFile {
                    content,
                    template: false,
                    sensitive,
                    ..ConfigFile::default()
                },
            );
            if sensitive {
                self.secrets.insert(key.clone(), Some(Carried::File(name)));
            } else {
                self.configs.insert(key.clone(), Some(Carried::File(name)));
            }
        }
    }

    /// Converts one compose service.
    fn service(
        &self,
        def: &Value,
        path: &str,
        base_dir: &Path,
        kept: &mut Kept,
        w: &mut Warnings,
    ) -> ServiceSpec {
        let mut spec = ServiceSpec::default();
        let Some(def) = def.as_object() else {
            if !def.is_null() {
                w.add(path, "expected a map: the service is empty");
            }
            return spec;
        };
        let mut env_from_files: BTreeMap<String, String> = BTreeMap::new();
        let mut restart: Option<(Value, String)> = None;
        for (key, value) in def {
            let p = format!("{path}.{key}");
            let p = p.as_str();
            match key.as_str() {
                "image" => spec.image = text(value, p, w).map(|i| tagged(&i)),
                "build" => spec.build = build(value, p, base_dir, w),
                "command" => spec.args = command_list(value, p, w),
                "entrypoint" => spec.command = command_list(value, p, w),
                "environment" => {
                    let env = key_values(value, p, &|k| format!("${{{k}}}"), w);
                    spec.env = Some(env);
                }
                "env_file" => {
                    env_from_files = self.env_files(value, p, base_dir, w);
                }
                "ports" => spec.ports = non_empty(self.ports(value, p, kept, w)),
                "volumes" => {
                    let mut volumes = spec.volumes.take().unwrap_or_default();
                    volumes.extend(self.volumes(value, p, base_dir, w));
                    spec.volumes = Some(volumes);
                }
                "tmpfs" => {
                    let mut volumes = spec.volumes.take().unwrap_or_default();
                    for target in string_list(value, p, w) {
                        let (target, options) = match target.split_once(':') {
                            Some((t, o)) => (t.to_string(), Some(o.to_string())),
                            None => (target, None),
                        };
                        if let Some(options) = options {
                            // docker stack deploy drops short-syntax tmpfs options too.
                            w.add(
                                p,
                                format!("tmpfs options {options:?} are not carried (docker stack deploy drops them too): use the long volume syntax with tmpfs.size"),
                            );
                        }
                        volumes.push(Volume {
                            type_: VolumeType::Tmpfs,
                            source: None,
                            target,
                            read_only: None,
                            bind: None,
                            volume: None,
                            tmpfs: None,
                        });
                    }
                    spec.volumes = Some(volumes);
                }
                "configs" => spec.configs = non_empty(self.mounts(value, false, p, w)),
                "secrets" => spec.secrets = non_empty(self.mounts(value, true, p, w)),
                "healthcheck" => spec.healthcheck = healthcheck(value, p, w),
                "networks" => {
                    let (networks, aliases) = self.service_networks(value, p, w);
                    spec.networks = Some(networks);
                    spec.network_aliases = (!aliases.is_empty()).then_some(aliases);
                }
                "restart" => restart = Some((value.clone(), p.to_string())),
                "logging" => spec.logging = logging(value, p, w),
                "stop_signal" => spec.stop_signal = text(value, p, w),
                "init" => spec.init = flag(value, p, w),
                "read_only" => spec.read_only = flag(value, p, w),
                "tty" => spec.tty = flag(value, p, w),
                "stdin_open" => spec.stdin_open = flag(value, p, w),
                "sysctls" => {
                    spec.sysctls =
                        Some(key_values(value, p, &|_| String::new(), w)).filter(|m| !m.is_empty())
                }
                "ulimits" => spec.ulimits = ulimits(value, p, w),
                "cap_add" => spec.cap_add = non_empty(string_list(value, p, w)),
                "cap_drop" => spec.cap_drop = non_empty(string_list(value, p, w)),
                "extra_hosts" => {
                    spec.extra_hosts = non_empty(match value {
                        Value::Object(m) => m
                            .iter()
                            .filter_map(|(k, v)| scalar(v).map(|v| format!("{k}:{v}")))
                            .collect(),
                        other => string_list(other, p, w),
                    })
                }
                "dns" => {
                    spec.dns = non_empty(match value {
                        Value::String(s) => vec![s.clone()],
                        other => string_list(other, p, w),
                    })
                }
                "dns_search" => {
                    spec.dns_search = non_empty(match value {
                        Value::String(s) => vec![s.clone()],
                        other => string_list(other, p, w),
                    })
                }
                "labels" => {
                    spec.container_labels = Some(key_values(value, p, &|_| String::new(), w))
                }
                "deploy" => self.deploy(value, p, &mut spec, kept, w),
                "depends_on" => {
                    let names: Vec<String> = match value {
                        Value::Object(m) => m.keys().cloned().collect(),
                        other => string_list(other, p, w),
                    };
                    let mut depends = Vec::new();
                    for name in names {
                        match self.services.get(&name) {
                            Some(n) => depends.push(n.clone()),
                            None => {
                                w.add(p, format!("{name} is not a service of this file: dropped"))
                            }
                        }
                    }
                    if !depends.is_empty() {
                        w.add(
                            p,
                            format!(
                                "docker stack deploy ignores depends_on, kargo does not: this service starts once {} {} Ready",
                                depends.join(", "),
                                if depends.len() == 1 { "is" } else { "are" }
                            ),
                        );
                        spec.depends_on = Some(depends);
                    }
                }
                "hostname" => spec.hostname = text(value, p, w),
                "user" => spec.user = text(value, p, w),
                "working_dir" => spec.working_dir = text(value, p, w),
                "stop_grace_period" => spec.stop_grace_period = text(value, p, w),
                k if k.starts_with("x-") => {}
                other => w.add(p, unsupported_service_key(other)),
            }
        }
        spec.volumes = spec.volumes.and_then(non_empty);
        // The legacy `restart:` counts when deploy.restart_policy is absent (convertRestartPolicy).
        if let Some((value, p)) = restart {
            let has_policy = spec
                .deploy
                .as_ref()
                .is_some_and(|d| d.restart_policy.is_some());
            if !has_policy && let Some(policy) = legacy_restart(&value, &p, w) {
                spec.deploy
                    .get_or_insert_with(Deploy::default)
                    .restart_policy = Some(policy);
            }
        }
        if !env_from_files.is_empty() {
            let env = spec.env.get_or_insert_with(BTreeMap::new);
            for (k, v) in env_from_files {
                env.entry(k).or_insert(v);
            }
        }
        if spec.image.is_none() {
            w.add(
                path,
                "no image: the Service must get one from an overlay or a catalog entry of the same name",
            );
        }
        let host_ports = spec
            .ports
            .iter()
            .flatten()
            .any(|p| p.mode == Some(PublishMode::Host));
        let start_first = spec
            .deploy
            .as_ref()
            .and_then(|d| d.update_config.as_ref())
            .and_then(|u| u.order)
            == Some(UpdateOrder::StartFirst);
        if host_ports && start_first {
            w.add(
                &format!("{path}.deploy.update_config.order"),
                "start-first with host-mode ports: the new task cannot bind the port while the old one runs on the same node, so the update stalls",
            );
        }
        spec
    }

    fn env_files(
        &self,
        value: &Value,
        path: &str,
        base_dir: &Path,
        w: &mut Warnings,
    ) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        let entries: Vec<(String, bool)> = match value {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| match item {
                    Value::Object(m) => m.get("path").and_then(Value::as_str).map(|p| {
                        (
                            p.to_string(),
                            m.get("required").and_then(Value::as_bool).unwrap_or(true),
                        )
                    }),
                    other => text(other, &format!("{path}[{i}]"), w).map(|p| (p, true)),
                })
                .collect(),
            other => text(other, path, w)
                .map(|p| vec![(p, true)])
                .unwrap_or_default(),
        };
        for (file, required) in entries {
            let full = normalize(base_dir, &file);
            let content = match read_text_bounded(&full, MAX_MANIFEST_BYTES) {
                Ok(c) => c,
                Err(e) => {
                    if required {
                        w.add(
                            path,
                            format!(
                                "cannot read {}: {e}; its variables are dropped",
                                full.display()
                            ),
                        );
                    }
                    continue;
                }
            };
            // docker stack deploy reads env files literally: no quotes, no expansion.
            env.extend(content.lines().filter_map(super::envfile::env_file_entry));
        }
        env
    }

    fn ports(&self, value: &Value, path: &str, kept: &mut Kept, w: &mut Warnings) -> Vec<Port> {
        let mut out = Vec::new();
        let Value::Array(items) = value else {
            w.add(path, "expected a list: dropped");
            return out;
        };
        for (i, item) in items.iter().enumerate() {
            let p = format!("{path}[{i}]");
            match item {
                Value::Number(_) => match whole(item).and_then(|n| u16::try_from(n).ok()) {
                    Some(target) if target > 0 => out.push(Port {
                        target,
                        published: None,
                        protocol: None,
                        mode: None,
                    }),
                    _ => w.add(&p, format!("{item} is not a port: dropped")),
                },
                Value::String(s) => {
                    for (port, strings) in short_port_kept(s, &p, w) {
                        for (key, value) in strings {
                            kept.add(format!("/ports/{}/{key}", out.len()), &value);
                        }
                        out.push(port);
                    }
                }
                Value::Object(m) => {
                    unknown_keys(
                        m,
                        &[
                            "target",
                            "published",
                            "protocol",
                            "mode",
                            "host_ip",
                            "name",
                            "app_protocol",
                        ],
                        &p,
                        w,
                    );
                    for k in ["host_ip", "name", "app_protocol"] {
                        if m.contains_key(k) {
                            w.add(&format!("{p}.{k}"), "not supported by kargo: dropped");
                        }
                    }
                    let index = out.len();
                    let mut port = |k: &str, w: &mut Warnings| -> Option<u16> {
                        let v = m.get(k)?;
                        if let Some(s) = interpolated_number(v) {
                            // 0 stands for the target until the kept string replaces it.
                            kept.add(format!("/ports/{index}/{k}"), s);
                            return (k == "target").then_some(0);
                        }
                        let n = number(v, &format!("{p}.{k}"), w)?;
                        match u16::try_from(n) {
                            Ok(n) if n > 0 => Some(n),
                            _ => {
                                w.add(&format!("{p}.{k}"), format!("{n} is not a port: dropped"));
                                None
                            }
                        }
                    };
                    let Some(target) = port("target", w) else {
                        w.add(&p, "no target port: dropped");
                        continue;
                    };
                    let published = port("published", w);
                    let protocol = m.get("protocol").and_then(|v| {
                        parse_enum::<Protocol>(v, &format!("{p}.protocol"), "tcp, udp, sctp", w)
                    });
                    let mode = m.get("mode").and_then(|v| {
                        parse_enum::<PublishMode>(v, &format!("{p}.mode"), "ingress, host", w)
                    });
                    out.push(Port {
                        target,
                        published,
                        protocol,
                        mode,
                    });
                }
                _ => w.add(&p, "expected a port: dropped"),
            }
        }
        out
    }

    fn volumes(&self, value: &Value, path: &str, base_dir: &Path, w: &mut Warnings) -> Vec<Volume> {
        let mut out = Vec::new();
        let Value::Array(items) = value else {
            w.add(path, "expected a list: dropped");
            return out;
        };
        for (i, item) in items.iter().enumerate() {
            let p = format!("{path}[{i}]");
            let volume = match item {
                Value::String(s) => self.short_volume(s, &p, base_dir, w),
                Value::Object(m) => self.long_volume(m, &p, base_dir, w),
                _ => {
                    w.add(&p, "expected a volume: dropped");
                    None
                }
            };
            out.extend(volume);
        }
        out
    }

    /// Classifies and completes a volume source: host paths are binds (relative ones made
    /// absolute), anything else a named volume.
    fn source(
        &self,
        source: &str,
        path: &str,
        base_dir: &Path,
        w: &mut Warnings,
    ) -> (VolumeType, String) {
        if source.starts_with('/') {
            (VolumeType::Bind, source.to_string())
        } else if source.starts_with('.') {
            let full = normalize(base_dir, source);
            w.add(
                path,
                format!(
                    "the relative host path {source} is made absolute: {}; it must exist on every node the service may run on",
                    full.display()
                ),
            );
            (VolumeType::Bind, full.display().to_string())
        } else if source.starts_with('~') {
            w.add(
                path,
                format!("{source}: `~` is not expanded: write the absolute host path"),
            );
            (VolumeType::Bind, source.to_string())
        } else if source.starts_with('$') {
            w.add(
                path,
                format!("{source} is interpolated: taken as a named volume; if it is a host path, make it a bind mount"),
            );
            (VolumeType::Volume, source.to_string())
        } else {
            if !self.volumes.contains(source) {
                w.add(
                    path,
                    format!("the volume {source} is not declared under the top-level volumes (docker stack deploy refuses this); kargo creates it"),
                );
            }
            (VolumeType::Volume, source.to_string())
        }
    }

    fn short_volume(
        &self,
        s: &str,
        path: &str,
        base_dir: &Path,
        w: &mut Warnings,
    ) -> Option<Volume> {
        let parts: Vec<&str> = s.splitn(3, ':').collect();
        let (source, target, mode) = match parts.as_slice() {
            [target] => (None, *target, None),
            [source, target] => (Some(*source), *target, None),
            [source, target, mode] => (Some(*source), *target, Some(*mode)),
            _ => (None, "", None),
        };
        if target.is_empty() {
            w.add(path, format!("{s:?} has no target path: dropped"));
            return None;
        }
        let mut read_only = None;
        let mut bind = None;
        let mut volume = None;
        for option in mode
            .unwrap_or_default()
            .split(',')
            .filter(|o| !o.is_empty())
        {
            match option {
                "ro" => read_only = Some(true),
                "rw" | "z" | "Z" => {}
                "nocopy" => volume = Some(VolumeOptions { nocopy: Some(true) }),
                "shared" | "rshared" | "slave" | "rslave" | "private" | "rprivate" => {
                    bind = Some(BindOptions {
                        propagation: Some(option.to_string()),
                    })
                }
                other => w.add(
                    path,
                    format!("the mount option {other:?} is not supported: dropped"),
                ),
            }
        }
        let (type_, source) = match source {
            Some(src) => {
                let (t, s) = self.source(src, path, base_dir, w);
                (t, Some(s))
            }
            None => (VolumeType::Volume, None),
        };
        Some(Volume {
            type_,
            source,
            target: target.to_string(),
            read_only,
            bind: bind.filter(|_| type_ == VolumeType::Bind),
            volume: volume.filter(|_| type_ == VolumeType::Volume),
            tmpfs: None,
        })
    }

    fn long_volume(
        &self,
        m: &Map<String, Value>,
        path: &str,
        base_dir: &Path,
        w: &mut Warnings,
    ) -> Option<Volume> {
        unknown_keys(
            m,
            &[
                "type",
                "source",
                "target",
                "read_only",
                "bind",
                "volume",
                "tmpfs",
                "consistency",
            ],
            path,
            w,
        );
        let Some(target) = m
            .get("target")
            .and_then(|v| text(v, &format!("{path}.target"), w))
        else {
            w.add(path, "no target: dropped");
            return None;
        };
        let declared = match m.get("type") {
            None => None,
            Some(v) => match v.as_str() {
                Some("volume") => Some(VolumeType::Volume),
                Some("bind") => Some(VolumeType::Bind),
                Some("tmpfs") => Some(VolumeType::Tmpfs),
                _ => {
                    w.add(
                        &format!("{path}.type"),
                        format!("{v} mounts are not supported (volume, bind or tmpfs): dropped"),
                    );
                    return None;
                }
            },
        };
        let source = m
            .get("source")
            .and_then(|v| text(v, &format!("{path}.source"), w));
        let (type_, source) = match (declared, source) {
            (Some(VolumeType::Tmpfs), s) => {
                if s.is_some() {
                    w.add(&format!("{path}.source"), "a tmpfs has no source: dropped");
                }
                (VolumeType::Tmpfs, None)
            }
            (declared, Some(s)) => {
                let (guessed, s) = self.source(&s, path, base_dir, w);
                (declared.unwrap_or(guessed), Some(s))
            }
            (declared, None) => (declared.unwrap_or(VolumeType::Volume), None),
        };
        let read_only = match m.get("read_only") {
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => {
                w.add(
                    &format!("{path}.read_only"),
                    format!("{other} is not true or false: dropped"),
                );
                None
            }
            None => None,
        };
        let sub = |k: &str| m.get(k).and_then(Value::as_object);
        let bind = sub("bind").map(|b| BindOptions {
            propagation: b
                .get("propagation")
                .and_then(Value::as_str)
                .map(str::to_string),
        });
        let volume = sub("volume").map(|v| VolumeOptions {
            nocopy: v.get("nocopy").and_then(Value::as_bool),
        });
        let tmpfs = sub("tmpfs").map(|t| TmpfsOptions {
            size: t.get("size").and_then(|v| match v {
                Value::Number(n) => Some(n.to_string()),
                Value::String(s) => memory_size(s),
                _ => None,
            }),
            mode: t
                .get("mode")
                .and_then(|v| file_mode(v, &format!("{path}.tmpfs.mode"), w)),
        });
        Some(Volume {
            type_,
            source,
            target,
            read_only,
            bind: bind.filter(|_| type_ == VolumeType::Bind),
            volume: volume.filter(|_| type_ == VolumeType::Volume),
            tmpfs: tmpfs.filter(|_| type_ == VolumeType::Tmpfs),
        })
    }

    fn mounts(&self, value: &Value, secret: bool, path: &str, w: &mut Warnings) -> Vec<FileMount> {
        let table = if secret { &self.secrets } else { &self.configs };
        let kind = if secret { "secret" } else { "config" };
        let mut out = Vec::new();
        let Value::Array(items) = value else {
            w.add(path, "expected a list: dropped");
            return out;
        };
        for (i, item) in items.iter().enumerate() {
            let p = format!("{path}[{i}]");
            let (source, target, mode, uid, gid) = match item {
                Value::String(s) => (s.clone(), None, None, None, None),
                Value::Object(m) => {
                    unknown_keys(m, &["source", "target", "mode", "uid", "gid"], &p, w);
                    let uid = m.get("uid").and_then(scalar);
                    let gid = m.get("gid").and_then(scalar);
                    let Some(source) = m.get("source").and_then(Value::as_str) else {
                        w.add(&p, "no source: dropped");
                        continue;
                    };
                    let target = m
                        .get("target")
                        .and_then(|v| text(v, &format!("{p}.target"), w));
                    let mode = m
                        .get("mode")
                        .and_then(|v| file_mode(v, &format!("{p}.mode"), w));
                    (source.to_string(), target, mode, uid, gid)
                }
                _ => {
                    w.add(&p, format!("expected a {kind} name or map: dropped"));
                    continue;
                }
            };
            match table.get(&source) {
                Some(Some(Carried::External(real))) => out.push(FileMount {
                    file: real.clone(),
                    // Docker's default target is the compose name, not the real one.
                    target: Some(target.unwrap_or_else(|| {
                        if secret {
                            source.clone()
                        } else {
                            format!("/{source}")
                        }
                    })),
                    mode,
                    uid,
                    gid,
                    external: Some(true),
                }),
                Some(Some(Carried::File(file))) => {
                    // The file was renamed: keep compose's default target, the source name.
                    let target = match target {
                        None if *file != source => Some(if secret {
                            source.clone()
                        } else {
                            format!("/{source}")
                        }),
                        t => t,
                    };
                    out.push(FileMount {
                        file: file.clone(),
                        target,
                        mode,
                        uid,
                        gid,
                        external: None,
                    });
                }
                Some(None) => w.add(
                    &p,
                    format!(
                        "the {kind} {source} was not carried over (see {kind}s.{source}): dropped"
                    ),
                ),
                None => w.add(
                    &p,
                    format!(
                        "the {kind} {source} is not declared under the top-level {kind}s: dropped"
                    ),
                ),
            }
        }
        out
    }

    /// The networks a service joins, and its extra aliases by network.
    fn service_networks(
        &self,
        value: &Value,
        path: &str,
        w: &mut Warnings,
    ) -> (Vec<String>, BTreeMap<String, Vec<String>>) {
        let mut names: Vec<(String, String)> = Vec::new();
        let mut aliases = BTreeMap::new();
        match value {
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let Some(n) = text(item, &format!("{path}[{i}]"), w) {
                        names.push((n, format!("{path}[{i}]")));
                    }
                }
            }
            Value::Object(m) => {
                for (name, def) in m {
                    let p = format!("{path}.{name}");
                    if let Value::Object(opts) = def {
                        for (k, v) in opts {
                            if v.is_null() || k.starts_with("x-") {
                                continue;
                            }
                            if k == "aliases" {
                                let list = string_list(v, &format!("{p}.aliases"), w);
                                if !list.is_empty() {
                                    aliases.insert(name.clone(), list);
                                }
                            } else {
                                w.add(&format!("{p}.{k}"), "not supported by kargo: dropped");
                            }
                        }
                    }
                    names.push((name.clone(), p));
                }
            }
            _ => w.add(path, "expected a list or a map: dropped"),
        }
        let mut out = Vec::new();
        let mut out_aliases = BTreeMap::new();
        for (name, p) in names {
            let real = match self.networks.get(&name) {
                Some(real) => real.clone(),
                // Docker's implicit network of the stack.
                None if name == "default" => name.clone(),
                None => {
                    w.add(
                        &p,
                        format!("the network {name} is not declared under the top-level networks (docker stack deploy refuses this): dropped"),
                    );
                    continue;
                }
            };
            if let Some(a) = aliases.remove(&name) {
                out_aliases.insert(real.clone(), a);
            }
            if !out.contains(&real) {
                out.push(real);
            }
        }
        (out, out_aliases)
    }

    fn deploy(
        &self,
        value: &Value,
        path: &str,
        spec: &mut ServiceSpec,
        kept: &mut Kept,
        w: &mut Warnings,
    ) {
        let Some(m) = value.as_object() else {
            w.add(path, "expected a map: dropped");
            return;
        };
        let mut deploy = Deploy::default();
        let mut replicas = None;
        for (key, v) in m {
            let p = format!("{path}.{key}");
            let p = p.as_str();
            match key.as_str() {
                "mode" => {
                    deploy.mode = parse_enum::<DeployMode>(
                        v,
                        p,
                        "replicated, global, replicated-job, global-job",
                        w,
                    )
                }
                "replicas" => match interpolated_number(v) {
                    Some(s) => replicas = Some(s),
                    None => deploy.replicas = number(v, p, w),
                },
                "update_config" | "rollback_config" => {
                    let mut u = update_policy(v, p, w);
                    // convertUpdateConfig: parallelism defaults to 1, not "all at once".
                    if let Some(u) = u.as_mut() {
                        u.parallelism.get_or_insert(1);
                    }
                    if key == "update_config" {
                        deploy.update_config = u;
                    } else {
                        deploy.rollback_config = u;
                    }
                }
                "labels" => spec.labels = Some(key_values(v, p, &|_| String::new(), w)),
                "endpoint_mode" => {
                    spec.endpoint_mode = parse_enum::<EndpointMode>(v, p, "vip, dnsrr", w)
                }
                "placement" => deploy.placement = placement(v, p, w),
                "resources" => deploy.resources = resources(v, p, w),
                "restart_policy" => deploy.restart_policy = restart_policy(v, p, w),
                k if k.starts_with("x-") => {}
                _ => w.add(p, "not supported by kargo: dropped"),
            }
        }
        if matches!(
            deploy.mode,
            Some(DeployMode::Global | DeployMode::GlobalJob)
        ) && (deploy.replicas.is_some() || replicas.is_some())
        {
            w.add(
                &format!("{path}.replicas"),
                "replicas with a global mode: docker stack deploy refuses this; dropped",
            );
            deploy.replicas = None;
            replicas = None;
        }
        if let Some(s) = replicas {
            kept.add("/deploy/replicas".into(), s);
        }
        if deploy != Deploy::default() {
            spec.deploy = Some(deploy);
        }
    }
}

/// The warning for a service key kargo does not carry over.
fn unsupported_service_key(key: &str) -> String {
    match key {
        "container_name" => "Swarm names the containers: dropped".into(),
        "links" | "external_links" => {
            "services reach each other by name on a shared network (front or back): dropped".into()
        }
        "network_mode" => "Swarm services join overlay networks only: dropped".into(),
        "expose" => "ports need no declaration to be reached on an overlay network: dropped".into(),
        "privileged" | "security_opt" | "devices" => {
            format!("{key} is not supported by kargo: dropped")
        }
        _ => "not supported by kargo: dropped".into(),
    }
}

fn short_port(s: &str, path: &str, w: &mut Warnings) -> Vec<Port> {
    if s.contains('$') {
        w.add(
            path,
            format!("{s:?} is interpolated: kargo's ports are numbers; write them in the Service; dropped"),
        );
        return Vec::new();
    }
    let (rest, protocol) = match s.rsplit_once('/') {
        Some((r, proto)) => match proto {
            "tcp" => (r, Some(Protocol::Tcp)),
            "udp" => (r, Some(Protocol::Udp)),
            "sctp" => (r, Some(Protocol::Sctp)),
            _ => {
                w.add(path, format!("{s:?}: unknown protocol {proto:?}: dropped"));
                return Vec::new();
            }
        },
        None => (s, None),
    };
    // An IPv6 host address is written in brackets.
    let rest = match rest.strip_prefix('[') {
        Some(r) => match r.split_once("]:") {
            Some((ip, r)) => {
                w.add(path, format!("the host address {ip} is not supported: the port is published on every address"));
                r
            }
            None => {
                w.add(path, format!("{s:?} is not a port mapping: dropped"));
                return Vec::new();
            }
        },
        None => rest,
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let Some((published, target)) = published_and_target(&parts, s, path, w) else {
        return Vec::new();
    };
    let Some((t0, t1)) = port_range(target) else {
        w.add(
            path,
            format!("{s:?}: {target:?} is not a port or a range: dropped"),
        );
        return Vec::new();
    };
    let published = match published.map(port_range) {
        None => None,
        Some(Some(range)) => Some(range),
        Some(None) => {
            w.add(
                path,
                format!(
                    "{s:?}: {:?} is not a port or a range: dropped",
                    published.unwrap_or_default()
                ),
            );
            return Vec::new();
        }
    };
    if let Some((p0, p1)) = published
        && p1 - p0 != t1 - t0
    {
        w.add(
            path,
            format!("{s:?}: the published and target ranges differ in size: dropped"),
        );
        return Vec::new();
    }
    (0..=(t1 - t0))
        .map(|i| Port {
            target: t0 + i,
            published: published.map(|(p0, _)| p0 + i),
            protocol,
            mode: None,
        })
        .collect()
}

/// Splits `s` at each `sep` outside `${...}` (`${PORT:-8080}:80` is two parts).
fn split_outside_braces(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '$' if chars.peek().map(|(_, c)| *c) == Some('{') => {
                depth += 1;
                chars.next();
            }
            '}' if depth > 0 => depth -= 1,
            c if c == sep && depth == 0 => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// A short-syntax port mapping, keeping a `${VAR}` published or target port as written
/// (Docker interpolates the file before reading it): each port comes with the strings to
/// set at its `published` / `target` key. A variable port is a single port, not a range.
fn short_port_kept(
    s: &str,
    path: &str,
    w: &mut Warnings,
) -> Vec<(Port, Vec<(&'static str, String)>)> {
    if !has_interpolation(s) {
        return short_port(s, path, w)
            .into_iter()
            .map(|p| (p, Vec::new()))
            .collect();
    }
    let (rest, protocol) = match split_outside_braces(s, '/').as_slice() {
        [rest] => (*rest, None),
        [rest, proto] => match *proto {
            "tcp" => (*rest, Some(Protocol::Tcp)),
            "udp" => (*rest, Some(Protocol::Udp)),
            "sctp" => (*rest, Some(Protocol::Sctp)),
            _ => {
                w.add(path, format!("{s:?}: unknown protocol {proto:?}: dropped"));
                return Vec::new();
            }
        },
        _ => {
            w.add(path, format!("{s:?} is not a port mapping: dropped"));
            return Vec::new();
        }
    };
    let parts = split_outside_braces(rest, ':');
    let Some((published, target)) = published_and_target(&parts, s, path, w) else {
        return Vec::new();
    };
    if !has_interpolation(target) && !published.is_some_and(has_interpolation) {
        // Only the host address was a variable, and it is not carried anyway.
        let mut mapping = match published {
            Some(p) => format!("{p}:{target}"),
            None => target.to_string(),
        };
        if let Some((_, proto)) = s.rsplit_once('/') {
            mapping = format!("{mapping}/{proto}");
        }
        return short_port(&mapping, path, w)
            .into_iter()
            .map(|p| (p, Vec::new()))
            .collect();
    }
    let mut strings = Vec::new();
    // Each end: a kept string (0 stands for it until it is set), or a single port.
    let mut end = |key: &'static str, text: &str, w: &mut Warnings| -> Option<u16> {
        if has_interpolation(text) {
            strings.push((key, text.to_string()));
            return Some(0);
        }
        match port_range(text) {
            Some((a, b)) if a == b => Some(a),
            _ => {
                w.add(
                    path,
                    format!("{s:?}: {text:?} is not a port (a range cannot go with a variable port): dropped"),
                );
                None
            }
        }
    };
    let Some(target) = end("target", target, w) else {
        return Vec::new();
    };
    let published = match published {
        Some(p) => match end("published", p, w) {
            Some(n) => Some(n),
            None => return Vec::new(),
        },
        None => None,
    };
    let port = Port {
        target,
        published,
        protocol,
        mode: None,
    };
    vec![(port, strings)]
}

fn healthcheck(value: &Value, path: &str, w: &mut Warnings) -> Option<Healthcheck> {
    let Some(m) = value.as_object() else {
        w.add(path, "expected a map: dropped");
        return None;
    };
    unknown_keys(
        m,
        &[
            "test",
            "interval",
            "timeout",
            "retries",
            "start_period",
            "disable",
        ],
        path,
        w,
    );
    let disabled = m.get("disable").and_then(Value::as_bool).unwrap_or(false);
    let test = if disabled {
        Some(vec!["NONE".to_string()])
    } else {
        match m.get("test") {
            Some(Value::String(s)) => Some(vec!["CMD-SHELL".to_string(), s.clone()]),
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| text(v, &format!("{path}.test[{i}]"), w))
                    .collect(),
            ),
            Some(other) => {
                w.add(
                    &format!("{path}.test"),
                    format!("{other} is not a test: dropped"),
                );
                None
            }
            None => None,
        }
    };
    let Some(test) = test else {
        w.add(
            path,
            "no test: kargo's healthcheck needs one (compose would keep the image's test with these timings): dropped",
        );
        return None;
    };
    let duration =
        |k: &str, w: &mut Warnings| m.get(k).and_then(|v| text(v, &format!("{path}.{k}"), w));
    Some(Healthcheck {
        test,
        interval: duration("interval", w),
        timeout: duration("timeout", w),
        retries: m
            .get("retries")
            .and_then(|v| number(v, &format!("{path}.retries"), w))
            .and_then(|n| u32::try_from(n).ok()),
        start_period: duration("start_period", w),
    })
}

fn placement(value: &Value, path: &str, w: &mut Warnings) -> Option<Placement> {
    let m = value.as_object()?;
    unknown_keys(
        m,
        &["constraints", "preferences", "max_replicas_per_node"],
        path,
        w,
    );
    let constraints = m
        .get("constraints")
        .map(|v| string_list(v, &format!("{path}.constraints"), w));
    let preferences = m.get("preferences").map(|v| {
        let mut out = Vec::new();
        for (i, item) in v.as_array().into_iter().flatten().enumerate() {
            match item.get("spread").and_then(Value::as_str) {
                Some(spread) => out.push(PlacementPreference {
                    spread: spread.to_string(),
                }),
                None => w.add(
                    &format!("{path}.preferences[{i}]"),
                    "only `spread` preferences exist: dropped",
                ),
            }
        }
        out
    });
    let max_replicas_per_node = m
        .get("max_replicas_per_node")
        .and_then(|v| number(v, &format!("{path}.max_replicas_per_node"), w));
    Some(Placement {
        constraints,
        preferences,
        max_replicas_per_node,
    })
}

fn amounts(value: &Value, path: &str, w: &mut Warnings) -> Option<ResourceAmounts> {
    let m = value.as_object()?;
    unknown_keys(m, &["cpus", "memory"], path, w);
    Some(ResourceAmounts {
        cpus: m
            .get("cpus")
            .and_then(|v| text(v, &format!("{path}.cpus"), w)),
        memory: m.get("memory").and_then(|v| {
            let p = format!("{path}.memory");
            let s = text(v, &p, w)?;
            // Kargo's own sizes stay as written; Docker's fractions become exact bytes.
            let exact = if s.bytes().all(|b| b.is_ascii_alphanumeric())
                && !s.contains('.')
                && s.trim_end_matches(|c: char| c.is_ascii_alphabetic())
                    .bytes()
                    .all(|b| b.is_ascii_digit())
                && s.len() < 20
                && crate::api::quantity::parse_memory_bytes(&s).is_ok()
            {
                Some(s.clone())
            } else {
                memory_size(&s)
            };
            if exact.is_none() {
                w.add(&p, format!("{s:?} is not a memory size: dropped"));
            }
            exact
        }),
    })
}

fn resources(value: &Value, path: &str, w: &mut Warnings) -> Option<Resources> {
    let m = value.as_object()?;
    unknown_keys(m, &["limits", "reservations"], path, w);
    Some(Resources {
        limits: m
            .get("limits")
            .and_then(|v| amounts(v, &format!("{path}.limits"), w)),
        reservations: m
            .get("reservations")
            .and_then(|v| amounts(v, &format!("{path}.reservations"), w)),
    })
}

fn restart_policy(value: &Value, path: &str, w: &mut Warnings) -> Option<RestartPolicy> {
    let m = value.as_object()?;
    unknown_keys(
        m,
        &["condition", "delay", "max_attempts", "window"],
        path,
        w,
    );
    Some(RestartPolicy {
        condition: m.get("condition").and_then(|v| {
            parse_enum::<RestartCondition>(
                v,
                &format!("{path}.condition"),
                "none, on-failure, any",
                w,
            )
        }),
        delay: m
            .get("delay")
            .and_then(|v| text(v, &format!("{path}.delay"), w)),
        max_attempts: m
            .get("max_attempts")
            .and_then(|v| number(v, &format!("{path}.max_attempts"), w)),
        window: m
            .get("window")
            .and_then(|v| text(v, &format!("{path}.window"), w)),
    })
}

/// The legacy `restart:` as Docker converts it (`no` sets nothing).
fn legacy_restart(value: &Value, path: &str, w: &mut Warnings) -> Option<RestartPolicy> {
    let s = text(value, path, w)?;
    let (name, count) = match s.split_once(':') {
        Some((n, c)) => (n, c.trim().parse::<u64>().ok().filter(|c| *c > 0)),
        None => (s.as_str(), None),
    };
    let condition = match name {
        "no" | "" => return None,
        "always" | "unless-stopped" => RestartCondition::Any,
        "on-failure" => RestartCondition::OnFailure,
        other => {
            w.add(
                path,
                format!("{other:?} is not a restart policy (no, always, on-failure, unless-stopped): dropped"),
            );
            return None;
        }
    };
    Some(RestartPolicy {
        condition: Some(condition),
        max_attempts: count,
        ..RestartPolicy::default()
    })
}

/// `true`/`false`, or a warning.
fn flag(value: &Value, path: &str, w: &mut Warnings) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s == "true" || s == "false" => Some(s == "true"),
        other => {
            w.add(path, format!("{other} is not true or false: dropped"));
            None
        }
    }
}

/// Compose `logging`.
fn logging(value: &Value, path: &str, w: &mut Warnings) -> Option<Logging> {
    let m = value.as_object()?;
    unknown_keys(m, &["driver", "options"], path, w);
    let Some(driver) = m.get("driver").and_then(Value::as_str) else {
        w.add(
            path,
            "no driver: the daemon's default log driver is used; dropped",
        );
        return None;
    };
    let options = m
        .get("options")
        .map(|o| key_values(o, &format!("{path}.options"), &|_| String::new(), w))
        .filter(|o| !o.is_empty());
    Some(Logging {
        driver: driver.to_string(),
        options,
    })
}

/// Compose `ulimits`: a number (soft = hard) or `soft`/`hard`.
fn ulimits(value: &Value, path: &str, w: &mut Warnings) -> Option<BTreeMap<String, Ulimit>> {
    let m = value.as_object()?;
    let mut out = BTreeMap::new();
    for (name, v) in m {
        let p = format!("{path}.{name}");
        let as_i64 = |v: Option<&Value>| v.and_then(whole).and_then(|n| i64::try_from(n).ok());
        let limit = match v {
            Value::Object(o) => as_i64(o.get("soft")).zip(as_i64(o.get("hard"))),
            single => as_i64(Some(single)).map(|n| (n, n)),
        };
        match limit {
            Some((soft, hard)) => {
                out.insert(name.clone(), Ulimit { soft, hard });
            }
            None => w.add(&p, "expected a number or soft and hard numbers: dropped"),
        }
    }
    (!out.is_empty()).then_some(out)
}

fn update_policy(value: &Value, path: &str, w: &mut Warnings) -> Option<UpdatePolicy> {
    let m = value.as_object()?;
    unknown_keys(
        m,
        &[
            "parallelism",
            "delay",
            "failure_action",
            "monitor",
            "max_failure_ratio",
            "order",
        ],
        path,
        w,
    );
    Some(UpdatePolicy {
        parallelism: m
            .get("parallelism")
            .and_then(|v| number(v, &format!("{path}.parallelism"), w)),
        delay: m
            .get("delay")
            .and_then(|v| text(v, &format!("{path}.delay"), w)),
        failure_action: m.get("failure_action").and_then(|v| {
            parse_enum::<FailureAction>(
                v,
                &format!("{path}.failure_action"),
                "pause, continue, rollback",
                w,
            )
        }),
        monitor: m
            .get("monitor")
            .and_then(|v| text(v, &format!("{path}.monitor"), w)),
        max_failure_ratio: m
            .get("max_failure_ratio")
            .and_then(|v| text(v, &format!("{path}.max_failure_ratio"), w)),
        order: m.get("order").and_then(|v| {
            parse_enum::<UpdateOrder>(v, &format!("{path}.order"), "stop-first, start-first", w)
        }),
    })
}

/// `[[ip:]published:]target` split on `:` → (published, target); a host address is warned
/// about (it is not carried), anything else is not a port mapping (`None`, warned).
fn published_and_target<'a>(
    parts: &[&'a str],
    s: &str,
    path: &str,
    w: &mut Warnings,
) -> Option<(Option<&'a str>, &'a str)> {
    match parts {
        [target] => Some((None, *target)),
        [published, target] => Some((Some(*published), *target)),
        [ip, published, target] => {
            w.add(
                path,
                format!(
                    "the host address {ip} is not supported: the port is published on every address"
                ),
            );
            Some((Some(*published).filter(|p| !p.is_empty()), *target))
        }
        _ => {
            w.add(path, format!("{s:?} is not a port mapping: dropped"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Document, ServiceStatus, StackStatus};
    use serde_json::json;

    /// A compose file with each construct `docker stack deploy` honours, and some it does not.
    const COMPOSE: &str = r#"
version: "3.8"
x-common: &common
  restart_policy:
    condition: on-failure
services:
  web:
    image: nginx:1.19
    entrypoint: /docker-entrypoint.sh
    command: nginx -g 'daemon off;'
    environment:
      - MODE=production
      - API_URL=http://api:8080
      - FROM_SHELL
    ports:
      - "8080:80"
      - "5353:53/udp"
      - 9000-9001:9000-9001
      - 443
      - target: 8443
        published: 8443
        protocol: tcp
        mode: host
    volumes:
      - static:/usr/share/nginx/html:ro
      - ./conf.d:/etc/nginx/conf.d
      - /var/log/nginx:/var/log/nginx
      - type: volume
        source: cache
        target: /var/cache/nginx
      - type: tmpfs
        target: /tmp
    configs:
      - nginx_conf
      - source: site_conf
        target: /etc/nginx/sites/site.conf
        mode: 0440
    secrets:
      - source: tls_key
        target: server.key
        mode: 0o400
        uid: "101"
    healthcheck:
      test: curl -f http://localhost/ || exit 1
      interval: 30s
      timeout: 5s
      retries: 3
      start_period: 10s
    networks:
      - front
      - internal
    labels:
      com.example.role: frontend
    deploy:
      mode: replicated
      replicas: 2
      labels:
        - traefik.enable=true
        - traefik.port=80
      endpoint_mode: vip
      placement:
        constraints: [node.role == worker]
        preferences:
          - spread: node.labels.zone
        max_replicas_per_node: 1
      resources:
        limits:
          cpus: "0.50"
          memory: 512M
        reservations:
          cpus: 0.25
          memory: 128M
      <<: *common
      update_config:
        parallelism: 1
        delay: 10s
        failure_action: rollback
        monitor: 30s
        max_failure_ratio: 0.1
        order: start-first
      rollback_config:
        parallelism: 0
        order: stop-first
    depends_on:
      - api
    hostname: web
    user: "101:101"
    working_dir: /usr/share/nginx
    stop_grace_period: 20s
    build: ./web
    container_name: my-web
    links: [api]
    privileged: true
    cap_add: [NET_ADMIN]
    logging:
      driver: json-file
    extra_hosts:
      - "db:10.0.0.5"
    x-notes: ignored

  api:
    image: "${REGISTRY:-docker.io}/example/api:${API_TAG}"
    command: ["node", "server.js", "--port", "8080"]
    environment:
      NODE_ENV: production
      WORKERS: 4
      DEBUG: false
      SECRET_FROM_SHELL:
    env_file: ./api.env
    networks:
      internal:
        aliases: [backend]
    healthcheck:
      test: ["CMD", "wget", "-q", "--spider", "http://localhost:8080/health"]
    deploy:
      mode: global
      replicas: ${API_REPLICAS}
      endpoint_mode: dnsrr
      restart_policy:
        condition: any
        delay: 5s
        max_attempts: 3
        window: 2m

  Worker_1:
    image: example/worker:2
    healthcheck:
      disable: true
    networks:
      - default
    deploy:
      mode: replicated-job

networks:
  front:
    external: true
    name: ${DOCKER_FRONT_NETWORK}
  internal:
    driver: overlay

volumes:
  static: {}
  cache:
    driver: local
    driver_opts:
      type: nfs

configs:
  nginx_conf:
    file: ./nginx.conf
  site_conf:
    file: ./site.conf
  external_conf:
    external: true

secrets:
  tls_key:
    file: ./secrets/tls.key
"#;

    fn fixture() -> (tempfile::TempDir, ComposeImport) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let write = |name: &str, content: &str| {
            let path = dir.path().join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
            }
            std::fs::write(path, content).unwrap_or_else(|e| panic!("{e}"));
        };
        write("docker-compose.yml", COMPOSE);
        write("nginx.conf", "worker_processes 1;\n");
        write("site.conf", "server { listen 80; }\n");
        write("secrets/tls.key", "-----BEGIN KEY-----\n");
        write(
            "api.env",
            "# comment\nLOG_LEVEL=debug\nNODE_ENV=overridden\nPRICE=$5\n",
        );
        let result = import_compose_file(&dir.path().join("docker-compose.yml"), "shop")
            .unwrap_or_else(|e| panic!("{e}"));
        (dir, result)
    }

    fn spec_of(r: &ComposeImport, name: &str) -> ServiceSpec {
        let doc = r
            .services
            .iter()
            .find(|d| d["spec"]["serviceName"] == json!(name))
            .unwrap_or_else(|| panic!("no service {name}"));
        let parsed: Document<ServiceSpec, ServiceStatus> =
            serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        parsed.spec
    }

    fn warned(r: &ComposeImport, path: &str) -> bool {
        r.warnings.iter().any(|w| w.path == path)
    }

    #[test]
    fn every_document_deserializes_into_its_kind() {
        let (_dir, r) = fixture();
        assert_eq!(r.services.len(), 3);
        for doc in &r.services {
            let parsed: Result<Document<ServiceSpec, ServiceStatus>, _> =
                serde_json::from_value(doc.clone());
            if let Err(e) = parsed {
                panic!("{doc}: {e}");
            }
        }
        let stack: Result<Document<StackSpec, StackStatus>, _> =
            serde_json::from_value(r.stack.clone());
        if let Err(e) = stack {
            panic!("{e}");
        }
        assert!(
            r.configuration.is_none(),
            "the files belong to the Stack: no Configuration to collide with another import"
        );
    }

    #[test]
    fn every_service_passes_the_schema() {
        use crate::api::schema::Mode;
        use crate::manifest::validate::validate_spec;
        let (_dir, r) = fixture();
        for doc in &r.services {
            let violations = validate_spec(Kind::Service, Mode::Stored, &doc["spec"]);
            assert!(
                violations.is_empty(),
                "{}: {violations:?}",
                doc["metadata"]["name"]
            );
        }
    }

    #[test]
    fn the_stack_lists_services_in_file_order() {
        let (_dir, r) = fixture();
        assert_eq!(r.stack["metadata"]["name"], json!("shop"));
        assert_eq!(
            r.stack["spec"]["services"],
            json!(["shop-web", "shop-api", "shop-worker-1"]),
            "named by the Stack, so two imports never collide"
        );
        assert_eq!(spec_of(&r, "web").service_name.as_deref(), Some("web"));
        assert!(warned(&r, "services.Worker_1"), "renaming is reported");
    }

    #[test]
    fn entrypoint_becomes_command_and_command_becomes_args() {
        let (_dir, r) = fixture();
        let web = spec_of(&r, "web");
        assert_eq!(web.command, Some(vec!["/docker-entrypoint.sh".to_string()]));
        assert_eq!(
            web.args,
            Some(vec!["nginx".to_string(), "-g".into(), "daemon off;".into()])
        );
        let api = spec_of(&r, "api");
        assert_eq!(
            api.args,
            Some(vec![
                "node".to_string(),
                "server.js".into(),
                "--port".into(),
                "8080".into()
            ])
        );
        assert_eq!(
            api.image.as_deref(),
            Some("${REGISTRY:-docker.io}/example/api:${API_TAG}")
        );
    }

    #[test]
    fn environment_lists_maps_and_env_files_merge() {
        let (_dir, r) = fixture();
        let web = spec_of(&r, "web").env.unwrap_or_default();
        assert_eq!(web["MODE"], "production");
        assert_eq!(web["FROM_SHELL"], "${FROM_SHELL}");
        let api = spec_of(&r, "api").env.unwrap_or_default();
        assert_eq!(api["WORKERS"], "4");
        assert_eq!(api["DEBUG"], "false");
        assert_eq!(api["SECRET_FROM_SHELL"], "${SECRET_FROM_SHELL}");
        // environment wins over env_file; env_file values are literal.
        assert_eq!(api["NODE_ENV"], "production");
        assert_eq!(api["LOG_LEVEL"], "debug");
        assert_eq!(api["PRICE"], "$$5");
    }

    #[test]
    fn ports_short_and_long_syntax() {
        let (_dir, r) = fixture();
        type Row = (u16, Option<u16>, Option<Protocol>, Option<PublishMode>);
        let ports: Vec<Row> = spec_of(&r, "web")
            .ports
            .unwrap_or_default()
            .into_iter()
            .map(|p| (p.target, p.published, p.protocol, p.mode))
            .collect();
        assert_eq!(
            ports,
            vec![
                (80, Some(8080), None, None),
                (53, Some(5353), Some(Protocol::Udp), None),
                (9000, Some(9000), None, None),
                (9001, Some(9001), None, None),
                (443, None, None, None),
                (
                    8443,
                    Some(8443),
                    Some(Protocol::Tcp),
                    Some(PublishMode::Host)
                ),
            ]
        );
    }

    #[test]
    fn short_port_edge_cases() {
        let mut w = Warnings::default();
        assert_eq!(short_port("127.0.0.1:80:8080", "p", &mut w).len(), 1);
        assert_eq!(
            short_port("127.0.0.1::8080", "p", &mut w)[0].published,
            None
        );
        assert_eq!(
            short_port("[::1]:80:8080", "p", &mut w)[0].published,
            Some(80)
        );
        assert_eq!(w.0.len(), 3, "host addresses are warned");
        for bad in [
            "${PORT}:80",
            "80/xtp",
            "0",
            "70000",
            "1-3:1-2",
            "a:b",
            "1:2:3:4",
        ] {
            let mut w = Warnings::default();
            assert!(short_port(bad, "p", &mut w).is_empty(), "{bad}");
            assert_eq!(w.0.len(), 1, "{bad}");
        }
    }

    #[test]
    fn variable_replicas_and_ports_are_kept_as_written() {
        let text = r#"
services:
  web:
    image: nginx
    ports:
      - "${PORT:-8080}:80"
      - "${HOST_IP}:9000:${INNER}/udp"
      - target: ${TARGET:-81}
        published: 8081
      - "${RANGE}:1-3"
    deploy:
      replicas: ${WEB_REPLICAS:-3}
"#;
        let r = import_compose_str(text, Path::new("."), "s").unwrap_or_else(|e| panic!("{e}"));
        let web = &r.services[0]["spec"];
        assert_eq!(web["deploy"]["replicas"], json!("${WEB_REPLICAS:-3}"));
        assert_eq!(
            web["ports"],
            json!([
                {"target": 80, "published": "${PORT:-8080}"},
                {"target": "${INNER}", "published": 9000, "protocol": "udp"},
                {"target": "${TARGET:-81}", "published": 8081},
            ])
        );
        let paths: Vec<&str> = r.warnings.iter().map(|w| w.path.as_str()).collect();
        assert_eq!(
            paths,
            ["services.web.ports[1]", "services.web.ports[3]"],
            "the host address and a range with a variable port are warned, nothing else"
        );
        let mut w = Warnings::default();
        assert_eq!(
            split_outside_braces("${A:-1:2}:${B}", ':'),
            ["${A:-1:2}", "${B}"]
        );
        assert!(short_port_kept("${P}:1-3", "p", &mut w).is_empty());
    }

    #[test]
    fn volumes_named_bind_and_tmpfs() {
        let (dir, r) = fixture();
        let base = std::fs::canonicalize(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let volumes: Vec<(VolumeType, Option<String>, String, Option<bool>)> = spec_of(&r, "web")
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| (v.type_, v.source, v.target, v.read_only))
            .collect();
        assert_eq!(
            volumes,
            vec![
                (
                    VolumeType::Volume,
                    Some("static".into()),
                    "/usr/share/nginx/html".into(),
                    Some(true)
                ),
                (
                    VolumeType::Bind,
                    Some(base.join("conf.d").display().to_string()),
                    "/etc/nginx/conf.d".into(),
                    None
                ),
                (
                    VolumeType::Bind,
                    Some("/var/log/nginx".into()),
                    "/var/log/nginx".into(),
                    None
                ),
                (
                    VolumeType::Volume,
                    Some("cache".into()),
                    "/var/cache/nginx".into(),
                    None
                ),
                (VolumeType::Tmpfs, None, "/tmp".into(), None),
            ]
        );
        assert!(
            warned(&r, "services.web.volumes[1]"),
            "relative bind is reported"
        );
        assert_eq!(
            r.stack["spec"]["volumes"]["cache"],
            json!({"driver": "local", "driverOpts": {"type": "nfs"}}),
            "the Stack declares the volume as the file does"
        );
    }

    #[test]
    fn configs_and_secrets_become_configuration_files() {
        let (_dir, r) = fixture();
        assert_eq!(
            r.files.keys().collect::<Vec<_>>(),
            vec!["nginx_conf", "site_conf", "tls_key"]
        );
        assert_eq!(r.files["nginx_conf"].content, "worker_processes 1;\n");
        assert!(!r.files["nginx_conf"].sensitive);
        assert!(r.files["tls_key"].sensitive);
        assert_eq!(
            r.stack["spec"]["files"]["tls_key"]["sensitive"],
            json!(true),
            "the files belong to the Stack"
        );
        let web = spec_of(&r, "web");
        assert_eq!(
            web.configs,
            Some(vec![
                FileMount {
                    file: "nginx_conf".into(),
                    target: None,
                    mode: None,
                    uid: None,
                    gid: None,
                    external: None,
                },
                FileMount {
                    file: "site_conf".into(),
                    target: Some("/etc/nginx/sites/site.conf".into()),
                    mode: Some("0440".into()),
                    uid: None,
                    gid: None,
                    external: None,
                },
            ])
        );
        assert_eq!(
            web.secrets,
            Some(vec![FileMount {
                file: "tls_key".into(),
                target: Some("server.key".into()),
                mode: Some("0400".into()),
                uid: Some("101".into()),
                gid: None,
                external: None,
            }])
        );
    }

    #[test]
    fn healthchecks_string_list_and_disabled() {
        let (_dir, r) = fixture();
        let web = spec_of(&r, "web").healthcheck;
        assert_eq!(
            web,
            Some(Healthcheck {
                test: vec![
                    "CMD-SHELL".into(),
                    "curl -f http://localhost/ || exit 1".into()
                ],
                interval: Some("30s".into()),
                timeout: Some("5s".into()),
                retries: Some(3),
                start_period: Some("10s".into()),
            })
        );
        assert_eq!(
            spec_of(&r, "api")
                .healthcheck
                .map(|h| h.test)
                .unwrap_or_default()[0],
            "CMD"
        );
        assert_eq!(
            spec_of(&r, "worker-1").healthcheck.map(|h| h.test),
            Some(vec!["NONE".to_string()])
        );
    }

    #[test]
    fn networks_map_to_front_and_real_names_with_warnings() {
        let (_dir, r) = fixture();
        assert_eq!(
            spec_of(&r, "web").networks,
            Some(vec!["front".to_string(), "internal".into()])
        );
        assert_eq!(
            spec_of(&r, "api").networks,
            Some(vec!["internal".to_string()])
        );
        assert_eq!(
            r.stack["spec"]["networks"],
            json!({"internal": {"driver": "overlay"}, "default": {}}),
            "the stack's own networks, and Docker's default one"
        );
        assert_eq!(
            spec_of(&r, "worker-1").networks,
            Some(vec!["default".to_string()])
        );
        assert!(spec_of(&r, "api").network_aliases.is_some());
    }

    #[test]
    fn labels_deploy_labels_and_container_labels() {
        let (_dir, r) = fixture();
        let web = spec_of(&r, "web");
        assert_eq!(
            web.labels,
            Some(BTreeMap::from([
                ("traefik.enable".to_string(), "true".to_string()),
                ("traefik.port".into(), "80".into())
            ]))
        );
        assert_eq!(
            web.container_labels,
            Some(BTreeMap::from([(
                "com.example.role".to_string(),
                "frontend".to_string()
            )]))
        );
    }

    #[test]
    fn deploy_settings_map_one_to_one() {
        let (_dir, r) = fixture();
        let web = spec_of(&r, "web");
        assert_eq!(web.endpoint_mode, Some(EndpointMode::Vip));
        let d = web.deploy.unwrap_or_default();
        assert_eq!(d.mode, Some(DeployMode::Replicated));
        assert_eq!(d.replicas, Some(2));
        let placement = d.placement.unwrap_or_default();
        assert_eq!(
            placement.constraints,
            Some(vec!["node.role == worker".to_string()])
        );
        assert_eq!(
            placement.preferences,
            Some(vec![PlacementPreference {
                spread: "node.labels.zone".into()
            }])
        );
        assert_eq!(placement.max_replicas_per_node, Some(1));
        let resources = d.resources.unwrap_or_default();
        let limits = resources.limits.unwrap_or_default();
        assert_eq!(
            (limits.cpus.as_deref(), limits.memory.as_deref()),
            (Some("0.50"), Some("512M"))
        );
        let reservations = resources.reservations.unwrap_or_default();
        assert_eq!(reservations.cpus.as_deref(), Some("0.25"));
        assert_eq!(
            d.restart_policy.and_then(|r| r.condition),
            Some(RestartCondition::OnFailure),
            "merge keys are applied"
        );
        let update = d.update_config.unwrap_or_default();
        assert_eq!(update.parallelism, Some(1));
        assert_eq!(update.failure_action, Some(FailureAction::Rollback));
        assert_eq!(update.max_failure_ratio.as_deref(), Some("0.1"));
        assert_eq!(update.order, Some(UpdateOrder::StartFirst));
        assert_eq!(d.rollback_config.and_then(|r| r.parallelism), Some(0));
        assert!(
            warned(&r, "services.web.deploy.update_config.order"),
            "host ports with start-first"
        );

        let api = spec_of(&r, "api");
        assert_eq!(api.endpoint_mode, Some(EndpointMode::Dnsrr));
        let d = api.deploy.unwrap_or_default();
        assert_eq!(d.mode, Some(DeployMode::Global));
        assert_eq!(d.replicas, None);
        assert!(
            warned(&r, "services.api.deploy.replicas"),
            "interpolated number"
        );
        let restart = d.restart_policy.unwrap_or_default();
        assert_eq!(restart.max_attempts, Some(3));
        assert_eq!(restart.window.as_deref(), Some("2m"));

        let job = spec_of(&r, "worker-1").deploy.and_then(|d| d.mode);
        assert_eq!(job, Some(DeployMode::ReplicatedJob));
    }

    #[test]
    fn plain_service_fields_are_carried() {
        let (_dir, r) = fixture();
        let web = spec_of(&r, "web");
        assert_eq!(web.hostname.as_deref(), Some("web"));
        assert_eq!(web.user.as_deref(), Some("101:101"));
        assert_eq!(web.working_dir.as_deref(), Some("/usr/share/nginx"));
        assert_eq!(web.stop_grace_period.as_deref(), Some("20s"));
        assert_eq!(web.depends_on, Some(vec!["shop-api".to_string()]));
        assert!(
            warned(&r, "services.web.depends_on"),
            "the behaviour change is reported"
        );
    }

    #[test]
    fn what_cannot_be_mapped_is_warned_by_key_path() {
        let (_dir, r) = fixture();
        for path in [
            "services.web.container_name",
            "services.web.links",
            "services.web.privileged",
        ] {
            assert!(warned(&r, path), "{path} not warned: {:#?}", r.warnings);
        }
        assert!(
            !warned(&r, "services.web.x-notes"),
            "extension keys are skipped"
        );
        assert!(!r.warnings.iter().any(|w| w.path.starts_with("x-common")));
    }

    #[test]
    fn a_build_path_becomes_an_absolute_context() {
        let (dir, r) = fixture();
        let web = spec_of(&r, "web");
        let build = web.build.unwrap_or_else(|| panic!("no build"));
        let base = std::fs::canonicalize(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(build.context, base.join("web").display().to_string());
        assert_eq!(build.dockerfile, None);
        assert!(!warned(&r, "services.web.build"), "{:#?}", r.warnings);
        assert!(spec_of(&r, "api").build.is_none());
    }

    #[test]
    fn the_build_mapping_is_read_with_args_and_labels_as_maps_or_lists() {
        let base = Path::new("/srv/app");
        let compose = r#"
services:
  web:
    image: registry.example.com/web:1
    build:
      context: ./src/../web
      dockerfile: docker/Dockerfile.prod
      args:
        VERSION: "1.2"
        DEBUG: false
        FROM_SHELL:
      target: runtime
      labels: ["team=maps", "tier"]
      cache_from: [registry.example.com/web:cache]
      network: host
  api:
    image: api:1
    build:
      context: /abs/api
      args: ["A=1", "B"]
      labels: {team: maps}
  worker:
    image: worker:1
    build:
      dockerfile: Dockerfile.worker
  remote:
    image: remote:1
    build: https://github.com/example/remote.git#main
  templated:
    image: t:1
    build: ${SRC}/t
"#;
        let r = import_compose_str(compose, base, "s").unwrap_or_else(|e| panic!("{e}"));
        let build = |name: &str| spec_of(&r, name).build.unwrap_or_else(|| panic!("{name}"));
        let web = build("web");
        assert_eq!(web.context, "/srv/app/web");
        assert_eq!(web.dockerfile.as_deref(), Some("docker/Dockerfile.prod"));
        assert_eq!(
            web.args,
            BTreeMap::from([
                ("DEBUG".into(), "false".into()),
                ("VERSION".into(), "1.2".into())
            ])
        );
        assert_eq!(web.target.as_deref(), Some("runtime"));
        assert_eq!(
            web.labels,
            BTreeMap::from([
                ("team".into(), "maps".into()),
                ("tier".into(), String::new())
            ])
        );
        assert_eq!(
            web.cache_from,
            vec!["registry.example.com/web:cache".to_string()]
        );
        assert!(
            warned(&r, "services.web.build.network"),
            "unknown keys are said"
        );
        let dropped = r
            .warnings
            .iter()
            .find(|w| w.path == "services.web.build.args")
            .unwrap_or_else(|| panic!("{:#?}", r.warnings));
        assert!(dropped.message.contains("FROM_SHELL") && dropped.message.contains("buildArgs"));
        let api = build("api");
        assert_eq!(api.context, "/abs/api");
        assert_eq!(api.args, BTreeMap::from([("A".into(), "1".into())]));
        assert!(warned(&r, "services.api.build.args"), "B has no value");
        assert_eq!(api.labels, BTreeMap::from([("team".into(), "maps".into())]));
        let worker = build("worker");
        assert_eq!(
            worker.context, "/srv/app",
            "compose's default context is the file's folder"
        );
        assert_eq!(worker.dockerfile.as_deref(), Some("Dockerfile.worker"));
        assert_eq!(
            build("remote").context,
            "https://github.com/example/remote.git#main"
        );
        assert!(
            warned(&r, "services.remote.build"),
            "remote contexts are said"
        );
        assert_eq!(build("templated").context, "${SRC}/t");
    }

    #[test]
    fn secret_contents_never_appear_in_warnings() {
        let (_dir, r) = fixture();
        assert!(
            r.warnings
                .iter()
                .all(|w| !w.to_string().contains("BEGIN KEY"))
        );
    }

    #[test]
    fn kargo_compose_files_map_their_networks_to_front_and_back() {
        let text = r#"
version: '3.5'
services:
  redis:
    image: ${REDIS_IMAGE}:${REDIS_TAG}
    volumes:
      - ${REDIS_VOLUME_PATH}redis_data:/data
    networks:
      - kargo-back-network
      - kargo-network
networks:
  kargo-back-network:
    name: ${DOCKER_BACK_NETWORK}
    external: true
  kargo-network:
    name: ${DOCKER_NETWORK}
    external: true
volumes:
  redis_data: {}
"#;
        let r = import_compose_str(text, Path::new("/srv"), "services")
            .unwrap_or_else(|e| panic!("{e}"));
        let redis = spec_of(&r, "redis");
        assert_eq!(
            redis.networks,
            Some(vec!["back".to_string(), "front".into()])
        );
        assert!(r.configuration.is_none());
        assert!(
            warned(&r, "services.redis.volumes[0]"),
            "interpolated source"
        );
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let base = Path::new("/srv");
        assert!(matches!(
            import_compose_str("services: [", base, "s"),
            Err(ComposeError::Parse { .. })
        ));
        assert!(matches!(
            import_compose_str("version: '3'", base, "s"),
            Err(ComposeError::NotCompose { .. })
        ));
        assert!(matches!(
            import_compose_str("services: {}", base, "Bad"),
            Err(ComposeError::InvalidStackName { .. })
        ));
        for text in [
            "services: {a: null}",
            "services: {a: 3}",
            "services: {a: {ports: 3, volumes: {}, configs: x, networks: 1, deploy: []}}",
            "services: {a: {ports: [[]], volumes: [1, ':', {}], healthcheck: {}, deploy: {placement: 1, resources: {limits: 2}}}}",
            "services: {a: {environment: [[1]], labels: 5, depends_on: {b: {}}, command: \"'unterminated\"}}",
            "services: {a: {configs: [{source: 1}], secrets: [nope], tmpfs: /run:size=1k}}",
        ] {
            let r = import_compose_str(text, base, "s");
            let r = r.unwrap_or_else(|e| panic!("{text}: {e}"));
            for doc in &r.services {
                let parsed: Result<Document<ServiceSpec, ServiceStatus>, _> =
                    serde_json::from_value(doc.clone());
                assert!(parsed.is_ok(), "{text}");
            }
        }
    }

    #[test]
    fn shell_split_keeps_a_variable_reference_whole() {
        assert_eq!(
            shell_split("--acme.email=${EMAIL?Variable EMAIL not set} --api"),
            Ok(vec![
                "--acme.email=${EMAIL?Variable EMAIL not set}".to_string(),
                "--api".to_string()
            ])
        );
    }

    #[test]
    fn shell_split_follows_posix_quoting() {
        assert_eq!(
            shell_split(r#"sh -c "echo \"hi\" $HOME" 'a b' c\ d"#).ok(),
            Some(vec![
                "sh".to_string(),
                "-c".into(),
                "echo \"hi\" $HOME".into(),
                "a b".into(),
                "c d".into()
            ])
        );
        assert!(shell_split("'open").is_err());
        assert_eq!(shell_split("  ").ok(), Some(vec![]));
        assert_eq!(shell_split("''").ok(), Some(vec![String::new()]));
    }
}
