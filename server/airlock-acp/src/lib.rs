//! airlock-acp
