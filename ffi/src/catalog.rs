//! The catalog capability: offline list, search and detail of procedures.

use congdan_core::catalog::{
    Agency, AttachmentRule, CatalogStatus, ChoiceOption, Constraints, FieldType, FormField,
    LocalizedText, Procedure, ProcedureKind, ProcedureSummary,
};

use crate::error::CongdanError;

#[uniffi::remote(Record)]
pub struct LocalizedText {
    pub vi: String,
    pub en: String,
}

#[uniffi::remote(Enum)]
pub enum ProcedureKind {
    Procedure,
    Report,
}

#[uniffi::remote(Record)]
pub struct Agency {
    pub code: String,
    pub name: LocalizedText,
}

#[uniffi::remote(Enum)]
pub enum FieldType {
    Text,
    Number,
    Date,
    Choice,
    Phone,
    NationalId,
    Address,
    Location,
}

#[uniffi::remote(Record)]
pub struct ChoiceOption {
    pub value: String,
    pub label: LocalizedText,
}

#[uniffi::remote(Record)]
pub struct Constraints {
    pub min_length: Option<u32>,
    pub max_length: Option<u32>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub integer: Option<bool>,
    pub not_before: Option<String>,
    pub not_after: Option<String>,
    pub options: Vec<ChoiceOption>,
    pub multiple: Option<bool>,
}

#[uniffi::remote(Record)]
pub struct FormField {
    pub id: String,
    pub label: LocalizedText,
    pub help: Option<LocalizedText>,
    pub field_type: FieldType,
    pub required: bool,
    pub constraints: Constraints,
}

#[uniffi::remote(Record)]
pub struct AttachmentRule {
    pub id: String,
    pub label: LocalizedText,
    pub required: bool,
    pub accept: Vec<String>,
    pub max_bytes: u64,
}

#[uniffi::remote(Record)]
pub struct Procedure {
    pub code: String,
    pub kind: ProcedureKind,
    pub name: LocalizedText,
    pub description: LocalizedText,
    pub agency: Agency,
    pub fee_vnd: u64,
    pub processing_days: u32,
    pub fields: Vec<FormField>,
    pub attachments: Vec<AttachmentRule>,
}

#[uniffi::remote(Record)]
pub struct ProcedureSummary {
    pub code: String,
    pub kind: ProcedureKind,
    pub name_vi: String,
    pub name_en: String,
    pub agency_code: String,
    pub fee_vnd: u64,
    pub processing_days: u32,
}

#[uniffi::remote(Record)]
pub struct CatalogStatus {
    pub procedure_count: u32,
    pub last_synced_at_ms: Option<i64>,
}

/// Offline reads of the cached catalog. Cheap, synchronous calls: safe on the UI thread of a
/// low-end phone for a catalog of this size, but shells may move them off it.
#[derive(uniffi::Object)]
pub struct CatalogApi {
    pub(crate) inner: congdan_core::CatalogService,
}

#[uniffi::export]
impl CatalogApi {
    /// Every active procedure, by Vietnamese name; `kind` narrows to procedures or reports.
    pub fn list(&self, kind: Option<ProcedureKind>) -> Result<Vec<ProcedureSummary>, CongdanError> {
        Ok(self.inner.list(kind)?)
    }

    /// Search with or without diacritics ("tam tru" finds "Tạm trú").
    pub fn search(&self, query: String, limit: u32) -> Result<Vec<ProcedureSummary>, CongdanError> {
        Ok(self.inner.search(&query, limit)?)
    }

    /// The procedure with its form, or null when unknown or withdrawn.
    pub fn get(&self, code: String) -> Result<Option<Procedure>, CongdanError> {
        Ok(self.inner.get(&code)?)
    }

    pub fn status(&self) -> Result<CatalogStatus, CongdanError> {
        Ok(self.inner.status()?)
    }
}
