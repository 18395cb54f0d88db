//! The control-socket protocol between `dataplane stats|reload` and `dataplane run`.
//!
//! A client connects to the Unix socket, sends one request line (`stats`, `reload` or
//! `ping`, at most [`MAX_REQUEST`] bytes) and reads one JSON reply line, after which the
//! server closes the connection. The socket is local (mode 0600) but its bytes are still
//! input: requests and replies are parsed strictly and bounded; nothing here panics.
//!
//! This module owns framing and parsing; what a request does is the caller's handler.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::report::StatsReport;

/// Longest request line, bytes (newline included).
pub const MAX_REQUEST: usize = 256;
/// Longest reply, bytes.
pub const MAX_REPLY: usize = 16 << 20;

/// What a client asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Ping,
    Stats,
    Reload,
}

impl Request {
    pub fn as_str(self) -> &'static str {
        match self {
            Request::Ping => "ping",
            Request::Stats => "stats",
            Request::Reload => "reload",
        }
    }
}

/// A request line that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("empty request")]
    Empty,
    #[error("request longer than {MAX_REQUEST} bytes")]
    TooLong,
    #[error("request is not UTF-8")]
    NotUtf8,
    #[error("request has more than one line")]
    MultipleLines,
    #[error("unknown request {0:?} (expected ping, stats or reload)")]
    Unknown(String),
}

/// Parses one request line (`\n` or `\r\n` terminated, or not).
pub fn parse_request(bytes: &[u8]) -> Result<Request, ProtocolError> {
    if bytes.len() > MAX_REQUEST {
        return Err(ProtocolError::TooLong);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| ProtocolError::NotUtf8)?;
    let line = text
        .strip_suffix('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .unwrap_or(text);
    if line.contains(['\n', '\r']) {
        return Err(ProtocolError::MultipleLines);
    }
    match line.trim() {
        "" => Err(ProtocolError::Empty),
        "ping" => Ok(Request::Ping),
        "stats" => Ok(Request::Stats),
        "reload" => Ok(Request::Reload),
        other => Err(ProtocolError::Unknown(other.chars().take(32).collect())),
    }
}

/// The server's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case", deny_unknown_fields)]
pub enum Reply {
    Pong {
        service: String,
    },
    Stats {
        report: Box<StatsReport>,
    },
    /// New tables were sent to `cores` cores and `applied` of them acknowledged.
    Reloaded {
        applied: usize,
        cores: usize,
        generation: u64,
    },
    /// The request failed (bad request, bad config on reload...); nothing changed.
    Error {
        message: String,
    },
}

/// A reply that is not one.
#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    #[error("reply longer than {MAX_REPLY} bytes")]
    TooLong,
    #[error("malformed reply: {0}")]
    Malformed(String),
}

/// Parses a reply (one JSON document).
pub fn parse_reply(bytes: &[u8]) -> Result<Reply, ReplyError> {
    if bytes.len() > MAX_REPLY {
        return Err(ReplyError::TooLong);
    }
    serde_json::from_slice(bytes).map_err(|e| ReplyError::Malformed(e.to_string()))
}

/// Talking to a running dataplane failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(
        "cannot reach the control socket {path}: {source} (is `dataplane run` running with this config?)"
    )]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("control socket {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("control socket {path}: {source}")]
    Reply { path: PathBuf, source: ReplyError },
}

/// Sends `req` to the dataplane listening on `path` and returns its reply.
pub fn call(path: &Path, req: Request, timeout: Duration) -> Result<Reply, ControlError> {
    let io = |source| ControlError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut s = UnixStream::connect(path).map_err(|source| ControlError::Connect {
        path: path.to_path_buf(),
        source,
    })?;
    s.set_read_timeout(Some(timeout)).map_err(io)?;
    s.set_write_timeout(Some(timeout)).map_err(io)?;
    s.write_all(format!("{}\n", req.as_str()).as_bytes())
        .map_err(io)?;
    let mut buf = Vec::new();
    s.take(MAX_REPLY as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(io)?;
    parse_reply(&buf).map_err(|source| ControlError::Reply {
        path: path.to_path_buf(),
        source,
    })
}

/// Server side of one connection: reads a request (bounded in size and time), answers
/// it with `handle` (or with an error reply when it is malformed) and closes.
pub fn serve_connection(
    mut s: UnixStream,
    timeout: Duration,
    handle: impl FnOnce(Request) -> Reply,
) -> std::io::Result<()> {
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let mut buf = [0u8; MAX_REQUEST + 1];
    let mut n = 0;
    while n < buf.len() {
        let got = s.read(&mut buf[n..])?;
        if got == 0 {
            break;
        }
        n += got;
        if buf[..n].contains(&b'\n') {
            break;
        }
    }
    let reply = match parse_request(&buf[..n]) {
        Ok(req) => handle(req),
        Err(e) => Reply::Error {
            message: e.to_string(),
        },
    };
    let mut text = serde_json::to_string(&reply).unwrap_or_else(|e| {
        format!("{{\"reply\":\"error\",\"message\":\"cannot encode the reply: {e}\"}}")
    });
    text.push('\n');
    s.write_all(text.as_bytes())?;
    // Closing with unread input would reset the connection and could destroy the reply
    // before the client reads it: end our side, then drain (bounded) until it closes.
    s.shutdown(std::net::Shutdown::Write)?;
    s.set_read_timeout(Some(Duration::from_millis(100)))?;
    super::drain_until_closed(&mut s, &mut buf);
    Ok(())
}

/// Fuzzing and property check: request and reply parsing never panic; an accepted
/// request re-encodes to a line that parses to the same request; an accepted reply
/// re-encodes to JSON that parses to the same reply.
pub fn fuzz_check(data: &[u8]) {
    if let Ok(r) = parse_request(data) {
        assert_eq!(parse_request(format!("{}\n", r.as_str()).as_bytes()), Ok(r));
    }
    if let Ok(r) = parse_reply(data) {
        let text = serde_json::to_string(&r).expect("a parsed reply encodes");
        let again = parse_reply(text.as_bytes()).expect("an encoded reply parses");
        // f64 (uptime) may be NaN-free only; compare the encodings.
        assert_eq!(serde_json::to_string(&again).ok(), Some(text));
    }
    let _ = super::metrics::parse_request_head(data);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn requests_parse_strictly() {
        assert_eq!(parse_request(b"stats\n"), Ok(Request::Stats));
        assert_eq!(parse_request(b"reload\r\n"), Ok(Request::Reload));
        assert_eq!(parse_request(b" ping "), Ok(Request::Ping));
        assert_eq!(parse_request(b""), Err(ProtocolError::Empty));
        assert_eq!(parse_request(b"\n"), Err(ProtocolError::Empty));
        assert_eq!(parse_request(b"\xff\xfe\n"), Err(ProtocolError::NotUtf8));
        assert_eq!(
            parse_request(b"stats\nreload\n"),
            Err(ProtocolError::MultipleLines)
        );
        assert_eq!(parse_request(b"sta\rts"), Err(ProtocolError::MultipleLines));
        assert_eq!(
            parse_request(&[b'a'; MAX_REQUEST + 1]),
            Err(ProtocolError::TooLong)
        );
        assert!(matches!(
            parse_request(b"STATS"),
            Err(ProtocolError::Unknown(_))
        ));
        let long = "x".repeat(200);
        match parse_request(long.as_bytes()) {
            Err(ProtocolError::Unknown(s)) => assert_eq!(s.len(), 32),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn replies_round_trip_and_malformed_ones_are_errors() {
        let r = Reply::Reloaded {
            applied: 2,
            cores: 2,
            generation: 3,
        };
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(
            text,
            r#"{"reply":"reloaded","applied":2,"cores":2,"generation":3}"#
        );
        assert_eq!(parse_reply(text.as_bytes()).unwrap(), r);
        let s = Reply::Stats {
            report: Box::default(),
        };
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(parse_reply(text.as_bytes()).unwrap(), s);
        for bad in [
            &b""[..],
            b"{",
            b"null",
            b"{\"reply\":\"nope\"}",
            b"{\"reply\":\"reloaded\",\"applied\":-1,\"cores\":1,\"generation\":0}",
            b"{\"reply\":\"error\"}",
            b"{\"reply\":\"pong\",\"service\":\"kv\",\"extra\":1}",
            b"\xff",
        ] {
            assert!(
                matches!(parse_reply(bad), Err(ReplyError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn a_connection_gets_one_reply_even_for_garbage() {
        for (input, want_error) in [
            (&b"stats\n"[..], false),
            (b"bogus\n", true),
            (b"", true),
            (&[b'z'; 1000][..], true),
        ] {
            let (mut client, server) = UnixStream::pair().unwrap();
            client.write_all(input).unwrap();
            client.shutdown(std::net::Shutdown::Write).unwrap();
            serve_connection(server, Duration::from_secs(1), |req| {
                assert_eq!(req, Request::Stats);
                Reply::Pong {
                    service: "t".into(),
                }
            })
            .unwrap();
            let mut out = Vec::new();
            client.read_to_end(&mut out).unwrap();
            let reply = parse_reply(&out).unwrap();
            assert_eq!(
                matches!(reply, Reply::Error { .. }),
                want_error,
                "{reply:?}"
            );
        }
    }

    #[test]
    fn a_missing_socket_is_a_clear_error() {
        let e = call(
            Path::new("/nonexistent/flatrpc.sock"),
            Request::Stats,
            Duration::from_secs(1),
        )
        .unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("cannot reach the control socket /nonexistent/flatrpc.sock"),
            "{m}"
        );
    }

    #[test]
    fn fuzz_check_over_seeded_random_inputs() {
        let mut rng = rand_pcg::Pcg64::seed_from_u64(0x6374_6c72);
        let seeds: [&[u8]; 5] = [
            b"stats\n",
            b"reload\r\n",
            br#"{"reply":"reloaded","applied":1,"cores":1,"generation":1}"#,
            br#"{"reply":"error","message":"x"}"#,
            b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
        ];
        for i in 0..4000 {
            let mut data = seeds[i % seeds.len()].to_vec();
            for _ in 0..rng.gen_range(0..6) {
                let b: u8 = rng.gen();
                if !data.is_empty() && rng.gen_bool(0.6) {
                    let at = rng.gen_range(0..data.len());
                    data[at] = b;
                } else if !data.is_empty() && rng.gen_bool(0.5) {
                    let at = rng.gen_range(0..data.len());
                    data.truncate(at);
                } else {
                    data.push(b);
                }
            }
            fuzz_check(&data);
        }
        for s in seeds {
            fuzz_check(s);
        }
    }
}
