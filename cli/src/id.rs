//! `congdan id …`: the identity credential. The resident renews it (online) and shows it as a QR
//! with only the fields they pick (offline); a front desk fetches the city's keys once and
//! verifies codes offline (`congdan id verify`, exit status 2 when refused).

use std::path::PathBuf;

use clap::Subcommand;
use congdan_core::identity::credential::{qr_symbol, Attribute, ShownAttribute};
use congdan_core::{Core, Error};

use crate::pick;
use crate::ticket::local_time;

#[derive(Subcommand)]
pub enum IdAction {
    /// Renew the credential from the server (online, logged in): 30 days, bound to this phone.
    Refresh,
    /// What the credential on this phone holds (offline).
    Show,
    /// Show a QR code with only these fields (offline): full_name, national_id, birth_date,
    /// age_over_18, age_over_60. `congdan id present full_name age_over_18`.
    Present {
        #[arg(required = true)]
        fields: Vec<String>,
        /// Write the QR code as a PNG image to this file.
        #[arg(long)]
        png: Option<PathBuf>,
        /// Print only the code's text (base45), for scripts.
        #[arg(long)]
        text: bool,
    },
    /// Front desk: fetch the city's credential keys (no login needed), kept for offline checks.
    Keys,
    /// Front desk: verify codes offline (QR text arguments and/or --png images). Exit status 0
    /// only when every code is accepted.
    Verify {
        codes: Vec<String>,
        #[arg(long = "png")]
        pngs: Vec<PathBuf>,
    },
}

fn parse_fields(names: &[String]) -> Result<Vec<Attribute>, Error> {
    names
        .iter()
        .flat_map(|n| n.split(','))
        .filter(|n| !n.trim().is_empty())
        .map(|n| {
            Attribute::from_name(n.trim())
                .ok_or_else(|| Error::InvalidConfig(format!("unknown field {n}: use full_name, national_id, birth_date, age_over_18, age_over_60")))
        })
        .collect()
}

/// One `label: value` line per attribute, in the chosen language.
fn print_fields(en: bool, fields: &[ShownAttribute]) {
    for a in fields {
        let (vi, english) = a.attribute.label();
        println!("  {}: {}", pick(en, vi, english), a.value);
    }
}

/// Runs `action`; false when a verified code was refused.
pub async fn run(core: &Core, action: IdAction, en: bool) -> Result<bool, Error> {
    match action {
        IdAction::Refresh => {
            let held = core.credential().refresh().await?;
            println!("{} {}", pick(en, "Đã gia hạn thẻ định danh đến", "Identity credential renewed until"), local_time(held.expires_at));
            print_fields(en, &held.attributes);
        }
        IdAction::Show => match core.credential().held()? {
            None => println!("{}", pick(en, "Chưa có thẻ định danh trên máy này: chạy `congdan id refresh` khi có mạng.", "No identity credential on this phone: run `congdan id refresh` while online.")),
            Some(held) => {
                println!("{} {}", pick(en, "Thẻ định danh, hạn đến", "Identity credential, valid until"), local_time(held.expires_at));
                print_fields(en, &held.attributes);
            }
        },
        IdAction::Present { fields, png, text } => {
            let code = core.credential().present(&parse_fields(&fields)?)?;
            if text {
                println!("{}", code.text);
                return Ok(true);
            }
            let qr = qr_symbol(&code.text).map_err(|e| Error::BadData(e.to_string()))?;
            if let Some(path) = png {
                let bytes = qr.to_png(6).map_err(|e| Error::BadData(e.to_string()))?;
                std::fs::write(&path, bytes).map_err(|source| Error::DataDirectory { path: path.clone(), source })?;
                println!("{} {}", pick(en, "Đã ghi mã QR vào", "QR code written to"), path.display());
            }
            print!("{}", qr.to_text_blocks());
            println!("{} {} {}", pick(en, "Mã đổi sau", "The code changes in"), code.seconds_remaining, pick(en, "giây.", "seconds."));
        }
        IdAction::Keys => {
            let n = core.credential_verifier().update_keys().await?;
            println!("{} {n}", pick(en, "Số khoá của thành phố đã lưu:", "City keys kept:"));
        }
        IdAction::Verify { codes, pngs } => {
            let verifier = core.credential_verifier();
            if verifier.trusted_key_count()? == 0 {
                return Err(Error::InvalidConfig("no city keys on this device: run `congdan id keys` while online".into()));
            }
            let mut inputs: Vec<(String, String)> = codes.into_iter().map(|c| ("code".to_string(), c)).collect();
            for path in &pngs {
                inputs.push((path.display().to_string(), crate::gate::code_from_png(path)?));
            }
            if inputs.is_empty() {
                return Err(Error::InvalidConfig("give a code or --png FILE".into()));
            }
            let mut all_accepted = true;
            for (source, text) in inputs {
                match verifier.verify(&text)? {
                    Ok(v) => {
                        println!("{source}: {}", pick(en, "HỢP LỆ", "VALID"));
                        print_fields(en, &v.shown);
                        println!("  {} {}", pick(en, "Thẻ có hạn đến", "Credential valid until"), local_time(v.expires_at));
                    }
                    Err(refusal) => {
                        all_accepted = false;
                        let (vi, english) = refusal.user_message();
                        println!("{source}: {} ({}) {}", pick(en, "KHÔNG HỢP LỆ", "REFUSED"), refusal.code(), pick(en, vi, english));
                    }
                }
            }
            return Ok(all_accepted);
        }
    }
    Ok(true)
}
