//! `corsair-agent`: see `--help`.
fn main() {}
