//! `kargo deploy` and `kargo remove`: Kargo's verbs, on the same model. They set a
//! Stack's `suspend`; the controller does the rest (docs/design.md, "The model").

use crate::api::Kind;

use super::output::out;
use super::{CliError, ExitStatus, GlobalArgs};

/// Deploy stacks again (set `suspend: false`); `all` means every Stack of the
/// Environment in force, in its order.
///
/// Example: kargo deploy all
#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// Stack names, or `all`.
    #[arg(required = true, add = super::complete::stacks())]
    stacks: Vec<String>,
    /// The Configuration in force (for `all`).
    #[arg(long, default_value = "main", env = "KARGO_CONFIGURATION")]
    configuration: String,
}

/// Remove stacks from Swarm and keep their objects (set `suspend: true`); `all` means
/// every Stack of the Environment in force, in reverse order.
///
/// Example: kargo remove apps
#[derive(Debug, clap::Args)]
pub struct RemoveArgs {
    /// Stack names, or `all`.
    #[arg(required = true, add = super::complete::stacks())]
    stacks: Vec<String>,
    /// The Configuration in force (for `all`).
    #[arg(long, default_value = "main", env = "KARGO_CONFIGURATION")]
    configuration: String,
}

async fn stack_names(
    store: &crate::store::Store,
    given: &[String],
    configuration: &str,
) -> Result<Vec<String>, CliError> {
    if given.iter().all(|s| s != "all") {
        return Ok(given.to_vec());
    }
    let env = match store.get(Kind::Configuration, configuration).await? {
        Some(cfg) => cfg
            .spec
            .get("environment")
            .and_then(|e| e.as_str())
            .map(str::to_string),
        None => None,
    };
    let listed: Option<Vec<String>> = match env {
        Some(e) => store.get(Kind::Environment, &e).await?.map(|o| {
            o.spec
                .get("stacks")
                .and_then(|s| s.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        }),
        None => None,
    };
    Ok(match listed {
        Some(l) => l,
        None => store
            .list(Kind::Stack)
            .await?
            .items
            .into_iter()
            .map(|o| o.metadata.name)
            .collect(),
    })
}

async fn set_suspend(
    g: &GlobalArgs,
    names: Vec<String>,
    suspend: bool,
) -> Result<ExitStatus, CliError> {
    let store = g.store().await?;
    let mut status = ExitStatus::Success;
    for name in names {
        match store
            .modify(Kind::Stack, &name, None, |o| {
                if let Some(spec) = o.spec.as_object_mut() {
                    if suspend {
                        spec.insert("suspend".into(), serde_json::Value::Bool(true));
                    } else {
                        spec.remove("suspend");
                    }
                }
            })
            .await
        {
            Ok(w) => {
                let verb = match (suspend, w.changed) {
                    (true, true) => "removed (suspended; its Swarm objects go)",
                    (false, true) => "deployed (resumed)",
                    (_, false) => "unchanged",
                };
                out(format_args!("stack/{name} {verb}"))?;
            }
            Err(crate::store::StoreError::NotFound { .. }) => {
                super::output::note(format_args!("error: Stack {name:?} not found"));
                status = ExitStatus::Failure;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(status)
}

pub(super) async fn run_deploy(g: &GlobalArgs, args: DeployArgs) -> Result<ExitStatus, CliError> {
    let store = g.store().await?;
    let names = stack_names(&store, &args.stacks, &args.configuration).await?;
    set_suspend(g, names, false).await
}

pub(super) async fn run_remove(g: &GlobalArgs, args: RemoveArgs) -> Result<ExitStatus, CliError> {
    let store = g.store().await?;
    let mut names = stack_names(&store, &args.stacks, &args.configuration).await?;
    if args.stacks.iter().any(|s| s == "all") {
        names.reverse();
    }
    set_suspend(g, names, true).await
}
