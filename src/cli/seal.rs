//! `kargo seal`: print manifests with every sensitive value sealed (kubeseal's workflow:
//! commit the sealed file; only the controller can open it).

use std::path::PathBuf;

use serde_json::json;

use crate::api::DynamicObject;
use crate::secrets::{self, LoadError, SecretsError};
use crate::store::Store;

use super::output::{self, to_yaml};
use super::{CliError, ExitStatus, GlobalArgs, manifests};

const EXAMPLES: &str = "Examples:
  kargo seal -f secrets.yaml > secrets.sealed.yaml   # commit the sealed file
  kargo seal -f secrets.yaml --public-key age1...    # offline, with the key `kargo keys show` printed";

/// Print the manifests with every sensitive value sealed: a sensitive file's `content` and
/// an Environment's `sensitiveVariables` become `sealed: <age armor>`, readable only with
/// the controller's private key. Values already sealed are printed as they are, so a
/// sealed file applies "unchanged". Writes nothing.
/// Exit codes: 0 printed, 2 usage, unreadable input, no keys or unreachable etcd.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Files, folders or `-` for stdin.
    #[arg(short = 'f', long = "filename", required = true)]
    files: Vec<PathBuf>,
    /// Recurse into sub-folders.
    #[arg(short = 'R', long)]
    recursive: bool,
    /// Seal to this public key (`age1…`) instead of the one stored in etcd.
    #[arg(long, value_name = "AGE1...")]
    public_key: Option<String>,
}

/// A manifest as a user writes it (no status, no store bookkeeping).
fn manifest(o: &DynamicObject) -> serde_json::Value {
    let mut meta = serde_json::Map::new();
    meta.insert("name".into(), json!(o.metadata.name));
    if !o.metadata.labels.is_empty() {
        meta.insert("labels".into(), json!(o.metadata.labels));
    }
    if !o.metadata.annotations.is_empty() {
        meta.insert("annotations".into(), json!(o.metadata.annotations));
    }
    json!({"apiVersion": o.api_version, "kind": o.kind, "metadata": meta, "spec": o.spec})
}

/// The CLI's word for a failure to seal.
pub(super) fn seal_error(e: LoadError) -> CliError {
    match e {
        LoadError::Store(e) => e.into(),
        LoadError::Key(SecretsError::Shape(m)) => CliError::failure(m),
        other => CliError::usage(other.to_string()),
    }
}

/// `apply`'s hook: every plaintext sensitive value sealed before anything is written;
/// refused, with how to create keys, when the installation has none.
pub(super) async fn seal_before_apply(
    store: &Store,
    objects: &mut [DynamicObject],
) -> Result<(), CliError> {
    secrets::seal_for_apply(store, objects)
        .await
        .map(|_| ())
        .map_err(|e| match e {
            LoadError::Key(SecretsError::NoPublicKey) => CliError::failure(format!(
                "the manifests hold sensitive values and this installation has no sealing key; nothing was written: {}",
                secrets::CREATE_KEYS_HINT
            )),
            other => seal_error(other),
        })
}

pub(super) async fn run(g: &GlobalArgs, args: Args) -> Result<ExitStatus, CliError> {
    let mut objects = manifests::load(&args.files, args.recursive)?;
    let recipient = match &args.public_key {
        Some(k) => secrets::parse_recipient(k).map_err(|e| CliError::usage(e.to_string()))?,
        None => {
            let store = g.store().await?;
            match secrets::load_public(&store).await.map_err(seal_error)? {
                Some((r, _)) => r,
                None => return Err(CliError::usage(SecretsError::NoPublicKey.to_string())),
            }
        }
    };
    let mut text = String::new();
    for o in &mut objects {
        secrets::seal_object(o, &recipient)
            .map_err(|e| CliError::failure(format!("{}: {e}", o.reference())))?;
        text.push_str("---\n");
        text.push_str(&to_yaml(&manifest(o)));
    }
    output::out_text(&text)?;
    Ok(ExitStatus::Success)
}
