//! The real core and the real server with a fault-injecting TCP proxy between them on loopback:
//! refused answers, responses cut halfway, overload. Every sync either completes with the whole
//! catalog or leaves the cache exactly as a completed page left it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use congdan_core::platform::Platform;
use congdan_core::sync::SyncState;
use congdan_core::{Core, CoreConfig, Error};
use congdan_server::catalog;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Answer 503 with Retry-After and close, without reaching the server.
    Overloaded,
    /// Forward the request, then deliver only half of the server's response and reset.
    CutResponse,
    /// Accept and close at once.
    Slam,
}

/// A proxy whose next connections suffer the queued faults; later ones pass through untouched.
struct Proxy {
    addr: SocketAddr,
    faults: Arc<Mutex<VecDeque<Fault>>>,
    connections: Arc<Mutex<u32>>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let faults: Arc<Mutex<VecDeque<Fault>>> = Arc::default();
        let connections: Arc<Mutex<u32>> = Arc::default();
        let (f, c) = (faults.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                *c.lock().unwrap() += 1;
                let fault = f.lock().unwrap().pop_front();
                tokio::spawn(handle(client, upstream, fault));
            }
        });
        Proxy { addr, faults, connections }
    }

    fn queue(&self, faults: &[Fault]) {
        self.faults.lock().unwrap().extend(faults.iter().copied());
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn read_request(client: &mut TcpStream) -> Vec<u8> {
    // Enough for one pull request: headers plus a small JSON body.
    let mut buf = vec![0u8; 64 * 1024];
    let mut len = 0;
    loop {
        let n = client.read(&mut buf[len..]).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        len += n;
        let text = String::from_utf8_lossy(&buf[..len]);
        if let Some(end) = text.find("\r\n\r\n") {
            let content_length = text[..end]
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap()))
                .unwrap_or(0);
            if len >= end + 4 + content_length {
                break;
            }
        }
    }
    buf.truncate(len);
    buf
}

async fn handle(mut client: TcpStream, upstream: SocketAddr, fault: Option<Fault>) {
    match fault {
        None => {
            if let Ok(mut server) = TcpStream::connect(upstream).await {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            }
        }
        Some(Fault::Slam) => drop(client),
        Some(Fault::Overloaded) => {
            read_request(&mut client).await;
            let body = r#"{"error":{"code":"unavailable","message":"busy"}}"#;
            let response = format!(
                "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 0\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = client.write_all(response.as_bytes()).await;
        }
        Some(Fault::CutResponse) => {
            let request = read_request(&mut client).await;
            let mut server = TcpStream::connect(upstream).await.unwrap();
            server.write_all(&request).await.unwrap();
            let mut response = Vec::new();
            let mut buf = [0u8; 16 * 1024];
            // Read the whole response (the server keeps the connection open: stop when quiet).
            while let Ok(Ok(n)) =
                tokio::time::timeout(std::time::Duration::from_millis(300), server.read(&mut buf)).await
            {
                if n == 0 {
                    break;
                }
                response.extend_from_slice(&buf[..n]);
            }
            let _ = client.write_all(&response[..response.len() / 2]).await;
        }
    }
}

async fn setup() -> (tempfile::TempDir, congdan_server::RunningServer, Proxy, Core) {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = congdan_server::ServerConfig::embedded(&tmp.path().join("server"));
    config.listen = "127.0.0.1:0".parse().unwrap();
    let server = congdan_server::start(config).await.unwrap();
    let proxy = Proxy::start(server.addr).await;
    let core = Core::open(CoreConfig::new(tmp.path().join("phone"), proxy.url()), Platform::software(&tmp.path().join("phone")).unwrap()).unwrap();
    (tmp, server, proxy, core)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_faults_are_retried_until_the_catalog_arrives_whole() {
    let (_tmp, server, proxy, core) = setup().await;
    proxy.queue(&[Fault::Overloaded, Fault::CutResponse, Fault::Slam]);
    let report = core.sync(&|_| true).await.unwrap();
    assert_eq!(report.state, SyncState::UpToDate);
    let total = catalog::parse_catalog(catalog::DEMO_CATALOG).unwrap().len() as u32;
    assert_eq!(report.changes_applied, total);
    assert_eq!(core.catalog().status().unwrap().procedure_count, total);
    assert!(*proxy.connections.lock().unwrap() >= 4, "three faults, then the request that went through");
    assert!(core.store().integrity_ok().unwrap());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_overload_is_a_typed_error_and_changes_nothing() {
    let (_tmp, server, proxy, core) = setup().await;
    proxy.queue(&[Fault::Overloaded; 8]);
    match core.sync(&|_| true).await {
        Err(Error::ServerRejected { status: 503, code, .. }) => assert_eq!(code, "unavailable"),
        other => panic!("expected a 503 rejection, got {other:?}"),
    }
    assert_eq!(core.catalog().status().unwrap().procedure_count, 0);
    // Cut responses every time: after the retries, an Offline state, and still nothing half-applied.
    proxy.faults.lock().unwrap().clear();
    proxy.queue(&[Fault::CutResponse; 8]);
    let report = core.sync(&|_| true).await.unwrap();
    assert_eq!(report.state, SyncState::Offline);
    assert_eq!(core.catalog().status().unwrap().procedure_count, 0);
    // The network heals: the next sync completes.
    proxy.faults.lock().unwrap().clear();
    assert_eq!(core.sync(&|_| true).await.unwrap().state, SyncState::UpToDate);
    server.shutdown().await;
}
