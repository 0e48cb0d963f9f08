//! The command lines of the subcommands, on the binary's side of the
//! crate: clap definitions, progress bars and the mapping of the library's
//! typed errors to messages (issue 15, "the CLI at the edge"). The library
//! does the work and knows nothing of flags.
//!
//! Both binaries compile this folder: the front (`src/main.rs`, the
//! `plume-cc` users run), which parses every command line and runs the
//! commands that need no libtorch, and the engine
//! (`src/bin/plume-cc-engine.rs`), which runs all of them.

pub mod args;
pub mod bench;
pub mod command;
pub mod emu;
pub mod eval;
pub mod explain;
pub mod logging;
pub mod policy;
pub mod service;
pub mod status;
pub mod trace;
pub mod train;
