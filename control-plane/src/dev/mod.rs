//! `corsair-control-plane dev`: everything a newcomer needs, in one process.
//!
//! - [`demo`]: the demo upstream and the demo page.

pub mod demo;
