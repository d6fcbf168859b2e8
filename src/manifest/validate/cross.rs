//! Checks across the objects of all the inputs (see the module documentation of
//! [`super`] for which references are checked when).
//!
//! Workers extract [`Facts`] from each document (its name and the names it refers to, with
//! their positions) and drop the document, so a large run keeps only these small records.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::Value;

use super::messages::{closest, did_you_mean};
use super::schema_errors::{escape, join_path};
use super::{Diagnostic, Rule};
use crate::api::Kind;
use crate::manifest::defaults;
use crate::manifest::yaml::tree;
use crate::manifest::yaml::{Position, Positions};

/// Longest Swarm service name.
const SWARM_NAME_MAX: usize = 63;

/// Which field a [`Reference`] comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    /// A Stack's `services` item.
    StackMember,
    /// A Stack's `dependsOn` item.
    StackDependsOn,
    /// A Service's `dependsOn` item.
    ServiceDependsOn,
    /// A Service's `configs[].file` or `secrets[].file`.
    MountedFile,
    /// An Environment's `stacks` item.
    EnvironmentStack,
    /// A key of an Environment's `services`.
    EnvironmentSettings,
    /// A Configuration's `environment`.
    ConfigurationEnvironment,
}

/// A name one object gives for another, with where it was written.
#[derive(Clone, Debug)]
pub(crate) struct Reference {
    field: Field,
    name: String,
    path: String,
    at: Position,
}

/// What the cross-object checks need of one document.
#[derive(Clone, Debug)]
pub(crate) struct Facts {
    document: usize,
    kind: Kind,
    name: String,
    name_at: Position,
    references: Vec<Reference>,
    /// A Configuration's file names.
    files: Vec<String>,
    /// An Environment's sensitive variable names.
    sensitive: Vec<String>,
    /// The variables referenced where a sensitive variable may not be (docs/security.md,
    /// "Sensitive variables"), with where.
    mentions: Vec<Mention>,
    /// A Service's `serviceName`: its name inside its Stack's Swarm names.
    service_name: Option<String>,
    /// The positions above are real (false for a document the fast reader read, whose
    /// positions are unknown until its file is read again).
    located: bool,
}

impl Facts {
    /// Whether the positions of these facts are real.
    pub(crate) fn is_located(&self) -> bool {
        self.located
    }

    /// The facts of document `index` of its file, of `kind` and named `name`, whose value
    /// is `root` and whose nodes were written at `positions` (unknown for the fast reader).
    pub(crate) fn extract<'a, V: View<'a>>(
        root: V,
        index: usize,
        positions: &Positions,
        kind: Kind,
        name: &str,
    ) -> Facts {
        let mut facts = Facts {
            document: index,
            kind,
            name: name.to_string(),
            name_at: positions.value("/metadata/name").unwrap_or(Position::START),
            references: Vec::new(),
            files: Vec::new(),
            sensitive: Vec::new(),
            mentions: Vec::new(),
            service_name: None,
            located: positions.is_known(),
        };
        let spec = root.get("spec");
        if let Some(spec) = spec {
            let mentions = &mut facts.mentions;
            crate::plan::restricted_strings(kind, spec, &mut |pointer, path, text| {
                let variables = crate::plan::mentioned_variables(text);
                if !variables.is_empty() {
                    mentions.push(Mention {
                        path: path.to_string(),
                        at: place(positions, pointer, false),
                        variables: variables.into_iter().map(str::to_string).collect(),
                    });
                }
            });
        }
        let field_of = |key: &str| spec.and_then(|s| s.get(key));
        let mut strings = |field: Field, key: &str| {
            let Some(items) = field_of(key).and_then(View::items) else {
                return;
            };
            for (i, item) in items.enumerate() {
                if let Some(name) = item.as_str() {
                    let pointer = format!("/spec/{key}/{i}");
                    let display = format!("spec.{key}[{i}]");
                    let at = place(positions, &pointer, false);
                    facts
                        .references
                        .push(Reference::new(field, name, display, at));
                }
            }
        };
        match kind {
            Kind::Stack => {
                strings(Field::StackMember, "services");
                strings(Field::StackDependsOn, "dependsOn");
                // A Stack's own files (docs/compose.md) are mountable like a Configuration's.
                if let Some(files) = field_of("files").and_then(View::keys) {
                    facts.files = files.map(str::to_string).collect();
                }
            }
            Kind::Service => {
                strings(Field::ServiceDependsOn, "dependsOn");
                facts.service_name = field_of("serviceName")
                    .and_then(View::as_str)
                    .map(str::to_string);
                for key in ["configs", "secrets"] {
                    let Some(items) = field_of(key).and_then(View::items) else {
                        continue;
                    };
                    for (i, item) in items.enumerate() {
                        // An external mount names an existing Swarm object, not a file.
                        let external = item.get("external").is_some_and(View::is_true);
                        if let Some(file) = item.get("file").and_then(View::as_str)
                            && !external
                        {
                            let pointer = format!("/spec/{key}/{i}/file");
                            let display = format!("spec.{key}[{i}].file");
                            let at = place(positions, &pointer, false);
                            facts.references.push(Reference::new(
                                Field::MountedFile,
                                file,
                                display,
                                at,
                            ));
                        }
                    }
                }
            }
            Kind::Environment => {
                if let Some(names) = field_of("sensitiveVariables").and_then(View::keys) {
                    facts.sensitive = names.map(str::to_string).collect();
                }
                strings(Field::EnvironmentStack, "stacks");
                if let Some(services) = field_of("services").and_then(View::keys) {
                    for service in services {
                        let pointer = format!("/spec/services/{}", escape(service));
                        let display = join_path("spec.services", service);
                        let at = place(positions, &pointer, true);
                        facts.references.push(Reference::new(
                            Field::EnvironmentSettings,
                            service,
                            display,
                            at,
                        ));
                    }
                }
            }
            Kind::Configuration => {
                if let Some(env) = field_of("environment").and_then(View::as_str) {
                    let at = place(positions, "/spec/environment", false);
                    facts.references.push(Reference::new(
                        Field::ConfigurationEnvironment,
                        env,
                        "spec.environment".to_string(),
                        at,
                    ));
                }
                if let Some(files) = field_of("files").and_then(View::keys) {
                    facts.files = files.map(str::to_string).collect();
                }
            }
        }
        facts
    }

    /// `kind/name`.
    fn reference(&self) -> String {
        format!("{}/{}", self.kind.singular(), self.name)
    }
}

/// The variables one string references, in a place where a sensitive one may not appear.
#[derive(Clone, Debug)]
pub(crate) struct Mention {
    path: String,
    at: Position,
    variables: Vec<String>,
}

/// The facts of one document and the file they come from (the file's name is kept once per
/// file, not copied into every document's facts).
#[derive(Clone, Copy, Debug)]
pub(crate) struct InFile<'a> {
    /// The file, as named.
    pub(crate) file: &'a str,
    /// The document's facts.
    pub(crate) facts: &'a Facts,
}

impl std::ops::Deref for InFile<'_> {
    type Target = Facts;

    fn deref(&self) -> &Facts {
        self.facts
    }
}

impl InFile<'_> {
    fn diagnostic(&self, path: &str, at: Position, rule: Rule, message: String) -> Diagnostic {
        Diagnostic {
            file: self.file.to_string(),
            line: at.line,
            column: at.column,
            document: Some(self.document),
            object: Some(self.reference()),
            path: path.to_string(),
            rule,
            message,
        }
    }
}

impl Reference {
    fn new(field: Field, name: &str, path: String, at: Position) -> Self {
        Reference {
            field,
            name: name.to_string(),
            path,
            at,
        }
    }
}

/// Where the node at `pointer` (its key when `key`) was written; the start of the file for
/// a document the fast reader read (see `Facts::located`).
fn place(positions: &Positions, pointer: &str, key: bool) -> Position {
    if !positions.is_known() {
        Position::START
    } else if key {
        positions
            .key(pointer)
            .unwrap_or_else(|| positions.nearest(pointer))
    } else {
        positions
            .value(pointer)
            .unwrap_or_else(|| positions.nearest(pointer))
    }
}

/// What [`Facts::extract`] needs of a document's value: the full reader's `serde_json`
/// value or the fast reader's tree, read the same way.
pub(crate) trait View<'a>: Copy {
    /// The member `key` of a map.
    fn get(self, key: &str) -> Option<Self>;
    /// The text of a string.
    fn as_str(self) -> Option<&'a str>;
    /// The items of a list.
    fn items(self) -> Option<impl Iterator<Item = Self>>;
    /// The keys of a map.
    fn keys(self) -> Option<impl Iterator<Item = &'a str>>;
    /// True when the node is the boolean `true`.
    fn is_true(self) -> bool;
    /// The members of a map with their keys, or the items of a list with `None`.
    fn members(self) -> Vec<(Option<&'a str>, Self)>;
}

impl<'a> View<'a> for &'a Value {
    fn get(self, key: &str) -> Option<Self> {
        Value::get(self, key)
    }

    fn as_str(self) -> Option<&'a str> {
        Value::as_str(self)
    }

    fn items(self) -> Option<impl Iterator<Item = Self>> {
        self.as_array().map(|items| items.iter())
    }

    fn keys(self) -> Option<impl Iterator<Item = &'a str>> {
        self.as_object().map(|map| map.keys().map(String::as_str))
    }

    fn is_true(self) -> bool {
        self == &Value::Bool(true)
    }

    fn members(self) -> Vec<(Option<&'a str>, Self)> {
        match self {
            Value::Object(map) => map.iter().map(|(k, v)| (Some(k.as_str()), v)).collect(),
            Value::Array(items) => items.iter().map(|v| (None, v)).collect(),
            _ => Vec::new(),
        }
    }
}

impl<'a> View<'a> for tree::Node<'a> {
    fn get(self, key: &str) -> Option<Self> {
        tree::Node::get(self, key)
    }

    fn as_str(self) -> Option<&'a str> {
        tree::Node::as_str(self)
    }

    fn items(self) -> Option<impl Iterator<Item = Self>> {
        self.is_seq().then(|| self.children().map(|(_, n)| n))
    }

    fn keys(self) -> Option<impl Iterator<Item = &'a str>> {
        self.is_map().then(|| self.children().map(|(k, _)| k))
    }

    fn is_true(self) -> bool {
        self.to_value() == Value::Bool(true)
    }

    fn members(self) -> Vec<(Option<&'a str>, Self)> {
        let map = self.is_map();
        self.children()
            .map(|(k, n)| (map.then_some(k), n))
            .collect()
    }
}

/// Every cross-object problem among `objects`.
pub(super) fn check(objects: &[InFile<'_>]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let names = |kind: Kind| -> BTreeSet<&str> {
        objects
            .iter()
            .filter(|f| f.kind == kind)
            .map(|f| f.name.as_str())
            .collect()
    };
    let services = names(Kind::Service);
    let stacks = names(Kind::Stack);
    let environments = names(Kind::Environment);
    let has_configurations = objects.iter().any(|f| f.kind == Kind::Configuration);
    let files: BTreeSet<&str> = objects
        .iter()
        .flat_map(|f| f.files.iter().map(String::as_str))
        .collect();
    let catalog = defaults::names();
    let service_candidates = || services.iter().copied().chain(catalog.iter().copied());
    let is_service = |name: &str| services.contains(name) || defaults::contains(name);

    duplicates(objects, &mut out);
    swarm_names(objects, &mut out);
    for f in objects {
        for r in &f.references {
            let problem = match r.field {
                Field::StackMember => {
                    // `kargo-<stack>_<service>`, counted without building it.
                    let length = 7 + f.name.chars().count() + r.name.chars().count();
                    if length > SWARM_NAME_MAX {
                        let swarm = format!("kargo-{}_{}", f.name, r.name);
                        out.push(f.diagnostic(&r.path, r.at, Rule::Length, format!(
                            "the Swarm service name `{swarm}` would be {length} characters; Swarm allows {SWARM_NAME_MAX}: shorten the stack or service name"
                        )));
                    }
                    (!services.is_empty() && !is_service(&r.name)).then(|| {
                        format!(
                            "service `{}` is neither a Service in the input nor a built-in catalog entry{}",
                            r.name,
                            did_you_mean(closest(&r.name, service_candidates()))
                        )
                    })
                }
                Field::ServiceDependsOn => (!services.is_empty() && !is_service(&r.name))
                    .then(|| {
                        format!(
                            "service `{}` is neither a Service in the input nor a built-in catalog entry{}",
                            r.name,
                            did_you_mean(closest(&r.name, service_candidates()))
                        )
                    }),
                Field::EnvironmentSettings => (!services.is_empty() && !is_service(&r.name))
                    .then(|| {
                        format!(
                            "settings for service `{}`, which is neither a Service in the input nor a built-in catalog entry{}",
                            r.name,
                            did_you_mean(closest(&r.name, service_candidates()))
                        )
                    }),
                Field::StackDependsOn | Field::EnvironmentStack => {
                    (!stacks.is_empty() && !stacks.contains(r.name.as_str())).then(|| {
                        format!(
                            "stack `{}` is not a Stack in the input{}",
                            r.name,
                            did_you_mean(closest(&r.name, stacks.iter().copied()))
                        )
                    })
                }
                Field::ConfigurationEnvironment => (!environments.is_empty()
                    && !environments.contains(r.name.as_str()))
                .then(|| {
                    format!(
                        "environment `{}` is not an Environment in the input{}",
                        r.name,
                        did_you_mean(closest(&r.name, environments.iter().copied()))
                    )
                }),
                Field::MountedFile => {
                    // The catalog's password files are built in (docs/security.md, "The catalog").
                    let built_in = defaults::SECRET_PASSWORDS.iter().any(|p| p.file == r.name);
                    (has_configurations && !files.contains(r.name.as_str()) && !built_in).then(|| {
                        format!(
                            "file `{}` is not in the files of any Configuration in the input{}",
                            r.name,
                            did_you_mean(closest(&r.name, files.iter().copied()))
                        )
                    })
                }
            };
            if let Some(message) = problem {
                out.push(f.diagnostic(&r.path, r.at, Rule::Reference, message));
            }
        }
    }
    sensitive_misuse(objects, &mut out);
    cycles(objects, Kind::Stack, Field::StackDependsOn, &mut out);
    cycles(objects, Kind::Service, Field::ServiceDependsOn, &mut out);
    out
}

/// A sensitive variable of an Environment in the input referenced where `get` or `docker
/// service inspect` would show it (the plan's own check, `plan::sensitive_misuse`, with
/// positions).
fn sensitive_misuse(objects: &[InFile<'_>], out: &mut Vec<Diagnostic>) {
    let sensitive: BTreeSet<&str> = objects
        .iter()
        .flat_map(|f| f.sensitive.iter().map(String::as_str))
        .collect();
    if sensitive.is_empty() {
        return;
    }
    for f in objects {
        for m in &f.mentions {
            for v in m
                .variables
                .iter()
                .filter(|v| sensitive.contains(v.as_str()))
            {
                out.push(f.diagnostic(
                    &m.path,
                    m.at,
                    Rule::Sensitive,
                    format!(
                        "references the sensitive variable {v}, {}",
                        crate::plan::MISUSE
                    ),
                ));
            }
        }
    }
}

/// The same kind and name twice: the later one is reported, naming the first.
fn duplicates(objects: &[InFile<'_>], out: &mut Vec<Diagnostic>) {
    let mut seen: HashMap<(Kind, &str), &InFile<'_>> = HashMap::with_capacity(objects.len());
    for f in objects {
        if let Some(first) = seen.get(&(f.kind, f.name.as_str())) {
            out.push(f.diagnostic(
                "metadata.name",
                f.name_at,
                Rule::Duplicate,
                format!(
                    "{} `{}` is defined twice; the first is at {}:{}:{}",
                    f.kind, f.name, first.file, first.name_at.line, first.name_at.column
                ),
            ));
        } else {
            seen.insert((f.kind, f.name.as_str()), f);
        }
    }
}

/// Two members of one Stack that would be one Swarm service `kargo-<stack>_<name>` (a
/// `serviceName` equal to another member's): the plan refuses the later one, reported here
/// at its item in the Stack's `services`.
fn swarm_names(objects: &[InFile<'_>], out: &mut Vec<Diagnostic>) {
    let scoped: HashMap<&str, &str> = objects
        .iter()
        .filter(|f| f.kind == Kind::Service)
        .filter_map(|f| Some((f.name.as_str(), f.service_name.as_deref()?)))
        .collect();
    if scoped.is_empty() {
        return;
    }
    for f in objects.iter().filter(|f| f.kind == Kind::Stack) {
        let mut seen: HashMap<&str, &str> = HashMap::new();
        for r in f
            .references
            .iter()
            .filter(|r| r.field == Field::StackMember)
        {
            let member = r.name.as_str();
            let name = scoped.get(member).copied().unwrap_or(member);
            match seen.get(name) {
                Some(first) if *first != member => out.push(f.diagnostic(
                    &r.path,
                    r.at,
                    Rule::Duplicate,
                    format!(
                        "service `{member}` would be the Swarm service `kargo-{}_{name}` of service `{first}`: give one of them another serviceName",
                        f.name
                    ),
                )),
                Some(_) => {}
                None => {
                    seen.insert(name, member);
                }
            }
        }
    }
}

/// `dependsOn` cycles among the objects of `kind`: each cycle reported once, at the
/// `dependsOn` item that closes it. Iterative, so a long chain cannot overflow the stack.
fn cycles(objects: &[InFile<'_>], kind: Kind, field: Field, out: &mut Vec<Diagnostic>) {
    // Most inputs have no `dependsOn` at all: then there is no cycle to look for.
    if !objects
        .iter()
        .any(|f| f.kind == kind && f.references.iter().any(|r| r.field == field))
    {
        return;
    }
    let nodes: HashMap<&str, InFile<'_>> = objects
        .iter()
        .filter(|f| f.kind == kind)
        .map(|f| (f.name.as_str(), *f))
        .collect();
    let edges = |name: &str| -> Vec<&Reference> {
        nodes
            .get(name)
            .map(|f| {
                f.references
                    .iter()
                    .filter(|r| r.field == field && nodes.contains_key(r.name.as_str()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut done: HashSet<&str> = HashSet::new();
    let mut reported: HashSet<Vec<&str>> = HashSet::new();
    let mut roots: Vec<&str> = nodes.keys().copied().collect();
    roots.sort_unstable();
    for root in roots {
        if done.contains(root) {
            continue;
        }
        let first = edges(root);
        if first.is_empty() {
            // Most objects depend on nothing: no walk to make.
            done.insert(root);
            continue;
        }
        // (name, its edges, next edge to follow)
        let mut stack: Vec<(&str, Vec<&Reference>, usize)> = vec![(root, first, 0)];
        let mut on_path: HashSet<&str> = HashSet::from([root]);
        while let Some((name, list, next)) = stack.last_mut() {
            let name = *name;
            let Some(edge) = list.get(*next).copied() else {
                done.insert(name);
                on_path.remove(name);
                stack.pop();
                continue;
            };
            *next += 1;
            let target = edge.name.as_str();
            if on_path.contains(target) {
                let start = stack.iter().position(|(n, _, _)| *n == target).unwrap_or(0);
                let mut cycle: Vec<&str> = stack.iter().skip(start).map(|(n, _, _)| *n).collect();
                let mut key = cycle.clone();
                key.sort_unstable();
                if reported.insert(key) {
                    cycle.push(target);
                    if let Some(f) = nodes.get(name) {
                        out.push(f.diagnostic(
                            &edge.path,
                            edge.at,
                            Rule::Cycle,
                            format!("dependsOn cycle: {}", cycle.join(" → ")),
                        ));
                    }
                }
            } else if !done.contains(target) {
                on_path.insert(target);
                stack.push((target, edges(target), 0));
            }
        }
    }
}
