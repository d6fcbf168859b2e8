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

/// What of a context folder is sent: chosen before anything is sent, so a missing
/// Dockerfile or a bad `.dockerignore` is known first and the upload's size is known.
#[derive(Debug)]
pub struct Selection {
    /// The folder.
    dir: PathBuf,
    /// Entries in tar order: (name in the tar, path on disk, is a folder).
    entries: Vec<(String, PathBuf, bool)>,
    /// Files sent.
    pub files: usize,
    /// Files left out by the `.dockerignore`.
    pub excluded: usize,
    /// The tar's size, estimated from the files' sizes (headers of 512 bytes, data in
    /// blocks of 512): what the upload progress counts towards.
    pub estimated_bytes: u64,
}

/// Chooses what of `dir` (the Dockerfile at `dockerfile`, relative to it) is sent.
/// Symbolic links are sent as links, as the docker CLI sends them.
pub fn select(dir: &Path, dockerfile: &str) -> Result<Selection, BuildError> {
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
    let mut selection = Selection {
        dir: dir.to_path_buf(),
        entries: Vec::new(),
        files: 0,
        excluded: 0,
        estimated_bytes: 1024,
    };
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
                selection.excluded += 1;
            }
            continue;
        }
        let size = if entry.file_type().is_file() {
            entry.metadata().map(|m| m.len()).unwrap_or(0)
        } else {
            0
        };
        selection.estimated_bytes += 512 + size.div_ceil(512) * 512;
        if !is_dir {
            selection.files += 1;
        }
        selection.entries.push((rel, full, is_dir));
    }
    Ok(selection)
}

impl Selection {
    /// Writes the tar to `out`, reading each file as it goes (nothing is held whole).
    pub fn write_to<W: std::io::Write>(&self, out: W) -> Result<W, BuildError> {
        let io = |path: &Path, source: std::io::Error| BuildError::Context {
            path: path.to_path_buf(),
            source,
        };
        let mut tar = tar::Builder::new(out);
        tar.follow_symlinks(false);
        for (rel, full, is_dir) in &self.entries {
            if *is_dir {
                tar.append_dir(rel, full).map_err(|e| io(full, e))?;
            } else {
                tar.append_path_with_name(full, rel)
                    .map_err(|e| io(full, e))?;
            }
        }
        tar.into_inner().map_err(|e| io(&self.dir, e))
    }
}

/// Packs `dir` whole in memory (small contexts and tests; builds stream [`Selection::write_to`]).
pub fn pack(dir: &Path, dockerfile: &str) -> Result<ContextTar, BuildError> {
    let selection = select(dir, dockerfile)?;
    let bytes = selection.write_to(Vec::new())?;
    Ok(ContextTar {
        bytes,
        files: selection.files,
        excluded: selection.excluded,
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

    #[test]
    fn a_file_gone_between_the_choice_and_the_upload_is_named() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n")
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("big.bin"), vec![7u8; 3000])
            .unwrap_or_else(|e| panic!("{e}"));
        let selection = select(dir.path(), "Dockerfile").unwrap_or_else(|e| panic!("{e}"));
        // Two headers, two files in 512-byte blocks, the end of the archive.
        assert_eq!(selection.estimated_bytes, 1024 + 512 + 512 + 512 + 3072);
        let whole = selection
            .write_to(Vec::new())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(whole.len() as u64 % 512, 0);
        std::fs::remove_file(dir.path().join("big.bin")).unwrap_or_else(|e| panic!("{e}"));
        match selection.write_to(Vec::new()) {
            Err(BuildError::Context { path, .. }) => assert!(path.ends_with("big.bin"), "{path:?}"),
            other => panic!("{other:?}"),
        }
    }
}
