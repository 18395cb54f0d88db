//! Compiles corpus.spec into $OUT_DIR/corpus.rs.

fn main() {
    if let Err(e) = specgen::compile("corpus.spec") {
        panic!("specgen failed:\n{}", e.render());
    }
}
