//! Feature by feature: what a learned policy sees in the simulator against
//! what it sees on the real kernel, on the same windows.
//!
//! `plume-cc eval sim-to-real` compares outcomes and the rate anchor, cwnd
//! and clamp; this probe goes one step further back, to the policy's
//! inputs and its raw actions, to find which inputs differ where the
//! learned clamps do (docs/TRAINING.md, "The fixed rule against the learned
//! default, same windows": 0.31x and 0.56x the simulator's clamp on two
//! windows, while the fixed rule's agree).
//!
//! It reads a finished sim-to-real folder (`windows/wN.trace` and
//! `wN/daemon-record.jsonl`), reruns the simulator's side of each window
//! with the same settings, rebuilds the kernel's observations from the
//! daemon's recording with the daemon's builder, runs the policy on both,
//! and prints, per window and feature of the newest interval, the mean and
//! the 10th/50th/90th percentiles on each side, and the same for the two
//! raw action outputs.
//!
//! Run: `cargo run --release -p plume-cc --example obs_compare -- POLICY S2R_DIR [--no-delayed-ack] [--interval] [--sim-only] [--sim-rto-plain]`
//! (POLICY a policy folder or `default`; the folder's run must have used
//! the same policy, 20 ms one-way delay, 200 packets, 30 s windows).
//! `--sim-only` reads only the folder's windows (a `--sim-only`
//! sim-to-real run has no recording) and prints the simulator's column:
//! what the policy's features look like in the simulator, e.g. whether
//! they collapse under once-per-round-trip statistics.
use std::path::{Path, PathBuf};

use plume_cc::congestion::{ClampModel, ControllerKind};
use plume_cc::daemon::record;
use plume_cc::eval::sim_to_real::{observations_from_recording, run_sim_observed, SimToRealConfig};
use plume_cc::policy::observation::{feature_name_of, Observation, GLOBAL_FEATURES};
use plume_cc::policy::{builder_for, LoadedPolicy};
use plume_cc::sim::{DatapathModel, MinRttSample, TimeoutModel};
use plume_cc::trace::MahimahiTrace;

/// Mean and 10th/50th/90th percentiles (type 7) of `v`.
fn summary(v: &mut [f64]) -> [f64; 4] {
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    v.sort_by(f64::total_cmp);
    [
        mean,
        plume_cc::stats::quantile(v, 0.1),
        plume_cc::stats::quantile(v, 0.5),
        plume_cc::stats::quantile(v, 0.9),
    ]
}

fn column(obs: &[Observation], i: usize) -> Vec<f64> {
    obs.iter().map(|o| f64::from(o[i])).collect()
}

/// `v`'s [`summary`], or "-" for no values (the real side of `--sim-only`).
fn cell(v: &mut [f64]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    let s = summary(v);
    format!("{:7.3} ({:6.3} {:6.3} {:6.3})", s[0], s[1], s[2], s[3])
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    anyhow::ensure!(
        args.len() >= 2,
        "usage: obs_compare POLICY S2R_DIR [--no-delayed-ack]"
    );
    let policy = LoadedPolicy::load_or_default(Path::new(&args[0]))?;
    let dir = PathBuf::from(&args[1]);
    let delayed_ack = !args.iter().any(|a| a == "--no-delayed-ack");
    let sim_only = args.iter().any(|a| a == "--sim-only");
    let objective = policy.metadata().default_objective;
    let version = policy.metadata().observation.version;
    let base =
        ControllerKind::from_name(&policy.metadata().base_cc).unwrap_or(ControllerKind::Cubic);
    let cfg = SimToRealConfig {
        traces: Vec::new(),
        windows: 0,
        window_ms: 30_000,
        delay_ms: 20,
        queue_packets: 200,
        policy: PathBuf::from(&args[0]),
        tolerance: 0.15,
        out: dir.clone(),
        iperf3: PathBuf::from("iperf3"),
        plume_exe: PathBuf::from("plume-cc"),
        sim_only: true,
        delayed_ack,
        clamp_model: ClampModel::Kernel,
        datapath_model: if args.iter().any(|a| a == "--interval") {
            DatapathModel::Interval
        } else {
            DatapathModel::Callbacks
        },
        // As `eval sim-to-real`: spurious timeouts undone and the min RTT
        // from the newest segment, unless `--sim-rto-plain` (training's).
        timeout_model: if args.iter().any(|a| a == "--sim-rto-plain") {
            TimeoutModel::Plain
        } else {
            TimeoutModel::Undo
        },
        min_rtt_sample: if args.iter().any(|a| a == "--sim-rto-plain") {
            MinRttSample::Echoed
        } else {
            MinRttSample::Newest
        },
        cc_model: if args.iter().any(|a| a == "--sim-rto-plain") {
            plume_cc::congestion::CcModel::Classic
        } else {
            plume_cc::congestion::CcModel::Linux
        },
        objective: None,
        repeats: 1,
    };
    // Block 0 (the newest interval) and the global features.
    let block0: Vec<usize> = (0..GLOBAL_FEATURES.len() + 9).collect();
    for w in 0.. {
        let trace_path = dir.join("windows").join(format!("w{w}.trace"));
        let rec_path = dir.join(format!("w{w}")).join("daemon-record.jsonl");
        if !trace_path.is_file() || (!sim_only && !rec_path.is_file()) {
            break;
        }
        let trace = MahimahiTrace::read(&trace_path)?;
        let mut sim_obs: Vec<Observation> = Vec::new();
        let mut sim_act: Vec<[f32; 2]> = Vec::new();
        run_sim_observed(Some(&policy), base, &trace, &cfg, 0x51 + w, &mut |o, a| {
            sim_obs.push(*o);
            if let Some(a) = a {
                sim_act.push(a);
            }
        })?;
        let real_obs = if sim_only {
            Vec::new()
        } else {
            observations_from_recording(&record::read(&rec_path)?, builder_for(&policy, objective))
        };
        anyhow::ensure!(
            sim_only || !real_obs.is_empty(),
            "no flow in {}",
            rec_path.display()
        );
        let flat: Vec<f32> = real_obs.iter().flat_map(|o| o.iter().copied()).collect();
        let real_act = policy.act_batch(&flat, real_obs.len())?;
        // The second half of each window, as the sim-to-real means.
        let sim_obs = &sim_obs[sim_obs.len() / 2..];
        let sim_act = &sim_act[sim_act.len() / 2..];
        let real_obs = &real_obs[real_obs.len() / 2..];
        let real_act = &real_act[real_act.len() / 2..];
        println!(
            "\n== w{w} {} ({} sim / {} real intervals, second half): mean (p10 p50 p90)",
            trace.origin().display(),
            sim_obs.len(),
            real_obs.len()
        );
        println!("{:<22} {:>30} {:>30}", "feature", "sim", "real");
        for &i in &block0 {
            let name = feature_name_of(version, i).unwrap_or_default();
            println!(
                "{:<22} {:>30} {:>30}",
                name,
                cell(&mut column(sim_obs, i)),
                cell(&mut column(real_obs, i))
            );
        }
        for (h, name) in ["action_cwnd", "action_pacing"].iter().enumerate() {
            let mut s: Vec<f64> = sim_act.iter().map(|a| f64::from(a[h])).collect();
            let mut r: Vec<f64> = real_act.iter().map(|a| f64::from(a[h])).collect();
            println!("{:<22} {:>30} {:>30}", name, cell(&mut s), cell(&mut r));
        }
    }
    Ok(())
}
