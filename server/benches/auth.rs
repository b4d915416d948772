//! Server-side cost of authenticating one request (docs/identity.md, "Authenticated requests"):
//!
//! - (a) the bare signature checks: Ed25519 (access token) and P-256 ECDSA (DPoP proof);
//! - (b) access token verification plus DPoP proof parsing and checks: all crypto and parsing,
//!   no database;
//! - (c) the whole extractor path, including the replay record (and revocation read) in a real
//!   SQLite file, and in PostgreSQL when `CONGDAN_TEST_PG_URL` is set
//!   (`scripts/with-postgres.sh cargo bench -p congdan-server --bench auth`).
//!
//! Proofs are made before timing starts (signing is the phone's cost). Run with
//! `cargo bench -p congdan-server --bench auth`.

use std::sync::Arc;
use std::time::Instant;

use axum::http::{HeaderMap, HeaderValue, Method};
use congdan_core::crypto::jws::{self, b64url, Jwk, JwsError, JwsHeader};
use congdan_core::crypto::{Ed25519Signer, P256Signer, Signer};
use congdan_server::config::IdentityConfig;
use congdan_server::db::Db;
use congdan_server::identity::{auth, dpop, now_secs, tokens, Identity};
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, ED25519};
use serde_json::json;

const N: usize = 3000;

struct Stats {
    name: &'static str,
    micros: Vec<f64>,
}

impl Stats {
    fn row(mut self) {
        self.micros.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let p = |q: f64| self.micros[((self.micros.len() as f64 - 1.0) * q).round() as usize];
        let mean = self.micros.iter().sum::<f64>() / self.micros.len() as f64;
        println!("{:<58} {:>9.1} {:>9.1} {:>12.0}", self.name, p(0.50), p(0.99), 1e6 / mean);
    }
}

fn time(name: &'static str, mut f: impl FnMut(usize)) -> Stats {
    for i in 0..50 {
        f(i);
    }
    let micros = (0..N)
        .map(|i| {
            let t = Instant::now();
            f(i);
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    Stats { name, micros }
}

fn proof(device: &P256Signer, jwk: &Jwk, url: &str, token: &str, nonce: &str, i: usize) -> String {
    let header = JwsHeader { alg: "ES256".into(), typ: Some("dpop+jwt".into()), kid: None, jwk: Some(jwk.clone()), crit: None };
    let claims = json!({
        "jti": format!("bench-{i}-{}", b64url(&tokens::random_bytes::<8>().unwrap())),
        "htm": "GET", "htu": url, "iat": now_secs(),
        "ath": b64url(&tokens::sha256(token.as_bytes())), "nonce": nonce,
    });
    jws::sign_compact(&header, &claims, |m| device.sign(m).map(|s| s.to_vec()).map_err(|e| JwsError::Signing(e.to_string()))).unwrap()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    println!("congdan-server: authenticating one request ({N} iterations each)\n");
    println!("{:<58} {:>9} {:>9} {:>12}", "", "p50 µs", "p99 µs", "requests/s");

    // (a) Bare signature checks.
    let ed = Ed25519Signer::from_seed(&[7; 32], b"k".to_vec()).unwrap();
    let message = [42u8; 200];
    let ed_sig = ed.sign(&message).unwrap();
    let ed_pub = ed.public_key().bytes;
    time("(a) Ed25519 verify (bare)", |_| {
        UnparsedPublicKey::new(&ED25519, &ed_pub).verify(&message, &ed_sig).unwrap();
    })
    .row();
    let device = P256Signer::from_pkcs8(&P256Signer::generate_pkcs8().unwrap(), None).unwrap();
    let p_sig = device.sign(&message).unwrap();
    let p_pub = device.public_key().bytes;
    time("(a) P-256 ECDSA verify (bare)", |_| {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &p_pub).verify(&message, &p_sig).unwrap();
    })
    .row();

    // A real server state on a SQLite file: key ring, nonce secret, and a token it issued.
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}", dir.path().join("bench.db").display())).await.unwrap();
    let jwk = Jwk::from_p256_point(&device.public_key().bytes).unwrap();
    let sqlite = Session::start(&db, &jwk).await;
    let (identity, token) = (&sqlite.identity, &sqlite.token);
    let htu = identity.htu_for("/v1/me");
    let proofs: Vec<String> = (0..N + 50).map(|i| proof(&device, &jwk, URL, token, &sqlite.nonce, i)).collect();

    // (b) Token + proof, no database.
    time("(b) access token verify + DPoP proof parse and checks", |i| {
        let verified = tokens::verify(token, &*identity.keys.current()).unwrap();
        let p = dpop::parse_proof(&proofs[i]).unwrap();
        let expected = dpop::Expected { jkt: Some(&verified.jkt), method: "GET", htu: &htu, access_token: Some(token) };
        p.check(&expected, &identity.nonces, now_secs()).unwrap();
    })
    .row();

    // (c) The extractor path with the replay insert + revocation read, on each database.
    extractor_path("(c) full extractor path (replay insert on a SQLite file)", &sqlite, &db, &device, &jwk).await;
    if let Ok(admin) = std::env::var("CONGDAN_TEST_PG_URL") {
        let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        let name = format!("congdan_bench_auth_{}", std::process::id());
        client.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
        let pg = Db::connect(&format!("{}/{name}", admin.rsplit_once('/').unwrap().0)).await.unwrap();
        let session = Session::start(&pg, &jwk).await;
        extractor_path("(c) full extractor path (replay insert on PostgreSQL)", &session, &pg, &device, &jwk).await;
    } else {
        println!("(PostgreSQL skipped: run through scripts/with-postgres.sh)");
    }
}

const URL: &str = "http://127.0.0.1:8080/v1/me";

/// A server identity started on a database, an access token it issued for the device key, and
/// its current DPoP nonce.
struct Session {
    identity: Arc<Identity>,
    token: String,
    nonce: String,
}

impl Session {
    async fn start(db: &Db, jwk: &Jwk) -> Session {
        let identity = Identity::start(db, &IdentityConfig::embedded(), "127.0.0.1:8080".parse().unwrap()).await.unwrap();
        let claims = tokens::AccessClaims {
            account: uuid::Uuid::new_v4().to_string(),
            roles: vec!["resident".into()],
            jkt: jwk.thumbprint().unwrap(),
            family: uuid::Uuid::new_v4().to_string(),
            iat: now_secs(),
            exp: now_secs() + 600,
            jti: tokens::random_bytes::<16>().unwrap(),
        };
        let ring = identity.keys.for_signing().await.unwrap();
        let token = tokens::issue(&claims, ring.signer().as_ref()).unwrap();
        let nonce = identity.nonces.current(now_secs());
        Session { identity, token, nonce }
    }
}

/// Times `auth::authenticate` (token, proof, nonce, replay record and revocation read) on the
/// database the session's identity was started on.
async fn extractor_path(name: &'static str, session: &Session, db: &Db, device: &P256Signer, jwk: &Jwk) {
    let Session { identity, token, nonce } = session;
    let mut micros = Vec::with_capacity(N);
    let fresh: Vec<String> = (0..N + 50).map(|i| proof(device, jwk, URL, token, nonce, N + 100 + i)).collect();
    for (i, p) in fresh.iter().enumerate() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_str(&format!("DPoP {token}")).unwrap());
        headers.insert("dpop", HeaderValue::from_str(p).unwrap());
        let t = Instant::now();
        auth::authenticate(identity, db, &Method::GET, "/v1/me", &headers).await.unwrap();
        if i >= 50 {
            micros.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    Stats { name, micros }.row();
}
