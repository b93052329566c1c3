//! Dependency-free SVG plots: latency-throughput curves and link heat maps.
