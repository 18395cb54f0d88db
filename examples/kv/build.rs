//! Compiles kv.spec (proto + elements + chains) into $OUT_DIR/kv.rs.

fn main() {
    if let Err(e) = specgen::compile("kv.spec") {
        panic!("specgen failed:\n{}", e.render());
    }
}
