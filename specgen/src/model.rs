//! The resolved model of a spec: schema, elements with typed state, per-method chains
//! and transports, config-loaded state, and (after lowering) field accesses. Built by
//! `check`, read by `layout` and `codegen`. Plain data.

use std::collections::BTreeMap;

use crate::appnet::ast::Element;
use crate::diag::Span;
use crate::proto::Schema;
use crate::spec::{Side, Spec, Transport};
use crate::types::Ty;

/// Default bound of a `Map` state variable (override with `@capacity(N)`).
pub const DEFAULT_MAP_CAPACITY: usize = 65_536;
/// Default bound of a `Vec` state variable (override with `@capacity(N)`).
pub const DEFAULT_VEC_CAPACITY: usize = 4_096;

/// A typed state variable.
#[derive(Debug, Clone)]
pub struct StateVar {
    /// Name.
    pub name: String,
    /// Declaration span in the element file.
    pub span: Span,
    /// Type.
    pub ty: Ty,
    /// `@consistency(strong)`.
    pub strong: bool,
    /// Bound for Map/Vec.
    pub capacity: usize,
    /// Loaded from the runtime config (`config element.var`).
    pub config: bool,
}

/// An element used by the spec.
#[derive(Debug, Clone)]
pub struct ElementInfo {
    /// Name in the spec.
    pub name: String,
    /// Parsed file.
    pub ast: Element,
    /// Typed state.
    pub vars: Vec<StateVar>,
}

impl ElementInfo {
    /// The state variable `name`.
    pub fn var(&self, name: &str) -> Option<&StateVar> {
        self.vars.iter().find(|v| v.name == name)
    }

    /// Whether any state is strong.
    pub fn has_strong(&self) -> bool {
        self.vars.iter().any(|v| v.strong)
    }
}

/// One element in one chain, with the spec line that put it there.
#[derive(Debug, Clone)]
pub struct ChainEntry {
    /// Index into [`Model::elements`].
    pub element: usize,
    /// The spec line (1-based) and its text, for generated comments.
    pub line: (usize, String),
}

/// A field that some element reads or writes, and why.
#[derive(Debug, Clone)]
pub struct FieldAccess {
    /// Message index.
    pub msg: usize,
    /// Field index in the message.
    pub field: usize,
    /// `set(rpc, ..)` rather than `get(rpc, ..)`.
    pub write: bool,
    /// e.g. "firewall.req on Get (server)".
    pub by: String,
}

/// Everything resolved.
#[derive(Debug, Clone)]
pub struct Model {
    /// The spec.
    pub spec: Spec,
    /// The proto.
    pub schema: Schema,
    /// Module name of the generated code.
    pub module: String,
    /// Elements in first-use order.
    pub elements: Vec<ElementInfo>,
    /// Transport per method index (with the spec line).
    pub transport: Vec<(Transport, usize, String)>,
    /// Chains: (side, method index) -> elements in order.
    pub chains: BTreeMap<(Side, usize), Vec<ChainEntry>>,
    /// Field accesses found while lowering.
    pub accesses: Vec<FieldAccess>,
}

impl Model {
    /// Elements used on `side`, in first-use order (indices into `elements`).
    pub fn side_elements(&self, side: Side) -> Vec<usize> {
        let mut out = Vec::new();
        for ((s, _), chain) in &self.chains {
            if *s != side {
                continue;
            }
            for e in chain {
                if !out.contains(&e.element) {
                    out.push(e.element);
                }
            }
        }
        out.sort_unstable();
        out
    }

    /// The chain of `method` on `side`.
    pub fn chain(&self, side: Side, method: usize) -> &[ChainEntry] {
        self.chains.get(&(side, method)).map_or(&[], Vec::as_slice)
    }
}
