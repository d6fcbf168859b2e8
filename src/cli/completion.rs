//! `kargo completion`: shell completion scripts.

use clap::CommandFactory;

use super::{Cli, CliError, ExitStatus, output};

const EXAMPLES: &str = "Examples:
  kargo completion bash > /etc/bash_completion.d/kargo
  source <(kargo completion bash)
  kargo completion zsh > \"${fpath[1]}/_kargo\"
  kargo completion fish > ~/.config/fish/completions/kargo.fish";

/// Print a completion script for bash, zsh or fish (touches neither etcd nor Docker).
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
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut cmd = Cli::command();
    output::out_with(|w| {
        clap_complete::generate(shell, &mut cmd, "kargo", w);
        Ok(())
    })?;
    Ok(ExitStatus::Success)
}
