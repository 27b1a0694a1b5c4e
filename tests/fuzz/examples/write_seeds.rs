//! Writes every target's seeds as the starting corpus of `cargo fuzz run`
//! (`tests/fuzz/corpus/<target>/seed-N`): `cargo run -p hypha-fuzz --example
//! write_seeds` before a long run.

fn main() -> std::io::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (name, _) in hypha_fuzz::TARGETS {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir)?;
        let seeds = hypha_fuzz::seeds(name);
        for (i, seed) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), seed)?;
        }
        println!("{name}: {} seeds in {}", seeds.len(), dir.display());
    }
    Ok(())
}
