//! With the `grpc` feature: compiles `proto/fjord/v1/gateway.proto` into the
//! gRPC client's code. protox (a protobuf compiler in Rust) parses it, so
//! building needs no `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    #[cfg(feature = "grpc")]
    {
        let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../proto");
        let file = root.join("fjord/v1/gateway.proto");
        println!("cargo:rerun-if-changed={}", file.display());
        let descriptors = protox::compile([&file], [&root])?;
        tonic_prost_build::configure()
            .build_server(false)
            .bytes(".")
            .compile_fds(descriptors)?;
    }
    Ok(())
}
