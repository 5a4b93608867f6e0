//! End-to-end harness
