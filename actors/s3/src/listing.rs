//! ListObjects (v1 and v2) over the files listing, which is one flat,
//! name-ordered walk of the cluster: keys under the prefix become
//! objects, or with a delimiter are rolled up into common prefixes, and
//! the walk jumps past a common prefix instead of reading everything
//! under it. Pure: the caller feeds listed keys and follows the answers.

/// What the caller does after feeding a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feed {
    /// Go on with the next listed key.
    Next,
    /// A common prefix was taken: list again from after this key, which
    /// skips everything under it.
    SkipTo(String),
    /// The page is full and more keys exist: stop.
    Full,
}

/// One page of a listing being gathered.
#[derive(Debug, Clone)]
pub struct Collector {
    prefix: String,
    delimiter: Option<String>,
    max_keys: usize,
    /// Keys of objects, in order.
    pub keys: Vec<String>,
    /// Common prefixes, in order.
    pub prefixes: Vec<String>,
    /// Whether more follow.
    pub truncated: bool,
    last: Option<String>,
}

/// The key after which every key that starts with `prefix` comes first:
/// list "after" it to skip them all.
pub fn past(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

impl Collector {
    /// A page of at most `max_keys` objects and prefixes together.
    pub fn new(prefix: &str, delimiter: Option<&str>, max_keys: usize) -> Self {
        Self {
            prefix: prefix.to_owned(),
            delimiter: delimiter.filter(|d| !d.is_empty()).map(str::to_owned),
            max_keys,
            keys: Vec::new(),
            prefixes: Vec::new(),
            truncated: false,
            last: None,
        }
    }

    fn taken(&self) -> usize {
        self.keys.len() + self.prefixes.len()
    }

    /// Take `key` (listed in order, under the prefix).
    pub fn feed(&mut self, key: &str) -> Feed {
        let Some(rest) = key.strip_prefix(&self.prefix) else {
            return Feed::Next;
        };
        if self.taken() >= self.max_keys {
            self.truncated = true;
            return Feed::Full;
        }
        let common = self.delimiter.as_deref().and_then(|d| {
            rest.find(d)
                .map(|i| format!("{}{}", self.prefix, &rest[..i + d.len()]))
        });
        match common {
            Some(cp) => {
                let skip = past(&cp);
                self.prefixes.push(cp);
                self.last = Some(skip.clone());
                Feed::SkipTo(skip)
            }
            None => {
                self.keys.push(key.to_owned());
                self.last = Some(key.to_owned());
                Feed::Next
            }
        }
    }

    /// Where the next page starts, when this one is truncated.
    pub fn resume_after(&self) -> Option<&str> {
        self.truncated.then_some(self.last.as_deref()).flatten()
    }
}

/// `text` as a listing answers it with `encoding-type=url`: every byte
/// but the unreserved ones and `/` percent-encoded (a `+` is `%2B`, a
/// space `%20`), which clients decode. boto3 and the AWS CLI ask for it
/// on every listing, and decode `+` as a space if it comes raw.
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A continuation token for resuming after `key` (opaque to clients).
pub fn token(after: &str) -> String {
    hex::encode(after.as_bytes())
}

/// The key a continuation token resumes after.
pub fn untoken(token: &str) -> Option<String> {
    String::from_utf8(hex::decode(token).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run a collector over a sorted key set the way the service does.
    fn walk(all: &[&str], prefix: &str, delim: Option<&str>, max: usize, after: &str) -> Collector {
        let mut c = Collector::new(prefix, delim, max);
        let mut from = after.to_owned();
        'outer: loop {
            for k in all
                .iter()
                .filter(|k| **k > from.as_str() && k.starts_with(prefix))
            {
                match c.feed(k) {
                    Feed::Next => {}
                    Feed::SkipTo(s) => {
                        from = s;
                        continue 'outer;
                    }
                    Feed::Full => break 'outer,
                }
            }
            break;
        }
        c
    }

    const KEYS: [&str; 7] = [
        "a.txt",
        "d/1",
        "d/2",
        "d/e/3",
        "photos/2026/x.jpg",
        "photos/y.jpg",
        "z",
    ];

    #[test]
    fn a_delimiter_rolls_keys_up_into_common_prefixes() {
        let c = walk(&KEYS, "", Some("/"), 100, "");
        assert_eq!(c.keys, ["a.txt", "z"]);
        assert_eq!(c.prefixes, ["d/", "photos/"]);
        assert!(!c.truncated);
        let c = walk(&KEYS, "photos/", Some("/"), 100, "");
        assert_eq!(c.keys, ["photos/y.jpg"]);
        assert_eq!(c.prefixes, ["photos/2026/"]);
        let c = walk(&KEYS, "d/", None, 100, "");
        assert_eq!(c.keys, ["d/1", "d/2", "d/e/3"]);
    }

    #[test]
    fn pages_resume_where_they_stopped_and_cover_everything_once() {
        for max in 1..=8 {
            let mut seen = Vec::new();
            let mut after = String::new();
            loop {
                let c = walk(&KEYS, "", Some("/"), max, &after);
                seen.extend(c.keys.iter().cloned());
                seen.extend(c.prefixes.iter().cloned());
                match c.resume_after() {
                    Some(next) => after = untoken(&token(next)).expect("round trip"),
                    None => break,
                }
            }
            seen.sort();
            assert_eq!(seen, ["a.txt", "d/", "photos/", "z"], "max {max}");
        }
    }

    #[test]
    fn url_encoding_keeps_slashes_and_escapes_plus_and_space() {
        assert_eq!(url_encode("asdf+b"), "asdf%2Bb");
        assert_eq!(url_encode("quux ab/thud"), "quux%20ab/thud");
        assert_eq!(url_encode("é"), "%C3%A9");
    }

    #[test]
    fn a_page_exactly_full_is_not_truncated() {
        let c = walk(&["a", "b"], "", None, 2, "");
        assert!(!c.truncated);
        let c = walk(&["a", "b", "c"], "", None, 2, "");
        assert!(c.truncated);
        assert_eq!(c.resume_after(), Some("b"));
    }
}
