//! The static server that the browser tests and `scripts/serve.sh` use: it must serve the app
//! gzip-encoded where it can (so that a visitor downloads the compressed size), give the
//! weights with their length (the loading bar reads it), let the browser revalidate what it
//! cached, and never serve outside its root.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;

use amortize_serve::Server;

/// One HTTP/1.0 request; the status, the headers (names lower-cased) and the body.
fn get(url: &str, path: &str, headers: &[(&str, &str)]) -> (u16, HashMap<String, String>, Vec<u8>) {
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let mut s = TcpStream::connect(addr).expect("connect");
    let mut req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8(raw[..end].to_vec()).expect("ASCII headers");
    let mut lines = head.lines();
    let status = lines
        .next()
        .expect("status line")
        .split(' ')
        .nth(1)
        .expect("code");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (
        status.parse().expect("numeric status"),
        headers,
        raw[end + 4..].to_vec(),
    )
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

#[test]
fn serves_compressed_cacheable_files_and_nothing_outside_its_root() {
    let root = std::env::temp_dir().join(format!("amortize-server-test-{}", std::process::id()));
    std::fs::create_dir_all(root.join("weights")).expect("temp dir");
    // Compressible, like the app's wasm: a repetitive megabyte.
    let wasm: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.join("app.wasm"), &wasm).expect("write");
    std::fs::write(root.join("index.html"), b"<!doctype html><p>hi</p>").expect("write");
    let weights: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
    std::fs::write(root.join("weights/m.amz"), &weights).expect("write");
    std::fs::write(root.parent().unwrap().join("amortize-secret.txt"), b"no").expect("write");
    let extra = HashMap::from([("weights/extra.amz".to_string(), b"in memory".to_vec())]);
    let server = Server::start(root.clone(), extra).expect("server starts");
    let url = &server.url;

    // gzip when accepted, with the compressed length; the decoded bytes are the file.
    let gz = [("Accept-Encoding", "gzip, deflate, br")];
    let (code, h, body) = get(url, "/app.wasm", &gz);
    assert_eq!(code, 200);
    assert_eq!(h.get("content-encoding").map(String::as_str), Some("gzip"));
    assert_eq!(
        h.get("content-type").map(String::as_str),
        Some("application/wasm")
    );
    assert_eq!(h["content-length"], body.len().to_string());
    assert!(
        body.len() < wasm.len() / 10,
        "{} bytes compressed",
        body.len()
    );
    assert_eq!(gunzip(&body), wasm);
    // Not accepted: the raw bytes.
    let (code, h, body) = get(url, "/app.wasm", &[]);
    assert_eq!(code, 200);
    assert!(!h.contains_key("content-encoding"));
    assert_eq!(body, wasm);

    // The weights: never compressed, always with their length.
    let (code, h, body) = get(url, "/weights/m.amz", &gz);
    assert_eq!(code, 200);
    assert!(!h.contains_key("content-encoding"));
    assert_eq!(h["content-length"], weights.len().to_string());
    assert_eq!(body, weights);
    let (_, _, body) = get(url, "/weights/extra.amz?v=1", &gz);
    assert_eq!(body, b"in memory");

    // `/` is index.html; a cached copy is revalidated with its tag.
    let (code, h, body) = get(url, "/", &[]);
    assert_eq!(code, 200);
    assert_eq!(body, b"<!doctype html><p>hi</p>");
    assert_eq!(h["cache-control"], "no-cache");
    let tag = h["etag"].clone();
    let (code, _, body) = get(url, "/", &[("If-None-Match", &tag)]);
    assert_eq!(code, 304);
    assert!(body.is_empty());
    // A changed file gets a new tag and is served anew.
    std::fs::write(
        root.join("index.html"),
        b"<!doctype html><p>changed, longer</p>",
    )
    .expect("write");
    let (code, h, body) = get(url, "/index.html", &[("If-None-Match", &tag)]);
    assert_eq!(code, 200);
    assert_ne!(h["etag"], tag);
    assert_eq!(body, b"<!doctype html><p>changed, longer</p>");

    // Nothing outside the root, and 404 for what is not there.
    for path in [
        "/../amortize-secret.txt",
        "/weights/../../amortize-secret.txt",
        "/missing.js",
    ] {
        let (code, _, body) = get(url, path, &[]);
        assert_eq!(code, 404, "{path}");
        assert_ne!(body, b"no", "{path}");
    }
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_file(root.parent().unwrap().join("amortize-secret.txt"));
}
