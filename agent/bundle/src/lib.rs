//! Signed policy bundles (being written).
