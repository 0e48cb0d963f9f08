//! The learned policy's side of plume-cc: what it observes and, later, how it
//! acts. Shared by the simulator (training) and the daemon (deployment) so a
//! policy transfers unchanged.
pub mod observation;
