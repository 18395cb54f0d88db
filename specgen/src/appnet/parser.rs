//! Recursive-descent parser of AppNet element files (`state:`, `init():`, `req(rpc):`,
//! `resp(rpc):`, indentation blocks). Nesting is bounded so hostile input cannot
//! overflow the stack. Must not resolve names or types.

use super::ast::*;
use crate::diag::{Diag, Source, Span};
use crate::lexer::{Cursor, Tok};

/// Deepest expression/statement nesting accepted.
pub const MAX_DEPTH: usize = 48;

/// Parses an element file.
pub fn parse_element(name: &str, src: &Source) -> Result<Element, Diag> {
    let mut p = Parser {
        c: Cursor::new(src)?,
        depth: 0,
    };
    let mut el = Element {
        name: name.to_string(),
        src: src.clone(),
        state: Vec::new(),
        init: None,
        req: None,
        resp: None,
    };
    loop {
        match p.c.peek().tok.clone() {
            Tok::Eof => break,
            Tok::Newline => {
                p.c.bump();
            }
            Tok::Ident(k) if k == "state" => {
                let sp = p.c.bump().span;
                if !el.state.is_empty() {
                    return Err(Diag::new(
                        src,
                        sp,
                        "duplicate `state:` section",
                        "merge both into one `state:` section",
                    ));
                }
                p.c.expect_punct(
                    ":",
                    "write `state:` followed by indented `name: Type` lines",
                )?;
                el.state = p.state_block()?;
            }
            Tok::Ident(k) if k == "init" || k == "req" || k == "resp" => {
                let sp = p.c.bump().span;
                p.c.expect_punct("(", "a handler header looks like `req(rpc):`")?;
                let param = if k == "init" {
                    None
                } else {
                    Some(
                        p.c.expect_ident(
                            "a parameter name",
                            "a handler header looks like `req(rpc):`",
                        )?
                        .0,
                    )
                };
                p.c.expect_punct(")", "a handler header looks like `req(rpc):` or `init():`")?;
                p.c.expect_punct(":", "end the handler header with `:`")?;
                let body = p.block()?;
                let h = Some(Handler {
                    param,
                    body,
                    span: sp,
                });
                let slot = match k.as_str() {
                    "init" => &mut el.init,
                    "req" => &mut el.req,
                    _ => &mut el.resp,
                };
                if slot.is_some() {
                    return Err(Diag::new(
                        src,
                        sp,
                        format!("duplicate `{k}` handler"),
                        "keep one handler of each kind",
                    ));
                }
                *slot = h;
            }
            _ => return Err(p.c.unexpected(
                "a section (`state:`, `init():`, `req(rpc):` or `resp(rpc):`)",
                "an element file is made of the sections state:, init():, req(rpc): and resp(rpc):",
            )),
        }
    }
    Ok(el)
}

struct Parser<'s> {
    c: Cursor<'s>,
    depth: usize,
}

impl Parser<'_> {
    fn enter(&mut self, span: Span) -> Result<(), Diag> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Diag::new(
                self.c.src,
                span,
                "nested too deeply",
                format!("split the expression or block; at most {MAX_DEPTH} levels are accepted"),
            ));
        }
        Ok(())
    }

    fn state_block(&mut self) -> Result<Vec<StateDecl>, Diag> {
        self.c
            .expect_block_start("declare state variables on indented lines: `name: Type`")?;
        let mut out = Vec::new();
        let mut decorators = Vec::new();
        loop {
            match self.c.peek().tok.clone() {
                Tok::Dedent => {
                    self.c.bump();
                    break;
                }
                Tok::Eof => break,
                Tok::Newline => {
                    self.c.bump();
                }
                Tok::Punct("@") => {
                    let at = self.c.bump().span;
                    let (name, nsp) = self
                        .c
                        .expect_ident("a decorator name", "e.g. @consistency(strong)")?;
                    self.c
                        .expect_punct("(", "decorators take one argument: @consistency(strong)")?;
                    let arg = match self.c.bump().tok {
                        Tok::Ident(s) | Tok::Str(s) => s,
                        Tok::Int(n) => n.to_string(),
                        _ => {
                            return Err(Diag::new(
                                self.c.src,
                                at.to(nsp),
                                "decorator argument must be a name or a number",
                                "e.g. @consistency(strong), @capacity(1024)",
                            ))
                        }
                    };
                    let end = self.c.expect_punct(")", "close the decorator argument")?;
                    decorators.push(Decorator {
                        name,
                        arg,
                        span: at.to(end),
                    });
                    if matches!(self.c.peek().tok, Tok::Newline) {
                        self.c.bump();
                    }
                }
                Tok::Ident(name) if name == "pass" => {
                    self.c.bump();
                    self.c.expect_newline("`pass` stands alone on its line")?;
                }
                Tok::Ident(name) => {
                    let span = self.c.bump().span;
                    self.c.expect_punct(":", "declare state as `name: Type`")?;
                    let ty = self.ty()?;
                    self.c.expect_newline("one declaration per line")?;
                    out.push(StateDecl {
                        name,
                        span,
                        ty,
                        decorators: std::mem::take(&mut decorators),
                    });
                }
                _ => {
                    return Err(self.c.unexpected(
                        "a state declaration `name: Type`",
                        "declare state as `name: Type`",
                    ))
                }
            }
        }
        Ok(out)
    }

    fn ty(&mut self) -> Result<TypeExpr, Diag> {
        let here = self.c.peek().span;
        self.enter(here)?;
        let r = self.ty_inner();
        self.depth -= 1;
        r
    }

    fn ty_inner(&mut self) -> Result<TypeExpr, Diag> {
        const HINT: &str =
            "types are int, uint, float, string, bool, Instant, Map<K, V>, Vec<T> and pairs <A, B>";
        if self.c.eat_punct("<") {
            let a = self.ty()?;
            self.c.expect_punct(",", HINT)?;
            let b = self.ty()?;
            self.c.expect_punct(">", HINT)?;
            return Ok(TypeExpr::Pair(Box::new(a), Box::new(b)));
        }
        let (name, sp) = self.c.expect_ident("a type", HINT)?;
        Ok(match name.as_str() {
            "int" => TypeExpr::Int,
            "uint" => TypeExpr::Uint,
            "float" => TypeExpr::Float,
            "string" => TypeExpr::Str,
            "bool" => TypeExpr::Bool,
            "Instant" => TypeExpr::Instant,
            "Map" => {
                self.c.expect_punct("<", HINT)?;
                let k = self.ty()?;
                self.c.expect_punct(",", HINT)?;
                let v = self.ty()?;
                self.c.expect_punct(">", HINT)?;
                TypeExpr::Map(Box::new(k), Box::new(v))
            }
            "Vec" => {
                self.c.expect_punct("<", HINT)?;
                let t = self.ty()?;
                self.c.expect_punct(">", HINT)?;
                TypeExpr::Vec(Box::new(t))
            }
            _ => {
                return Err(Diag::new(
                    self.c.src,
                    sp,
                    format!("unknown type `{name}`"),
                    HINT,
                ))
            }
        })
    }

    /// `NEWLINE INDENT stmt+ DEDENT`
    fn block(&mut self) -> Result<Vec<Stmt>, Diag> {
        let here = self.c.peek().span;
        self.enter(here)?;
        self.c
            .expect_block_start("put the statements on the following lines, indented")?;
        let mut out = Vec::new();
        loop {
            match self.c.peek().tok {
                Tok::Dedent => {
                    self.c.bump();
                    break;
                }
                Tok::Eof => break,
                Tok::Newline => {
                    self.c.bump();
                }
                _ => out.push(self.stmt()?),
            }
        }
        self.depth -= 1;
        Ok(out)
    }

    fn line_span(&self, start: Span) -> Span {
        let text: &str = &self.c.src.text;
        let end = text
            .get(start.start..)
            .and_then(|r| r.find('\n'))
            .map_or(text.len(), |i| start.start + i);
        Span::new(start.start, end.max(start.end))
    }

    fn stmt(&mut self) -> Result<Stmt, Diag> {
        let first = self.c.peek().span;
        let span = self.line_span(first);
        let kind = match self.c.peek().tok.clone() {
            Tok::Ident(k) if k == "pass" => {
                self.c.bump();
                self.c.expect_newline("`pass` stands alone on its line")?;
                StmtKind::Pass
            }
            Tok::Ident(k) if k == "match" => {
                self.c.bump();
                let scrutinee = self.expr()?;
                self.c.expect_punct(
                    ":",
                    "end the match header with `:` and put the arms on indented lines",
                )?;
                let arms = self.arms()?;
                StmtKind::Match { scrutinee, arms }
            }
            Tok::Ident(k) if k == "foreach" => self.foreach()?,
            Tok::Ident(name) if matches!(self.c.peek_at(1).tok, Tok::Punct("=")) => {
                let target_span = self.c.bump().span;
                self.c.bump();
                let value = self.expr()?;
                self.c.expect_newline("one statement per line")?;
                StmtKind::Assign {
                    target: name,
                    target_span,
                    value,
                }
            }
            Tok::Punct("(") if self.is_pair_target() => {
                self.c.bump();
                let a = self.c.expect_ident("a name", "")?;
                self.c.expect_punct(",", "")?;
                let b = self.c.expect_ident("a name", "")?;
                self.c.expect_punct(")", "")?;
                self.c.expect_punct("=", "")?;
                let value = self.expr()?;
                self.c.expect_newline("one statement per line")?;
                StmtKind::AssignPair {
                    targets: [a, b],
                    value,
                }
            }
            _ => {
                let e = self.expr()?;
                if !matches!(e.kind, ExprKind::Call { .. }) {
                    return Err(Diag::new(
                        self.c.src,
                        e.span,
                        "unsupported construct: an expression used as a statement",
                        "a statement is an assignment, a call such as send(..)/set(..), match, foreach or pass",
                    ));
                }
                self.c.expect_newline("one statement per line")?;
                StmtKind::Expr(e)
            }
        };
        Ok(Stmt { kind, span })
    }

    fn is_pair_target(&self) -> bool {
        matches!(
            (
                &self.c.peek_at(1).tok,
                &self.c.peek_at(2).tok,
                &self.c.peek_at(3).tok,
                &self.c.peek_at(4).tok,
                &self.c.peek_at(5).tok
            ),
            (
                Tok::Ident(_),
                Tok::Punct(","),
                Tok::Ident(_),
                Tok::Punct(")"),
                Tok::Punct("=")
            )
        )
    }

    fn foreach(&mut self) -> Result<StmtKind, Diag> {
        const HINT: &str = "write `foreach(coll, lambda(x): stmt)` or `foreach(coll, lambda(x)):` followed by a block";
        self.c.bump();
        self.c.expect_punct("(", HINT)?;
        let coll = self.expr()?;
        self.c.expect_punct(",", HINT)?;
        let (kw, ksp) = self.c.expect_ident("`lambda`", HINT)?;
        if kw != "lambda" {
            return Err(Diag::new(self.c.src, ksp, "expected `lambda`", HINT));
        }
        self.c.expect_punct("(", HINT)?;
        let (var, var_span) = self.c.expect_ident("a parameter name", HINT)?;
        self.c.expect_punct(")", HINT)?;
        let body = if self.c.eat_punct(":") {
            let s = self.inline_stmt()?;
            self.c.expect_punct(")", HINT)?;
            self.c.expect_newline("one statement per line")?;
            vec![s]
        } else {
            self.c.expect_punct(")", HINT)?;
            self.c.expect_punct(":", HINT)?;
            self.block()?
        };
        Ok(StmtKind::Foreach {
            coll,
            var,
            var_span,
            body,
        })
    }

    /// A one-line statement without its newline (foreach lambda body, match arm tail).
    fn inline_stmt(&mut self) -> Result<Stmt, Diag> {
        let first = self.c.peek().span;
        let kind = match self.c.peek().tok.clone() {
            Tok::Ident(k) if k == "pass" => {
                self.c.bump();
                StmtKind::Pass
            }
            Tok::Ident(name) if matches!(self.c.peek_at(1).tok, Tok::Punct("=")) => {
                let target_span = self.c.bump().span;
                self.c.bump();
                let value = self.expr()?;
                StmtKind::Assign {
                    target: name,
                    target_span,
                    value,
                }
            }
            _ => {
                let e = self.expr()?;
                if !matches!(e.kind, ExprKind::Call { .. }) {
                    return Err(Diag::new(
                        self.c.src,
                        e.span,
                        "unsupported construct: an expression used as a statement",
                        "a statement is an assignment, a call such as send(..)/set(..), match, foreach or pass",
                    ));
                }
                StmtKind::Expr(e)
            }
        };
        Ok(Stmt {
            kind,
            span: self.line_span(first),
        })
    }

    fn arms(&mut self) -> Result<Vec<Arm>, Diag> {
        self.c
            .expect_block_start("put each `pattern =>` arm on its own indented line")?;
        let mut arms = Vec::new();
        loop {
            match self.c.peek().tok {
                Tok::Dedent => {
                    self.c.bump();
                    break;
                }
                Tok::Eof => break,
                Tok::Newline => {
                    self.c.bump();
                }
                _ => {
                    let mut pats = vec![self.pattern()?];
                    while self.c.eat_punct("|") {
                        pats.push(self.pattern()?);
                    }
                    self.c
                        .expect_punct("=>", "an arm is `pattern =>` followed by its statements")?;
                    let body = if matches!(self.c.peek().tok, Tok::Newline) {
                        self.block()?
                    } else {
                        let s = self.inline_stmt()?;
                        self.c.expect_newline("one statement per line")?;
                        vec![s]
                    };
                    arms.push(Arm { pats, body });
                }
            }
        }
        if arms.is_empty() {
            return Err(self
                .c
                .unexpected("a match arm", "a match needs at least one `pattern =>` arm"));
        }
        Ok(arms)
    }

    fn pattern(&mut self) -> Result<Pattern, Diag> {
        const HINT: &str =
            "patterns are constants ('text', 12, true, false), Some(x), Some(_), None and _";
        let t = self.c.bump();
        let kind = match t.tok {
            Tok::Ident(s) if s == "_" => PatKind::Wild,
            Tok::Ident(s) if s == "true" => PatKind::Bool(true),
            Tok::Ident(s) if s == "false" => PatKind::Bool(false),
            Tok::Ident(s) if s == "None" => PatKind::None,
            Tok::Ident(s) if s == "Some" => {
                self.c.expect_punct("(", HINT)?;
                let (n, _) = self.c.expect_ident("a name or `_`", HINT)?;
                let end = self.c.expect_punct(")", HINT)?;
                return Ok(Pattern {
                    kind: PatKind::Some(if n == "_" { None } else { Some(n) }),
                    span: t.span.to(end),
                });
            }
            Tok::Str(s) => PatKind::Str(s),
            Tok::Int(n) => PatKind::Int(i128::from(n)),
            Tok::Punct("-") => match self.c.bump().tok {
                Tok::Int(n) => PatKind::Int(-i128::from(n)),
                _ => {
                    return Err(Diag::new(
                        self.c.src,
                        t.span,
                        "expected a number after `-`",
                        HINT,
                    ))
                }
            },
            Tok::Ident(s) => return Err(Diag::new(
                self.c.src,
                t.span,
                format!("unsupported construct: pattern `{s}`"),
                "match a string with 'text', a map lookup with Some(x)/None, anything else with _",
            )),
            other => {
                return Err(Diag::new(
                    self.c.src,
                    t.span,
                    format!(
                        "expected a pattern, found {}",
                        crate::lexer::describe(&other)
                    ),
                    HINT,
                ))
            }
        };
        Ok(Pattern { kind, span: t.span })
    }

    fn expr(&mut self) -> Result<Expr, Diag> {
        let here = self.c.peek().span;
        self.enter(here)?;
        let r = self.or_expr();
        self.depth -= 1;
        r
    }

    fn binary(l: Expr, op: BinOp, r: Expr) -> Expr {
        let span = l.span.to(r.span);
        Expr {
            kind: ExprKind::Binary(op, Box::new(l), Box::new(r)),
            span,
        }
    }

    fn or_expr(&mut self) -> Result<Expr, Diag> {
        let mut l = self.and_expr()?;
        while self.c.is_ident("or") {
            self.c.bump();
            let r = self.and_expr()?;
            l = Self::binary(l, BinOp::Or, r);
        }
        Ok(l)
    }

    fn and_expr(&mut self) -> Result<Expr, Diag> {
        let mut l = self.not_expr()?;
        while self.c.is_ident("and") {
            self.c.bump();
            let r = self.not_expr()?;
            l = Self::binary(l, BinOp::And, r);
        }
        Ok(l)
    }

    fn not_expr(&mut self) -> Result<Expr, Diag> {
        if self.c.is_ident("not") {
            let sp = self.c.bump().span;
            self.enter(sp)?;
            let e = self.not_expr();
            self.depth -= 1;
            let e = e?;
            let span = sp.to(e.span);
            return Ok(Expr {
                kind: ExprKind::Not(Box::new(e)),
                span,
            });
        }
        self.cmp_expr()
    }

    fn cmp_expr(&mut self) -> Result<Expr, Diag> {
        let l = self.add_expr()?;
        let op = match self.c.peek().tok {
            Tok::Punct("==") => BinOp::Eq,
            Tok::Punct("!=") => BinOp::Ne,
            Tok::Punct("<") => BinOp::Lt,
            Tok::Punct("<=") => BinOp::Le,
            Tok::Punct(">") => BinOp::Gt,
            Tok::Punct(">=") => BinOp::Ge,
            _ => return Ok(l),
        };
        self.c.bump();
        let r = self.add_expr()?;
        Ok(Self::binary(l, op, r))
    }

    fn add_expr(&mut self) -> Result<Expr, Diag> {
        let mut l = self.mul_expr()?;
        loop {
            let op = match self.c.peek().tok {
                Tok::Punct("+") => BinOp::Add,
                Tok::Punct("-") => BinOp::Sub,
                _ => return Ok(l),
            };
            self.c.bump();
            let r = self.mul_expr()?;
            l = Self::binary(l, op, r);
        }
    }

    fn mul_expr(&mut self) -> Result<Expr, Diag> {
        let mut l = self.unary()?;
        loop {
            let op = match self.c.peek().tok {
                Tok::Punct("*") => BinOp::Mul,
                Tok::Punct("/") => BinOp::Div,
                _ => return Ok(l),
            };
            self.c.bump();
            let r = self.unary()?;
            l = Self::binary(l, op, r);
        }
    }

    fn unary(&mut self) -> Result<Expr, Diag> {
        if self.c.is_punct("-") {
            let sp = self.c.bump().span;
            self.enter(sp)?;
            let e = self.unary();
            self.depth -= 1;
            let e = e?;
            let span = sp.to(e.span);
            return Ok(Expr {
                kind: ExprKind::Neg(Box::new(e)),
                span,
            });
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, Diag> {
        const HINT: &str = "an expression is a literal, a name, a call f(..), (a, b), or operators + - * / == < and or";
        let t = self.c.peek().clone();
        let kind = match t.tok {
            Tok::Int(n) => {
                self.c.bump();
                ExprKind::Int(n)
            }
            Tok::Float(f) => {
                self.c.bump();
                ExprKind::Float(f)
            }
            Tok::Str(s) => {
                self.c.bump();
                ExprKind::Str(s)
            }
            Tok::Ident(s) if s == "true" || s == "false" => {
                self.c.bump();
                ExprKind::Bool(s == "true")
            }
            Tok::Ident(name) => {
                self.c.bump();
                if self.c.is_punct("(") {
                    self.c.bump();
                    let mut args = Vec::new();
                    if !self.c.is_punct(")") {
                        loop {
                            args.push(self.expr()?);
                            if !self.c.eat_punct(",") {
                                break;
                            }
                        }
                    }
                    let end = self.c.expect_punct(")", "close the argument list")?;
                    return Ok(Expr {
                        kind: ExprKind::Call {
                            name,
                            name_span: t.span,
                            args,
                        },
                        span: t.span.to(end),
                    });
                }
                ExprKind::Name(name)
            }
            Tok::Punct("(") => {
                self.c.bump();
                let a = self.expr()?;
                if self.c.eat_punct(",") {
                    let b = self.expr()?;
                    let end = self.c.expect_punct(")", "a pair is (a, b)")?;
                    return Ok(Expr {
                        kind: ExprKind::Pair(Box::new(a), Box::new(b)),
                        span: t.span.to(end),
                    });
                }
                let end = self.c.expect_punct(")", "close the parenthesis")?;
                return Ok(Expr {
                    kind: a.kind,
                    span: t.span.to(end),
                });
            }
            _ => return Err(self.c.unexpected("an expression", HINT)),
        };
        Ok(Expr { kind, span: t.span })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Element, String> {
        let src = Source::new("t.appnet", "t.appnet", s);
        parse_element("t", &src).map_err(|d| d.short())
    }

    #[test]
    fn parses_a_firewall() {
        let el = parse(
            "state:\n\t@consistency(strong)\n\trules: Map<string, string>\n\ninit():\n    pass\n\nreq(rpc):\n    user = get(rpc, 'user')\n    match get(rules, user):\n\t\tSome(p) =>\n\t\t\tmatch p:\n\t\t\t\t'allow' => send(rpc, Down)\n\t\t\t\t_ => send(err('denied'), Up)\n\t\tNone =>\n\t\t\tsend(err('denied'), Up)\n\nresp(rpc):\n\tsend(rpc, Up)\n",
        );
        let el = el.expect("parses");
        assert_eq!(el.state.len(), 1);
        assert_eq!(el.state[0].decorators[0].arg, "strong");
        assert_eq!(el.req.map(|h| h.body.len()), Some(2));
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let s = format!(
            "req(rpc):\n    x = {}1{}\n",
            "(".repeat(5000),
            ")".repeat(5000)
        );
        let e = parse(&s).err().unwrap_or_default();
        assert!(e.contains("nested too deeply"), "{e}");
    }

    #[test]
    fn errors_point_at_the_token() {
        assert_eq!(
            parse("req(rpc):\n    x = = 1\n").err().as_deref(),
            Some("t.appnet:2:9: expected an expression, found `=`")
        );
        assert_eq!(
            parse("fn req(rpc) {\n}\n").err().as_deref(),
            Some("t.appnet:1:1: expected a section (`state:`, `init():`, `req(rpc):` or `resp(rpc):`), found `fn`")
        );
    }
}
