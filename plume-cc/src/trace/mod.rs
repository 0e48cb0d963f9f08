//! Link-capacity traces: the one delivery schedule ([`Schedule`]: Mahimahi
//! opportunities, repetition, counting) that the simulator, the emulator and
//! the benchmark all use, the Mahimahi file format, synthetic generators,
//! episode windows and the corpus a trainer samples from.
//!
//! This module is I/O and bookkeeping only; which window to train on is the
//! business of [`crate::plume`].
pub mod corpus;
pub mod mahimahi;
pub mod scenario_corpus;
pub mod schedule;
pub mod synth;
pub mod window;

pub use corpus::{trace_files, Corpus, CorpusTrace};
pub use mahimahi::{MahimahiTrace, TraceError};
pub use schedule::{Schedule, ScheduleError, OPPORTUNITY_BYTES};
pub use synth::{SynthKind, SynthSpec};
pub use window::{TraceWindow, WindowSpec};
