//! Pinning a tag to its digest, as `docker stack deploy --resolve-image` does: what an
//! answer of the engine's distribution endpoint means, the image reference written once
//! pinned, and the registries that recently failed (tried again only after a while, so a
//! registry that cannot be reached slows no reconcile more than once).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::Credentials;

use crate::api::ResolveImage;

/// How long one resolution may take before the registry counts as unreachable.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// How long an unreachable registry is not asked again.
pub const REMEMBER_FAILURE: Duration = Duration::from_secs(300);

/// What asking a registry for a tag's digest gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// The digest (`sha256:…`) the tag points to now.
    Digest(String),
    /// The registry refused the credentials kargo gave it: nothing is deployed with them.
    CredentialsRefused(String),
    /// The digest could not be had (registry unreachable, tag unknown there, no
    /// credentials for a private image): the image is deployed unpinned, with a warning.
    Unresolved(String),
}

/// Reads an error of the engine's `/distribution/{image}/json`: an authentication refusal
/// when credentials were given (`had_credentials`), else unresolved.
pub fn classify_error(status: Option<u16>, message: &str, had_credentials: bool) -> Resolution {
    let lower = message.to_ascii_lowercase();
    let refused = status == Some(401)
        || lower.contains("unauthorized")
        || lower.contains("authentication required")
        || lower.contains("denied");
    if refused && had_credentials {
        Resolution::CredentialsRefused(message.to_string())
    } else {
        Resolution::Unresolved(message.to_string())
    }
}

/// Whether an unresolved answer says the registry could not be reached (remembered for
/// [`REMEMBER_FAILURE`]) rather than something about this one image (a tag it does not
/// have, credentials it wants).
pub fn is_unreachable(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    !(lower.contains("manifest unknown")
        || lower.contains("not found")
        || lower.contains("no basic auth credentials")
        || lower.contains("unauthorized")
        || lower.contains("denied"))
}

/// The reference without its digest: `name:tag@sha256:…` → `name:tag`.
pub fn without_digest(image: &str) -> &str {
    image.split_once('@').map_or(image, |(name, _)| name)
}

/// The digest part of a pinned reference, if any.
pub fn digest_of(image: &str) -> Option<&str> {
    image.split_once('@').map(|(_, digest)| digest)
}

/// The reference pinned: `name:tag@digest` (an existing digest is replaced; an image with
/// no tag keeps none, as Docker writes it).
pub fn pinned(image: &str, digest: &str) -> String {
    format!("{}@{digest}", without_digest(image))
}

/// What a push does about its image's digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pinning {
    /// Send the image as it is (`never`, or a reference with a digest of its own).
    AsWritten,
    /// Ask the registry for the tag's digest now.
    Resolve,
    /// Send this reference: the live one, kept (`changed`, and the tag did not change).
    Keep(String),
}

/// What a push of `image` (the unpinned rendered reference) does under `mode`, given the
/// image the live service runs (`None`: a new service). Pure: the resolution itself is
/// the caller's I/O.
pub fn pinning(mode: ResolveImage, image: &str, live: Option<&str>) -> Pinning {
    if digest_of(image).is_some() {
        return Pinning::AsWritten;
    }
    match (mode, live) {
        (ResolveImage::Never, _) => Pinning::AsWritten,
        (ResolveImage::Changed, Some(live)) if without_digest(live) == image => {
            Pinning::Keep(live.to_string())
        }
        _ => Pinning::Resolve,
    }
}

/// Registries that failed lately, by registry name, with the reason; and credentials a
/// registry refused, so they are not offered again every reconcile (registries lock
/// accounts and rate-limit after repeated failures) until they change or a while passes.
#[derive(Debug, Default)]
pub struct FailureMemory {
    failed: HashMap<String, (Instant, String)>,
    refused: HashMap<[u8; 32], (Instant, String)>,
}

/// Identifies one set of credentials without keeping the password.
fn credentials_key(credentials: &Credentials) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [
        &credentials.server,
        &credentials.username,
        &credentials.password,
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.finalize().into()
}

impl FailureMemory {
    /// The reason a registry failed less than [`REMEMBER_FAILURE`] ago, if it did.
    pub fn recent(&mut self, registry: &str, now: Instant) -> Option<&str> {
        let expired = self
            .failed
            .get(registry)
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) >= REMEMBER_FAILURE);
        if expired {
            self.failed.remove(registry);
        }
        self.failed.get(registry).map(|(_, why)| why.as_str())
    }

    /// Notes that a registry could not be reached.
    pub fn failed(&mut self, registry: &str, why: &str, now: Instant) {
        self.failed
            .insert(registry.to_string(), (now, why.to_string()));
    }

    /// Forgets a registry's failure (it answered).
    pub fn answered(&mut self, registry: &str) {
        self.failed.remove(registry);
    }

    /// Why the registry refused these very credentials less than [`REMEMBER_FAILURE`]
    /// ago, if it did (changed credentials are offered at once).
    pub fn refusal(&mut self, credentials: &Credentials, now: Instant) -> Option<&str> {
        let key = credentials_key(credentials);
        let expired = self
            .refused
            .get(&key)
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) >= REMEMBER_FAILURE);
        if expired {
            self.refused.remove(&key);
        }
        self.refused.get(&key).map(|(_, why)| why.as_str())
    }

    /// Notes that a registry refused these credentials.
    pub fn refused(&mut self, credentials: &Credentials, why: &str, now: Instant) {
        self.refused
            .insert(credentials_key(credentials), (now, why.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_an_error_only_when_credentials_were_given() {
        let m = "unauthorized: authentication required";
        assert!(matches!(
            classify_error(Some(401), m, true),
            Resolution::CredentialsRefused(_)
        ));
        assert!(matches!(
            classify_error(Some(401), m, false),
            Resolution::Unresolved(_)
        ));
        let none = "Head \"http://127.0.0.1:5015/v2/p/manifests/1\": no basic auth credentials";
        assert!(matches!(
            classify_error(Some(500), none, false),
            Resolution::Unresolved(_)
        ));
        assert!(!is_unreachable(none));
    }

    #[test]
    fn an_unknown_tag_is_not_an_unreachable_registry() {
        assert!(!is_unreachable("manifest unknown: manifest unknown"));
        assert!(is_unreachable(
            "Get \"https://registry-1.docker.io/v2/\": dial tcp: lookup registry-1.docker.io: no such host"
        ));
    }

    #[test]
    fn pinning_replaces_a_digest_and_keeps_the_tag() {
        assert_eq!(pinned("r:5000/a:1", "sha256:ab"), "r:5000/a:1@sha256:ab");
        assert_eq!(
            pinned("r:5000/a:1@sha256:00", "sha256:ab"),
            "r:5000/a:1@sha256:ab"
        );
        assert_eq!(without_digest("a:1@sha256:ab"), "a:1");
        assert_eq!(digest_of("a:1@sha256:ab"), Some("sha256:ab"));
        assert_eq!(digest_of("r:5000/a:1"), None);
    }

    #[test]
    fn each_mode_resolves_when_docker_would() {
        use ResolveImage::{Always, Changed, Never};
        let (tag, live) = ("r:5000/a:1", Some("r:5000/a:1@sha256:old"));
        assert_eq!(pinning(Always, tag, live), Pinning::Resolve);
        assert_eq!(pinning(Always, tag, None), Pinning::Resolve);
        assert_eq!(pinning(Never, tag, live), Pinning::AsWritten);
        assert_eq!(
            pinning(Changed, tag, live),
            Pinning::Keep("r:5000/a:1@sha256:old".into())
        );
        assert_eq!(
            pinning(Changed, tag, Some("r:5000/a:1")),
            Pinning::Keep(tag.into())
        );
        assert_eq!(pinning(Changed, "r:5000/a:2", live), Pinning::Resolve);
        assert_eq!(pinning(Changed, tag, None), Pinning::Resolve);
        let own = "r:5000/a:1@sha256:mine";
        assert_eq!(pinning(Always, own, live), Pinning::AsWritten);
    }

    #[test]
    fn refused_credentials_are_not_offered_again_until_they_change() {
        let mut memory = FailureMemory::default();
        let t0 = Instant::now();
        let creds = |password: &str| Credentials {
            server: "r:5000".into(),
            username: "kargo".into(),
            password: password.into(),
        };
        memory.refused(&creds("wrong"), "unauthorized", t0);
        assert_eq!(memory.refusal(&creds("wrong"), t0), Some("unauthorized"));
        assert_eq!(memory.refusal(&creds("right"), t0), None);
        assert_eq!(memory.refusal(&creds("wrong"), t0 + REMEMBER_FAILURE), None);
    }

    #[test]
    fn a_failure_is_remembered_for_a_while_then_tried_again() {
        let mut memory = FailureMemory::default();
        let t0 = Instant::now();
        memory.failed("docker.io", "no such host", t0);
        assert_eq!(
            memory.recent("docker.io", t0 + Duration::from_secs(10)),
            Some("no such host")
        );
        assert_eq!(memory.recent("ghcr.io", t0), None);
        assert_eq!(memory.recent("docker.io", t0 + REMEMBER_FAILURE), None);
        memory.failed("docker.io", "again", t0);
        memory.answered("docker.io");
        assert_eq!(memory.recent("docker.io", t0), None);
    }
}
