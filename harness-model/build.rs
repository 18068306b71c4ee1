//! Generates the contract vocabulary from `contracts/*.toml`: the list of family files
//! the registry embeds, and one constant per contract id (`ids::RESUME_NO_GAP` for
//! `resume.no-gap`), so a checker that names a contract that does not exist is a
//! compile error, not a runtime panic.

use std::fmt::Write as _;
use std::path::Path;

#[derive(serde::Deserialize)]
struct Family {
    family: String,
    #[serde(rename = "contract")]
    contracts: Vec<Contract>,
}

#[derive(serde::Deserialize)]
struct Contract {
    id: String,
    level: String,
    spec: String,
    title: String,
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../contracts");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("contracts/ exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        // Not a family: the fault → contract table of the mutation suite.
        .filter(|p| p.file_name().is_some_and(|n| n != "mutations.toml"))
        .collect();
    files.sort();
    let mut table = String::from("&[\n");
    let mut ids = String::new();
    let mut all =
        String::from("/// Every contract, by id.\npub const ALL: &[KnownContract] = &[\n");
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        let text = std::fs::read_to_string(f).expect("readable contract file");
        let fam: Family =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{} is malformed: {e}", f.display()));
        let name = f.file_name().unwrap().to_string_lossy();
        let abs = f.canonicalize().expect("canonical path");
        writeln!(
            table,
            "    ({name:?}, include_str!({:?})),",
            abs.display().to_string()
        )
        .unwrap();
        for c in &fam.contracts {
            assert!(
                c.id.starts_with(&format!("{}.", fam.family)),
                "{}: contract {} is not in family {}",
                name,
                c.id,
                fam.family
            );
            let konst = c.id.to_uppercase().replace(['.', '-'], "_");
            writeln!(
                ids,
                "/// `{}` ({}, {}): {}\npub const {konst}: KnownContract = KnownContract({:?});",
                c.id,
                c.level,
                c.spec.replace('`', "'"),
                c.title,
                c.id
            )
            .unwrap();
            writeln!(all, "    {konst},").unwrap();
        }
    }
    table.push(']');
    all.push_str("];\n");
    let out = std::env::var("OUT_DIR").unwrap();
    std::fs::write(Path::new(&out).join("family_files.rs"), table).unwrap();
    std::fs::write(Path::new(&out).join("contract_ids.rs"), ids + &all).unwrap();
}
