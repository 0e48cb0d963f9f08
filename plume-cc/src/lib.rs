//! plume-cc: a learned TCP congestion controller for the Linux datapath.
//!
//! One folder per concern; see the README's architecture section.
pub mod bench;
pub mod congestion;
pub mod daemon;
pub mod datapath;
pub mod emu;
pub mod eval;
pub mod plume;
pub mod policy;
pub mod rl;
pub mod sim;
pub mod trace;
