//! airlock-sandbox
