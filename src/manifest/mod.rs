//! Reading manifests: YAML with positions, validation, interpolation and the merge.

pub mod defaults;
pub mod interpolate;
pub mod limits;
pub mod load;
pub mod merge;
pub mod validate;
pub mod yaml;

use std::collections::BTreeMap;

/// A default catalog entry's spec by name, as the controller layers it under user Services.
pub fn catalog_spec(name: &str) -> Option<serde_json::Value> {
    defaults::spec(name).and_then(Result::ok)
}

/// Resolves an Environment's variables: how many there are, or every unresolved reference.
pub fn resolve_environment(variables: &BTreeMap<String, String>) -> Result<u64, Vec<String>> {
    interpolate::resolve_variables(variables)
        .map(|m| m.len() as u64)
        .map_err(|errors| errors.iter().map(ToString::to_string).collect())
}
