//! Bringing what users already have into kargo's model: a Kargo workspace's `.env`
//! ([`envfile`]) and compose / Swarm stack files ([`compose`]). Apart from `manifest`,
//! which reads and checks kargo's own manifests.

pub mod compose;
pub mod envfile;
