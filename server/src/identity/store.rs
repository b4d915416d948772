//! Identity storage for both databases: login transactions, accounts and their profile change,
//! app codes, token families and refresh tokens, the DPoP replay store. Every decision that must
//! not race (single-use codes, refresh rotation, reuse detection) runs in one transaction that
//! holds the family row (`FOR UPDATE` on PostgreSQL; `BEGIN IMMEDIATE` on SQLite).

use congdan_core::identity::national_id;
use congdan_core::identity::wire::AccountInfo;

use super::dpop::constant_time_eq;
use crate::db::{now_millis, postgres, sqlite, Db, DbResult};
use crate::feed;

/// The change kind that tells the phone who it is logged in as.
pub const PROFILE_CHANGE: &str = "account.profile";

/// The stored feed behind a resident's `account` feed.
pub fn account_feed(account_id: &str) -> String {
    format!("account:{account_id}")
}

pub struct NewLoginTransaction {
    pub id_hash: [u8; 32],
    pub app_state: String,
    pub app_challenge: String,
    pub app_redirect_uri: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

pub struct LoginTransaction {
    pub app_state: String,
    pub app_challenge: String,
    pub app_redirect_uri: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

pub async fn create_login_transaction(db: &Db, t: NewLoginTransaction) -> DbResult<()> {
    let ctx = "storing a login transaction";
    let now = now_millis();
    match db {
        Db::Sqlite(pool) => {
            pool.write(ctx, move |tx| {
                tx.execute(
                    "INSERT INTO login_transactions(id, app_state, app_challenge, app_redirect_uri, nonce, \
                     pkce_verifier, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    rusqlite::params![t.id_hash.to_vec(), t.app_state, t.app_challenge, t.app_redirect_uri, t.nonce, t.pkce_verifier, now],
                )
                .map_err(sqlite::q(ctx))?;
                Ok(())
            })
            .await
        }
        Db::Postgres(pool) => {
            pool.client()
                .await?
                .execute(
                    "INSERT INTO login_transactions(id, app_state, app_challenge, app_redirect_uri, nonce, \
                     pkce_verifier, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &[&t.id_hash.to_vec(), &t.app_state, &t.app_challenge, &t.app_redirect_uri, &t.nonce, &t.pkce_verifier, &now],
                )
                .await
                .map_err(postgres::q(ctx))?;
            Ok(())
        }
    }
}

/// Takes a login transaction once: unused and younger than `max_age_ms`, else `None`. Its
/// provider-side secrets are wiped as it is taken.
pub async fn take_login_transaction(db: &Db, id_hash: [u8; 32], max_age_ms: i64) -> DbResult<Option<LoginTransaction>> {
    let ctx = "taking a login transaction";
    let now = now_millis();
    let oldest = now - max_age_ms;
    let row = |app_state, app_challenge, app_redirect_uri, nonce, pkce_verifier| LoginTransaction {
        app_state,
        app_challenge,
        app_redirect_uri,
        nonce,
        pkce_verifier,
    };
    // Read the secrets, then mark used and blank them, in one transaction.
    match db {
        Db::Sqlite(pool) => {
            pool.write(ctx, move |tx| {
                let found = tx.query_row(
                    "SELECT app_state, app_challenge, app_redirect_uri, nonce, pkce_verifier FROM login_transactions \
                     WHERE id = ?1 AND used_at IS NULL AND created_at > ?2",
                    rusqlite::params![id_hash.to_vec(), oldest],
                    |r| Ok(row(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                );
                let found = match found {
                    Ok(t) => t,
                    Err(rusqlite::Error::QueryReturnedNoRows) => return Ok(None),
                    Err(e) => return Err(sqlite::q(ctx)(e)),
                };
                tx.execute(
                    "UPDATE login_transactions SET used_at = ?2, pkce_verifier = '', nonce = '' WHERE id = ?1",
                    rusqlite::params![id_hash.to_vec(), now],
                )
                .map_err(sqlite::q(ctx))?;
                Ok(Some(found))
            })
            .await
        }
        Db::Postgres(pool) => {
            let client = pool.client().await?;
            // The old values come from a self-join on the locked row (RETURNING sees new values).
            let found = client
                .query_opt(
                    "UPDATE login_transactions t SET used_at = $2, pkce_verifier = '', nonce = '' \
                     FROM (SELECT id, app_state, app_challenge, app_redirect_uri, nonce, pkce_verifier \
                           FROM login_transactions WHERE id = $1 AND used_at IS NULL AND created_at > $3 FOR UPDATE) old \
                     WHERE t.id = old.id AND t.used_at IS NULL \
                     RETURNING old.app_state, old.app_challenge, old.app_redirect_uri, old.nonce, old.pkce_verifier",
                    &[&id_hash.to_vec(), &now, &oldest],
                )
                .await
                .map_err(postgres::q(ctx))?;
            Ok(found.map(|r| row(r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))))
        }
    }
}

pub struct NewAppCode {
    pub hash: [u8; 32],
    pub challenge: String,
    pub redirect_uri: String,
    pub expires_at_ms: i64,
}

fn profile_of(account_id: &str, national_id: &str, display_name: &str, roles: &[String]) -> String {
    let info = AccountInfo {
        account_id: account_id.to_string(),
        display_name: display_name.to_string(),
        national_id_masked: national_id::mask(national_id),
        roles: roles.to_vec(),
    };
    serde_json::to_string(&info).expect("account info serialises")
}

/// A verified login: finds or creates the account (by national ID number), publishes its profile
/// change when it is new or its name or roles changed, and stores the one-time app code. All in
/// one transaction. Returns the account id.
pub async fn complete_login(
    db: &Db,
    national_id: String,
    display_name: String,
    roles: Vec<String>,
    attributes: &super::attributes::VerifiedAttributes,
    code: NewAppCode,
) -> DbResult<String> {
    let ctx = "completing a login";
    let now = now_millis();
    // Replaced at every login: what the provider vouches for today.
    let attributes = attributes.to_stored();
    let new_id = uuid::Uuid::new_v4().to_string();
    match db {
        Db::Sqlite(pool) => {
            pool.write(ctx, move |tx| {
                let (id, stored): (String, String) = tx
                    .query_row(
                        "INSERT INTO accounts(id, national_id, display_name, profile, created_at, verified_attributes) \
                         VALUES (?1, ?2, ?3, '', ?4, ?5) \
                         ON CONFLICT(national_id) DO UPDATE SET display_name = excluded.display_name, \
                         verified_attributes = excluded.verified_attributes \
                         RETURNING id, profile",
                        rusqlite::params![new_id, national_id, display_name, now, attributes],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .map_err(sqlite::q(ctx))?;
                let profile = profile_of(&id, &national_id, &display_name, &roles);
                if profile != stored {
                    tx.execute("UPDATE accounts SET profile = ?2 WHERE id = ?1", rusqlite::params![id, profile])
                        .map_err(sqlite::q(ctx))?;
                    feed::append_sqlite(tx, &account_feed(&id), PROFILE_CHANGE, &id, &profile)?;
                }
                tx.execute(
                    "INSERT INTO app_codes(hash, account_id, challenge, redirect_uri, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    rusqlite::params![code.hash.to_vec(), id, code.challenge, code.redirect_uri, code.expires_at_ms],
                )
                .map_err(sqlite::q(ctx))?;
                Ok(id)
            })
            .await
        }
        Db::Postgres(pool) => {
            let mut client = pool.client().await?;
            let existing: Option<String> = client
                .query_opt("SELECT id FROM accounts WHERE national_id = $1", &[&national_id])
                .await
                .map_err(postgres::q(ctx))?
                .map(|r| r.get(0));
            let mut id = existing.unwrap_or(new_id);
            let tx = client.transaction().await.map_err(postgres::q(ctx))?;
            // The feed head is locked before any other row (feed.rs), so writers cannot deadlock.
            let first_feed = account_feed(&id);
            let second_feed;
            let mut locked = feed::lock_pg(&tx, &first_feed).await?;
            let row = tx
                .query_one(
                    "INSERT INTO accounts(id, national_id, display_name, profile, created_at, verified_attributes) \
                     VALUES ($1, $2, $3, '', $4, $5) \
                     ON CONFLICT (national_id) DO UPDATE SET display_name = excluded.display_name, \
                     verified_attributes = excluded.verified_attributes \
                     RETURNING id, profile",
                    &[&id, &national_id, &display_name, &now, &attributes],
                )
                .await
                .map_err(postgres::q(ctx))?;
            let (returned, stored): (String, String) = (row.get(0), row.get(1));
            if returned != id {
                // A first login of the same person raced ours and created the account.
                id = returned;
                second_feed = account_feed(&id);
                locked = feed::lock_pg(&tx, &second_feed).await?;
            }
            let profile = profile_of(&id, &national_id, &display_name, &roles);
            if profile != stored {
                tx.execute("UPDATE accounts SET profile = $2 WHERE id = $1", &[&id, &profile])
                    .await
                    .map_err(postgres::q(ctx))?;
                locked.append(PROFILE_CHANGE, &id, &profile).await?;
            }
            tx.execute(
                "INSERT INTO app_codes(hash, account_id, challenge, redirect_uri, expires_at) VALUES ($1, $2, $3, $4, $5)",
                &[&code.hash.to_vec(), &id, &code.challenge, &code.redirect_uri, &code.expires_at_ms],
            )
            .await
            .map_err(postgres::q(ctx))?;
            tx.commit().await.map_err(postgres::q(ctx))?;
            Ok(id)
        }
    }
}

/// Who a token is for: enough to compute roles and answer with an [`AccountInfo`].
#[derive(Clone)]
pub struct AccountRow {
    pub account_id: String,
    pub national_id: String,
    pub display_name: String,
}

/// What a successful grant gives: the account and the family the new tokens belong to.
pub struct Granted {
    pub account: AccountRow,
    pub family_id: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum GrantError {
    /// Unknown, expired, used, revoked, or redirect URI differs: `invalid_grant`.
    InvalidGrant,
    PkceMismatch,
    /// Another device key than the family's: `dpop_key_mismatch`, the family untouched.
    KeyMismatch,
    /// A used refresh token presented outside the grace window: the family is now revoked.
    Reused,
}

pub struct CodeRedemption {
    pub code_hash: [u8; 32],
    /// base64url(SHA-256(code_verifier)), to compare with the stored challenge.
    pub verifier_challenge: String,
    pub redirect_uri: String,
    pub jkt: String,
    pub public_jwk: String,
    pub refresh_hash: [u8; 32],
    pub refresh_ttl_ms: i64,
}

struct CodeRow {
    account_id: String,
    challenge: String,
    redirect_uri: String,
    expires_at: i64,
    used_at: Option<i64>,
    family_id: Option<String>,
}

enum CodeDecision {
    Redeem,
    Refuse(GrantError),
    /// A used code again: refuse, and revoke the family it produced (RFC 6749 §4.1.2).
    ReusedCode(Option<String>),
}

fn decide_code(row: &CodeRow, r: &CodeRedemption, now: i64) -> CodeDecision {
    if row.used_at.is_some() {
        return CodeDecision::ReusedCode(row.family_id.clone());
    }
    if row.expires_at <= now || row.redirect_uri != r.redirect_uri {
        return CodeDecision::Refuse(GrantError::InvalidGrant);
    }
    if !constant_time_eq(row.challenge.as_bytes(), r.verifier_challenge.as_bytes()) {
        return CodeDecision::Refuse(GrantError::PkceMismatch);
    }
    CodeDecision::Redeem
}

/// The authorization code grant: code single use (burnt even when PKCE fails), family bound to
/// the proof's key, device registered, first refresh token stored. One transaction.
pub async fn redeem_code(db: &Db, r: CodeRedemption) -> DbResult<Result<Granted, GrantError>> {
    let ctx = "redeeming an app code";
    let now = now_millis();
    let family_id = uuid::Uuid::new_v4().to_string();
    match db {
        Db::Sqlite(pool) => {
            pool.write(ctx, move |tx| {
                let row = tx.query_row(
                    "SELECT account_id, challenge, redirect_uri, expires_at, used_at, family_id FROM app_codes WHERE hash = ?1",
                    [r.code_hash.to_vec()],
                    |x| Ok(CodeRow { account_id: x.get(0)?, challenge: x.get(1)?, redirect_uri: x.get(2)?, expires_at: x.get(3)?, used_at: x.get(4)?, family_id: x.get(5)? }),
                );
                let row = match row {
                    Ok(row) => row,
                    Err(rusqlite::Error::QueryReturnedNoRows) => return Ok(Err(GrantError::InvalidGrant)),
                    Err(e) => return Err(sqlite::q(ctx)(e)),
                };
                let s = |e| sqlite::q(ctx)(e);
                match decide_code(&row, &r, now) {
                    CodeDecision::ReusedCode(family) => {
                        if let Some(f) = family {
                            revoke_family_sqlite(tx, &f, "code_reused", now)?;
                        }
                        return Ok(Err(GrantError::InvalidGrant));
                    }
                    CodeDecision::Refuse(e) => {
                        tx.execute("UPDATE app_codes SET used_at = ?2 WHERE hash = ?1", rusqlite::params![r.code_hash.to_vec(), now]).map_err(s)?;
                        return Ok(Err(e));
                    }
                    CodeDecision::Redeem => {}
                }
                // A device key its resident revoked (a lost phone) never logs in again.
                let revoked = tx.query_row(
                    "SELECT revoked_at IS NOT NULL FROM devices WHERE account_id = ?1 AND jkt = ?2",
                    rusqlite::params![row.account_id, r.jkt],
                    |x| x.get::<_, bool>(0),
                );
                match revoked {
                    Ok(true) => {
                        tx.execute("UPDATE app_codes SET used_at = ?2 WHERE hash = ?1", rusqlite::params![r.code_hash.to_vec(), now]).map_err(s)?;
                        return Ok(Err(GrantError::InvalidGrant));
                    }
                    Ok(false) | Err(rusqlite::Error::QueryReturnedNoRows) => {}
                    Err(e) => return Err(s(e)),
                }
                tx.execute(
                    "UPDATE app_codes SET used_at = ?2, family_id = ?3 WHERE hash = ?1",
                    rusqlite::params![r.code_hash.to_vec(), now, family_id],
                )
                .map_err(s)?;
                tx.execute(
                    "INSERT INTO token_families(id, account_id, jkt, created_at) VALUES (?1, ?2, ?3, ?4)",
                    rusqlite::params![family_id, row.account_id, r.jkt, now],
                )
                .map_err(s)?;
                tx.execute(
                    "INSERT INTO devices(account_id, jkt, public_jwk, first_seen, last_seen) VALUES (?1, ?2, ?3, ?4, ?4) \
                     ON CONFLICT(account_id, jkt) DO UPDATE SET last_seen = excluded.last_seen",
                    rusqlite::params![row.account_id, r.jkt, r.public_jwk, now],
                )
                .map_err(s)?;
                tx.execute(
                    "INSERT INTO refresh_tokens(hash, family_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
                    rusqlite::params![r.refresh_hash.to_vec(), family_id, now, now + r.refresh_ttl_ms],
                )
                .map_err(s)?;
                let account = account_sqlite(tx, &row.account_id)?;
                Ok(Ok(Granted { account, family_id }))
            })
            .await
        }
        Db::Postgres(pool) => {
            let mut client = pool.client().await?;
            let tx = client.transaction().await.map_err(postgres::q(ctx))?;
            let p = |e| postgres::q(ctx)(e);
            let Some(x) = tx
                .query_opt(
                    "SELECT account_id, challenge, redirect_uri, expires_at, used_at, family_id FROM app_codes WHERE hash = $1 FOR UPDATE",
                    &[&r.code_hash.to_vec()],
                )
                .await
                .map_err(p)?
            else {
                return Ok(Err(GrantError::InvalidGrant));
            };
            let row = CodeRow { account_id: x.get(0), challenge: x.get(1), redirect_uri: x.get(2), expires_at: x.get(3), used_at: x.get(4), family_id: x.get(5) };
            match decide_code(&row, &r, now) {
                CodeDecision::ReusedCode(family) => {
                    if let Some(f) = family {
                        revoke_family_pg(&tx, &f, "code_reused", now).await?;
                    }
                    tx.commit().await.map_err(p)?;
                    return Ok(Err(GrantError::InvalidGrant));
                }
                CodeDecision::Refuse(e) => {
                    tx.execute("UPDATE app_codes SET used_at = $2 WHERE hash = $1", &[&r.code_hash.to_vec(), &now]).await.map_err(p)?;
                    tx.commit().await.map_err(p)?;
                    return Ok(Err(e));
                }
                CodeDecision::Redeem => {}
            }
            // A device key its resident revoked (a lost phone) never logs in again.
            let revoked = tx
                .query_opt("SELECT revoked_at IS NOT NULL FROM devices WHERE account_id = $1 AND jkt = $2", &[&row.account_id, &r.jkt])
                .await
                .map_err(p)?
                .is_some_and(|x| x.get::<_, bool>(0));
            if revoked {
                tx.execute("UPDATE app_codes SET used_at = $2 WHERE hash = $1", &[&r.code_hash.to_vec(), &now]).await.map_err(p)?;
                tx.commit().await.map_err(p)?;
                return Ok(Err(GrantError::InvalidGrant));
            }
            tx.execute("UPDATE app_codes SET used_at = $2, family_id = $3 WHERE hash = $1", &[&r.code_hash.to_vec(), &now, &family_id])
                .await
                .map_err(p)?;
            tx.execute(
                "INSERT INTO token_families(id, account_id, jkt, created_at) VALUES ($1, $2, $3, $4)",
                &[&family_id, &row.account_id, &r.jkt, &now],
            )
            .await
            .map_err(p)?;
            tx.execute(
                "INSERT INTO devices(account_id, jkt, public_jwk, first_seen, last_seen) VALUES ($1, $2, $3, $4, $4) \
                 ON CONFLICT (account_id, jkt) DO UPDATE SET last_seen = excluded.last_seen",
                &[&row.account_id, &r.jkt, &r.public_jwk, &now],
            )
            .await
            .map_err(p)?;
            tx.execute(
                "INSERT INTO refresh_tokens(hash, family_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
                &[&r.refresh_hash.to_vec(), &family_id, &now, &(now + r.refresh_ttl_ms)],
            )
            .await
            .map_err(p)?;
            let account = account_pg(&tx, &row.account_id).await?;
            tx.commit().await.map_err(p)?;
            Ok(Ok(Granted { account, family_id }))
        }
    }
}

pub struct RefreshRequest {
    pub hash: [u8; 32],
    pub jkt: String,
    pub new_hash: [u8; 32],
    pub grace_ms: i64,
    pub ttl_ms: i64,
}

struct FamilyRow {
    account_id: String,
    jkt: String,
    revoked: bool,
}

struct RefreshRow {
    family_id: String,
    expires_at: i64,
    used_at: Option<i64>,
    successor: Option<Vec<u8>>,
    revoked: bool,
}

enum RefreshDecision {
    Rotate,
    /// The response to the first use was lost: replace its never-used successor.
    GraceRetry(Vec<u8>),
    Refuse(GrantError),
    Reuse,
}

/// The rules of docs/identity.md, "Refresh tokens", on rows read under the family lock.
fn decide_refresh(token: &RefreshRow, family: &FamilyRow, successor_unused: bool, req: &RefreshRequest, now: i64) -> RefreshDecision {
    if family.revoked || token.revoked || token.expires_at <= now {
        return RefreshDecision::Refuse(GrantError::InvalidGrant);
    }
    if !constant_time_eq(family.jkt.as_bytes(), req.jkt.as_bytes()) {
        return RefreshDecision::Refuse(GrantError::KeyMismatch);
    }
    match (token.used_at, &token.successor) {
        (None, _) => RefreshDecision::Rotate,
        (Some(used), Some(successor)) if now - used <= req.grace_ms && successor_unused => {
            RefreshDecision::GraceRetry(successor.clone())
        }
        _ => RefreshDecision::Reuse,
    }
}

/// The refresh token grant, in one transaction holding the family row.
pub async fn refresh(db: &Db, req: RefreshRequest) -> DbResult<Result<Granted, GrantError>> {
    let ctx = "refreshing tokens";
    let now = now_millis();
    match db {
        Db::Sqlite(pool) => {
            pool.write(ctx, move |tx| {
                let s = |e| sqlite::q(ctx)(e);
                let token = tx.query_row(
                    "SELECT family_id, expires_at, used_at, successor_hash, revoked_at IS NOT NULL FROM refresh_tokens WHERE hash = ?1",
                    [req.hash.to_vec()],
                    |r| Ok(RefreshRow { family_id: r.get(0)?, expires_at: r.get(1)?, used_at: r.get(2)?, successor: r.get(3)?, revoked: r.get(4)? }),
                );
                let token = match token {
                    Ok(t) => t,
                    Err(rusqlite::Error::QueryReturnedNoRows) => return Ok(Err(GrantError::InvalidGrant)),
                    Err(e) => return Err(s(e)),
                };
                let family = tx
                    .query_row(
                        "SELECT account_id, jkt, revoked_at IS NOT NULL FROM token_families WHERE id = ?1",
                        [&token.family_id],
                        |r| Ok(FamilyRow { account_id: r.get(0)?, jkt: r.get(1)?, revoked: r.get(2)? }),
                    )
                    .map_err(s)?;
                let successor_unused = match &token.successor {
                    Some(h) => tx
                        .query_row("SELECT used_at IS NULL AND revoked_at IS NULL FROM refresh_tokens WHERE hash = ?1", [h], |r| r.get(0))
                        .map_err(s)?,
                    None => false,
                };
                match decide_refresh(&token, &family, successor_unused, &req, now) {
                    RefreshDecision::Refuse(e) => return Ok(Err(e)),
                    RefreshDecision::Reuse => {
                        revoke_family_sqlite(tx, &token.family_id, "refresh_token_reused", now)?;
                        return Ok(Err(GrantError::Reused));
                    }
                    RefreshDecision::GraceRetry(successor) => {
                        tx.execute("UPDATE refresh_tokens SET revoked_at = ?2 WHERE hash = ?1", rusqlite::params![successor, now]).map_err(s)?;
                        tx.execute("UPDATE refresh_tokens SET successor_hash = ?2 WHERE hash = ?1", rusqlite::params![req.hash.to_vec(), req.new_hash.to_vec()]).map_err(s)?;
                    }
                    RefreshDecision::Rotate => {
                        tx.execute(
                            "UPDATE refresh_tokens SET used_at = ?2, successor_hash = ?3 WHERE hash = ?1",
                            rusqlite::params![req.hash.to_vec(), now, req.new_hash.to_vec()],
                        )
                        .map_err(s)?;
                    }
                }
                tx.execute(
                    "INSERT INTO refresh_tokens(hash, family_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
                    rusqlite::params![req.new_hash.to_vec(), token.family_id, now, now + req.ttl_ms],
                )
                .map_err(s)?;
                tx.execute(
                    "UPDATE devices SET last_seen = ?3 WHERE account_id = ?1 AND jkt = ?2",
                    rusqlite::params![family.account_id, family.jkt, now],
                )
                .map_err(s)?;
                let account = account_sqlite(tx, &family.account_id)?;
                Ok(Ok(Granted { account, family_id: token.family_id }))
            })
            .await
        }
        Db::Postgres(pool) => {
            let mut client = pool.client().await?;
            let tx = client.transaction().await.map_err(postgres::q(ctx))?;
            let p = |e| postgres::q(ctx)(e);
            let Some(family_id) = tx
                .query_opt("SELECT family_id FROM refresh_tokens WHERE hash = $1", &[&req.hash.to_vec()])
                .await
                .map_err(p)?
                .map(|r| r.get::<_, String>(0))
            else {
                return Ok(Err(GrantError::InvalidGrant));
            };
            // The family row is the lock every change to its tokens takes first: two refreshes
            // of one family run one after the other, so no race lets two successors live.
            let f = tx
                .query_one("SELECT account_id, jkt, revoked_at IS NOT NULL FROM token_families WHERE id = $1 FOR UPDATE", &[&family_id])
                .await
                .map_err(p)?;
            let family = FamilyRow { account_id: f.get(0), jkt: f.get(1), revoked: f.get(2) };
            let t = tx
                .query_one(
                    "SELECT family_id, expires_at, used_at, successor_hash, revoked_at IS NOT NULL FROM refresh_tokens WHERE hash = $1",
                    &[&req.hash.to_vec()],
                )
                .await
                .map_err(p)?;
            let token = RefreshRow { family_id: t.get(0), expires_at: t.get(1), used_at: t.get(2), successor: t.get(3), revoked: t.get(4) };
            let successor_unused = match &token.successor {
                Some(h) => tx
                    .query_one("SELECT used_at IS NULL AND revoked_at IS NULL FROM refresh_tokens WHERE hash = $1", &[h])
                    .await
                    .map_err(p)?
                    .get(0),
                None => false,
            };
            match decide_refresh(&token, &family, successor_unused, &req, now) {
                RefreshDecision::Refuse(e) => return Ok(Err(e)),
                RefreshDecision::Reuse => {
                    revoke_family_pg(&tx, &family_id, "refresh_token_reused", now).await?;
                    tx.commit().await.map_err(p)?;
                    return Ok(Err(GrantError::Reused));
                }
                RefreshDecision::GraceRetry(successor) => {
                    tx.execute("UPDATE refresh_tokens SET revoked_at = $2 WHERE hash = $1", &[&successor, &now]).await.map_err(p)?;
                    tx.execute("UPDATE refresh_tokens SET successor_hash = $2 WHERE hash = $1", &[&req.hash.to_vec(), &req.new_hash.to_vec()])
                        .await
                        .map_err(p)?;
                }
                RefreshDecision::Rotate => {
                    tx.execute(
                        "UPDATE refresh_tokens SET used_at = $2, successor_hash = $3 WHERE hash = $1",
                        &[&req.hash.to_vec(), &now, &req.new_hash.to_vec()],
                    )
                    .await
                    .map_err(p)?;
                }
            }
            tx.execute(
                "INSERT INTO refresh_tokens(hash, family_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
                &[&req.new_hash.to_vec(), &family_id, &now, &(now + req.ttl_ms)],
            )
            .await
            .map_err(p)?;
            tx.execute("UPDATE devices SET last_seen = $3 WHERE account_id = $1 AND jkt = $2", &[&family.account_id, &family.jkt, &now])
                .await
                .map_err(p)?;
            let account = account_pg(&tx, &family.account_id).await?;
            tx.commit().await.map_err(p)?;
            Ok(Ok(Granted { account, family_id }))
        }
    }
}

fn revoke_family_sqlite(tx: &rusqlite::Transaction<'_>, family: &str, reason: &str, now: i64) -> DbResult<()> {
    let ctx = "revoking a token family";
    tx.execute(
        "UPDATE token_families SET revoked_at = ?2, revoked_reason = ?3 WHERE id = ?1 AND revoked_at IS NULL",
        rusqlite::params![family, now, reason],
    )
    .map_err(sqlite::q(ctx))?;
    tx.execute("UPDATE refresh_tokens SET revoked_at = ?2 WHERE family_id = ?1 AND revoked_at IS NULL", rusqlite::params![family, now])
        .map_err(sqlite::q(ctx))?;
    Ok(())
}

async fn revoke_family_pg(tx: &tokio_postgres::Transaction<'_>, family: &str, reason: &str, now: i64) -> DbResult<()> {
    let ctx = "revoking a token family";
    tx.execute(
        "UPDATE token_families SET revoked_at = $2, revoked_reason = $3 WHERE id = $1 AND revoked_at IS NULL",
        &[&family, &now, &reason],
    )
    .await
    .map_err(postgres::q(ctx))?;
    tx.execute("UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL", &[&family, &now])
        .await
        .map_err(postgres::q(ctx))?;
    Ok(())
}

/// Logout: the family's refresh tokens and (through the replay check) its access tokens.
pub async fn revoke_family(db: &Db, family: &str, reason: &'static str) -> DbResult<()> {
    let ctx = "revoking a token family";
    let now = now_millis();
    let family = family.to_string();
    match db {
        Db::Sqlite(pool) => pool.write(ctx, move |tx| revoke_family_sqlite(tx, &family, reason, now)).await,
        Db::Postgres(pool) => {
            let mut client = pool.client().await?;
            let tx = client.transaction().await.map_err(postgres::q(ctx))?;
            revoke_family_pg(&tx, &family, reason, now).await?;
            tx.commit().await.map_err(postgres::q(ctx))
        }
    }
}

fn read_account_sqlite(c: &rusqlite::Connection, id: &str) -> rusqlite::Result<AccountRow> {
    c.query_row("SELECT id, national_id, display_name FROM accounts WHERE id = ?1", [id], |r| {
        Ok(AccountRow { account_id: r.get(0)?, national_id: r.get(1)?, display_name: r.get(2)? })
    })
}

fn account_sqlite(c: &rusqlite::Connection, id: &str) -> DbResult<AccountRow> {
    read_account_sqlite(c, id).map_err(sqlite::q("reading an account"))
}

const ACCOUNT_PG: &str = "SELECT id, national_id, display_name FROM accounts WHERE id = $1";

fn account_row_pg(r: tokio_postgres::Row) -> AccountRow {
    AccountRow { account_id: r.get(0), national_id: r.get(1), display_name: r.get(2) }
}

async fn account_pg(tx: &tokio_postgres::Transaction<'_>, id: &str) -> DbResult<AccountRow> {
    let r = tx.query_one(ACCOUNT_PG, &[&id]).await.map_err(postgres::q("reading an account"))?;
    Ok(account_row_pg(r))
}

pub async fn account(db: &Db, id: &str) -> DbResult<AccountRow> {
    let id = id.to_string();
    match db {
        Db::Sqlite(pool) => pool.read("reading an account", move |c| read_account_sqlite(c, &id)).await,
        Db::Postgres(pool) => {
            let r = pool.client().await?.query_one(ACCOUNT_PG, &[&id]).await.map_err(postgres::q("reading an account"))?;
            Ok(account_row_pg(r))
        }
    }
}

/// What the replay check learnt, in one round trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayCheck {
    /// The proof's key was not seen before (now it is).
    pub fresh: bool,
    /// The token family is revoked (logout, reuse). False when no family is given.
    pub family_revoked: bool,
}

/// Records a proof (`key` = SHA-256(jkt ‖ jti)) if absent and reads the family's revocation:
/// one statement on PostgreSQL, one transaction on SQLite.
pub async fn record_proof(db: &Db, key: [u8; 32], expires_at_ms: i64, family: Option<&str>) -> DbResult<ReplayCheck> {
    let ctx = "checking a DPoP proof for replay";
    let family = family.unwrap_or("").to_string();
    match db {
        Db::Sqlite(pool) => {
            pool.write(ctx, move |tx| {
                let s = |e| sqlite::q(ctx)(e);
                let inserted = tx
                    .prepare_cached("INSERT INTO dpop_jtis(key, expires_at) VALUES (?1, ?2) ON CONFLICT(key) DO NOTHING")
                    .and_then(|mut st| st.execute(rusqlite::params![key.to_vec(), expires_at_ms]))
                    .map_err(s)?;
                let revoked = tx
                    .prepare_cached("SELECT EXISTS(SELECT 1 FROM token_families WHERE id = ?1 AND revoked_at IS NOT NULL)")
                    .and_then(|mut st| st.query_row([&family], |r| r.get::<_, bool>(0)))
                    .map_err(s)?;
                Ok(ReplayCheck { fresh: inserted == 1, family_revoked: revoked })
            })
            .await
        }
        Db::Postgres(pool) => {
            let client = pool.client().await?;
            let stmt = client
                .prepare_cached(
                    "WITH ins AS (INSERT INTO dpop_jtis(key, expires_at) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING RETURNING 1) \
                     SELECT EXISTS(SELECT 1 FROM ins), \
                            EXISTS(SELECT 1 FROM token_families WHERE id = $3 AND revoked_at IS NOT NULL)",
                )
                .await
                .map_err(postgres::q(ctx))?;
            let row = client.query_one(&stmt, &[&key.to_vec(), &expires_at_ms, &family]).await.map_err(postgres::q(ctx))?;
            Ok(ReplayCheck { fresh: row.get(0), family_revoked: row.get(1) })
        }
    }
}

/// Deletes what has expired: replay records, login transactions and app codes older than a day.
pub async fn cleanup(db: &Db) -> DbResult<u64> {
    let ctx = "cleaning up expired identity records";
    let now = now_millis();
    let day_ago = now - 86_400_000;
    match db {
        Db::Sqlite(pool) => {
            pool.write(ctx, move |tx| {
                let s = |e| sqlite::q(ctx)(e);
                let mut n = tx.execute("DELETE FROM dpop_jtis WHERE expires_at < ?1", [now]).map_err(s)?;
                n += tx.execute("DELETE FROM login_transactions WHERE created_at < ?1", [day_ago]).map_err(s)?;
                n += tx.execute("DELETE FROM app_codes WHERE expires_at < ?1", [day_ago]).map_err(s)?;
                Ok(n as u64)
            })
            .await
        }
        Db::Postgres(pool) => {
            let client = pool.client().await?;
            let p = |e| postgres::q(ctx)(e);
            let mut n = client.execute("DELETE FROM dpop_jtis WHERE expires_at < $1", &[&now]).await.map_err(p)?;
            n += client.execute("DELETE FROM login_transactions WHERE created_at < $1", &[&day_ago]).await.map_err(p)?;
            n += client.execute("DELETE FROM app_codes WHERE expires_at < $1", &[&day_ago]).await.map_err(p)?;
            Ok(n)
        }
    }
}
