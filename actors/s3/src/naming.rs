//! How S3 names and metadata map onto the cluster's files. Pure.
//!
//! - An object `KEY` in bucket `B` is the file `B/KEY`: a bucket is a
//!   top-level prefix, so the files API and S3 see the same bytes.
//! - A bucket exists when its record `.hypha/s3/buckets/B` does (so an
//!   empty bucket exists, and a stray `B/` file does not make one).
//! - An object's Content-Type is the file's; its ETag, user metadata
//!   (`x-amz-meta-*`) and the other stored headers are file labels under
//!   `s3.`, which the files API shows too.

use std::collections::BTreeMap;

/// Where bucket records live (reserved: the files API refuses writes).
pub const BUCKET_PREFIX: &str = ".hypha/s3/buckets/";
/// Where multipart uploads keep their record and parts.
pub const UPLOAD_PREFIX: &str = ".hypha/s3/uploads/";
/// Where access keys live.
pub const KEY_PREFIX: &str = ".hypha/s3/keys/";

/// The label holding an object's ETag (without quotes).
pub const ETAG_LABEL: &str = "s3.etag";
/// Labels holding user metadata: this, then the lowercased name.
pub const META_LABEL_PREFIX: &str = "s3.meta.";
/// Stored response headers, each as `s3.` + its lowercased name.
pub const STORED_HEADERS: [&str; 4] = [
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
];

/// A name the S3 side refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Not a valid bucket name.
    #[error("bucket names are 3-63 characters of a-z, 0-9, '.' and '-', starting and ending with a letter or digit")]
    Bucket,
    /// Not a valid key.
    #[error("keys are 1-1000 bytes without control characters")]
    Key,
    /// Metadata that no label can hold.
    #[error("metadata {0}")]
    Metadata(String),
}

/// Check a bucket name (the DNS-compatible rules S3 enforces today).
pub fn check_bucket(bucket: &str) -> Result<(), NameError> {
    let bytes = bucket.as_bytes();
    let edge_ok = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let ok = (3..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'.' || *b == b'-')
        && edge_ok(bytes.first())
        && edge_ok(bytes.last())
        && !bucket.contains("..")
        && !bucket.starts_with("xn--");
    ok.then_some(()).ok_or(NameError::Bucket)
}

/// Check a key: a file name leaves room for the bucket and its slash.
pub fn check_key(key: &str) -> Result<(), NameError> {
    let ok = !key.is_empty() && key.len() <= 1000 && !key.chars().any(char::is_control);
    ok.then_some(()).ok_or(NameError::Key)
}

/// The file holding `key` in `bucket`.
pub fn object_file(bucket: &str, key: &str) -> String {
    format!("{bucket}/{key}")
}

/// The prefix of every object file of `bucket`.
pub fn bucket_files(bucket: &str) -> String {
    format!("{bucket}/")
}

/// The record that makes `bucket` exist.
pub fn bucket_record(bucket: &str) -> String {
    format!("{BUCKET_PREFIX}{bucket}")
}

/// The record of multipart upload `upload_id`.
pub fn upload_record(upload_id: &str) -> String {
    format!("{UPLOAD_PREFIX}{upload_id}")
}

/// The file holding part `part` of upload `upload_id`.
pub fn part_file(upload_id: &str, part: i32) -> String {
    format!("{UPLOAD_PREFIX}{upload_id}.parts/{part:05}")
}

/// The prefix of an upload's part files.
pub fn parts_prefix(upload_id: &str) -> String {
    format!("{UPLOAD_PREFIX}{upload_id}.parts/")
}

/// The file holding access key `access_key`'s record.
pub fn key_record(access_key: &str) -> String {
    format!("{KEY_PREFIX}{access_key}")
}

/// User metadata and stored headers as file labels (`etag` added by the
/// caller once the body is read). Names are lowercased, as S3 does.
pub fn labels_of(
    metadata: &BTreeMap<String, String>,
    headers: &BTreeMap<&str, String>,
) -> Result<BTreeMap<String, String>, NameError> {
    let mut labels = BTreeMap::new();
    for (name, value) in metadata {
        let label = format!("{META_LABEL_PREFIX}{}", name.to_ascii_lowercase());
        label_ok(&label, value)?;
        labels.insert(label, value.clone());
    }
    for (name, value) in headers {
        let label = format!("s3.{name}");
        label_ok(&label, value)?;
        labels.insert(label, value.clone());
    }
    // The ETag and room for what the files API adds.
    if labels.len() > hypha_dht::manifest::MAX_FILE_LABELS - 1 {
        return Err(NameError::Metadata(format!(
            "at most {} entries",
            hypha_dht::manifest::MAX_FILE_LABELS - 1
        )));
    }
    Ok(labels)
}

fn label_ok(label: &str, value: &str) -> Result<(), NameError> {
    hypha_core::labels::validate_key(label).map_err(|_| {
        NameError::Metadata(format!(
            "name {label:?}: only a-z, 0-9, '.', '_' and '-', at most 54 characters"
        ))
    })?;
    hypha_core::labels::validate_value(value).map_err(|_| {
        NameError::Metadata(format!(
            "{label:?}: values are at most 256 bytes without control characters"
        ))
    })
}

/// User metadata back from a file's labels.
pub fn metadata_of(labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    labels
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(META_LABEL_PREFIX)?.to_owned(), v.clone())))
        .collect()
}

/// A stored header back from a file's labels.
pub fn stored_header<'a>(labels: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    labels.get(&format!("s3.{name}")).map(String::as_str)
}

/// An object's ETag, quoted: the stored one (MD5 of a single-part
/// upload's bytes; MD5 of the parts' MD5s, `-N`, for a multipart one), or
/// for a file written through the files API, the first 128 bits of its
/// BLAKE3 root (it has no MD5).
pub fn etag_of(labels: &BTreeMap<String, String>, root: &[u8; 32]) -> String {
    match labels.get(ETAG_LABEL) {
        Some(tag) => format!("\"{tag}\""),
        None => format!("\"{}\"", hex::encode(&root[..16])),
    }
}

/// The multipart ETag: MD5 over the parts' binary MD5s, then `-` and
/// their count (what S3 answers, and what clients expect its shape to be).
pub fn multipart_etag(part_md5s: &[[u8; 16]]) -> String {
    use md5::{Digest, Md5};
    let mut h = Md5::new();
    for m in part_md5s {
        h.update(m);
    }
    format!("{}-{}", hex::encode(h.finalize()), part_md5s.len())
}

/// Whether `etag` (as a client sends it in `If-Match` and the like,
/// quoted or not, or `*`) names `current` (quoted).
pub fn etag_matches(condition: &str, current: &str) -> bool {
    condition.split(',').any(|c| {
        let c = c.trim();
        c == "*" || c.trim_matches('"') == current.trim_matches('"')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_the_s3_rules() {
        for good in ["abc", "my-bucket.1", "0bucket", &"a".repeat(63)] {
            assert!(check_bucket(good).is_ok(), "{good}");
        }
        for bad in [
            "ab",
            "Bucket",
            "-abc",
            "abc-",
            "a..b",
            "xn--abc",
            "a_b",
            &"a".repeat(64),
            "a/b",
        ] {
            assert!(check_bucket(bad).is_err(), "{bad}");
        }
        assert!(check_key("a/b c.txt").is_ok());
        assert!(check_key("").is_err());
        assert!(check_key("a\nb").is_err());
        assert!(check_key(&"k".repeat(1001)).is_err());
    }

    #[test]
    fn metadata_round_trips_through_labels() {
        let meta = BTreeMap::from([("Color".to_string(), "blue".to_string())]);
        let headers = BTreeMap::from([("content-encoding", "gzip".to_string())]);
        let labels = labels_of(&meta, &headers).expect("fits");
        assert_eq!(labels["s3.meta.color"], "blue");
        assert_eq!(stored_header(&labels, "content-encoding"), Some("gzip"));
        assert_eq!(
            metadata_of(&labels),
            BTreeMap::from([("color".into(), "blue".into())])
        );
        let odd = BTreeMap::from([("a b".to_string(), "x".to_string())]);
        assert!(labels_of(&odd, &BTreeMap::new()).is_err());
        let long = BTreeMap::from([("k".to_string(), "v".repeat(257))]);
        assert!(labels_of(&long, &BTreeMap::new()).is_err());
        let many: BTreeMap<String, String> =
            (0..40).map(|i| (format!("k{i}"), "v".into())).collect();
        assert!(labels_of(&many, &BTreeMap::new()).is_err());
    }

    #[test]
    fn etags_are_md5_or_the_root_and_conditions_match_them() {
        let mut labels = BTreeMap::new();
        assert_eq!(
            etag_of(&labels, &[0xab; 32]),
            format!("\"{}\"", "ab".repeat(16))
        );
        labels.insert(
            ETAG_LABEL.to_string(),
            "d41d8cd98f00b204e9800998ecf8427e".to_string(),
        );
        let tag = etag_of(&labels, &[0; 32]);
        assert_eq!(tag, "\"d41d8cd98f00b204e9800998ecf8427e\"");
        assert!(etag_matches("\"d41d8cd98f00b204e9800998ecf8427e\"", &tag));
        assert!(etag_matches("d41d8cd98f00b204e9800998ecf8427e", &tag));
        assert!(etag_matches("\"x\", *", &tag));
        assert!(!etag_matches("\"x\"", &tag));
        // Two parts: MD5 of the two binary MD5s, "-2".
        let e = multipart_etag(&[[1; 16], [2; 16]]);
        assert!(e.ends_with("-2") && e.len() == 34, "{e}");
    }
}
