//! Diagnostics: every user-facing error of specgen carries the file, a byte span, a
//! message and a hint, and renders with miette as `file:line:col`, the source line and
//! a caret. Must not panic on any span (spans are clamped to the source).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, SourceCode};

/// A loaded source file (spec or element); cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct Source(Arc<SourceData>);

/// Contents of a [`Source`].
#[derive(Debug)]
pub struct SourceData {
    /// Path as shown in diagnostics (relative to the spec's directory when possible).
    pub name: String,
    /// Path on disk.
    pub path: PathBuf,
    /// Contents.
    pub text: Arc<str>,
}

impl std::ops::Deref for Source {
    type Target = SourceData;

    fn deref(&self) -> &SourceData {
        &self.0
    }
}

impl Source {
    /// Wraps already-read text.
    pub fn new(
        name: impl Into<String>,
        path: impl Into<PathBuf>,
        text: impl Into<Arc<str>>,
    ) -> Self {
        Source(Arc::new(SourceData {
            name: name.into(),
            path: path.into(),
            text: text.into(),
        }))
    }

    /// 1-based (line, column) of byte offset `at` (column counted in characters).
    pub fn line_col(&self, at: usize) -> (usize, usize) {
        let at = floor_char_boundary(&self.text, at.min(self.text.len()));
        let before = &self.text[..at];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = self.text[line_start..at].chars().count() + 1;
        (line, col)
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// A byte range in a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// Start byte offset.
    pub start: usize,
    /// End byte offset (exclusive).
    pub end: usize,
}

impl Span {
    /// `start..end`.
    pub fn new(start: usize, end: usize) -> Self {
        Span {
            start,
            end: end.max(start),
        }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

/// One compile error at a place in a source file.
#[derive(Debug, Clone)]
pub struct Diag {
    /// The file it is in.
    pub source: Source,
    /// Where.
    pub span: Span,
    /// What is wrong.
    pub message: String,
    /// Label under the caret.
    pub label: String,
    /// How to fix it.
    pub hint: String,
}

impl Diag {
    /// A diagnostic; the label defaults to the message's first clause.
    pub fn new(
        source: &Source,
        span: Span,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        let message = message.into();
        Diag {
            source: source.clone(),
            span,
            label: "here".into(),
            message,
            hint: hint.into(),
        }
    }

    /// Sets the label under the caret.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    /// `(line, column)`, 1-based.
    pub fn line_col(&self) -> (usize, usize) {
        self.source.line_col(self.span.start)
    }

    /// `file:line:col: message` (stable, for tests and one-line output).
    pub fn short(&self) -> String {
        let (l, c) = self.line_col();
        format!("{}:{}:{}: {}", self.source.name, l, c, self.message)
    }

    /// Full rendering: location, the source line, a caret and the hint (no colours).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let handler =
            GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor()).with_width(100);
        if handler.render_report(&mut out, self).is_err() {
            out = self.short();
        }
        out
    }

    fn clamped(&self) -> (usize, usize) {
        let len = self.source.text.len();
        let start = self.span.start.min(len);
        let end = self.span.end.clamp(start, len);
        (start, end - start)
    }
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Diag {}

impl Diagnostic for Diag {
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        if self.hint.is_empty() {
            None
        } else {
            Some(Box::new(&self.hint))
        }
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(self)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let (s, l) = self.clamped();
        Some(Box::new(std::iter::once(LabeledSpan::new(
            Some(self.label.clone()),
            s,
            l,
        ))))
    }
}

impl SourceCode for Diag {
    fn read_span<'a>(
        &'a self,
        span: &miette::SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        let contents = self.source.text.read_span(span, before, after)?;
        Ok(Box::new(miette::MietteSpanContents::new_named(
            self.source.name.clone(),
            contents.data(),
            *contents.span(),
            contents.line(),
            contents.column(),
            contents.line_count(),
        )))
    }
}

/// Any error of the compiler.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A located error in a spec or element file.
    #[error("{}", .0.short())]
    Diag(Box<Diag>),
    /// The .proto file failed to parse or check (protox's own diagnostic).
    #[error("{0}")]
    Proto(String, #[source] Box<protox::Error>),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// Which file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Build-script misuse (e.g. OUT_DIR unset).
    #[error("{0}")]
    Usage(String),
}

impl From<Diag> for Error {
    fn from(d: Diag) -> Self {
        Error::Diag(Box::new(d))
    }
}

impl Error {
    /// Renders the error for a terminal or a build-script panic message.
    pub fn render(&self) -> String {
        match self {
            Error::Diag(d) => d.render(),
            Error::Proto(_, e) => {
                let mut out = String::new();
                let handler = GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
                    .with_width(100);
                if handler.render_report(&mut out, e.as_ref()).is_err() {
                    out = e.to_string();
                }
                out
            }
            other => format!("error: {other}"),
        }
    }

    /// The located diagnostic, if this is one.
    pub fn diag(&self) -> Option<&Diag> {
        match self {
            Error::Diag(d) => Some(d),
            _ => None,
        }
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Result of the compiler.
pub type Result<T, E = Error> = std::result::Result<T, E>;
