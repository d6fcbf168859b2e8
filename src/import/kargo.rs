//! `kargo import kargo DIR`: a whole Kargo workspace turned into one kargo workspace.
//!
//! A Kargo workspace is a `.env` (read after `.env.default`, as Kargo sourced them), one
//! compose fragment per service under `deploy/` (`deploy/<service>.yml`, the fragments of
//! one workspace, not stacks of their own) and the files they mount under `configs/`. The
//! result is what the other imports print, as one set of documents:
//!
//! - the Configuration `main`, naming the Environment and holding every file the fragments
//!   mount as a config or secret (`defaults: none`: the workspace says what each service
//!   is, so nothing is taken from kargo's catalog, unless a service has no fragment);
//! - the Environment, from the env files ([`super::envfile`]), with
//!   `unsetVariables: empty`: a variable no file sets is an empty string and a warning, as
//!   `docker stack deploy` made it for Kargo; and `rollout: parallel`, since Kargo's
//!   `deploy all` started each stack a few seconds after the previous one without waiting
//!   for it to be healthy (`ordered` gates each Stack on the previous one's Ready);
//! - one Stack per `STACKS` entry, listing the services of its fragments in order;
//! - one Service per service of the fragments ([`super::compose`]), with two things
//!   Docker decides after interpolation decided here with the workspace's variables:
//!   a `${VAR}` mount source whose value is a host path is a bind mount
//!   ([`VolumeType::for_source`]), and `replicas: ${VAR}` is kept for the Environment to
//!   fill.
//!
//! What is not carried over is listed by name: Kargo's `*_before.sh` / `*_after.sh`
//! hooks (shell run around a deploy) and `*.tpl` files (rendered by Kargo's `configure`).
//! The variables the services reference that no file sets are listed too, those that look
//! like secrets (`SECRET`, `PASSWORD`, `TOKEN`, `KEY`...) apart: they are what a user gives
//! the Environment before deploying.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::compose::{
    CONFIGURATION_NAME, ComposeError, ComposeImport, import_compose_file, import_compose_str,
};
use super::envfile::{EnvImportError, import_env_files};
use crate::api::{ConfigFile, UnsetVariables, VolumeType};
use crate::manifest::interpolate::{self, InterpolationError};
use crate::manifest::load::{MAX_FILE_BYTES, read_text_bounded};

/// What `kargo import kargo` produces.
#[derive(Clone, Debug, PartialEq)]
pub struct KargoImport {
    /// The Configuration `main`, the Environment, the Stacks, then the Services.
    pub documents: Vec<Value>,
    /// What was not carried over as written, each starting with its file.
    pub warnings: Vec<String>,
    /// Files of the workspace that are not carried over (hooks, templates), relative to it.
    pub not_carried: Vec<String>,
    /// Variables the services reference that no file sets and that look like secrets.
    pub secrets: Vec<String>,
    /// The other variables the services reference that no file sets (empty strings).
    pub unset: Vec<String>,
}

/// Why a workspace could not be imported at all.
#[derive(Debug, thiserror::Error)]
pub enum KargoImportError {
    /// The folder has neither `.env` nor `.env.default`.
    #[error("{}: not a Kargo workspace: it has neither .env nor .env.default", .dir.display())]
    NotAWorkspace {
        /// The folder given.
        dir: PathBuf,
    },
    /// The env files could not be read.
    #[error(transparent)]
    Env(#[from] EnvImportError),
    /// A fragment could not be read or is not a compose file.
    #[error("{}", compose_message(.file, .source))]
    Fragment {
        /// The fragment.
        file: PathBuf,
        /// The cause.
        source: ComposeError,
    },
}

/// A fragment's error, naming the fragment (the compose import of text names it `<compose>`).
fn compose_message(file: &Path, source: &ComposeError) -> String {
    let text = source.to_string();
    match text.strip_prefix("<compose>: ") {
        Some(rest) => format!("{}: {rest}", file.display()),
        None => text,
    }
}

/// The name of the Environment the import writes (the Configuration `main` names it).
pub const ENVIRONMENT_NAME: &str = "main";

/// Imports the Kargo workspace in `dir`.
pub fn import_kargo_workspace(dir: &Path) -> Result<KargoImport, KargoImportError> {
    let env_files: Vec<PathBuf> = [".env.default", ".env"]
        .iter()
        .map(|f| dir.join(f))
        .filter(|p| p.is_file())
        .collect();
    if env_files.is_empty() {
        return Err(KargoImportError::NotAWorkspace {
            dir: dir.to_path_buf(),
        });
    }
    let env = import_env_files(&env_files, ENVIRONMENT_NAME)?;
    let label = |p: &Path| {
        p.strip_prefix(dir)
            .map(|r| r.display().to_string())
            .unwrap_or_else(|_| p.display().to_string())
    };
    let mut warnings: Vec<String> = env
        .warnings
        .iter()
        .map(|w| {
            let file = Path::new(&w.file);
            format!("{}:{}: {}", label(file), w.line, w.message)
        })
        .collect();

    let mut environment = env.environment;
    let variables = setting_variables(&mut environment);
    let (resolved, _, _) = interpolate::resolve_variables_mode(&variables, UnsetVariables::Empty);

    let deploy = dir.join("deploy");
    let base = std::fs::canonicalize(&deploy).unwrap_or_else(|_| deploy.clone());
    let mut stacks = Vec::new();
    let mut services: Vec<Value> = Vec::new();
    let mut files: BTreeMap<String, ConfigFile> = BTreeMap::new();
    let mut missing_fragment = false;
    for stack in &env.stacks {
        let stack_name = stack
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let listed: Vec<String> = stack
            .pointer("/spec/services")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        let mut members = Vec::new();
        for service in &listed {
            let file = deploy.join(format!("{service}.yml"));
            let shown = label(&file);
            if !file.is_file() {
                missing_fragment = true;
                warnings.push(format!(
                    "{shown}: no such fragment: service {service} of stack {stack_name} is left to kargo's catalog"
                ));
                members.push(service.clone());
                continue;
            }
            let imported = import_fragment(&file, &base, &stack_name)?;
            let raw = raw_services(&file);
            let mut bound = BTreeSet::new();
            for mut doc in imported.services {
                let name = doc
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                if name != *service {
                    warnings.push(format!(
                        "{shown}: defines service {name}, not {service}: {name} joins stack {stack_name}"
                    ));
                }
                if services
                    .iter()
                    .any(|s| s.pointer("/metadata/name") == Some(&json!(name)))
                {
                    warnings.push(format!(
                        "{shown}: service {name} is already defined by an earlier fragment: this one is dropped"
                    ));
                    continue;
                }
                keep_replicas(&mut doc, raw.get(&name));
                for i in bind_host_paths(&mut doc, &resolved) {
                    bound.insert(format!("services.{name}.volumes[{i}]"));
                }
                members.push(name);
                services.push(doc);
            }
            for w in &imported.warnings {
                if !carried_replicas(w) && !bound.contains(&w.path) {
                    warnings.push(format!("{shown}: {w}"));
                }
            }
            for (file_name, content) in imported.files {
                match files.get(&file_name) {
                    Some(existing) if *existing != content => warnings.push(format!(
                        "{shown}: file {file_name} differs from the one of an earlier fragment: the first is kept"
                    )),
                    Some(_) => {}
                    None => {
                        files.insert(file_name, content);
                    }
                }
            }
        }
        let mut stack = stack.clone();
        if let Some(spec) = stack.get_mut("spec") {
            spec["services"] = json!(members);
        }
        stacks.push(stack);
    }

    for svc in &mut services {
        if let Some(note) = kargo_build(dir, svc) {
            warnings.push(note);
        }
    }
    let (secrets, unset) = unset_references(&services, &resolved);
    let mut configuration = json!({
        "apiVersion": crate::api::API_VERSION,
        "kind": "Configuration",
        "metadata": {"name": CONFIGURATION_NAME},
        "spec": {"environment": ENVIRONMENT_NAME},
    });
    if !missing_fragment {
        configuration["spec"]["defaults"] = json!("none");
    }
    if !files.is_empty() {
        configuration["spec"]["files"] = serde_json::to_value(&files).unwrap_or_default();
    }
    // Kargo's services bind-mount host folders (data, configs); the default `baseline`
    // policy refuses that unless the Configuration grants it, so the import grants it to
    // exactly those services, and says so.
    let binds: Vec<String> = services
        .iter()
        .filter(|svc| {
            svc["spec"]["volumes"]
                .as_array()
                .is_some_and(|vs| vs.iter().any(|v| v["type"] == "bind"))
        })
        .filter_map(|svc| svc["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    if !binds.is_empty() {
        let exemptions: serde_json::Map<String, Value> = binds
            .iter()
            .map(|name| (name.clone(), json!({"allow": ["hostPath"]})))
            .collect();
        configuration["spec"]["policy"] = json!({"exemptions": exemptions});
        warnings.push(format!(
            "policy: {} bind-mount host folders as in Kargo; configuration/main grants them \
             `hostPath` (spec.policy.exemptions): review it",
            binds.join(", ")
        ));
    }
    environment["spec"]["unsetVariables"] = json!("empty");
    if environment.pointer("/spec/rollout").is_none() {
        environment["spec"]["rollout"] = json!("parallel");
    }

    let mut documents = vec![configuration, environment];
    documents.extend(stacks);
    documents.extend(services);
    Ok(KargoImport {
        documents,
        warnings,
        not_carried: not_carried(dir),
        secrets,
        unset,
    })
}

/// Imports one fragment, reading a `\'` in a double-quoted string as Docker's YAML parser
/// does (see [`docker_yaml_escapes`]).
fn import_fragment(
    file: &Path,
    base: &Path,
    stack: &str,
) -> Result<ComposeImport, KargoImportError> {
    let fail = |source| KargoImportError::Fragment {
        file: file.to_path_buf(),
        source,
    };
    let text = read_text_bounded(file, MAX_FILE_BYTES).map_err(|source| {
        fail(ComposeError::Read {
            path: file.to_path_buf(),
            source,
        })
    })?;
    let mut import = match docker_yaml_escapes(&text) {
        Some(fixed) => import_compose_str(&fixed, base, stack).map_err(fail),
        None => import_compose_file(file, stack).map_err(fail),
    }?;
    plain_names(&mut import, stack);
    Ok(import)
}

/// A Kargo workspace names each service once across all its stacks (one fragment a
/// service), so its Services keep their plain names (`kano`, not `apps-kano` with a
/// `serviceName`, which `import compose` writes so two stack files may share a name).
fn plain_names(import: &mut ComposeImport, stack: &str) {
    let prefix = format!("{stack}-");
    let mut renamed = BTreeMap::new();
    for doc in &mut import.services {
        let Some(name) = doc["metadata"]["name"].as_str().map(str::to_string) else {
            continue;
        };
        let Some(plain) = name.strip_prefix(&prefix).map(str::to_string) else {
            continue;
        };
        if doc["spec"]["serviceName"].as_str() != Some(plain.as_str()) {
            continue;
        }
        if let Some(spec) = doc["spec"].as_object_mut() {
            spec.remove("serviceName");
        }
        doc["metadata"]["name"] = Value::String(plain.clone());
        renamed.insert(name, plain);
    }
    if let Some(list) = import.stack["spec"]["services"].as_array_mut() {
        for entry in list.iter_mut() {
            if let Some(plain) = entry.as_str().and_then(|n| renamed.get(n)) {
                *entry = Value::String(plain.clone());
            }
        }
    }
}

/// Docker's YAML parser (go-yaml) reads `\'` in a double-quoted string as `'`; YAML 1.2
/// and the parser kargo uses refuse it. Returns the text with each such `\'` written `'`
/// (which means the same inside double quotes), or `None` when there is none.
pub fn docker_yaml_escapes(text: &str) -> Option<String> {
    if !text.contains("\\'") {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    for line in text.split_inclusive('\n') {
        let mut in_double = false;
        let mut in_single = false;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '#' if !in_double && !in_single => {
                    out.push(c);
                    out.extend(chars.by_ref());
                    break;
                }
                '"' if !in_single => {
                    in_double = !in_double;
                    out.push(c);
                }
                '\'' if !in_double => {
                    in_single = !in_single;
                    out.push(c);
                }
                '\\' if in_double => match chars.next() {
                    Some('\'') => {
                        changed = true;
                        out.push('\'');
                    }
                    Some(next) => {
                        out.push(c);
                        out.push(next);
                    }
                    None => out.push(c),
                },
                _ => out.push(c),
            }
        }
    }
    changed.then_some(out)
}

/// Whether a compose warning is about a `replicas: ${VAR}` this import carries over itself.
fn carried_replicas(w: &super::compose::ComposeWarning) -> bool {
    w.path.ends_with(".deploy.replicas") && w.message.contains("${")
}

/// The fragment's services as written, by kargo Service name (for what the compose import
/// drops and kargo now carries: `replicas: ${VAR}`).
fn raw_services(file: &Path) -> BTreeMap<String, Value> {
    let Ok(text) = read_text_bounded(file, MAX_FILE_BYTES) else {
        return BTreeMap::new();
    };
    let text = docker_yaml_escapes(&text).unwrap_or(text);
    let Ok(yaml) = serde_yaml::from_str::<Value>(&text) else {
        return BTreeMap::new();
    };
    yaml.get("services")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.to_ascii_lowercase().replace(['_', '.'], "-"), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Keeps `deploy.replicas` written as a `${VAR}` string, which the Service schema takes.
fn keep_replicas(doc: &mut Value, raw: Option<&Value>) {
    let Some(Value::String(replicas)) = raw.and_then(|r| r.pointer("/deploy/replicas")) else {
        return;
    };
    if doc.pointer("/spec/deploy/replicas").is_some() {
        return;
    }
    let Some(spec) = doc.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let deploy = spec.entry("deploy").or_insert_with(|| json!({}));
    if let Some(deploy) = deploy.as_object_mut() {
        deploy.insert("replicas".into(), json!(replicas));
    }
}

/// A named-volume mount whose source is a `${VAR}` that the workspace sets to a host path
/// becomes a bind mount, as Docker decides after interpolating the file.
/// Returns the indices of the mounts it made bind mounts.
fn bind_host_paths(doc: &mut Value, resolved: &BTreeMap<String, String>) -> Vec<usize> {
    let mut bound = Vec::new();
    let Some(Value::Array(volumes)) = doc.pointer_mut("/spec/volumes") else {
        return bound;
    };
    for (i, volume) in volumes.iter_mut().enumerate() {
        let Some(source) = volume.get("source").and_then(Value::as_str) else {
            continue;
        };
        if !interpolate::has_interpolation(source) {
            continue;
        }
        let Ok((value, _)) =
            interpolate::interpolate_str_mode(source, resolved, "", UnsetVariables::Empty)
        else {
            continue;
        };
        if VolumeType::for_source(&value) == VolumeType::Bind {
            volume["type"] = json!("bind");
            bound.push(i);
        }
    }
    bound
}

/// The Environment's variables, with Kargo's `<S>_IMAGE`, `<S>_TAG` and `<S>_REPLICAS`
/// written back as variables too: the env import makes them service settings, but the
/// fragments reference them as variables (`image: ${KANO_IMAGE}:${KANO_TAG}`).
fn setting_variables(environment: &mut Value) -> BTreeMap<String, String> {
    let mut variables: BTreeMap<String, String> = environment
        .pointer("/spec/variables")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    let settings = environment
        .pointer("/spec/services")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for (service, s) in settings {
        let prefix = service.to_ascii_uppercase().replace('-', "_");
        for (field, suffix) in [("image", "IMAGE"), ("tag", "TAG"), ("replicas", "REPLICAS")] {
            let value = match s.get(field) {
                Some(Value::String(v)) => interpolate::escape(v),
                Some(Value::Number(n)) => n.to_string(),
                _ => continue,
            };
            variables
                .entry(format!("{prefix}_{suffix}"))
                .or_insert(value);
        }
    }
    environment["spec"]["variables"] = json!(variables);
    variables
}

/// Whether a variable's name says it holds a credential.
fn looks_secret(name: &str) -> bool {
    name.split('_').any(|part| {
        matches!(
            part,
            "SECRET" | "PASSWORD" | "PASSWD" | "PASS" | "TOKEN" | "KEY" | "CREDENTIALS" | "JWT"
        )
    })
}

/// The variables the Services reference that no file sets: (secrets, others), sorted.
fn unset_references(
    services: &[Value],
    resolved: &BTreeMap<String, String>,
) -> (Vec<String>, Vec<String>) {
    let mut names = BTreeSet::new();
    for doc in services {
        let spec = doc.get("spec").cloned().unwrap_or_default();
        if let Ok((_, empty)) =
            interpolate::interpolate_value_mode(&spec, resolved, "/spec", UnsetVariables::Empty)
        {
            names.extend(
                empty
                    .iter()
                    .filter_map(InterpolationError::variable)
                    .map(str::to_string),
            );
        }
    }
    names.into_iter().partition(|n| looks_secret(n))
}

/// Kargo's hooks and templates in `deploy/` and `configs/`, relative to the workspace.
/// Kargo's way of building an image: `build/<service>/dockerfile` (or `Dockerfile`), built
/// by `build/<service>.sh` with `docker build --build-arg K=$V … -t $<S>_IMAGE:$<S>_TAG`.
/// Becomes the Service's `build` (context absolute, args from the script's
/// `--build-arg`s, `$V` written `${V}` so the Environment fills it in at build time);
/// returns the note saying so, or `None` when the service has no build folder.
fn kargo_build(dir: &Path, service: &mut Value) -> Option<String> {
    let name = service.pointer("/metadata/name")?.as_str()?.to_string();
    let folder = dir.join("build").join(&name);
    let dockerfile = ["dockerfile", "Dockerfile"]
        .into_iter()
        .find(|f| folder.join(f).is_file())?;
    let context = std::fs::canonicalize(&folder).unwrap_or(folder);
    let script = dir.join("build").join(format!("{name}.sh"));
    let args = read_text_bounded(&script, MAX_FILE_BYTES)
        .map(|text| build_args_of(&text))
        .unwrap_or_default();
    let mut build = json!({"context": context.display().to_string(), "dockerfile": dockerfile});
    if !args.is_empty() {
        build["args"] = json!(args);
    }
    service["spec"]["build"] = build;
    let shown: Vec<&str> = args.keys().map(String::as_str).collect();
    Some(format!(
        "build/{name}: carried over as service {name}'s build (kargo build {name}{}); \
         other commands of build/{name}.sh are not run",
        if shown.is_empty() {
            String::new()
        } else {
            format!(", args {}", shown.join(" "))
        }
    ))
}

/// The `--build-arg K=V` of a Kargo build script; a value `$V` or `${V}` becomes `${V}`.
fn build_args_of(script: &str) -> BTreeMap<String, String> {
    let mut args = BTreeMap::new();
    let mut words = script.split_whitespace();
    while let Some(word) = words.next() {
        let pair = match word.strip_prefix("--build-arg=") {
            Some(pair) => pair,
            None if word == "--build-arg" => match words.next() {
                Some(pair) => pair,
                None => break,
            },
            None => continue,
        };
        let pair = pair.trim_matches(['"', '\'']);
        let Some((key, value)) = pair.split_once('=') else {
            continue;
        };
        let value = value.trim_matches(['"', '\'']);
        let value = match value.strip_prefix('$') {
            Some(var) => format!("${{{}}}", var.trim_start_matches('{').trim_end_matches('}')),
            None => value.to_string(),
        };
        args.insert(key.to_string(), value);
    }
    args
}

fn not_carried(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = vec![dir.join("deploy"), dir.join("configs")];
    while let Some(folder) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            // The entry's own type: a symbolic link to a folder is not followed (no loops).
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                pending.push(path);
                continue;
            }
            let name = entry.file_name().to_string_lossy().to_string();
            let hook = name.ends_with("_before.sh") || name.ends_with("_after.sh");
            if hook || name.ends_with(".tpl") {
                let relative = path.strip_prefix(dir).unwrap_or(&path);
                out.push(relative.display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backslash_quote_in_double_quotes_reads_as_docker_reads_it() {
        let text =
            "test: [\"CMD\", \"echo\", \"\\'db.ok\\'\"] # \\' kept\nother: 'it''s a \\ raw'\n";
        let fixed = docker_yaml_escapes(text).unwrap_or_default();
        assert_eq!(
            fixed,
            "test: [\"CMD\", \"echo\", \"'db.ok'\"] # \\' kept\nother: 'it''s a \\ raw'\n"
        );
        assert!(serde_yaml::from_str::<serde_yaml::Value>(text).is_err());
        let value: serde_yaml::Value = serde_yaml::from_str(&fixed).unwrap_or_default();
        assert_eq!(value["test"][2].as_str(), Some("'db.ok'"));
        assert_eq!(docker_yaml_escapes("a: \"\\\"x\\\"\"\n"), None);
    }

    #[test]
    fn a_kargo_build_script_gives_its_build_args() {
        let script = "#!/bin/bash\ncd logspout\ndocker build --no-cache --pull --force-rm \
            --build-arg VERSION=$LOGSPOUT_TAG --build-arg=MODE=\"full\" --build-arg B=${X} \
            -f dockerfile -t $LOGSPOUT_IMAGE:$LOGSPOUT_TAG .\n";
        let args = build_args_of(script);
        assert_eq!(
            args.get("VERSION").map(String::as_str),
            Some("${LOGSPOUT_TAG}")
        );
        assert_eq!(args.get("MODE").map(String::as_str), Some("full"));
        assert_eq!(args.get("B").map(String::as_str), Some("${X}"));
        assert_eq!(args.len(), 3);
    }

    #[test]
    fn secret_looking_names_are_told_apart() {
        assert!(looks_secret("KANO_APP_SECRET"));
        assert!(looks_secret("AUTH_PASSWORD"));
        assert!(looks_secret("S3_SECRET_ACCESS_KEY"));
        assert!(!looks_secret("KANO_DB_URL"));
        assert!(!looks_secret("KEYCLOAK_URL"));
    }

    #[test]
    fn a_variable_source_set_to_a_host_path_becomes_a_bind_mount() {
        let mut doc = json!({"spec": {"volumes": [
            {"type": "volume", "source": "${DATA_PATH}", "target": "/data"},
            {"type": "volume", "source": "${NAME:-cache}", "target": "/cache"},
            {"type": "volume", "source": "plain", "target": "/plain"}
        ]}});
        let vars = BTreeMap::from([("DATA_PATH".to_string(), "/mnt/data0".to_string())]);
        assert_eq!(bind_host_paths(&mut doc, &vars), vec![0]);
        assert_eq!(doc["spec"]["volumes"][0]["type"], "bind");
        assert_eq!(doc["spec"]["volumes"][0]["source"], "${DATA_PATH}");
        assert_eq!(doc["spec"]["volumes"][1]["type"], "volume");
        assert_eq!(doc["spec"]["volumes"][2]["type"], "volume");
    }
}
