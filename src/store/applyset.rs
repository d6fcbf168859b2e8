//! Apply sets (`kargo apply --prune --applyset NAME`): the recorded membership of the
//! objects one set of manifests made, at `<prefix>/applysets/<name>`.
//!
//! Pruning deletes only what this record names and the files no longer hold; membership
//! is never guessed from labels, so objects of other sets or applied by hand are safe.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::api::Kind;

use super::{Precondition, Store, StoreError, TxnResult};

/// An object named by kind and name, written `kind/name` (`service/web`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    /// The kind.
    pub kind: Kind,
    /// The name.
    pub name: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.singular(), self.name)
    }
}

impl FromStr for ObjectRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, name) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?}: expected kind/name"))?;
        let kind: Kind = kind
            .parse()
            .map_err(|e: crate::api::UnknownKind| e.to_string())?;
        if name.is_empty() {
            return Err(format!("{s:?}: the name is empty"));
        }
        Ok(ObjectRef {
            kind,
            name: name.to_string(),
        })
    }
}

impl Serialize for ObjectRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ObjectRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The recorded membership of one apply set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ApplySet {
    /// The set's name.
    pub name: String,
    /// The objects the set's applies made and have not pruned yet.
    pub members: BTreeSet<ObjectRef>,
    /// When the record was last written, RFC 3339.
    #[serde(default)]
    pub updated: String,
}

impl Store {
    /// The key of an apply set's record.
    pub fn applyset_key(&self, name: &str) -> String {
        format!("{}/applysets/{name}", self.prefix)
    }

    /// Reads an apply set's record with its mod revision (for [`Store::put_applyset`]);
    /// `None` when the set was never recorded.
    pub async fn applyset(&self, name: &str) -> Result<Option<(ApplySet, i64)>, StoreError> {
        let key = self.applyset_key(name);
        let Some(entry) = self.kv.get(&key).await? else {
            return Ok(None);
        };
        let set: ApplySet =
            serde_json::from_slice(&entry.value).map_err(|e| StoreError::Corrupt {
                key: key.clone(),
                message: e.to_string(),
            })?;
        Ok(Some((set, entry.mod_revision)))
    }

    /// Writes an apply set's record if it is still at `expected` (its mod revision as read,
    /// `None`: it must not exist). Returns the new mod revision.
    ///
    /// Errors: [`StoreError::ApplySetConflict`] when another apply of the set wrote it meanwhile.
    pub async fn put_applyset(
        &self,
        set: &ApplySet,
        expected: Option<i64>,
    ) -> Result<i64, StoreError> {
        let mut set = set.clone();
        set.updated = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
        let bytes = serde_json::to_vec(&set).map_err(|e| StoreError::Corrupt {
            key: self.applyset_key(&set.name),
            message: e.to_string(),
        })?;
        let pre = match expected {
            Some(r) => Precondition::ModRevision(r),
            None => Precondition::Absent,
        };
        match self
            .kv
            .put(&self.applyset_key(&set.name), bytes, pre, None)
            .await?
        {
            TxnResult::Written(rev) => Ok(rev),
            TxnResult::PreconditionFailed => Err(StoreError::ApplySetConflict {
                name: set.name.clone(),
            }),
            TxnResult::Fenced => Err(StoreError::Fenced),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn membership_round_trips_with_compare_and_swap() {
        let store = Store::in_memory();
        assert!(store.applyset("web").await.expect("read").is_none());
        let set = ApplySet {
            name: "web".into(),
            members: ["service/a".parse(), "stack/s".parse()]
                .into_iter()
                .collect::<Result<_, _>>()
                .expect("refs"),
            updated: String::new(),
        };
        let rev = store.put_applyset(&set, None).await.expect("create");
        assert!(store.put_applyset(&set, None).await.is_err());
        let (read, read_rev) = store.applyset("web").await.expect("read").expect("set");
        assert_eq!((read.members, read_rev), (set.members.clone(), rev));
        assert!(store.put_applyset(&set, Some(rev)).await.is_ok());
        assert!(store.put_applyset(&set, Some(rev)).await.is_err(), "stale");
    }
}
