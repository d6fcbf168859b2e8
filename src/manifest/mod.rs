//! Reading manifests: YAML with positions, validation, interpolation and the merge.
