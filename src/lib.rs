//! kargo: a Kubernetes-style operator for Docker Swarm.
//!
//! Manifests (the four kinds of [`api`]) are read and checked by [`manifest`], kept in etcd
//! by [`store`], turned into Swarm objects by [`swarm`] and reconciled by [`controller`].
//! The command line in [`cli`] calls the same functions the controller does; [`policy`]
//! says what a Service may do to the nodes.
#![deny(missing_docs)]

// Lets code shared with the integration tests name this crate `kargo` in unit tests too.
extern crate self as kargo;

pub mod api;
pub mod build;
pub mod cli;
pub mod controller;
pub mod import;
pub mod manifest;
pub mod plan;
pub mod policy;
pub mod registry;
pub mod secrets;
pub mod store;
pub mod swarm;
