//! `kargo scale`: set a service's replicas in the layer that decides them.

use serde_json::{Value, json};

use crate::api::Kind;
use crate::store::StoreError;

use super::{CliError, ExitStatus, GlobalArgs, output, target};

const EXAMPLES: &str = "Examples:
  kargo scale service web --replicas 3
  kargo scale service/worker --replicas 0";

/// Set the number of tasks of a Service, in the layer that decides it.
///
/// When the Environment in force sets `services.NAME.replicas`, that setting is what
/// deploys, so it is changed there; otherwise the Service's `spec.deploy.replicas` is.
/// A re-apply of unchanged files keeps the new number. Exit codes: 0 scaled, 1 not
/// found or a global service, 2 usage or unreachable etcd.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// `service NAME` (or service/NAME).
    #[arg(required = true, num_args = 1..=2, value_name = "service NAME | service/NAME", add = super::complete::services())]
    target: Vec<String>,
    /// The number of tasks.
    #[arg(long)]
    replicas: u64,
    /// The Configuration in force (its Environment may hold the setting).
    #[arg(long, default_value = "main", env = "KARGO_CONFIGURATION")]
    configuration: String,
}

/// Sets `value` at `path` under `root`, making maps on the way; `Err` names a non-map in the way.
pub(super) fn set_path(root: &mut Value, path: &[&str], value: Value) -> Result<(), String> {
    let Some((last, parents)) = path.split_last() else {
        *root = value;
        return Ok(());
    };
    let mut here = root;
    let mut walked = Vec::new();
    for key in parents {
        walked.push(*key);
        if here.is_null() {
            *here = json!({});
        }
        let Value::Object(map) = here else {
            return Err(format!("{} is not a map", walked.join(".")));
        };
        here = map.entry(key.to_string()).or_insert(Value::Null);
    }
    if here.is_null() {
        *here = json!({});
    }
    match here {
        Value::Object(map) => {
            map.insert(last.to_string(), value);
            Ok(())
        }
        _ => Err(format!("{} is not a map", walked.join("."))),
    }
}

pub(super) async fn run(g: &GlobalArgs, args: Args) -> Result<ExitStatus, CliError> {
    let (_, name) = target::one_of(&args.target, &[Kind::Service], "name one service", |_| {
        "only services scale: kargo scale service NAME --replicas N".to_string()
    })?;
    let name = &name;
    let store = g.store().await?;
    let env_name = store
        .get(Kind::Configuration, &args.configuration)
        .await?
        .and_then(|c| c.spec.get("environment")?.as_str().map(str::to_string));
    let env = match &env_name {
        Some(e) => store.get(Kind::Environment, e).await?,
        None => None,
    };
    let env_decides = env
        .as_ref()
        .and_then(|e| e.spec.get("services")?.get(name.as_str())?.get("replicas"))
        .is_some_and(|r| !r.is_null());
    let service = store.get(Kind::Service, name).await?;
    if let Some(s) = &service
        && let Some(mode) = s.spec.pointer("/deploy/mode").and_then(Value::as_str)
        && mode.starts_with("global")
    {
        return Err(CliError::failure(format!(
            "service {name:?} runs in {mode} mode (one task per node): it has no replicas to scale"
        )));
    }
    let replicas = json!(args.replicas);
    let write = |kind: Kind, obj: &str, path: Vec<String>| {
        let store = store.clone();
        let obj = obj.to_string();
        let replicas = replicas.clone();
        async move {
            let mut problem = None;
            let result = store
                .modify(kind, &obj, None, |o| {
                    let p: Vec<&str> = path.iter().map(String::as_str).collect();
                    if let Err(e) = set_path(&mut o.spec, &p, replicas.clone()) {
                        problem = Some(e);
                    }
                })
                .await;
            match (problem, result) {
                (Some(p), _) => Err(CliError::failure(format!(
                    "{} {obj:?}: cannot set replicas: spec.{p}",
                    kind.singular()
                ))),
                (None, Err(e)) => Err(e.into()),
                (None, Ok(_)) => Ok(()),
            }
        }
    };
    match (&env_name, env_decides, &service, &env) {
        (Some(e), true, _, _) | (Some(e), false, None, Some(_)) => {
            write(
                Kind::Environment,
                e,
                vec!["services".into(), name.clone(), "replicas".into()],
            )
            .await?;
            output::out(format_args!(
                "service/{name} scaled (environment/{e}: services.{name}.replicas={})",
                args.replicas
            ))?;
        }
        (_, _, Some(_), _) => {
            write(
                Kind::Service,
                name,
                vec!["deploy".into(), "replicas".into()],
            )
            .await?;
            output::out(format_args!("service/{name} scaled"))?;
        }
        _ => {
            return Err(StoreError::NotFound {
                kind: Kind::Service,
                name: name.clone(),
            }
            .into());
        }
    }
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_path_makes_maps_and_refuses_scalars() {
        let mut v = json!({"services": {"web": {"tag": "1"}}});
        assert!(set_path(&mut v, &["services", "web", "replicas"], json!(3)).is_ok());
        assert_eq!(v, json!({"services": {"web": {"tag": "1", "replicas": 3}}}));
        let mut v = json!({});
        assert!(set_path(&mut v, &["deploy", "replicas"], json!(2)).is_ok());
        assert_eq!(v, json!({"deploy": {"replicas": 2}}));
        let mut v = json!({"deploy": "x"});
        assert!(set_path(&mut v, &["deploy", "replicas"], json!(2)).is_err());
    }
}
