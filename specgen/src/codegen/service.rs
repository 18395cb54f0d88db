//! Generates the per-service parts: ids, the `Method` enum, the transport table, the
//! config `Tables`, the client/server pipelines (dispatch by method id through each
//! side's chain, requests in chain order, responses in reverse), the server trait with
//! `dispatch` (each method's handler writes its response through a typed `Responder`
//! into the response buffer), and the client stubs. Must not generate message or
//! element internals.

use proc_macro2::{Ident, Literal, TokenStream};
use quote::{format_ident, quote};

use crate::lower::field_ident_str;
use crate::lower::{state_ident, Dir};
use crate::model::Model;
use crate::proto::{camel, Method, Service};
use crate::spec::{Side, Transport};

use super::elements::{names as el_names, table_field};
use super::messages::{names as msg_names, ref_name};

/// Names an element cannot have: `ClientPipeline` / `ServerPipeline` have one field per
/// element, named after it, next to these fields, and their `new` binds each element to
/// a local of its name next to these parameters and locals.
pub const PIPELINE_RESERVED: &[&str] = &["counters", "refused", "rng", "shared", "tables", "init"];

/// Associated items of the `Method` enum; a variant of the same name would shadow one
/// (`Method::ALL` would name the variant).
pub const METHOD_MEMBERS: &[&str] = &["ALL", "from_id", "id", "name"];

/// The `Method` variant of `m`: `Get`.
pub fn variant_name(m: &Method) -> String {
    camel(&m.name)
}

/// The server trait's methods for `m`: the owned handler (`get`) and the one
/// `dispatch` calls (`get_into`).
pub fn trait_fn_names(m: &Method) -> [String; 2] {
    [field_ident_str(&m.snake), format!("{}_into", m.snake)]
}

/// The server trait's name (the proto service's name, as is).
pub fn trait_name(svc: &Service) -> String {
    svc.name.clone()
}

/// FNV-1a of the full service name folded to 16 bits: the service id.
pub fn service_id(full_name: &str) -> u16 {
    let mut h: u32 = 0x811c_9dc5;
    for b in full_name.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    ((h >> 16) ^ (h & 0xffff)) as u16
}

fn marker(text: String) -> TokenStream {
    quote!(__specgen_src!(#text);)
}

/// Ids, `Method`, `transport`, `Tables`.
pub fn header(model: &Model) -> TokenStream {
    let svc = &model.schema.service;
    let full = &svc.full_name;
    let sid = Literal::u16_unsuffixed(service_id(full));
    let mut variants = TokenStream::new();
    let mut from_id = TokenStream::new();
    let mut names = TokenStream::new();
    let mut all = Vec::new();
    let mut transport_arms = TokenStream::new();
    for (mi, m) in svc.methods.iter().enumerate() {
        let v = format_ident!("{}", variant_name(m));
        let id = Literal::u16_unsuffixed(m.id);
        let (input, output) = (
            &model.schema.messages[m.input].full_name,
            &model.schema.messages[m.output].full_name,
        );
        let doc = format!(" `rpc {}({input}) returns ({output})`", m.name);
        variants.extend(quote!(#[doc = #doc] #v = #id,));
        from_id.extend(quote!(#id => Some(Method::#v),));
        let sn = &m.snake;
        names.extend(quote!(Method::#v => #sn,));
        all.push(quote!(Method::#v));
        if let Some((class, line, text)) = model.transport.get(mi) {
            let c = match class {
                Transport::Unreliable => quote!(Unreliable),
                Transport::Reliable => quote!(Reliable),
                Transport::ReliableOrdered => quote!(ReliableOrdered),
            };
            let mk = marker(format!("{}:{line}: {text}", model.spec.src.name));
            transport_arms.extend(quote!(#id => { #mk Some(__rt::TransportClass::#c) }));
        }
    }
    let n = all.len();
    let mut tables = TokenStream::new();
    for el in &model.elements {
        for v in el.vars.iter().filter(|v| v.config) {
            let f = table_field(el, v);
            let t = match &v.ty {
                crate::types::Ty::Map(k, val) => {
                    let (k, val) = (k.rust_config(), val.rust_config());
                    quote!(Vec<(#k, #val)>)
                }
                crate::types::Ty::Vec(t) => {
                    let t = t.rust_config();
                    quote!(Vec<#t>)
                }
                t => {
                    let t = t.rust_config();
                    quote!(Option<#t>)
                }
            };
            let doc = format!(
                " `{}.{}: {}` (`config {}.{}` in the spec).",
                el.name,
                v.name,
                v.ty.name(),
                el.name,
                v.name
            );
            tables.extend(quote!(#[doc = #doc] pub #f: #t,));
        }
    }
    let mdoc = format!(
        " Methods of `{}`; the discriminant is the method id.",
        svc.name
    );
    let n = Literal::usize_unsuffixed(n);
    quote! {
        /// Fully-qualified proto name of the service.
        pub const SERVICE_NAME: &str = #full;
        /// Service id carried in the RPC header (FNV-1a of [`SERVICE_NAME`], folded to 16 bits).
        pub const SERVICE_ID: u16 = #sid;

        #[doc = #mdoc]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u16)]
        pub enum Method { #variants }

        impl Method {
            /// Every method, in id order.
            pub const ALL: [Method; #n] = [#(#all),*];

            /// The method with id `id`.
            pub fn from_id(id: u16) -> Option<Method> {
                match id { #from_id _ => None }
            }

            /// The method id.
            pub fn id(self) -> u16 { self as u16 }

            /// snake_case name, as in the spec.
            pub fn name(self) -> &'static str {
                match self { #names }
            }
        }

        /// The spec's transport table: delivery class of each method id.
        pub fn transport(method_id: u16) -> Option<__rt::TransportClass> {
            match method_id {
                #transport_arms
                _ => None,
            }
        }

        /// State loaded from runtime configuration (`config element.var` lines) instead of
        /// `init()`. Deserialize it from the engine's config (TOML/JSON) and pass it to the
        /// pipelines' `new` / `reload`.
        #[derive(Debug, Clone, Default, PartialEq, __rt::serde::Deserialize)]
        #[serde(crate = "__rt::serde", default, deny_unknown_fields)]
        pub struct Tables { #tables }
    }
}

/// `ClientShared`/`ClientPipeline` or the server ones.
pub fn pipeline(model: &Model, side: Side, handlers: &[(usize, Dir, usize)]) -> TokenStream {
    let (pname, sname) = match side {
        Side::Client => (
            format_ident!("ClientPipeline"),
            format_ident!("ClientShared"),
        ),
        Side::Server => (
            format_ident!("ServerPipeline"),
            format_ident!("ServerShared"),
        ),
    };
    let els = model.side_elements(side);
    let mut fields = TokenStream::new();
    let mut shared_fields = TokenStream::new();
    let mut builds = TokenStream::new();
    let mut field_names: Vec<Ident> = Vec::new();
    let mut el_strs = Vec::new();
    let mut reload = TokenStream::new();
    for &ei in &els {
        let el = &model.elements[ei];
        let (t, st) = el_names(el);
        let f = state_ident(&el.name);
        let doc = format!(" Element `{}` ({}).", el.name, el.ast.src.name);
        fields.extend(quote!(#[doc = #doc] pub #f: #t,));
        shared_fields.extend(quote!(#[doc = #doc] pub #f: #st,));
        builds.extend(quote!(let #f = #t::new(&shared.#f, tables, init, &mut rng);));
        if el.vars.iter().any(|v| v.config) {
            reload.extend(quote!(self.#f.load_config(tables);));
        }
        field_names.push(f);
        el_strs.push(el.name.clone());
    }
    let n = Literal::usize_unsuffixed(els.len());
    let side_s = side.as_str();
    let mut req_arms = TokenStream::new();
    let mut resp_arms = TokenStream::new();
    for (mi, m) in model.schema.service.methods.iter().enumerate() {
        let id = Literal::u16_unsuffixed(m.id);
        let chain = model.chain(side, mi);
        for dir in [Dir::Req, Dir::Resp] {
            let (msg_i, prefix) = if dir == Dir::Req {
                (m.input, "req")
            } else {
                (m.output, "resp")
            };
            let mut steps: Vec<&crate::model::ChainEntry> = chain
                .iter()
                .filter(|c| {
                    handlers
                        .iter()
                        .any(|(e, d, x)| *e == c.element && *d == dir && *x == mi)
                })
                .collect();
            if dir == Dir::Resp {
                steps.reverse();
            }
            let arm = if steps.is_empty() {
                quote!(#id => __rt::Verdict::Forward,)
            } else {
                let (_, _, mutv) = msg_names(&model.schema.messages[msg_i]);
                let mut calls = TokenStream::new();
                let mut seen_lines: Vec<usize> = Vec::new();
                for c in steps {
                    let el = &model.elements[c.element];
                    let f = state_ident(&el.name);
                    let idx = Literal::usize_unsuffixed(
                        els.iter().position(|e| *e == c.element).unwrap_or(0),
                    );
                    let h = format_ident!("{}_{}", prefix, m.snake);
                    if !seen_lines.contains(&c.line.0) {
                        seen_lines.push(c.line.0);
                        calls.extend(marker(format!(
                            "{}:{}: {}",
                            model.spec.src.name, c.line.0, c.line.1
                        )));
                    }
                    calls.extend(quote! {
                        let v = self.#f.#h(ctx, &mut self.rng, &mut msg);
                        self.counters[#idx].record(&v);
                        if !v.is_forward() { return v; }
                    });
                }
                quote!(#id => {
                    let Ok(mut msg) = #mutv::new_checked(payload) else {
                        self.refused.malformed += 1;
                        return __rt::Verdict::Drop;
                    };
                    #calls
                    __rt::Verdict::Forward
                })
            };
            if dir == Dir::Req {
                req_arms.extend(arm);
            } else {
                resp_arms.extend(arm);
            }
        }
    }
    let doc_p = format!(" The {side_s}-side chains of every method. One per core; not shared.");
    let doc_s = format!(" `@consistency(strong)` state of the {side_s}-side elements: create one per process and build every core's [`{pname}`] from it.");
    quote! {
        #[doc = #doc_s]
        #[derive(Debug, Clone, Default)]
        pub struct #sname { #shared_fields }

        #[doc = #doc_p]
        #[derive(Debug)]
        pub struct #pname {
            #fields
            /// Verdict counts per element, in [`Self::ELEMENTS`] order.
            pub counters: [__rt::ElementCounters; #n],
            /// RPCs refused before any element ran.
            pub refused: __rt::PipelineCounters,
            rng: __rt::FastRng,
        }

        impl #pname {
            /// Element names, in [`Self::counters`] order.
            pub const ELEMENTS: [&'static str; #n] = [#(#el_strs),*];

            /// Builds every element (state defaults, `init()`, config `tables`); the RNG of
            /// `randomf` is seeded with `init.seed`.
            pub fn new(shared: &#sname, tables: &Tables, init: &__rt::InitCtx) -> Self {
                let mut rng = __rt::FastRng::new(init.seed);
                #builds
                Self {
                    #(#field_names,)*
                    counters: [__rt::ElementCounters { forwarded: 0, dropped: 0, replied: 0 }; #n],
                    refused: __rt::PipelineCounters { malformed: 0, unknown_method: 0 },
                    rng,
                }
            }

            /// Replaces every config-loaded table (live rule reload).
            pub fn reload(&mut self, tables: &Tables) {
                #reload
            }

            /// Runs the request chain of `method_id` over `payload` (rewritten in place by
            /// `set(rpc, ..)`). A malformed payload or an unknown method is dropped and counted.
            pub fn on_request(&mut self, method_id: u16, ctx: &mut __rt::RpcCtx, payload: &mut [u8]) -> __rt::Verdict {
                match method_id {
                    #req_arms
                    _ => {
                        self.refused.unknown_method += 1;
                        __rt::Verdict::Drop
                    }
                }
            }

            /// Runs the response chain of `method_id` (elements in reverse order).
            pub fn on_response(&mut self, method_id: u16, ctx: &mut __rt::RpcCtx, payload: &mut [u8]) -> __rt::Verdict {
                match method_id {
                    #resp_arms
                    _ => {
                        self.refused.unknown_method += 1;
                        __rt::Verdict::Drop
                    }
                }
            }

            /// `(element, verdict counts)` for the engine's stats.
            pub fn stats(&self) -> impl Iterator<Item = (&'static str, __rt::ElementCounters)> + '_ {
                Self::ELEMENTS.into_iter().zip(self.counters.iter().copied())
            }
        }
    }
}

/// The server trait, `dispatch` and the client stubs.
pub fn stubs(model: &Model) -> TokenStream {
    let svc = &model.schema.service;
    let trait_name = format_ident!("{}", trait_name(svc));
    let mut trait_fns = TokenStream::new();
    let mut arms = TokenStream::new();
    let mut client = TokenStream::new();
    let mut responders = TokenStream::new();
    let mut responded: Vec<usize> = Vec::new();
    for m in &svc.methods {
        let [f, into] = trait_fn_names(m);
        let (f, into) = (format_ident!("{}", f), format_ident!("{}", into));
        let (_, req_view, _) = msg_names(&model.schema.messages[m.input]);
        let (req_owned, _, _) = msg_names(&model.schema.messages[m.input]);
        let (resp_owned, _, _) = msg_names(&model.schema.messages[m.output]);
        let id = Literal::u16_unsuffixed(m.id);
        let doc = format!(" `rpc {}`", m.name);
        let doc_into = format!(
            " `rpc {}`, answered into the response buffer: what [`dispatch`] calls. The default calls [`Self::{f}`] and encodes its owned response; override it to encode a [`{}`] of borrowed data (`out.send(..)`) without allocating. An application error is returned as `DispatchError::App`.",
            m.name,
            ref_name(&model.schema.messages[m.output])
        );
        trait_fns.extend(quote! {
            #[doc = #doc]
            fn #f(&mut self, req: #req_view<'_>) -> Result<#resp_owned, __rt::AppError>;
            #[doc = #doc_into]
            fn #into(&mut self, req: #req_view<'_>, out: Responder<'_, #resp_owned>) -> Result<ResponseLen, __rt::DispatchError> {
                let resp = self.#f(req).map_err(__rt::DispatchError::App)?;
                Ok(out.send_owned(&resp)?)
            }
        });
        arms.extend(quote! {
            #id => {
                let req = #req_view::new_checked(req)?;
                Ok(svc.#into(req, Responder::new(resp_buf))?.0)
            }
        });
        if !responded.contains(&m.output) {
            responded.push(m.output);
            let resp_ref = ref_name(&model.schema.messages[m.output]);
            let doc_r = format!(
                " Answers with a `{}`.",
                model.schema.messages[m.output].full_name
            );
            responders.extend(quote! {
                #[doc = #doc_r]
                impl Responder<'_, #resp_owned> {
                    /// Encodes a borrowed response (no allocation); `BufferTooSmall` when it does not fit.
                    pub fn send(self, resp: #resp_ref<'_>) -> Result<ResponseLen, __rt::EncodeError> {
                        resp.encode(self.buf).map(ResponseLen)
                    }

                    /// Encodes an owned response; `BufferTooSmall` when it does not fit.
                    pub fn send_owned(self, resp: &#resp_owned) -> Result<ResponseLen, __rt::EncodeError> {
                        resp.encode(self.buf).map(ResponseLen)
                    }
                }
            });
        }
        let enc = format_ident!("encode_{}", m.snake);
        let dec = format_ident!("decode_{}", m.snake);
        let denc = format!(" Encodes a `{}` request into `buf` (send it with method id {}); returns the bytes written.", m.name, m.id);
        let ddec = format!(" Decodes the payload of a `{}` response.", m.name);
        client.extend(quote! {
            #[doc = #denc]
            pub fn #enc(req: &super::#req_owned, buf: &mut [u8]) -> Result<usize, __rt::EncodeError> { req.encode(buf) }
            #[doc = #ddec]
            pub fn #dec(payload: &[u8]) -> Result<super::#resp_owned, __rt::DecodeError> { super::#resp_owned::from_bytes(payload) }
        });
    }
    let doc_t = format!(
        " Server side of `{}`: implement it and hand requests to [`dispatch`].",
        svc.full_name
    );
    quote! {
        /// Where a handler's `*_into` method writes its response: [`dispatch`]'s response
        /// buffer, typed by the response message so that only an encoded `M` fills it and
        /// the length handed back always lies within the buffer.
        #[derive(Debug)]
        pub struct Responder<'b, M> {
            buf: &'b mut [u8],
            msg: ::core::marker::PhantomData<fn() -> M>,
        }

        impl<'b, M> Responder<'b, M> {
            fn new(buf: &'b mut [u8]) -> Self {
                Responder { buf, msg: ::core::marker::PhantomData }
            }

            /// Bytes available for the response.
            pub fn capacity(&self) -> usize { self.buf.len() }
        }

        /// Length of a response a [`Responder`] encoded (only a `Responder` makes one).
        #[derive(Debug, PartialEq, Eq)]
        pub struct ResponseLen(usize);

        impl ResponseLen {
            /// The response's length in bytes.
            pub fn get(&self) -> usize { self.0 }
        }

        #responders

        #[doc = #doc_t]
        pub trait #trait_name {
            #trait_fns
        }

        /// Validates `req` for `method_id`, calls the handler's `*_into` method, which
        /// encodes its response into `resp_buf`; returns the response length.
        pub fn dispatch<S: #trait_name + ?Sized>(svc: &mut S, method_id: u16, req: &[u8], resp_buf: &mut [u8]) -> Result<usize, __rt::DispatchError> {
            match method_id {
                #arms
                _ => Err(__rt::DispatchError::UnknownMethod(method_id)),
            }
        }

        /// Client stubs: encode a request for a method, decode its response.
        pub mod client {
            use super::__rt;
            #client
        }
    }
}
