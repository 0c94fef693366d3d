//! `layer_instructions.rs` with mimalloc as the process's global allocator,
//! for both layers: the allocator the agent binary ships with
//! (`agent/src/main.rs`). A side table only: the headline counts use the
//! system allocator (glibc), as an embedding gateway may.
//!
//! `agent/benches/layer-vs-tower-http.sh --instructions --allocator mimalloc`

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "layer_instructions.rs"]
mod counted;

fn main() {
    counted::main();
}
