//! Simulated Kubernetes API server (placeholder until the simulator lands).
