//! Tokenizer shared by the AppNet element language and the spec language: Python-style
//! blocks (INDENT/DEDENT from leading whitespace, a tab advancing to the next multiple
//! of 4 columns so AppNet's mixed tabs and spaces line up), `#` comments, implicit line
//! joining inside brackets. Must not panic on any input; errors are [`Diag`]s.

use crate::diag::{Diag, Source, Span};

/// Columns a tab advances to (next multiple of).
pub const TAB_STOP: usize = 4;

/// A token kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// Identifier or keyword.
    Ident(String),
    /// `'..'` or `".."` literal (escapes resolved).
    Str(String),
    /// Integer literal.
    Int(u64),
    /// Float literal.
    Float(f64),
    /// Operator or punctuation.
    Punct(&'static str),
    /// End of a logical line.
    Newline,
    /// Block start.
    Indent,
    /// Block end.
    Dedent,
    /// End of input.
    Eof,
}

/// A token and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// Kind.
    pub tok: Tok,
    /// Where.
    pub span: Span,
}

const PUNCTS: [&str; 27] = [
    "=>", "->", "==", "!=", "<=", ">=", "(", ")", "[", "]", "{", "}", ",", ":", ".", "=", "<", ">",
    "+", "-", "*", "/", "|", "@", ";", "%", "!",
];

/// Tokenizes `src`.
pub fn lex(src: &Source) -> Result<Vec<Token>, Diag> {
    let text: &str = &src.text;
    let bytes = text.as_bytes();
    let mut toks: Vec<Token> = Vec::new();
    let mut indents: Vec<usize> = vec![0];
    let mut depth: usize = 0;
    let mut i = 0usize;
    let mut at_line_start = true;
    while i < bytes.len() {
        if at_line_start && depth == 0 {
            // Measure indentation; skip blank and comment-only lines.
            let line_start = i;
            let mut width = 0usize;
            while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b'\t') {
                width = if bytes[i] == b'\t' {
                    (width / TAB_STOP + 1) * TAB_STOP
                } else {
                    width + 1
                };
                i += 1;
            }
            if i >= bytes.len() {
                break;
            }
            if bytes[i] == b'\n' || bytes[i] == b'\r' || bytes[i] == b'#' {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                i += 1;
                continue;
            }
            at_line_start = false;
            let top = indents.last().copied().unwrap_or(0);
            let here = Span::new(i, i + 1);
            if width > top {
                indents.push(width);
                toks.push(Token {
                    tok: Tok::Indent,
                    span: here,
                });
            } else if width < top {
                while indents.last().is_some_and(|t| *t > width) {
                    indents.pop();
                    toks.push(Token {
                        tok: Tok::Dedent,
                        span: here,
                    });
                }
                if indents.last().copied().unwrap_or(0) != width {
                    let outer: Vec<String> = indents.iter().map(|w| w.to_string()).collect();
                    return Err(Diag::new(
                        src,
                        Span::new(line_start, i.max(line_start + 1)),
                        format!("bad indentation: column {} does not match any enclosing block", width + 1),
                        format!(
                            "indent this line like one of the enclosing blocks (at width {}); a tab counts to the next multiple of {TAB_STOP} columns",
                            outer.join(", ")
                        ),
                    )
                    .label("unexpected dedent"));
                }
            }
            continue;
        }
        let c = bytes[i];
        match c {
            b' ' | b'\t' | b'\r' => i += 1,
            b'\\' if bytes.get(i + 1) == Some(&b'\n') => i += 2,
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'\n' => {
                if depth == 0 {
                    if toks
                        .last()
                        .is_some_and(|t| !matches!(t.tok, Tok::Newline | Tok::Indent | Tok::Dedent))
                    {
                        toks.push(Token {
                            tok: Tok::Newline,
                            span: Span::new(i, i + 1),
                        });
                    }
                    at_line_start = true;
                }
                i += 1;
            }
            b'\'' | b'"' => {
                let start = i;
                i += 1;
                let mut s = String::new();
                loop {
                    let Some(ch) = text.get(i..).and_then(|r| r.chars().next()) else {
                        return Err(unterminated(src, start, i));
                    };
                    match ch {
                        '\n' => return Err(unterminated(src, start, i)),
                        '\\' => {
                            let esc = text.get(i + 1..).and_then(|r| r.chars().next());
                            let v = match esc {
                                Some('n') => '\n',
                                Some('t') => '\t',
                                Some('\\') => '\\',
                                Some('\'') => '\'',
                                Some('"') => '"',
                                Some('0') => '\0',
                                _ => {
                                    return Err(Diag::new(
                                        src,
                                        Span::new(i, i + 2),
                                        "unknown escape in string literal",
                                        "use one of \\n \\t \\\\ \\' \\\" \\0",
                                    ))
                                }
                            };
                            s.push(v);
                            i += 1 + esc.map_or(1, char::len_utf8);
                        }
                        q if q as u32 == u32::from(c) => {
                            i += 1;
                            break;
                        }
                        other => {
                            s.push(other);
                            i += other.len_utf8();
                        }
                    }
                }
                toks.push(Token {
                    tok: Tok::Str(s),
                    span: Span::new(start, i),
                });
            }
            b'0'..=b'9' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'_') {
                    i += 1;
                }
                let is_float =
                    bytes.get(i) == Some(&b'.') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit);
                if is_float {
                    i += 1;
                    while i < bytes.len() && bytes[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                let lit: String = text[start..i].chars().filter(|c| *c != '_').collect();
                let span = Span::new(start, i);
                let tok = if is_float {
                    match lit.parse::<f64>() {
                        Ok(f) => Tok::Float(f),
                        Err(_) => {
                            return Err(Diag::new(
                                src,
                                span,
                                "malformed float literal",
                                "write e.g. 1.5",
                            ))
                        }
                    }
                } else {
                    match lit.parse::<u64>() {
                        Ok(n) => Tok::Int(n),
                        Err(_) => {
                            return Err(Diag::new(
                                src,
                                span,
                                "integer literal out of range",
                                "integers are 64-bit; use a smaller value",
                            ))
                        }
                    }
                };
                toks.push(Token { tok, span });
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                toks.push(Token {
                    tok: Tok::Ident(text[start..i].to_string()),
                    span: Span::new(start, i),
                });
            }
            _ => {
                let rest = &bytes[i..];
                let Some(p) = PUNCTS.iter().find(|p| rest.starts_with(p.as_bytes())) else {
                    let ch = text.get(i..).and_then(|r| r.chars().next()).unwrap_or('?');
                    return Err(Diag::new(
                        src,
                        Span::new(i, i + ch.len_utf8()),
                        format!("unexpected character {ch:?}"),
                        "remove it; names are ASCII letters, digits and `_`",
                    ));
                };
                match *p {
                    "(" | "[" | "{" => depth += 1,
                    ")" | "]" | "}" => depth = depth.saturating_sub(1),
                    _ => {}
                }
                toks.push(Token {
                    tok: Tok::Punct(p),
                    span: Span::new(i, i + p.len()),
                });
                i += p.len();
            }
        }
    }
    let end = Span::new(bytes.len(), bytes.len());
    if toks
        .last()
        .is_some_and(|t| !matches!(t.tok, Tok::Newline | Tok::Indent | Tok::Dedent))
    {
        toks.push(Token {
            tok: Tok::Newline,
            span: end,
        });
    }
    while indents.len() > 1 {
        indents.pop();
        toks.push(Token {
            tok: Tok::Dedent,
            span: end,
        });
    }
    toks.push(Token {
        tok: Tok::Eof,
        span: end,
    });
    Ok(toks)
}

fn unterminated(src: &Source, start: usize, at: usize) -> Diag {
    Diag::new(
        src,
        Span::new(start, at.max(start + 1)),
        "unterminated string literal",
        "close it with the same quote on the same line",
    )
}

/// A cursor over tokens with the helpers both parsers use.
pub struct Cursor<'s> {
    /// The file (for diagnostics).
    pub src: &'s Source,
    toks: Vec<Token>,
    pos: usize,
}

impl<'s> Cursor<'s> {
    /// Tokenizes `src`.
    pub fn new(src: &'s Source) -> Result<Self, Diag> {
        Ok(Cursor {
            src,
            toks: lex(src)?,
            pos: 0,
        })
    }

    /// The current token.
    pub fn peek(&self) -> &Token {
        self.peek_at(0)
    }

    /// The token `n` ahead.
    pub fn peek_at(&self, n: usize) -> &Token {
        let i = (self.pos + n).min(self.toks.len().saturating_sub(1));
        &self.toks[i]
    }

    /// Consumes and returns the current token (stays at EOF).
    pub fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    /// `true` if the current token is punctuation `p`.
    pub fn is_punct(&self, p: &str) -> bool {
        matches!(&self.peek().tok, Tok::Punct(q) if *q == p)
    }

    /// `true` if the current token is identifier/keyword `k`.
    pub fn is_ident(&self, k: &str) -> bool {
        matches!(&self.peek().tok, Tok::Ident(q) if q == k)
    }

    /// Consumes punctuation `p` if present.
    pub fn eat_punct(&mut self, p: &str) -> bool {
        if self.is_punct(p) {
            self.bump();
            true
        } else {
            false
        }
    }

    /// Requires punctuation `p`.
    pub fn expect_punct(&mut self, p: &str, hint: &str) -> Result<Span, Diag> {
        if self.is_punct(p) {
            Ok(self.bump().span)
        } else {
            Err(self.unexpected(&format!("`{p}`"), hint))
        }
    }

    /// Requires an identifier; returns it and its span.
    pub fn expect_ident(&mut self, what: &str, hint: &str) -> Result<(String, Span), Diag> {
        match self.peek().tok.clone() {
            Tok::Ident(s) => {
                let sp = self.bump().span;
                Ok((s, sp))
            }
            _ => Err(self.unexpected(what, hint)),
        }
    }

    /// Requires a string literal.
    pub fn expect_str(&mut self, what: &str, hint: &str) -> Result<(String, Span), Diag> {
        match self.peek().tok.clone() {
            Tok::Str(s) => {
                let sp = self.bump().span;
                Ok((s, sp))
            }
            _ => Err(self.unexpected(what, hint)),
        }
    }

    /// Requires the end of a line.
    pub fn expect_newline(&mut self, hint: &str) -> Result<(), Diag> {
        match self.peek().tok {
            Tok::Newline => {
                self.bump();
                Ok(())
            }
            Tok::Eof | Tok::Dedent => Ok(()),
            _ => Err(self.unexpected("end of line", hint)),
        }
    }

    /// Requires an indented block start (after `:` and a newline).
    pub fn expect_block_start(&mut self, hint: &str) -> Result<(), Diag> {
        self.expect_newline(hint)?;
        if matches!(self.peek().tok, Tok::Indent) {
            self.bump();
            Ok(())
        } else {
            Err(Diag::new(
                self.src,
                self.peek().span,
                "expected an indented block",
                hint,
            )
            .label("indent this line"))
        }
    }

    /// "expected X, found Y" at the current token.
    pub fn unexpected(&self, what: &str, hint: &str) -> Diag {
        let t = self.peek();
        Diag::new(
            self.src,
            t.span,
            format!("expected {what}, found {}", describe(&t.tok)),
            hint,
        )
    }
}

/// Human description of a token for diagnostics.
pub fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("`{s}`"),
        Tok::Str(s) => format!("string '{s}'"),
        Tok::Int(n) => format!("number {n}"),
        Tok::Float(f) => format!("number {f}"),
        Tok::Punct(p) => format!("`{p}`"),
        Tok::Newline => "end of line".into(),
        Tok::Indent => "an indented block".into(),
        Tok::Dedent => "end of block".into(),
        Tok::Eof => "end of file".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<Tok> {
        let src = Source::new("t", "t", s);
        lex(&src)
            .map(|v| v.into_iter().map(|t| t.tok).collect())
            .unwrap_or_default()
    }

    #[test]
    fn mixed_tabs_and_spaces_line_up() {
        let t = kinds("a:\n\tb\n    c\n\t\td\n");
        let indents = t.iter().filter(|t| **t == Tok::Indent).count();
        let dedents = t.iter().filter(|t| **t == Tok::Dedent).count();
        assert_eq!((indents, dedents), (2, 2));
    }

    #[test]
    fn bad_dedent_is_an_error() {
        let src = Source::new("t", "t", "a:\n    b\n  c\n");
        let e = lex(&src).err().map(|d| d.short());
        assert_eq!(
            e.as_deref(),
            Some("t:3:1: bad indentation: column 3 does not match any enclosing block")
        );
    }

    #[test]
    fn brackets_join_lines() {
        let t = kinds("f(a,\n   b)\n");
        assert!(!t.contains(&Tok::Indent));
    }
}
