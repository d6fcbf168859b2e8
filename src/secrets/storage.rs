//! Where the installation's public key lives in etcd: `<prefix>/keys/public`, outside
//! `<prefix>/registry/` so that an etcd role other than the writers' can protect it
//! (docs/security.md). Every operator reads it to seal; only `kargo keys` writes it.

use age::x25519::Recipient;

use crate::store::{Precondition, Store, StoreError, TxnResult};

use super::{SecretsError, parse_recipient};

/// The key under the prefix that holds the public key.
pub const PUBLIC_KEY_SUFFIX: &str = "/keys/public";

/// The etcd key of an installation's public key.
pub fn public_key_key(store: &Store) -> String {
    format!("{}{PUBLIC_KEY_SUFFIX}", store.prefix())
}

/// The stored public key with its mod revision; `None` when keys were never created.
///
/// Errors: [`StoreError`] from etcd; a stored value that does not parse is
/// [`SecretsError::BadPublicKey`] inside [`LoadError::Key`].
pub async fn load_public(store: &Store) -> Result<Option<(Recipient, i64)>, LoadError> {
    let Some(entry) = store
        .kv()
        .get(&public_key_key(store))
        .await
        .map_err(StoreError::from)?
    else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&entry.value).to_string();
    Ok(Some((parse_recipient(&text)?, entry.mod_revision)))
}

/// Writes the public key: only where none is (`expected: None`) or over the revision read.
///
/// Errors: [`LoadError::Changed`] when someone else wrote it in between.
pub async fn store_public(
    store: &Store,
    recipient: &Recipient,
    expected: Option<i64>,
) -> Result<(), LoadError> {
    let precondition = match expected {
        None => Precondition::Absent,
        Some(rev) => Precondition::ModRevision(rev),
    };
    match store
        .kv()
        .put(
            &public_key_key(store),
            recipient.to_string().into_bytes(),
            precondition,
            None,
        )
        .await
        .map_err(StoreError::from)?
    {
        TxnResult::Written(_) => Ok(()),
        TxnResult::PreconditionFailed | TxnResult::Fenced => Err(LoadError::Changed),
    }
}

/// Failures reading or writing the public key.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// etcd failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored key is unusable.
    #[error(transparent)]
    Key(#[from] SecretsError),
    /// The public key exists already, or changed since it was read.
    #[error(
        "the installation's public key exists already or changed meanwhile (`kargo keys create` runs once; `kargo keys rotate` replaces it)"
    )]
    Changed,
}

/// What `apply` does before it writes anything: seals every plaintext sensitive value of
/// `objects` with the installation's public key (sealed ones pass unchanged). Returns how
/// many values were sealed.
///
/// Errors: [`SecretsError::NoPublicKey`] (inside [`LoadError::Key`]) when a value needs
/// sealing and no keys were created; [`SecretsError::Shape`] for a malformed value.
pub async fn seal_for_apply(
    store: &Store,
    objects: &mut [crate::api::DynamicObject],
) -> Result<usize, LoadError> {
    if objects.iter().all(|o| super::has_plaintext(o).is_empty()) {
        return Ok(0);
    }
    let Some((recipient, _)) = load_public(store).await? else {
        return Err(SecretsError::NoPublicKey.into());
    };
    let mut n = 0;
    for o in objects.iter_mut() {
        n += super::seal_object(o, &recipient)
            .map_err(|e| SecretsError::Shape(format!("{}: {e}", o.reference())))?;
    }
    Ok(n)
}
