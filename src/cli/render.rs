//! `kargo render`: the merged configuration and the exact Swarm objects the controller
//! would send (the old `.kargo` folder), without touching Docker.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::manifests::load;
use super::output::{out_text, to_yaml};
use super::planning::plan_of;
use super::{CliError, ExitStatus, GlobalArgs};

/// Print the merged configuration (default ⊕ user ⊕ Environment settings, interpolated)
/// and the Swarm networks, configs, secrets and services it becomes.
///
/// With -f it works offline (no etcd, no Docker) on the given manifests; without, on
/// what is stored in etcd. It calls the same planning function as the controller.
/// Sensitive file contents print as <redacted>. Exit 1 when a service cannot be rendered.
///
/// Example: kargo render -f manifests/ -o yaml
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Manifest files or folders (`-` for stdin); without, read the stored objects.
    #[arg(short = 'f', long = "filename")]
    files: Vec<PathBuf>,
    /// Recurse into sub-folders.
    #[arg(short = 'R', long)]
    recursive: bool,
    /// The Configuration in force.
    #[arg(long, default_value = "main", env = "KARGO_CONFIGURATION")]
    configuration: String,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "yaml")]
    output: RenderFormat,
}

/// How `render` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RenderFormat {
    /// YAML.
    Yaml,
    /// JSON.
    Json,
}

pub(super) async fn run(g: &GlobalArgs, args: Args) -> Result<ExitStatus, CliError> {
    let objects = if args.files.is_empty() {
        g.store().await?.list_all().await?.items
    } else {
        load(&args.files, args.recursive)?
    };
    let (_, plan) = plan_of(&objects, &args.configuration, &g.prefix);
    let mut failed = !plan.errors.is_empty();
    let stacks: Vec<Value> = plan
        .stacks
        .iter()
        .map(|s| {
            let services: Vec<Value> = s
                .services
                .iter()
                .map(|p| match &p.desired {
                    Ok(d) => json!({"name": p.name, "merged": p.merged, "swarm": d.spec}),
                    Err(e) => {
                        failed = true;
                        json!({"name": p.name, "merged": p.merged, "error": e})
                    }
                })
                .collect();
            if !s.errors.is_empty() {
                failed = true;
            }
            json!({
                "name": s.name,
                "swarmStack": crate::swarm::names::swarm_stack(&s.name),
                "waitsFor": s.waits_for,
                "errors": s.errors,
                "services": services,
            })
        })
        .collect();
    let files = |secret: bool| -> Vec<Value> {
        plan.files
            .iter()
            .filter(|(_, f)| f.sensitive == secret)
            .map(|(name, f)| {
                let content = if f.sensitive {
                    crate::store::REDACTED.to_string()
                } else {
                    f.content.clone()
                };
                json!({"file": name, "name": f.swarm_name, "content": content})
            })
            .collect()
    };
    let doc = json!({
        "configuration": plan.configuration,
        "environment": plan.environment,
        "rollout": plan.rollout,
        "errors": plan.errors,
        "networks": plan.networks.iter().map(|n| json!({"name": n, "driver": "overlay", "attachable": true})).collect::<Vec<_>>(),
        "configs": files(false),
        "secrets": files(true),
        "stacks": stacks,
    });
    let text = match args.output {
        RenderFormat::Yaml => to_yaml(&doc),
        RenderFormat::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(&doc).unwrap_or_default()
        ),
    };
    out_text(&text)?;
    Ok(if failed {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}
