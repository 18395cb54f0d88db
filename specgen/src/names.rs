//! The name pass of the checker: computes every Rust identifier the generated module
//! will contain that comes from the spec, the .proto or the elements (with the very
//! functions `codegen` names them with), and rejects, with a located [`Diag`], any that
//! is not a usable identifier or that collides with another generated name, with an item
//! the module always defines (`codegen::MODULE_ITEMS`) or with a std name the generated
//! code uses unqualified (`codegen::IMPORTED_NAMES`). Must not generate code, and must
//! not accept anything that `codegen` would then turn into Rust that does not compile.
//!
//! Reject, not mangle. Fields already mangle Rust keywords (`type` becomes `type_`),
//! and that stays: it is how a proto written for other languages gets a usable
//! accessor, and existing users call those accessors (two fields that collide after
//! that mangling, `type` and `type_`, never get here: protox rejects their equal JSON
//! names; the check below is a backstop). Nearly everything this pass adds is a case
//! where the generated module did not compile, so no user depends on its names, and
//! mangling one side of a collision (`GetView` into `GetView_`, or the second
//! `get_into`) would hand out names nobody can guess from the .proto and that change
//! when an unrelated message is added. A diagnostic on the declaration that asks for a
//! rename is clearer, and keeps generated names a pure function of one declaration.
//! Three rejections are stricter than "does not compile", on purpose: an rpc `ALL`
//! compiled but its variant hid `Method::ALL`; a message `Box`, `String` or `Vec`
//! compiled only while no field made the generated code use that std type; an element
//! named like a local of the pipelines' `new` (`init`, `tables`, `shared`) compiled
//! only when it came last. Each would break on an unrelated edit of the spec.

use std::collections::HashMap;

use crate::codegen::{self, elements, messages, service, Namespace};
use crate::diag::{Diag, Error, Result, Source, Span};
use crate::lower::{field_ident_str, is_rust_keyword};
use crate::model::ElementInfo;
use crate::proto::{Loc, Schema};
use crate::spec::Spec;

/// Where a name comes from.
#[derive(Debug, Clone)]
struct Origin {
    /// `message `GetView``, `the view type generated for message `Get``.
    what: String,
    /// Where to point; `None` for names the module has whatever the spec says.
    at: Option<(Source, Span)>,
    /// Declared under exactly this name (not derived from another declaration's).
    primary: bool,
    /// How to fix it when this side is blamed.
    hint: String,
}

impl Origin {
    fn fixed(what: String) -> Self {
        Origin {
            what,
            at: None,
            primary: true,
            hint: String::new(),
        }
    }
}

/// One Rust scope: names per namespace.
#[derive(Debug, Default)]
struct Scope {
    names: HashMap<(Namespace, String), Origin>,
}

impl Scope {
    fn add(&mut self, ns: Namespace, name: &str, origin: Origin) -> Result<()> {
        if let Some(prev) = self.names.get(&(ns, name.to_string())) {
            return Err(collision(name, prev, &origin));
        }
        self.names.insert((ns, name.to_string()), origin);
        Ok(())
    }

    fn fixed(&mut self, ns: Namespace, names: &[&str], what: impl Fn(&str) -> String) {
        for n in names {
            self.names
                .insert((ns, (*n).to_string()), Origin::fixed(what(n)));
        }
    }
}

/// The diagnostic of `new` colliding with `prev` on `name`. It points at a declaration
/// that carries the name literally when there is one (message `GetView`, not the
/// message `Get` whose view is `GetView`), else at the later declaration.
fn collision(name: &str, prev: &Origin, new: &Origin) -> Error {
    let (blamed, other) = if prev.primary && !new.primary && prev.at.is_some() {
        (prev, new)
    } else {
        (new, prev)
    };
    let (src, span) = match blamed.at.clone().or_else(|| other.at.clone()) {
        Some(at) => at,
        None => {
            return Error::Usage(format!(
                "internal error: `{name}` is generated twice ({}; {})",
                blamed.what, other.what
            ))
        }
    };
    let hint = if blamed.at.is_some() {
        &blamed.hint
    } else {
        &other.hint
    };
    Diag::new(
        &src,
        span,
        format!("{} collides with {}", blamed.what, other.what),
        hint.clone(),
    )
    .label(format!("generates `{name}`"))
    .into()
}

/// Whether `s` can name a Rust item as is.
fn is_ident(s: &str) -> bool {
    let mut cs = s.chars();
    let first_ok = cs
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    first_ok && cs.all(|c| c.is_ascii_alphanumeric() || c == '_') && s != "_" && !is_rust_keyword(s)
}

/// Rejects `name` (generated for `origin`) unless it is a usable identifier.
fn ident(name: &str, origin: &Origin) -> Result<()> {
    if is_ident(name) {
        return Ok(());
    }
    let why = if name.is_empty() {
        "an empty Rust name".to_string()
    } else if is_rust_keyword(name) {
        format!("`{name}`, a Rust keyword")
    } else {
        format!("`{name}`, which is not a Rust identifier")
    };
    let Some((src, span)) = origin.at.clone() else {
        return Err(Error::Usage(format!(
            "internal error: {} generates {why}",
            origin.what
        )));
    };
    Err(Diag::new(
        &src,
        span,
        format!("{} generates {why}", origin.what),
        origin.hint.clone(),
    )
    .label("here")
    .into())
}

/// Names and spans for one spec.
struct Ctx<'a> {
    spec: &'a Spec,
    schema: &'a Schema,
}

impl Ctx<'_> {
    /// A proto declaration's place, or the spec's `proto` line when protox recorded none.
    fn proto_at(&self, loc: &Option<Loc>) -> Option<(Source, Span)> {
        Some(match loc {
            Some(l) => (l.source.clone(), l.span),
            None => (self.spec.src.clone(), self.spec.proto.span),
        })
    }

    fn service_at(&self) -> Option<(Source, Span)> {
        match &self.schema.service.loc {
            Some(l) => Some((l.source.clone(), l.span)),
            None => Some((self.spec.src.clone(), self.spec.service.span)),
        }
    }

    /// The module scope: fixed items, imported names, the server trait and every
    /// reachable message's types.
    fn module_scope(&self) -> Result<Scope> {
        let mut module = Scope::default();
        for (name, ns) in codegen::MODULE_ITEMS {
            module.names.insert(
                (*ns, (*name).to_string()),
                Origin::fixed(format!(
                    "`{name}`, which specgen generates in every service module"
                )),
            );
        }
        module.fixed(Namespace::Type, codegen::IMPORTED_NAMES, |n| {
            format!("`{n}`, which the generated code uses from std unqualified")
        });

        let svc = &self.schema.service;
        let trait_name = service::trait_name(svc);
        let origin = Origin {
            what: format!("service `{}` (the server trait)", svc.name),
            at: self.service_at(),
            primary: true,
            hint: "rename the service in the .proto".into(),
        };
        ident(&trait_name, &origin)?;
        if trait_name == codegen::DISPATCH_GENERIC {
            let o = Origin::fixed(format!(
                "the type parameter `{trait_name}` of the generated `dispatch`"
            ));
            return Err(collision(&trait_name, &o, &origin));
        }
        module.add(Namespace::Type, &trait_name, origin)?;

        let reachable = codegen::reachable_in(self.schema);
        let hint =
            "rename the message: every message `M` also generates `MView`, `MMut` and `MRef`";
        for &mi in &reachable {
            let Some(m) = self.schema.messages.get(mi) else {
                continue;
            };
            let name = messages::type_name(m, "");
            let what = if name == m.name {
                format!("message `{}`", m.name)
            } else {
                format!("message `{}` (Rust type `{name}`)", m.name)
            };
            let origin = Origin {
                what,
                at: self.proto_at(&m.loc),
                primary: name == m.name,
                hint: hint.into(),
            };
            ident(&name, &origin)?;
            module.add(Namespace::Type, &name, origin)?;
        }
        for &mi in &reachable {
            let Some(m) = self.schema.messages.get(mi) else {
                continue;
            };
            for (suffix, kind) in messages::MESSAGE_TYPES.iter().skip(1) {
                let name = messages::type_name(m, suffix);
                let origin = Origin {
                    what: format!("{kind} generated for message `{}`", m.name),
                    at: self.proto_at(&m.loc),
                    primary: false,
                    hint: hint.into(),
                };
                module.add(Namespace::Type, &name, origin)?;
            }
        }
        Ok(module)
    }

    /// Methods: snake_case names, `Method` variants, server trait methods.
    fn methods(&self) -> Result<()> {
        let methods = &self.schema.service.methods;
        let mut snakes = Scope::default();
        let mut variants = Scope::default();
        variants.fixed(Namespace::Type, service::METHOD_MEMBERS, |n| {
            format!("`Method::{n}`, which the generated `Method` enum has")
        });
        let mut trait_fns = Scope::default();
        for m in methods {
            let at = self.proto_at(&m.loc);
            let origin = Origin {
                what: format!("rpc `{}` (snake_case `{}`)", m.name, m.snake),
                at: at.clone(),
                primary: true,
                hint: "specs, element handlers and generated functions name a method by its snake_case name; rename one of the rpcs".into(),
            };
            snakes.add(Namespace::Value, &m.snake, origin)?;
            let variant = service::variant_name(m);
            let origin = Origin {
                what: format!("the `Method` variant `{variant}` of rpc `{}`", m.name),
                at: at.clone(),
                primary: variant == m.name,
                hint: "rename the rpc".into(),
            };
            ident(&variant, &origin)?;
            variants.add(Namespace::Type, &variant, origin)?;
        }
        // Handlers first, so that `GetInto`'s `get_into` is blamed, not `Get`'s.
        for (k, kind) in [
            "the server trait method",
            "the response-writing trait method",
        ]
        .iter()
        .enumerate()
        {
            for m in methods {
                let fns = service::trait_fn_names(m);
                let Some(name) = fns.get(k) else { continue };
                let origin = Origin {
                    what: format!("{kind} `{name}` of rpc `{}`", m.name),
                    at: self.proto_at(&m.loc),
                    primary: k == 0,
                    hint:
                        "rename the rpc: each rpc `Get` gives the server trait `get` and `get_into`"
                            .into(),
                };
                ident(name, &origin)?;
                trait_fns.add(Namespace::Value, name, origin)?;
            }
        }
        Ok(())
    }

    /// Fields of every reachable message: struct fields, view and mutable-view members.
    fn fields(&self) -> Result<()> {
        for mi in codegen::reachable_in(self.schema) {
            let Some(m) = self.schema.messages.get(mi) else {
                continue;
            };
            let mut fields = Scope::default();
            let mut view = Scope::default();
            let mut mutv = Scope::default();
            let view_t = messages::type_name(m, "View");
            let mut_t = messages::type_name(m, "Mut");
            view.fixed(Namespace::Value, messages::VIEW_MEMBERS, |n| {
                format!("`{view_t}::{n}`, which every view has")
            });
            mutv.fixed(Namespace::Value, messages::MUT_MEMBERS, |n| {
                format!("`{mut_t}::{n}`, which every mutable view has")
            });
            let hint =
                "rename the field (fields keep their numbers, so the wire format does not change)";
            let field_origin = |f: &crate::proto::Field, what: String, primary: bool| Origin {
                what,
                at: self.proto_at(&f.loc),
                primary,
                hint: hint.into(),
            };
            for f in &m.fields {
                let acc = messages::accessor_name(&f.name);
                let what = if acc == f.name {
                    format!("field `{}` of message `{}`", f.name, m.name)
                } else {
                    format!(
                        "field `{}` of message `{}` (accessor `{acc}`: Rust keywords and view method names get a trailing `_`)",
                        f.name, m.name
                    )
                };
                let origin = field_origin(f, what, acc == f.name);
                ident(&acc, &origin)?;
                fields.add(Namespace::Value, &acc, origin.clone())?;
                if messages::has_view_accessor(f) {
                    view.add(Namespace::Value, &acc, origin.clone())?;
                }
                if messages::has_mut_accessor(f) {
                    mutv.add(Namespace::Value, &acc, origin)?;
                }
            }
            for f in &m.fields {
                if messages::has_raw(f) {
                    let what = format!(
                        "the raw-slot accessor `{view_t}::{}` of field `{}`",
                        messages::raw_name(&f.name),
                        f.name
                    );
                    view.add(
                        Namespace::Value,
                        &messages::raw_name(&f.name),
                        field_origin(f, what, false),
                    )?;
                }
                if messages::has_setter(f) {
                    let what = format!(
                        "the setter `{mut_t}::{}` of field `{}`",
                        messages::setter_name(&f.name),
                        f.name
                    );
                    mutv.add(
                        Namespace::Value,
                        &messages::setter_name(&f.name),
                        field_origin(f, what, false),
                    )?;
                }
            }
        }
        Ok(())
    }
}

/// Checks the names the .proto gives the generated module: the server trait, the
/// reachable messages and their fields, and the methods. Run right after loading the
/// schema (method names must be unique before the spec refers to them).
pub fn check_schema(spec: &Spec, schema: &Schema) -> Result<()> {
    let ctx = Ctx { spec, schema };
    ctx.methods()?;
    ctx.module_scope()?;
    ctx.fields()
}

/// The spec span that names element `name` (its `element` line, else its first use).
fn element_span(spec: &Spec, name: &str) -> Span {
    spec.elements
        .iter()
        .map(|(n, _)| n)
        .chain(spec.chains.iter().flat_map(|c| c.elements.iter()))
        .find(|n| n.name == name)
        .map_or(spec.service.span, |n| n.span)
}

/// Checks the names the elements give the generated module: their types next to the
/// messages' and the fixed items, their fields in the pipelines, their state fields and
/// the config `Tables` fields. Run once the elements are loaded and config is resolved.
pub fn check_elements(spec: &Spec, schema: &Schema, elements: &[ElementInfo]) -> Result<()> {
    let ctx = Ctx { spec, schema };
    let mut module = ctx.module_scope()?;
    let mut pipeline = Scope::default();
    pipeline.fixed(Namespace::Value, service::PIPELINE_RESERVED, |n| {
        format!("`{n}`, a field or a local of the generated pipelines")
    });
    let mut tables = Scope::default();
    for el in elements {
        let at = Some((spec.src.clone(), element_span(spec, &el.name)));
        let hint = "rename the element (its .appnet file, or declare `element other_name \"file.appnet\"`)";
        let (ty, shared) = elements::type_names(&el.name);
        for (name, kind) in [(ty, "the struct"), (shared, "the shared-state struct")] {
            let origin = Origin {
                what: format!("element `{}` ({kind} `{name}`)", el.name),
                at: at.clone(),
                primary: true,
                hint: hint.into(),
            };
            ident(&name, &origin)?;
            module.add(Namespace::Type, &name, origin)?;
        }
        let origin = Origin {
            what: format!(
                "element `{}` (the pipeline field `{}`)",
                el.name,
                field_ident_str(&el.name)
            ),
            at: at.clone(),
            primary: true,
            hint: hint.into(),
        };
        pipeline.add(Namespace::Value, &field_ident_str(&el.name), origin)?;

        let mut fields = Scope::default();
        let mut shared_fields = Scope::default();
        shared_fields.fixed(Namespace::Value, elements::SHARED_FIELDS, |n| {
            format!("`{n}`, a field of every element's shared-state struct")
        });
        for v in &el.vars {
            let name = field_ident_str(&v.name);
            let origin = Origin {
                what: if name == v.name {
                    format!("state `{}` of element `{}`", v.name, el.name)
                } else {
                    format!(
                        "state `{}` of element `{}` (field `{name}`: Rust keywords get a trailing `_`)",
                        v.name, el.name
                    )
                },
                at: Some((el.ast.src.clone(), v.span)),
                primary: name == v.name,
                hint: "rename the state variable".into(),
            };
            fields.add(Namespace::Value, &name, origin.clone())?;
            if v.strong {
                shared_fields.add(Namespace::Value, &name, origin)?;
            }
            if v.config {
                let tf = elements::table_field_name(&el.name, &v.name);
                let span = spec
                    .configs
                    .iter()
                    .find(|c| c.element.name == el.name && c.var.name == v.name)
                    .map_or(spec.service.span, |c| c.element.span.to(c.var.span));
                let origin = Origin {
                    what: format!(
                        "`config {}.{}` (the `Tables` field `{tf}`)",
                        el.name, v.name
                    ),
                    at: Some((spec.src.clone(), span)),
                    primary: true,
                    hint: "rename the element or the state variable".into(),
                };
                tables.add(Namespace::Value, &tf, origin)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        for ok in ["Get", "get_x", "_private", "x1", "GetView"] {
            assert!(is_ident(ok), "{ok}");
        }
        for bad in ["", "_", "Self", "type", "1a", "a-b", "é"] {
            assert!(!is_ident(bad), "{bad}");
        }
    }
}
