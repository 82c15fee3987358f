//! nfs-subdir-csi: a CSI driver that gives every volume its own directory on an existing NFS
//! export (or any shared, pre-mounted filesystem).
//!
//! Layout: `volume` (ids, parameters, safe paths) and `share` (directory work on a share) are the
//! domain, free of gRPC and Kubernetes types; `controller` and `node` are the domain services;
//! `csi` adapts them to the CSI gRPC API; `server` wires everything up.

// No unsafe code, except the quota syscalls in quota::sys (the one module that allows it).
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod blocking;
pub mod cli;
pub mod controller;
pub mod copy;
pub mod csi;
pub mod endpoint;
pub mod error;
pub mod escape;
pub mod guard;
pub mod http;
pub mod metrics;
pub mod mount;
pub mod node;
pub mod pool;
pub mod provisioner;
pub mod quota;
pub mod registration;
pub mod server;
pub mod setup;
pub mod share;
pub mod snapshot;
pub mod token;
pub mod volume;

pub use error::{Error, Result};
