//! The build context as the tar Docker's `/build` endpoint takes: the context folder,
//! less what its `.dockerignore` excludes, the Dockerfile and the `.dockerignore` always
//! sent (as the docker CLI sends them).

use std::path::{Path, PathBuf};

use super::BuildError;
use super::ignore::DockerIgnore;

/// A context packed for Docker.
#[derive(Debug)]
pub struct ContextTar {
    /// The tar.
    pub bytes: Vec<u8>,
    /// Files sent.
    pub files: usize,
    /// Files left out by the `.dockerignore`.
    pub excluded: usize,
}

/// Packs `dir` (the Dockerfile at `dockerfile`, relative to it). Symbolic links are sent
/// as links, as the docker CLI sends them. The tar is held in memory.
pub fn pack(dir: &Path, dockerfile: &str) -> Result<ContextTar, BuildError> {
    let io = |path: &Path, source: std::io::Error| BuildError::Context {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(dir).map_err(|e| io(dir, e))?;
    if !meta.is_dir() {
        return Err(io(
            dir,
            std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a folder"),
        ));
    }
    let ignore = match std::fs::read_to_string(dir.join(".dockerignore")) {
        Ok(text) => DockerIgnore::parse(&text).map_err(|e| BuildError::Ignore {
            path: dir.join(".dockerignore"),
            source: e,
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => DockerIgnore::default(),
        Err(e) => return Err(io(&dir.join(".dockerignore"), e)),
    };
    let dockerfile = dockerfile.trim_start_matches("./").to_string();
    if !dir.join(&dockerfile).is_file() {
        return Err(BuildError::NoDockerfile {
            path: dir.join(&dockerfile),
        });
    }
    let always = |rel: &str| rel == dockerfile || rel == ".dockerignore";
    let descend_excluded = ignore.has_exceptions();
    let mut tar = tar::Builder::new(Vec::new());
    tar.follow_symlinks(false);
    let (mut files, mut excluded) = (0, 0);
    let mut walk = walkdir::WalkDir::new(dir)
        .follow_links(false)
        .sort_by_file_name()
        .min_depth(1)
        .into_iter();
    while let Some(entry) = walk.next() {
        let entry = entry.map_err(|e| {
            let path = e
                .path()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| dir.into());
            io(&path, e.into())
        })?;
        let full: PathBuf = entry.path().to_path_buf();
        let Ok(rel) = full.strip_prefix(dir) else {
            continue;
        };
        let rel = rel.to_string_lossy().replace('\\', "/");
        let is_dir = entry.file_type().is_dir();
        if ignore.excludes(&rel) && !always(&rel) {
            if is_dir {
                if !descend_excluded {
                    walk.skip_current_dir();
                }
            } else {
                excluded += 1;
            }
            continue;
        }
        if is_dir {
            tar.append_dir(&rel, &full).map_err(|e| io(&full, e))?;
        } else {
            tar.append_path_with_name(&full, &rel)
                .map_err(|e| io(&full, e))?;
            files += 1;
        }
    }
    let bytes = tar.into_inner().map_err(|e| io(dir, e))?;
    Ok(ContextTar {
        bytes,
        files,
        excluded,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(tar: &[u8]) -> Vec<String> {
        let mut archive = tar::Archive::new(tar);
        let mut out: Vec<String> = archive
            .entries()
            .unwrap_or_else(|e| panic!("{e}"))
            .map(|e| {
                let e = e.unwrap_or_else(|e| panic!("{e}"));
                e.path()
                    .unwrap_or_else(|e| panic!("{e}"))
                    .display()
                    .to_string()
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn the_dockerignore_leaves_files_out_but_never_the_dockerfile_or_itself() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let write = |rel: &str, text: &str| {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap_or(dir.path()))
                .unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(path, text).unwrap_or_else(|e| panic!("{e}"));
        };
        write("Dockerfile", "FROM scratch\n");
        write(
            ".dockerignore",
            "Dockerfile\n.dockerignore\nsecret.txt\nnode_modules\n!node_modules/keep\n",
        );
        write("app.txt", "app");
        write("secret.txt", "no");
        write("node_modules/a/b.js", "no");
        write("node_modules/keep", "yes");
        let packed = pack(dir.path(), "Dockerfile").unwrap_or_else(|e| panic!("{e}"));
        let got = names(&packed.bytes);
        assert_eq!(
            got,
            vec![
                ".dockerignore",
                "Dockerfile",
                "app.txt",
                "node_modules/keep"
            ],
            "{got:?}"
        );
        assert_eq!((packed.files, packed.excluded), (4, 2));
        assert!(matches!(
            pack(dir.path(), "Dockerfile.missing"),
            Err(BuildError::NoDockerfile { .. })
        ));
        assert!(matches!(
            pack(&dir.path().join("nope"), "Dockerfile"),
            Err(BuildError::Context { .. })
        ));
    }
}
