//! Parsing of `--cores` lists: `0`, `0,1`, `2-5`, `0,2-3`.

/// Parses a core list. Cores are returned in the order given, without duplicates.
pub fn parse_core_list(s: &str) -> Result<Vec<usize>, String> {
    let mut out: Vec<usize> = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        let num = |t: &str| {
            t.trim()
                .parse::<usize>()
                .map_err(|_| format!("bad core list {s:?}: {t:?} is not a core number"))
        };
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => {
                let n = num(part)?;
                (n, n)
            }
        };
        if lo > hi {
            return Err(format!("bad core list {s:?}: range {lo}-{hi} is backwards"));
        }
        if hi - lo >= 1024 {
            return Err(format!("bad core list {s:?}: range {lo}-{hi} is too large"));
        }
        for c in lo..=hi {
            if !out.contains(&c) {
                out.push(c);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::parse_core_list;

    #[test]
    fn parses_lists_and_ranges() {
        assert_eq!(parse_core_list("0").unwrap(), vec![0]);
        assert_eq!(parse_core_list("1,0").unwrap(), vec![1, 0]);
        assert_eq!(parse_core_list("0,2-4").unwrap(), vec![0, 2, 3, 4]);
        assert_eq!(parse_core_list("1,1-2").unwrap(), vec![1, 2]);
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "a", "1-", "-1", "3-1", "0,,1", "0-99999"] {
            assert!(parse_core_list(bad).is_err(), "{bad}");
        }
    }
}
