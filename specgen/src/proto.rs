//! Loads the `.proto` with protox (a maintained pure-Rust protobuf compiler) and turns
//! its descriptors into the small schema model the layout and code generator use.
//! Must not parse .proto text itself: declarations are located through the source
//! info protox records (so name checks can point at the offending line of the .proto).

use std::path::Path;

use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FileDescriptorSet};

use crate::diag::{Diag, Error, Source, Span};

/// Wire kind of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `bool` (1 byte)
    Bool,
    /// `int32`, `sint32`, `sfixed32` (4 bytes)
    I32,
    /// `int64`, `sint64`, `sfixed64` (8 bytes)
    I64,
    /// `uint32`, `fixed32` (4 bytes)
    U32,
    /// `uint64`, `fixed64` (8 bytes)
    U64,
    /// `float` (4 bytes)
    F32,
    /// `double` (8 bytes)
    F64,
    /// `string` (slot)
    Str,
    /// `bytes` (slot)
    Bytes,
    /// an enum, as its i32 number (4 bytes)
    Enum,
    /// a nested message (slot), index into [`Schema::messages`]
    Message(usize),
}

impl Kind {
    /// Inline size of a non-repeated field of this kind in the fixed section.
    pub fn fixed_size(self) -> usize {
        match self {
            Kind::Bool => 1,
            Kind::I32 | Kind::U32 | Kind::F32 | Kind::Enum => 4,
            Kind::I64 | Kind::U64 | Kind::F64 => 8,
            Kind::Str | Kind::Bytes | Kind::Message(_) => 8,
        }
    }

    /// Whether the value sits inline (not through a slot).
    pub fn is_inline(self) -> bool {
        !matches!(self, Kind::Str | Kind::Bytes | Kind::Message(_))
    }

    /// The proto type name, for messages and hints.
    pub fn proto_name(self, schema: &Schema) -> String {
        match self {
            Kind::Bool => "bool".into(),
            Kind::I32 => "int32".into(),
            Kind::I64 => "int64".into(),
            Kind::U32 => "uint32".into(),
            Kind::U64 => "uint64".into(),
            Kind::F32 => "float".into(),
            Kind::F64 => "double".into(),
            Kind::Str => "string".into(),
            Kind::Bytes => "bytes".into(),
            Kind::Enum => "enum".into(),
            Kind::Message(i) => schema
                .messages
                .get(i)
                .map_or_else(|| "message".into(), |m| m.full_name.clone()),
        }
    }
}

/// Where a declaration is in a .proto file (the span of its name when protox recorded
/// one, else of the whole declaration).
#[derive(Debug, Clone)]
pub struct Loc {
    /// The .proto file.
    pub source: Source,
    /// The declaration.
    pub span: Span,
}

/// One field.
#[derive(Debug, Clone)]
pub struct Field {
    /// Proto name.
    pub name: String,
    /// Declaration in the .proto (None for files not on disk, e.g. well-known types).
    pub loc: Option<Loc>,
    /// Field number.
    pub number: i32,
    /// Kind.
    pub kind: Kind,
    /// `repeated`.
    pub repeated: bool,
    /// The proto type as written (`int32`, `sint64`, `fixed32`, ...).
    pub proto_type: String,
}

/// One message.
#[derive(Debug, Clone)]
pub struct Message {
    /// `pkg.Outer.Inner`
    pub full_name: String,
    /// `Outer.Inner` (the name without the package)
    pub name: String,
    /// Declaration in the .proto.
    pub loc: Option<Loc>,
    /// `OuterInner`
    pub rust_name: String,
    /// Fields in declaration order.
    pub fields: Vec<Field>,
}

/// One rpc method.
#[derive(Debug, Clone)]
pub struct Method {
    /// Proto name (`Get`).
    pub name: String,
    /// Declaration in the .proto.
    pub loc: Option<Loc>,
    /// snake_case (`get`), as used in specs and generated fns.
    pub snake: String,
    /// 1-based id in declaration order.
    pub id: u16,
    /// Request message index.
    pub input: usize,
    /// Response message index.
    pub output: usize,
}

/// The service chosen by the spec.
#[derive(Debug, Clone)]
pub struct Service {
    /// `KvService`
    pub name: String,
    /// `kv.KvService`
    pub full_name: String,
    /// Declaration in the .proto.
    pub loc: Option<Loc>,
    /// Methods in declaration order.
    pub methods: Vec<Method>,
}

/// Everything specgen needs from the .proto.
#[derive(Debug, Clone)]
pub struct Schema {
    /// Messages of the file and its imports.
    pub messages: Vec<Message>,
    /// The service.
    pub service: Service,
}

/// CamelCase -> snake_case.
pub fn snake(s: &str) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for c in s.chars() {
        if c.is_ascii_uppercase() {
            if prev_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower = false;
        } else {
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
            out.push(c);
        }
    }
    out
}

/// snake_case / any -> CamelCase.
pub fn camel(s: &str) -> String {
    s.split(['_', '.'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut cs = p.chars();
            match cs.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + cs.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// Compiles `proto_path` (resolved against the spec) and picks `service` from it.
/// `spec` and the two spans locate errors that are the spec's fault.
pub fn load(
    spec: &Source,
    proto_path: &Path,
    proto_span: Span,
    service: &str,
    service_span: Span,
) -> Result<Schema, Error> {
    if !proto_path.is_file() {
        return Err(Diag::new(
            spec,
            proto_span,
            format!("proto file `{}` not found", proto_path.display()),
            "the path is relative to the spec file's directory",
        )
        .into());
    }
    let dir = proto_path.parent().unwrap_or(Path::new("."));
    let file = proto_path.file_name().map(Path::new).unwrap_or(proto_path);
    let fds =
        protox::compile([file], [dir]).map_err(|e| Error::Proto(e.to_string(), Box::new(e)))?;
    // The text of every file on disk, so declarations can be located in it (files that
    // protox supplies itself, such as the well-known types, have none).
    let sources: Vec<Option<Source>> = fds
        .file
        .iter()
        .map(|f| {
            let name = f.name();
            let path = dir.join(name);
            std::fs::read_to_string(&path)
                .ok()
                .map(|text| Source::new(name, path, text))
        })
        .collect();
    build(&fds, &sources, spec, proto_span, service, service_span)
}

/// Finds the declaration at `path` (a source-info path such as `[4, 0]` for the first
/// message) in file `file`: the span of its name (`path + [1]`) when recorded, else of
/// the whole declaration.
fn locate(
    fds: &FileDescriptorSet,
    sources: &[Option<Source>],
    file: usize,
    path: &[i32],
) -> Option<Loc> {
    let source = sources.get(file)?.as_ref()?;
    let info = fds.file.get(file)?.source_code_info.as_ref()?;
    let mut name_path = path.to_vec();
    name_path.push(1);
    let loc = info
        .location
        .iter()
        .find(|l| l.path == name_path)
        .or_else(|| info.location.iter().find(|l| l.path == path))?;
    let span = span_of(&source.text, &loc.span)?;
    Some(Loc {
        source: source.clone(),
        span,
    })
}

/// Byte span of a source-info span (`[line, col, end_col]` or `[line, col, end_line,
/// end_col]`, 0-based; protox counts columns in bytes). Clamped to the text.
fn span_of(text: &str, span: &[i32]) -> Option<Span> {
    let (sl, sc, el, ec) = match *span {
        [sl, sc, ec] => (sl, sc, sl, ec),
        [sl, sc, el, ec] => (sl, sc, el, ec),
        _ => return None,
    };
    let offset = |line: i32, col: i32| -> Option<usize> {
        let line = usize::try_from(line).ok()?;
        let col = usize::try_from(col).ok()?;
        let start = if line == 0 {
            0
        } else {
            text.match_indices('\n').nth(line - 1)?.0 + 1
        };
        let end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        Some((start + col).min(end))
    };
    Some(Span::new(offset(sl, sc)?, offset(el, ec)?))
}

fn build(
    fds: &FileDescriptorSet,
    sources: &[Option<Source>],
    spec: &Source,
    proto_span: Span,
    service: &str,
    service_span: Span,
) -> Result<Schema, Error> {
    let mut messages = Vec::new();
    let mut raw: Vec<Raw<'_>> = Vec::new();
    for (fi, f) in fds.file.iter().enumerate() {
        let pkg = f.package.clone().unwrap_or_default();
        for (i, m) in f.message_type.iter().enumerate() {
            collect(&pkg, "", m, fi, vec![4, to_i32(i)], &mut raw);
        }
    }
    let index = |type_name: &str| {
        raw.iter()
            .position(|r| type_name.trim_start_matches('.') == r.full)
    };
    for r in &raw {
        let (full, d, rust) = (&r.full, r.desc, &r.rust);
        let mut fields = Vec::new();
        for (k, f) in d.field.iter().enumerate() {
            let name = f.name.clone().unwrap_or_default();
            let repeated = f.label() == Label::Repeated;
            let (kind, proto_type) = match f.r#type() {
                Type::Bool => (Kind::Bool, "bool"),
                Type::Int32 => (Kind::I32, "int32"),
                Type::Sint32 => (Kind::I32, "sint32"),
                Type::Sfixed32 => (Kind::I32, "sfixed32"),
                Type::Int64 => (Kind::I64, "int64"),
                Type::Sint64 => (Kind::I64, "sint64"),
                Type::Sfixed64 => (Kind::I64, "sfixed64"),
                Type::Uint32 => (Kind::U32, "uint32"),
                Type::Fixed32 => (Kind::U32, "fixed32"),
                Type::Uint64 => (Kind::U64, "uint64"),
                Type::Fixed64 => (Kind::U64, "fixed64"),
                Type::Float => (Kind::F32, "float"),
                Type::Double => (Kind::F64, "double"),
                Type::String => (Kind::Str, "string"),
                Type::Bytes => (Kind::Bytes, "bytes"),
                Type::Enum => (Kind::Enum, "enum"),
                Type::Message => match index(f.type_name()) {
                    Some(i) => (Kind::Message(i), "message"),
                    None => {
                        return Err(Diag::new(
                            spec,
                            proto_span,
                            format!(
                                "field `{full}.{name}` refers to unknown message `{}`",
                                f.type_name()
                            ),
                            "import the file that defines it",
                        )
                        .into())
                    }
                },
                Type::Group => {
                    return Err(Diag::new(
                        spec,
                        proto_span,
                        format!("unsupported construct: group field `{full}.{name}`"),
                        "groups are proto2-only; use a nested message",
                    )
                    .into())
                }
            };
            let mut path = r.path.clone();
            path.extend([2, to_i32(k)]);
            fields.push(Field {
                loc: locate(fds, sources, r.file, &path),
                name,
                number: f.number(),
                kind,
                repeated,
                proto_type: proto_type.to_string(),
            });
        }
        messages.push(Message {
            full_name: full.clone(),
            name: r.rel.clone(),
            loc: locate(fds, sources, r.file, &r.path),
            rust_name: rust.clone(),
            fields,
        });
    }
    let mut found = None;
    let mut available = Vec::new();
    for (fi, f) in fds.file.iter().enumerate() {
        let pkg = f.package.clone().unwrap_or_default();
        for (si, s) in f.service.iter().enumerate() {
            let name = s.name.clone().unwrap_or_default();
            let full = if pkg.is_empty() {
                name.clone()
            } else {
                format!("{pkg}.{name}")
            };
            available.push(full.clone());
            if service == name || service == full {
                found = Some((name, full, s, fi, vec![6, to_i32(si)]));
            }
        }
    }
    let Some((name, full_name, sd, sfile, spath)) = found else {
        return Err(Diag::new(
            spec,
            service_span,
            format!("unknown service `{service}`"),
            if available.is_empty() {
                "the proto file declares no service".to_string()
            } else {
                format!("services in the proto: {}", available.join(", "))
            },
        )
        .into());
    };
    let mut methods = Vec::new();
    for (i, m) in sd.method.iter().enumerate() {
        let mname = m.name.clone().unwrap_or_default();
        if m.client_streaming() || m.server_streaming() {
            return Err(Diag::new(
                spec,
                service_span,
                format!("unsupported construct: streaming method `{mname}`"),
                "flatrpc methods are unary: one request, one response",
            )
            .into());
        }
        let input = index(m.input_type())
            .ok_or_else(|| Diag::new(spec, service_span, "unknown input type", ""))?;
        let output = index(m.output_type())
            .ok_or_else(|| Diag::new(spec, service_span, "unknown output type", ""))?;
        let id = u16::try_from(i + 1)
            .map_err(|_| Diag::new(spec, service_span, "too many methods", "at most 65535"))?;
        let mut path = spath.clone();
        path.extend([2, to_i32(i)]);
        methods.push(Method {
            loc: locate(fds, sources, sfile, &path),
            snake: snake(&mname),
            name: mname,
            id,
            input,
            output,
        });
    }
    Ok(Schema {
        messages,
        service: Service {
            loc: locate(fds, sources, sfile, &spath),
            name,
            full_name,
            methods,
        },
    })
}

/// A message found in the descriptors, before its fields are resolved.
struct Raw<'a> {
    full: String,
    rel: String,
    rust: String,
    desc: &'a DescriptorProto,
    /// Index of its file in the descriptor set.
    file: usize,
    /// Its source-info path in that file.
    path: Vec<i32>,
}

fn to_i32(i: usize) -> i32 {
    i32::try_from(i).unwrap_or(i32::MAX)
}

fn collect<'a>(
    pkg: &str,
    outer: &str,
    m: &'a DescriptorProto,
    file: usize,
    path: Vec<i32>,
    out: &mut Vec<Raw<'a>>,
) {
    let name = m.name.clone().unwrap_or_default();
    let rel = if outer.is_empty() {
        name.clone()
    } else {
        format!("{outer}.{name}")
    };
    let full = if pkg.is_empty() {
        rel.clone()
    } else {
        format!("{pkg}.{rel}")
    };
    let rust = camel(&rel);
    out.push(Raw {
        full,
        rel: rel.clone(),
        rust,
        desc: m,
        file,
        path: path.clone(),
    });
    for (j, n) in m.nested_type.iter().enumerate() {
        let mut p = path.clone();
        p.extend([3, to_i32(j)]);
        collect(pkg, &rel, n, file, p, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_info_spans_become_byte_spans() {
        let text = "ab\ncdef\ngh";
        assert_eq!(span_of(text, &[1, 1, 3]), Some(Span::new(4, 6)));
        assert_eq!(span_of(text, &[0, 1, 2, 1]), Some(Span::new(1, 9)));
        // Columns past the end of their line are clamped to it.
        assert_eq!(span_of(text, &[0, 0, 99]), Some(Span::new(0, 2)));
        // Lines past the end, negative numbers and malformed spans give nothing.
        assert_eq!(span_of(text, &[7, 0, 1]), None);
        assert_eq!(span_of(text, &[-1, 0, 1]), None);
        assert_eq!(span_of(text, &[0, 0]), None);
        assert_eq!(span_of(text, &[]), None);
    }

    #[test]
    fn case_conversions() {
        assert_eq!(snake("GetUser"), "get_user");
        assert_eq!(snake("Get"), "get");
        assert_eq!(snake("HTTPGet"), "httpget");
        assert_eq!(camel("session_tracker"), "SessionTracker");
        assert_eq!(camel("Outer.Inner"), "OuterInner");
    }
}
