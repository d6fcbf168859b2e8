//! Bringing what users already have into kargo's model: a Kargo workspace's `.env`
//! ([`envfile`]), compose / Swarm stack files ([`compose`]) and whole Kargo workspaces
//! ([`kargo`]). Apart from `manifest`,
//! which reads and checks kargo's own manifests.

pub mod compose;
pub mod envfile;
pub mod kargo;
