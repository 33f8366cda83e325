//! The demo's static server: serves the built web app (trunk's `dist/`) on 127.0.0.1 as a web
//! host does, gzip-compressed where the browser accepts it and with entity tags, so the browser
//! caches the app and the weights. `scripts/serve.sh` runs it (binary `serve`); the browser
//! tests start one per test. Its own crate, so that serving compiles nothing of the tests.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::SystemTime;

use anyhow::{anyhow, Context};

/// Media type of a served file, and whether it is worth compressing (the weights are not:
/// float32 data barely shrinks, and the app's progress bar reads their `Content-Length`).
fn mime(path: &Path) -> (&'static str, bool) {
    match path.extension().and_then(OsStr::to_str) {
        Some("html") => ("text/html; charset=utf-8", true),
        Some("js") => ("text/javascript", true),
        Some("wasm") => ("application/wasm", true),
        Some("css") => ("text/css", true),
        Some("svg") => ("image/svg+xml", true),
        Some("png") => ("image/png", false),
        Some("json") => ("application/json", true),
        Some("md") => ("text/markdown; charset=utf-8", true),
        _ => ("application/octet-stream", false),
    }
}

/// A file as served: its media type, its bytes, their gzip encoding (made once, for the
/// compressible types) and an entity tag from their checksum.
struct Entry {
    content_type: &'static str,
    raw: Arc<Vec<u8>>,
    gzip: Option<Arc<Vec<u8>>>,
    etag: String,
}

fn entry(bytes: Vec<u8>, path: &Path) -> Entry {
    let (content_type, compress) = mime(path);
    let etag = format!("\"{:08x}-{}\"", crc32fast::hash(&bytes), bytes.len());
    let gzip = compress.then(|| {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&bytes).expect("writing to memory");
        Arc::new(enc.finish().expect("writing to memory"))
    });
    Entry {
        content_type,
        raw: Arc::new(bytes),
        gzip,
        etag,
    }
}

/// What a request asks for: the file's path under the root (`index.html` for `/`), or `None`
/// for a path that tries to leave the root.
fn requested(url: &str) -> Option<String> {
    let path = url.split(['?', '#']).next().unwrap_or("/");
    let rel = path.trim_start_matches('/');
    if rel.split('/').any(|part| part == "..") || rel.contains('\\') {
        return None;
    }
    Some(if rel.is_empty() || rel.ends_with('/') {
        format!("{rel}index.html")
    } else {
        rel.to_string()
    })
}

fn header(name: &str, value: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(name, value).expect("valid header")
}

/// The files a [`Server`] serves: `root` on disk (each read and compressed once, again when
/// its modification time or length changes) and the in-memory extras.
struct Files {
    root: PathBuf,
    extra: HashMap<String, Arc<Entry>>,
    #[allow(clippy::type_complexity)]
    cache: Mutex<HashMap<String, (Option<SystemTime>, u64, Arc<Entry>)>>,
}

impl Files {
    fn load(&self, rel: &str) -> Option<Arc<Entry>> {
        if let Some(e) = self.extra.get(rel) {
            return Some(e.clone());
        }
        let path = self.root.join(rel);
        let meta = std::fs::metadata(&path).ok().filter(|m| m.is_file())?;
        let stamp = (meta.modified().ok(), meta.len());
        if let Some((t, n, e)) = self.cache.lock().ok()?.get(rel) {
            if (*t, *n) == stamp {
                return Some(e.clone());
            }
        }
        let e = Arc::new(entry(std::fs::read(&path).ok()?, &path));
        self.cache
            .lock()
            .ok()?
            .insert(rel.to_string(), (stamp.0, stamp.1, e.clone()));
        Some(e)
    }
}

/// A static file server on 127.0.0.1, as a web host serves the app: gzip `Content-Encoding`
/// for the text and WebAssembly when the browser accepts it (so the download is the compressed
/// size), and an `ETag` with `Cache-Control: no-cache`, so the browser keeps what it fetched and
/// a reload only revalidates (`304 Not Modified`). Serves `root` plus extra in-memory files
/// (path → bytes). A file changed on disk is served anew (its tag changes).
pub struct Server {
    /// Base URL, ending in `/`.
    pub url: String,
}

impl Server {
    /// Serves `root` on an ephemeral port in background threads until the process ends.
    pub fn start(root: PathBuf, extra: HashMap<String, Vec<u8>>) -> anyhow::Result<Self> {
        Self::start_on(root, extra, 0)
    }

    /// Serves `root` on `port` (0: any free port) in background threads until the process ends.
    pub fn start_on(
        root: PathBuf,
        extra: HashMap<String, Vec<u8>>,
        port: u16,
    ) -> anyhow::Result<Self> {
        let server = tiny_http::Server::http(("127.0.0.1", port))
            .map_err(|e| anyhow!("cannot listen on 127.0.0.1:{port}: {e}"))?;
        let port = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| anyhow!("server has no IP address"))?
            .port();
        let server = Arc::new(server);
        let extra: HashMap<String, Arc<Entry>> = extra
            .into_iter()
            .map(|(k, v)| {
                let e = Arc::new(entry(v, Path::new(&k)));
                (k, e)
            })
            .collect();
        let files = Arc::new(Files {
            root,
            extra,
            cache: Mutex::new(HashMap::new()),
        });
        // Compress everything once before the first request, so that no page load waits for it.
        let mut dirs = vec![PathBuf::new()];
        while let Some(dir) = dirs.pop() {
            let path = files.root.join(&dir);
            let items =
                std::fs::read_dir(&path).with_context(|| format!("reading {}", path.display()))?;
            for item in items.flatten() {
                let rel = dir.join(item.file_name());
                if item.file_type()?.is_dir() {
                    dirs.push(rel);
                } else if let Some(rel) = rel.to_str() {
                    files.load(rel);
                }
            }
        }
        for _ in 0..4 {
            let (server, files) = (server.clone(), files.clone());
            thread::spawn(move || {
                for req in server.incoming_requests() {
                    let Some(e) = requested(req.url()).and_then(|rel| files.load(&rel)) else {
                        let _ = req.respond(
                            tiny_http::Response::from_data(b"not found".to_vec())
                                .with_status_code(404),
                        );
                        continue;
                    };
                    let wants = |name: &'static str, pred: &dyn Fn(&str) -> bool| {
                        req.headers()
                            .iter()
                            .any(|h| h.field.equiv(name) && pred(h.value.as_str()))
                    };
                    let fresh = wants("If-None-Match", &|v| {
                        v.split(',').any(|t| t.trim() == e.etag || t.trim() == "*")
                    });
                    let gzip = e.gzip.as_ref().filter(|_| {
                        wants("Accept-Encoding", &|v| {
                            v.split(',')
                                .any(|c| c.split(';').next().unwrap_or("").trim() == "gzip")
                        })
                    });
                    let headers = [
                        header("Content-Type", e.content_type),
                        header("ETag", &e.etag),
                        header("Cache-Control", "no-cache"),
                        header("Vary", "Accept-Encoding"),
                    ];
                    let mut response = if fresh {
                        tiny_http::Response::from_data(Vec::new()).with_status_code(304)
                    } else {
                        let body = gzip.unwrap_or(&e.raw);
                        // With a `Content-Length`, not chunked: the app's progress bar reads it.
                        tiny_http::Response::from_data(body.as_slice().to_vec())
                            .with_chunked_threshold(usize::MAX)
                    };
                    for h in headers {
                        response.add_header(h);
                    }
                    if gzip.is_some() && !fresh {
                        response.add_header(header("Content-Encoding", "gzip"));
                    }
                    let _ = req.respond(response);
                }
            });
        }
        Ok(Self {
            url: format!("http://127.0.0.1:{port}/"),
        })
    }
}
