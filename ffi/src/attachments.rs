//! Attachments of a draft through the drafts object: by file path (streamed, never whole in
//! memory) or by bytes (a photo from the camera). The file is checked by its content; a refused
//! file is a `CongdanError::InvalidInput` whose messages say why (type, size) in both languages.

use congdan_core::drafts::attachments::Attachment;

use crate::drafts::DraftsApi;
use crate::error::CongdanError;

#[uniffi::remote(Record)]
pub struct Attachment {
    pub rule_id: String,
    pub sha256: String,
    pub size: u64,
    pub media_type: String,
    pub added_at_ms: i64,
    /// How much of the file the server has acknowledged (upload progress).
    pub uploaded_bytes: u64,
}

#[uniffi::export]
impl DraftsApi {
    /// Attaches the file at `path` under the procedure's attachment rule `rule_id`.
    pub fn attach_file(&self, id: String, rule_id: String, path: String) -> Result<Attachment, CongdanError> {
        Ok(self.inner.attach_file(&id, &rule_id, std::path::Path::new(&path))?)
    }

    /// Attaches a file given as bytes under the attachment rule `rule_id`.
    pub fn attach_bytes(&self, id: String, rule_id: String, bytes: Vec<u8>) -> Result<Attachment, CongdanError> {
        Ok(self.inner.attach_bytes(&id, &rule_id, &bytes)?)
    }

    /// Removes a file from the draft (the file goes once nothing uses it).
    pub fn detach(&self, id: String, rule_id: String, sha256: String) -> Result<(), CongdanError> {
        Ok(self.inner.detach(&id, &rule_id, &sha256)?)
    }

    /// The draft's files, by rule, with their upload progress.
    pub fn attachments(&self, id: String) -> Result<Vec<Attachment>, CongdanError> {
        Ok(self.inner.attachments(&id)?)
    }
}
