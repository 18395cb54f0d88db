//! The AppNet element language: syntax tree and parser. Typing and lowering to Rust
//! live in `crate::check` / `crate::codegen`; this module must not know about protos.

pub mod ast;
pub mod parser;

pub use parser::parse_element;

/// Fuzz entry point: parses arbitrary bytes as an element file. Never panics; returns
/// whether the input parsed.
pub fn fuzz_parse(data: &[u8]) -> bool {
    let text = String::from_utf8_lossy(data);
    let src = crate::diag::Source::new("fuzz.appnet", "fuzz.appnet", text.as_ref());
    match parse_element("fuzz", &src) {
        Ok(_) => true,
        Err(d) => {
            // Rendering must not panic either.
            let _ = d.short();
            let _ = d.render();
            false
        }
    }
}
