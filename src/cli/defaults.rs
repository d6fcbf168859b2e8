//! `kargo defaults`: the default configuration compiled into kargo.

use crate::manifest::defaults;

use super::output::out_text;
use super::{CliError, ExitStatus};

/// List or show the default services (Kargo's preconfigured catalog) that a Stack may
/// name without a Service object when the Configuration says `defaults: builtin`.
///
/// Example: kargo defaults show redis
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: DefaultsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum DefaultsCommand {
    /// Names of the catalog's services, with their images.
    ///
    /// Example: kargo defaults list
    List,
    /// One service's manifest, as compiled in.
    ///
    /// Example: kargo defaults show mongodb
    Show {
        /// The service.
        name: String,
    },
}

pub(super) fn run(args: Args) -> Result<ExitStatus, CliError> {
    match args.command {
        DefaultsCommand::List => {
            let mut text = String::from("NAME                IMAGE\n");
            for name in defaults::names() {
                let image = defaults::spec(name)
                    .and_then(Result::ok)
                    .and_then(|s| s.get("image").and_then(|i| i.as_str()).map(str::to_string))
                    .unwrap_or_default();
                text.push_str(&format!("{name:<19} {image}\n"));
            }
            out_text(&text)?;
            Ok(ExitStatus::Success)
        }
        DefaultsCommand::Show { name } => match defaults::source(&name) {
            Some(src) => {
                out_text(src)?;
                Ok(ExitStatus::Success)
            }
            None => Err(CliError::failure(format!(
                "no default service {name:?}; `kargo defaults list` shows them"
            ))),
        },
    }
}
