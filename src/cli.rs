//! Command-line entry points.
