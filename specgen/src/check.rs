//! Resolves a spec into a [`Model`]: loads the proto and the element files, resolves
//! methods, transports, chains and config state, types element state, and lowers every
//! handler that some chain uses (which type-checks it and records field accesses).
//! Runs the name pass (`crate::names`) on the schema and on the elements, so that
//! colliding or unusable generated names are reported on their declaration.
//! Every error is a located [`Diag`]. Must not lay out messages or print code.

use std::collections::BTreeMap;
use std::path::Path;

use proc_macro2::TokenStream;

use crate::appnet::parse_element;
use crate::diag::{Diag, Error, Result, Source, Span};
use crate::lower::{Dir, Lowerer};
use crate::model::*;
use crate::proto::{self, snake};
use crate::spec::{parse_spec, Named, Side, Spec};
use crate::types::Ty;

/// Lowered code of one element.
#[derive(Debug, Clone)]
pub struct Lowered {
    /// Index into [`Model::elements`].
    pub element: usize,
    /// Body of `init`.
    pub init: TokenStream,
    /// `(dir, method index, body)` for every handler a chain uses.
    pub handlers: Vec<(Dir, usize, TokenStream)>,
}

/// Reads a file as a [`Source`] named `name`.
pub fn read_source(path: &Path, name: &str) -> Result<Source> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    Ok(Source::new(name, path, text))
}

/// Parses and resolves the spec at `path`, lowering every used handler.
pub fn check(path: &Path) -> Result<(Model, Vec<Lowered>)> {
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let src = read_source(path, &name)?;
    let spec = parse_spec(&src)?;
    resolve(spec)
}

fn diag(spec: &Spec, span: Span, msg: impl Into<String>, hint: impl Into<String>) -> Error {
    Diag::new(&spec.src, span, msg, hint).into()
}

fn line_of(spec: &Spec, span: Span) -> (usize, String) {
    let (line, _) = spec.src.line_col(span.start);
    let text = spec
        .src
        .text
        .lines()
        .nth(line.saturating_sub(1))
        .unwrap_or("")
        .trim()
        .to_string();
    (line, text)
}

fn resolve(spec: Spec) -> Result<(Model, Vec<Lowered>)> {
    let proto_path = spec.dir.join(&spec.proto.name);
    let schema = proto::load(
        &spec.src,
        &proto_path,
        spec.proto.span,
        &spec.service.name,
        spec.service.span,
    )?;
    crate::names::check_schema(&spec, &schema)?;
    let methods = &schema.service.methods;
    let method_list = methods
        .iter()
        .map(|m| m.snake.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let find_method = |n: &Named| -> Result<usize> {
        methods
            .iter()
            .position(|m| m.snake == n.name || m.name.eq_ignore_ascii_case(&n.name))
            .ok_or_else(|| {
                diag(
                    &spec,
                    n.span,
                    format!(
                        "unknown method `{}` in service `{}`",
                        n.name, schema.service.name
                    ),
                    format!("methods: {method_list}"),
                )
            })
    };

    // Module name.
    let module = match &spec.module {
        Some(m) => m.name.clone(),
        None => {
            let stem = spec
                .src
                .path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            snake(&stem.replace(['-', '.', ' '], "_"))
        }
    };
    if module.is_empty()
        || module.starts_with(|c: char| c.is_ascii_digit())
        || crate::lower::is_keyword(&module)
    {
        return Err(diag(
            &spec,
            Span::new(0, 0),
            format!("`{module}` is not a usable module name"),
            "add `module name` to the spec",
        ));
    }

    // Transport table.
    let mut transport: Vec<Option<(crate::spec::Transport, usize, String)>> =
        vec![None; methods.len()];
    let mut seen: Vec<Option<Span>> = vec![None; methods.len()];
    for t in &spec.transport {
        let mi = find_method(&t.method)?;
        if seen[mi].is_some() {
            let (line, _) = seen[mi]
                .map(|s| spec.src.line_col(s.start))
                .unwrap_or_default();
            return Err(diag(
                &spec,
                t.method.span,
                format!(
                    "duplicate method `{}` in the transport table",
                    t.method.name
                ),
                format!(
                    "`{}` already has a transport on line {line}; keep one",
                    methods[mi].snake
                ),
            ));
        }
        seen[mi] = Some(t.method.span);
        let (line, text) = line_of(&spec, t.method.span);
        transport[mi] = Some((t.class, line, text));
    }
    let mut transports = Vec::new();
    for (mi, t) in transport.into_iter().enumerate() {
        match t {
            Some(t) => transports.push(t),
            None => {
                return Err(diag(
                    &spec,
                    spec.service.span,
                    format!("method `{}` has no transport", methods[mi].snake),
                    format!(
                        "add `{} => unreliable()` (or reliable()) under `transport:`",
                        methods[mi].snake
                    ),
                ))
            }
        }
    }

    // Elements, in first-use order.
    let mut elements: Vec<ElementInfo> = Vec::new();
    let mut chains: BTreeMap<(Side, usize), Vec<ChainEntry>> = BTreeMap::new();
    for line in &spec.chains {
        let targets: Vec<usize> = if line.methods.is_empty() {
            (0..methods.len()).collect()
        } else {
            line.methods
                .iter()
                .map(&find_method)
                .collect::<Result<_>>()?
        };
        for el in &line.elements {
            let ei = match elements.iter().position(|e| e.name == el.name) {
                Some(i) => i,
                None => {
                    elements.push(load_element(&spec, el)?);
                    elements.len() - 1
                }
            };
            for &mi in &targets {
                let chain = chains.entry((line.side, mi)).or_default();
                if chain.iter().any(|c| c.element == ei) {
                    return Err(diag(
                        &spec,
                        el.span,
                        format!(
                            "element `{}` appears twice in the {} chain of `{}`",
                            el.name,
                            line.side.as_str(),
                            methods[mi].snake
                        ),
                        "an element runs once per chain",
                    ));
                }
                chain.push(ChainEntry {
                    element: ei,
                    line: line_of(&spec, el.span),
                });
            }
        }
    }
    for (decl, _) in &spec.elements {
        if !elements.iter().any(|e| e.name == decl.name) {
            return Err(diag(
                &spec,
                decl.span,
                format!("element `{}` is declared but used in no chain", decl.name),
                "add it to a chain or remove the line",
            ));
        }
    }

    // Config-loaded state.
    for c in &spec.configs {
        let Some(el) = elements.iter_mut().find(|e| e.name == c.element.name) else {
            let names: Vec<&str> = elements.iter().map(|e| e.name.as_str()).collect();
            return Err(diag(
                &spec,
                c.element.span,
                format!("unknown element `{}`", c.element.name),
                format!("elements in the chains: {}", names.join(", ")),
            ));
        };
        let Some(v) = el.vars.iter_mut().find(|v| v.name == c.var.name) else {
            let names: Vec<&str> = el.vars.iter().map(|v| v.name.as_str()).collect();
            return Err(diag(
                &spec,
                c.var.span,
                format!(
                    "unknown state name `{}` in element `{}`",
                    c.var.name, c.element.name
                ),
                format!(
                    "state of `{}`: {}",
                    c.element.name,
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ),
            ));
        };
        if v.config {
            return Err(diag(
                &spec,
                c.var.span,
                format!("`{}.{}` is configured twice", c.element.name, c.var.name),
                "keep one config line",
            ));
        }
        v.config = true;
    }

    crate::names::check_elements(&spec, &schema, &elements)?;

    // Lower handlers.
    let rt: TokenStream = quote::quote!(__rt);
    let mut accesses = Vec::new();
    let mut lowered = Vec::new();
    for (ei, el) in elements.iter().enumerate() {
        let mut used: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
        for ((side, mi), chain) in &chains {
            if chain.iter().any(|c| c.element == ei) {
                used.entry(*mi).or_default().push(side.as_str());
            }
        }
        let init = match &el.ast.init {
            Some(h) => Lowerer::new(
                el,
                &schema,
                &rt,
                Dir::Init,
                None,
                format!("{}.init", el.name),
            )
            .lower_handler(&h.body)?,
            None => TokenStream::new(),
        };
        let mut handlers = Vec::new();
        for (mi, sides) in used {
            let m = &methods[mi];
            for (dir, h, msg, what) in [
                (Dir::Req, &el.ast.req, m.input, "req"),
                (Dir::Resp, &el.ast.resp, m.output, "resp"),
            ] {
                let Some(h) = h else { continue };
                let by = format!("{}.{} on {} ({})", el.name, what, m.name, sides.join(", "));
                let mut l = Lowerer::new(el, &schema, &rt, dir, Some(msg), by);
                let body = l.lower_handler(&h.body)?;
                accesses.append(&mut l.accesses);
                handlers.push((dir, mi, body));
            }
        }
        lowered.push(Lowered {
            element: ei,
            init,
            handlers,
        });
    }
    let model = Model {
        spec,
        schema,
        module,
        elements,
        transport: transports,
        chains,
        accesses,
    };
    Ok((model, lowered))
}

fn load_element(spec: &Spec, el: &Named) -> Result<ElementInfo> {
    let declared = spec
        .elements
        .iter()
        .find(|(n, _)| n.name == el.name)
        .map(|(_, p)| p.name.clone());
    let rel = declared
        .clone()
        .unwrap_or_else(|| format!("elements/{}.appnet", el.name));
    let path = spec.dir.join(&rel);
    if !el
        .name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
        || crate::lower::is_keyword(&el.name)
    {
        return Err(diag(
            spec,
            el.span,
            format!("`{}` cannot name an element", el.name),
            "element names are snake_case identifiers",
        ));
    }
    if !path.is_file() {
        let mut known: Vec<String> = spec.elements.iter().map(|(n, _)| n.name.clone()).collect();
        if let Ok(rd) = std::fs::read_dir(spec.dir.join("elements")) {
            for e in rd.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "appnet") {
                    if let Some(s) = p.file_stem() {
                        known.push(s.to_string_lossy().into_owned());
                    }
                }
            }
        }
        known.sort();
        known.dedup();
        return Err(diag(
            spec,
            el.span,
            format!("unknown element `{}`", el.name),
            format!(
                "no file {rel}{}",
                if known.is_empty() {
                    String::new()
                } else {
                    format!("; known elements: {}", known.join(", "))
                }
            ),
        ));
    }
    let src = read_source(&path, &rel)?;
    let ast = parse_element(&el.name, &src)?;
    let mut vars: Vec<StateVar> = Vec::new();
    for d in &ast.state {
        if vars.iter().any(|v| v.name == d.name) {
            return Err(Diag::new(
                &src,
                d.span,
                format!("duplicate state variable `{}`", d.name),
                "rename one of them",
            )
            .into());
        }
        let ty = Ty::from_ast(&d.ty);
        check_state_type(&src, d.span, &d.name, &ty)?;
        let mut strong = false;
        let mut capacity = match ty {
            Ty::Vec(_) => DEFAULT_VEC_CAPACITY,
            _ => DEFAULT_MAP_CAPACITY,
        };
        for dec in &d.decorators {
            match (dec.name.as_str(), dec.arg.as_str()) {
                ("consistency", "strong") => strong = true,
                ("consistency", "weak") => strong = false,
                ("combiner", "LWW") => {}
                ("persistence", "false") => {}
                ("persistence", "true") => {
                    return Err(Diag::new(
                        &src,
                        dec.span,
                        "unsupported construct: @persistence(true)",
                        "element state lives in memory; load durable tables with `config element.var` instead",
                    )
                    .into())
                }
                ("capacity", n) if matches!(ty, Ty::Map(..) | Ty::Vec(..)) => match n.parse::<usize>() {
                    Ok(c) if c > 0 => capacity = c,
                    _ => return Err(Diag::new(&src, dec.span, "@capacity needs a positive number", "e.g. @capacity(1024)").into()),
                },
                _ => {
                    return Err(Diag::new(
                        &src,
                        dec.span,
                        format!("unsupported decorator @{}({})", dec.name, dec.arg),
                        "decorators: @consistency(strong|weak), @combiner(LWW), @persistence(false), @capacity(N) on Map/Vec",
                    )
                    .into())
                }
            }
        }
        vars.push(StateVar {
            name: d.name.clone(),
            span: d.span,
            ty,
            strong,
            capacity,
            config: false,
        });
    }
    Ok(ElementInfo {
        name: el.name.clone(),
        ast,
        vars,
    })
}

fn check_state_type(src: &Source, span: Span, name: &str, ty: &Ty) -> Result<()> {
    let bad = |what: &str| -> Error {
        Diag::new(src, span, format!("unsupported construct: `{name}` has {what}"), "state holds scalars, Copy pairs <A, B> of numbers/bools/Instants, and Map/Vec of those (no nesting)")
            .into()
    };
    let value_ok = |t: &Ty| t.is_scalar() || (matches!(t, Ty::Pair(..)) && t.is_copy());
    match ty {
        Ty::Map(k, v) => {
            if !matches!(**k, Ty::Int | Ty::Uint | Ty::Bool | Ty::Str | Ty::Instant) {
                return Err(bad(&format!("a Map key of type {}", k.name())));
            }
            if !value_ok(v) {
                return Err(bad(&format!("a Map value of type {}", v.name())));
            }
        }
        Ty::Vec(t) if !value_ok(t) => return Err(bad(&format!("a Vec item of type {}", t.name()))),
        Ty::Pair(..) if !ty.is_copy() => return Err(bad("a pair holding a string or collection")),
        _ => {}
    }
    Ok(())
}
