//! The CORS decision engine: pure, synchronous, no I/O.
//!
//! - [`spec`]: [`PolicySpec`], the policy as configured.

pub mod spec;

pub use spec::{Mode, PolicySpec};
