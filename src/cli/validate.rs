//! `kargo validate`: check manifests offline, with the contract of `kubeconform -strict`.

use std::path::PathBuf;

use crate::manifest::validate::{Options, OutputFormat, render, validate_paths};

use super::{CliError, ExitStatus, output};

const EXAMPLES: &str = "Examples:
  kargo validate -f manifests/ -R
  kargo validate -f stack.yaml -f services.yaml --summary
  kargo validate -f workspace/ -R -o json
  cat service.yaml | kargo validate -f -";

/// Check manifests against the schemas and each other, offline (no etcd, no Docker).
///
/// Every document of every file is checked (files in parallel) and every problem is
/// printed as `file:line:column: kind/name: field: message`. The checks are those `kargo
/// apply` runs before writing: YAML (duplicate keys, tabs, size and depth limits), the
/// kind's schema (unknown fields, types, required fields, names, enums, durations, ports,
/// memory sizes, placement constraints), references among the given objects (a Stack's
/// services exist, no `dependsOn` cycle, ...), a Service's build context exists (relative
/// to its file's folder), and the `${VAR}` syntax of the strings the
/// controller interpolates (a shell `$((i+1))` must be written `$$((i+1))`). Whether a
/// variable is set depends on the Environment in etcd: `kargo apply` checks that.
///
/// Exit codes: 0 all valid, 1 some document is invalid, 2 usage error or a file that cannot
/// be read (or no manifest found).
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Files, folders (their *.yaml, *.yml and *.json files) or `-` for stdin.
    #[arg(short = 'f', long = "filename", required = true)]
    files: Vec<PathBuf>,
    /// Recurse into sub-folders.
    #[arg(short = 'R', long)]
    recursive: bool,
    /// Output format: `text` (one problem per line), `json` (one ValidationReport document) or `junit` (XML).
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    output: Output,
    /// Print a summary line (documents valid, invalid, unreadable) after the problems (text output).
    #[arg(long)]
    summary: bool,
    /// Worker threads (default: one per core).
    #[arg(long, default_value_t = 0, hide = true)]
    threads: usize,
}

/// The `-o` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    /// file:line:column: object: field: message.
    Text,
    /// A ValidationReport document.
    Json,
    /// JUnit XML.
    Junit,
}

pub(super) fn run(args: Args) -> Result<ExitStatus, CliError> {
    let options = Options {
        threads: args.threads,
        // The policy check below reads the Services' specs.
        keep_objects: true,
        ..Options::default()
    };
    let mut report = validate_paths(&args.files, args.recursive, &options);
    crate::policy::manifests::check_report(&mut report);
    crate::manifest::validate::check_build_contexts(&mut report);
    if report.files.is_empty() {
        return Err(CliError::usage(format!(
            "no manifest files (*.yaml, *.yml, *.json) found in {}{}",
            args.files
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            if args.recursive {
                ""
            } else {
                " (use -R to recurse into sub-folders)"
            }
        )));
    }
    let format = match args.output {
        Output::Text => OutputFormat::Text,
        Output::Json => OutputFormat::Json,
        Output::Junit => OutputFormat::Junit,
    };
    let text = render(&report, format, args.summary);
    let status = if report.has_io_errors() {
        ExitStatus::Usage
    } else if report.is_valid() {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    };
    output::out_text(&text)?;
    // The process ends now: freeing a report of many thousand files, piece by piece, would
    // only delay the exit (as ripgrep and rustc leave their last structures to the OS).
    std::mem::forget(report);
    Ok(status)
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
    fn flags_parse_like_kubeconform() {
        let w =
            Wrapper::try_parse_from(["x", "-f", "a", "-f", "b", "-R", "-o", "junit", "--summary"])
                .expect("parse");
        assert_eq!(w.args.files.len(), 2);
        assert!(w.args.recursive && w.args.summary);
        assert_eq!(w.args.output, Output::Junit);
        assert!(Wrapper::try_parse_from(["x"]).is_err(), "-f is required");
        assert!(Wrapper::try_parse_from(["x", "-f", "a", "-o", "yaml"]).is_err());
    }
}
