//! Generates the corsair.v1 client and server code. Uses the vendored `protoc`
//! unless `PROTOC` is set, so a fresh clone builds without a system protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("PROTOC").is_none() {
        let protoc = protoc_bin_vendored::protoc_bin_path()?;
        // SAFETY-free: build scripts are single-threaded at this point.
        unsafe { std::env::set_var("PROTOC", protoc) };
    }
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure()
        // Per-stream buffers sized for PolicySync's small messages (see src/codec.rs).
        .codec_path("crate::codec::CompactCodec")
        .compile_protos(
            &[
                "proto/corsair/v1/policy.proto",
                "proto/corsair/v1/telemetry.proto",
            ],
            &["proto"],
        )?;
    Ok(())
}
