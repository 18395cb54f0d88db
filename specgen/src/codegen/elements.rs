//! Generates one struct per element: its state (per core, or `Shared` for
//! `@consistency(strong)`), `new` (defaults, `init()`, config tables), `load_config`,
//! and one `req_<method>` / `resp_<method>` fn per method some chain runs it on.
//! Handler bodies come from `crate::lower`. Must not generate pipeline dispatch.

use proc_macro2::{Ident, Literal, TokenStream};
use quote::{format_ident, quote};

use crate::check::Lowered;
use crate::lower::{state_ident, Dir};
use crate::model::{ElementInfo, Model, StateVar};
use crate::proto::camel;
use crate::types::Ty;

/// Fields of every element's `...Shared` struct besides its strong state.
pub const SHARED_FIELDS: &[&str] = &["init_done"];

/// The module-level types of element `name`: `Firewall`, `FirewallShared`.
pub fn type_names(name: &str) -> (String, String) {
    let c = camel(name);
    let shared = format!("{c}Shared");
    (c, shared)
}

/// `Firewall`, `FirewallShared`.
pub fn names(el: &ElementInfo) -> (Ident, Ident) {
    let (c, s) = type_names(&el.name);
    (format_ident!("{}", c), format_ident!("{}", s))
}

/// Field name of a config table in `Tables`.
pub fn table_field_name(element: &str, var: &str) -> String {
    format!("{element}_{var}")
}

/// Field name of a config table in `Tables`.
pub fn table_field(el: &ElementInfo, var: &StateVar) -> Ident {
    format_ident!("{}", table_field_name(&el.name, &var.name))
}

fn default_value(v: &StateVar, rt: &TokenStream) -> TokenStream {
    let cap = Literal::usize_unsuffixed(v.capacity);
    match &v.ty {
        Ty::Int | Ty::IntLit => quote!(0i64),
        Ty::Uint | Ty::Instant => quote!(0u64),
        Ty::Float => quote!(0.0f64),
        Ty::Bool => quote!(false),
        Ty::Str => quote!(Vec::new()),
        Ty::Map(..) => quote!(#rt::StateMap::new(#cap)),
        Ty::Vec(..) => quote!(#rt::StateVec::new(#cap)),
        _ => quote!(Default::default()),
    }
}

fn cfg_conv(t: &Ty, v: TokenStream) -> TokenStream {
    if *t == Ty::Str {
        quote!(#v.as_bytes().to_vec())
    } else {
        quote!(*#v)
    }
}

fn load_config(el: &ElementInfo, rt: &TokenStream) -> TokenStream {
    let mut out = TokenStream::new();
    for v in el.vars.iter().filter(|v| v.config) {
        let id = state_ident(&v.name);
        let tf = table_field(el, v);
        let target = if v.strong {
            quote!(__g)
        } else {
            quote!(self.#id)
        };
        let lock = if v.strong {
            quote!(let mut __g = #rt::write_lock(&self.#id);)
        } else {
            quote!()
        };
        let body = match &v.ty {
            Ty::Map(k, val) => {
                let kc = cfg_conv(k, quote!(k));
                let vc = cfg_conv(val, quote!(v));
                quote!(#target.clear(); for (k, v) in &tables.#tf { #target.insert(#kc, #vc); })
            }
            Ty::Vec(t) => {
                let c = cfg_conv(t, quote!(v));
                quote!(#target.clear(); for v in &tables.#tf { #target.push(#c); })
            }
            t => {
                let c = cfg_conv(t, quote!(v));
                if v.strong {
                    quote!(if let Some(v) = &tables.#tf { *__g = #c; })
                } else {
                    quote!(if let Some(v) = &tables.#tf { self.#id = #c; })
                }
            }
        };
        out.extend(quote!({ #lock #body }));
    }
    out
}

/// The struct, shared-state struct and impl of one element.
pub fn element(model: &Model, low: &Lowered) -> TokenStream {
    let rt = quote!(__rt);
    let Some(el) = model.elements.get(low.element) else {
        return TokenStream::new();
    };
    let (name, shared) = names(el);
    let mut fields = TokenStream::new();
    let mut shared_fields = TokenStream::new();
    let mut shared_init = TokenStream::new();
    let mut inits = TokenStream::new();
    for v in &el.vars {
        let id = state_ident(&v.name);
        let t = v.ty.rust_state(&rt);
        let (line, _) = el.ast.src.line_col(v.span.start);
        let doc = format!(
            " `{}: {}` ({}:{line}){}{}",
            v.name,
            v.ty.name(),
            el.ast.src.name,
            if v.strong {
                ", @consistency(strong): shared by every core"
            } else {
                ", per core"
            },
            if v.config {
                ", loaded from `Tables`"
            } else {
                ""
            }
        );
        let dv = default_value(v, &rt);
        if v.strong {
            fields.extend(quote!(#[doc = #doc] pub #id: #rt::Shared<#t>,));
            shared_fields.extend(quote!(#[doc = #doc] pub #id: #rt::Shared<#t>,));
            shared_init.extend(quote!(#id: ::std::sync::Arc::new(::std::sync::RwLock::new(#dv)),));
            inits.extend(quote!(#id: ::std::sync::Arc::clone(&shared.#id),));
        } else {
            fields.extend(quote!(#[doc = #doc] pub #id: #t,));
            inits.extend(quote!(#id: #dv,));
        }
    }
    let mut handlers = TokenStream::new();
    for (dir, mi, body) in &low.handlers {
        let Some(m) = model.schema.service.methods.get(*mi) else {
            continue;
        };
        let (fname, msg_i, what) = match dir {
            Dir::Req => (format_ident!("req_{}", m.snake), m.input, "req"),
            _ => (format_ident!("resp_{}", m.snake), m.output, "resp"),
        };
        let Some(msg) = model.schema.messages.get(msg_i) else {
            continue;
        };
        let (_, _, mutv) = super::messages::names(msg);
        let line = match dir {
            Dir::Req => el.ast.req.as_ref().map(|h| h.span),
            _ => el.ast.resp.as_ref().map(|h| h.span),
        }
        .map(|s| el.ast.src.line_col(s.start).0)
        .unwrap_or(0);
        let doc = format!(
            " `{what}(rpc)` ({}:{line}) for `{}`.",
            el.ast.src.name, m.name
        );
        handlers.extend(quote! {
            #[doc = #doc]
            #[inline]
            pub fn #fname(&mut self, ctx: &mut #rt::RpcCtx, rng: &mut #rt::FastRng, msg: &mut #mutv<'_>) -> #rt::Verdict {
                #body
            }
        });
    }
    let init_body = &low.init;
    let load = load_config(el, &rt);
    let doc = format!(" Element `{}` ({}).", el.name, el.ast.src.name);
    let doc_shared = format!(
        " `@consistency(strong)` state of element `{}`, shared by the pipelines built from it.",
        el.name
    );
    quote! {
        #[doc = #doc_shared]
        #[derive(Debug, Clone)]
        pub struct #shared {
            #shared_fields
            init_done: ::std::sync::Arc<::std::sync::atomic::AtomicBool>,
        }

        impl Default for #shared {
            fn default() -> Self {
                Self { #shared_init init_done: Default::default() }
            }
        }

        #[doc = #doc]
        #[derive(Debug)]
        pub struct #name { #fields }

        impl #name {
            /// Builds the element: state defaults, then `init()` (its statements on strong
            /// state run only for the first element built from `shared`), then the
            /// config-loaded state from `tables`.
            pub fn new(shared: &#shared, tables: &Tables, init: &#rt::InitCtx, rng: &mut #rt::FastRng) -> Self {
                let mut this = Self { #inits };
                let first = !shared.init_done.swap(true, ::std::sync::atomic::Ordering::AcqRel);
                this.run_init(first, init, rng);
                this.load_config(tables);
                this
            }

            fn run_init(&mut self, __first: bool, init: &#rt::InitCtx, rng: &mut #rt::FastRng) {
                #init_body
            }

            /// Replaces the config-loaded state with `tables`' contents.
            pub fn load_config(&mut self, tables: &Tables) {
                #load
            }

            #handlers
        }
    }
}
