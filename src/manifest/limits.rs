//! Bounds on what one manifest may grow into once read, merged and interpolated, so no
//! manifest can exhaust the memory of the CLI or the controller.
//!
//! | bound | limit | why |
//! | --- | --- | --- |
//! | [`MAX_VALUE_BYTES`] | 500 KB | one interpolated string: Swarm's limit on a config or secret |
//! | [`MAX_VARIABLES_BYTES`] | 8 MiB | an Environment's variables together, resolved |
//! | [`MAX_OBJECT_BYTES`] | 1.5 MiB | one object as JSON: etcd's limit on a request |
//!
//! Interpolation ([`crate::manifest::interpolate`]) checks the first two while it builds
//! its output, before allocating past them; [`check_object_size`] checks the third.

use std::io::Write;

use serde_json::Value;

/// Most bytes one interpolated value may hold: Swarm's limit on a config or secret.
pub const MAX_VALUE_BYTES: usize = 500 * 1024;

/// Most bytes an Environment's variables may hold together once resolved.
pub const MAX_VARIABLES_BYTES: usize = 8 * 1024 * 1024;

/// Most bytes one object may take as JSON: etcd's default limit on a request.
pub const MAX_OBJECT_BYTES: usize = 1536 * 1024;

/// A byte bound in words for messages: `500 KB (512000 bytes)`.
pub fn describe_bytes(limit: usize) -> String {
    const MIB: usize = 1024 * 1024;
    let short = if limit >= MIB && limit.is_multiple_of(MIB / 2) {
        if limit.is_multiple_of(MIB) {
            format!("{} MiB", limit / MIB)
        } else {
            format!("{}.5 MiB", limit / MIB)
        }
    } else if limit >= 1024 && limit.is_multiple_of(1024) {
        format!("{} KB", limit / 1024)
    } else {
        return format!("{limit} bytes");
    };
    format!("{short} ({limit} bytes)")
}

/// An object whose JSON is larger than [`MAX_OBJECT_BYTES`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectTooLarge {
    /// The object, as `kind/name` (or however the caller names it).
    pub object: String,
    /// The limit in force.
    pub limit: usize,
}

impl std::fmt::Display for ObjectTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.object, self.detail())
    }
}

impl std::error::Error for ObjectTooLarge {}

impl ObjectTooLarge {
    /// The message without the object's name, for reports that name it already.
    pub fn detail(&self) -> String {
        format!(
            "the object is more than {} as JSON; one object may be at most that (etcd's limit on a request)",
            describe_bytes(self.limit)
        )
    }
}

/// Checks that `value` (an object, or its rendered spec) takes at most [`MAX_OBJECT_BYTES`]
/// as compact JSON; `object` names it in the error (`service/web`).
///
/// Counts without building the text, and stops counting as soon as the bound is passed,
/// so a huge value costs no memory and little time.
pub fn check_object_size(object: &str, value: &Value) -> Result<(), ObjectTooLarge> {
    if json_size_within(value, MAX_OBJECT_BYTES) {
        Ok(())
    } else {
        Err(ObjectTooLarge {
            object: object.to_string(),
            limit: MAX_OBJECT_BYTES,
        })
    }
}

/// Whether `value` as compact JSON takes at most `limit` bytes.
pub fn json_size_within(value: &Value, limit: usize) -> bool {
    let mut counter = Counter { left: limit };
    serde_json::to_writer(&mut counter, value).is_ok()
}

/// A writer that only counts, and fails once more than its budget is written.
struct Counter {
    left: usize,
}

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.left.checked_sub(buf.len()) {
            Some(left) => {
                self.left = left;
                Ok(buf.len())
            }
            None => Err(std::io::Error::other("over the limit")),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bounds_are_described_in_the_units_users_know() {
        assert_eq!(describe_bytes(MAX_VALUE_BYTES), "500 KB (512000 bytes)");
        assert_eq!(describe_bytes(MAX_OBJECT_BYTES), "1.5 MiB (1572864 bytes)");
        assert_eq!(describe_bytes(MAX_VARIABLES_BYTES), "8 MiB (8388608 bytes)");
        assert_eq!(describe_bytes(10), "10 bytes");
    }

    #[test]
    fn an_object_over_one_and_a_half_mib_is_refused_by_name() {
        let small = json!({"image": "x", "env": {"A": "b".repeat(1000)}});
        assert_eq!(check_object_size("service/web", &small), Ok(()));
        let big = json!({"env": {"A": "b".repeat(MAX_OBJECT_BYTES)}});
        let error = check_object_size("service/web", &big).err();
        assert_eq!(
            error.map(|e| e.to_string()).as_deref(),
            Some(
                "service/web: the object is more than 1.5 MiB (1572864 bytes) as JSON; one object may be at most that (etcd's limit on a request)"
            )
        );
    }

    #[test]
    fn the_size_is_the_compact_json_size() {
        let v = json!({"a": [1, "x"]});
        let exact = serde_json::to_string(&v).map(|s| s.len()).unwrap_or(0);
        assert!(json_size_within(&v, exact));
        assert!(!json_size_within(&v, exact - 1));
    }
}
