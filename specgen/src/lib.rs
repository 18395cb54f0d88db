//! specgen: the flatrpc compiler. It reads a service spec (`*.spec`), the proto3
//! schema it names (parsed with protox) and the AppNet elements (`*.appnet`) of its
//! chains, and generates one Rust module per service:
//!
//! * `SERVICE_ID`, `Method` (ids), `transport(method_id)` (the spec's transport table);
//! * per message: `XView<'a>` (zero-copy, `new_checked` once, constant-offset
//!   accessors), `XMut<'a>` (in-place `set_*` that fail with `SetError::DoesNotFit`
//!   when a value is longer than the field's current bytes), owned `X` with
//!   `encoded_len`/`encode`/`decode`/`from_bytes`; the layout puts every field an
//!   element reads or writes first (see `specgen layout`);
//! * per element: a struct holding its state, `new` (runs `init()`), `load_config`,
//!   `req_<method>`/`resp_<method>` returning a `Verdict`;
//! * `Tables` (serde) for `config element.var` state; `ClientShared`/`ServerShared`
//!   (strong state) and `ClientPipeline`/`ServerPipeline` with `new`, `reload`,
//!   `on_request`, `on_response`, `stats`;
//! * a server trait (`trait KvService`) with `dispatch`, and `client::encode_*` /
//!   `client::decode_*` stubs.
//!
//! The generated code uses only `std` and `dataplane::anf` (path configurable with
//! [`Builder::runtime_path`]). When `set(rpc, 'f', v)` does not fit, the element answers
//! `Verdict::Reply(ErrorReply::DOES_NOT_FIT)`; an element that ends without `send`
//! drops the RPC.
//!
//! Build-script use, in the manner of prost-build:
//!
//! ```no_run
//! // build.rs
//! specgen::compile("kv.spec").unwrap_or_else(|e| panic!("{}", e.render()));
//! // lib.rs: include!(concat!(env!("OUT_DIR"), "/kv.rs"));  // defines `pub mod kv`
//! ```

pub mod appnet;
pub mod check;
pub mod codegen;
pub mod diag;
pub mod layout;
pub mod lexer;
pub mod lower;
pub mod model;
pub mod names;
pub mod proto;
pub mod spec;
pub mod types;

use std::path::{Path, PathBuf};

pub use diag::{Diag, Error, Result};

/// Default path of the runtime API in generated code.
pub const DEFAULT_RUNTIME: &str = "::dataplane::anf";

/// Everything produced from one spec.
#[derive(Debug, Clone)]
pub struct Output {
    /// Generated module name (the file is `<module>.rs`).
    pub module: String,
    /// Formatted Rust source.
    pub code: String,
    /// The `specgen layout` table.
    pub layout: String,
    /// Files read (for `cargo:rerun-if-changed`).
    pub inputs: Vec<PathBuf>,
}

/// Configures generation.
#[derive(Debug, Clone)]
pub struct Builder {
    runtime: String,
    out_dir: Option<PathBuf>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            runtime: DEFAULT_RUNTIME.to_string(),
            out_dir: None,
        }
    }
}

impl Builder {
    /// A builder with defaults (runtime `::dataplane::anf`, output to `OUT_DIR`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Path generated code uses for the runtime API (e.g. `crate::anf`).
    pub fn runtime_path(mut self, path: impl Into<String>) -> Self {
        self.runtime = path.into();
        self
    }

    /// Where `compile` writes (default: `$OUT_DIR`).
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out_dir = Some(dir.into());
        self
    }

    /// Checks and generates without writing.
    pub fn generate(&self, spec: impl AsRef<Path>) -> Result<Output> {
        let (model, lowered) = check::check(spec.as_ref())?;
        let layouts = layout::compute(&model.schema, &model.accesses);
        let code = codegen::generate(&model, &lowered, &layouts, &self.runtime)?;
        let table = layout::table(&model, &layouts);
        let mut inputs = vec![
            spec.as_ref().to_path_buf(),
            model.spec.dir.join(&model.spec.proto.name),
        ];
        inputs.extend(model.elements.iter().map(|e| e.ast.src.path.clone()));
        Ok(Output {
            module: model.module.clone(),
            code,
            layout: table,
            inputs,
        })
    }

    /// Generates and writes `<out_dir>/<module>.rs`; prints `cargo:rerun-if-changed`
    /// lines when running under a build script. Returns the written path.
    pub fn compile(&self, spec: impl AsRef<Path>) -> Result<PathBuf> {
        let out = self.generate(spec.as_ref())?;
        let dir = match &self.out_dir {
            Some(d) => d.clone(),
            None => std::env::var_os("OUT_DIR")
                .map(PathBuf::from)
                .ok_or_else(|| {
                    Error::Usage(
                        "OUT_DIR is not set: call compile from build.rs or set Builder::out_dir"
                            .into(),
                    )
                })?,
        };
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let path = dir.join(format!("{}.rs", out.module));
        std::fs::write(&path, &out.code).map_err(|e| Error::io(&path, e))?;
        if std::env::var_os("CARGO_MANIFEST_DIR").is_some() && std::env::var_os("OUT_DIR").is_some()
        {
            for i in &out.inputs {
                println!("cargo:rerun-if-changed={}", i.display());
            }
        }
        Ok(path)
    }
}

/// Build-script entry point: compiles `spec` into `$OUT_DIR/<module>.rs`.
pub fn compile(spec: impl AsRef<Path>) -> Result<PathBuf> {
    Builder::new().compile(spec)
}

/// Checks a spec (proto, elements, chains, types) without generating code.
pub fn check(spec: impl AsRef<Path>) -> Result<()> {
    check::check(spec.as_ref()).map(|_| ())
}

/// The `specgen layout` table of a spec.
pub fn layout_table(spec: impl AsRef<Path>) -> Result<String> {
    let (model, _) = check::check(spec.as_ref())?;
    let layouts = layout::compute(&model.schema, &model.accesses);
    Ok(layout::table(&model, &layouts))
}
