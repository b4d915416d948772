//! The canonical field encoding: a sequence of (tag, value) in strictly increasing tag order,
//! each value encoded by the kind its schema declares. Integers are minimal LEB128 varints, so
//! every value has exactly one encoding and a signature covers exactly one meaning.

use std::collections::BTreeMap;

use super::StatementError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// Unsigned integer, minimal LEB128.
    U64,
    /// Signed integer, zig-zag then minimal LEB128.
    I64,
    /// Length (varint) then bytes.
    Bytes,
    /// Length (varint) then UTF-8.
    Text,
    /// One byte, 0 or 1.
    Bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue {
    U64(u64),
    I64(i64),
    Bytes(Vec<u8>),
    Text(String),
    Bool(bool),
}

impl FieldValue {
    /// The value if it is an unsigned integer: `fields.get(&tag).and_then(FieldValue::as_u64)`.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            FieldValue::U64(v) => Some(*v),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            FieldValue::Bytes(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_text(&self) -> Option<&str> {
        match self {
            FieldValue::Text(t) => Some(t),
            _ => None,
        }
    }

    fn kind(&self) -> FieldKind {
        match self {
            FieldValue::U64(_) => FieldKind::U64,
            FieldValue::I64(_) => FieldKind::I64,
            FieldValue::Bytes(_) => FieldKind::Bytes,
            FieldValue::Text(_) => FieldKind::Text,
            FieldValue::Bool(_) => FieldKind::Bool,
        }
    }
}

/// Field values by tag.
pub type Fields = BTreeMap<u8, FieldValue>;

#[derive(Debug, Clone, Copy)]
pub struct FieldSpec {
    pub tag: u8,
    pub name: &'static str,
    pub kind: FieldKind,
    pub required: bool,
}

/// What a capability declares for one statement type.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    pub statement_type: u8,
    pub name: &'static str,
    pub fields: &'static [FieldSpec],
}

impl Schema {
    fn spec(&self, tag: u8) -> Option<&FieldSpec> {
        self.fields.iter().find(|f| f.tag == tag)
    }

    /// Every field known and of its declared kind; every required field present.
    pub fn check(&self, fields: &Fields) -> Result<(), StatementError> {
        for (tag, value) in fields {
            let spec = self.spec(*tag).ok_or(StatementError::UnknownField(*tag))?;
            if spec.kind != value.kind() {
                return Err(StatementError::NonCanonical("field of the wrong kind"));
            }
        }
        for spec in self.fields.iter().filter(|f| f.required) {
            if !fields.contains_key(&spec.tag) {
                return Err(StatementError::MissingField(spec.name));
            }
        }
        Ok(())
    }
}

pub(crate) fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

pub(crate) fn read_varint(bytes: &[u8], pos: &mut usize) -> Result<u64, StatementError> {
    let mut value: u64 = 0;
    for i in 0..10 {
        let byte = *bytes.get(*pos).ok_or(StatementError::Malformed)?;
        *pos += 1;
        let part = (byte & 0x7f) as u64;
        if i == 9 && part > 1 {
            return Err(StatementError::Malformed);
        }
        value |= part << (7 * i);
        if byte & 0x80 == 0 {
            if i > 0 && byte == 0 {
                return Err(StatementError::NonCanonical("varint with a trailing zero byte"));
            }
            return Ok(value);
        }
    }
    Err(StatementError::Malformed)
}

pub(crate) fn encode_fields(fields: &Fields) -> Vec<u8> {
    let mut out = Vec::new();
    for (tag, value) in fields {
        out.push(*tag);
        match value {
            FieldValue::U64(v) => write_varint(&mut out, *v),
            FieldValue::I64(v) => write_varint(&mut out, ((v << 1) ^ (v >> 63)) as u64),
            FieldValue::Bytes(b) => {
                write_varint(&mut out, b.len() as u64);
                out.extend_from_slice(b);
            }
            FieldValue::Text(t) => {
                write_varint(&mut out, t.len() as u64);
                out.extend_from_slice(t.as_bytes());
            }
            FieldValue::Bool(b) => out.push(*b as u8),
        }
    }
    out
}

pub(crate) fn decode_fields(bytes: &[u8], schema: &Schema) -> Result<Fields, StatementError> {
    let mut fields = Fields::new();
    let mut pos = 0;
    let mut last_tag: Option<u8> = None;
    while pos < bytes.len() {
        let tag = bytes[pos];
        pos += 1;
        if last_tag.is_some_and(|t| tag <= t) {
            return Err(StatementError::NonCanonical("tags out of order or repeated"));
        }
        last_tag = Some(tag);
        let spec = schema.spec(tag).ok_or(StatementError::UnknownField(tag))?;
        let take = |pos: &mut usize| -> Result<&[u8], StatementError> {
            let len = read_varint(bytes, pos)? as usize;
            let end = pos.checked_add(len).ok_or(StatementError::Malformed)?;
            let slice = bytes.get(*pos..end).ok_or(StatementError::Malformed)?;
            *pos = end;
            Ok(slice)
        };
        let value = match spec.kind {
            FieldKind::U64 => FieldValue::U64(read_varint(bytes, &mut pos)?),
            FieldKind::I64 => {
                let z = read_varint(bytes, &mut pos)?;
                FieldValue::I64(((z >> 1) as i64) ^ -((z & 1) as i64))
            }
            FieldKind::Bytes => FieldValue::Bytes(take(&mut pos)?.to_vec()),
            FieldKind::Text => FieldValue::Text(
                String::from_utf8(take(&mut pos)?.to_vec())
                    .map_err(|_| StatementError::Malformed)?,
            ),
            FieldKind::Bool => {
                let b = *bytes.get(pos).ok_or(StatementError::Malformed)?;
                pos += 1;
                match b {
                    0 => FieldValue::Bool(false),
                    1 => FieldValue::Bool(true),
                    _ => return Err(StatementError::NonCanonical("bool other than 0 or 1")),
                }
            }
        };
        fields.insert(tag, value);
    }
    Ok(fields)
}
