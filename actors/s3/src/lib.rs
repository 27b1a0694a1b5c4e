//! Hypha's S3-compatible endpoint: the S3 REST API (on `s3s`, which
//! parses requests, checks Signature V4 and writes S3's XML) over the
//! cluster's files, so that `aws s3`, rclone, s3cmd and the SDKs work
//! unchanged. A bucket is a top-level prefix with a record of its own;
//! an object is the file `bucket/key` (`naming`). Access keys are made by
//! the node and mapped to the token model's roles (`keys`, `store`).
//! docs/s3.md has what is supported and how.

pub mod keys;
pub mod listing;
pub mod multipart;
pub mod naming;
pub mod objects;
pub mod service;
pub mod store;

pub use service::HyphaS3;
pub use store::KeyStore;

/// The s3s service for one node: the operations over `files`, requests
/// signed by a key in `keys` and allowed by its role.
pub fn service(files: hypha_dht::files::Files, keys: KeyStore) -> s3s::service::S3Service {
    let mut b = s3s::service::S3ServiceBuilder::new(HyphaS3::new(files));
    b.set_auth(keys.clone());
    b.set_access(keys);
    b.build()
}
