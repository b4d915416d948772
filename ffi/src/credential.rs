//! The identity credential: the resident renews it online and shows it offline; a front-desk
//! device verifies codes offline. Thin wrappers over `congdan_core::identity::credential`.

use congdan_core::identity::credential::holder::{CredentialService, HeldCredential};
use congdan_core::identity::credential::verifier::CredentialVerifier;
use congdan_core::identity::credential::{self as core_credential, Attribute, ShownAttribute};

use crate::error::CongdanError;

/// What a credential can vouch for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum CredentialAttribute {
    FullName,
    NationalId,
    BirthDate,
    AgeOver18,
    AgeOver60,
}

impl From<CredentialAttribute> for Attribute {
    fn from(a: CredentialAttribute) -> Self {
        match a {
            CredentialAttribute::FullName => Attribute::FullName,
            CredentialAttribute::NationalId => Attribute::NationalId,
            CredentialAttribute::BirthDate => Attribute::BirthDate,
            CredentialAttribute::AgeOver18 => Attribute::AgeOver18,
            CredentialAttribute::AgeOver60 => Attribute::AgeOver60,
        }
    }
}

impl From<Attribute> for CredentialAttribute {
    fn from(a: Attribute) -> Self {
        match a {
            Attribute::FullName => CredentialAttribute::FullName,
            Attribute::NationalId => CredentialAttribute::NationalId,
            Attribute::BirthDate => CredentialAttribute::BirthDate,
            Attribute::AgeOver18 => CredentialAttribute::AgeOver18,
            Attribute::AgeOver60 => CredentialAttribute::AgeOver60,
        }
    }
}

/// One attribute with its value and its label in both languages.
#[derive(uniffi::Record)]
pub struct CredentialField {
    pub attribute: CredentialAttribute,
    pub label_vi: String,
    pub label_en: String,
    pub value: String,
}

impl From<ShownAttribute> for CredentialField {
    fn from(a: ShownAttribute) -> Self {
        let (vi, en) = a.attribute.label();
        CredentialField { attribute: a.attribute.into(), label_vi: vi.into(), label_en: en.into(), value: a.value }
    }
}

/// The credential on this phone, for the resident's own screen.
#[derive(uniffi::Record)]
pub struct IdentityCredentialInfo {
    pub fields: Vec<CredentialField>,
    pub issued_at: u64,
    pub expires_at: u64,
}

impl From<HeldCredential> for IdentityCredentialInfo {
    fn from(h: HeldCredential) -> Self {
        IdentityCredentialInfo { fields: h.attributes.into_iter().map(Into::into).collect(), issued_at: h.issued_at, expires_at: h.expires_at }
    }
}

/// The code to show at the desk now.
#[derive(uniffi::Record)]
pub struct IdentityQrCode {
    /// The QR's text (base45).
    pub text: String,
    /// Modules per side (no quiet zone: leave 4 light modules around).
    pub size: u32,
    /// `rows[y][x]`, true for dark.
    pub rows: Vec<Vec<bool>>,
    /// Unix seconds on the server's clock the code is dated.
    pub presented_at: u64,
    /// Draw a new code after this many seconds.
    pub seconds_remaining: u32,
}

/// What the officer's screen shows after a scan.
#[derive(uniffi::Record)]
pub struct IdentityCheck {
    pub accepted: bool,
    /// Empty when accepted; else `forged`, `wrong_device`, `tampered`, `stale`, `expired`, …
    pub refusal_code: String,
    pub message_vi: String,
    pub message_en: String,
    /// The attributes the resident chose to show (empty when refused).
    pub fields: Vec<CredentialField>,
    pub expires_at: u64,
    pub presented_at: u64,
}

#[derive(uniffi::Object)]
pub struct CredentialApi {
    pub(crate) inner: CredentialService,
}

#[uniffi::export(async_runtime = "tokio")]
impl CredentialApi {
    /// Renews the credential (online, logged in): bound to this phone's device key, 30 days.
    pub async fn refresh(&self) -> Result<IdentityCredentialInfo, CongdanError> {
        Ok(self.inner.refresh().await?.into())
    }

    /// The credential kept on this phone, if any (offline).
    pub fn held(&self) -> Result<Option<IdentityCredentialInfo>, CongdanError> {
        Ok(self.inner.held()?.map(Into::into))
    }

    /// The code showing only `fields` (offline). Call again after `seconds_remaining`.
    pub fn present(&self, fields: Vec<CredentialAttribute>) -> Result<IdentityQrCode, CongdanError> {
        let shown: Vec<Attribute> = fields.into_iter().map(Into::into).collect();
        let code = self.inner.present(&shown)?;
        let qr = core_credential::qr_symbol(&code.text).map_err(|e| congdan_core::Error::BadData(e.to_string()))?;
        Ok(IdentityQrCode {
            text: code.text,
            size: qr.size as u32,
            rows: qr.rows,
            presented_at: code.presented_at,
            seconds_remaining: code.seconds_remaining,
        })
    }
}

#[derive(uniffi::Object)]
pub struct IdentityVerifierApi {
    pub(crate) inner: CredentialVerifier,
}

#[uniffi::export(async_runtime = "tokio")]
impl IdentityVerifierApi {
    /// Fetches the city's credential keys (no login needed) and keeps them for offline checks.
    pub async fn update_keys(&self) -> Result<u32, CongdanError> {
        Ok(self.inner.update_keys().await? as u32)
    }

    pub fn trusted_key_count(&self) -> Result<u32, CongdanError> {
        Ok(self.inner.trusted_key_count()? as u32)
    }

    /// Checks a scanned code (offline). A refused code is an answer, not an error.
    pub fn verify(&self, qr_text: String) -> Result<IdentityCheck, CongdanError> {
        Ok(match self.inner.verify(&qr_text)? {
            Ok(v) => IdentityCheck {
                accepted: true,
                refusal_code: String::new(),
                message_vi: "Thẻ định danh hợp lệ.".into(),
                message_en: "Identity card valid.".into(),
                fields: v.shown.into_iter().map(Into::into).collect(),
                expires_at: v.expires_at,
                presented_at: v.presented_at,
            },
            Err(refusal) => {
                let (vi, en) = refusal.user_message();
                IdentityCheck {
                    accepted: false,
                    refusal_code: refusal.code().into(),
                    message_vi: vi.into(),
                    message_en: en.into(),
                    fields: Vec::new(),
                    expires_at: 0,
                    presented_at: 0,
                }
            }
        })
    }
}
