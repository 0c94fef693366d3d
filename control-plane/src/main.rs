//! `corsair-control-plane`: see `--help`.
fn main() {}
