//! Registries: which registry an image comes from, and the credentials kargo gives it
//! when pushing (`kargo build --push`) and when Swarm nodes pull (the controller).
//!
//! A password is never stored in plaintext: it comes from a sealed variable of the
//! Environment (opened by the controller), a file, or an environment variable of the
//! process that needs it (docs/security.md, "Registries").

pub mod resolve;

use crate::api::{EnvironmentSpec, PasswordSource, Registry, SensitiveValue};

/// The prefix an environment variable must have to be read as a registry password for an
/// Environment this process did not get from its own user (see [`SourceRules`]).
pub const ENV_PREFIX: &str = "KARGO_REGISTRY_";

/// The environment variable naming the folder password files are read from, for an
/// Environment stored in etcd.
pub const SECRETS_DIR_ENV: &str = "KARGO_REGISTRY_SECRETS_DIR";

/// Which `file` and `env` sources a process reads. An Environment stored in etcd was
/// written by whoever can apply: reading any file or variable it names would send the
/// controller's key file, or a variable of the CLI's user, to a registry that applier
/// chose. So, for stored Environments, files are read only inside a folder the process's
/// operator names, and variables only when named `KARGO_REGISTRY_…`.
#[derive(Clone, Debug, Default)]
pub struct SourceRules {
    /// Every source is read: the Environment is the user's own (a file given with -f).
    pub trust_all: bool,
    /// Password files are read only inside this folder; `None`: no file is read.
    pub files_under: Option<std::path::PathBuf>,
}

impl SourceRules {
    /// The rules of a CLI command reading a stored Environment: the folder from
    /// `KARGO_REGISTRY_SECRETS_DIR`, if set.
    pub fn from_env() -> Self {
        SourceRules {
            trust_all: false,
            files_under: std::env::var_os(SECRETS_DIR_ENV)
                .filter(|d| !d.is_empty())
                .map(std::path::PathBuf::from),
        }
    }

    /// Every source read (the user's own files).
    pub fn trusting() -> Self {
        SourceRules {
            trust_all: true,
            files_under: None,
        }
    }
}

/// What a controller keeps about registries from one reconcile to the next: the rules its
/// operator set for password sources, and the registries and credentials that failed.
#[derive(Debug, Default)]
pub struct RegistryState {
    /// Which password sources are read.
    pub rules: SourceRules,
    /// Registries that could not be reached and credentials that were refused, lately.
    pub memory: std::sync::Mutex<resolve::FailureMemory>,
}

impl RegistryState {
    /// A state whose password files are read only inside `files_under`.
    pub fn new(files_under: Option<std::path::PathBuf>) -> Self {
        RegistryState {
            rules: SourceRules {
                trust_all: false,
                files_under,
            },
            memory: Default::default(),
        }
    }
}

/// Docker Hub's canonical name, as image references without a registry mean it.
pub const DOCKER_HUB: &str = "docker.io";

/// Why a registry's credentials could not be had; every message names the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// `passwordFrom` names no source, or more than one.
    #[error("registry {server}: passwordFrom must name exactly one of variable, file or env")]
    NoSource {
        /// The registry.
        server: String,
    },
    /// The named sensitive variable is not in the Environment.
    #[error(
        "registry {server}: passwordFrom.variable {name:?} is not a sensitiveVariables entry of the Environment"
    )]
    MissingVariable {
        /// The registry.
        server: String,
        /// The variable named.
        name: String,
    },
    /// The variable is sealed and this process cannot open it.
    #[error(
        "registry {server}: the password is the sealed variable {name:?}; only a process given the secret key file can open it (--secret-key-file or KARGO_SECRET_KEY_FILE)"
    )]
    Sealed {
        /// The registry.
        server: String,
        /// The variable named.
        name: String,
    },
    /// The password file could not be read.
    #[error("registry {server}: cannot read the password file {path}: {source}")]
    File {
        /// The registry.
        server: String,
        /// The file named.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not inside the folder this process reads password files from.
    #[error("registry {server}: the password file {path} is not read: {why}")]
    FileNotAllowed {
        /// The registry.
        server: String,
        /// The file named.
        path: String,
        /// Which rule refused it.
        why: String,
    },
    /// The variable's name lacks the prefix that allows reading it.
    #[error(
        "registry {server}: the environment variable {name} is not read: a stored Environment may name only variables starting with {ENV_PREFIX}"
    )]
    EnvNotAllowed {
        /// The registry.
        server: String,
        /// The variable named.
        name: String,
    },
    /// The environment variable is not set in this process.
    #[error(
        "registry {server}: the environment variable {name} holding the password is not set in this process"
    )]
    Env {
        /// The registry.
        server: String,
        /// The variable named.
        name: String,
    },
}

/// The registry an image reference names, as Docker reads it: the part before the first
/// `/` when it holds a `.` or a `:` or is `localhost`, else Docker Hub.
pub fn registry_of(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => match first {
            "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB,
            _ => first,
        },
        _ => DOCKER_HUB,
    }
}

/// The Environment's registry entry for this image, if it names one.
pub fn registry_for<'a>(registries: &'a [Registry], image: &str) -> Option<&'a Registry> {
    let server = registry_of(image);
    registries.iter().find(|r| normalise(&r.server) == server)
}

/// A server as written in a manifest, compared as [`registry_of`] returns it.
fn normalise(server: &str) -> &str {
    let bare = server
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    match bare {
        "index.docker.io" | "registry-1.docker.io" | "index.docker.io/v1" => DOCKER_HUB,
        other => other,
    }
}

/// User name and password for one registry, ready to hand to Docker.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The registry, as image names begin with it.
    pub server: String,
    /// User name.
    pub username: String,
    /// Password (kept out of `Debug`).
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Credentials({}@{}, <redacted>)",
            self.username, self.server
        )
    }
}

impl Credentials {
    /// The form bollard sends as `X-Registry-Auth`.
    pub fn to_docker(&self) -> bollard::auth::DockerCredentials {
        bollard::auth::DockerCredentials {
            username: Some(self.username.clone()),
            password: Some(self.password.clone()),
            serveraddress: Some(self.server.clone()),
            ..Default::default()
        }
    }
}

/// The credentials for `image` under `env`, or `None` when the Environment names no
/// registry for it (the image is pulled anonymously). Sensitive variables must have been
/// opened already (`SensitiveValue::Plain`); a sealed one is an error saying so.
pub fn credentials_for(
    env: &EnvironmentSpec,
    image: &str,
    rules: &SourceRules,
) -> Result<Option<Credentials>, RegistryError> {
    match registry_for(&env.registries, image) {
        Some(registry) => credentials_of(env, registry, rules).map(Some),
        None => Ok(None),
    }
}

/// The credentials of one registry entry of `env`.
fn credentials_of(
    env: &EnvironmentSpec,
    registry: &Registry,
    rules: &SourceRules,
) -> Result<Credentials, RegistryError> {
    let server = normalise(&registry.server).to_string();
    let Some(source) = registry.password_from.source() else {
        return Err(RegistryError::NoSource { server });
    };
    let password = match source {
        PasswordSource::Variable(name) => match env.sensitive_variables.get(name) {
            Some(SensitiveValue::Plain(text)) => text.clone(),
            Some(SensitiveValue::Sealed(_)) => {
                return Err(RegistryError::Sealed {
                    server,
                    name: name.to_string(),
                });
            }
            None => {
                return Err(RegistryError::MissingVariable {
                    server,
                    name: name.to_string(),
                });
            }
        },
        PasswordSource::File(path) => match allowed_file(&server, path, rules).and_then(|allowed| {
            std::fs::read_to_string(&allowed).map_err(|source| RegistryError::File {
                server: server.clone(),
                path: path.to_string(),
                source,
            })
        }) {
            Ok(text) => text.trim_end_matches(['\r', '\n']).to_string(),
            Err(e) => return Err(e),
        },
        PasswordSource::Env(name) if !rules.trust_all && !name.starts_with(ENV_PREFIX) => {
            return Err(RegistryError::EnvNotAllowed {
                server,
                name: name.to_string(),
            });
        }
        PasswordSource::Env(name) => match std::env::var(name) {
            Ok(text) => text,
            Err(_) => {
                return Err(RegistryError::Env {
                    server,
                    name: name.to_string(),
                });
            }
        },
    };
    Ok(Credentials {
        server,
        username: registry.username.clone(),
        password,
    })
}

/// The file a source names, once the rules allow it: anything for the user's own files;
/// else only a file inside `rules.files_under` once links are resolved.
fn allowed_file(
    server: &str,
    path: &str,
    rules: &SourceRules,
) -> Result<std::path::PathBuf, RegistryError> {
    if rules.trust_all {
        return Ok(path.into());
    }
    let refuse = |why: String| RegistryError::FileNotAllowed {
        server: server.to_string(),
        path: path.to_string(),
        why,
    };
    let Some(dir) = &rules.files_under else {
        return Err(refuse(format!(
            "a stored Environment's password files are read only inside the folder given \
             with --registry-secrets-dir or {SECRETS_DIR_ENV}, and none is given"
        )));
    };
    let canonical = |p: &std::path::Path| std::fs::canonicalize(p);
    match (canonical(std::path::Path::new(path)), canonical(dir)) {
        (Ok(file), Ok(dir)) if file.starts_with(&dir) => Ok(file),
        (Ok(_), Ok(dir)) => Err(refuse(format!(
            "it is outside {}, the only folder password files are read from",
            dir.display()
        ))),
        (Err(e), _) => Err(RegistryError::File {
            server: server.to_string(),
            path: path.to_string(),
            source: e,
        }),
        (_, Err(e)) => Err(refuse(format!(
            "the registry secrets folder {}: {e}",
            dir.display()
        ))),
    }
}

/// The credentials of every registry the Environment names whose password can be had
/// here, by server: what a build sends so `FROM` can pull private base images
/// (`X-Registry-Config`). A registry whose password cannot be had is left out (a `FROM`
/// of it then fails with the registry's own refusal).
pub fn all_credentials(env: &EnvironmentSpec, rules: &SourceRules) -> Vec<Credentials> {
    env.registries
        .iter()
        .filter_map(|r| credentials_of(env, r, rules).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::PasswordFrom;

    fn env_with(server: &str, from: PasswordFrom) -> EnvironmentSpec {
        EnvironmentSpec {
            registries: vec![Registry {
                server: server.into(),
                username: "kargo".into(),
                password_from: from,
            }],
            ..EnvironmentSpec::default()
        }
    }

    #[test]
    fn the_registry_is_read_as_docker_reads_it() {
        assert_eq!(registry_of("redis:5"), "docker.io");
        assert_eq!(registry_of("bitnami/redis:5"), "docker.io");
        assert_eq!(registry_of("127.0.0.1:5000/app:1"), "127.0.0.1:5000");
        assert_eq!(registry_of("localhost/app"), "localhost");
        assert_eq!(registry_of("ghcr.io/o/app@sha256:ab"), "ghcr.io");
        assert_eq!(registry_of("index.docker.io/library/redis"), "docker.io");
    }

    #[test]
    fn an_image_of_another_registry_gets_no_credentials() {
        let env = env_with(
            "127.0.0.1:5000",
            PasswordFrom {
                env: Some("NOPE".into()),
                ..Default::default()
            },
        );
        assert_eq!(
            credentials_for(&env, "redis:5", &SourceRules::trusting()).ok(),
            Some(None)
        );
    }

    #[test]
    fn a_missing_source_names_the_registry() {
        let env = env_with(
            "http://127.0.0.1:5000/",
            PasswordFrom {
                env: Some("KARGO_TEST_SURELY_UNSET_PASSWORD".into()),
                ..Default::default()
            },
        );
        let err =
            credentials_for(&env, "127.0.0.1:5000/app:1", &SourceRules::trusting()).unwrap_err();
        assert!(err.to_string().contains("registry 127.0.0.1:5000"), "{err}");
        assert!(err.to_string().contains("KARGO_TEST_SURELY_UNSET_PASSWORD"));
    }

    #[test]
    fn two_sources_are_refused_naming_the_registry() {
        let from = PasswordFrom {
            env: Some("A".into()),
            file: Some("/b".into()),
            ..Default::default()
        };
        let err =
            credentials_for(&env_with("r:1", from), "r:1/a", &SourceRules::trusting()).unwrap_err();
        assert!(matches!(err, RegistryError::NoSource { .. }), "{err}");
    }

    #[test]
    fn a_stored_environment_reads_files_only_in_the_secrets_folder_and_prefixed_variables() {
        let dir = tempfile::tempdir().unwrap();
        let inside = dir.path().join("secrets");
        std::fs::create_dir(&inside).unwrap();
        std::fs::write(inside.join("pw"), "ok\n").unwrap();
        std::fs::write(dir.path().join("key"), "controller key").unwrap();
        let file = |p: &std::path::Path| PasswordFrom {
            file: Some(p.display().to_string()),
            ..Default::default()
        };
        let image = "127.0.0.1:5000/app:1";
        let stored = SourceRules {
            trust_all: false,
            files_under: Some(inside.clone()),
        };
        let ok = credentials_for(
            &env_with("127.0.0.1:5000", file(&inside.join("pw"))),
            image,
            &stored,
        );
        assert_eq!(ok.unwrap().unwrap().password, "ok");
        // Outside the folder, also through `..`: never read.
        for outside in [dir.path().join("key"), inside.join("../key")] {
            let err = credentials_for(&env_with("127.0.0.1:5000", file(&outside)), image, &stored)
                .unwrap_err();
            assert!(matches!(err, RegistryError::FileNotAllowed { .. }), "{err}");
            assert!(!err.to_string().contains("controller key"));
        }
        // No folder given: no file at all.
        let none = SourceRules::default();
        let err = credentials_for(
            &env_with("127.0.0.1:5000", file(&inside.join("pw"))),
            image,
            &none,
        )
        .unwrap_err();
        assert!(err.to_string().contains("--registry-secrets-dir"), "{err}");
        // Variables: only KARGO_REGISTRY_*.
        let env_source = PasswordFrom {
            env: Some("HOME".into()),
            ..Default::default()
        };
        let err =
            credentials_for(&env_with("127.0.0.1:5000", env_source), image, &stored).unwrap_err();
        assert!(matches!(err, RegistryError::EnvNotAllowed { .. }), "{err}");
    }

    #[test]
    fn a_file_password_loses_its_final_newline_and_is_not_shown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").unwrap();
        let env = env_with(
            "127.0.0.1:5000",
            PasswordFrom {
                file: Some(path.display().to_string()),
                ..Default::default()
            },
        );
        let creds = credentials_for(&env, "127.0.0.1:5000/app:1", &SourceRules::trusting())
            .unwrap()
            .unwrap();
        assert_eq!(creds.password, "s3cret");
        assert!(!format!("{creds:?}").contains("s3cret"));
    }

    #[test]
    fn a_sealed_variable_the_process_cannot_open_says_so() {
        let mut env = env_with(
            "127.0.0.1:5000",
            PasswordFrom {
                variable: Some("REG".into()),
                ..Default::default()
            },
        );
        env.sensitive_variables.insert(
            "REG".into(),
            SensitiveValue::Sealed(crate::api::SealedText {
                sealed: "-----BEGIN AGE ENCRYPTED FILE-----".into(),
            }),
        );
        let err =
            credentials_for(&env, "127.0.0.1:5000/app:1", &SourceRules::trusting()).unwrap_err();
        assert!(matches!(err, RegistryError::Sealed { .. }), "{err}");
        env.sensitive_variables
            .insert("REG".into(), SensitiveValue::Plain("pw".into()));
        let creds = credentials_for(&env, "127.0.0.1:5000/app:1", &SourceRules::trusting())
            .unwrap()
            .unwrap();
        assert_eq!(
            (creds.username.as_str(), creds.password.as_str()),
            ("kargo", "pw")
        );
    }
}
