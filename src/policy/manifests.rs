//! The policy in `kargo validate`: the Services of the input, merged as far as can be
//! known offline (catalog entry ⊕ Service ⊕ the Environment's settings, interpolated with
//! the Environment's variables when the input has them), checked against the policy of
//! the input's Configuration (`main`, else the first; none: `baseline`).
//!
//! The controller and `apply` judge the fully merged spec through the plan; this check
//! can only miss what lives outside the input (a Configuration or Environment applied
//! from elsewhere), never refuse what they accept under the same Configuration.

use crate::api::{
    ConfigurationSpec, DefaultsMode, DynamicObject, EnvironmentSpec, Kind, ServiceSpec,
};
use crate::manifest::load::strip_nulls;
use crate::manifest::merge::{merge_layers, settings_patch};
use crate::manifest::validate::{Diagnostic, Report, Rule};
use crate::swarm::RenderContext;

/// Adds a diagnostic to `report` for every policy finding among the Services of its
/// objects (the report must have kept its objects), at the field's line when the file
/// can be read again (stdin cannot: its findings are placed at its start).
pub fn check_report(report: &mut Report) {
    let found = findings(&report.objects, None);
    if found.is_empty() {
        return;
    }
    let mut touched = Vec::new();
    for (service, f) in found {
        let reference = format!("{}/{service}", Kind::Service.singular());
        let Some((file_index, document)) = report.files.iter().enumerate().find_map(|(i, file)| {
            file.objects
                .iter()
                .find(|(_, r)| *r == reference)
                .map(|(d, _)| (i, *d))
        }) else {
            continue;
        };
        let file = &mut report.files[file_index];
        let (line, column) =
            crate::manifest::validate::position_in_file(&file.file, document, &f.pointer);
        file.diagnostics.push(Diagnostic {
            file: file.file.clone(),
            line,
            column,
            document: Some(document),
            object: Some(reference),
            path: f.field,
            rule: Rule::Value,
            message: f.message,
        });
        touched.push(file_index);
    }
    touched.sort_unstable();
    touched.dedup();
    for i in touched {
        let file = &mut report.files[i];
        crate::manifest::validate::finish_counts(file);
    }
}

/// The findings of every Service among `objects`, by Service name, under the
/// Configuration named `configuration` among them (none given: `main`, else the first).
pub fn findings(
    objects: &[DynamicObject],
    configuration: Option<&str>,
) -> Vec<(String, super::Finding)> {
    let typed = |kind: Kind| objects.iter().filter(move |o| o.kind == kind);
    let named = |name: &str| typed(Kind::Configuration).find(|o| o.metadata.name == name);
    let configuration = match configuration {
        Some(name) => named(name),
        None => named("main").or_else(|| typed(Kind::Configuration).next()),
    }
    .and_then(|o| serde_json::from_value::<ConfigurationSpec>(o.spec.clone()).ok());
    let environments: Vec<&DynamicObject> = typed(Kind::Environment).collect();
    let environment = match configuration.as_ref().and_then(|c| c.environment.as_ref()) {
        Some(name) => environments.iter().find(|e| &e.metadata.name == name),
        None if environments.len() == 1 => environments.first(),
        None => None,
    }
    .and_then(|o| serde_json::from_value::<EnvironmentSpec>(o.spec.clone()).ok());
    let use_defaults = configuration
        .as_ref()
        .and_then(|c| c.defaults)
        .unwrap_or(DefaultsMode::Builtin)
        == DefaultsMode::Builtin;
    let policy = configuration.as_ref().and_then(|c| c.policy.as_ref());
    let variables = environment
        .as_ref()
        .map(|e| crate::manifest::interpolate::resolve_variables_partial(&e.variables).0)
        .unwrap_or_default();
    let mut ctx = RenderContext::new("");
    if let Some(nets) = environment.as_ref().and_then(|e| e.networks.as_ref()) {
        if let Some(f) = &nets.front {
            ctx.front_network = f.clone();
        }
        if let Some(b) = &nets.back {
            ctx.back_network = b.clone();
        }
    }
    let mut out = Vec::new();
    for service in typed(Kind::Service) {
        let name = service.metadata.name.as_str();
        let default = use_defaults
            .then(|| crate::manifest::catalog_spec(name))
            .flatten();
        let below = merge_layers(default.iter().chain([&service.spec]));
        let merged = match environment.as_ref().and_then(|e| e.services.get(name)) {
            Some(settings) => {
                let patch = settings_patch(settings, &below);
                merge_layers([&below, &patch])
            }
            None => below,
        };
        let merged = crate::manifest::interpolate::interpolate_value(&merged, &variables, "/spec")
            .unwrap_or(merged);
        let Ok(spec) = serde_json::from_value::<ServiceSpec>(strip_nulls(&merged)) else {
            continue;
        };
        let builtin = default.and_then(|_| super::catalog_exemption(name));
        for f in super::check(policy, name, &spec, &|n| ctx.network("", n), builtin) {
            out.push((name.to_string(), f));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects(yaml: &str) -> Vec<DynamicObject> {
        serde_yaml::Deserializer::from_str(yaml)
            .map(|d| {
                let v: serde_json::Value = serde::Deserialize::deserialize(d).expect("yaml");
                serde_json::from_value(v).expect("object")
            })
            .collect()
    }

    const SOCKET: &str = "
apiVersion: kargo.dev/v1alpha1
kind: Service
metadata: {name: proxy}
spec:
  image: traefik:1.7
  volumes: [{type: bind, source: /var/run/docker.sock, target: /var/run/docker.sock}]
";

    #[test]
    fn a_service_alone_is_judged_at_baseline() {
        let found = findings(&objects(SOCKET), None);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "proxy");
    }

    #[test]
    fn the_configuration_of_the_input_grants_exemptions() {
        let yaml = format!(
            "{SOCKET}---
apiVersion: kargo.dev/v1alpha1
kind: Configuration
metadata: {{name: main}}
spec:
  policy:
    exemptions:
      proxy: {{image: traefik, allow: [dockerSocket]}}
"
        );
        assert_eq!(findings(&objects(&yaml), None), []);
    }

    #[test]
    fn an_environment_overriding_a_catalog_image_drops_its_exemption() {
        let yaml = "
apiVersion: kargo.dev/v1alpha1
kind: Service
metadata: {name: cadvisor}
spec:
  args: [-docker_only]
---
apiVersion: kargo.dev/v1alpha1
kind: Environment
metadata: {name: prod}
spec:
  services:
    cadvisor: {image: evil/cadvisor}
";
        let found = findings(&objects(yaml), None);
        assert!(!found.is_empty());
        let plain = findings(
            &objects(&yaml.replace("evil/cadvisor", "gcr.io/cadvisor/cadvisor")),
            None,
        );
        assert_eq!(plain, [], "the catalog's own image keeps its exemption");
    }
}
