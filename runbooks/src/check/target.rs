//! The target file of `drill check`: where a deployment's services are, and where its
//! secrets are kept (never in the file itself).
//!
//! ```toml
//! name = "production"
//! enrichment = "http://enrichment.internal:8020"
//! gateway = "http://gateway.internal:8022"
//! dlq = "http://dlq.internal:8024"
//! rest_api = "http://rest.internal:8082"
//! graph_api = "http://graph.internal:8084"
//!
//! [postgres]
//! host = "db.internal"
//! port = 5433
//! user = "musicdb_readonly"
//! database = "musicdb"
//! password_env = "MUSICDB_PASSWORD"      # or password_file = "/run/secrets/musicdb"
//!
//! [redis]
//! host = "redis.internal"
//! port = 6379
//!
//! [services]                             # optional: how `docker compose` steps read
//! compose_project = "songnodes"          # the services' compose project
//! docker_host = "unix:///var/run/docker.sock"   # optional: the local engine otherwise
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use url::Url;
use wire::Endpoints;

/// A target file, as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// What reports call it.
    pub name: String,
    pub enrichment: Url,
    pub gateway: Url,
    pub dlq: Url,
    pub rest_api: Url,
    pub graph_api: Url,
    pub postgres: PostgresTarget,
    pub redis: RedisTarget,
    /// Where the services run as a compose project; without it, the runbooks'
    /// `docker compose` steps are not checked.
    pub services: Option<ServicesTarget>,
}

/// The services' compose project, and the engine it runs on.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicesTarget {
    pub compose_project: String,
    /// `unix:///…` or `tcp://…`; the local engine (or `DOCKER_HOST`) when absent.
    pub docker_host: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub database: String,
    pub password_env: Option<String>,
    pub password_file: Option<PathBuf>,
    /// Only to refuse it with a clear message.
    password: Option<toml::Value>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisTarget {
    pub host: String,
    pub port: u16,
    pub password_env: Option<String>,
    pub password_file: Option<PathBuf>,
    /// Only to refuse it with a clear message.
    password: Option<toml::Value>,
}

/// Where a password is kept: an environment variable or a file the target names.
/// A `password` written into the target file itself is refused.
struct SecretSource<'a> {
    env: &'a Option<String>,
    file: &'a Option<PathBuf>,
    inline: bool,
}

/// Why a target file cannot be used. Distinct from a runbook that does not work:
/// `drill check` exits 2 on these.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("reading the target file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the target file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error(
        "the target file {path} holds a {what} password: keep it out of the file, in an \
         environment variable (password_env = \"NAME\") or a file (password_file = \"PATH\")"
    )]
    SecretInFile { path: PathBuf, what: &'static str },
    #[error("{what} password: the environment variable {name} is not set")]
    MissingEnv { what: &'static str, name: String },
    #[error("{what} password: reading {path}: {source}")]
    SecretFile {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: give password_env or password_file, not both")]
    TwoSources { what: &'static str },
}

/// A target with its secrets read, ready to connect to.
pub struct LoadedTarget {
    pub target: Target,
    pub endpoints: Endpoints,
    /// Every secret read, to be redacted from every output.
    pub secrets: Vec<String>,
}

impl Target {
    pub fn load(path: &Path) -> Result<LoadedTarget, TargetError> {
        let text = std::fs::read_to_string(path).map_err(|source| TargetError::Read {
            path: path.to_owned(),
            source,
        })?;
        let target: Target = toml::from_str(&text).map_err(|e| TargetError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let pg = SecretSource {
            env: &target.postgres.password_env,
            file: &target.postgres.password_file,
            inline: target.postgres.password.is_some(),
        };
        let redis = SecretSource {
            env: &target.redis.password_env,
            file: &target.redis.password_file,
            inline: target.redis.password.is_some(),
        };
        for (what, source) in [("PostgreSQL", &pg), ("Redis", &redis)] {
            if source.inline {
                return Err(TargetError::SecretInFile {
                    path: path.to_owned(),
                    what,
                });
            }
        }
        let db_password = pg.read("PostgreSQL")?;
        let redis_password = redis.read("Redis")?;
        let endpoints = target.endpoints(db_password.as_deref(), redis_password.as_deref());
        let secrets = [db_password, redis_password]
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .collect();
        Ok(LoadedTarget {
            target,
            endpoints,
            secrets,
        })
    }

    fn endpoints(&self, db_password: Option<&str>, redis_password: Option<&str>) -> Endpoints {
        let pg = &self.postgres;
        let credentials = match db_password {
            Some(password) => format!("{}:{}", encode(&pg.user), encode(password)),
            None => encode(&pg.user),
        };
        let redis = &self.redis;
        let redis_credentials = redis_password
            .map(|p| format!(":{}@", encode(p)))
            .unwrap_or_default();
        Endpoints {
            enrichment: self.enrichment.clone(),
            gateway: self.gateway.clone(),
            dlq: self.dlq.clone(),
            rest_api: self.rest_api.clone(),
            graph_api: self.graph_api.clone(),
            database_url: format!(
                "postgres://{credentials}@{}:{}/{}",
                pg.host,
                pg.port,
                encode(&pg.database)
            ),
            postgres_host: pg.host.clone(),
            postgres_port: pg.port,
            redis_url: format!("redis://{redis_credentials}{}:{}/", redis.host, redis.port),
            redis_port: redis.port,
            // A check never calls the providers or the sites: they are other people's.
            providers: BTreeMap::new(),
            sites: BTreeMap::new(),
        }
    }
}

impl SecretSource<'_> {
    fn read(&self, what: &'static str) -> Result<Option<String>, TargetError> {
        match (self.env, self.file) {
            (Some(_), Some(_)) => Err(TargetError::TwoSources { what }),
            (Some(name), None) => {
                std::env::var(name)
                    .map(Some)
                    .map_err(|_| TargetError::MissingEnv {
                        what,
                        name: name.clone(),
                    })
            }
            (None, Some(path)) => std::fs::read_to_string(path)
                .map(|s| Some(s.trim_end_matches(['\n', '\r']).to_owned()))
                .map_err(|source| TargetError::SecretFile {
                    what,
                    path: path.clone(),
                    source,
                }),
            (None, None) => Ok(None),
        }
    }
}

/// Percent-encodes a URL user-info or path part.
fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// `text` with every secret replaced by `***`.
pub fn redact(text: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .fold(text.to_owned(), |text, secret| text.replace(secret, "***"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    const SERVICES: &str = r#"
name = "test"
enrichment = "http://127.0.0.1:8020"
gateway = "http://127.0.0.1:8022"
dlq = "http://127.0.0.1:8024"
rest_api = "http://127.0.0.1:8082"
graph_api = "http://127.0.0.1:8084"
[redis]
host = "127.0.0.1"
port = 6379
"#;

    fn dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("drill-target-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_password_comes_from_a_file_and_is_redacted() {
        let dir = dir();
        let secret = write(&dir, "pw", "s3cr:t/pw\n");
        let path = write(
            &dir,
            "file.toml",
            &format!(
                "{SERVICES}[postgres]\nhost = \"db\"\nport = 5433\nuser = \"ro\"\n\
                 database = \"musicdb\"\npassword_file = \"{}\"\n",
                secret.display()
            ),
        );
        let loaded = Target::load(&path).unwrap();
        assert_eq!(
            loaded.endpoints.database_url,
            "postgres://ro:s3cr%3At%2Fpw@db:5433/musicdb"
        );
        assert_eq!(loaded.secrets, vec!["s3cr:t/pw".to_owned()]);
        assert_eq!(
            redact("auth failed for s3cr:t/pw", &loaded.secrets),
            "auth failed for ***"
        );
    }

    #[test]
    fn a_password_in_the_file_is_refused() {
        let dir = dir();
        let path = write(
            &dir,
            "inline.toml",
            &format!(
                "{SERVICES}[postgres]\nhost = \"db\"\nport = 5433\nuser = \"ro\"\n\
                 database = \"musicdb\"\npassword = \"hunter2\"\n"
            ),
        );
        let error = Target::load(&path).err().unwrap().to_string();
        assert!(error.contains("holds a PostgreSQL password"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn a_missing_variable_and_a_malformed_file_say_what_is_wrong() {
        let dir = dir();
        let path = write(
            &dir,
            "env.toml",
            &format!(
                "{SERVICES}[postgres]\nhost = \"db\"\nport = 5433\nuser = \"ro\"\n\
                 database = \"musicdb\"\npassword_env = \"DRILL_TEST_NO_SUCH_VARIABLE\"\n"
            ),
        );
        let error = Target::load(&path).err().unwrap().to_string();
        assert!(
            error.contains("DRILL_TEST_NO_SUCH_VARIABLE is not set"),
            "{error}"
        );
        let bad = write(&dir, "bad.toml", "name = \"x\"\nenrichment = 8020\n");
        let error = Target::load(&bad).err().unwrap().to_string();
        assert!(error.contains("is not valid"), "{error}");
        assert!(error.contains("enrichment"), "{error}");
    }
}
