//! Type-checks one element handler and lowers it to Rust statements.
//!
//! Borrowing discipline of the generated code (so that anything accepted compiles):
//! a handler first collects the *places* it writes (`rpc` via `set(rpc, ..)`, the
//! metadata, each state variable). A string read from a place the handler also writes
//! is copied (`Vec<u8>`); every other string is a borrowed `&[u8]` straight out of the
//! packet or the state, so the common handlers (firewall, session tracker) copy nothing.
//! Strong (shared) state is read and written under a lock taken for one operation, and
//! its strings are always copied. Locals are hoisted to the top of the handler (AppNet
//! scoping is per handler, like Python's).
//!
//! Must not decide message layouts (it names accessors, not offsets).

use std::collections::{HashMap, HashSet};

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};

use crate::appnet::ast::*;
use crate::diag::{Diag, Span};
use crate::model::{ElementInfo, FieldAccess, StateVar};
use crate::proto::{Kind, Schema};
use crate::types::Ty;

/// Which handler is being lowered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// `init()`
    Init,
    /// `req(rpc)`
    Req,
    /// `resp(rpc)`
    Resp,
}

/// A place a handler can write.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Place {
    Rpc,
    Meta,
    State(String),
}

#[derive(Debug, Clone)]
struct Val {
    ty: Ty,
    ts: TokenStream,
    /// For strings / optional strings: `Vec<u8>` (true) or `&[u8]` (false).
    owned: bool,
}

impl Val {
    fn copy(ty: Ty, ts: TokenStream) -> Val {
        Val {
            ty,
            ts,
            owned: false,
        }
    }
}

#[derive(Debug, Clone)]
struct Binding {
    name: String,
    ident: proc_macro2::Ident,
    ty: Ty,
    owned: bool,
}

/// Lowers handlers of one element for one message (or none for `init`).
pub struct Lowerer<'a> {
    el: &'a ElementInfo,
    schema: &'a Schema,
    rt: &'a TokenStream,
    dir: Dir,
    msg: Option<usize>,
    /// "firewall.req on Get (server)" for field-access reasons.
    by: String,
    rpc_name: Option<String>,
    writes: HashSet<Place>,
    owned_locals: HashSet<String>,
    assigned_owned: HashSet<String>,
    multi_assigned: HashSet<String>,
    locals: Vec<(String, Ty)>,
    scopes: Vec<Vec<Binding>>,
    tmp: usize,
    loop_vars: Vec<String>,
    /// Inside `match get(m, k): Some(..)` lowered over `get_mut`: (map, key, slot).
    slot: Option<(String, Expr, proc_macro2::Ident)>,
    /// Field accesses found.
    pub accesses: Vec<FieldAccess>,
}

const BUILTINS: &str = "get, set, delete, size, byte_size, current_time, time_diff, min, max, randomf, rpc_id, get_rpc_header, set_rpc_header, get_metadata, set_metadata, send, err, drop";

/// RPC header fields: (name, readable expression on `ctx.header`, writable).
const HEADER_FIELDS: [(&str, bool); 6] = [
    ("rpc_id", false),
    ("session_id", false),
    ("service_id", false),
    ("method_id", false),
    ("priority", true),
    ("deadline_ns", true),
];

impl<'a> Lowerer<'a> {
    /// A lowerer for `dir` of `el` over message `msg` (`None` for init).
    pub fn new(
        el: &'a ElementInfo,
        schema: &'a Schema,
        rt: &'a TokenStream,
        dir: Dir,
        msg: Option<usize>,
        by: String,
    ) -> Self {
        let rpc_name = match dir {
            Dir::Init => None,
            Dir::Req => el.ast.req.as_ref().and_then(|h| h.param.clone()),
            Dir::Resp => el.ast.resp.as_ref().and_then(|h| h.param.clone()),
        };
        Lowerer {
            el,
            schema,
            rt,
            dir,
            msg,
            by,
            rpc_name,
            writes: HashSet::new(),
            owned_locals: HashSet::new(),
            assigned_owned: HashSet::new(),
            multi_assigned: HashSet::new(),
            locals: Vec::new(),
            scopes: Vec::new(),
            tmp: 0,
            loop_vars: Vec::new(),
            slot: None,
            accesses: Vec::new(),
        }
    }

    fn err(&self, span: Span, msg: impl Into<String>, hint: impl Into<String>) -> Diag {
        Diag::new(&self.el.ast.src, span, msg, hint)
    }

    fn src_line(&self, span: Span) -> String {
        let (line, _) = self.el.ast.src.line_col(span.start);
        let text = self
            .el
            .ast
            .src
            .text
            .get(span.start..span.end)
            .unwrap_or("")
            .trim();
        format!("{}:{}: {}", self.el.ast.src.name, line, text)
    }

    /// Lowers a handler body to statements. For `req`/`resp` the result ends with the
    /// fall-through verdict (`Drop`: an element must `send` to forward). For `init`,
    /// top-level statements writing strong state are guarded by `__first`.
    pub fn lower_handler(&mut self, body: &[Stmt]) -> Result<TokenStream, Diag> {
        self.writes.clear();
        collect_writes(body, self, &mut HashSet::new());
        let mut counts = HashMap::new();
        count_assigns(body, 1, &mut counts);
        self.multi_assigned = counts
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|(k, _)| k)
            .collect();
        let mut stmts = TokenStream::new();
        for _ in 0..8 {
            self.locals.clear();
            self.accesses.clear();
            self.assigned_owned.clear();
            self.tmp = 0;
            stmts = TokenStream::new();
            for s in body {
                let code = self.stmt(s)?;
                if self.dir == Dir::Init && self.writes_strong(s) {
                    stmts.extend(quote!(if __first { #code }));
                } else {
                    stmts.extend(code);
                }
            }
            if self.assigned_owned.is_subset(&self.owned_locals) {
                break;
            }
            let more: Vec<String> = self.assigned_owned.iter().cloned().collect();
            self.owned_locals.extend(more);
        }
        let mut out = TokenStream::new();
        for (name, ty) in &self.locals {
            let id = local_ident(name);
            let t = ty.rust_local(self.owned_locals.contains(name), self.rt);
            out.extend(quote!(let mut #id: #t = Default::default();));
        }
        out.extend(stmts);
        let ends_with_send = matches!(body.last().map(|s| &s.kind), Some(StmtKind::Expr(Expr { kind: ExprKind::Call { name, .. }, .. })) if name == "send" || name == "drop");
        if self.dir != Dir::Init {
            let rt = self.rt;
            // An element that ends without `send` drops the RPC.
            if !ends_with_send {
                out.extend(quote!(#rt::Verdict::Drop));
            }
        }
        Ok(out)
    }

    fn writes_strong(&self, s: &Stmt) -> bool {
        let mut w = HashSet::new();
        collect_writes(std::slice::from_ref(s), self, &mut w);
        w.iter()
            .any(|p| matches!(p, Place::State(n) if self.el.var(n).is_some_and(|v| v.strong)))
    }

    fn fresh(&mut self, base: &str) -> proc_macro2::Ident {
        self.tmp += 1;
        format_ident!("__{}{}", base, self.tmp)
    }

    // ---------------------------------------------------------------- statements

    fn block(&mut self, body: &[Stmt]) -> Result<TokenStream, Diag> {
        let mut out = TokenStream::new();
        for s in body {
            out.extend(self.stmt(s)?);
        }
        Ok(out)
    }

    fn stmt(&mut self, s: &Stmt) -> Result<TokenStream, Diag> {
        let comment = self.src_line(s.span);
        let code = match &s.kind {
            StmtKind::Pass => TokenStream::new(),
            StmtKind::Expr(e) => self.call_stmt(e)?,
            StmtKind::Assign {
                target,
                target_span,
                value,
            } => self.assign(target, *target_span, value)?,
            StmtKind::AssignPair { targets, value } => {
                let v = self.expr(value, None)?;
                let Ty::Pair(a, b) = v.ty.clone() else {
                    return Err(self.err(
                        value.span,
                        format!(
                            "type mismatch: expected a pair <A, B>, found {}",
                            v.ty.name()
                        ),
                        "`(a, b) = e` takes apart a pair value",
                    ));
                };
                let (ta, tb) = (self.fresh("a"), self.fresh("b"));
                let ts = v.ts;
                let wa = self.store(&targets[0].0, targets[0].1, Val::copy(*a, quote!(#ta)))?;
                let wb = self.store(&targets[1].0, targets[1].1, Val::copy(*b, quote!(#tb)))?;
                quote!({ let (#ta, #tb) = #ts; #wa #wb })
            }
            StmtKind::Match { scrutinee, arms } => self.match_stmt(scrutinee, arms)?,
            StmtKind::Foreach {
                coll,
                var,
                var_span,
                body,
            } => self.foreach(coll, var, *var_span, body)?,
        };
        Ok(quote!(__specgen_src!(#comment); #code))
    }

    fn assign(&mut self, target: &str, span: Span, value: &Expr) -> Result<TokenStream, Diag> {
        let want = self.target_type(target);
        let v = self.expr(value, want.as_ref())?;
        if v.ty == Ty::Unit {
            return Err(self.err(
                value.span,
                "type mismatch: this call has no value",
                "call it as a statement on its own line",
            ));
        }
        self.store(target, span, v)
    }

    fn target_type(&self, target: &str) -> Option<Ty> {
        if let Some(v) = self.el.var(target) {
            return Some(v.ty.clone());
        }
        self.locals
            .iter()
            .find(|(n, _)| n == target)
            .map(|(_, t)| t.clone())
    }

    /// Writes `v` into local or state variable `target`.
    fn store(&mut self, target: &str, span: Span, v: Val) -> Result<TokenStream, Diag> {
        let rt = self.rt.clone();
        if self.lookup_binding(target).is_some() {
            return Err(self.err(
                span,
                format!("cannot assign to `{target}`: it is bound by a match pattern or foreach"),
                "assign to a new name instead",
            ));
        }
        if Some(target) == self.rpc_name.as_deref() {
            return Err(self.err(
                span,
                "cannot assign to the rpc",
                "change a field with set(rpc, 'field', value)",
            ));
        }
        if let Some(var) = self.el.var(target).cloned() {
            if !var.ty.is_scalar() && !matches!(var.ty, Ty::Pair(..)) {
                return Err(self.err(
                    span,
                    format!("{} `{}` used as a scalar", kind_word(&var.ty), var.name),
                    "change entries with set(m, key, value) / delete(m, key); a collection cannot be assigned",
                ));
            }
            self.check_fits(&v, &var.ty, span)?;
            let id = state_ident(&var.name);
            let val = if var.ty == Ty::Str {
                self.owned(&v)
            } else {
                v.ts.clone()
            };
            return Ok(if var.strong {
                quote!({ let __v = #val; *#rt::write_lock(&self.#id) = __v; })
            } else {
                quote!(self.#id = #val;)
            });
        }
        // A local: declared on first assignment.
        let ty = match self.locals.iter().find(|(n, _)| n == target) {
            Some((_, t)) => {
                let t = t.clone();
                self.check_fits(&v, &t, span)?;
                t
            }
            None => {
                let t = v.ty.clone().settle();
                if !t.is_copy() && t != Ty::Str && t != Ty::Opt(Box::new(Ty::Str)) {
                    return Err(self.err(
                        span,
                        format!("unsupported construct: a local holding {}", t.name()),
                        "locals hold scalars, strings, pairs and lookup results",
                    ));
                }
                self.locals.push((target.to_string(), t.clone()));
                t
            }
        };
        let id = local_ident(target);
        let is_str = ty == Ty::Str || ty == Ty::Opt(Box::new(Ty::Str));
        if is_str && v.owned {
            self.assigned_owned.insert(target.to_string());
        }
        let val = if is_str && self.owned_locals.contains(target) {
            self.owned(&v)
        } else {
            v.ts.clone()
        };
        Ok(quote!(#id = #val;))
    }

    fn check_fits(&self, v: &Val, want: &Ty, span: Span) -> Result<(), Diag> {
        if v.ty.fits(want) {
            Ok(())
        } else {
            Err(self.err(
                span,
                format!(
                    "type mismatch: expected {}, found {}",
                    want.name(),
                    v.ty.name()
                ),
                "values do not convert implicitly (only number literals adapt)",
            ))
        }
    }

    /// `v` as an owned value (`Vec<u8>` for strings).
    fn owned(&self, v: &Val) -> TokenStream {
        let ts = &v.ts;
        match (&v.ty, v.owned) {
            (Ty::Str, false) => quote!((#ts).to_vec()),
            (Ty::Opt(t), false) if **t == Ty::Str => quote!((#ts).map(<[u8]>::to_vec)),
            _ => ts.clone(),
        }
    }

    /// `v` as `&[u8]` (strings only).
    fn slice(&self, v: &Val) -> TokenStream {
        let ts = &v.ts;
        if v.owned {
            quote!(&(#ts)[..])
        } else {
            ts.clone()
        }
    }

    fn send_target(&self, e: &Expr) -> Option<String> {
        match &e.kind {
            ExprKind::Name(n) => Some(n.clone()),
            _ => None,
        }
    }

    fn call_stmt(&mut self, e: &Expr) -> Result<TokenStream, Diag> {
        let ExprKind::Call {
            name,
            name_span,
            args,
        } = &e.kind
        else {
            return Err(self.err(
                e.span,
                "unsupported construct: an expression used as a statement",
                "",
            ));
        };
        let rt = self.rt.clone();
        match name.as_str() {
            "send" => {
                if self.dir == Dir::Init {
                    return Err(self.err(
                        *name_span,
                        "send(..) is not allowed in init()",
                        "init() only sets up state",
                    ));
                }
                self.arity(name, *name_span, args, 2)?;
                let dir = self.send_target(&args[1]).unwrap_or_default();
                if dir != "Up" && dir != "Down" {
                    return Err(self.err(
                        args[1].span,
                        "send direction must be `Up` or `Down`",
                        "requests go Down, responses and errors Up",
                    ));
                }
                if let ExprKind::Call {
                    name: en,
                    name_span: esp,
                    args: eargs,
                } = &args[0].kind
                {
                    if en == "err" {
                        if dir != "Up" {
                            return Err(self.err(
                                args[1].span,
                                "unsupported construct: an error sent Down",
                                "errors go back to the caller: send(err('..'), Up)",
                            ));
                        }
                        let [msg] = eargs.as_slice() else {
                            return Err(self.err(
                                *esp,
                                "err(..) takes one string literal",
                                "e.g. err('denied')",
                            ));
                        };
                        let ExprKind::Str(m) = &msg.kind else {
                            return Err(self.err(
                                msg.span,
                                "err(..) takes one string literal",
                                "e.g. err('denied')",
                            ));
                        };
                        return Ok(quote!(return #rt::Verdict::Reply(#rt::ErrorReply::new(#m));));
                    }
                }
                let target = self.send_target(&args[0]);
                if target.is_none() || target != self.rpc_name {
                    return Err(self.err(
                        args[0].span,
                        "send(..) takes the rpc or err('..')",
                        "e.g. send(rpc, Down) or send(err('denied'), Up)",
                    ));
                }
                match (self.dir, dir.as_str()) {
                    (Dir::Req, "Down") | (Dir::Resp, "Up") => {
                        Ok(quote!(return #rt::Verdict::Forward;))
                    }
                    (Dir::Req, _) => Err(self.err(
                        args[1].span,
                        "unsupported construct: a request sent back Up",
                        "forward with send(rpc, Down) or answer with send(err('..'), Up)",
                    )),
                    _ => Err(self.err(
                        args[1].span,
                        "unsupported construct: a response sent Down",
                        "a response continues with send(rpc, Up)",
                    )),
                }
            }
            "drop" => {
                if self.dir == Dir::Init {
                    return Err(self.err(*name_span, "drop() is not allowed in init()", ""));
                }
                self.arity(name, *name_span, args, 0)?;
                Ok(quote!(return #rt::Verdict::Drop;))
            }
            "set" => self.set_call(*name_span, args),
            "delete" => {
                self.arity(name, *name_span, args, 2)?;
                let var = self.collection_arg(&args[0], "delete")?;
                let key = self.key_arg(&var, &args[1])?;
                let id = state_ident(&var.name);
                let k = self.fresh("k");
                Ok(if var.strong {
                    quote!({ let #k = #key; #rt::write_lock(&self.#id).delete(#k); })
                } else {
                    quote!({ let #k = #key; self.#id.delete(#k); })
                })
            }
            "set_metadata" => {
                self.no_init(name, *name_span)?;
                self.arity(name, *name_span, args, 2)?;
                let k = self.expr(&args[0], Some(&Ty::Str))?;
                self.check_fits(&k, &Ty::Str, args[0].span)?;
                let v = self.expr(&args[1], Some(&Ty::Str))?;
                self.check_fits(&v, &Ty::Str, args[1].span)?;
                let (kt, vt) = (self.owned(&k), self.owned(&v));
                Ok(
                    quote!({ let __k: Vec<u8> = #kt; let __v: Vec<u8> = #vt; ctx.metadata.set(&__k, &__v); }),
                )
            }
            "set_rpc_header" => {
                self.no_init(name, *name_span)?;
                self.arity(name, *name_span, args, 2)?;
                let (field, fsp) = self.literal_name(
                    &args[0],
                    "a header field name",
                    "e.g. set_rpc_header('priority', 3)",
                )?;
                let Some((_, writable)) = HEADER_FIELDS.iter().find(|(n, _)| *n == field) else {
                    return Err(self.unknown_header(&field, fsp));
                };
                if !writable {
                    return Err(self.err(
                        fsp,
                        format!("header field `{field}` is read-only"),
                        "writable header fields: priority, deadline_ns",
                    ));
                }
                let v = self.expr(&args[1], Some(&Ty::Uint))?;
                self.check_fits(&v, &Ty::Uint, args[1].span)?;
                let ts = v.ts;
                let f = format_ident!("{}", field);
                Ok(if field == "priority" {
                    quote!(ctx.header.priority = u8::try_from(#ts).unwrap_or(u8::MAX);)
                } else {
                    quote!(ctx.header.#f = #ts;)
                })
            }
            "err" => Err(self.err(
                *name_span,
                "err(..) outside send",
                "answer the caller with send(err('..'), Up)",
            )),
            _ => {
                let v = self.expr(e, None)?;
                let ts = v.ts;
                Ok(quote!(let _ = #ts;))
            }
        }
    }

    fn no_init(&self, name: &str, span: Span) -> Result<(), Diag> {
        if self.dir == Dir::Init {
            Err(self.err(
                span,
                format!("{name}(..) is not available in init()"),
                "init() has no RPC; use it in req(rpc) or resp(rpc)",
            ))
        } else {
            Ok(())
        }
    }

    fn unknown_header(&self, field: &str, span: Span) -> Diag {
        let names: Vec<&str> = HEADER_FIELDS.iter().map(|(n, _)| *n).collect();
        self.err(
            span,
            format!("unknown rpc header field `{field}`"),
            format!("header fields: {}", names.join(", ")),
        )
    }

    fn arity(&self, name: &str, span: Span, args: &[Expr], n: usize) -> Result<(), Diag> {
        if args.len() == n {
            Ok(())
        } else {
            Err(self.err(
                span,
                format!("{name}(..) takes {n} argument(s), found {}", args.len()),
                format!("see the built-ins: {BUILTINS}"),
            ))
        }
    }

    fn literal_name(&self, e: &Expr, what: &str, hint: &str) -> Result<(String, Span), Diag> {
        match &e.kind {
            ExprKind::Str(s) => Ok((s.clone(), e.span)),
            _ => Err(self.err(
                e.span,
                format!("expected {what} as a quoted literal"),
                hint.to_string(),
            )),
        }
    }

    fn is_rpc(&self, e: &Expr) -> bool {
        matches!(&e.kind, ExprKind::Name(n) if Some(n) == self.rpc_name.as_ref())
    }

    /// The state collection named by `e` (for get/set/delete/size/foreach).
    fn collection_arg(&self, e: &Expr, what: &str) -> Result<StateVar, Diag> {
        let ExprKind::Name(n) = &e.kind else {
            return Err(self.err(
                e.span,
                format!("{what}(..) needs a Map or Vec state variable here"),
                "name the state variable directly",
            ));
        };
        match self.el.var(n) {
            Some(v) if matches!(v.ty, Ty::Map(..) | Ty::Vec(..)) => Ok(v.clone()),
            Some(v) => Err(self.err(
                e.span,
                format!("type mismatch: `{n}` is {}, not a Map or Vec", v.ty.name()),
                format!(
                    "{what}(m, ..) works on Map and Vec state; assign scalars with `{n} = value`"
                ),
            )),
            None if self.rpc_name.is_none() && n == "rpc" => Err(self.err(
                e.span,
                "rpc is not available in init()",
                "read fields in req(rpc) or resp(rpc)",
            )),
            None => Err(self.unknown_name(n, e.span)),
        }
    }

    fn unknown_name(&self, n: &str, span: Span) -> Diag {
        let vars: Vec<&str> = self.el.vars.iter().map(|v| v.name.as_str()).collect();
        let hint = if vars.is_empty() {
            "assign a local before using it, or declare state in `state:`".to_string()
        } else {
            format!(
                "state variables of `{}`: {}; locals must be assigned before use",
                self.el.name,
                vars.join(", ")
            )
        };
        self.err(span, format!("unknown name `{n}`"), hint)
    }

    /// Key argument of a Map (`&[u8]` or `&i64`) or index of a Vec (`i64`).
    fn key_arg(&mut self, var: &StateVar, e: &Expr) -> Result<TokenStream, Diag> {
        match &var.ty {
            Ty::Map(k, _) => {
                let kv = self.expr(e, Some(k))?;
                self.check_fits(&kv, k, e.span)?;
                Ok(if **k == Ty::Str {
                    self.owned_or_slice_for_key(&kv)
                } else {
                    let ts = kv.ts;
                    quote!(&(#ts))
                })
            }
            Ty::Vec(_) => {
                let iv = self.expr(e, Some(&Ty::Int))?;
                self.check_fits(&iv, &Ty::Int, e.span)?;
                Ok(iv.ts)
            }
            _ => Err(self.err(e.span, "not a collection", "")),
        }
    }

    fn owned_or_slice_for_key(&self, v: &Val) -> TokenStream {
        // Bound with `let` by callers: an owned key must stay alive, so materialise it.
        let ts = &v.ts;
        if v.owned {
            quote!(&#ts[..])
        } else {
            ts.clone()
        }
    }

    fn set_call(&mut self, name_span: Span, args: &[Expr]) -> Result<TokenStream, Diag> {
        self.arity("set", name_span, args, 3)?;
        let rt = self.rt.clone();
        if self.is_rpc(&args[0]) {
            let (fi, field, kind) = self.rpc_field(&args[1], None, true)?;
            let want = field_ty(kind);
            let v = self.expr(&args[2], Some(&want))?;
            self.check_fits(&v, &want, args[2].span)?;
            let setter = format_ident!("set_{}", field_ident_str(&field));
            let _ = fi;
            let val = match kind {
                Kind::Str | Kind::Bytes => {
                    let o = self.owned(&v);
                    quote!({ let __v: Vec<u8> = #o; msg.#setter(&__v) })
                }
                Kind::I32 | Kind::Enum => {
                    let ts = v.ts;
                    let fname = field.clone();
                    quote!(match i32::try_from(#ts) { Ok(__v) => msg.#setter(__v), Err(_) => Err(#rt::SetError::OutOfRange { field: #fname }) })
                }
                Kind::U32 => {
                    let ts = v.ts;
                    let fname = field.clone();
                    quote!(match u32::try_from(#ts) { Ok(__v) => msg.#setter(__v), Err(_) => Err(#rt::SetError::OutOfRange { field: #fname }) })
                }
                Kind::F32 => {
                    let ts = v.ts;
                    quote!(msg.#setter((#ts) as f32))
                }
                _ => {
                    let ts = v.ts;
                    quote!(msg.#setter(#ts))
                }
            };
            return Ok(
                quote!(if (#val).is_err() { return #rt::Verdict::Reply(#rt::ErrorReply::DOES_NOT_FIT); }),
            );
        }
        let var = self.collection_arg(&args[0], "set")?;
        if let Some((m, k, slot)) = self.slot.clone() {
            if m == var.name && same_key(&k, &args[1]) {
                let vty = match &var.ty {
                    Ty::Map(_, v) => (**v).clone(),
                    _ => Ty::Unit,
                };
                let v = self.expr(&args[2], Some(&vty))?;
                self.check_fits(&v, &vty, args[2].span)?;
                let val = v.ts;
                return Ok(quote!({ let __v = #val; *#slot = __v; }));
            }
        }
        let id = state_ident(&var.name);
        let key = self.key_arg(&var, &args[1])?;
        let vty = match &var.ty {
            Ty::Map(_, v) | Ty::Vec(v) => (**v).clone(),
            _ => Ty::Unit,
        };
        let v = self.expr(&args[2], Some(&vty))?;
        self.check_fits(&v, &vty, args[2].span)?;
        let val = if vty == Ty::Str {
            self.owned(&v)
        } else {
            v.ts.clone()
        };
        let (k, x) = (self.fresh("k"), self.fresh("v"));
        Ok(if var.strong {
            quote!({ let #k = #key; let #x = #val; #rt::write_lock(&self.#id).set(#k, #x); })
        } else {
            quote!({ let #k = #key; let #x = #val; self.#id.set(#k, #x); })
        })
    }

    /// Resolves `'field'` of the rpc message; records the access.
    fn rpc_field(
        &mut self,
        name: &Expr,
        hint_ty: Option<&Expr>,
        write: bool,
    ) -> Result<(usize, String, Kind), Diag> {
        let (fname, fsp) = self.literal_name(name, "a field name", "e.g. get(rpc, 'user')")?;
        let Some(mi) = self.msg else {
            return Err(self.err(
                name.span,
                "rpc is not available in init()",
                "read fields in req(rpc) or resp(rpc)",
            ));
        };
        let Some(m) = self.schema.messages.get(mi) else {
            return Err(self.err(name.span, "internal: message index", ""));
        };
        let Some(fi) = m.fields.iter().position(|f| f.name == fname) else {
            let names: Vec<&str> = m.fields.iter().map(|f| f.name.as_str()).collect();
            return Err(self.err(
                fsp,
                format!(
                    "unknown field `{fname}` in message `{}` ({})",
                    m.full_name, self.by
                ),
                if names.is_empty() {
                    "the message has no fields".to_string()
                } else {
                    format!("fields of {}: {}", m.rust_name, names.join(", "))
                },
            ));
        };
        let f = &m.fields[fi];
        if f.repeated || matches!(f.kind, Kind::Message(_)) {
            return Err(self.err(
                fsp,
                format!(
                    "unsupported construct: field `{fname}` is {}",
                    if f.repeated {
                        "repeated"
                    } else {
                        "a nested message"
                    }
                ),
                "elements read and write scalar, string and bytes fields",
            ));
        }
        if let Some(t) = hint_ty {
            let (tn, tsp) =
                self.literal_name(t, "a proto type name", "e.g. get(rpc, 'score', 'int32')")?;
            if tn != f.proto_type && !(tn == "int32" && f.kind == Kind::Enum) {
                return Err(self.err(
                    tsp,
                    format!(
                        "type mismatch: field `{fname}` is {}, not {tn}",
                        f.proto_type
                    ),
                    format!("write '{}' or leave the type out", f.proto_type),
                ));
            }
        }
        self.accesses.push(FieldAccess {
            msg: mi,
            field: fi,
            write,
            by: self.by.clone(),
        });
        Ok((fi, fname, f.kind))
    }

    /// `match get(m, k):` whose `Some` arms only touch `m` through `set(m, k, ..)` with
    /// the same key: one `get_mut` lookup instead of a lookup per access (the
    /// session-tracker idiom). `None` on any other shape.
    fn slot_match(&mut self, scrutinee: &Expr, arms: &[Arm]) -> Result<Option<TokenStream>, Diag> {
        let ExprKind::Call { name, args, .. } = &scrutinee.kind else {
            return Ok(None);
        };
        let [m, key] = args.as_slice() else {
            return Ok(None);
        };
        if name != "get" || self.slot.is_some() {
            return Ok(None);
        }
        let ExprKind::Name(mname) = &m.kind else {
            return Ok(None);
        };
        let Some(var) = self.el.var(mname).cloned() else {
            return Ok(None);
        };
        let Ty::Map(_, vty) = &var.ty else {
            return Ok(None);
        };
        if var.strong || !vty.is_copy() {
            return Ok(None);
        }
        let key_name = match &key.kind {
            ExprKind::Name(n) if n != mname && Some(n) != self.rpc_name.as_ref() => Some(n.clone()),
            ExprKind::Str(_) | ExprKind::Int(_) => None,
            _ => return Ok(None),
        };
        for arm in arms {
            let [p] = arm.pats.as_slice() else {
                return Ok(None);
            };
            match &p.kind {
                PatKind::None => {}
                PatKind::Some(_) => {
                    let mut counts = HashMap::new();
                    count_assigns(&arm.body, 1, &mut counts);
                    if key_name.as_ref().is_some_and(|k| counts.contains_key(k)) {
                        return Ok(None);
                    }
                    if count_name_stmts(&arm.body, mname) != count_slot_sets(&arm.body, mname, key)
                    {
                        return Ok(None);
                    }
                }
                _ => return Ok(None),
            }
        }
        let id = state_ident(mname);
        let key_ts = self.key_arg(&var, key)?;
        let slot = self.fresh("slot");
        let mut out_arms = TokenStream::new();
        for arm in arms {
            let p = &arm.pats[0];
            let (head, bind, binding) = match &p.kind {
                PatKind::Some(Some(b)) => {
                    if self.el.var(b).is_some() || Some(b) == self.rpc_name.as_ref() {
                        return Err(self.err(
                            p.span,
                            format!("pattern binding `{b}` hides a state variable or the rpc"),
                            "choose another name",
                        ));
                    }
                    let ident = format_ident!("b_{}", b);
                    (
                        quote!(Some(#slot)),
                        quote!(let #ident = *#slot;),
                        Some(Binding {
                            name: b.clone(),
                            ident,
                            ty: (**vty).clone(),
                            owned: false,
                        }),
                    )
                }
                PatKind::Some(None) => (quote!(Some(#slot)), quote!(), None),
                _ => (quote!(None), quote!(), None),
            };
            let is_some = matches!(p.kind, PatKind::Some(_));
            if is_some {
                self.slot = Some((mname.clone(), key.clone(), slot.clone()));
            }
            self.scopes.push(binding.into_iter().collect());
            let body = self.block(&arm.body);
            self.scopes.pop();
            self.slot = None;
            let body = body?;
            out_arms.extend(quote!(#head => { #bind #body }));
        }
        if !arms.iter().any(|a| a.pats[0].kind == PatKind::None)
            || !arms
                .iter()
                .any(|a| matches!(a.pats[0].kind, PatKind::Some(_)))
        {
            out_arms.extend(quote!(_ => {}));
        }
        Ok(Some(quote!(match self.#id.get_mut(#key_ts) { #out_arms })))
    }

    fn match_stmt(&mut self, scrutinee: &Expr, arms: &[Arm]) -> Result<TokenStream, Diag> {
        if let Some(ts) = self.slot_match(scrutinee, arms)? {
            return Ok(ts);
        }
        let v = self.expr(scrutinee, None)?;
        let ty = v.ty.clone().settle();
        let scrut = match &ty {
            Ty::Str => self.slice(&v),
            Ty::Opt(t) if **t == Ty::Str => {
                let ts = &v.ts;
                if v.owned {
                    quote!(#ts)
                } else {
                    ts.clone()
                }
            }
            _ => v.ts.clone(),
        };
        let mut out_arms = TokenStream::new();
        let mut has_wild = false;
        let (mut has_some, mut has_none, mut has_true, mut has_false) =
            (false, false, false, false);
        for arm in arms {
            let mut pats = Vec::new();
            let mut binding: Option<Binding> = None;
            for p in &arm.pats {
                let (pt, b) = self.pattern(p, &ty, v.owned, arm.pats.len())?;
                match &p.kind {
                    PatKind::Wild => has_wild = true,
                    PatKind::Some(_) => has_some = true,
                    PatKind::None => has_none = true,
                    PatKind::Bool(true) => has_true = true,
                    PatKind::Bool(false) => has_false = true,
                    _ => {}
                }
                if b.is_some() {
                    binding = b;
                }
                pats.push(pt);
            }
            self.scopes.push(binding.into_iter().collect());
            let body = self.block(&arm.body);
            self.scopes.pop();
            let body = body?;
            out_arms.extend(quote!(#(#pats)|* => { #body }));
        }
        if !(has_wild || (has_some && has_none) || (has_true && has_false)) {
            out_arms.extend(quote!(_ => {}));
        }
        let _ = scrutinee;
        Ok(quote!(match #scrut { #out_arms }))
    }

    fn pattern(
        &self,
        p: &Pattern,
        ty: &Ty,
        owned: bool,
        alternatives: usize,
    ) -> Result<(TokenStream, Option<Binding>), Diag> {
        let mismatch = |what: &str| {
            self.err(
                p.span,
                format!(
                    "type mismatch: pattern {what} against a value of type {}",
                    ty.name()
                ),
                "patterns must have the matched value's type",
            )
        };
        Ok(match (&p.kind, ty) {
            (PatKind::Wild, _) => (quote!(_), None),
            (PatKind::Bool(b), Ty::Bool) => (quote!(#b), None),
            (PatKind::Bool(_), _) => return Err(mismatch("true/false")),
            (PatKind::Str(s), Ty::Str) => {
                let lit = Literal::byte_string(s.as_bytes());
                (quote!(#lit), None)
            }
            (PatKind::Str(_), _) => return Err(mismatch("'string'")),
            (PatKind::Int(n), Ty::Int) => {
                let Ok(n) = i64::try_from(*n) else {
                    return Err(self.err(p.span, "integer pattern out of range", ""));
                };
                (int_lit(n), None)
            }
            (PatKind::Int(n), Ty::Uint | Ty::Instant) => {
                let Ok(n) = u64::try_from(*n) else {
                    return Err(mismatch("a negative number"));
                };
                let lit = Literal::u64_suffixed(n);
                (quote!(#lit), None)
            }
            (PatKind::Int(_), Ty::Float) => {
                return Err(self.err(
                    p.span,
                    "unsupported construct: matching a float against a constant",
                    "compare with < or > and match true/false",
                ))
            }
            (PatKind::Int(_), _) => return Err(mismatch("a number")),
            (PatKind::None, Ty::Opt(_)) => (quote!(None), None),
            (PatKind::None, _) => return Err(mismatch("None")),
            (PatKind::Some(b), Ty::Opt(inner)) => match b {
                None => (quote!(Some(_)), None),
                Some(name) => {
                    if alternatives > 1 {
                        return Err(self.err(
                            p.span,
                            "unsupported construct: a binding pattern combined with |",
                            "give the binding its own arm",
                        ));
                    }
                    if self.el.var(name).is_some() || Some(name) == self.rpc_name.as_ref() {
                        return Err(self.err(
                            p.span,
                            format!("pattern binding `{name}` hides a state variable or the rpc"),
                            "choose another name",
                        ));
                    }
                    let ident = format_ident!("b_{}", name);
                    let owned_str = **inner == Ty::Str && owned;
                    (
                        quote!(Some(#ident)),
                        Some(Binding {
                            name: name.clone(),
                            ident,
                            ty: (**inner).clone(),
                            owned: owned_str,
                        }),
                    )
                }
            },
            (PatKind::Some(_), _) => return Err(mismatch("Some(..)")),
        })
    }

    fn foreach(
        &mut self,
        coll: &Expr,
        var: &str,
        var_span: Span,
        body: &[Stmt],
    ) -> Result<TokenStream, Diag> {
        let cv = self.collection_arg(coll, "foreach")?;
        let Ty::Vec(item) = cv.ty.clone() else {
            return Err(self.err(
                coll.span,
                "unsupported construct: foreach over a Map",
                "keep the keys in a Vec<..> and iterate that",
            ));
        };
        let mut w = HashSet::new();
        collect_writes(body, self, &mut w);
        if w.contains(&Place::State(cv.name.clone())) {
            return Err(self.err(
                coll.span,
                format!("`{}` is modified inside its own foreach", cv.name),
                "collect the changes and apply them after the loop",
            ));
        }
        if self.el.var(var).is_some() {
            return Err(self.err(
                var_span,
                format!("foreach variable `{var}` hides a state variable"),
                "choose another name",
            ));
        }
        let id = state_ident(&cv.name);
        let ident = format_ident!("b_{}", var);
        let it = self.fresh("it");
        let item_owned =
            *item == Ty::Str && (cv.strong || self.writes.contains(&Place::State(cv.name.clone())));
        let bind = if item.is_copy() {
            quote!(let #ident = *#it;)
        } else if item_owned {
            quote!(let #ident: Vec<u8> = #it.clone();)
        } else {
            quote!(let #ident: &[u8] = &#it[..];)
        };
        self.scopes.push(vec![Binding {
            name: var.to_string(),
            ident: ident.clone(),
            ty: (*item).clone(),
            owned: item_owned,
        }]);
        self.loop_vars.push(var.to_string());
        let b = self.block(body);
        self.loop_vars.pop();
        self.scopes.pop();
        let b = b?;
        let rt = self.rt;
        Ok(if cv.strong {
            let items = self.fresh("items");
            let t = item.rust_state(rt);
            quote!({ let #items: Vec<#t> = #rt::read_lock(&self.#id).iter().cloned().collect(); for #it in #items.iter() { #bind #b } })
        } else {
            quote!(for #it in self.#id.iter() { #bind #b })
        })
    }

    fn lookup_binding(&self, name: &str) -> Option<&Binding> {
        self.scopes
            .iter()
            .rev()
            .flat_map(|s| s.iter())
            .find(|b| b.name == name)
    }

    // ---------------------------------------------------------------- expressions

    fn is_literal(e: &Expr) -> bool {
        match &e.kind {
            ExprKind::Int(_) | ExprKind::Float(_) => true,
            ExprKind::Neg(x) => Self::is_literal(x),
            _ => false,
        }
    }

    /// Lowers two operands so that a literal adapts to the other side's type.
    fn two(&mut self, a: &Expr, b: &Expr, want: Option<&Ty>) -> Result<(Val, Val), Diag> {
        if Self::is_literal(a) && !Self::is_literal(b) {
            let vb = self.expr(b, want)?;
            let t = vb.ty.clone();
            let va = self.expr(a, Some(&t))?;
            Ok((va, vb))
        } else {
            let va = self.expr(a, want)?;
            let t = va.ty.clone();
            let vb = self.expr(b, Some(&t))?;
            Ok((va, vb))
        }
    }

    fn expr(&mut self, e: &Expr, want: Option<&Ty>) -> Result<Val, Diag> {
        let rt = self.rt.clone();
        Ok(match &e.kind {
            ExprKind::Int(n) => self.int_literal(i128::from(*n), want, e.span)?,
            ExprKind::Float(f) => {
                let lit = Literal::f64_suffixed(*f);
                Val::copy(Ty::Float, quote!(#lit))
            }
            ExprKind::Str(s) => {
                let lit = Literal::byte_string(s.as_bytes());
                Val {
                    ty: Ty::Str,
                    ts: quote!(&#lit[..]),
                    owned: false,
                }
            }
            ExprKind::Bool(b) => Val::copy(Ty::Bool, quote!(#b)),
            ExprKind::Name(n) => self.name(n, e.span)?,
            ExprKind::Pair(a, b) => {
                let (wa, wb) = match want {
                    Some(Ty::Pair(x, y)) => (Some((**x).clone()), Some((**y).clone())),
                    _ => (None, None),
                };
                let va = self.expr(a, wa.as_ref())?;
                let vb = self.expr(b, wb.as_ref())?;
                if !va.ty.is_copy() || !vb.ty.is_copy() {
                    return Err(self.err(
                        e.span,
                        "unsupported construct: a pair holding a string or collection",
                        "pairs hold numbers, bools and Instants",
                    ));
                }
                let (ta, tb) = (va.ts, vb.ts);
                Val::copy(
                    Ty::Pair(Box::new(va.ty.settle()), Box::new(vb.ty.settle())),
                    quote!((#ta, #tb)),
                )
            }
            ExprKind::Neg(x) => {
                if let ExprKind::Int(n) = x.kind {
                    return self.int_literal(-i128::from(n), want, e.span);
                }
                let v = self.expr(x, want)?;
                let ts = v.ts;
                match v.ty {
                    Ty::Int | Ty::IntLit => Val::copy(Ty::Int, quote!((#ts).wrapping_neg())),
                    Ty::Float => Val::copy(Ty::Float, quote!(-(#ts))),
                    other => {
                        return Err(self.err(
                            e.span,
                            format!(
                                "type mismatch: `-` needs int or float, found {}",
                                other.name()
                            ),
                            "",
                        ))
                    }
                }
            }
            ExprKind::Not(x) => {
                let v = self.expr(x, Some(&Ty::Bool))?;
                self.check_fits(&v, &Ty::Bool, x.span)?;
                let ts = v.ts;
                Val::copy(Ty::Bool, quote!(!(#ts)))
            }
            ExprKind::Binary(op, a, b) => self.binary(*op, a, b, e.span, want)?,
            ExprKind::Call {
                name,
                name_span,
                args,
            } => self.call(name, *name_span, args, e.span, want, &rt)?,
        })
    }

    fn int_literal(&self, n: i128, want: Option<&Ty>, span: Span) -> Result<Val, Diag> {
        Ok(match want {
            Some(Ty::Float) => {
                let lit = Literal::f64_suffixed(n as f64);
                Val::copy(Ty::Float, quote!(#lit))
            }
            Some(t @ (Ty::Uint | Ty::Instant)) => {
                let Ok(v) = u64::try_from(n) else {
                    return Err(self.err(
                        span,
                        format!("type mismatch: negative number for {}", t.name()),
                        "uint values are >= 0",
                    ));
                };
                let lit = Literal::u64_suffixed(v);
                Val::copy(t.clone(), quote!(#lit))
            }
            _ => {
                let Ok(v) = i64::try_from(n) else {
                    return Err(self.err(
                        span,
                        "integer literal out of range for int",
                        "int is 64-bit signed",
                    ));
                };
                Val::copy(Ty::Int, int_lit(v))
            }
        })
    }

    fn name(&mut self, n: &str, span: Span) -> Result<Val, Diag> {
        if let Some(b) = self.lookup_binding(n).cloned() {
            let id = b.ident;
            return Ok(if b.ty == Ty::Str && b.owned {
                Val {
                    ty: b.ty,
                    ts: quote!(&#id[..]),
                    owned: false,
                }
            } else {
                Val {
                    ty: b.ty,
                    ts: quote!(#id),
                    owned: false,
                }
            });
        }
        if let Some((_, ty)) = self.locals.iter().find(|(l, _)| l == n).cloned() {
            let id = local_ident(n);
            let is_str = ty == Ty::Str || ty == Ty::Opt(Box::new(Ty::Str));
            if !is_str {
                return Ok(Val::copy(ty, quote!(#id)));
            }
            let owned = self.owned_locals.contains(n);
            return Ok(match (owned, self.multi_assigned.contains(n), &ty) {
                (false, _, _) => Val {
                    ty,
                    ts: quote!(#id),
                    owned: false,
                },
                (true, true, _) => Val {
                    ty,
                    ts: quote!(#id.clone()),
                    owned: true,
                },
                (true, false, Ty::Str) => Val {
                    ty,
                    ts: quote!(&#id[..]),
                    owned: false,
                },
                (true, false, _) => Val {
                    ty,
                    ts: quote!(#id.as_deref()),
                    owned: false,
                },
            });
        }
        if let Some(var) = self.el.var(n).cloned() {
            let id = state_ident(n);
            let rt = self.rt;
            if !var.ty.is_scalar() && !matches!(var.ty, Ty::Pair(..)) {
                return Err(self.err(
                    span,
                    format!("{} `{n}` used as a scalar", kind_word(&var.ty)),
                    format!("look entries up with get({n}, key); count them with size({n})"),
                ));
            }
            let written = self.writes.contains(&Place::State(n.to_string()));
            return Ok(match (&var.ty, var.strong) {
                (Ty::Str, true) => Val {
                    ty: Ty::Str,
                    ts: quote!({ let __g = #rt::read_lock(&self.#id); let __v = __g.clone(); __v }),
                    owned: true,
                },
                (_, true) => Val::copy(
                    var.ty.clone(),
                    quote!({ let __g = #rt::read_lock(&self.#id); let __v = *__g; __v }),
                ),
                (Ty::Str, false) if written => Val {
                    ty: Ty::Str,
                    ts: quote!(self.#id.clone()),
                    owned: true,
                },
                (Ty::Str, false) => Val {
                    ty: Ty::Str,
                    ts: quote!(&self.#id[..]),
                    owned: false,
                },
                _ => Val::copy(var.ty.clone(), quote!(self.#id)),
            });
        }
        if Some(n) == self.rpc_name.as_deref() {
            return Err(self.err(
                span,
                "the rpc is not a value",
                "read a field with get(rpc, 'field')",
            ));
        }
        if n == "Up" || n == "Down" {
            return Err(self.err(
                span,
                format!("`{n}` is only a send(..) direction"),
                "e.g. send(rpc, Down)",
            ));
        }
        if n == "rpc" && self.dir == Dir::Init {
            return Err(self.err(
                span,
                "rpc is not available in init()",
                "read fields in req(rpc) or resp(rpc)",
            ));
        }
        Err(self.unknown_name(n, span))
    }

    fn binary(
        &mut self,
        op: BinOp,
        a: &Expr,
        b: &Expr,
        span: Span,
        want: Option<&Ty>,
    ) -> Result<Val, Diag> {
        let operand_want = match op {
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div => want.filter(|t| t.is_numeric()),
            BinOp::And | BinOp::Or => Some(&Ty::Bool),
            _ => None,
        };
        let (va, vb) = self.two(a, b, operand_want)?;
        let (ta, tb) = (va.ty.clone().settle(), vb.ty.clone().settle());
        let mismatch = |s: &Self, need: &str| {
            s.err(
                span,
                format!(
                    "type mismatch: `{}` needs {need}, found {} and {}",
                    op.text(),
                    ta.name(),
                    tb.name()
                ),
                "values do not convert implicitly (only number literals adapt)",
            )
        };
        for (v, e) in [(&va, a), (&vb, b)] {
            if matches!(v.ty, Ty::Opt(_)) && !matches!(op, BinOp::Eq | BinOp::Ne) {
                return Err(self.err(
                    e.span,
                    "type mismatch: a lookup result (Some/None) used as a value",
                    "take it apart with `match e: Some(x) => .. None => ..`",
                ));
            }
        }
        let (xa, xb) = (va.ts.clone(), vb.ts.clone());
        Ok(match op {
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div => {
                if ta == Ty::Str && tb == Ty::Str && op == BinOp::Add {
                    return Err(self.err(
                        span,
                        "unsupported construct: string concatenation",
                        "strings can be compared, stored and looked up, not built",
                    ));
                }
                if ta != tb || !ta.is_numeric() {
                    return Err(mismatch(self, "two numbers of the same type"));
                }
                let ts = match (op, &ta) {
                    (BinOp::Add, Ty::Float) => quote!((#xa + #xb)),
                    (BinOp::Sub, Ty::Float) => quote!((#xa - #xb)),
                    (BinOp::Mul, Ty::Float) => quote!((#xa * #xb)),
                    (BinOp::Div, Ty::Float) => quote!((#xa / #xb)),
                    (BinOp::Add, _) => quote!((#xa).wrapping_add(#xb)),
                    (BinOp::Sub, _) => quote!((#xa).wrapping_sub(#xb)),
                    (BinOp::Mul, _) => quote!((#xa).wrapping_mul(#xb)),
                    _ => quote!((#xa).checked_div(#xb).unwrap_or(0)),
                };
                Val::copy(ta, ts)
            }
            BinOp::And | BinOp::Or => {
                if ta != Ty::Bool || tb != Ty::Bool {
                    return Err(mismatch(self, "two bools"));
                }
                if op == BinOp::And {
                    Val::copy(Ty::Bool, quote!((#xa && #xb)))
                } else {
                    Val::copy(Ty::Bool, quote!((#xa || #xb)))
                }
            }
            _ => {
                if ta != tb {
                    return Err(mismatch(self, "two values of the same type"));
                }
                let ordered = matches!(op, BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge);
                if ordered && !(ta.is_numeric() || matches!(ta, Ty::Instant | Ty::Str)) {
                    return Err(mismatch(self, "numbers, Instants or strings"));
                }
                if !(ordered || ta.is_copy() || ta == Ty::Str) {
                    return Err(mismatch(self, "scalars"));
                }
                let (xa, xb) = if ta == Ty::Str {
                    (self.slice(&va), self.slice(&vb))
                } else if matches!(ta, Ty::Opt(_)) {
                    (self.opt_cmp(&va), self.opt_cmp(&vb))
                } else {
                    (xa, xb)
                };
                let ts = match op {
                    BinOp::Eq => quote!((#xa == #xb)),
                    BinOp::Ne => quote!((#xa != #xb)),
                    BinOp::Lt => quote!((#xa < #xb)),
                    BinOp::Le => quote!((#xa <= #xb)),
                    BinOp::Gt => quote!((#xa > #xb)),
                    _ => quote!((#xa >= #xb)),
                };
                Val::copy(Ty::Bool, ts)
            }
        })
    }

    fn opt_cmp(&self, v: &Val) -> TokenStream {
        let ts = &v.ts;
        if v.owned {
            quote!((#ts).as_deref())
        } else {
            ts.clone()
        }
    }

    fn num_arg(&mut self, e: &Expr, want: &Ty) -> Result<TokenStream, Diag> {
        let v = self.expr(e, Some(want))?;
        self.check_fits(&v, want, e.span)?;
        Ok(v.ts)
    }

    #[allow(clippy::too_many_arguments)]
    fn call(
        &mut self,
        name: &str,
        nsp: Span,
        args: &[Expr],
        span: Span,
        want: Option<&Ty>,
        rt: &TokenStream,
    ) -> Result<Val, Diag> {
        let now = if self.dir == Dir::Init {
            quote!(init.now)
        } else {
            quote!(ctx.now)
        };
        Ok(match name {
            "get" => {
                if args.len() == 3 || (args.len() == 2 && self.is_rpc(&args[0])) {
                    if !self.is_rpc(&args[0]) {
                        return Err(self.err(
                            args[0].span,
                            "get(x, 'field', 'type') reads a field of the rpc",
                            "e.g. get(rpc, 'score', 'int32')",
                        ));
                    }
                    let (_, field, kind) = self.rpc_field(&args[1], args.get(2), false)?;
                    let acc = format_ident!("{}", field_ident_str(&field));
                    let ty = field_ty(kind);
                    return Ok(match kind {
                        Kind::Str | Kind::Bytes => {
                            if self.writes.contains(&Place::Rpc) {
                                Val {
                                    ty,
                                    ts: quote!(msg.#acc().to_vec()),
                                    owned: true,
                                }
                            } else {
                                Val {
                                    ty,
                                    ts: quote!(msg.#acc()),
                                    owned: false,
                                }
                            }
                        }
                        Kind::I32 | Kind::Enum | Kind::U32 | Kind::F32 => {
                            let t = ty.rust_state(rt);
                            Val::copy(ty, quote!(#t::from(msg.#acc())))
                        }
                        _ => Val::copy(ty, quote!(msg.#acc())),
                    });
                }
                self.arity(name, nsp, args, 2)?;
                let var = self.collection_arg(&args[0], "get")?;
                let key = self.key_arg(&var, &args[1])?;
                let vty = match &var.ty {
                    Ty::Map(_, v) | Ty::Vec(v) => (**v).clone(),
                    _ => Ty::Unit,
                };
                let id = state_ident(&var.name);
                let written = self.writes.contains(&Place::State(var.name.clone()));
                let k = self.fresh("k");
                let opt = Ty::Opt(Box::new(vty.clone()));
                if var.strong {
                    let conv = if vty.is_copy() {
                        quote!(.copied())
                    } else {
                        quote!(.cloned())
                    };
                    Val {
                        ty: opt,
                        ts: quote!({ let #k = #key; let __g = #rt::read_lock(&self.#id); let __v = __g.get(#k)#conv; __v }),
                        owned: true,
                    }
                } else if vty.is_copy() {
                    Val::copy(opt, quote!(self.#id.get(#key).copied()))
                } else if written {
                    Val {
                        ty: opt,
                        ts: quote!({ let #k = #key; self.#id.get(#k).cloned() }),
                        owned: true,
                    }
                } else {
                    Val {
                        ty: opt,
                        ts: quote!(self.#id.get(#key).map(|__s| &__s[..])),
                        owned: false,
                    }
                }
            }
            "size" => {
                self.arity(name, nsp, args, 1)?;
                if let ExprKind::Name(n) = &args[0].kind {
                    if let Some(var) = self.el.var(n).cloned() {
                        if matches!(var.ty, Ty::Map(..) | Ty::Vec(..)) {
                            let id = state_ident(n);
                            let len = if var.strong {
                                quote!(#rt::read_lock(&self.#id).len())
                            } else {
                                quote!(self.#id.len())
                            };
                            return Ok(Val::copy(
                                Ty::Int,
                                quote!(i64::try_from(#len).unwrap_or(i64::MAX)),
                            ));
                        }
                    }
                }
                let v = self.expr(&args[0], None)?;
                if v.ty != Ty::Str {
                    return Err(self.err(
                        args[0].span,
                        format!(
                            "type mismatch: size(..) needs a Map, Vec or string, found {}",
                            v.ty.name()
                        ),
                        "",
                    ));
                }
                let s = self.slice(&v);
                Val::copy(
                    Ty::Int,
                    quote!(i64::try_from((#s).len()).unwrap_or(i64::MAX)),
                )
            }
            "byte_size" => {
                self.arity(name, nsp, args, 1)?;
                if self.is_rpc(&args[0]) {
                    return Ok(Val::copy(
                        Ty::Int,
                        quote!(i64::try_from(msg.len()).unwrap_or(i64::MAX)),
                    ));
                }
                let v = self.expr(&args[0], Some(&Ty::Str))?;
                self.check_fits(&v, &Ty::Str, args[0].span)?;
                let s = self.slice(&v);
                Val::copy(
                    Ty::Int,
                    quote!(i64::try_from((#s).len()).unwrap_or(i64::MAX)),
                )
            }
            "current_time" => {
                self.arity(name, nsp, args, 0)?;
                Val::copy(Ty::Instant, now)
            }
            "time_diff" => {
                self.arity(name, nsp, args, 2)?;
                let a = self.num_arg(&args[0], &Ty::Instant)?;
                let b = self.num_arg(&args[1], &Ty::Instant)?;
                Val::copy(
                    Ty::Float,
                    quote!(((#a).wrapping_sub(#b) as i64 as f64 / 1e9)),
                )
            }
            "min" | "max" => {
                self.arity(name, nsp, args, 2)?;
                let (a, b) = self.two(&args[0], &args[1], want.filter(|t| t.is_numeric()))?;
                let t = a.ty.clone().settle();
                if t != b.ty.clone().settle() || !(t.is_numeric() || t == Ty::Instant) {
                    return Err(self.err(span, format!("type mismatch: {name}(..) needs two numbers of the same type, found {} and {}", a.ty.name(), b.ty.name()), "values do not convert implicitly (only number literals adapt)"));
                }
                let (xa, xb) = (a.ts, b.ts);
                let f = format_ident!("{}", name);
                if t == Ty::Float {
                    Val::copy(t, quote!(f64::#f(#xa, #xb)))
                } else {
                    Val::copy(t, quote!(std::cmp::#f(#xa, #xb)))
                }
            }
            "randomf" => {
                self.arity(name, nsp, args, 2)?;
                let a = self.num_arg(&args[0], &Ty::Float)?;
                let b = self.num_arg(&args[1], &Ty::Float)?;
                Val::copy(Ty::Float, quote!(rng.range_f64(#a, #b)))
            }
            "rpc_id" => {
                self.no_init(name, nsp)?;
                self.arity(name, nsp, args, 0)?;
                Val::copy(Ty::Uint, quote!(ctx.header.rpc_id))
            }
            "get_rpc_header" => {
                self.no_init(name, nsp)?;
                self.arity(name, nsp, args, 1)?;
                let (field, fsp) = self.literal_name(
                    &args[0],
                    "a header field name",
                    "e.g. get_rpc_header('session_id')",
                )?;
                if !HEADER_FIELDS.iter().any(|(n, _)| *n == field) {
                    return Err(self.unknown_header(&field, fsp));
                }
                let f = format_ident!("{}", field);
                Val::copy(Ty::Uint, quote!(u64::from(ctx.header.#f)))
            }
            "get_metadata" => {
                self.no_init(name, nsp)?;
                self.arity(name, nsp, args, 1)?;
                let k = self.expr(&args[0], Some(&Ty::Str))?;
                self.check_fits(&k, &Ty::Str, args[0].span)?;
                let ks = self.slice(&k);
                let opt = Ty::Opt(Box::new(Ty::Str));
                if self.writes.contains(&Place::Meta) {
                    Val {
                        ty: opt,
                        ts: quote!(ctx.metadata.get(#ks).map(<[u8]>::to_vec)),
                        owned: true,
                    }
                } else {
                    Val {
                        ty: opt,
                        ts: quote!(ctx.metadata.get(#ks)),
                        owned: false,
                    }
                }
            }
            "set" | "delete" | "set_metadata" | "set_rpc_header" | "send" | "drop" => {
                return Err(self.err(
                    nsp,
                    format!("type mismatch: {name}(..) has no value"),
                    "call it as a statement on its own line",
                ))
            }
            "err" => {
                return Err(self.err(
                    nsp,
                    "err(..) outside send",
                    "answer the caller with send(err('..'), Up)",
                ))
            }
            _ => {
                return Err(self.err(
                    nsp,
                    format!("unknown function `{name}`"),
                    format!("built-ins: {BUILTINS}"),
                ))
            }
        })
    }
}

fn kind_word(t: &Ty) -> &'static str {
    match t {
        Ty::Map(..) => "map",
        Ty::Vec(..) => "vec",
        _ => "value",
    }
}

fn int_lit(n: i64) -> TokenStream {
    if n < 0 {
        let lit = Literal::i64_suffixed(n.unsigned_abs() as i64);
        if n == i64::MIN {
            quote!(i64::MIN)
        } else {
            quote!(-#lit)
        }
    } else {
        let lit = Literal::i64_suffixed(n);
        quote!(#lit)
    }
}

/// Element-language type of a proto field kind.
pub fn field_ty(kind: Kind) -> Ty {
    match kind {
        Kind::Bool => Ty::Bool,
        Kind::I32 | Kind::I64 | Kind::Enum => Ty::Int,
        Kind::U32 | Kind::U64 => Ty::Uint,
        Kind::F32 | Kind::F64 => Ty::Float,
        Kind::Str | Kind::Bytes | Kind::Message(_) => Ty::Str,
    }
}

/// Rust identifier text of a field accessor (keywords get a trailing `_`).
pub fn field_ident_str(name: &str) -> String {
    if is_keyword(name) {
        format!("{name}_")
    } else {
        name.to_string()
    }
}

/// Identifier of a handler local in generated code (`l_` prefix: never collides with
/// pattern bindings `b_*`, temporaries `__*` or the handler's parameters).
pub fn local_ident(name: &str) -> proc_macro2::Ident {
    format_ident!("l_{}", name)
}

/// Identifier of a state variable (a field of the element struct).
pub fn state_ident(name: &str) -> proc_macro2::Ident {
    format_ident!("{}", field_ident_str(name))
}

/// Rust keywords, and names of generated view methods, that fields cannot use as is.
pub fn is_keyword(s: &str) -> bool {
    is_rust_keyword(s)
        || matches!(
            s,
            // Methods of generated views and messages:
            "len"
                | "is_empty"
                | "new_checked"
                | "as_bytes"
                | "as_view"
                | "decode"
                | "encode"
                | "encoded_len"
                | "from_bytes"
        )
}

/// Rust keywords (strict and reserved, every edition): not usable as identifiers.
pub fn is_rust_keyword(s: &str) -> bool {
    matches!(
        s,
        "as" | "break"
            | "const"
            | "continue"
            | "crate"
            | "else"
            | "enum"
            | "extern"
            | "false"
            | "fn"
            | "for"
            | "if"
            | "impl"
            | "in"
            | "let"
            | "loop"
            | "match"
            | "mod"
            | "move"
            | "mut"
            | "pub"
            | "ref"
            | "return"
            | "self"
            | "Self"
            | "static"
            | "struct"
            | "super"
            | "trait"
            | "true"
            | "type"
            | "unsafe"
            | "use"
            | "where"
            | "while"
            | "async"
            | "await"
            | "dyn"
            | "abstract"
            | "become"
            | "box"
            | "do"
            | "final"
            | "macro"
            | "override"
            | "priv"
            | "typeof"
            | "unsized"
            | "virtual"
            | "yield"
            | "try"
            | "gen"
            | "union"
    )
}

/// Places written by `body` (syntactic, conservative).
fn collect_writes(body: &[Stmt], l: &Lowerer<'_>, out: &mut HashSet<Place>) {
    for s in body {
        match &s.kind {
            StmtKind::Assign { target, .. } => {
                if l.el.var(target).is_some() {
                    out.insert(Place::State(target.clone()));
                }
            }
            StmtKind::AssignPair { targets, .. } => {
                for (t, _) in targets {
                    if l.el.var(t).is_some() {
                        out.insert(Place::State(t.clone()));
                    }
                }
            }
            StmtKind::Expr(e) => {
                if let ExprKind::Call { name, args, .. } = &e.kind {
                    match (name.as_str(), args.first().map(|a| &a.kind)) {
                        ("set" | "delete", Some(ExprKind::Name(n))) => {
                            if Some(n) == l.rpc_name.as_ref() {
                                out.insert(Place::Rpc);
                            } else {
                                out.insert(Place::State(n.clone()));
                            }
                        }
                        ("set_metadata", _) => {
                            out.insert(Place::Meta);
                        }
                        _ => {}
                    }
                }
            }
            StmtKind::Match { arms, .. } => {
                for a in arms {
                    collect_writes(&a.body, l, out);
                }
            }
            StmtKind::Foreach { body, .. } => collect_writes(body, l, out),
            StmtKind::Pass => {}
        }
    }
}

fn same_key(a: &Expr, b: &Expr) -> bool {
    match (&a.kind, &b.kind) {
        (ExprKind::Name(x), ExprKind::Name(y)) | (ExprKind::Str(x), ExprKind::Str(y)) => x == y,
        (ExprKind::Int(x), ExprKind::Int(y)) => x == y,
        _ => false,
    }
}

fn count_name_expr(e: &Expr, n: &str) -> usize {
    match &e.kind {
        ExprKind::Name(x) => usize::from(x == n),
        ExprKind::Call { args, .. } => args.iter().map(|a| count_name_expr(a, n)).sum(),
        ExprKind::Binary(_, a, b) | ExprKind::Pair(a, b) => {
            count_name_expr(a, n) + count_name_expr(b, n)
        }
        ExprKind::Neg(a) | ExprKind::Not(a) => count_name_expr(a, n),
        ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Str(_) | ExprKind::Bool(_) => 0,
    }
}

/// Occurrences of name `n` anywhere in `body` (targets included).
fn count_name_stmts(body: &[Stmt], n: &str) -> usize {
    body.iter()
        .map(|s| match &s.kind {
            StmtKind::Pass => 0,
            StmtKind::Expr(e) => count_name_expr(e, n),
            StmtKind::Assign { target, value, .. } => {
                usize::from(target == n) + count_name_expr(value, n)
            }
            StmtKind::AssignPair { targets, value } => {
                targets.iter().filter(|(t, _)| t == n).count() + count_name_expr(value, n)
            }
            StmtKind::Match { scrutinee, arms } => {
                count_name_expr(scrutinee, n)
                    + arms
                        .iter()
                        .map(|a| count_name_stmts(&a.body, n))
                        .sum::<usize>()
            }
            StmtKind::Foreach {
                coll, var, body, ..
            } => count_name_expr(coll, n) + usize::from(var == n) + count_name_stmts(body, n),
        })
        .sum()
}

/// `set(m, key, v)` statements in `body` whose `v` does not mention `m`.
fn count_slot_sets(body: &[Stmt], m: &str, key: &Expr) -> usize {
    body.iter()
        .map(|s| match &s.kind {
            StmtKind::Expr(Expr {
                kind: ExprKind::Call { name, args, .. },
                ..
            }) if name == "set" => match args.as_slice() {
                [Expr {
                    kind: ExprKind::Name(x),
                    ..
                }, k, v]
                    if x == m && same_key(k, key) && count_name_expr(v, m) == 0 =>
                {
                    1
                }
                _ => 0,
            },
            StmtKind::Match { arms, .. } => {
                arms.iter().map(|a| count_slot_sets(&a.body, m, key)).sum()
            }
            StmtKind::Foreach { body, .. } => count_slot_sets(body, m, key),
            _ => 0,
        })
        .sum()
}

fn count_assigns(body: &[Stmt], weight: usize, out: &mut HashMap<String, usize>) {
    for s in body {
        match &s.kind {
            StmtKind::Assign { target, .. } => *out.entry(target.clone()).or_default() += weight,
            StmtKind::AssignPair { targets, .. } => {
                for (t, _) in targets {
                    *out.entry(t.clone()).or_default() += weight;
                }
            }
            StmtKind::Match { arms, .. } => {
                for a in arms {
                    count_assigns(&a.body, weight, out);
                }
            }
            StmtKind::Foreach { body, .. } => count_assigns(body, 2, out),
            StmtKind::Expr(_) | StmtKind::Pass => {}
        }
    }
}
