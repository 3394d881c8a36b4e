//! The workspace: its packages and their binaries, from `cargo metadata`.

use crate::cloudformation::scalar_text;
use kafka_lambda_tests::cargo_metadata;
use std::path::{Path, PathBuf};

/// A package of the workspace: its name, its directory and its binaries' names.
pub(crate) struct Package {
    pub(crate) name: String,
    pub(crate) dir: PathBuf,
    pub(crate) binaries: Vec<String>,
}

/// Every package of the workspace.
pub(crate) fn workspace_packages() -> Vec<Package> {
    cargo_metadata()["packages"]
        .as_array()
        .expect("cargo metadata lists packages")
        .iter()
        .map(|package| Package {
            name: scalar_text(&package["name"]),
            dir: Path::new(package["manifest_path"].as_str().unwrap_or_default())
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
            binaries: package["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|t| {
                    t["kind"]
                        .as_array()
                        .is_some_and(|k| k.contains(&"bin".into()))
                })
                .map(|t| scalar_text(&t["name"]))
                .collect(),
        })
        .collect()
}
