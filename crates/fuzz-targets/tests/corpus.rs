//! Every fuzz target over every input of its committed corpus (`fuzz/corpus/<target>/`): the seeds and
//! every input that once crashed a target stay regression tests under `cargo test --workspace`.

use std::path::PathBuf;

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

fn replay(target: &str) {
    let (_, run) = fuzz_targets::TARGETS
        .iter()
        .find(|(n, _)| *n == target)
        .expect("known target");
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: empty corpus", dir.display());
    for f in &files {
        let data = std::fs::read(f).expect("corpus file");
        eprintln!("{target}: {}", f.file_name().unwrap().to_string_lossy());
        run(&data);
    }
    eprintln!("{target}: {} inputs replayed", files.len());
}

#[test]
fn nb_cursor_corpus() {
    replay("nb_cursor");
}

#[test]
fn transforms_corpus() {
    replay("transforms");
}

#[test]
fn filter_ops_corpus() {
    replay("filter_ops");
}
