//! Dynamic shell completion (clap_complete's engine): the shell calls
//! `KARGO_COMPLETE=bash kargo -- kargo get service w` on TAB, and kargo answers with kinds,
//! object names read from etcd (nothing when etcd cannot be reached in a moment) and flag
//! values. `kargo completion SHELL` prints the script that registers this with the shell.

use std::ffi::{OsStr, OsString};
use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use clap_complete::engine::{ArgValueCandidates, ArgValueCompleter, CompletionCandidate};
use clap_complete::env::{EnvCompleter, Shells};

use crate::api::Kind;

use super::{Cli, CliError, ExitStatus, GlobalArgs, output};

/// The environment variable that turns a run of kargo into a completion request.
const VAR: &str = "KARGO_COMPLETE";

/// How long completion may wait for etcd before offering no names.
const ETCD_WAIT: Duration = Duration::from_millis(1500);

/// The words of the command line being completed, before the word under the cursor.
static WORDS: OnceLock<Vec<String>> = OnceLock::new();

/// Answers a completion request when `KARGO_COMPLETE` names a shell; `None` for a normal run.
pub fn answer_request() -> Option<ExitCode> {
    let shell_name = std::env::var_os(VAR)?;
    if shell_name.is_empty() || shell_name == "0" {
        return None;
    }
    let result = shell(&shell_name.to_string_lossy()).and_then(|shell| {
        let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
        let escape = args
            .iter()
            .position(|a| a == "--")
            .map_or(args.len(), |i| i + 1);
        args.drain(..escape);
        let mut buffer = Vec::new();
        if args.is_empty() {
            registration(shell, &mut buffer)?;
        } else {
            let _ = WORDS.set(words_before_cursor(&args));
            let mut cmd = Cli::command();
            cmd.build();
            let dir = std::env::current_dir().ok();
            shell
                .write_complete(&mut cmd, args, dir.as_deref(), &mut buffer)
                .map_err(|e| CliError::io("completing", e))?;
        }
        output::out_bytes(&buffer)
    });
    Some(match result {
        Ok(()) => ExitStatus::Success.into(),
        Err(e) => super::error::report(&e),
    })
}

/// The shell adapter for `name` (bash, zsh, fish, elvish, powershell).
fn shell(name: &str) -> Result<&'static dyn EnvCompleter, CliError> {
    const SHELLS: Shells<'static> = Shells::builtins();
    SHELLS
        .completer(name)
        .ok_or_else(|| CliError::usage(format!("cannot complete for the shell {name:?}")))
}

/// Writes the script that makes `shell` ask kargo for completions.
fn registration(shell: &dyn EnvCompleter, buffer: &mut dyn std::io::Write) -> Result<(), CliError> {
    shell
        .write_registration(VAR, "kargo", "kargo", &completer_path(), buffer)
        .map_err(|e| CliError::io("writing the completion script", e))
}

/// Writes the registration script for a shell named as `kargo completion` names it.
pub fn registration_for(name: &str, buffer: &mut dyn std::io::Write) -> Result<(), CliError> {
    registration(shell(name)?, buffer)
}

/// The program the shell should call: this one, as it was started (made absolute when it
/// was started by a relative path, which the shell's working directory would break).
fn completer_path() -> String {
    let started = std::env::args_os().next().unwrap_or_else(|| "kargo".into());
    let mut path = std::path::PathBuf::from(started);
    if path.components().count() > 1
        && path.is_relative()
        && let Ok(dir) = std::env::current_dir()
    {
        path = dir.join(path);
    }
    path.to_string_lossy().into_owned()
}

/// The words before the one being completed (bash says where the cursor is; the other
/// shells complete the last word).
fn words_before_cursor(args: &[OsString]) -> Vec<String> {
    let index = std::env::var("_CLAP_COMPLETE_INDEX")
        .ok()
        .and_then(|i| i.parse::<usize>().ok())
        .unwrap_or(args.len().saturating_sub(1));
    args.iter()
        .take(index)
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

/// Completes `KIND [NAME]...`, `KIND/NAME...` and `kind,kind`: kinds first, then names of
/// the kind already given.
pub fn targets() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| complete_target(current, None))
}

/// Completes the names of services (`logs`, `ps`, `scale`: `service` may be left out).
pub fn services() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| complete_target(current, Some(Kind::Service)))
}

/// Completes the names of stacks (`deploy`, `remove`).
pub fn stacks() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| {
        let current = current.to_string_lossy();
        let mut out = names(Kind::Stack, &current, "");
        if "all".starts_with(current.as_ref()) {
            out.push(CompletionCandidate::new("all"));
        }
        out
    })
}

/// The values of `-o` that need no template.
pub fn output_formats() -> ArgValueCandidates {
    ArgValueCandidates::new(|| {
        ["table", "wide", "yaml", "json", "name", "jsonpath="]
            .into_iter()
            .map(CompletionCandidate::new)
            .collect()
    })
}

fn complete_target(current: &OsStr, implied: Option<Kind>) -> Vec<CompletionCandidate> {
    let current = current.to_string_lossy();
    if let Some((kind, name)) = current.split_once('/') {
        return match kind.parse::<Kind>() {
            Ok(k) => names(k, name, &format!("{kind}/")),
            Err(_) => Vec::new(),
        };
    }
    let given = WORDS.get().and_then(|w| kind_given(w));
    match given.or(implied) {
        Some(k) => names(k, &current, ""),
        None => Kind::ALL
            .iter()
            .map(|k| k.singular())
            .chain(["all"])
            .filter(|k| k.starts_with(current.as_ref()))
            .map(CompletionCandidate::new)
            .collect(),
    }
}

/// The kind named among the command's words: the first word after the command's name
/// that is a kind (flags and their values, such as `yaml`, never are).
fn kind_given(words: &[String]) -> Option<Kind> {
    let commands: Vec<String> = Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    let start = words.iter().position(|w| commands.contains(w))? + 1;
    words[start..]
        .iter()
        .filter(|w| !w.starts_with('-'))
        .find_map(|w| w.parse::<Kind>().ok())
}

/// The names of objects of `kind` starting with `current`, each after `prefix`, from etcd.
fn names(kind: Kind, current: &str, prefix: &str) -> Vec<CompletionCandidate> {
    let Some(found) = stored_names(kind) else {
        return Vec::new();
    };
    found
        .into_iter()
        .filter(|n| n.starts_with(current))
        .map(|n| CompletionCandidate::new(format!("{prefix}{n}")))
        .collect()
}

/// Only the global options of a command line, to reach the same etcd and prefix as the
/// command being completed would.
#[derive(Debug, Parser)]
#[command(name = "kargo")]
struct GlobalsOnly {
    #[command(flatten)]
    global: GlobalArgs,
}

/// The global options among `words` (wherever they stand) with their values.
fn global_words(words: &[String]) -> Vec<String> {
    let cmd = GlobalsOnly::command();
    let takes_value = |long: &str| {
        cmd.get_arguments()
            .find(|a| a.get_long() == Some(long))
            .map(|a| a.get_action().takes_values())
    };
    let mut out = vec!["kargo".to_string()];
    let mut rest = words.iter().skip(1);
    while let Some(word) = rest.next() {
        let Some(long) = word.strip_prefix("--") else {
            continue;
        };
        let (name, inline) = match long.split_once('=') {
            Some((name, _)) => (name, true),
            None => (long, false),
        };
        match takes_value(name) {
            Some(true) if !inline => {
                out.push(word.clone());
                if let Some(value) = rest.next() {
                    out.push(value.clone());
                }
            }
            Some(_) => out.push(word.clone()),
            None => {}
        }
    }
    out
}

/// The names of the stored objects of `kind`; `None` when etcd does not answer in a moment.
fn stored_names(kind: Kind) -> Option<Vec<String>> {
    let words = WORDS.get()?;
    let globals = GlobalsOnly::try_parse_from(global_words(words)).ok()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    runtime.block_on(async {
        let list = tokio::time::timeout(ETCD_WAIT, async {
            let store = globals.global.store().await.ok()?;
            store.list(kind).await.ok()
        })
        .await
        .ok()??;
        Some(list.items.into_iter().map(|o| o.metadata.name).collect())
    })
}
