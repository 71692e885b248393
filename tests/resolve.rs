//! Model resolution against temporary search paths and Hugging Face cache layouts.
use std::fs;
use std::path::{Path, PathBuf};

use sift_tui::model::resolve::{
    availability, local_models_in, resolve_model_in, split_revision, weights_file, Availability, SearchEnv, Token,
};
use tempfile::TempDir;

/// Writes a minimal checkpoint (config + the given weights file) into `dir`.
fn checkpoint(dir: &Path, weights: &str) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("config.json"), "{}").unwrap();
    fs::write(dir.join(weights), b"").unwrap();
    dir.to_path_buf()
}

/// Writes a hub-cache snapshot of `org/name` at `revision`.
fn cached(cache: &Path, id: &str, revision: &str) -> PathBuf {
    let repo = cache.join(format!("models--{}", id.replace('/', "--")));
    checkpoint(&repo.join("snapshots").join(revision), "model.safetensors")
}

fn set_main_ref(cache: &Path, id: &str, revision: &str) {
    let refs = cache.join(format!("models--{}", id.replace('/', "--"))).join("refs");
    fs::create_dir_all(&refs).unwrap();
    fs::write(refs.join("main"), revision).unwrap();
}

fn env(model_path: &[&Path], cache: Option<&Path>) -> SearchEnv {
    SearchEnv {
        model_path: model_path.iter().map(|p| p.to_path_buf()).collect(),
        hf_cache: cache.map(Path::to_path_buf),
        offline: true,
        ..SearchEnv::default()
    }
}

#[test]
fn existing_directory_is_used_as_is() {
    let tmp = TempDir::new().unwrap();
    let dir = checkpoint(&tmp.path().join("my-model"), "pytorch_model.bin");
    let found = resolve_model_in(dir.to_str().unwrap(), &env(&[], None)).unwrap();
    assert_eq!(found, dir);
}

#[test]
fn existing_directory_without_checkpoint_is_an_error() {
    let tmp = TempDir::new().unwrap();
    let err = resolve_model_in(tmp.path().to_str().unwrap(), &env(&[], None)).unwrap_err();
    assert!(err.to_string().contains("no config.json"), "{err}");
}

#[test]
fn search_path_finds_flat_and_nested_layouts() {
    let flat = TempDir::new().unwrap();
    let nested = TempDir::new().unwrap();
    let flat_dir = checkpoint(&flat.path().join("all-MiniLM-L6-v2"), "model.safetensors");
    let nested_dir = checkpoint(&nested.path().join("microsoft/deberta-v3-base"), "pytorch_model.bin");
    let env = env(&[flat.path(), nested.path()], None);

    assert_eq!(resolve_model_in("sentence-transformers/all-MiniLM-L6-v2", &env).unwrap(), flat_dir);
    assert_eq!(resolve_model_in("all-MiniLM-L6-v2", &env).unwrap(), flat_dir);
    assert_eq!(resolve_model_in("microsoft/deberta-v3-base", &env).unwrap(), nested_dir);
}

#[test]
fn earlier_search_path_entries_win() {
    let first = TempDir::new().unwrap();
    let second = TempDir::new().unwrap();
    let winner = checkpoint(&first.path().join("bert"), "model.safetensors");
    checkpoint(&second.path().join("bert"), "model.safetensors");
    assert_eq!(resolve_model_in("bert", &env(&[first.path(), second.path()], None)).unwrap(), winner);
}

#[test]
fn incomplete_search_path_entry_is_skipped_for_the_cache() {
    let path = TempDir::new().unwrap();
    let cache = TempDir::new().unwrap();
    fs::create_dir_all(path.path().join("bert-base-uncased")).unwrap();
    let snapshot = cached(cache.path(), "bert-base-uncased", "abc123");
    set_main_ref(cache.path(), "bert-base-uncased", "abc123\n");
    let found = resolve_model_in("bert-base-uncased", &env(&[path.path()], Some(cache.path()))).unwrap();
    assert_eq!(found, snapshot);
}

#[test]
fn cache_follows_refs_main() {
    let cache = TempDir::new().unwrap();
    let id = "microsoft/deberta-base";
    let main = cached(cache.path(), id, "1111");
    cached(cache.path(), id, "2222");
    set_main_ref(cache.path(), id, "1111");
    assert_eq!(resolve_model_in(id, &env(&[], Some(cache.path()))).unwrap(), main);
}

#[test]
fn cache_without_refs_takes_the_complete_snapshot() {
    let cache = TempDir::new().unwrap();
    let id = "org/model";
    let complete = cached(cache.path(), id, "aaaa");
    // A snapshot without config.json is skipped.
    let partial = cache.path().join("models--org--model/snapshots/bbbb");
    fs::create_dir_all(&partial).unwrap();
    fs::write(partial.join("model.safetensors"), b"").unwrap();
    assert_eq!(resolve_model_in(id, &env(&[], Some(cache.path()))).unwrap(), complete);
}

#[test]
fn not_found_error_lists_every_place() {
    let path = TempDir::new().unwrap();
    let cache = TempDir::new().unwrap();
    let err = resolve_model_in("org/missing", &env(&[path.path()], Some(cache.path()))).unwrap_err();
    let message = err.to_string();
    for place in
        [path.path().join("missing"), path.path().join("org/missing"), cache.path().join("models--org--missing")]
    {
        assert!(message.contains(&place.display().to_string()), "{place:?} not in: {message}");
    }
    assert!(message.contains("SIFT_MODEL_PATH"), "{message}");
    assert!(message.contains("download from the Hub (https://huggingface.co): skipped, offline"), "{message}");
}

#[test]
fn broken_refs_main_is_reported() {
    let cache = TempDir::new().unwrap();
    set_main_ref(cache.path(), "org/model", "deadbeef");
    let message = resolve_model_in("org/model", &env(&[], Some(cache.path()))).unwrap_err().to_string();
    assert!(message.contains("snapshots/deadbeef"), "{message}");
    assert!(message.contains("refs/main"), "{message}");
}

#[test]
fn environment_variables_are_read() {
    let vars = |name: &str| match name {
        "SIFT_MODEL_PATH" => Some("/a:/b::".to_string()),
        "HF_HOME" => Some("/hf".to_string()),
        "HOME" => Some("/home/u".to_string()),
        "SIFT_OFFLINE" => Some("1".to_string()),
        _ => None,
    };
    let env = SearchEnv::from_vars(vars);
    assert_eq!(env.model_path, vec![PathBuf::from("/a"), PathBuf::from("/b")]);
    assert_eq!(env.hf_cache, Some(PathBuf::from("/hf/hub")));
    assert!(env.offline);

    let hub_cache_wins = SearchEnv::from_vars(|name| match name {
        "HF_HUB_CACHE" => Some("/cache".to_string()),
        "HF_HOME" => Some("/hf".to_string()),
        _ => None,
    });
    assert_eq!(hub_cache_wins.hf_cache, Some(PathBuf::from("/cache")));
    assert!(!hub_cache_wins.offline);

    let home_only = SearchEnv::from_vars(|name| (name == "HOME").then(|| "/home/u".to_string()));
    assert_eq!(home_only.hf_cache, Some(PathBuf::from("/home/u/.cache/huggingface/hub")));
    assert_eq!(home_only.token_file, Some(PathBuf::from("/home/u/.cache/huggingface/token")));
    assert_eq!(home_only.endpoint(), "https://huggingface.co");
    assert_eq!(home_only.token, None);

    let hub = SearchEnv::from_vars(|name| match name {
        "HF_HOME" => Some("/hf".to_string()),
        "HF_ENDPOINT" => Some("https://mirror.example/".to_string()),
        "HF_TOKEN" => Some("hf_abc\n".to_string()),
        _ => None,
    });
    assert_eq!(hub.endpoint(), "https://mirror.example");
    assert_eq!(hub.token, Some(Token("hf_abc".into())));
    assert_eq!(hub.token_file, Some(PathBuf::from("/hf/token")));
    assert!(!format!("{hub:?}").contains("hf_abc"), "tokens are never printed");
}

#[test]
fn weights_prefer_safetensors() {
    let tmp = TempDir::new().unwrap();
    let dir = checkpoint(tmp.path(), "pytorch_model.bin");
    assert_eq!(weights_file(&dir).unwrap(), dir.join("pytorch_model.bin"));
    fs::write(dir.join("model.safetensors"), b"").unwrap();
    assert_eq!(weights_file(&dir).unwrap(), dir.join("model.safetensors"));
    let empty = TempDir::new().unwrap();
    let message = weights_file(empty.path()).unwrap_err().to_string();
    assert!(message.contains(&empty.path().display().to_string()), "{message}");
}

#[test]
fn local_models_lists_search_path_and_cache() {
    let path = TempDir::new().unwrap();
    let cache = TempDir::new().unwrap();
    let flat = checkpoint(&path.path().join("mini"), "model.safetensors");
    let nested = checkpoint(&path.path().join("microsoft/deberta-base"), "model.safetensors");
    fs::create_dir_all(path.path().join("not-a-model")).unwrap();
    let snapshot = cached(cache.path(), "org/cached", "r1");
    // Also on the search path: listed once, from the search path.
    cached(cache.path(), "mini", "r1");

    let models = local_models_in(&env(&[path.path()], Some(cache.path())));
    assert_eq!(
        models,
        vec![
            ("microsoft/deberta-base".to_string(), nested),
            ("mini".to_string(), flat),
            ("org/cached".to_string(), snapshot),
        ]
    );
}

#[test]
fn availability_says_where_a_model_would_come_from() {
    let path = TempDir::new().unwrap();
    let cache = TempDir::new().unwrap();
    let local = checkpoint(&path.path().join("mini"), "model.safetensors");
    let snapshot = cached(cache.path(), "org/cached", "r1");
    let offline = env(&[path.path()], Some(cache.path()));
    let online = SearchEnv { offline: false, ..offline.clone() };

    assert_eq!(availability("org/mini", &offline), Availability::Local(local.clone()));
    assert_eq!(availability("org/cached", &offline), Availability::Cached(snapshot));
    assert_eq!(availability("org/absent", &offline), Availability::MissingOffline);
    assert_eq!(availability("org/absent", &online), Availability::Download);
    assert_eq!(Availability::Local(local.clone()).to_string(), format!("local {}", local.display()));
    assert_eq!(Availability::MissingOffline.to_string(), "missing (offline)");
}

#[test]
fn a_revision_is_looked_up_through_its_ref_or_as_a_commit() {
    let cache = TempDir::new().unwrap();
    let id = "org/model";
    let main = cached(cache.path(), id, "1111");
    let pinned = cached(cache.path(), id, "2222");
    set_main_ref(cache.path(), id, "1111");
    let refs = cache.path().join("models--org--model/refs");
    fs::write(refs.join("v2"), "2222").unwrap();
    let env = env(&[], Some(cache.path()));

    assert_eq!(split_revision("org/model@v2"), ("org/model", Some("v2")));
    assert_eq!(split_revision("org/model"), ("org/model", None));
    assert_eq!(resolve_model_in("org/model", &env).unwrap(), main);
    assert_eq!(resolve_model_in("org/model@v2", &env).unwrap(), pinned);
    assert_eq!(resolve_model_in("org/model@2222", &env).unwrap(), pinned);
    let message = resolve_model_in("org/model@v3", &env).unwrap_err().to_string();
    assert!(message.contains("snapshots/v3 (revision v3"), "{message}");
}
