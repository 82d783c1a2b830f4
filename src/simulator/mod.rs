//! The simulated SailPoint tenant (placeholder until the simulator lands).

/// Arguments of `simulate` (placeholder).
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {}
