//! The command lines of the subcommands, on the binary's side of the
//! crate: clap definitions, progress bars and the mapping of the library's
//! typed errors to messages (issue 15, "the CLI at the edge"). The library
//! does the work and knows nothing of flags.

pub mod args;
pub mod bench;
pub mod emu;
pub mod eval;
pub mod explain;
pub mod service;
pub mod trace;
pub mod train;
