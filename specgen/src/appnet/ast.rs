//! Syntax tree of one AppNet element file (`*.appnet`). Plain data, spans everywhere;
//! no name resolution or typing here (that is `check`'s job).

use crate::diag::{Source, Span};

/// One element file.
#[derive(Debug, Clone)]
pub struct Element {
    /// The element's name (from the spec).
    pub name: String,
    /// Its source.
    pub src: Source,
    /// `state:` declarations.
    pub state: Vec<StateDecl>,
    /// `init():`
    pub init: Option<Handler>,
    /// `req(rpc):`
    pub req: Option<Handler>,
    /// `resp(rpc):`
    pub resp: Option<Handler>,
}

/// `@name(arg)`
#[derive(Debug, Clone)]
pub struct Decorator {
    /// Decorator name (`consistency`, `combiner`, `persistence`, `capacity`).
    pub name: String,
    /// Its argument as written.
    pub arg: String,
    /// Where.
    pub span: Span,
}

/// `name: Type` in `state:`.
#[derive(Debug, Clone)]
pub struct StateDecl {
    /// Variable name.
    pub name: String,
    /// Where the name is.
    pub span: Span,
    /// Declared type.
    pub ty: TypeExpr,
    /// Decorators before it.
    pub decorators: Vec<Decorator>,
}

/// A written type.
#[derive(Debug, Clone, PartialEq)]
pub enum TypeExpr {
    /// `int`
    Int,
    /// `uint`
    Uint,
    /// `float`
    Float,
    /// `string`
    Str,
    /// `bool`
    Bool,
    /// `Instant`
    Instant,
    /// `Map<K, V>`
    Map(Box<TypeExpr>, Box<TypeExpr>),
    /// `Vec<T>`
    Vec(Box<TypeExpr>),
    /// `<A, B>`
    Pair(Box<TypeExpr>, Box<TypeExpr>),
}

/// `init():`, `req(rpc):` or `resp(rpc):`.
#[derive(Debug, Clone)]
pub struct Handler {
    /// The parameter name (`rpc`), absent for `init()`.
    pub param: Option<String>,
    /// Statements.
    pub body: Vec<Stmt>,
    /// The header's span.
    pub span: Span,
}

/// A statement.
#[derive(Debug, Clone)]
pub struct Stmt {
    /// What it is.
    pub kind: StmtKind,
    /// Where it starts (its first token) to the end of its first line.
    pub span: Span,
}

/// Statement kinds.
#[derive(Debug, Clone)]
pub enum StmtKind {
    /// `pass`
    Pass,
    /// A call evaluated for its effect (`send(..)`, `set(..)`).
    Expr(Expr),
    /// `name = value`
    Assign {
        /// Assigned name.
        target: String,
        /// Its span.
        target_span: Span,
        /// Value.
        value: Expr,
    },
    /// `(a, b) = pair`
    AssignPair {
        /// The two names and spans.
        targets: [(String, Span); 2],
        /// Value.
        value: Expr,
    },
    /// `match scrutinee:` arms.
    Match {
        /// Scrutinee.
        scrutinee: Expr,
        /// Arms in order.
        arms: Vec<Arm>,
    },
    /// `foreach(coll, lambda(x): ...)`
    Foreach {
        /// Collection.
        coll: Expr,
        /// Bound name.
        var: String,
        /// Its span.
        var_span: Span,
        /// Body.
        body: Vec<Stmt>,
    },
}

/// `pat | pat => body`
#[derive(Debug, Clone)]
pub struct Arm {
    /// Alternatives.
    pub pats: Vec<Pattern>,
    /// Body.
    pub body: Vec<Stmt>,
}

/// A match pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// What.
    pub kind: PatKind,
    /// Where.
    pub span: Span,
}

/// Pattern kinds.
#[derive(Debug, Clone, PartialEq)]
pub enum PatKind {
    /// `_`
    Wild,
    /// `true` / `false`
    Bool(bool),
    /// Integer constant (possibly negative).
    Int(i128),
    /// String constant.
    Str(String),
    /// `Some(x)`; `None` inside for `Some(_)`.
    Some(Option<String>),
    /// `None`
    None,
}

/// An expression.
#[derive(Debug, Clone)]
pub struct Expr {
    /// What.
    pub kind: ExprKind,
    /// Where.
    pub span: Span,
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `and`
    And,
    /// `or`
    Or,
}

impl BinOp {
    /// As written.
    pub fn text(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::And => "and",
            BinOp::Or => "or",
        }
    }
}

/// Expression kinds.
#[derive(Debug, Clone)]
pub enum ExprKind {
    /// Integer literal.
    Int(u64),
    /// Float literal.
    Float(f64),
    /// String literal.
    Str(String),
    /// `true` / `false`
    Bool(bool),
    /// A name (state variable, local, `rpc`, `Up`/`Down`).
    Name(String),
    /// `f(args)`
    Call {
        /// Function name.
        name: String,
        /// Its span.
        name_span: Span,
        /// Arguments.
        args: Vec<Expr>,
    },
    /// `l op r`
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `-e`
    Neg(Box<Expr>),
    /// `not e`
    Not(Box<Expr>),
    /// `(a, b)`
    Pair(Box<Expr>, Box<Expr>),
}
