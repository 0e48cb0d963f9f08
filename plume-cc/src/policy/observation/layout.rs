//! The observation vector's layout: its lengths, the name of every
//! feature, and the versions this build builds. Its own file because a
//! policy file's metadata checks these names and versions without
//! building an observation.

/// Version of the observation's semantics. A policy file records the version
/// it was trained on, and the loader refuses another one: the feature names
/// may stay the same while their meaning changes.
///
/// - 1: the rate anchor is the lifetime maximum of per-interval rates.
/// - 2: the rate anchor is a windowed maximum (10 RTTs, at least 10 s) of
///   rates over at least one min RTT (see the module docs).
/// - 3: as 2, plus the operating point (`objective`, the reward's delay
///   weight) as a global feature.
/// - 4: as 3, with the per-interval features timed by the statistics' own
///   clock ([`FlowSample::stats_us`](super::FlowSample::stats_us), see
///   "Version 4" in the module docs): a history block per new copy of the
///   statistics, its rates over the copy-to-copy span, and
///   `copy_age_rtts` in place of `interval_rtts`.
///
/// This is the version `train` writes by default and
/// [`ObservationBuilder::new`](super::ObservationBuilder::new) builds;
/// [`SUPPORTED_OBSERVATION_VERSIONS`] lists every version this
/// build can build (a policy's own version picks the builder).
pub const OBSERVATION_VERSION: u32 = 3;

/// Observation versions this build can build, and so load policies of.
pub const SUPPORTED_OBSERVATION_VERSIONS: [u32; 2] = [3, 4];

/// Features describing one monitor interval (the gap between two samples).
pub const BLOCK_FEATURES: [&str; 9] = [
    // delivered bytes over the interval / the flow's max delivery rate, [0, 2]
    "delivery_rate_norm",
    // the kernel's last delivery-rate sample / max delivery rate, [0, 2]
    "rate_sample_norm",
    // srtt / min_rtt - 1 (relative queueing delay), [0, 10]
    "srtt_excess",
    // last_rtt / min_rtt - 1, [0, 10]
    "last_rtt_excess",
    // (srtt - previous srtt) / min_rtt, [-5, 5]
    "srtt_gradient",
    // retransmissions / (delivered + retransmissions) in the interval, [0, 1]
    "retrans_rate",
    // cwnd in bytes / (max rate * min_rtt), the window in BDPs, [0, 10]
    "cwnd_bdp",
    // packets_out / cwnd, [0, 4]
    "inflight_cwnd",
    // pacing cap / max delivery rate, [0, 10] (10 when no cap)
    "pacing_cap_norm",
];

/// Features describing the flow as a whole (scale), at the vector's start,
/// as versions 1 to 3 name them ([`global_features`] gives version 4's).
pub const GLOBAL_FEATURES: [&str; 4] = [
    // ln(1 + min_rtt in ms) / ln(1001), [0, 1]
    "min_rtt_log",
    // ln(1 + max delivery rate in Mbit/s) / ln(10001), [0, 1]
    "max_rate_log",
    // interval length / min_rtt, [0, 10]
    "interval_rtts",
    // the operating point: the delay weight on a log scale, [0, 1]
    // (policy::objective)
    "objective",
];

/// Version 4's global features: `copy_age_rtts` (how old the statistics'
/// copy is at the poll, / min RTT, [0, 10]) in `interval_rtts`' slot, so
/// the vector keeps its length and the network its shape.
pub const GLOBAL_FEATURES_V4: [&str; 4] =
    ["min_rtt_log", "max_rate_log", "copy_age_rtts", "objective"];

/// The global features' names of observation `version`.
pub fn global_features(version: u32) -> &'static [&'static str; 4] {
    if version >= 4 {
        &GLOBAL_FEATURES_V4
    } else {
        &GLOBAL_FEATURES
    }
}

/// Monitor intervals of history in one observation.
pub const HISTORY_LEN: usize = 8;
/// Features per interval.
pub const BLOCK_LEN: usize = BLOCK_FEATURES.len();
/// Length of an observation vector.
pub const OBSERVATION_LEN: usize = GLOBAL_FEATURES.len() + HISTORY_LEN * BLOCK_LEN;

/// One observation: the policy's input.
pub type Observation = [f32; OBSERVATION_LEN];

/// Name of feature `index` ("min_rtt_log", "srtt_excess[t-2]", ...) of
/// version [`OBSERVATION_VERSION`], or `None` past [`OBSERVATION_LEN`].
pub fn feature_name(index: usize) -> Option<String> {
    feature_name_of(OBSERVATION_VERSION, index)
}

/// Name of feature `index` of observation `version` (see [`feature_name`]).
pub fn feature_name_of(version: u32, index: usize) -> Option<String> {
    let global = global_features(version);
    if index < global.len() {
        return Some(global[index].to_string());
    }
    let i = index - GLOBAL_FEATURES.len();
    if i >= HISTORY_LEN * BLOCK_LEN {
        return None;
    }
    Some(format!(
        "{}[t-{}]",
        BLOCK_FEATURES[i % BLOCK_LEN],
        i / BLOCK_LEN
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cover_the_vector() {
        assert_eq!(OBSERVATION_LEN, 76);
        assert_eq!(feature_name(0).as_deref(), Some("min_rtt_log"));
        assert_eq!(feature_name(3).as_deref(), Some("objective"));
        assert_eq!(feature_name(4).as_deref(), Some("delivery_rate_norm[t-0]"));
        assert_eq!(
            feature_name(4 + BLOCK_LEN + 2).as_deref(),
            Some("srtt_excess[t-1]")
        );
        assert!(feature_name(OBSERVATION_LEN - 1).is_some());
        assert!(feature_name(OBSERVATION_LEN).is_none());
    }
}
