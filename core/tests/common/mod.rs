//! Shared by the core's tests against the real server: a fault-injecting HTTP proxy on loopback
//! that sees each request and decides its fate.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What happens to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Pass,
    /// Close the connection before the request reaches the server.
    DropRequest,
    /// Forward the request, let the server answer (and commit), deliver half the answer, cut.
    CutResponse,
    /// Forward both ways, moving the answer's `Date` header by this many seconds: what the phone
    /// sees when its own clock jumps by the opposite amount after it learned the server's time.
    ShiftDate(i64),
    /// Forward the request without this header (lower case), as a misbehaving middlebox would.
    DropHeader(&'static str),
}

/// The raw message with each head line passed through `line` (`None` drops it); body untouched.
fn map_head_lines(message: &[u8], line: impl Fn(&str) -> Option<String>) -> Vec<u8> {
    let Some(end) = message.windows(4).position(|w| w == b"\r\n\r\n") else { return message.to_vec() };
    let head = String::from_utf8_lossy(&message[..end]);
    let mut out = head.split("\r\n").filter_map(line).collect::<Vec<_>>().join("\r\n").into_bytes();
    out.extend_from_slice(&message[end..]);
    out
}

/// The raw request without the header `name` (lower case).
fn drop_header(request: &[u8], name: &str) -> Vec<u8> {
    map_head_lines(request, |line| {
        let named = line.split_once(':').is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(name));
        (!named).then(|| line.to_string())
    })
}

/// The raw response with its `Date` header moved by `secs` seconds.
fn shift_date(response: &[u8], secs: i64) -> Vec<u8> {
    map_head_lines(response, |line| {
        Some(match line.split_once(':') {
            Some((name, value)) if name.eq_ignore_ascii_case("date") => {
                let at = httpdate::parse_http_date(value.trim()).expect("the server's Date header parses");
                let moved = if secs >= 0 {
                    at + std::time::Duration::from_secs(secs as u64)
                } else {
                    at - std::time::Duration::from_secs(secs.unsigned_abs())
                };
                format!("{name}: {}", httpdate::fmt_http_date(moved))
            }
            _ => line.to_string(),
        })
    })
}

type Decide = Box<dyn FnMut(&[u8]) -> Fault + Send>;

/// A loopback proxy: requests one by one, each judged by `decide` on its raw bytes.
pub struct FaultProxy {
    pub addr: SocketAddr,
    upstream: Arc<Mutex<Option<SocketAddr>>>,
    decide: Arc<Mutex<Decide>>,
}

async fn read_http_message(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0)))
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                buf.truncate(end + 4 + length);
                return Some(buf);
            }
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

impl FaultProxy {
    /// Starts the proxy; set its upstream with [`FaultProxy::set_upstream`] once the server runs
    /// (the server must know the proxy's URL first, for DPoP).
    pub async fn start() -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let upstream: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let decide: Arc<Mutex<Decide>> = Arc::new(Mutex::new(Box::new(|_: &[u8]| Fault::Pass)));
        let (up, dec) = (upstream.clone(), decide.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let (up, dec) = (up.clone(), dec.clone());
                tokio::spawn(async move {
                    let Some(target) = *up.lock().unwrap() else { return };
                    let Ok(mut server) = TcpStream::connect(target).await else { return };
                    while let Some(request) = read_http_message(&mut client).await {
                        let fault = (dec.lock().unwrap())(&request);
                        if fault == Fault::DropRequest {
                            return;
                        }
                        let request = match fault {
                            Fault::DropHeader(name) => drop_header(&request, name),
                            _ => request,
                        };
                        if server.write_all(&request).await.is_err() {
                            return;
                        }
                        let Some(mut response) = read_http_message(&mut server).await else { return };
                        if let Fault::ShiftDate(secs) = fault {
                            response = shift_date(&response, secs);
                        }
                        if fault == Fault::CutResponse {
                            let _ = client.write_all(&response[..response.len() / 2]).await;
                            return;
                        }
                        if client.write_all(&response).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        FaultProxy { addr, upstream, decide }
    }

    /// Starts the server of `config` behind a new proxy. The server's public URL is the proxy's,
    /// so the DPoP proofs of a phone that talks to the proxy name the URL the server checks.
    pub async fn in_front_of(mut config: congdan_server::ServerConfig) -> (FaultProxy, congdan_server::RunningServer) {
        let proxy = FaultProxy::start().await;
        config.identity.public_url = Some(proxy.url());
        let server = congdan_server::start(config).await.expect("server starts");
        proxy.set_upstream(server.addr);
        (proxy, server)
    }

    pub fn set_upstream(&self, addr: SocketAddr) {
        *self.upstream.lock().unwrap() = Some(addr);
    }

    pub fn set_faults(&self, decide: impl FnMut(&[u8]) -> Fault + Send + 'static) {
        *self.decide.lock().unwrap() = Box::new(decide);
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Whether a raw request is `METHOD path…`.
pub fn is_request(raw: &[u8], method_and_path: &str) -> bool {
    raw.starts_with(method_and_path.as_bytes())
}
