//! A real HTTP/1.1 server on 127.0.0.1 port 0 for the watcher tests: scripted answers
//! per path (a sequence, the last one repeating), conditional GET answered from the
//! response's own ETag/Last-Modified, optional delays, and a log of every request.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub delay: Duration,
}

impl Resp {
    pub fn ok(body: impl Into<Vec<u8>>) -> Resp {
        Resp {
            status: 200,
            headers: Vec::new(),
            body: body.into(),
            delay: Duration::ZERO,
        }
    }
    pub fn status(status: u16) -> Resp {
        Resp {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            delay: Duration::ZERO,
        }
    }
    pub fn header(mut self, k: &str, v: &str) -> Resp {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn delay(mut self, d: Duration) -> Resp {
        self.delay = d;
        self
    }
}

#[derive(Clone, Debug)]
pub struct Request {
    pub path: String,
    pub headers: HashMap<String, String>,
}

#[derive(Default)]
struct Routes {
    routes: HashMap<String, (Vec<Resp>, usize)>,
    log: Vec<Request>,
}

pub struct HttpServer {
    pub port: u16,
    routes: Arc<Mutex<Routes>>,
}

impl HttpServer {
    pub fn start() -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().unwrap().port();
        let routes: Arc<Mutex<Routes>> = Arc::default();
        let r = routes.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let r = r.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &r);
                });
            }
        });
        HttpServer { port, routes }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Answers for `path`, in order; the last repeats.
    pub fn route(&self, path: &str, answers: Vec<Resp>) {
        self.routes
            .lock()
            .unwrap()
            .routes
            .insert(path.into(), (answers, 0));
    }

    /// How many requests arrived, on any path.
    pub fn request_count(&self) -> usize {
        self.routes.lock().unwrap().log.len()
    }

    pub fn requests(&self, path: &str) -> Vec<Request> {
        self.routes
            .lock()
            .unwrap()
            .log
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }
}

fn serve(stream: TcpStream, routes: &Mutex<Routes>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let resp = {
        let mut g = routes.lock().unwrap();
        g.log.push(Request {
            path: path.clone(),
            headers: headers.clone(),
        });
        match g.routes.get_mut(&path) {
            Some((answers, i)) => {
                let r = answers[(*i).min(answers.len() - 1)].clone();
                *i += 1;
                r
            }
            None => Resp::status(404),
        }
    };
    std::thread::sleep(resp.delay);
    // Conditional GET from the response's own validators.
    let etag = resp
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("etag"))
        .map(|(_, v)| v.clone());
    let lm = resp
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("last-modified"))
        .map(|(_, v)| v.clone());
    let not_modified = resp.status == 200
        && ((etag.is_some() && headers.get("if-none-match") == etag.as_ref())
            || (etag.is_none() && lm.is_some() && headers.get("if-modified-since") == lm.as_ref()));
    let (status, body) = if not_modified {
        (304, Vec::new())
    } else {
        (resp.status, resp.body.clone())
    };
    let reason = match status {
        200 => "OK",
        304 => "Not Modified",
        301 | 302 => "Found",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        _ => "Status",
    };
    let mut out = stream;
    write!(out, "HTTP/1.1 {status} {reason}\r\nConnection: close\r\n")?;
    for (k, v) in &resp.headers {
        write!(out, "{k}: {v}\r\n")?;
    }
    if status != 304 {
        write!(out, "Content-Length: {}\r\n", body.len())?;
    }
    write!(out, "\r\n")?;
    out.write_all(&body)?;
    out.flush()
}
