//! The simulated SailPoint tenant (placeholder until the simulator lands).
