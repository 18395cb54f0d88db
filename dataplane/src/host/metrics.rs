//! The Prometheus endpoint's HTTP side: a loopback-only listener answering
//! `GET /metrics` (and `GET /`) with the text exposition, one request per connection.
//!
//! Requests are read with a size and time bound and parsed strictly; anything else gets
//! a 4xx. This module must not accept non-loopback listeners.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use crate::stats::prometheus::CONTENT_TYPE;

/// Largest request head read, bytes.
pub const MAX_HEAD: usize = 8192;

/// A request head that is not one we serve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("incomplete request head")]
    Incomplete,
    #[error("malformed request line")]
    BadRequestLine,
    #[error("unsupported HTTP version")]
    BadVersion,
    #[error("method not allowed")]
    Method,
    #[error("not found")]
    NotFound,
}

impl HttpError {
    fn status(&self) -> &'static str {
        match self {
            HttpError::Incomplete | HttpError::BadRequestLine => "400 Bad Request",
            HttpError::BadVersion => "505 HTTP Version Not Supported",
            HttpError::Method => "405 Method Not Allowed",
            HttpError::NotFound => "404 Not Found",
        }
    }
}

/// Parses a request head (up to and including the blank line) and accepts only
/// `GET /metrics` or `GET /` (query strings ignored) over HTTP/1.0 or 1.1.
pub fn parse_request_head(head: &[u8]) -> Result<(), HttpError> {
    let end = head
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or(HttpError::Incomplete)?;
    let head = head.get(..end).ok_or(HttpError::Incomplete)?;
    let line_end = head
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(head.len());
    let line = std::str::from_utf8(head.get(..line_end).ok_or(HttpError::Incomplete)?)
        .map_err(|_| HttpError::BadRequestLine)?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::BadRequestLine);
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(HttpError::BadRequestLine);
    }
    if !target.starts_with('/') || target.bytes().any(|b| b.is_ascii_control()) {
        return Err(HttpError::BadRequestLine);
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(HttpError::BadVersion);
    }
    if method != "GET" {
        return Err(HttpError::Method);
    }
    let path = target.split('?').next().unwrap_or(target);
    if path != "/metrics" && path != "/" {
        return Err(HttpError::NotFound);
    }
    Ok(())
}

/// Binds the endpoint; refuses a non-loopback address.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    if !addr.ip().is_loopback() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{addr} is not a loopback address"),
        ));
    }
    let l = TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// Answers one connection with `body()` (called only for a valid request).
pub fn serve_connection(
    mut s: TcpStream,
    timeout: Duration,
    body: impl FnOnce() -> String,
) -> std::io::Result<()> {
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let mut buf = vec![0u8; MAX_HEAD];
    let mut n = 0;
    while n < buf.len() {
        let got = s.read(&mut buf[n..])?;
        if got == 0 {
            break;
        }
        n += got;
        if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let (status, ctype, text) = match parse_request_head(&buf[..n]) {
        Ok(()) => ("200 OK", CONTENT_TYPE, body()),
        Err(e) => (e.status(), "text/plain", format!("{e}\n")),
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    s.write_all(resp.as_bytes())?;
    // End our side and drain (bounded) so unread input does not reset the connection
    // before the client has read the response.
    s.shutdown(std::net::Shutdown::Write)?;
    s.set_read_timeout(Some(Duration::from_millis(100)))?;
    super::drain_until_closed(&mut s, &mut buf);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_heads() {
        let ok = [
            &b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"[..],
            b"GET / HTTP/1.0\r\n\r\n",
            b"GET /metrics?x=1 HTTP/1.1\r\n\r\n",
        ];
        for h in ok {
            assert_eq!(parse_request_head(h), Ok(()), "{h:?}");
        }
        let bad: [(&[u8], HttpError); 10] = [
            (b"GET /metrics HTTP/1.1\r\n", HttpError::Incomplete),
            (b"", HttpError::Incomplete),
            (b"GET  /metrics HTTP/1.1\r\n\r\n", HttpError::BadRequestLine),
            (b"GET /metrics\r\n\r\n", HttpError::BadRequestLine),
            (b"get /metrics HTTP/1.1\r\n\r\n", HttpError::BadRequestLine),
            (b"GET metrics HTTP/1.1\r\n\r\n", HttpError::BadRequestLine),
            (b"GET /m\x00 HTTP/1.1\r\n\r\n", HttpError::BadRequestLine),
            (b"GET /metrics HTTP/2\r\n\r\n", HttpError::BadVersion),
            (b"POST /metrics HTTP/1.1\r\n\r\n", HttpError::Method),
            (b"GET /admin HTTP/1.1\r\n\r\n", HttpError::NotFound),
        ];
        for (h, want) in bad {
            assert_eq!(parse_request_head(h), Err(want), "{h:?}");
        }
        assert_eq!(
            parse_request_head(b"\xff\xfe /x HTTP/1.1\r\n\r\n"),
            Err(HttpError::BadRequestLine)
        );
    }

    #[test]
    fn only_loopback_binds_and_a_request_is_answered() {
        let e = bind("0.0.0.0:0".parse().unwrap()).unwrap_err();
        assert!(e.to_string().contains("not a loopback"), "{e}");
        let l = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = l.local_addr().unwrap();
        for (req, status) in [
            ("GET /metrics HTTP/1.1\r\n\r\n", "200 OK"),
            ("DELETE / HTTP/1.1\r\n\r\n", "405"),
            ("garbage\r\n\r\n", "400"),
        ] {
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(req.as_bytes()).unwrap();
            let s = loop {
                match l.accept() {
                    Ok((s, _)) => break s,
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            };
            serve_connection(s, Duration::from_secs(1), || "m 1\n".into()).unwrap();
            let mut out = String::new();
            c.read_to_string(&mut out).unwrap();
            assert!(out.starts_with(&format!("HTTP/1.1 {status}")), "{out}");
            if status == "200 OK" {
                assert!(out.ends_with("\r\n\r\nm 1\n"), "{out}");
                assert!(out.contains("Content-Length: 4\r\n"), "{out}");
            }
        }
    }
}
