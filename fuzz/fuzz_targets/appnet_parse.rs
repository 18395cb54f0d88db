//! Fuzzes the AppNet element parser (lexer, indentation, parser, diagnostics
//! rendering): any bytes must parse or yield a diagnostic, never panic or overflow.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = specgen::appnet::fuzz_parse(data);
});
