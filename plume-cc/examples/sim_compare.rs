//! Compares the reference schemes in simulation, Pantheon style: one flow per
//! scheme on each public Mahimahi trace (one pass each, 20 ms one-way delay,
//! droptail 250 packets), printing throughput, utilisation, p95 RTT and loss.
//!
//! Run: `AYA_BUILD_SKIP=1 cargo run --release -p plume-cc --example sim_compare`
use std::path::PathBuf;
use std::sync::Arc;

use plume_cc::congestion::ControllerKind;
use plume_cc::sim::{
    load_mahimahi, metrics::flow_metrics, FlowConfig, Network, NetworkConfig, QueueLimit,
};

fn main() -> anyhow::Result<()> {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/traces/mahimahi"
    ));
    println!(
        "{:<28} {:<6} {:>9} {:>6} {:>10} {:>7}",
        "trace", "scheme", "Mbit/s", "util", "p95 RTT ms", "loss %"
    );
    for name in [
        "ATT-LTE-driving.down",
        "TMobile-LTE-short.down",
        "TMobile-UMTS-driving.down",
        "Verizon-EVDO-driving.down",
    ] {
        let trace = Arc::new(load_mahimahi(&dir.join(name))?);
        for kind in [
            ControllerKind::Reno,
            ControllerKind::Cubic,
            ControllerKind::Bbr,
        ] {
            let config = NetworkConfig {
                one_way_delay_us: 20_000,
                queue_limit: QueueLimit::packets(250),
                flows: vec![FlowConfig::new(kind)],
                ..NetworkConfig::default()
            };
            let mut net = Network::new(config, Arc::clone(&trace), None, 1)?;
            net.run_until(trace.period_ms() * 1000);
            let m = flow_metrics(&net, 0).ok_or_else(|| anyhow::anyhow!("no flow"))?;
            println!(
                "{:<28} {:<6} {:>9.2} {:>6.3} {:>10.1} {:>7.2}",
                name,
                kind.name(),
                m.throughput_mbps,
                m.utilization,
                m.p95_rtt_us as f64 / 1000.0,
                m.loss_rate * 100.0
            );
        }
    }
    Ok(())
}
