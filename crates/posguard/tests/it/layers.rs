//! The layering, checked on the real dependency graph (`cargo metadata`): the
//! deterministic core reaches no async runtime, socket or database client, and the
//! simulator no database client.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// Crates a core crate must never reach, directly or through another crate.
const IO: &[&str] = &[
    "tokio",
    "mio",
    "axum",
    "hyper",
    "rusqlite",
    "libsqlite3-sys",
    "postgres",
    "tokio-postgres",
    "redis",
    "ureq",
];
/// Database clients: nothing but `store` (and what wires it) reaches them.
const DATABASES: &[&str] = &[
    "rusqlite",
    "libsqlite3-sys",
    "postgres",
    "tokio-postgres",
    "redis",
];

/// (crate, what it must not reach). `sim` drives the issuer and terminal simulators,
/// whose crates also hold their network servers, so it is only kept off databases.
const RULES: &[(&str, &[&str])] = &[
    ("domain", IO),
    ("iso8583", IO),
    ("cardsec", IO),
    ("risk", IO),
    ("ledger", IO),
    ("records", IO),
    ("switch", IO),
    ("settlement", IO),
    ("recon", IO),
    ("merchants", IO),
    ("complaints", IO),
    ("sim", DATABASES),
];

/// Every package's normal (not dev, not build) dependencies, by name.
fn normal_deps() -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let names: BTreeMap<&str, &str> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap_or(""),
                p["name"].as_str().unwrap_or(""),
            )
        })
        .collect();
    let mut deps = BTreeMap::new();
    for node in meta["resolve"]["nodes"].as_array().expect("resolve") {
        let name = names[node["id"].as_str().unwrap_or("")].to_owned();
        let normal: BTreeSet<String> = node["deps"]
            .as_array()
            .expect("deps")
            .iter()
            .filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .is_some_and(|k| k.iter().any(|k| k["kind"].is_null()))
            })
            .map(|d| names[d["pkg"].as_str().unwrap_or("")].to_owned())
            .collect();
        deps.entry(name)
            .or_insert_with(BTreeSet::new)
            .extend(normal);
    }
    deps
}

/// The dependency path from `from` to `to`, if `from` reaches `to`.
fn path(deps: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> Option<Vec<String>> {
    let mut seen = BTreeSet::new();
    let mut queue = std::collections::VecDeque::from([vec![from.to_owned()]]);
    while let Some(p) = queue.pop_front() {
        let last = p.last().expect("non-empty path").clone();
        if last == to {
            return Some(p);
        }
        if !seen.insert(last.clone()) {
            continue;
        }
        for d in deps.get(&last).into_iter().flatten() {
            let mut next = p.clone();
            next.push(d.clone());
            queue.push_back(next);
        }
    }
    None
}

#[test]
fn the_core_reaches_no_io_crate_and_the_simulator_no_database() {
    let deps = normal_deps();
    let mut broken = Vec::new();
    for (krate, forbidden) in RULES {
        assert!(deps.contains_key(*krate), "{krate} is not in the workspace");
        for f in *forbidden {
            if let Some(p) = path(&deps, krate, f) {
                broken.push(p.join(" -> "));
            }
        }
    }
    assert!(broken.is_empty(), "layering broken:\n{}", broken.join("\n"));
    // The walk sees what is there: the binary reaches every one of them.
    for f in ["tokio", "rusqlite", "postgres", "redis"] {
        assert!(
            path(&deps, "posguard", f).is_some(),
            "posguard should reach {f}"
        );
    }
}
