//! `hypha s3 key create | ls | rm`: the S3 endpoint's access keys, through
//! the node's `/v1/s3/keys` (admin token).

use serde_json::{json, Value};

use super::files::{print_json, Api, Output};
use crate::cli::{S3Command, S3KeyCommand};

/// Run one `hypha s3` subcommand.
pub async fn run(cmd: S3Command) -> anyhow::Result<()> {
    let S3Command::Key(cmd) = cmd;
    match cmd {
        S3KeyCommand::Create(args) => {
            let api = Api::new(&args.api)?;
            let body = json!({ "role": args.role, "description": args.description });
            let key: Value = api
                .send(
                    api.request(reqwest::Method::POST, "/v1/s3/keys")
                        .json(&body),
                )
                .await?
                .json()
                .await?;
            if api.output == Output::Json {
                return print_json(&key);
            }
            println!(
                "access key  {}",
                key["access_key"].as_str().unwrap_or_default()
            );
            println!(
                "secret key  {}",
                key["secret_key"].as_str().unwrap_or_default()
            );
            println!("role        {}", key["role"].as_str().unwrap_or_default());
            println!("(the secret is not shown again)");
            Ok(())
        }
        S3KeyCommand::Ls(args) => {
            let api = Api::new(&args)?;
            let doc: Value = api
                .send(api.request(reqwest::Method::GET, "/v1/s3/keys"))
                .await?
                .json()
                .await?;
            if api.output == Output::Json {
                return print_json(&doc);
            }
            for k in doc["keys"].as_array().into_iter().flatten() {
                println!(
                    "{}  {:<6} {}",
                    k["access_key"].as_str().unwrap_or_default(),
                    k["role"].as_str().unwrap_or_default(),
                    k["description"].as_str().unwrap_or_default()
                );
            }
            Ok(())
        }
        S3KeyCommand::Rm(args) => {
            let api = Api::new(&args.api)?;
            let path = format!("/v1/s3/keys/{}", args.access_key);
            api.send(api.request(reqwest::Method::DELETE, &path))
                .await?;
            println!("deleted {}", args.access_key);
            Ok(())
        }
    }
}
