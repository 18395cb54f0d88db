//! Types of the element language and their Rust representations in generated code.
//! Must not emit statements; only names of types and default values.

use proc_macro2::TokenStream;
use quote::quote;

use crate::appnet::ast::TypeExpr;

/// A type of the element language.
#[derive(Debug, Clone, PartialEq)]
pub enum Ty {
    /// `int` (i64)
    Int,
    /// `uint` (u64)
    Uint,
    /// `float` (f64)
    Float,
    /// `bool`
    Bool,
    /// `string` (bytes; `&[u8]` or `Vec<u8>` in Rust)
    Str,
    /// `Instant` (u64 ns of the engine clock)
    Instant,
    /// `Map<K, V>`
    Map(Box<Ty>, Box<Ty>),
    /// `Vec<T>`
    Vec(Box<Ty>),
    /// `<A, B>`
    Pair(Box<Ty>, Box<Ty>),
    /// Result of a lookup: `Some(x)` / `None`.
    Opt(Box<Ty>),
    /// An integer literal not yet given a type (defaults to `int`).
    IntLit,
    /// No value (calls used as statements).
    Unit,
}

impl Ty {
    /// From a written type.
    pub fn from_ast(t: &TypeExpr) -> Ty {
        match t {
            TypeExpr::Int => Ty::Int,
            TypeExpr::Uint => Ty::Uint,
            TypeExpr::Float => Ty::Float,
            TypeExpr::Str => Ty::Str,
            TypeExpr::Bool => Ty::Bool,
            TypeExpr::Instant => Ty::Instant,
            TypeExpr::Map(k, v) => Ty::Map(Box::new(Ty::from_ast(k)), Box::new(Ty::from_ast(v))),
            TypeExpr::Vec(t) => Ty::Vec(Box::new(Ty::from_ast(t))),
            TypeExpr::Pair(a, b) => Ty::Pair(Box::new(Ty::from_ast(a)), Box::new(Ty::from_ast(b))),
        }
    }

    /// As written in the element language.
    pub fn name(&self) -> String {
        match self {
            Ty::Int | Ty::IntLit => "int".into(),
            Ty::Uint => "uint".into(),
            Ty::Float => "float".into(),
            Ty::Bool => "bool".into(),
            Ty::Str => "string".into(),
            Ty::Instant => "Instant".into(),
            Ty::Map(k, v) => format!("Map<{}, {}>", k.name(), v.name()),
            Ty::Vec(t) => format!("Vec<{}>", t.name()),
            Ty::Pair(a, b) => format!("<{}, {}>", a.name(), b.name()),
            Ty::Opt(t) => format!("Option<{}>", t.name()),
            Ty::Unit => "nothing".into(),
        }
    }

    /// Plain-old-data: copied, never borrowed.
    pub fn is_copy(&self) -> bool {
        match self {
            Ty::Int | Ty::Uint | Ty::Float | Ty::Bool | Ty::Instant | Ty::IntLit | Ty::Unit => true,
            Ty::Pair(a, b) => a.is_copy() && b.is_copy(),
            Ty::Opt(t) => t.is_copy(),
            Ty::Str | Ty::Map(..) | Ty::Vec(..) => false,
        }
    }

    /// A scalar (not a collection, pair or option).
    pub fn is_scalar(&self) -> bool {
        matches!(
            self,
            Ty::Int | Ty::Uint | Ty::Float | Ty::Bool | Ty::Str | Ty::Instant | Ty::IntLit
        )
    }

    /// Numeric (arithmetic allowed).
    pub fn is_numeric(&self) -> bool {
        matches!(self, Ty::Int | Ty::Uint | Ty::Float | Ty::IntLit)
    }

    /// Whether `self` (an expression's type) may be used where `want` is expected.
    pub fn fits(&self, want: &Ty) -> bool {
        match (self, want) {
            (Ty::IntLit, Ty::Int | Ty::Uint | Ty::Float | Ty::Instant | Ty::IntLit) => true,
            (Ty::Int, Ty::IntLit) => true,
            (Ty::Pair(a, b), Ty::Pair(c, d)) => a.fits(c) && b.fits(d),
            (Ty::Opt(a), Ty::Opt(b)) => a.fits(b),
            _ => self == want,
        }
    }

    /// The literal type resolved (`IntLit` -> `Int`).
    pub fn settle(self) -> Ty {
        match self {
            Ty::IntLit => Ty::Int,
            other => other,
        }
    }

    /// Rust type of a value of this type in a state field (strings owned).
    pub fn rust_state(&self, rt: &TokenStream) -> TokenStream {
        match self {
            Ty::Int | Ty::IntLit => quote!(i64),
            Ty::Uint | Ty::Instant => quote!(u64),
            Ty::Float => quote!(f64),
            Ty::Bool => quote!(bool),
            Ty::Str => quote!(Vec<u8>),
            Ty::Map(k, v) => {
                let k = k.rust_state(rt);
                let v = v.rust_state(rt);
                quote!(#rt::StateMap<#k, #v>)
            }
            Ty::Vec(t) => {
                let t = t.rust_state(rt);
                quote!(#rt::StateVec<#t>)
            }
            Ty::Pair(a, b) => {
                let a = a.rust_state(rt);
                let b = b.rust_state(rt);
                quote!((#a, #b))
            }
            Ty::Opt(t) => {
                let t = t.rust_state(rt);
                quote!(Option<#t>)
            }
            Ty::Unit => quote!(()),
        }
    }

    /// Rust type of a local holding this type; `owned` picks `Vec<u8>` over `&[u8]`.
    pub fn rust_local(&self, owned: bool, rt: &TokenStream) -> TokenStream {
        match self {
            Ty::Str if !owned => quote!(&[u8]),
            Ty::Opt(t) if **t == Ty::Str && !owned => quote!(Option<&[u8]>),
            other => other.rust_state(rt),
        }
    }

    /// Rust type used in the config `Tables` for this type.
    pub fn rust_config(&self) -> TokenStream {
        match self {
            Ty::Str => quote!(String),
            Ty::Pair(a, b) => {
                let a = a.rust_config();
                let b = b.rust_config();
                quote!((#a, #b))
            }
            other => other.rust_state(&quote!(unused)),
        }
    }
}
