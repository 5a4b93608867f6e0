//! airlock-telemetry
