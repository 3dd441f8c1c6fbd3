//! The harness: stacks, faults, alerts, probes and the drill runner.
#![forbid(unsafe_code)]
