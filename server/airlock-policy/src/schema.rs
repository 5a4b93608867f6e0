//! Schema types (filled in below).
