//! Compiles corpus.spec into $OUT_DIR/corpus.rs and near_miss.spec (names close to
//! what specgen generates) into $OUT_DIR/near_miss.rs.

fn main() {
    for spec in ["corpus.spec", "near_miss.spec"] {
        if let Err(e) = specgen::compile(spec) {
            panic!("specgen failed on {spec}:\n{}", e.render());
        }
    }
}
