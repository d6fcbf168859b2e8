//! `kargo keys`: the installation's sealing keys (create, rotate, show).

use std::path::PathBuf;

use crate::api::Kind;
use crate::secrets::{self, Keyring, LoadError};
use crate::store::StoreError;

use super::output;
use super::seal::seal_error;
use super::{CliError, ExitStatus, GlobalArgs};

const EXAMPLES: &str = "Examples:
  kargo keys create --out /etc/kargo/secret.key     # then: kargo controller --secret-key-file /etc/kargo/secret.key
  kargo keys show
  kargo keys rotate --key-file /etc/kargo/secret.key
  kargo keys rotate --key-file /etc/kargo/secret.key --drop-old";

/// Manage the installation's sealing keys: the public key in etcd (everyone seals with it)
/// and the private key file (only the controller opens with it). See docs/security.md.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, clap::Subcommand)]
enum KeysCommand {
    /// Make the key pair: the public key goes into etcd (`<prefix>/keys/public`), the
    /// private key into FILE (mode 0600), which only the controller is given. Refuses when
    /// the installation has a key already or FILE exists.
    #[command(after_help = "Example:\n  kargo keys create --out /etc/kargo/secret.key")]
    Create {
        /// Where to write the private key.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Print the public key stored for the installation.
    #[command(
        after_help = "Example:\n  kargo seal -f secrets.yaml --public-key \"$(kargo keys show)\""
    )]
    Show,
    /// Add a new key, reseal every stored sealed value (and any plaintext left by an
    /// earlier kargo) to it, and store its public key. Runs where the private key is. The
    /// older keys stay in FILE so a controller still running opens what it has; with
    /// --drop-old they are removed (restart the controller with the new FILE).
    #[command(
        after_help = "Examples:\n  kargo keys rotate --key-file /etc/kargo/secret.key\n  kargo keys rotate --key-file /etc/kargo/secret.key --drop-old"
    )]
    Rotate {
        /// The private key file (rewritten in place, mode 0600).
        #[arg(long, value_name = "FILE", env = "KARGO_SECRET_KEY_FILE")]
        key_file: PathBuf,
        /// Keep only the new key in FILE.
        #[arg(long)]
        drop_old: bool,
    },
}

pub(super) async fn run(g: &GlobalArgs, args: Args) -> Result<ExitStatus, CliError> {
    let store = g.store().await?;
    match args.command {
        KeysCommand::Create { out } => {
            if secrets::load_public(&store)
                .await
                .map_err(seal_error)?
                .is_some()
            {
                return Err(CliError::failure(
                    "this installation has a sealing key already: `kargo keys rotate` replaces it",
                ));
            }
            let keys = Keyring::generate();
            keys.write(&out, false)
                .map_err(|e| CliError::usage(e.to_string()))?;
            if let Err(e) = secrets::store_public(&store, &keys.public(), None).await {
                // The file is useless without its public key stored: take it back.
                let _ = std::fs::remove_file(&out);
                return Err(seal_error(e));
            }
            output::out(format_args!(
                "public key {} stored under {}",
                keys.public(),
                secrets::public_key_key(&store)
            ))?;
            output::note(format_args!(
                "private key written to {} (mode 0600): give it to the controller (--secret-key-file or KARGO_SECRET_KEY_FILE) and back it up; without it sealed values cannot be opened",
                out.display()
            ));
            Ok(ExitStatus::Success)
        }
        KeysCommand::Show => match secrets::load_public(&store).await.map_err(seal_error)? {
            Some((k, _)) => {
                output::out(k)?;
                Ok(ExitStatus::Success)
            }
            None => Err(CliError::failure(
                secrets::SecretsError::NoPublicKey.to_string(),
            )),
        },
        KeysCommand::Rotate { key_file, drop_old } => rotate(&store, &key_file, drop_old).await,
    }
}

/// The rotation: new key first in the file, every stored object resealed to it (each a
/// compare-and-swap through `modify`), then its public key stored over the old one.
async fn rotate(
    store: &crate::store::Store,
    key_file: &std::path::Path,
    drop_old: bool,
) -> Result<ExitStatus, CliError> {
    let usage = |e: secrets::SecretsError| CliError::usage(e.to_string());
    let keys = Keyring::read(key_file).map_err(usage)?;
    let stored = secrets::load_public(store).await.map_err(seal_error)?;
    let revision = match &stored {
        Some((public, _)) if !keys.holds(public) => {
            return Err(CliError::failure(format!(
                "the stored public key is not one of {}: refusing to rotate with another installation's key",
                key_file.display()
            )));
        }
        Some((_, rev)) => Some(*rev),
        None => None,
    };
    let next = keys.rotated();
    // The new key is on disk before anything is sealed to it.
    next.write(key_file, true).map_err(usage)?;
    let recipient = next.public();
    let mut resealed = 0;
    for kind in [Kind::Configuration, Kind::Environment] {
        for o in store.list(kind).await?.items {
            let mut failure = None;
            let r = store
                .modify(
                    kind,
                    &o.metadata.name,
                    None,
                    |obj| match secrets::reseal_object(obj, &next, &recipient) {
                        Ok(_) => {}
                        Err(e) => failure = Some(e),
                    },
                )
                .await;
            if let Some(e) = failure {
                return Err(CliError::failure(format!(
                    "{}: {e}; nothing further resealed (the new key is in {} already)",
                    o.reference(),
                    key_file.display()
                )));
            }
            match r {
                Ok(_) => {
                    if !secrets::has_plaintext(&o).is_empty() || secrets::has_sealed(&o) {
                        resealed += 1;
                        output::out(format_args!("{} resealed", o.reference()))?;
                    }
                }
                Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    secrets::store_public(store, &recipient, revision)
        .await
        .map_err(|e| match e {
            LoadError::Changed => CliError::failure(
                "the public key changed during the rotation (another `kargo keys` ran): run rotate again",
            ),
            other => seal_error(other),
        })?;
    if drop_old {
        next.without_old().write(key_file, true).map_err(usage)?;
    }
    output::out(format_args!(
        "new public key {recipient} stored; {resealed} object(s) resealed"
    ))?;
    output::note(if drop_old {
        "older keys dropped from the key file: restart the controller with it".to_string()
    } else {
        "older keys kept in the key file: once the controller runs with this file, drop them with --drop-old".to_string()
    });
    Ok(ExitStatus::Success)
}
