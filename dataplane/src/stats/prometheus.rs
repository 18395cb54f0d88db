//! Prometheus text exposition format (version 0.0.4): a writer that validates metric
//! and label names and escapes label values and help text, and a parser of the same
//! format (used by tests and tools to read an endpoint back; it treats its input as
//! hostile: errors name the line, nothing panics, nothing grows beyond the input).
//!
//! This module formats and parses text only; serving it over HTTP is `host::metrics`.

use std::collections::BTreeSet;
use std::fmt::Write as _;

/// Content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
}

impl MetricKind {
    fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
        }
    }
}

/// A name or value the writer refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("invalid metric name {0:?}")]
    MetricName(String),
    #[error("invalid label name {0:?}")]
    LabelName(String),
    #[error("label {0:?} given twice")]
    DuplicateLabel(String),
    #[error("metric family {0:?} declared twice")]
    DuplicateFamily(String),
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
pub fn valid_metric_name(name: &str) -> bool {
    let mut b = name.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_' || c == b':')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__` (reserved).
pub fn valid_label_name(name: &str) -> bool {
    let mut b = name.bytes();
    !name.starts_with("__")
        && matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Builds an exposition document.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
    families: BTreeSet<String>,
}

impl Exposition {
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares a family: its `# HELP` and `# TYPE` lines. Its samples should follow.
    pub fn family(&mut self, name: &str, kind: MetricKind, help: &str) -> Result<(), FormatError> {
        if !valid_metric_name(name) {
            return Err(FormatError::MetricName(name.to_string()));
        }
        if !self.families.insert(name.to_string()) {
            return Err(FormatError::DuplicateFamily(name.to_string()));
        }
        let mut h = String::with_capacity(help.len());
        for c in help.chars() {
            match c {
                '\\' => h.push_str("\\\\"),
                '\n' => h.push_str("\\n"),
                c => h.push(c),
            }
        }
        let _ = writeln!(self.out, "# HELP {name} {h}");
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
        Ok(())
    }

    /// One sample line `name{labels} value`.
    pub fn sample(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        value: f64,
    ) -> Result<(), FormatError> {
        if !valid_metric_name(name) {
            return Err(FormatError::MetricName(name.to_string()));
        }
        let mut line = String::from(name);
        if !labels.is_empty() {
            line.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if !valid_label_name(k) {
                    return Err(FormatError::LabelName(k.to_string()));
                }
                if labels[..i].iter().any(|(k2, _)| k2 == k) {
                    return Err(FormatError::DuplicateLabel(k.to_string()));
                }
                if i > 0 {
                    line.push(',');
                }
                line.push_str(k);
                line.push_str("=\"");
                for c in v.chars() {
                    match c {
                        '\\' => line.push_str("\\\\"),
                        '"' => line.push_str("\\\""),
                        '\n' => line.push_str("\\n"),
                        c => line.push(c),
                    }
                }
                line.push('"');
            }
            line.push('}');
        }
        let _ = writeln!(self.out, "{line} {}", format_value(value));
        Ok(())
    }

    /// The document.
    pub fn finish(self) -> String {
        self.out
    }
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// One parsed sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    /// The value of label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Text that is not valid exposition format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

/// Parses an exposition document into its samples (comments are checked: a `# TYPE`
/// line must name a valid metric and a known type).
pub fn parse_text(text: &str) -> Result<Vec<Sample>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let err = |message: String| ParseError {
            line: i + 1,
            message,
        };
        let line = line.trim_start();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let mut words = rest.split_whitespace();
            match words.next() {
                Some("TYPE") => {
                    let name = words.next().unwrap_or("");
                    if !valid_metric_name(name) {
                        return Err(err(format!("# TYPE of invalid metric name {name:?}")));
                    }
                    match words.next() {
                        Some("counter" | "gauge" | "histogram" | "summary" | "untyped") => {}
                        t => return Err(err(format!("# TYPE {name}: unknown type {t:?}"))),
                    }
                }
                Some("HELP") => {
                    let name = words.next().unwrap_or("");
                    if !valid_metric_name(name) {
                        return Err(err(format!("# HELP of invalid metric name {name:?}")));
                    }
                }
                _ => {}
            }
            continue;
        }
        out.push(parse_sample(line).map_err(err)?);
    }
    Ok(out)
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(['{', ' ', '\t'])
        .ok_or_else(|| "a sample needs a value".to_string())?;
    let (name, mut rest) = line.split_at(name_end);
    if !valid_metric_name(name) {
        return Err(format!("invalid metric name {name:?}"));
    }
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            rest = rest.trim_start();
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let eq = rest
                .find('=')
                .ok_or_else(|| "unterminated label set".to_string())?;
            let (key, r) = rest.split_at(eq);
            let key = key.trim();
            if !valid_label_name(key) {
                return Err(format!("invalid label name {key:?}"));
            }
            let r = r[1..]
                .trim_start()
                .strip_prefix('"')
                .ok_or_else(|| format!("label {key}: value must be quoted"))?;
            let mut value = String::new();
            let mut chars = r.char_indices();
            let end = loop {
                match chars.next() {
                    None => return Err(format!("label {key}: unterminated value")),
                    Some((j, '"')) => break j,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, 'n')) => value.push('\n'),
                        other => {
                            return Err(format!(
                                "label {key}: bad escape {:?}",
                                other.map(|(_, c)| c)
                            ))
                        }
                    },
                    Some((_, c)) => value.push(c),
                }
            };
            if labels.iter().any(|(k, _): &(String, String)| k == key) {
                return Err(format!("label {key} given twice"));
            }
            labels.push((key.to_string(), value));
            rest = r[end + 1..].trim_start();
            if let Some(r) = rest.strip_prefix(',') {
                rest = r;
            } else if !rest.starts_with('}') {
                return Err(format!("after label {key}: expected ',' or '}}'"));
            }
        }
    }
    let mut words = rest.split_whitespace();
    let value = words
        .next()
        .ok_or_else(|| "a sample needs a value".to_string())?;
    let value = match value {
        "NaN" => f64::NAN,
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .ok_or_else(|| format!("bad value {v:?}"))?,
    };
    if let Some(ts) = words.next() {
        ts.parse::<i64>()
            .map_err(|_| format!("bad timestamp {ts:?}"))?;
    }
    if words.next().is_some() {
        return Err("trailing text after the value".into());
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// Fuzzing and property check: parsing arbitrary bytes never panics, and every document
/// it accepts re-emits through [`Exposition`] to text that parses to the same samples.
pub fn fuzz_check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(samples) = parse_text(text) else {
        return;
    };
    let mut e = Exposition::new();
    for s in &samples {
        let labels: Vec<(&str, &str)> = s
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        e.sample(&s.name, &labels, s.value)
            .expect("a parsed sample has valid names");
    }
    let again = parse_text(&e.finish()).expect("emitted text parses");
    assert_eq!(again.len(), samples.len());
    for (a, b) in again.iter().zip(&samples) {
        assert_eq!(a.name, b.name);
        assert_eq!(a.labels, b.labels);
        assert!(a.value == b.value || (a.value.is_nan() && b.value.is_nan()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn writes_the_text_format_with_escaping() {
        let mut e = Exposition::new();
        e.family(
            "flatrpc_rx_packets_total",
            MetricKind::Counter,
            "Frames\nreceived \\ port",
        )
        .unwrap();
        e.sample("flatrpc_rx_packets_total", &[("core", "0")], 42.0)
            .unwrap();
        e.sample(
            "flatrpc_rx_packets_total",
            &[("core", "1"), ("element", "a\"b\\c\nd")],
            7.5,
        )
        .unwrap();
        e.sample("flatrpc_up", &[], 1.0).unwrap();
        let text = e.finish();
        assert_eq!(
            text,
            "# HELP flatrpc_rx_packets_total Frames\\nreceived \\\\ port\n\
             # TYPE flatrpc_rx_packets_total counter\n\
             flatrpc_rx_packets_total{core=\"0\"} 42\n\
             flatrpc_rx_packets_total{core=\"1\",element=\"a\\\"b\\\\c\\nd\"} 7.5\n\
             flatrpc_up 1\n"
        );
        let s = parse_text(&text).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[1].label("element"), Some("a\"b\\c\nd"));
        assert_eq!(s[1].value, 7.5);
        assert_eq!(s[2].labels, vec![]);
    }

    #[test]
    fn the_writer_refuses_bad_names() {
        let mut e = Exposition::new();
        for bad in ["", "1abc", "a-b", "a b", "ä"] {
            assert!(matches!(
                e.sample(bad, &[], 1.0),
                Err(FormatError::MetricName(_))
            ));
            assert!(e.family(bad, MetricKind::Gauge, "").is_err());
        }
        for bad in ["", "__x", "1a", "a:b", "a-b"] {
            assert!(matches!(
                e.sample("m", &[(bad, "v")], 1.0),
                Err(FormatError::LabelName(_))
            ));
        }
        assert!(matches!(
            e.sample("m", &[("a", "1"), ("a", "2")], 1.0),
            Err(FormatError::DuplicateLabel(_))
        ));
        e.family("m", MetricKind::Gauge, "h").unwrap();
        assert!(matches!(
            e.family("m", MetricKind::Counter, "h"),
            Err(FormatError::DuplicateFamily(_))
        ));
        // Nothing half-written by the refused calls.
        assert_eq!(e.finish(), "# HELP m h\n# TYPE m gauge\n");
    }

    #[test]
    fn special_values_round_trip() {
        let mut e = Exposition::new();
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e20, -3.25, 0.0] {
            e.sample("v", &[], v).unwrap();
        }
        let s = parse_text(&e.finish()).unwrap();
        assert!(s[0].value.is_nan());
        assert_eq!(s[1].value, f64::INFINITY);
        assert_eq!(s[2].value, f64::NEG_INFINITY);
        assert_eq!(s[3].value, 1e20);
        assert_eq!(s[4].value, -3.25);
    }

    #[test]
    fn malformed_documents_name_the_line() {
        let cases = [
            ("m{a=\"1\"", "expected"),
            ("m{a=1} 2", "quoted"),
            ("m{a=\"1\\x\"} 2", "escape"),
            ("m{a=\"1\" b=\"2\"} 3", "expected"),
            ("m{a=\"1\",a=\"2\"} 3", "twice"),
            ("m{__a=\"1\"} 3", "label name"),
            ("m", "value"),
            ("m ", "value"),
            ("m abc", "bad value"),
            ("m 1e999", "bad value"),
            ("m 1 x", "timestamp"),
            ("m 1 2 3", "trailing"),
            ("9m 1", "metric name"),
            ("# TYPE m widget", "unknown type"),
            ("# TYPE 9 counter", "invalid metric"),
            ("# HELP", "invalid metric"),
            ("m{a=\"\u{1F600}", "unterminated"),
        ];
        for (text, needle) in cases {
            let doc = format!("ok 1\n{text}\n");
            let e = parse_text(&doc).expect_err(text);
            assert_eq!(e.line, 2, "{text}: {e}");
            assert!(e.message.contains(needle), "{text}: {e}");
        }
        // Comments, blank lines and timestamps are fine.
        let s = parse_text("# free text\n\n  m{} 1 1700000000000\n").unwrap();
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn fuzz_check_over_seeded_random_inputs() {
        let mut rng = rand_pcg::Pcg64::seed_from_u64(0x7072_6f6d);
        let alphabet = b"m_a:{}=\",\\n 1.5e+-InfNaN#TYPEcounter\n\t";
        let seed_doc = b"# TYPE m counter\nm{a=\"x\\\"y\",b=\"\"} 3 17\nn 1.5\n";
        for i in 0..4000 {
            let mut data: Vec<u8> = if i % 2 == 0 {
                seed_doc.to_vec()
            } else {
                Vec::new()
            };
            let n = rng.gen_range(0..64);
            for _ in 0..n {
                let b = if rng.gen_bool(0.8) {
                    alphabet[rng.gen_range(0..alphabet.len())]
                } else {
                    rng.gen()
                };
                if !data.is_empty() && rng.gen_bool(0.5) {
                    let at = rng.gen_range(0..data.len());
                    data[at] = b;
                } else {
                    data.push(b);
                }
            }
            fuzz_check(&data);
        }
        fuzz_check(seed_doc);
    }
}
