//! The service spec language (`*.spec`): which proto and service, per-method transport
//! in the seed's notation, element chains per side, element files, and which element
//! state comes from runtime config. Parsing only; resolution happens in `check`.
//!
//! ```text
//! proto "kv.proto"                 # path relative to the spec
//! service KvService                # a service of that proto (or pkg.KvService)
//! module kv                        # optional: generated module name (default: spec file stem)
//! element firewall "elements/firewall.appnet"   # optional: default elements/NAME.appnet
//!
//! transport:
//!     get => unreliable()
//!     set => reliable() -> ordered()
//!
//! chain:
//!     client: session_tracker()                    # every method, client side
//!     server: firewall() -> session_tracker()       # every method, server side
//!     server set: logging()                         # appended for `set` only
//!
//! config firewall.rules            # loaded from the pipeline's `Tables`, not init()
//! ```

use std::path::PathBuf;

use crate::diag::{Diag, Source, Span};
use crate::lexer::{Cursor, Tok};

/// A name and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Named {
    /// Text.
    pub name: String,
    /// Where.
    pub span: Span,
}

/// Which end of the RPC a chain runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    /// In the caller's dataplane.
    Client,
    /// In the callee's dataplane.
    Server,
}

impl Side {
    /// `client` / `server`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Server => "server",
        }
    }
}

/// Transport written for one method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `unreliable()`
    Unreliable,
    /// `reliable()`
    Reliable,
    /// `reliable() -> ordered()`
    ReliableOrdered,
}

/// `method => transport`
#[derive(Debug, Clone)]
pub struct TransportEntry {
    /// Method as written.
    pub method: Named,
    /// Class.
    pub class: Transport,
}

/// `side [methods]: a() -> b()`
#[derive(Debug, Clone)]
pub struct ChainLine {
    /// Side.
    pub side: Side,
    /// Named methods; empty = every method.
    pub methods: Vec<Named>,
    /// Elements in order.
    pub elements: Vec<Named>,
}

/// `config element.var`
#[derive(Debug, Clone)]
pub struct ConfigDecl {
    /// Element.
    pub element: Named,
    /// State variable.
    pub var: Named,
}

/// A parsed spec.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Its source.
    pub src: Source,
    /// Directory relative paths resolve against.
    pub dir: PathBuf,
    /// `proto "file"`.
    pub proto: Named,
    /// `service Name`.
    pub service: Named,
    /// `module name`.
    pub module: Option<Named>,
    /// `element name "path"`.
    pub elements: Vec<(Named, Named)>,
    /// `transport:` entries.
    pub transport: Vec<TransportEntry>,
    /// `chain:` lines.
    pub chains: Vec<ChainLine>,
    /// `config` lines.
    pub configs: Vec<ConfigDecl>,
}

/// Parses a spec file.
pub fn parse_spec(src: &Source) -> Result<Spec, Diag> {
    let mut c = Cursor::new(src)?;
    let mut proto = None;
    let mut service = None;
    let mut module = None;
    let mut elements = Vec::new();
    let mut transport = Vec::new();
    let mut chains = Vec::new();
    let mut configs = Vec::new();
    const TOP: &str = "a spec is made of `proto \"file\"`, `service Name`, `module name`, `element name \"file\"`, `transport:`, `chain:` and `config element.var` lines";
    loop {
        match c.peek().tok.clone() {
            Tok::Eof => break,
            Tok::Newline => {
                c.bump();
            }
            Tok::Ident(k) => {
                let kw = c.bump().span;
                match k.as_str() {
                    "proto" => {
                        let (p, sp) =
                            c.expect_str("a quoted .proto path", "e.g. proto \"kv.proto\"")?;
                        set_once(src, &mut proto, Named { name: p, span: sp }, kw, "proto")?;
                        c.expect_newline("one declaration per line")?;
                    }
                    "service" => {
                        let n = dotted(&mut c)?;
                        set_once(src, &mut service, n, kw, "service")?;
                        c.expect_newline("one declaration per line")?;
                    }
                    "module" => {
                        let (n, sp) = c.expect_ident("a module name", "e.g. module kv")?;
                        set_once(src, &mut module, Named { name: n, span: sp }, kw, "module")?;
                        c.expect_newline("one declaration per line")?;
                    }
                    "element" => {
                        let (n, sp) = c.expect_ident(
                            "an element name",
                            "e.g. element firewall \"elements/firewall.appnet\"",
                        )?;
                        let (p, psp) = c.expect_str(
                            "a quoted .appnet path",
                            "e.g. element firewall \"elements/firewall.appnet\"",
                        )?;
                        elements.push((Named { name: n, span: sp }, Named { name: p, span: psp }));
                        c.expect_newline("one declaration per line")?;
                    }
                    "config" => {
                        let (e, esp) =
                            c.expect_ident("an element name", "e.g. config firewall.rules")?;
                        c.expect_punct(".", "e.g. config firewall.rules")?;
                        let (v, vsp) =
                            c.expect_ident("a state variable", "e.g. config firewall.rules")?;
                        configs.push(ConfigDecl {
                            element: Named { name: e, span: esp },
                            var: Named { name: v, span: vsp },
                        });
                        c.expect_newline("one declaration per line")?;
                    }
                    "transport" => {
                        c.expect_punct(
                            ":",
                            "write `transport:` then one `method => class` per indented line",
                        )?;
                        c.expect_block_start("write one `method => class` per indented line")?;
                        while !block_end(&mut c) {
                            transport.push(transport_line(&mut c)?);
                        }
                    }
                    "chain" => {
                        c.expect_punct(":", "write `chain:` then one `side [methods]: a() -> b()` per indented line")?;
                        c.expect_block_start(
                            "write one `client: a() -> b()` or `server get: a()` per indented line",
                        )?;
                        while !block_end(&mut c) {
                            chains.push(chain_line(&mut c)?);
                        }
                    }
                    _ => {
                        return Err(Diag::new(
                            src,
                            kw,
                            format!("unknown spec declaration `{k}`"),
                            TOP,
                        ))
                    }
                }
            }
            _ => return Err(c.unexpected("a spec declaration", TOP)),
        }
    }
    let start = Span::new(0, 0);
    let proto = proto.ok_or_else(|| {
        Diag::new(
            src,
            start,
            "the spec names no proto file",
            "add `proto \"service.proto\"`",
        )
    })?;
    let service = service.ok_or_else(|| {
        Diag::new(
            src,
            start,
            "the spec names no service",
            "add `service Name`",
        )
    })?;
    let dir = src.path.parent().map(PathBuf::from).unwrap_or_default();
    Ok(Spec {
        src: src.clone(),
        dir,
        proto,
        service,
        module,
        elements,
        transport,
        chains,
        configs,
    })
}

fn set_once(
    src: &Source,
    slot: &mut Option<Named>,
    v: Named,
    kw: Span,
    what: &str,
) -> Result<(), Diag> {
    if slot.is_some() {
        return Err(Diag::new(
            src,
            kw,
            format!("`{what}` given twice"),
            format!("a spec has one `{what}` line"),
        ));
    }
    *slot = Some(v);
    Ok(())
}

fn dotted(c: &mut Cursor<'_>) -> Result<Named, Diag> {
    let (mut n, mut sp) = c.expect_ident("a service name", "e.g. service KvService")?;
    while c.eat_punct(".") {
        let (m, msp) = c.expect_ident("a name", "e.g. service kv.KvService")?;
        n.push('.');
        n.push_str(&m);
        sp = sp.to(msp);
    }
    Ok(Named { name: n, span: sp })
}

/// Skips blank lines; consumes the block's DEDENT and returns `true` at its end.
fn block_end(c: &mut Cursor<'_>) -> bool {
    loop {
        match c.peek().tok {
            Tok::Newline => {
                c.bump();
            }
            Tok::Dedent => {
                c.bump();
                return true;
            }
            Tok::Eof => return true,
            _ => return false,
        }
    }
}

/// `name()`; arguments are not supported.
fn call(c: &mut Cursor<'_>, what: &str, hint: &str) -> Result<Named, Diag> {
    let (n, sp) = c.expect_ident(what, hint)?;
    c.expect_punct("(", hint)?;
    if !c.is_punct(")") {
        return Err(Diag::new(
            c.src,
            c.peek().span,
            "unsupported construct: arguments in the spec",
            "write the call with empty parentheses; element parameters come from `config element.var`",
        ));
    }
    let end = c.expect_punct(")", hint)?;
    Ok(Named {
        name: n,
        span: sp.to(end),
    })
}

fn transport_line(c: &mut Cursor<'_>) -> Result<TransportEntry, Diag> {
    const HINT: &str = "a transport is `unreliable()`, `reliable()` or `reliable() -> ordered()`";
    let (m, msp) = c.expect_ident("a method name", "e.g. get => unreliable()")?;
    c.expect_punct("=>", "e.g. get => unreliable()")?;
    let first = call(c, "a transport", HINT)?;
    let mut parts = vec![first];
    while c.eat_punct("->") {
        parts.push(call(c, "a transport", HINT)?);
    }
    c.expect_newline("one method per line")?;
    let names: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
    let class = match names.as_slice() {
        ["unreliable"] => Transport::Unreliable,
        ["reliable"] => Transport::Reliable,
        ["reliable", "ordered"] => Transport::ReliableOrdered,
        _ => {
            let bad = parts
                .iter()
                .find(|p| !matches!(p.name.as_str(), "unreliable" | "reliable" | "ordered"))
                .or(parts.last())
                .map_or(msp, |p| p.span);
            return Err(Diag::new(
                c.src,
                bad,
                format!("unsupported transport `{}`", names.join("() -> ") + "()"),
                HINT,
            ));
        }
    };
    Ok(TransportEntry {
        method: Named { name: m, span: msp },
        class,
    })
}

fn chain_line(c: &mut Cursor<'_>) -> Result<ChainLine, Diag> {
    const HINT: &str = "a chain line is `client: a() -> b()` or `server get, set: a()`";
    let (s, ssp) = c.expect_ident("`client` or `server`", HINT)?;
    let side = match s.as_str() {
        "client" => Side::Client,
        "server" => Side::Server,
        _ => return Err(Diag::new(c.src, ssp, format!("unknown side `{s}`"), HINT)),
    };
    let mut methods = Vec::new();
    while !c.is_punct(":") {
        let (m, msp) = c.expect_ident("a method name or `:`", HINT)?;
        methods.push(Named { name: m, span: msp });
        if !c.eat_punct(",") {
            break;
        }
    }
    c.expect_punct(":", HINT)?;
    let mut elements = vec![call(c, "an element", HINT)?];
    while c.eat_punct("->") {
        elements.push(call(c, "an element", HINT)?);
    }
    c.expect_newline("one chain per line")?;
    Ok(ChainLine {
        side,
        methods,
        elements,
    })
}
