//! Rebuilds the crate when a migration is added or edited: `sqlx::migrate!`
//! embeds `../migrations` at compile time, and cargo does not otherwise
//! watch that directory, so a new migration could be left out of a build
//! (sqlx's documented remedy).

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
