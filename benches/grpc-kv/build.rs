//! Generates the tonic client and server for examples/kv/kv.proto without protoc:
//! protox parses the proto into a FileDescriptorSet, tonic-prost-build emits Rust.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "../../examples/kv/kv.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["../../examples/kv"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
