//! Generates, per message: the zero-copy view (`XView`, validated once by
//! `new_checked`), the in-place mutable view (`XMut`, with `set_*` that rewrite when the
//! value fits), the owned struct with `encoded_len`/`encode`/`decode`/`as_ref`, and its
//! borrowed twin `XRef<'a>` (strings and bytes as slices, nested and repeated messages as
//! [`shared`]'s `RefMsg`/`RefSeq`) whose `encode` writes exactly the owned encoding
//! without allocating. Offsets come from `crate::layout`. Must not generate element or
//! pipeline code.

use proc_macro2::{Ident, Literal, TokenStream};
use quote::{format_ident, quote};

use crate::layout::{inline, MsgLayout};
use crate::lower::field_ident_str;
use crate::proto::{Field, Kind, Message, Schema};

/// Deepest nesting `decode` follows (hostile payloads cannot overflow the stack).
pub const MAX_DECODE_DEPTH: u32 = 32;

/// The module-level helpers of the borrowed twins, generated once per service: a nested
/// message (`RefMsg`) or a run of repeated items (`RefSeq`) given either as the owned
/// message's own values (what `as_ref` produces) or as borrowed twins / slices.
pub fn shared() -> TokenStream {
    quote! {
        /// A nested message field of a borrowed `...Ref` twin: the owned message (what
        /// `as_ref` produces) or a borrowed twin. Both encode to the same bytes.
        #[derive(Debug, PartialEq)]
        pub enum RefMsg<'a, O, B> {
            /// An owned message.
            Owned(&'a O),
            /// A borrowed twin.
            Borrowed(&'a B),
        }

        impl<O, B> Clone for RefMsg<'_, O, B> {
            fn clone(&self) -> Self { *self }
        }

        impl<O, B> Copy for RefMsg<'_, O, B> {}

        /// A repeated string, bytes or message field of a borrowed `...Ref` twin: the
        /// owned values (`String`, `Vec<u8>`, the owned message; what `as_ref` produces) or
        /// borrowed ones (`&str`, `&[u8]`, the borrowed twin). Both encode to the same bytes.
        #[derive(Debug, PartialEq)]
        pub enum RefSeq<'a, O, B> {
            /// Owned items.
            Owned(&'a [O]),
            /// Borrowed items.
            Borrowed(&'a [B]),
        }

        impl<O, B> Clone for RefSeq<'_, O, B> {
            fn clone(&self) -> Self { *self }
        }

        impl<O, B> Copy for RefSeq<'_, O, B> {}

        impl<O, B> Default for RefSeq<'_, O, B> {
            /// No items.
            fn default() -> Self { RefSeq::Borrowed(&[]) }
        }
    }
}

/// The module-level types generated per message `M`, as (suffix, what it is): `M`,
/// `MView`, `MMut`, `MRef`. A new per-message item is registered here, so that
/// `crate::names` checks it for collisions.
pub const MESSAGE_TYPES: [(&str, &str); 4] = [
    ("", "the owned struct"),
    ("View", "the view type"),
    ("Mut", "the mutable view type"),
    ("Ref", "the borrowed twin"),
];

/// Members of every `MView` impl (its fields' accessors come on top).
pub const VIEW_MEMBERS: &[&str] = &["FIXED_LEN", "new_checked", "as_bytes", "len"];

/// Members of every `MMut` impl (its fields' accessors and setters come on top).
pub const MUT_MEMBERS: &[&str] = &["new_checked", "as_view", "len"];

/// Name of a generated type of `m`: `suffix` is one of [`MESSAGE_TYPES`]' suffixes.
pub fn type_name(m: &Message, suffix: &str) -> String {
    format!("{}{suffix}", m.rust_name)
}

/// The borrowed twin's name: `GetResponseRef`.
pub fn ref_name(m: &Message) -> Ident {
    format_ident!("{}", type_name(m, "Ref"))
}

/// `GetRequestView` etc.
pub fn names(m: &Message) -> (Ident, Ident, Ident) {
    (
        format_ident!("{}", type_name(m, "")),
        format_ident!("{}", type_name(m, "View")),
        format_ident!("{}", type_name(m, "Mut")),
    )
}

/// Accessor of field `name` (views, `MMut`) and its name in `M` / `MRef`.
pub fn accessor_name(name: &str) -> String {
    field_ident_str(name)
}

/// `MView`'s raw-slot accessor of a field that is not inline.
pub fn raw_name(name: &str) -> String {
    format!("{name}_raw")
}

/// `MMut`'s setter of a field.
pub fn setter_name(name: &str) -> String {
    format!("set_{name}")
}

/// Whether `MView` has [`raw_name`] for `f` (every field that is not inline).
pub fn has_raw(f: &Field) -> bool {
    !inline(f.kind, f.repeated)
}

/// Whether `MView` has the [`accessor_name`] of `f` (every field that is not repeated;
/// a repeated one is read through its raw accessor).
pub fn has_view_accessor(f: &Field) -> bool {
    !f.repeated
}

/// Whether `MMut` has the [`accessor_name`] and the [`setter_name`] of `f` (inline
/// fields and single strings/bytes).
pub fn has_mut_accessor(f: &Field) -> bool {
    has_setter(f)
}

/// Whether `MMut` has [`setter_name`] for `f` (inline fields and single strings/bytes).
pub fn has_setter(f: &Field) -> bool {
    inline(f.kind, f.repeated) || (matches!(f.kind, Kind::Str | Kind::Bytes) && !f.repeated)
}

fn scalar_rust(kind: Kind) -> TokenStream {
    match kind {
        Kind::Bool => quote!(bool),
        Kind::I32 | Kind::Enum => quote!(i32),
        Kind::I64 => quote!(i64),
        Kind::U32 => quote!(u32),
        Kind::U64 => quote!(u64),
        Kind::F32 => quote!(f32),
        Kind::F64 => quote!(f64),
        Kind::Str => quote!(String),
        Kind::Bytes => quote!(Vec<u8>),
        Kind::Message(_) => quote!(()),
    }
}

fn reader(kind: Kind) -> Ident {
    format_ident!(
        "{}",
        match kind {
            Kind::Bool => "rd_bool",
            Kind::I32 | Kind::Enum => "rd_i32",
            Kind::I64 => "rd_i64",
            Kind::U32 => "rd_u32",
            Kind::U64 => "rd_u64",
            Kind::F32 => "rd_f32",
            _ => "rd_f64",
        }
    )
}

fn le_bytes(kind: Kind, v: TokenStream) -> TokenStream {
    match kind {
        Kind::Bool => quote!(&[u8::from(#v)]),
        _ => quote!(&(#v).to_le_bytes()),
    }
}

fn doc_of(
    schema: &Schema,
    f: &Field,
    offset: usize,
    size: usize,
    hot: bool,
    why: &[String],
) -> String {
    let place = if inline(f.kind, f.repeated) {
        "inline"
    } else {
        "(offset, len) slot"
    };
    let ty = format!(
        "{}{}",
        if f.repeated { "repeated " } else { "" },
        f.proto_type_display(schema)
    );
    let reason = if hot {
        why.join("; ")
    } else {
        "not read by any element".into()
    };
    format!(
        " `{}` ({ty}, field {}): offset {offset}, {size} bytes, {place}; {reason}.",
        f.name, f.number
    )
}

/// All code of one message.
pub fn message(schema: &Schema, mi: usize, layout: &MsgLayout) -> TokenStream {
    let Some(m) = schema.messages.get(mi) else {
        return TokenStream::new();
    };
    let (owned, view, mutv) = names(m);
    let fixed = layout.fixed_len;
    let full = &m.full_name;
    let mut checks = TokenStream::new();
    let mut view_acc = TokenStream::new();
    let mut mut_acc = TokenStream::new();
    let mut owned_fields = TokenStream::new();
    let mut len_terms = TokenStream::new();
    let mut enc = TokenStream::new();
    let mut dec = TokenStream::new();
    // The borrowed twin: its fields, encoded length, encoder and `as_ref` conversion.
    let mut ref_fields = TokenStream::new();
    let mut ref_len_terms = TokenStream::new();
    let mut ref_enc = TokenStream::new();
    let mut as_ref = TokenStream::new();
    // Whether the twin borrows anything (a string, bytes, nested or repeated field).
    let mut ref_borrows = false;
    for slot in &layout.slots {
        let Some(f) = m.fields.get(slot.field) else {
            continue;
        };
        let at = slot.offset;
        let fname = f.name.as_str();
        let id = format_ident!("{}", accessor_name(fname));
        let raw = format_ident!("{}", raw_name(fname));
        let setter = format_ident!("{}", setter_name(fname));
        let doc = doc_of(schema, f, at, slot.size, slot.hot, &slot.why);
        if inline(f.kind, f.repeated) {
            let t = scalar_rust(f.kind);
            let rd = reader(f.kind);
            view_acc.extend(quote! {
                #[doc = #doc]
                #[inline(always)]
                pub fn #id(&self) -> #t { __rt::wire::#rd(self.buf, #at) }
            });
            let bytes = le_bytes(f.kind, quote!(v));
            let sz = slot.size;
            let set_doc = format!(" Sets `{fname}` in place (always fits).");
            mut_acc.extend(quote! {
                #[doc = #doc]
                #[inline(always)]
                pub fn #id(&self) -> #t { __rt::wire::#rd(self.buf, #at) }
                #[doc = #set_doc]
                #[inline]
                pub fn #setter(&mut self, v: #t) -> Result<(), __rt::SetError> {
                    if __rt::wire::wr(self.buf, #at, #bytes) { Ok(()) } else { Err(__rt::SetError::DoesNotFit { field: #fname, have: 0, need: #sz }) }
                }
            });
            owned_fields.extend(quote!(#[doc = #doc] pub #id: #t,));
            let b = le_bytes(f.kind, quote!(self.#id));
            enc.extend(quote!(e.put(#at, #b)?;));
            dec.extend(quote!(#id: v.#id(),));
            ref_fields.extend(quote!(#[doc = #doc] pub #id: #t,));
            ref_enc.extend(quote!(e.put(#at, #b)?;));
            as_ref.extend(quote!(#id: self.#id,));
            continue;
        }
        checks.extend(quote!(__rt::wire::check_slot(buf, #fixed, #at, #fname)?;));
        ref_borrows = true;
        let raw_doc = format!(" Raw bytes of `{fname}`'s slot.");
        let set_doc = format!(
            " Rewrites `{fname}` in place; `DoesNotFit` when `v` is longer than its current bytes."
        );
        view_acc.extend(quote! {
            #[doc = #raw_doc]
            #[inline]
            pub fn #raw(&self) -> &'a [u8] { __rt::wire::slot_bytes(self.buf, #at) }
        });
        match (f.kind, f.repeated) {
            (Kind::Str | Kind::Bytes, false) => {
                view_acc.extend(quote! {
                    #[doc = #doc]
                    #[inline(always)]
                    pub fn #id(&self) -> &'a [u8] { __rt::wire::slot_bytes(self.buf, #at) }
                });
                mut_acc.extend(quote! {
                    #[doc = #doc]
                    #[inline(always)]
                    pub fn #id(&self) -> &[u8] { __rt::wire::slot_bytes(self.buf, #at) }
                    #[doc = #set_doc]
                    #[inline]
                    pub fn #setter(&mut self, v: &[u8]) -> Result<(), __rt::SetError> { __rt::wire::set_slot_bytes(self.buf, #at, v, #fname) }
                });
                let bytes = if f.kind == Kind::Str {
                    quote!(self.#id.as_bytes())
                } else {
                    quote!(&self.#id[..])
                };
                len_terms.extend(quote!(+ self.#id.len()));
                enc.extend(quote!({ let s = e.pos(); e.push(#bytes)?; e.close_slot(#at, s)?; }));
                ref_len_terms.extend(quote!(+ self.#id.len()));
                ref_enc
                    .extend(quote!({ let s = e.pos(); e.push(#bytes)?; e.close_slot(#at, s)?; }));
                if f.kind == Kind::Str {
                    ref_fields.extend(quote!(#[doc = #doc] pub #id: &'a str,));
                    as_ref.extend(quote!(#id: self.#id.as_str(),));
                } else {
                    ref_fields.extend(quote!(#[doc = #doc] pub #id: &'a [u8],));
                    as_ref.extend(quote!(#id: self.#id.as_slice(),));
                }
                if f.kind == Kind::Str {
                    owned_fields.extend(quote!(#[doc = #doc] pub #id: String,));
                    dec.extend(quote!(#id: match std::str::from_utf8(v.#id()) { Ok(s) => s.to_owned(), Err(_) => return Err(__rt::DecodeError::Utf8 { field: #fname }) },));
                } else {
                    owned_fields.extend(quote!(#[doc = #doc] pub #id: Vec<u8>,));
                    dec.extend(quote!(#id: v.#id().to_vec(),));
                }
            }
            (Kind::Message(n), false) => {
                let Some(nm) = schema.messages.get(n) else {
                    continue;
                };
                let (no, nv, _) = names(nm);
                let nr = ref_name(nm);
                ref_fields.extend(quote!(#[doc = #doc] pub #id: Option<RefMsg<'a, #no, #nr<'a>>>,));
                ref_len_terms.extend(quote!(+ match self.#id {
                    None => 0,
                    Some(RefMsg::Owned(m)) => m.encoded_len(),
                    Some(RefMsg::Borrowed(m)) => m.encoded_len(),
                }));
                ref_enc.extend(quote! {
                    if let Some(m) = self.#id {
                        let s = e.pos();
                        let n = match m { RefMsg::Owned(m) => m.encode(e.rest())?, RefMsg::Borrowed(m) => m.encode(e.rest())? };
                        e.advance(n);
                        e.close_message_slot(#at, s)?;
                    }
                });
                as_ref.extend(quote!(#id: self.#id.as_deref().map(RefMsg::Owned),));
                view_acc.extend(quote! {
                    #[doc = #doc]
                    pub fn #id(&self) -> Result<Option<#nv<'a>>, __rt::ViewError> {
                        if __rt::wire::slot_is_empty(self.buf, #at) { return Ok(None); }
                        #nv::new_checked(__rt::wire::slot_bytes(self.buf, #at)).map(Some)
                    }
                });
                owned_fields.extend(quote!(#[doc = #doc] pub #id: Option<Box<#no>>,));
                len_terms.extend(quote!(+ self.#id.as_ref().map_or(0, |m| m.encoded_len())));
                enc.extend(quote! {
                    if let Some(m) = &self.#id { let s = e.pos(); let n = m.encode(e.rest())?; e.advance(n); e.close_message_slot(#at, s)?; }
                });
                dec.extend(quote!(#id: match v.#id()? { Some(x) => Some(Box::new(#no::decode_at(x, depth + 1)?)), None => None },));
            }
            (Kind::Message(n), true) => {
                let Some(nm) = schema.messages.get(n) else {
                    continue;
                };
                let (no, nv, _) = names(nm);
                let nr = ref_name(nm);
                ref_fields.extend(quote!(#[doc = #doc] pub #id: RefSeq<'a, #no, #nr<'a>>,));
                ref_len_terms.extend(quote!(+ match self.#id {
                    RefSeq::Owned(xs) => xs.iter().map(|m| 4 + m.encoded_len()).sum::<usize>(),
                    RefSeq::Borrowed(xs) => xs.iter().map(|m| 4 + m.encoded_len()).sum::<usize>(),
                }));
                let item = quote!({
                    let at = e.pos();
                    e.push(&[0u8; 4])?;
                    let n = m.encode(e.rest())?;
                    e.advance(n);
                    e.patch_u32(at, n)?;
                });
                ref_enc.extend(quote! {{
                    let s = e.pos();
                    match self.#id {
                        RefSeq::Owned(xs) => for m in xs #item,
                        RefSeq::Borrowed(xs) => for m in xs #item,
                    }
                    e.close_slot(#at, s)?;
                }});
                as_ref.extend(quote!(#id: RefSeq::Owned(self.#id.as_slice()),));
                owned_fields.extend(quote!(#[doc = #doc] pub #id: Vec<#no>,));
                len_terms
                    .extend(quote!(+ self.#id.iter().map(|m| 4 + m.encoded_len()).sum::<usize>()));
                enc.extend(quote! {{
                    let s = e.pos();
                    for m in &self.#id { let at = e.pos(); e.push(&[0u8; 4])?; let n = m.encode(e.rest())?; e.advance(n); e.patch_u32(at, n)?; }
                    e.close_slot(#at, s)?;
                }});
                dec.extend(quote!(#id: {
                    let mut out = Vec::new();
                    for it in __rt::wire::Items::new(v.#raw(), #fname) { out.push(#no::decode_at(#nv::new_checked(it?)?, depth + 1)?); }
                    out
                },));
            }
            (Kind::Str | Kind::Bytes, true) => {
                let (t, conv, bytes) = if f.kind == Kind::Str {
                    (
                        quote!(String),
                        quote!(match std::str::from_utf8(it?) { Ok(s) => s.to_owned(), Err(_) => return Err(__rt::DecodeError::Utf8 { field: #fname }) }),
                        quote!(x.as_bytes()),
                    )
                } else {
                    (quote!(Vec<u8>), quote!(it?.to_vec()), quote!(&x[..]))
                };
                let bt = if f.kind == Kind::Str {
                    quote!(&'a str)
                } else {
                    quote!(&'a [u8])
                };
                ref_fields.extend(quote!(#[doc = #doc] pub #id: RefSeq<'a, #t, #bt>,));
                ref_len_terms.extend(quote!(+ match self.#id {
                    RefSeq::Owned(xs) => xs.iter().map(|x| 4 + x.len()).sum::<usize>(),
                    RefSeq::Borrowed(xs) => xs.iter().map(|x| 4 + x.len()).sum::<usize>(),
                }));
                ref_enc.extend(quote!({
                    let s = e.pos();
                    match self.#id {
                        RefSeq::Owned(xs) => for x in xs { e.push_item(#bytes)?; },
                        RefSeq::Borrowed(xs) => for x in xs { e.push_item(#bytes)?; },
                    }
                    e.close_slot(#at, s)?;
                }));
                as_ref.extend(quote!(#id: RefSeq::Owned(self.#id.as_slice()),));
                owned_fields.extend(quote!(#[doc = #doc] pub #id: Vec<#t>,));
                len_terms.extend(quote!(+ self.#id.iter().map(|x| 4 + x.len()).sum::<usize>()));
                enc.extend(quote!({ let s = e.pos(); for x in &self.#id { e.push_item(#bytes)?; } e.close_slot(#at, s)?; }));
                dec.extend(quote!(#id: {
                    let mut out = Vec::new();
                    for it in __rt::wire::Items::new(v.#raw(), #fname) { out.push(#conv); }
                    out
                },));
            }
            (k, _) => {
                // Repeated fixed-size scalars: a packed little-endian array.
                let t = scalar_rust(k);
                let rd = reader(k);
                let size = k.fixed_size();
                let b = le_bytes(k, quote!(*x));
                owned_fields.extend(quote!(#[doc = #doc] pub #id: Vec<#t>,));
                len_terms.extend(quote!(+ self.#id.len() * #size));
                enc.extend(quote!({ let s = e.pos(); for x in &self.#id { e.push(#b)?; } e.close_slot(#at, s)?; }));
                ref_fields.extend(quote!(#[doc = #doc] pub #id: &'a [#t],));
                ref_len_terms.extend(quote!(+ self.#id.len() * #size));
                ref_enc.extend(quote!({ let s = e.pos(); for x in self.#id { e.push(#b)?; } e.close_slot(#at, s)?; }));
                as_ref.extend(quote!(#id: self.#id.as_slice(),));
                dec.extend(quote!(#id: __rt::wire::packed(v.#raw(), #size, #fname)?.map(|c| __rt::wire::#rd(c, 0)).collect(),));
            }
        }
    }
    let doc_view = format!(" Zero-copy view of a `{full}` payload: `new_checked` validates the {fixed}-byte fixed section and every slot once; accessors are then loads at constant offsets.");
    let doc_mut =
        format!(" In-place mutable view of a `{full}` payload (what element handlers get).");
    let doc_owned = format!(
        " Owned `{full}`. Wire layout: fixed section of {fixed} bytes, then the variable tail."
    );
    let ref_ty = ref_name(m);
    let doc_ref = format!(" Borrowed twin of [`{owned}`] (`{full}`): the same fields with strings and bytes borrowed, for encoding a response straight into a buffer without allocating. `encode` writes exactly what `{owned}::encode` writes.");
    let fixed_lit = Literal::usize_unsuffixed(fixed);
    let depth_max = MAX_DECODE_DEPTH;
    let (as_ref_fn, ref_items) = if ref_borrows {
        (
            quote! {
                /// The borrowed twin of this message (no copy).
                pub fn as_ref(&self) -> #ref_ty<'_> { #ref_ty { #as_ref } }
            },
            quote! {
                #[doc = #doc_ref]
                #[derive(Debug, Clone, Copy, Default, PartialEq)]
                pub struct #ref_ty<'a> { #ref_fields }

                impl #ref_ty<'_> {
                    /// Bytes `encode` writes.
                    pub fn encoded_len(&self) -> usize { #fixed_lit #ref_len_terms }

                    /// Encodes into `buf` (the bytes of the owned message's `encode`); returns the
                    /// bytes written.
                    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, __rt::EncodeError> {
                        let need = self.encoded_len();
                        if buf.len() < need {
                            return Err(__rt::EncodeError::BufferTooSmall { need, have: buf.len() });
                        }
                        let mut e = __rt::wire::Enc::new(buf, #fixed_lit)?;
                        #ref_enc
                        Ok(e.finish())
                    }
                }

                impl<'a> From<&'a #owned> for #ref_ty<'a> {
                    fn from(m: &'a #owned) -> Self { m.as_ref() }
                }
            },
        )
    } else {
        // Only fixed-size scalars: the owned message never allocates and is its own twin.
        let doc_alias = format!(" Borrowed twin of [`{owned}`] (`{full}`): the message has only fixed-size scalars, so it is the owned message itself (it never allocates).");
        (
            quote! {
                /// The borrowed twin of this message (a copy of its scalars).
                pub fn as_ref(&self) -> #ref_ty<'_> { self.clone() }
            },
            quote! {
                #[doc = #doc_alias]
                pub type #ref_ty<'a> = #owned;

                impl From<&#owned> for #owned {
                    fn from(m: &#owned) -> Self { m.clone() }
                }
            },
        )
    };
    quote! {
        #[doc = #doc_view]
        #[derive(Debug, Clone, Copy)]
        pub struct #view<'a> { buf: &'a [u8] }

        impl<'a> #view<'a> {
            /// Bytes of the fixed front section.
            pub const FIXED_LEN: usize = #fixed_lit;

            /// Validates `buf` (fixed section present, every slot in bounds).
            #[inline]
            pub fn new_checked(buf: &'a [u8]) -> Result<Self, __rt::ViewError> {
                if buf.len() < Self::FIXED_LEN {
                    return Err(__rt::ViewError::TooShort { need: Self::FIXED_LEN, have: buf.len() });
                }
                #checks
                Ok(Self { buf })
            }

            /// The whole payload.
            pub fn as_bytes(&self) -> &'a [u8] { self.buf }

            /// Payload length.
            pub fn len(&self) -> usize { self.buf.len() }

            #view_acc
        }

        #[doc = #doc_mut]
        #[derive(Debug)]
        pub struct #mutv<'a> { buf: &'a mut [u8] }

        impl<'a> #mutv<'a> {
            /// Validates `buf` like the view does.
            #[inline]
            pub fn new_checked(buf: &'a mut [u8]) -> Result<Self, __rt::ViewError> {
                #view::new_checked(buf)?;
                Ok(Self { buf })
            }

            /// A read-only view of the same bytes.
            pub fn as_view(&self) -> #view<'_> { #view { buf: self.buf } }

            /// Payload length.
            pub fn len(&self) -> usize { self.buf.len() }

            #mut_acc
        }

        #[doc = #doc_owned]
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct #owned { #owned_fields }

        impl #owned {
            /// Bytes `encode` writes.
            pub fn encoded_len(&self) -> usize { #fixed_lit #len_terms }

            /// Encodes into `buf`; returns the bytes written.
            pub fn encode(&self, buf: &mut [u8]) -> Result<usize, __rt::EncodeError> {
                let need = self.encoded_len();
                if buf.len() < need {
                    return Err(__rt::EncodeError::BufferTooSmall { need, have: buf.len() });
                }
                let mut e = __rt::wire::Enc::new(buf, #fixed_lit)?;
                #enc
                Ok(e.finish())
            }

            /// Decodes a validated view (copies every field).
            pub fn decode(v: #view<'_>) -> Result<Self, __rt::DecodeError> { Self::decode_at(v, 0) }

            fn decode_at(v: #view<'_>, depth: u32) -> Result<Self, __rt::DecodeError> {
                if depth > #depth_max {
                    return Err(__rt::DecodeError::View(__rt::ViewError::Malformed { field: #full }));
                }
                Ok(Self { #dec })
            }

            /// Validates and decodes `bytes`.
            pub fn from_bytes(bytes: &[u8]) -> Result<Self, __rt::DecodeError> { Self::decode(#view::new_checked(bytes)?) }

            #as_ref_fn
        }

        #ref_items
    }
}
