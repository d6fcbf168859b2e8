//! `kargo build`: build the images of Services that have a `build` section, tag them with
//! their merged `image`, and push them with `--push`.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::StreamExt;

use crate::api::{DynamicObject, EnvironmentSpec, Kind};
use crate::build::{BuildError, Event, Reporter, Target};
use crate::manifest::load::read_sources;
use crate::manifest::validate::{Options, validate_sources};
use crate::plan::Snapshot;

use super::planning::plan_of;
use super::{CliError, ExitStatus, GlobalArgs, output};

const EXAMPLES: &str = "Examples:
  # Build every Service with a build section stored in etcd, two at a time:
  kargo build
  # Build and push two Services of the given files (contexts relative to each file):
  kargo build web api -f services.yaml -f environment.yaml --push
  # Off a terminal, progress is one line per event on stderr:
  #   web: Step 2/3 : COPY app.txt /app/app.txt
  #   web: pushed 127.0.0.1:5015/web:1.2@sha256:4f1c…
  # and stdout lists what was built (image, with @digest once pushed).";

/// Build the images of Services that have a `build` section, through the Docker API.
///
/// Each image is tagged with the Service's merged `image` (the Environment's `<S>_IMAGE`
/// and `<S>_TAG` settings apply, as for deploys), with the Service's `build.args` and the
/// Environment's `buildArgs` over them. The context folder is sent as a tar that honours
/// its `.dockerignore` (Docker's rules). Services come from etcd (merged with the
/// Configuration in force and its Environment, as `kargo render` merges them; a relative
/// context is relative to the working directory) or, with -f, from the given files only
/// (a relative context is relative to the folder of the file that holds the Service).
///
/// `--push` pushes each image to the registry its name begins with, with the credentials
/// the Environment's `registries` name (a password from a file, an environment variable,
/// or a sealed variable opened with --secret-key-file).
///
/// Progress goes to stderr: on a terminal, one line per build step prefixed by the
/// service and a bar for the context upload; otherwise one line per event (`web: Step 2/4 :
/// COPY ...`, `web: pushed <image>@sha256:...`). stdout lists the images built.
///
/// Exit codes: 0 all built (and pushed), 1 a build or a push failed (the others go on),
/// 2 usage or input error (unknown service, unreadable files, Docker or etcd unreachable).
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Services to build (default, or `all`: every Service with a build section).
    services: Vec<String>,
    /// Manifest files or folders (`-` for stdin); without, the stored objects.
    #[arg(short = 'f', long = "filename")]
    files: Vec<PathBuf>,
    /// Recurse into sub-folders.
    #[arg(short = 'R', long)]
    recursive: bool,
    /// Pull newer versions of the base images first, as `docker build --pull`.
    #[arg(long)]
    pull: bool,
    /// Build every step again, as `docker build --no-cache`.
    #[arg(long)]
    no_cache: bool,
    /// Push each image to its registry once built.
    #[arg(long)]
    push: bool,
    /// Builds run at once, at most.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
    parallel: u16,
    /// No progress on stderr (errors are still printed).
    #[arg(short, long)]
    quiet: bool,
    /// The Configuration in force.
    #[arg(long, default_value = "main", env = "KARGO_CONFIGURATION")]
    configuration: String,
    /// Without -f, the folder every stored Service's context must be inside (default: the
    /// working directory): anyone who can write to etcd writes those paths, and a build
    /// sends the folder's files to Docker and, with --push, to a registry.
    #[arg(long, value_name = "DIR")]
    context_root: Option<PathBuf>,
    /// Without -f, the only folder the stored Environment's registry password files are
    /// read from (none: no file is read); its environment variables must start with
    /// KARGO_REGISTRY_. Whoever can apply wrote it: it may not reach your other files.
    #[arg(long, env = "KARGO_REGISTRY_SECRETS_DIR", value_name = "DIR")]
    registry_secrets_dir: Option<PathBuf>,
    /// The private key file made by `kargo keys create`, to open a registry password kept
    /// in a sealed variable of the Environment.
    #[arg(long, env = "KARGO_SECRET_KEY_FILE", value_name = "FILE")]
    secret_key_file: Option<PathBuf>,
}

pub(super) async fn run(g: &GlobalArgs, args: Args) -> Result<ExitStatus, CliError> {
    let cwd = std::env::current_dir().map_err(|e| CliError::io("the working directory", e))?;
    let (mut objects, folders) = if args.files.is_empty() {
        (g.store().await?.list_all().await?.items, BTreeMap::new())
    } else {
        read_files(&args.files, args.recursive, &cwd)?
    };
    if let Some(path) = &args.secret_key_file {
        let keys =
            crate::secrets::Keyring::read(path).map_err(|e| CliError::usage(e.to_string()))?;
        for o in objects.iter_mut().filter(|o| o.kind == Kind::Environment) {
            crate::secrets::objects::open_object(o, &keys)
                .map_err(|e| CliError::usage(e.to_string()))?;
        }
    }
    let (snapshot, plan) = plan_of(&objects, &args.configuration, &g.prefix);
    let environment = plan
        .environment
        .as_ref()
        .and_then(|e| snapshot.environments.get(e))
        .map(|e| e.spec.clone())
        .unwrap_or_default();
    let targets = select(&snapshot, &plan, &args.services, &folders, &cwd)?;
    if args.files.is_empty() {
        let root = args.context_root.as_deref().unwrap_or(&cwd);
        for t in &targets {
            contained(t, root)?;
        }
    }
    if targets.is_empty() {
        return Err(CliError::usage(
            "no Service has a build section (give one, or check the files given with -f)",
        ));
    }
    let docker =
        crate::build::connect(&g.docker_config()).map_err(|e| CliError::usage(e.to_string()))?;
    let printer = Printer::new(args.quiet);
    let report: Reporter = {
        let p = printer.clone();
        Arc::new(move |service: &str, event: Event| p.event(service, event))
    };
    let environment = Arc::new(environment);
    let flags = crate::build::BuildFlags {
        pull: args.pull,
        no_cache: args.no_cache,
    };
    // Your own files are read as they say; a stored Environment only within the rules.
    let rules = Arc::new(if args.files.is_empty() {
        crate::registry::SourceRules {
            trust_all: false,
            files_under: args.registry_secrets_dir.clone(),
        }
    } else {
        crate::registry::SourceRules::trusting()
    });
    let results: Vec<(String, Result<String, BuildError>)> =
        futures::stream::iter(targets.into_iter().map(|t| {
            let (docker, report, env) = (docker.clone(), report.clone(), environment.clone());
            let rules = rules.clone();
            async move {
                let service = t.service.clone();
                (
                    service,
                    one(&docker, &t, args.push, flags, &env, &rules, &report).await,
                )
            }
        }))
        .buffer_unordered(usize::from(args.parallel))
        .collect()
        .await;
    printer.finish();
    let mut failed = 0;
    let mut unreachable = false;
    for (service, result) in &results {
        match result {
            Ok(line) => output::out(line)?,
            Err(e) => {
                failed += 1;
                unreachable |= matches!(e, BuildError::Unavailable { .. });
                output::note(format_args!("error: service {service}: {e}"));
            }
        }
    }
    Ok(match failed {
        0 => ExitStatus::Success,
        n if n == results.len() && unreachable => ExitStatus::Usage,
        _ => ExitStatus::Failure,
    })
}

/// Builds (and pushes) one target; the line for stdout: the image, with its digest once pushed.
async fn one(
    docker: &bollard::Docker,
    t: &Target,
    push: bool,
    flags: crate::build::BuildFlags,
    env: &EnvironmentSpec,
    rules: &crate::registry::SourceRules,
    report: &Reporter,
) -> Result<String, BuildError> {
    // Credentials first: a push that cannot authenticate is known before the build.
    let credentials = if push {
        crate::registry::credentials_for(env, &t.image, rules)?
    } else {
        None
    };
    let dir = t.context.clone();
    let dockerfile = t
        .build
        .dockerfile
        .clone()
        .unwrap_or_else(|| "Dockerfile".into());
    let packed =
        tokio::task::spawn_blocking(move || crate::build::context::select(&dir, &dockerfile))
            .await
            .map_err(|e| BuildError::Step {
                step: None,
                message: format!("packing the context stopped: {e}"),
            })??;
    let pull_credentials = crate::registry::all_credentials(env, rules);
    crate::build::build(docker, t, packed, flags, &pull_credentials, report).await?;
    if !push {
        return Ok(t.image.clone());
    }
    let digest =
        crate::build::push(docker, &t.service, &t.image, credentials.as_ref(), report).await?;
    Ok(format!("{}@{digest}", t.image))
}

/// Reads `-f` inputs: the objects (every document checked, as `apply` checks them) and the
/// folder each Service's file is in (stdin: the working directory).
fn read_files(
    files: &[PathBuf],
    recursive: bool,
    cwd: &Path,
) -> Result<(Vec<DynamicObject>, BTreeMap<String, PathBuf>), CliError> {
    let sources = read_sources(files, recursive).map_err(|e| CliError::usage(e.to_string()))?;
    let report = validate_sources(&sources, &Options::default());
    if !report.is_valid() {
        for d in report.diagnostics() {
            output::note(format_args!("error: {d}"));
        }
        return Err(CliError::usage(
            "the manifests have problems; nothing was built",
        ));
    }
    let mut folders = BTreeMap::new();
    for f in &report.files {
        let folder = match f.file.as_str() {
            "-" => cwd.to_path_buf(),
            file => {
                let parent = Path::new(file).parent().unwrap_or(Path::new(""));
                cwd.join(parent)
            }
        };
        for (_, reference) in &f.objects {
            if let Some(name) = reference.strip_prefix("service/") {
                folders.insert(name.to_string(), folder.clone());
            }
        }
    }
    Ok((report.objects, folders))
}

/// The targets asked for: the named Services (each must have a build), or every Service
/// with one.
fn select(
    snapshot: &Snapshot,
    plan: &crate::plan::Plan,
    names: &[String],
    folders: &BTreeMap<String, PathBuf>,
    cwd: &Path,
) -> Result<Vec<Target>, CliError> {
    let merged = crate::build::merged_services(snapshot, plan);
    let all = names.is_empty() || names.iter().any(|n| n == "all");
    let wanted: Vec<&String> = if all {
        merged.keys().collect()
    } else {
        names.iter().collect()
    };
    let mut out = Vec::new();
    for name in wanted {
        let Some(spec) = merged.get(name) else {
            return Err(CliError::usage(format!("service {name:?} not found")));
        };
        let base = folders.get(name).map(PathBuf::as_path).unwrap_or(cwd);
        match crate::build::target_of(name, spec, base) {
            Ok(Some(t)) => out.push(t),
            Ok(None) if all => {}
            Ok(None) => {
                return Err(CliError::usage(format!(
                    "service {name:?} has no build section"
                )));
            }
            Err(e) => return Err(CliError::usage(e)),
        }
    }
    Ok(out)
}

/// Refuses a stored Service whose context is not inside `root` once links are resolved
/// (`/`, a home folder, `../..`): it was written by whoever could write to etcd, and
/// building it would send those files away.
fn contained(t: &Target, root: &Path) -> Result<(), CliError> {
    let canonical = |p: &Path| {
        std::fs::canonicalize(p)
            .map_err(|e| CliError::io(&format!("build context {}", p.display()), e))
    };
    let (context, root) = (canonical(&t.context)?, canonical(root)?);
    if context.starts_with(&root) {
        return Ok(());
    }
    Err(CliError::usage(format!(
        "service {:?}: its stored build context {} is outside {}: a stored Service's context \
         must be inside the working directory (or --context-root), since anyone who can write \
         to etcd chooses it",
        t.service,
        context.display(),
        root.display()
    )))
}

/// Progress on stderr, shared by the builds running at once. On a terminal the context
/// uploads in progress share one status line at the bottom, redrawn under the lines
/// printed; off a terminal each event is one line.
#[derive(Clone)]
struct Printer {
    tty: bool,
    quiet: bool,
    uploads: Arc<Mutex<BTreeMap<String, (u64, u64)>>>,
}

impl Printer {
    fn new(quiet: bool) -> Self {
        Printer {
            tty: std::io::stderr().is_terminal(),
            quiet,
            uploads: Arc::default(),
        }
    }

    fn event(&self, service: &str, event: Event) {
        if self.quiet {
            return;
        }
        let mut uploads = self.uploads.lock().unwrap_or_else(|e| e.into_inner());
        let line = match event {
            Event::Upload { sent, total } if sent < total => {
                uploads.insert(service.to_string(), (sent, total));
                if self.tty {
                    self.draw(&uploads, None);
                }
                return;
            }
            Event::Upload { total, .. } => {
                uploads.remove(service);
                format!("{service}: sent the context ({})", size(total))
            }
            Event::Step(step) => format!("{service}: {step}"),
            Event::Output(text) => format!("{service}:  {text}"),
            Event::Built { image } => format!("{service}: built {image}"),
            Event::Pushing { image } => format!("{service}: pushing {image}"),
            Event::Pushed { image, digest } => format!("{service}: pushed {image}@{digest}"),
        };
        self.draw(&uploads, Some(&line));
    }

    /// Prints `line` (if any) and, on a terminal, the status line of the uploads under it.
    fn draw(&self, uploads: &BTreeMap<String, (u64, u64)>, line: Option<&str>) {
        let mut text = String::new();
        if self.tty {
            text.push_str("\r\x1b[K");
        }
        if let Some(l) = line {
            text.push_str(l);
            text.push('\n');
        }
        if self.tty {
            let bars: Vec<String> = uploads
                .iter()
                .map(|(s, (sent, total))| {
                    let width = 20u64;
                    let done = (sent * width).checked_div(*total).unwrap_or(0);
                    format!(
                        "{s}: sending the context [{}{}] {}/{}",
                        "#".repeat(done as usize),
                        ".".repeat((width - done.min(width)) as usize),
                        size(*sent),
                        size(*total)
                    )
                })
                .collect();
            text.push_str(&bars.join("  "));
        }
        let mut e = std::io::stderr().lock();
        // stderr gone: nothing sensible is left to report it on.
        let _ = e.write_all(text.as_bytes()).and_then(|()| e.flush());
    }

    /// Clears the status line at the end.
    fn finish(&self) {
        if self.tty && !self.quiet {
            let mut e = std::io::stderr().lock();
            let _ = e.write_all(b"\r\x1b[K").and_then(|()| e.flush());
        }
    }
}

/// A byte count for a person.
fn size(bytes: u64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} B"),
        b if b < 1024 * 1024 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn flags_parse_and_parallel_is_at_least_one() {
        let w = Wrapper::try_parse_from([
            "x",
            "web",
            "api",
            "-f",
            "a.yaml",
            "--push",
            "--parallel",
            "4",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(w.args.services, vec!["web", "api"]);
        assert!(w.args.push);
        assert_eq!(w.args.parallel, 4);
        let w = Wrapper::try_parse_from(["x"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(w.args.parallel, 2);
        assert!(Wrapper::try_parse_from(["x", "--parallel", "0"]).is_err());
    }

    #[test]
    fn sizes_read_as_a_person_reads_them() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(10 * 1024 + 512), "10.5 KiB");
        assert_eq!(size(3 * 1024 * 1024), "3.0 MiB");
    }
}
