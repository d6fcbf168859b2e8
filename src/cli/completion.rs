//! `kargo completion`: the script that registers kargo's completion with a shell.

use super::{CliError, ExitStatus, complete, output};

const EXAMPLES: &str = "Examples:
  source <(kargo completion bash)
  kargo completion bash > /etc/bash_completion.d/kargo
  kargo completion zsh > \"${fpath[1]}/_kargo\"
  kargo completion fish > ~/.config/fish/completions/kargo.fish";

/// Print a completion script for bash, zsh or fish (touches neither etcd nor Docker).
///
/// The script asks kargo on each TAB, so kinds, object names (read from etcd when it can
/// be reached) and flag values are completed; regenerate it after upgrading kargo.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// The shell.
    shell: Shell,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Shell {
    Bash,
    Zsh,
    Fish,
}

pub(super) fn run(args: Args) -> Result<ExitStatus, CliError> {
    let name = match args.shell {
        Shell::Bash => "bash",
        Shell::Zsh => "zsh",
        Shell::Fish => "fish",
    };
    let mut script = Vec::new();
    complete::registration_for(name, &mut script)?;
    output::out_bytes(&script)?;
    Ok(ExitStatus::Success)
}
