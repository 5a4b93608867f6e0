//! airlock-policy
