//! airlock-proposals
