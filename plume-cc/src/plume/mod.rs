//! The Plume pipeline: describe trace windows by features, find the features
//! that matter, cluster the windows, and sample training episodes so rare
//! clusters are not starved (see `../shared/reference/plume.md`).
//!
//! Everything here is deterministic for a given seed and reads no clock; the
//! only libtorch use is the dynamic sampler's small return regressor.
pub mod analysis;
pub mod cluster;
pub mod features;
pub mod gmm;
pub mod plot;
pub mod regressor;
pub mod sampler;
pub mod select;

pub use analysis::{analyze, analyze_with_paths, Analysis, AnalysisParams};
pub use cluster::ClusteringModel;
pub use sampler::{
    build_sampler, DynamicParams, DynamicSampler, SamplerInputs, SamplerKind, StaticSampler,
    TraceSampler, UniformSampler,
};
