//! plume-cc: a learned TCP congestion controller for the Linux datapath.
//!
//! One folder per concern; see the README's architecture section.
pub mod daemon;
pub mod datapath;
