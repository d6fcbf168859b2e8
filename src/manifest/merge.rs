//! The merge of the three configurations for one service (docs/design.md, "The three configurations"):
//! `default ⊕ user ⊕ settings(Environment.services.<name>)`, with JSON Merge Patch.

use serde_json::{Map, Value, json};

use crate::api::ServiceSettings;

/// The patch that an Environment's per-service settings make.
///
/// `below` is the spec the patch goes over (default ⊕ user). `image` and `tag` become
/// `image: "<image>:<tag>"`; either may be given alone (a tag alone replaces the tag of the
/// image below). `buildArgs` are merged over `build.args`, only when `below` has a `build`:
/// a Service without one must not get a `build` without a context.
pub fn settings_patch(settings: &ServiceSettings, below: &Value) -> Value {
    let base_image = below.get("image").and_then(Value::as_str);
    let mut patch = Map::new();
    let image = match (&settings.image, &settings.tag) {
        (Some(i), Some(t)) => Some(format!("{i}:{t}")),
        (Some(i), None) => Some(i.clone()),
        (None, Some(t)) => Some(match base_image {
            Some(b) => format!("{}:{t}", image_without_tag(b)),
            None => format!(":{t}"),
        }),
        (None, None) => None,
    };
    if let Some(i) = image {
        patch.insert("image".into(), json!(i));
    }
    let mut deploy = Map::new();
    if let Some(r) = settings.replicas {
        deploy.insert("replicas".into(), json!(r));
    }
    if let Some(c) = &settings.constraints {
        deploy.insert("placement".into(), json!({"constraints": c}));
    }
    if !deploy.is_empty() {
        patch.insert("deploy".into(), Value::Object(deploy));
    }
    if let Some(env) = &settings.env {
        patch.insert("env".into(), json!(env));
    }
    if let Some(labels) = &settings.labels {
        patch.insert("labels".into(), json!(labels));
    }
    if let Some(args) = &settings.build_args
        && !args.is_empty()
        && below.get("build").is_some_and(Value::is_object)
    {
        patch.insert("build".into(), json!({"args": args}));
    }
    Value::Object(patch)
}

/// `registry:5000/app:1.2` → `registry:5000/app` (a digest is dropped too).
fn image_without_tag(image: &str) -> &str {
    let image = image.split('@').next().unwrap_or(image);
    match image.rfind(':') {
        Some(i) if !image[i..].contains('/') => &image[..i],
        _ => image,
    }
}

/// Merges the layers of one service spec, lowest first; `null` in a layer deletes.
///
/// A layer that says `defaults: none` takes nothing from the layers below it (a Service
/// that opts out of the catalog gets no catalog entry under it); layers above still apply.
pub fn merge_layers<'a>(layers: impl IntoIterator<Item = &'a Value>) -> Value {
    let mut out = Value::Object(Map::new());
    for layer in layers {
        if takes_no_defaults(layer) {
            out = Value::Object(Map::new());
        }
        json_patch::merge(&mut out, layer);
    }
    out
}

/// True when a spec layer opts out of the layers below it (`defaults: none`).
pub fn takes_no_defaults(layer: &Value) -> bool {
    layer.get("defaults").and_then(Value::as_str) == Some("none")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_layer_overrides_and_null_deletes() {
        let default =
            json!({"image": "redis:5", "env": {"A": "1", "B": "2"}, "ports": [{"target": 1}]});
        let user = json!({"env": {"B": null, "C": "3"}, "ports": [{"target": 2}]});
        let merged = merge_layers([&default, &user]);
        assert_eq!(
            merged,
            json!({"image": "redis:5", "env": {"A": "1", "C": "3"}, "ports": [{"target": 2}]})
        );
    }

    #[test]
    fn a_tag_alone_replaces_the_tag_below() {
        let s = ServiceSettings {
            tag: Some("6".into()),
            replicas: Some(3),
            ..ServiceSettings::default()
        };
        let patch = settings_patch(&s, &json!({"image": "registry:5000/redis:5"}));
        assert_eq!(
            patch,
            json!({"image": "registry:5000/redis:6", "deploy": {"replicas": 3}})
        );
    }

    #[test]
    fn build_args_merge_over_the_build_and_never_make_one() {
        let s = ServiceSettings {
            build_args: Some([("VERSION".to_string(), "2".to_string())].into()),
            tag: Some("2".into()),
            ..ServiceSettings::default()
        };
        let user = json!({"image": "reg:5000/app:1",
            "build": {"context": "./app", "args": {"VERSION": "1", "MODE": "prod"}}});
        let merged = merge_layers([&user, &settings_patch(&s, &user)]);
        assert_eq!(merged["image"], "reg:5000/app:2");
        assert_eq!(
            merged["build"],
            json!({"context": "./app", "args": {"VERSION": "2", "MODE": "prod"}})
        );
        let plain = json!({"image": "reg:5000/app:1"});
        let merged = merge_layers([&plain, &settings_patch(&s, &plain)]);
        assert!(merged.get("build").is_none(), "{merged}");
    }

    #[test]
    fn settings_constraints_replace_the_list() {
        let user = json!({"image": "a", "deploy": {"placement": {"constraints": ["x==1"]}, "replicas": 1}});
        let s = ServiceSettings {
            constraints: Some(vec!["node.role==worker".into()]),
            ..ServiceSettings::default()
        };
        let merged = merge_layers([&user, &settings_patch(&s, &user)]);
        assert_eq!(
            merged["deploy"],
            json!({"placement": {"constraints": ["node.role==worker"]}, "replicas": 1})
        );
    }

    #[test]
    fn a_service_with_defaults_none_takes_nothing_from_the_catalog() {
        let catalog = json!({"image": "grafana/grafana:7", "env": {"GF_ADMIN": "${X}"}});
        let user = json!({"defaults": "none", "image": "grafana/grafana:latest"});
        let s = ServiceSettings {
            replicas: Some(2),
            ..ServiceSettings::default()
        };
        let below = merge_layers([&catalog, &user]);
        assert_eq!(
            below,
            json!({"defaults": "none", "image": "grafana/grafana:latest"})
        );
        let merged = merge_layers([&below, &settings_patch(&s, &below)]);
        assert_eq!(
            merged["deploy"]["replicas"], 2,
            "Environment settings still apply"
        );
    }
}
