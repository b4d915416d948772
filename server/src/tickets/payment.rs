//! The payment provider behind a purchase. A real provider (a card acquirer, an e-wallet)
//! implements [`PaymentProvider`]; [`DemoPaymentProvider`] approves every charge and keeps its
//! book in the database, so a test can prove that a purchase retried after a timeout was
//! charged once.
//!
//! The contract a provider must keep is the one real providers offer: a charge is idempotent by
//! the key the caller gives (the purchase's own `Idempotency-Key`), so charging again after a
//! lost answer or a crashed instance returns the first charge instead of taking money twice.

use std::future::Future;
use std::pin::Pin;

use crate::db::{now_millis, postgres, sqlite, Db, DbError};

pub type PaymentFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, PaymentError>> + Send + 'a>>;

/// What to charge: the rider's account, the amount, and the idempotency key.
#[derive(Clone, Debug)]
pub struct ChargeRequest<'a> {
    pub account_id: &'a str,
    pub idempotency_key: &'a str,
    pub amount_vnd: u64,
}

/// A charge the provider accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Charge {
    pub charge_id: String,
    pub amount_vnd: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// The provider refused (insufficient funds, a key reused for another amount): final.
    #[error("payment declined: {0}")]
    Declined(&'static str),
    /// The provider could not be reached or failed: try again later with the same key.
    #[error("payment provider unavailable: {0}")]
    Unavailable(String),
}

impl From<DbError> for PaymentError {
    fn from(e: DbError) -> Self {
        PaymentError::Unavailable(e.to_string())
    }
}

pub trait PaymentProvider: Send + Sync {
    /// Charges once per (account, key): the same key again returns the first charge.
    fn charge<'a>(&'a self, request: ChargeRequest<'a>) -> PaymentFuture<'a, Charge>;
    /// Gives a charge's money back (a refund issued by the operator).
    fn refund<'a>(&'a self, charge_id: &'a str) -> PaymentFuture<'a, ()>;
}

/// Approves everything; its book is the `demo_payment_charges` table.
pub struct DemoPaymentProvider {
    db: Db,
}

impl DemoPaymentProvider {
    pub fn new(db: Db) -> DemoPaymentProvider {
        DemoPaymentProvider { db }
    }

    /// Every charge made for `account` (tests count them).
    pub async fn charges(&self, account_id: &str) -> Result<Vec<(String, u64, bool)>, DbError> {
        let ctx = "reading demo charges";
        let account = account_id.to_string();
        match &self.db {
            Db::Sqlite(pool) => {
                pool.read(ctx, move |c| {
                    let mut stmt = c.prepare(
                        "SELECT idempotency_key, amount_vnd, refunded_at IS NOT NULL FROM demo_payment_charges \
                         WHERE account_id = ?1 ORDER BY created_at, idempotency_key",
                    )?;
                    let rows = stmt.query_map([account], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64, r.get(2)?)))?;
                    rows.collect()
                })
                .await
            }
            Db::Postgres(pool) => Ok(pool
                .client()
                .await?
                .query(
                    "SELECT idempotency_key, amount_vnd, refunded_at IS NOT NULL FROM demo_payment_charges \
                     WHERE account_id = $1 ORDER BY created_at, idempotency_key",
                    &[&account],
                )
                .await
                .map_err(postgres::q(ctx))?
                .into_iter()
                .map(|r| (r.get(0), r.get::<_, i64>(1) as u64, r.get(2)))
                .collect()),
        }
    }

    async fn charge_once(&self, account: String, key: String, amount: i64) -> Result<Charge, PaymentError> {
        let ctx = "recording a demo charge";
        let new_id = uuid::Uuid::new_v4().to_string();
        let now = now_millis();
        // Insert if new, then read whichever charge holds the key (ours or the first one).
        let (charge_id, charged): (String, i64) = match &self.db {
            Db::Sqlite(pool) => {
                pool.write(ctx, move |tx| {
                    tx.execute(
                        "INSERT INTO demo_payment_charges(id, account_id, idempotency_key, amount_vnd, created_at) \
                         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(account_id, idempotency_key) DO NOTHING",
                        rusqlite::params![new_id, account, key, amount, now],
                    )
                    .map_err(sqlite::q(ctx))?;
                    tx.query_row(
                        "SELECT id, amount_vnd FROM demo_payment_charges WHERE account_id = ?1 AND idempotency_key = ?2",
                        rusqlite::params![account, key],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .map_err(sqlite::q(ctx))
                })
                .await?
            }
            Db::Postgres(pool) => {
                let client = pool.client().await?;
                client
                    .execute(
                        "INSERT INTO demo_payment_charges(id, account_id, idempotency_key, amount_vnd, created_at) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (account_id, idempotency_key) DO NOTHING",
                        &[&new_id, &account, &key, &amount, &now],
                    )
                    .await
                    .map_err(postgres::q(ctx))?;
                let row = client
                    .query_one(
                        "SELECT id, amount_vnd FROM demo_payment_charges WHERE account_id = $1 AND idempotency_key = $2",
                        &[&account, &key],
                    )
                    .await
                    .map_err(postgres::q(ctx))?;
                (row.get(0), row.get(1))
            }
        };
        if charged != amount {
            return Err(PaymentError::Declined("the key was used for another amount"));
        }
        Ok(Charge { charge_id, amount_vnd: charged as u64 })
    }

    async fn refund_once(&self, charge_id: String) -> Result<(), PaymentError> {
        let ctx = "refunding a demo charge";
        let now = now_millis();
        let changed = match &self.db {
            Db::Sqlite(pool) => {
                pool.write(ctx, move |tx| {
                    tx.execute(
                        "UPDATE demo_payment_charges SET refunded_at = COALESCE(refunded_at, ?2) WHERE id = ?1",
                        rusqlite::params![charge_id, now],
                    )
                    .map_err(sqlite::q(ctx))
                })
                .await? as u64
            }
            Db::Postgres(pool) => pool
                .client()
                .await?
                .execute(
                    "UPDATE demo_payment_charges SET refunded_at = COALESCE(refunded_at, $2) WHERE id = $1",
                    &[&charge_id, &now],
                )
                .await
                .map_err(postgres::q(ctx))?,
        };
        if changed == 0 {
            return Err(PaymentError::Declined("no such charge"));
        }
        Ok(())
    }
}

impl PaymentProvider for DemoPaymentProvider {
    fn charge<'a>(&'a self, request: ChargeRequest<'a>) -> PaymentFuture<'a, Charge> {
        Box::pin(async move {
            let amount = i64::try_from(request.amount_vnd).map_err(|_| PaymentError::Declined("amount out of range"))?;
            self.charge_once(request.account_id.to_string(), request.idempotency_key.to_string(), amount).await
        })
    }

    fn refund<'a>(&'a self, charge_id: &'a str) -> PaymentFuture<'a, ()> {
        Box::pin(self.refund_once(charge_id.to_string()))
    }
}
