//! The four kinds of kargo objects, their metadata and status conventions.
//!
//! This module does no I/O: it holds the types every other part agrees on, and the
//! schemas are generated from them.

pub mod annotations;
pub mod conditions;
mod configuration;
mod environment;
mod image;
mod meta;
mod object;
pub mod quantity;
pub mod schema;
mod service;
mod stack;

pub use configuration::*;
pub use environment::*;
pub use image::*;
pub use meta::*;
pub use object::*;
pub use service::*;
pub use stack::*;

/// The apiVersion every kargo object carries.
pub const API_VERSION: &str = "kargo.dev/v1alpha1";

/// The finalizer the controller puts on Stacks and Services so their Swarm objects go first.
pub const SWARM_FINALIZER: &str = "kargo.dev/swarm";
