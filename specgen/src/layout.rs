//! ANF-aware wire layout: per message, the fields some element reads or writes come
//! first at compile-time offsets (scalars inline, strings/bytes/repeated/nested through
//! an 8-byte (u32 offset, u32 len) slot), then the other fields, then the variable tail.
//! Also renders the `specgen layout` table. Must not emit code.

use std::fmt::Write as _;

use crate::model::{FieldAccess, Model};
use crate::proto::{Kind, Schema};

/// One field's place in the fixed section.
#[derive(Debug, Clone)]
pub struct Slot {
    /// Field index in the message.
    pub field: usize,
    /// Offset in the fixed section.
    pub offset: usize,
    /// Bytes in the fixed section (the value, or 8 for a slot).
    pub size: usize,
    /// Some element reads or writes it.
    pub hot: bool,
    /// Why it is placed where it is (one entry per reading/writing element).
    pub why: Vec<String>,
}

/// Layout of one message.
#[derive(Debug, Clone)]
pub struct MsgLayout {
    /// Message index.
    pub msg: usize,
    /// Fixed section length.
    pub fixed_len: usize,
    /// Slots in layout order.
    pub slots: Vec<Slot>,
}

impl MsgLayout {
    /// The slot of field `field`.
    pub fn slot(&self, field: usize) -> Option<&Slot> {
        self.slots.iter().find(|s| s.field == field)
    }
}

/// Whether a field sits inline (else through an (offset, len) slot).
pub fn inline(kind: Kind, repeated: bool) -> bool {
    !repeated && kind.is_inline()
}

/// Lays out every message of the schema.
pub fn compute(schema: &Schema, accesses: &[FieldAccess]) -> Vec<MsgLayout> {
    schema
        .messages
        .iter()
        .enumerate()
        .map(|(mi, m)| {
            let mut why: Vec<Vec<String>> = vec![Vec::new(); m.fields.len()];
            for a in accesses.iter().filter(|a| a.msg == mi) {
                let text = format!("{} by {}", if a.write { "written" } else { "read" }, a.by);
                if let Some(w) = why.get_mut(a.field) {
                    if !w.contains(&text) {
                        w.push(text);
                    }
                }
            }
            let order: Vec<usize> = (0..m.fields.len())
                .filter(|i| !why[*i].is_empty())
                .chain((0..m.fields.len()).filter(|i| why[*i].is_empty()))
                .collect();
            let mut offset = 0;
            let mut slots = Vec::new();
            for fi in order {
                let f = &m.fields[fi];
                let size = if inline(f.kind, f.repeated) {
                    f.kind.fixed_size()
                } else {
                    8
                };
                slots.push(Slot {
                    field: fi,
                    offset,
                    size,
                    hot: !why[fi].is_empty(),
                    why: why[fi].clone(),
                });
                offset += size;
            }
            MsgLayout {
                msg: mi,
                fixed_len: offset,
                slots,
            }
        })
        .collect()
}

/// The `specgen layout` table for the messages the service uses (requests and
/// responses, then nested messages).
pub fn table(model: &Model, layouts: &[MsgLayout]) -> String {
    let mut out = String::new();
    let schema = &model.schema;
    let mut shown: Vec<usize> = Vec::new();
    for m in &schema.service.methods {
        for i in [m.input, m.output] {
            if !shown.contains(&i) {
                shown.push(i);
            }
        }
    }
    let mut k = 0;
    while k < shown.len() {
        if let Some(m) = schema.messages.get(shown[k]) {
            for f in &m.fields {
                if let Kind::Message(n) = f.kind {
                    if !shown.contains(&n) {
                        shown.push(n);
                    }
                }
            }
        }
        k += 1;
    }
    let _ = writeln!(
        out,
        "service {} (module {})",
        schema.service.full_name, model.module
    );
    for mi in shown {
        let (Some(m), Some(l)) = (schema.messages.get(mi), layouts.get(mi)) else {
            continue;
        };
        let used_by: Vec<String> = schema
            .service
            .methods
            .iter()
            .filter_map(|x| {
                if x.input == mi {
                    Some(format!("{} request", x.name))
                } else if x.output == mi {
                    Some(format!("{} response", x.name))
                } else {
                    None
                }
            })
            .collect();
        let _ = writeln!(
            out,
            "\nmessage {} ({}): fixed section {} bytes, then the variable tail",
            m.full_name,
            if used_by.is_empty() {
                "nested".to_string()
            } else {
                used_by.join(", ")
            },
            l.fixed_len,
        );
        let _ = writeln!(
            out,
            "  {:>6}  {:>4}  {:<16} {:<16} why",
            "offset", "size", "field", "type"
        );
        for s in &l.slots {
            let f = &m.fields[s.field];
            let ty = format!(
                "{}{}",
                if f.repeated { "repeated " } else { "" },
                f.proto_type_display(schema)
            );
            let place = if inline(f.kind, f.repeated) {
                "inline"
            } else {
                "slot -> tail"
            };
            let why = if s.hot {
                s.why.join("; ")
            } else {
                "not read by any element".to_string()
            };
            let _ = writeln!(
                out,
                "  {:>6}  {:>4}  {:<16} {:<16} {place}; {why}",
                s.offset, s.size, f.name, ty
            );
        }
    }
    out
}

impl crate::proto::Field {
    /// Type as shown in the layout table.
    pub fn proto_type_display(&self, schema: &Schema) -> String {
        match self.kind {
            Kind::Message(_) | Kind::Enum => self.kind.proto_name(schema),
            _ => self.proto_type.clone(),
        }
    }
}
