//! Foundation benchmark: prints a table. `cargo bench -p congdan-core` measures; under
//! `cargo test` (no `--bench` argument) it runs a few iterations only, as a smoke test.
//!
//! The catalog is the city's size: 740 online procedures (the demo catalog's forms, renamed).

use std::time::{Duration, Instant};

use congdan_core::platform::Platform;
use congdan_core::{Core, CoreConfig};
use congdan_server::catalog::{self, store};

const CATALOG_SIZE: usize = 740;

struct Row {
    name: &'static str,
    samples: Vec<Duration>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn measure(name: &'static str, iterations: usize, mut f: impl FnMut()) -> Row {
    f(); // warm-up
    let samples = (0..iterations)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    Row { name, samples }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let scale = if full { 1 } else { 50 };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let tmp = tempfile::tempdir().unwrap();

    // A server with a city-sized catalog.
    let mut config = congdan_server::ServerConfig::embedded(&tmp.path().join("server"));
    config.listen = "127.0.0.1:0".parse().unwrap();
    let server = rt.block_on(congdan_server::start(config)).unwrap();
    let templates = catalog::parse_catalog(catalog::DEMO_CATALOG).unwrap();
    let words = ["quận", "phường", "thành phố", "cấp lại", "điều chỉnh", "gia hạn", "xác nhận", "thay đổi"];
    let big: Vec<_> = (0..CATALOG_SIZE - templates.len())
        .map(|i| {
            let mut p = templates[i % templates.len()].clone();
            p.code = format!("GEN-{i:04}");
            p.name.vi = format!("{} {} {}", p.name.vi, words[i % words.len()], i);
            p
        })
        .collect();
    rt.block_on(store::publish(&server.state.db, big)).unwrap();
    let url = server.url();

    let mut rows = Vec::new();
    let mut pull_dir = 0;
    rows.push(measure("catalog pull, 740 procedures (fresh phone)", 20 / scale.min(10) + 1, || {
        pull_dir += 1;
        let core = Core::open(CoreConfig::new(tmp.path().join(format!("pull-{pull_dir}")), &url), Platform::software(&tmp.path().join(format!("pull-{pull_dir}"))).unwrap()).unwrap();
        let r = rt.block_on(core.sync(&|_| true)).unwrap();
        assert_eq!(r.changes_applied as usize, CATALOG_SIZE);
    }));
    let phone = tmp.path().join("pull-1");
    rows.push(measure("open store, catalog cached", 200 / scale, || {
        let core = Core::open(CoreConfig::new(&phone, &url), Platform::software(&phone).unwrap()).unwrap();
        assert_eq!(core.catalog().status().unwrap().procedure_count as usize, CATALOG_SIZE);
    }));
    let core = Core::open(CoreConfig::new(&phone, &url), Platform::software(&phone).unwrap()).unwrap();
    let queries = ["tam tru", "Đăng ký khai sinh", "giay phep xay dung", "ho kinh doanh phuong", "1022"];
    let mut q = 0;
    rows.push(measure("offline search (740 procedures)", 2000 / scale, || {
        q += 1;
        let found = core.catalog().search(queries[q % queries.len()], 20).unwrap();
        assert!(!found.is_empty());
    }));
    rows.push(measure("offline list (740 procedures)", 500 / scale, || {
        assert_eq!(core.catalog().list(None).unwrap().len(), CATALOG_SIZE);
    }));
    rows.push(measure("second pull, nothing new", 200 / scale, || {
        assert_eq!(rt.block_on(core.sync(&|_| true)).unwrap().changes_applied, 0);
    }));

    // Signed statements: full verification next to the bare signature check, same key, same run.
    use congdan_core::crypto::{self, FieldKind, FieldSpec, FieldValue, Fields, Schema, Signer};
    const SCHEMA: Schema = Schema {
        statement_type: 0xF0,
        name: "bench",
        fields: &[
            FieldSpec { tag: 1, name: "id", kind: FieldKind::Bytes, required: true },
            FieldSpec { tag: 2, name: "valid_from", kind: FieldKind::U64, required: true },
            FieldSpec { tag: 3, name: "valid_to", kind: FieldKind::U64, required: true },
            FieldSpec { tag: 4, name: "device_key", kind: FieldKind::Bytes, required: true },
        ],
    };
    let fields = Fields::from([
        (1, FieldValue::Bytes(vec![7; 16])),
        (2, FieldValue::U64(1_790_000_000)),
        (3, FieldValue::U64(1_790_086_400)),
        (4, FieldValue::Bytes(vec![4; 65])),
    ]);
    let ed = crypto::Ed25519Signer::from_pkcs8(&crypto::Ed25519Signer::generate_pkcs8().unwrap(), b"op-1".to_vec()).unwrap();
    let p256 = crypto::P256Signer::from_pkcs8(&crypto::P256Signer::generate_pkcs8().unwrap(), None).unwrap();
    for (label_bare, label_full, signer, public) in [
        ("Ed25519 verify, bare", "Ed25519 statement verify (envelope+fields)", &ed as &dyn Signer, ed.public_key()),
        ("P-256 verify, bare", "P-256 statement verify (envelope+fields)", &p256 as &dyn Signer, p256.public_key()),
    ] {
        let statement = crypto::sign(&SCHEMA, &fields, signer).unwrap();
        let keys = vec![(signer.key_id().to_vec(), public.clone())];
        let signed_len = statement.len() - crypto::SIGNATURE_LEN;
        rows.push(measure(label_bare, 5000 / scale, || {
            public.verify(&statement[..signed_len], &statement[signed_len..]).unwrap();
        }));
        rows.push(measure(label_full, 5000 / scale, || {
            crypto::verify(&SCHEMA, &statement, &keys).unwrap();
        }));
    }

    println!("\n{:<44} {:>8} {:>12} {:>12}", "benchmark", "samples", "p50", "p99");
    for mut row in rows {
        row.samples.sort();
        println!(
            "{:<44} {:>8} {:>12.3?} {:>12.3?}",
            row.name,
            row.samples.len(),
            percentile(&row.samples, 0.5),
            percentile(&row.samples, 0.99)
        );
    }
    if !full {
        println!("(smoke run: pass --bench, or use `cargo bench`, for real numbers)");
    }
    rt.block_on(server.shutdown());
}
