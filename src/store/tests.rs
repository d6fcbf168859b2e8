//! The store's contract, on the in-memory backend (the same checks run on etcd in tests/).

#[path = "../../tests/common/store_conformance.rs"]
mod conformance;

use super::Store;

macro_rules! on_memory {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            conformance::$name(&Store::in_memory()).await;
        }
    )*};
}

on_memory!(
    create_sets_bookkeeping_and_refuses_duplicates,
    spec_is_kept_exactly_with_nulls,
    generation_follows_spec_only,
    stale_update_conflicts,
    finalizers_hold_deletion,
    fenced_writes_are_refused,
    watch_from_list_revision,
);
